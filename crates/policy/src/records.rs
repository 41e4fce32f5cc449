//! The records of processing activities (GDPR Art. 30(1)) derived from a policy: the
//! controller, each purpose with its legal basis, the categories of data subjects and of
//! personal data, recipients, transfers, retention and security measures; as JSON (serde)
//! and as Markdown for people.
//!
//! Everything here is derived from the policy and from what discreet itself does; it must
//! never contain a statement the policy or the engine does not back, nor any personal
//! data (records describe categories, never subjects).

use std::fmt::Write as _;

use serde::Serialize;

use crate::policy::{Controller, Policy, Transfer};
use crate::taxonomy::{self, covers};

/// Technical measures every discreet deployment has, whatever its policy (GDPR Art. 32).
pub const BUILT_IN_TECHNICAL_MEASURES: &[&str] = &[
    "Each subject's personal data is sealed at rest with AES-256-GCM under that subject's own random 256-bit data key.",
    "Data keys are wrapped by a key-encryption key that is kept outside the data folder; wrapped keys live in a key store apart from the data and its backups.",
    "Erasure destroys the subject's data key (crypto-shredding), so copies left in backups and logs cannot be read.",
    "Trained models are derived from retained, consented data only; erasure and consent withdrawal unlearn the subject's data exactly.",
    "Data past its category's retention period is erased automatically, in the same way as a request to be forgotten.",
    "Every read, write and erasure of personal data is appended to a hash-chained ledger whose integrity can be verified; erasure receipts are signed.",
    "API keys are stored hashed and carry a role that limits the actions, purposes and data categories they may use.",
    "Logs, metrics, the ledger and receipts name subjects by a keyed pseudonymous token, never by customer id or personal value.",
];

/// The records of processing activities for one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordsOfProcessing {
    /// The policy version these records describe.
    pub policy_version: String,
    /// The policy fingerprint these records describe.
    pub policy_fingerprint: String,
    /// Name and contact details of the controller and its DPO (Art. 30(1)(a)).
    pub controller: Controller,
    /// One activity per purpose (Art. 30(1)(b)).
    pub processing_activities: Vec<ProcessingActivity>,
    /// Whose data is processed (Art. 30(1)(c)).
    pub categories_of_data_subjects: Vec<DataSubjectRecord>,
    /// Which data, for how long (Art. 30(1)(c) and (f)).
    pub categories_of_personal_data: Vec<PersonalDataRecord>,
    /// Who receives data (Art. 30(1)(d)).
    pub recipients: Vec<RecipientRecord>,
    /// Transfers to third countries and their safeguards (Art. 30(1)(e)).
    pub transfers_to_third_countries: Vec<Transfer>,
    /// Technical and organisational security measures (Art. 30(1)(g), Art. 32).
    pub security_measures: SecurityMeasures,
}

/// One purpose as a processing activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessingActivity {
    /// The purpose name.
    pub purpose: String,
    /// What customers are told, when given.
    pub description: Option<String>,
    /// The fideslang data use.
    pub data_use: String,
    /// What the data use means.
    pub data_use_description: String,
    /// The lawful basis name.
    pub legal_basis: String,
    /// The GDPR article of the lawful basis.
    pub legal_basis_article: String,
    /// The interest pursued, for legitimate interests.
    pub legitimate_interest: Option<String>,
    /// Whose data.
    pub data_subjects: Vec<String>,
    /// Which data categories.
    pub categories_of_personal_data: Vec<String>,
    /// Who receives data for this purpose.
    pub recipients: Vec<String>,
    /// Whether this is a sale or sharing of data.
    pub sale_or_sharing: bool,
    /// Whether only aggregated, non-personal results leave this purpose.
    pub aggregated_only: bool,
    /// How long each declared category this purpose uses is kept.
    pub retention: Vec<RetentionRecord>,
}

/// The retention of one declared category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRecord {
    /// The declared category.
    pub category: String,
    /// The period as written, e.g. `13 months`.
    pub retention: String,
    /// The period in days (months of 30 days, years of 365 days).
    pub retention_days: u64,
}

/// One category of data subjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataSubjectRecord {
    /// The fideslang data subject.
    pub name: String,
    /// What it means.
    pub description: String,
    /// The purposes processing their data.
    pub purposes: Vec<String>,
}

