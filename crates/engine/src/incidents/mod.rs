//! Incidents: a question put to the ledger after a breach (GDPR Art. 33). Which subjects,
//! records, categories and purposes were exposed, by which key, in which window; the ledger
//! is verified first and a broken chain is said in the answer. An incident is stored signed
//! with the receipt key, and its containment actions are ledger entries with their times.
//!
//! Rooms: `impact` (the ledger scan), `report` (the Art. 33(3) sections and the Markdown).

mod impact;
mod report;

use std::sync::Mutex;

use discreet_policy::Action;
use discreet_vault::crypto::{random_bytes, to_hex};
use discreet_vault::{DocumentSignature, LedgerDraft, now_millis};
use serde::{Deserialize, Serialize};

use crate::access::Caller;
use crate::engine::{Engine, lock, write};
use crate::error::{Error, Missing, Result};

pub use impact::{CategoryImpact, Impact, PORTAL_SESSION_REACH_MILLIS, READ_ACTIONS};
pub use report::ReportSections;

/// 72 hours, in milliseconds: Art. 33(1)'s deadline after the controller became aware.
pub const NOTIFY_WITHIN_MILLIS: i64 = 72 * 3600 * 1000;

/// Longest incident description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// Clock skew tolerated for times said to be now.
const SKEW_MILLIS: i64 = 60_000;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// An API key's secret leaked: what that key read in the window.
    KeyCompromised,
    /// Every personal-data read by any key in the window.
    Window,
    /// A copy of the data files taken at `since`.
    DataCopy,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::KeyCompromised => "key_compromised",
            IncidentKind::Window => "window",
            IncidentKind::DataCopy => "data_copy",
        }
    }
}

/// An officer's description of an incident (times in unix milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentRequest {
    pub kind: IncidentKind,
    pub key_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub aware_at: Option<i64>,
    pub kek_exposed: Option<bool>,
    pub description: Option<String>,
}

/// Containment actions taken, with their times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Containment {
    pub key_revoked_at: Option<i64>,
    pub kek_rotated_at: Option<i64>,
}

/// Which containment actions to take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainRequest {
    pub revoke_key: bool,
    pub rotate_kek: bool,
}

/// The ledger's verification before the impact was computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCheck {
    pub ok: bool,
    pub entries: u64,
    pub problem: Option<String>,
}

/// A stored incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub kind: IncidentKind,
    pub key_id: Option<String>,
    pub since: Option<i64>,
    pub until: i64,
    pub aware_at: i64,
    pub notify_by: i64,
    pub created_at: i64,
    pub created_by: String,
    pub description: Option<String>,
    pub kek_exposed: Option<bool>,
    pub impact: Impact,
    pub containment: Containment,
    pub report: ReportSections,
    pub ledger: LedgerCheck,
    /// The receipt key's signature over the stored record (absent only while signing).
    pub signature: Option<DocumentSignature>,
}

/// The affected customers of an incident, for Art. 34 notices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentSubjects {
    /// Customer ids of the affected subjects still held.
    pub subjects: Vec<String>,
    /// Affected subjects forgotten since: counted, their ids no longer retrievable.
    pub forgotten: u64,
}

/// What is stored: the incident and the tokens of its subjects, signed together.
#[derive(Serialize, Deserialize)]
struct Stored {
    incident: Incident,
    tokens: Vec<String>,
}

/// The stored form: the signed body and its signature.
#[derive(Serialize, Deserialize)]
struct Envelope {
    body: String,
    signature: DocumentSignature,
}

const DOCUMENT_KIND: &str = "incident";
const INDEX: &str = "incidents";

/// One incident write at a time (the index is read, extended and written back).
pub type IncidentWrites = Mutex<()>;

/// The stored incidents, newest first, and the ids of those that could not be read.
#[derive(Clone, Debug, Default)]
pub struct IncidentList {
    pub incidents: Vec<Incident>,
    /// Incidents listed in the index whose stored form is missing or does not verify (the
    /// data store was edited).
    pub unreadable: Vec<String>,
}

