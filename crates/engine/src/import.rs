//! Bringing a shop's own data, and taking it to another store: the checks a file's records
//! get before anything is stored (the very checks of the API's calls, never a copy),
//! consent decisions recorded at their own historical time (`import_consent`), and every
//! active subject's records in the import's own shapes (`export_subjects`,
//! `export_records`, `declared_items`), each subject read in one ledger entry.
//!
//! An imported decision is checked like `set_consent`, is never dated in the future, and
//! is never recorded twice; one older than the subject's latest recorded decision for its
//! purpose is not recorded at all, so an old history can never revive a withdrawn consent
//! or undo a newer choice.

use discreet_policy::Action;
use discreet_vault::{Access, NewConsent, now_millis};

use crate::access::Caller;
use crate::consent::{CONSENT_CATEGORY, latest_decision};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::input::{AttributeInput, EventInput, check_subject, is_short_text};
use crate::interactions::EventPayload;
use crate::items::ItemInput;

/// The purpose the ledger names for reads that move a shop's records to another store.
pub const MIGRATION_PURPOSE: &str = "store_migration";
/// Longest `policy_version` an imported decision may carry, in characters.
pub const MAX_POLICY_VERSION_CHARS: usize = 128;

/// A consent decision as a shop's history holds it: given at its own time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    pub purpose: String,
    pub granted: bool,
    /// Where the decision was collected.
    pub source: String,
    /// When it was given, unix milliseconds (never in the future).
    pub at: i64,
    /// The policy version it was given under; the policy in force when absent.
    pub policy_version: Option<String>,
}

/// What `import_consent` did with a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentImported {
    /// Recorded (and the models follow it).
    Recorded,
    /// The same decision (purpose, decision, source and time) was recorded before.
    AlreadyRecorded,
    /// The subject's latest recorded decision for the purpose is newer: left out.
    Superseded,
}

/// Everything stored about one subject, in the shapes an import reads.
#[derive(Clone, Debug, PartialEq)]
pub struct SubjectRecords {
    /// The shop's customer id.
    pub subject: String,
    /// In the order they were stored.
    pub events: Vec<EventInput>,
    pub attributes: Vec<AttributeInput>,
    /// In the order they were recorded.
    pub consents: Vec<ConsentRecord>,
}

impl Engine {
    /// Checks attribute values as `put_attributes` does (declared names, lengths), storing
    /// nothing.
    pub fn check_attributes(&self, subject: &str, attributes: &[AttributeInput]) -> Result<()> {
        check_subject("subject", subject)?;
        self.attribute_rows(attributes).map(|_| ())
    }

    /// Checks a historical consent decision as `import_consent` does, storing nothing: the
    /// checks of `set_consent`, and a time between 1970-01-01 and now.
    pub fn check_consent_record(&self, subject: &str, record: &ConsentRecord) -> Result<()> {
        check_subject("subject", subject)?;
        self.check_decision(&record.purpose, &record.source)?;
        if record.at < 0 || record.at > now_millis() {
            return Err(Error::bad_input(
                "at",
                "must lie between 1970-01-01 and now: a decision is recorded only once it was made",
            ));
        }
        if let Some(version) = &record.policy_version
            && !is_short_text(version, MAX_POLICY_VERSION_CHARS)
        {
            return Err(Error::bad_input(
                "policy_version",
                format!("must be 1 to {MAX_POLICY_VERSION_CHARS} characters of text"),
            ));
        }
        Ok(())
    }