/// One declared category of personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonalDataRecord {
    /// The fideslang category.
    pub category: String,
    /// What it means.
    pub description: String,
    /// The period as written, e.g. `13 months`.
    pub retention: String,
    /// The period in days (months of 30 days, years of 365 days).
    pub retention_days: u64,
    /// Why this period.
    pub retention_reason: Option<String>,
    /// The purposes that may use it.
    pub purposes: Vec<String>,
    /// The attributes stored under it.
    pub attributes: Vec<String>,
    /// The event types stored under it.
    pub event_types: Vec<String>,
}

/// One recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientRecord {
    /// Name in the policy.
    pub name: String,
    /// Processor, controller, ...
    pub kind: String,
    /// Who they are and what they receive.
    pub description: String,
    /// Where they process the data.
    pub location: Option<String>,
    /// The purposes they receive data for.
    pub purposes: Vec<String>,
}

/// Security measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityMeasures {
    /// Built into discreet.
    pub technical: Vec<String>,
    /// Declared by the policy author.
    pub organisational: Vec<String>,
}

impl RecordsOfProcessing {
    /// Derives the records from a validated policy.
    pub fn of_policy(policy: &Policy) -> RecordsOfProcessing {
        let processing_activities = policy
            .purposes()
            .iter()
            .map(|purpose| ProcessingActivity {
                purpose: purpose.name.clone(),
                description: purpose.description.clone(),
                data_use: purpose.data_use.clone(),
                data_use_description: taxonomy::data_use(&purpose.data_use)
                    .map(|entry| entry.description.to_owned())
                    .unwrap_or_default(),
                legal_basis: purpose.legal_basis.as_str().to_owned(),
                legal_basis_article: purpose.legal_basis.article().to_owned(),
                legitimate_interest: purpose.legitimate_interest.clone(),
                data_subjects: purpose.data_subjects.clone(),
                categories_of_personal_data: purpose.categories.clone(),
                recipients: purpose.recipients.clone(),
                sale_or_sharing: purpose.sale_or_sharing,
                aggregated_only: purpose.aggregated_only,
                retention: policy
                    .categories()
                    .iter()
                    .filter(|rule| overlaps(&purpose.categories, &rule.name))
                    .map(|rule| RetentionRecord {
                        category: rule.name.clone(),
                        retention: rule.retention.to_string(),
                        retention_days: rule.retention.as_days(),
                    })
                    .collect(),
            })
            .collect();

        let mut subject_names: Vec<&str> = policy
            .purposes()
            .iter()
            .flat_map(|purpose| purpose.data_subjects.iter().map(String::as_str))
            .collect();
        subject_names.sort_unstable();
        subject_names.dedup();
        let categories_of_data_subjects = subject_names
            .into_iter()
            .map(|subject| DataSubjectRecord {
                name: subject.to_owned(),
                description: taxonomy::data_subject(subject)
                    .map(|entry| entry.description.to_owned())
                    .unwrap_or_default(),
                purposes: policy
                    .purposes()
                    .iter()
                    .filter(|purpose| purpose.data_subjects.iter().any(|name| name == subject))
                    .map(|purpose| purpose.name.clone())
                    .collect(),
            })
            .collect();

        let categories_of_personal_data = policy
            .categories()
            .iter()
            .map(|rule| PersonalDataRecord {
                category: rule.name.clone(),
                description: taxonomy::data_category(&rule.name)
                    .map(|entry| entry.description.to_owned())
                    .unwrap_or_default(),
                retention: rule.retention.to_string(),
                retention_days: rule.retention.as_days(),
                retention_reason: rule.retention_reason.clone(),
                purposes: policy
                    .purposes()
                    .iter()
                    .filter(|purpose| overlaps(&purpose.categories, &rule.name))
                    .map(|purpose| purpose.name.clone())
                    .collect(),
                // Each attribute and event type is stored under the most specific rule.
                attributes: names_governed_by(policy, policy.attributes(), &rule.name),
                event_types: names_governed_by(policy, policy.event_types(), &rule.name),
            })
            .collect();

        let recipients = policy
            .recipients()
            .iter()
            .map(|recipient| RecipientRecord {
                name: recipient.name.clone(),
                kind: recipient.kind.as_str().to_owned(),
                description: recipient.description.clone(),
                location: recipient.location.clone(),
                purposes: policy
                    .purposes()
                    .iter()
                    .filter(|purpose| purpose.recipients.contains(&recipient.name))
                    .map(|purpose| purpose.name.clone())
                    .collect(),
            })
            .collect();

        RecordsOfProcessing {
            policy_version: policy.version().to_owned(),
            policy_fingerprint: policy.fingerprint().to_owned(),
            controller: policy.controller().clone(),
            processing_activities,
            categories_of_data_subjects,
            categories_of_personal_data,
            recipients,
            transfers_to_third_countries: policy.transfers().to_vec(),
            security_measures: SecurityMeasures {
                technical: BUILT_IN_TECHNICAL_MEASURES
                    .iter()
                    .map(|measure| (*measure).to_owned())
                    .collect(),
                organisational: policy.security_measures().to_vec(),
            },
        }
    }