impl Engine {
    /// Computes, signs and stores an incident's impact; one ledger entry.
    pub fn create_incident(&self, caller: &Caller, request: IncidentRequest) -> Result<Incident> {
        self.authorize(caller, Action::Incidents)?;
        let now = now_millis();
        let window = self.check_incident(&request, now)?;
        // Reads answered a moment ago must be on the ledger before it is asked.
        self.flush_access_log();
        let vault = &self.inner.vault;
        let verification = self.verified_ledger()?;
        let ledger = LedgerCheck {
            ok: verification.ok,
            entries: u64::try_from(verification.entries).unwrap_or(0),
            problem: verification.problem.clone(),
        };
        let (tally, intelligible, in_clear) = match request.kind {
            IncidentKind::DataCopy => {
                let exposed = request.kek_exposed == Some(true);
                let in_clear = if exposed {
                    Vec::new()
                } else {
                    report::in_clear()
                };
                (impact::held_at(vault, window.since)?, exposed, in_clear)
            }
            IncidentKind::KeyCompromised => (
                match request.key_id.as_deref() {
                    Some(key) => impact::key_reads(vault, key, window.since, window.until)?,
                    None => impact::reads(vault, window.since, window.until)?,
                },
                true,
                Vec::new(),
            ),
            IncidentKind::Window => (
                impact::reads(vault, window.since, window.until)?,
                true,
                Vec::new(),
            ),
        };
        let aware_at = request.aware_at.unwrap_or(now);
        let mut incident = Incident {
            id: format!("inc_{}", to_hex(&random_bytes::<8>()?[..])),
            kind: request.kind,
            key_id: request.key_id.clone(),
            since: Some(window.since),
            until: window.until,
            aware_at,
            notify_by: aware_at + NOTIFY_WITHIN_MILLIS,
            created_at: now,
            created_by: caller.key_id.clone(),
            description: request.description.clone(),
            kek_exposed: request.kek_exposed,
            impact: tally.impact(intelligible, in_clear),
            containment: Containment::default(),
            report: ReportSections::default(),
            ledger,
            signature: None,
        };
        incident.report = report::sections(&self.inner.policy, &incident, window.role.as_ref());
        let tokens = tally.tokens();
        let _writing = lock(&self.inner.incident_writes);
        self.store_incident(&mut incident, tokens)?;
        let mut index = self.incident_ids()?;
        index.push(incident.id.clone());
        vault.put_document(INDEX, &index.join("\n"))?;
        vault.record_access(vec![
            LedgerDraft::new(now, &caller.key_id, "incident.created").detail(format!(
                "incident={} kind={} subjects={} records={}",
                incident.id,
                incident.kind.as_str(),
                incident.impact.subjects,
                incident.impact.records
            )),
        ])?;
        Ok(incident)
    }

    /// Every API key an incident may name: id, role, and whether it is revoked (no secrets).
    pub fn incident_keys(&self, caller: &Caller) -> Result<Vec<(String, String, bool)>> {
        self.authorize(caller, Action::Incidents)?;
        Ok(crate::engine::read(&self.inner.api_keys)
            .iter()
            .rev()
            .map(|key| (key.id.clone(), key.role.clone(), key.revoked_at.is_some()))
            .collect())
    }

    /// Every incident, newest first.
    pub fn incidents(&self, caller: &Caller) -> Result<IncidentList> {
        self.authorize(caller, Action::Incidents)?;
        let mut list = IncidentList::default();
        for id in self.incident_ids()?.iter().rev() {
            match self.load_incident(id) {
                Ok(stored) => list.incidents.push(stored.incident),
                // One altered incident is named, and hides none of the others.
                Err(Error::Internal { detail }) => {
                    tracing::error!(incident = %id, detail = %detail, "a stored incident does not verify");
                    list.unreadable.push(id.clone());
                }
                Err(Error::NotFound { .. }) => list.unreadable.push(id.clone()),
                Err(error) => return Err(error),
            }
        }
        Ok(list)
    }

    /// One incident.
    pub fn incident(&self, caller: &Caller, id: &str) -> Result<Incident> {
        self.authorize(caller, Action::Incidents)?;
        Ok(self.load_incident(id)?.incident)
    }

    /// The Art. 33(3) draft report, in Markdown.
    pub fn incident_report(&self, caller: &Caller, id: &str) -> Result<String> {
        self.authorize(caller, Action::Incidents)?;
        let incident = self.load_incident(id)?.incident;
        Ok(report::markdown(&self.inner.policy, &incident))
    }

