//! The Art. 33(3) draft: the nature of the breach, the categories and approximate numbers
//! of subjects and records, the contact point, the likely consequences (derived from the
//! categories) and the measures (containment with its times, then the policy's and
//! discreet's own security measures). Counts and categories only: never a personal value.

use std::fmt::Write as _;

use discreet_policy::{Grant, Policy, Role};
use discreet_vault::rfc3339;
use serde::{Deserialize, Serialize};

use super::{Incident, IncidentKind};

/// The report's sections, as in the answer's `report`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSections {
    pub nature: String,
    pub categories_and_numbers: String,
    pub contact: String,
    pub likely_consequences: String,
    pub measures: String,
}

/// What a copy of the data files shows without keys: the storage's clear columns.
pub(crate) fn in_clear() -> Vec<String> {
    [
        "internal subject ids (random numbers, not the shop's customer ids)",
        "when each subject was created and each event happened or attribute was written",
        "the data category of each event and attribute, and attribute names",
        "event sequence numbers and the sizes of the sealed values",
        "consent decisions per purpose with their times (no customer id)",
        "the access ledger (pseudonymous subject tokens, key ids, actions, times, counts)",
        "the item catalogue (not personal data)",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// The technical measures built into discreet, stated in every report.
const TECHNICAL_MEASURES: &str = "Every customer's data is sealed with its own AES-256-GCM key, wrapped by a key-encryption key kept outside the data store; the ledger of accesses is hash-chained and signed; erasure destroys a customer's key.";

fn grant<T: std::fmt::Display>(grant: &Grant<T>) -> String {
    match grant {
        Grant::All => "everything".to_owned(),
        Grant::Only(names) if names.is_empty() => "nothing".to_owned(),
        Grant::Only(names) => names
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The consequences a category's exposure is likely to have.
fn consequence(category: &str) -> &'static str {
    if category.starts_with("user.contact") || category.starts_with("user.name") {
        "contact details and names can be used for phishing, spam and impersonation"
    } else if category.starts_with("user.behavior.purchase_history") {
        "purchase history discloses habits, and possibly health, family or financial circumstances inferred from what was bought"
    } else if category.starts_with("user.behavior") {
        "browsing and search history discloses interests and habits and allows profiling"
    } else if category.starts_with("user.location") {
        "location data discloses where customers live or are"
    } else if category.starts_with("user.privacy_preferences") {
        "consent decisions disclose which uses a customer agreed to"
    } else {
        "the data discloses what customers declared about themselves"
    }
}

/// The sections for `incident`; `role` is its key's role, when it names one.
pub(crate) fn sections(
    policy: &Policy,
    incident: &Incident,
    role: Option<&Role>,
) -> ReportSections {
    let impact = &incident.impact;
    let window = match incident.since {
        Some(since) => format!("from {} to {}", rfc3339(since), rfc3339(incident.until)),
        None => format!("until {}", rfc3339(incident.until)),
    };
    let mut nature = match incident.kind {
        IncidentKind::KeyCompromised => format!(
            "Confidentiality breach: the secret of API key {} may have been used by someone else {window}. The ledger shows what the key read in that window ({} read entries).",
            incident.key_id.as_deref().unwrap_or("(none)"),
            impact.reads
        ),
        IncidentKind::Window => format!(
            "Confidentiality breach: personal-data accesses {window} by any key are in question ({} read entries).",
            impact.reads
        ),
        IncidentKind::DataCopy => format!(
            "Confidentiality breach: a copy of the data files was taken at {}. {}",
            incident.since.map(rfc3339).unwrap_or_default(),
            if impact.intelligible {
                "The key-encryption key is treated as exposed too, so the copy must be assumed readable."
            } else {
                "The key-encryption key was not exposed: every personal value in the copy is sealed and unintelligible (Art. 34(3)(a))."
            }
        ),
    };
    if let Some(role) = role {
        let _ = write!(
            nature,
            " The key's role `{}` could call {} for the purposes {} on the categories {}.",
            role.name,
            grant(&role.actions),
            grant(&role.purposes),
            grant(&role.categories)
        );
    }
    if !incident.ledger.ok {
        let _ = write!(
            nature,
            " WARNING: the ledger did not verify ({}); the figures below come from what it still holds and may be incomplete.",
            incident.ledger.problem.as_deref().unwrap_or("chain broken")
        );
    }
    let mut numbers = format!(
        "About {} data subjects (customers) and {} records{}.",
        impact.subjects,
        impact.records,
        if impact.approximate {
            " (upper bound: some older ledger entries carry no per-category counts)"
        } else {
            ""
        }
    );
    for category in &impact.categories {
        let _ = write!(
            numbers,
            " {}: {} subjects, {} records.",
            category.category, category.subjects, category.records
        );
    }
    if impact.recommendation_reads > 0 {
        let _ = write!(
            numbers,
            " {} of the reads were recommendation lists, derived from those categories (suggested items and the customer's own items they were based on), counted as 0 records.",
            impact.recommendation_reads
        );
    }
    if !impact.purposes.is_empty() {
        let _ = write!(numbers, " Purposes named: {}.", impact.purposes.join(", "));
    }
    if !impact.in_clear.is_empty() {
        let _ = write!(
            numbers,
            " Readable without keys: {}.",
            impact.in_clear.join("; ")
        );
    }
    let controller = policy.controller();
    let contact = match &controller.data_protection_officer {
        Some(dpo) => format!(
            "{} ({}); data protection officer: {dpo}.",
            controller.name, controller.contact
        ),
        None => format!("{} ({}).", controller.name, controller.contact),
    };
    let likely_consequences = if impact.subjects == 0 {
        "The ledger shows no personal data disclosed in question; the risk to customers is low."
            .to_owned()
    } else if !impact.intelligible {
        "The exposed values are sealed and cannot be opened without keys that were not exposed: the risk to customers is low. What is in clear shows how many customers there are and when they were active, not who they are.".to_owned()
    } else {
        let mut seen: Vec<&str> = Vec::new();
        for category in &impact.categories {
            let text = consequence(&category.category);
            if !seen.contains(&text) {
                seen.push(text);
            }
        }
        let mut text = seen.join("; ");
        if let Some(first) = text.get(..1) {
            text = format!(
                "{}{}.",
                first.to_uppercase(),
                text.get(1..).unwrap_or_default()
            );
        }
        text
    };
    let mut measures = String::new();
    match incident.containment.key_revoked_at {
        Some(at) => {
            let _ = write!(measures, "The key was revoked at {}. ", rfc3339(at));
        }
        None if incident.kind == IncidentKind::KeyCompromised => {
            measures.push_str("The key has not been revoked yet. ");
        }
        None => {}
    }
    if let Some(at) = incident.containment.kek_rotated_at {
        let _ = write!(
            measures,
            "The key-encryption key was rotated at {} (every data key re-wrapped). ",
            rfc3339(at)
        );
    }
    measures.push_str(TECHNICAL_MEASURES);
    for measure in policy.security_measures() {
        measures.push(' ');
        measures.push_str(measure);
    }
    ReportSections {
        nature,
        categories_and_numbers: numbers,
        contact,
        likely_consequences,
        measures,
    }
}

/// The Art. 33(3) draft in Markdown.
pub(crate) fn markdown(policy: &Policy, incident: &Incident) -> String {
    let report = &incident.report;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Personal data breach: draft notification (GDPR Art. 33)\n"
    );
    let _ = writeln!(
        text,
        "- Incident: `{}` ({})",
        incident.id,
        incident.kind.as_str()
    );
    let _ = writeln!(text, "- Controller: {}", policy.controller().name);
    let _ = writeln!(text, "- Became aware: {}", rfc3339(incident.aware_at));
    let _ = writeln!(
        text,
        "- Notify the supervisory authority by: {}",
        rfc3339(incident.notify_by)
    );
    let _ = writeln!(
        text,
        "- Computed: {} from the access ledger ({})",
        rfc3339(incident.created_at),
        if incident.ledger.ok {
            format!("{} entries, verified", incident.ledger.entries)
        } else {
            format!(
                "DID NOT VERIFY: {} entries read up to the first bad one",
                incident.ledger.entries
            )
        }
    );
    if let Some(signature) = &incident.signature {
        let _ = writeln!(
            text,
            "- Signed by key {}: {}",
            signature.key_id, signature.signature
        );
    }
    if let Some(description) = &incident.description {
        let _ = writeln!(text, "\n> {}", description.replace('\n', "\n> "));
    }
    for (title, body) in [
        ("(a) Nature of the breach", &report.nature),
        (
            "(a) Categories and approximate numbers of data subjects and records",
            &report.categories_and_numbers,
        ),
        ("(b) Contact point", &report.contact),
        ("(c) Likely consequences", &report.likely_consequences),
        ("(d) Measures taken or proposed", &report.measures),
    ] {
        let _ = writeln!(text, "\n## {title}\n\n{body}");
    }
    if !incident.impact.categories.is_empty() {
        let _ = writeln!(
            text,
            "\n| category | subjects | records |\n| --- | --- | --- |"
        );
        for category in &incident.impact.categories {
            let _ = writeln!(
                text,
                "| {} | {} | {} |",
                category.category, category.subjects, category.records
            );
        }
    }
    text
}