    /// The records as a Markdown document for a privacy officer or a supervisory authority.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_markdown(&mut out);
        out
    }

    fn write_markdown(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "# Records of processing activities")?;
        writeln!(out)?;
        writeln!(
            out,
            "Kept under GDPR Article 30(1). Policy version `{}`, fingerprint `{}`.",
            self.policy_version, self.policy_fingerprint
        )?;

        writeln!(out)?;
        writeln!(out, "## Controller")?;
        writeln!(out)?;
        writeln!(out, "- **Name:** {}", inline(&self.controller.name))?;
        writeln!(out, "- **Contact:** {}", inline(&self.controller.contact))?;
        if let Some(address) = &self.controller.address {
            writeln!(out, "- **Address:** {}", inline(address))?;
        }
        let officer = self
            .controller
            .data_protection_officer
            .as_deref()
            .unwrap_or("none appointed");
        writeln!(out, "- **Data protection officer:** {}", inline(officer))?;

        writeln!(out)?;
        writeln!(out, "## Processing activities")?;
        for activity in &self.processing_activities {
            write_activity(out, activity)?;
        }

        writeln!(out)?;
        writeln!(out, "## Categories of data subjects")?;
        writeln!(out)?;
        writeln!(out, "| Data subject | Description | Purposes |")?;
        writeln!(out, "| --- | --- | --- |")?;
        for subject in &self.categories_of_data_subjects {
            writeln!(
                out,
                "| `{}` | {} | {} |",
                subject.name,
                cell(&subject.description),
                code_list(&subject.purposes)
            )?;
        }

        writeln!(out)?;
        writeln!(out, "## Categories of personal data and retention")?;
        writeln!(out)?;
        writeln!(
            out,
            "Months count as 30 days and years as 365 days, so data is never kept longer than stated."
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "| Category | Description | Retention | Why | Purposes | Collected as |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- |")?;
        for category in &self.categories_of_personal_data {
            let mut collected_as: Vec<String> = category
                .attributes
                .iter()
                .map(|name| format!("attribute `{name}`"))
                .collect();
            collected_as.extend(
                category
                    .event_types
                    .iter()
                    .map(|name| format!("event `{name}`")),
            );
            writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                category.category,
                cell(&category.description),
                category.retention,
                cell(category.retention_reason.as_deref().unwrap_or("")),
                code_list(&category.purposes),
                if collected_as.is_empty() {
                    "—".to_owned()
                } else {
                    collected_as.join(", ")
                }
            )?;
        }

        writeln!(out)?;
        writeln!(out, "## Recipients")?;
        writeln!(out)?;
        if self.recipients.is_empty() {
            writeln!(
                out,
                "None: personal data is disclosed to nobody outside the controller."
            )?;
        } else {
            writeln!(
                out,
                "| Recipient | Kind | Location | Description | Purposes |"
            )?;
            writeln!(out, "| --- | --- | --- | --- | --- |")?;
            for recipient in &self.recipients {
                writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    recipient.name,
                    recipient.kind.replace('_', " "),
                    cell(recipient.location.as_deref().unwrap_or("—")),
                    cell(&recipient.description),
                    code_list(&recipient.purposes)
                )?;
            }
        }

        writeln!(out)?;
        writeln!(out, "## Transfers to third countries")?;
        writeln!(out)?;
        if self.transfers_to_third_countries.is_empty() {
            writeln!(out, "None.")?;
        } else {
            writeln!(out, "| Recipient | Country | Safeguard |")?;
            writeln!(out, "| --- | --- | --- |")?;
            for transfer in &self.transfers_to_third_countries {
                writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    transfer.recipient,
                    cell(&transfer.country),
                    cell(&transfer.safeguard)
                )?;
            }
        }

        writeln!(out)?;
        writeln!(out, "## Security measures")?;
        writeln!(out)?;
        writeln!(out, "### Technical, built into discreet")?;
        writeln!(out)?;
        for measure in &self.security_measures.technical {
            writeln!(out, "- {}", inline(measure))?;
        }
        writeln!(out)?;
        writeln!(out, "### Organisational, declared by the controller")?;
        writeln!(out)?;
        if self.security_measures.organisational.is_empty() {
            writeln!(out, "None declared in the policy.")?;
        }
        for measure in &self.security_measures.organisational {
            writeln!(out, "- {}", inline(measure))?;
        }
        Ok(())
    }
}