    /// The affected customers' ids, for Art. 34 notices; itself a ledger entry.
    pub fn incident_subjects(&self, caller: &Caller, id: &str) -> Result<IncidentSubjects> {
        self.authorize(caller, Action::Incidents)?;
        let stored = self.load_incident(id)?;
        let vault = &self.inner.vault;
        let wanted: std::collections::BTreeSet<&str> =
            stored.tokens.iter().map(String::as_str).collect();
        let mut subjects = Vec::new();
        for (subject, customer) in vault.subjects()? {
            if wanted.contains(vault.subject_token(subject).as_str()) {
                subjects.push(customer);
            }
        }
        subjects.sort();
        let forgotten = (wanted.len() - subjects.len().min(wanted.len())) as u64;
        vault.record_access(vec![
            LedgerDraft::new(now_millis(), &caller.key_id, "incident.subjects_read")
                .purpose("breach_notification")
                .detail(format!(
                    "incident={id} subjects={} forgotten={forgotten}",
                    subjects.len()
                )),
        ])?;
        Ok(IncidentSubjects {
            subjects,
            forgotten,
        })
    }

    /// Takes containment actions; each is a ledger entry with its time, and one already
    /// taken keeps its first time.
    pub fn contain_incident(
        &self,
        caller: &Caller,
        id: &str,
        request: ContainRequest,
    ) -> Result<Incident> {
        self.authorize(caller, Action::Incidents)?;
        if !request.revoke_key && !request.rotate_kek {
            return Err(Error::bad_input(
                "",
                "name at least one containment action (revoke_key, rotate_kek)",
            ));
        }
        let _writing = lock(&self.inner.incident_writes);
        let Stored {
            mut incident,
            tokens,
        } = self.load_incident(id)?;
        let vault = &self.inner.vault;
        let now = now_millis();
        if request.revoke_key && incident.key_id.is_none() {
            // The request is well formed; this incident has no key to revoke.
            return Err(Error::Conflict {
                detail: "only a key_compromised incident names a key to revoke".to_owned(),
            });
        }
        // The engine cannot choose where a new KEK is kept: `discreet kek rotate` writes it,
        // and its `kek.rotated` entry after the incident began is the containment.
        let mut kek_missing = false;
        if request.rotate_kek && incident.containment.kek_rotated_at.is_none() {
            match self.kek_rotated_after(incident.since.unwrap_or(incident.created_at))? {
                Some(at) => incident.containment.kek_rotated_at = Some(at),
                None => kek_missing = true,
            }
        }
        const NO_ROTATION: &str = "no KEK rotation since the incident began: run `discreet kek rotate`, then contain again";
        if kek_missing && !request.revoke_key {
            return Err(Error::Conflict {
                detail: NO_ROTATION.to_owned(),
            });
        }
        if request.revoke_key && incident.containment.key_revoked_at.is_none() {
            let key_id = incident.key_id.clone().unwrap_or_default();
            let already = self
                .inner
                .vault
                .api_keys()?
                .into_iter()
                .find(|key| key.id == key_id)
                .and_then(|key| key.revoked_at);
            let at = match already {
                Some(at) => at,
                None => {
                    vault.revoke_api_key(&key_id, &caller.key_id)?;
                    *write(&self.inner.api_keys) = vault.api_keys()?;
                    now
                }
            };
            incident.containment.key_revoked_at = Some(at);
        }
        incident.report = report::sections(
            &self.inner.policy,
            &incident,
            incident
                .key_id
                .as_deref()
                .and_then(|key| self.role_of_key(key))
                .as_ref(),
        );
        self.store_incident(&mut incident, tokens)?;
        vault.record_access(vec![
            LedgerDraft::new(now, &caller.key_id, "incident.contained").detail(format!(
                "incident={id} revoke_key={} rotate_kek={}",
                request.revoke_key, request.rotate_kek
            )),
        ])?;
        if kek_missing {
            // The key is revoked all the same: a missing rotation never leaves it live.
            return Err(Error::Conflict {
                detail: format!("the key is revoked; {NO_ROTATION}"),
            });
        }
        Ok(incident)
    }

    fn role_of_key(&self, key_id: &str) -> Option<discreet_policy::Role> {
        let keys = crate::engine::read(&self.inner.api_keys);
        let key = keys.iter().find(|key| key.id == key_id)?;
        self.inner.policy.role(&key.role).cloned()
    }