    /// Records a consent decision given at its own time (`record.at`), checked as
    /// `set_consent` checks one; for the models' purpose the models follow it as they follow
    /// `set_consent`. The same decision is recorded once, and one older than the subject's
    /// latest decision for its purpose is not recorded (`ConsentImported::Superseded`).
    pub fn import_consent(
        &self,
        caller: &Caller,
        subject: &str,
        record: &ConsentRecord,
    ) -> Result<ConsentImported> {
        let permit = self.authorize_for(caller, Action::ConsentsWrite, subject)?;
        if caller.subject.is_some() {
            // A customer decides now, in the privacy center; only the shop imports history.
            return Err(Error::Forbidden {
                detail: "a customer's own session may not import past decisions".to_owned(),
            });
        }
        self.check_consent_record(subject, record)?;
        permit.write(CONSENT_CATEGORY, None)?;
        self.check_ready()?;
        let _gate = self.exclusive();
        let vault = &self.inner.vault;
        if let Some(id) = vault.subject_id(subject)? {
            let history = vault.consent_history(id)?;
            if history.iter().any(|row| {
                row.purpose == record.purpose
                    && row.granted == record.granted
                    && row.source == record.source
                    && row.at == record.at
            }) {
                return Ok(ConsentImported::AlreadyRecorded);
            }
            if latest_decision(&history, &record.purpose).is_some_and(|row| row.at > record.at) {
                return Ok(ConsentImported::Superseded);
            }
        }
        let row = vault.record_consent(
            subject,
            &caller.key_id,
            &NewConsent {
                purpose: record.purpose.clone(),
                granted: record.granted,
                at: record.at,
                source: record.source.clone(),
                policy_version: record
                    .policy_version
                    .clone()
                    .unwrap_or_else(|| self.inner.policy.version().to_owned()),
            },
        )?;
        self.follow_consent(&row)?;
        Ok(ConsentImported::Recorded)
    }

    /// The customer ids of every active subject, for moving the shop to another store: an
    /// operator's call (the `export` action and the migration purpose; never a customer's
    /// own session). Unlogged: each subject's records are logged when read.
    pub fn export_subjects(&self, caller: &Caller) -> Result<Vec<String>> {
        let permit = self.authorize(caller, Action::Export)?;
        if caller.subject.is_some() {
            return Err(Error::Forbidden {
                detail: "a customer's own session may not list other customers".to_owned(),
            });
        }
        permit.purpose(MIGRATION_PURPOSE)?;
        self.check_ready()?;
        Ok(self
            .inner
            .vault
            .subjects()?
            .into_iter()
            .map(|(_, subject)| subject)
            .collect())
    }

    /// Everything stored about `subject` in the shapes an import reads, in one read that is
    /// one ledger entry under the migration purpose.
    pub fn export_records(&self, caller: &Caller, subject: &str) -> Result<SubjectRecords> {
        let permit = self.authorize_for(caller, Action::Export, subject)?;
        permit.purpose(MIGRATION_PURPOSE)?;
        check_subject("subject", subject)?;
        self.check_ready()?;
        let vault = &self.inner.vault;
        let id = vault.active_subject_id(subject)?;
        let stored = vault.records_of(
            id,
            Access {
                actor: &caller.key_id,
                purpose: MIGRATION_PURPOSE,
            },
        )?;
        let events = stored
            .events
            .iter()
            .map(|event| {
                let payload = EventPayload::from_bytes(&event.payload)?;
                Ok(EventInput {
                    subject: subject.to_owned(),
                    event_type: payload.event_type,
                    item: payload.item,
                    at: event.at,
                    quantity: payload.quantity,
                    query: payload.query,
                    value: payload.value,
                    context: payload.context,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let attributes = stored
            .attributes
            .into_iter()
            .map(|attribute| AttributeInput {
                name: attribute.name,
                value: String::from_utf8_lossy(&attribute.value).into_owned(),
            })
            .collect();
        let consents = stored
            .consents
            .into_iter()
            .map(|row| ConsentRecord {
                purpose: row.purpose,
                granted: row.granted,
                source: row.source,
                at: row.at,
                policy_version: Some(row.policy_version),
            })
            .collect();
        Ok(SubjectRecords {
            subject: subject.to_owned(),
            events,
            attributes,
            consents,
        })
    }

    /// Every declared item, by item id (items are not personal data: no ledger entry).
    pub fn declared_items(&self, caller: &Caller) -> Result<Vec<ItemInput>> {
        self.authorize(caller, Action::Catalogue)?;
        Ok(self
            .inner
            .vault
            .items()?
            .into_iter()
            .map(|row| ItemInput {
                item: row.item,
                title: row.title,
                categories: row.categories,
                price: row.price,
                available: row.available,
            })
            .collect())
    }
}