fn write_activity(out: &mut String, activity: &ProcessingActivity) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "### `{}`", activity.purpose)?;
    writeln!(out)?;
    if let Some(description) = &activity.description {
        writeln!(out, "{}", inline(description))?;
        writeln!(out)?;
    }
    writeln!(out, "| | |")?;
    writeln!(out, "| --- | --- |")?;
    writeln!(
        out,
        "| Data use (fideslang) | `{}`: {} |",
        activity.data_use,
        cell(&activity.data_use_description)
    )?;
    writeln!(
        out,
        "| Legal basis | {} ({}) |",
        activity.legal_basis.replace('_', " "),
        activity.legal_basis_article
    )?;
    if let Some(interest) = &activity.legitimate_interest {
        writeln!(out, "| Legitimate interest | {} |", cell(interest))?;
    }
    writeln!(
        out,
        "| Data subjects | {} |",
        code_list(&activity.data_subjects)
    )?;
    writeln!(
        out,
        "| Personal data | {} |",
        code_list(&activity.categories_of_personal_data)
    )?;
    writeln!(out, "| Recipients | {} |", code_list(&activity.recipients))?;
    writeln!(
        out,
        "| Sale or sharing | {} |",
        if activity.sale_or_sharing {
            "yes"
        } else {
            "no"
        }
    )?;
    writeln!(
        out,
        "| Results | {} |",
        if activity.aggregated_only {
            "aggregated, non-personal figures only"
        } else {
            "personal"
        }
    )?;
    let retention: Vec<String> = activity
        .retention
        .iter()
        .map(|record| format!("`{}`: {}", record.category, record.retention))
        .collect();
    writeln!(
        out,
        "| Retention | {} |",
        if retention.is_empty() {
            "—".to_owned()
        } else {
            retention.join("; ")
        }
    )?;
    Ok(())
}

/// Whether a purpose listing `granted` uses data of the declared category `declared`:
/// one covers the other (a purpose naming a parent uses the declared children).
fn overlaps(granted: &[String], declared: &str) -> bool {
    granted
        .iter()
        .any(|name| covers(name, declared) || covers(declared, name))
}

fn names_governed_by(
    policy: &Policy,
    map: &std::collections::BTreeMap<String, String>,
    rule_name: &str,
) -> Vec<String> {
    map.iter()
        .filter(|(_, category)| {
            policy
                .category_rule_of(category)
                .is_some_and(|rule| rule.name == rule_name)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Text on one line (Markdown would otherwise break lists and tables on newlines).
fn inline(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text inside a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

fn code_list(names: &[String]) -> String {
    if names.is_empty() {
        return "—".to_owned();
    }
    crate::parse::quoted_list(names.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_stay_on_one_line_and_escape_pipes() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(code_list(&[]), "—");
        assert_eq!(code_list(&["a".to_owned(), "b".to_owned()]), "`a`, `b`");
    }

    #[test]
    fn purposes_naming_a_parent_use_the_declared_children() {
        let granted = vec!["user.behavior".to_owned()];
        assert!(overlaps(&granted, "user.behavior.purchase_history"));
        assert!(!overlaps(&granted, "user.contact.email"));
        let granted = vec!["user.contact.email".to_owned()];
        assert!(overlaps(&granted, "user.contact"));
    }
}