    /// The first `kek.rotated` entry at or after `since`, paging back through the ledger
    /// (newest first) until the entries are older than `since`.
    fn kek_rotated_after(&self, since: i64) -> Result<Option<i64>> {
        const PAGE: usize = 50_000;
        let mut first = None;
        let mut before_seq = None;
        loop {
            let page = self.inner.vault.ledger(&discreet_vault::LedgerFilter {
                since: Some(since),
                before_seq,
                limit: PAGE,
                ..Default::default()
            })?;
            for record in &page {
                if record.entry.action == "kek.rotated" {
                    first = Some(first.map_or(record.entry.at, |at: i64| at.min(record.entry.at)));
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => before_seq = Some(last.seq),
                _ => return Ok(first),
            }
        }
    }

    fn check_incident(&self, request: &IncidentRequest, now: i64) -> Result<Window> {
        // Up to and including the present millisecond (`until` is exclusive).
        let until = request.until.unwrap_or(now + 1);
        for (field, value) in [("until", Some(until)), ("aware_at", request.aware_at)] {
            if value.is_some_and(|at| at > now + SKEW_MILLIS) {
                return Err(Error::bad_input(field, "must not be in the future"));
            }
        }
        if let Some(description) = &request.description
            && description.chars().count() > MAX_DESCRIPTION_CHARS
        {
            return Err(Error::bad_input(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if request.kek_exposed.is_some() && request.kind != IncidentKind::DataCopy {
            return Err(Error::bad_input(
                "kek_exposed",
                "applies only to a data_copy incident",
            ));
        }
        let mut role = None;
        let since = match request.kind {
            IncidentKind::KeyCompromised => {
                let Some(key_id) = &request.key_id else {
                    return Err(Error::bad_input(
                        "key_id",
                        "is required for a key_compromised incident",
                    ));
                };
                let keys = self.inner.vault.api_keys()?;
                let Some(key) = keys.iter().find(|key| &key.id == key_id) else {
                    return Err(Error::NotFound {
                        what: Missing::ApiKey,
                    });
                };
                role = self.inner.policy.role(&key.role).cloned();
                request.since.unwrap_or(key.created_at)
            }
            IncidentKind::Window | IncidentKind::DataCopy => {
                if request.key_id.is_some() {
                    return Err(Error::bad_input(
                        "key_id",
                        "applies only to a key_compromised incident",
                    ));
                }
                request.since.ok_or_else(|| {
                    Error::bad_input("since", "is required for this kind of incident")
                })?
            }
        };
        if request.kind == IncidentKind::DataCopy {
            if since > now + SKEW_MILLIS {
                return Err(Error::bad_input("since", "must not be in the future"));
            }
            return Ok(Window {
                since,
                until: since,
                role,
            });
        }
        if since >= until {
            return Err(Error::bad_input("since", "must be before until"));
        }
        Ok(Window { since, until, role })
    }

    fn incident_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .inner
            .vault
            .document(INDEX)?
            .map(|index| index.lines().map(str::to_owned).collect())
            .unwrap_or_default())
    }

    fn store_incident(&self, incident: &mut Incident, tokens: Vec<String>) -> Result<()> {
        incident.signature = None;
        let stored = Stored {
            incident: incident.clone(),
            tokens,
        };
        let body = serde_json::to_string(&stored)
            .map_err(|error| Error::internal(format!("incident not serialisable: {error}")))?;
        let signature = self
            .inner
            .vault
            .sign_document(DOCUMENT_KIND, body.as_bytes());
        let envelope = serde_json::to_string(&Envelope {
            body,
            signature: signature.clone(),
        })
        .map_err(|error| Error::internal(format!("incident not serialisable: {error}")))?;
        self.inner
            .vault
            .put_document(&format!("incident:{}", incident.id), &envelope)?;
        incident.signature = Some(signature);
        Ok(())
    }

    fn load_incident(&self, id: &str) -> Result<Stored> {
        let not_found = || Error::NotFound {
            what: Missing::Incident,
        };
        if !id.starts_with("inc_")
            || id.len() > 40
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(not_found());
        }
        let envelope = self
            .inner
            .vault
            .document(&format!("incident:{id}"))?
            .ok_or_else(not_found)?;
        let altered =
            || Error::internal("a stored incident does not verify: the data store was edited");
        let envelope: Envelope = serde_json::from_str(&envelope).map_err(|_| altered())?;
        if !self.inner.vault.verify_document(
            DOCUMENT_KIND,
            envelope.body.as_bytes(),
            &envelope.signature,
        ) {
            return Err(altered());
        }
        let mut stored: Stored = serde_json::from_str(&envelope.body).map_err(|_| altered())?;
        if stored.incident.id != id {
            return Err(altered());
        }
        stored.incident.signature = Some(envelope.signature);
        Ok(stored)
    }
}

/// The checked window of an incident, and the role of its key.
struct Window {
    since: i64,
    until: i64,
    role: Option<discreet_policy::Role>,
}
