//! Consents: appending a decision to a subject's history (tagged under its key, so it
//! cannot be altered in the data file) and reading the history, logged or for the engine's
//! own bookkeeping.
//!
//! The history is append-only; a row is never returned without its tag verified.

use crate::error::Result;
use crate::ledger::LedgerDraft;
use crate::storage::*;

use super::sealing::{tag_consent, verify_consents};
use super::{Access, Vault, now_millis};

/// A consent decision to record.
#[derive(Clone, Debug)]
pub struct NewConsent {
    pub purpose: String,
    pub granted: bool,
    pub at: i64,
    pub source: String,
    pub policy_version: String,
}

impl Vault {
    /// Appends a consent decision to the subject's history (creating the subject if new).
    pub fn record_consent(
        &self,
        external_id: &str,
        actor: &str,
        consent: &NewConsent,
    ) -> Result<ConsentRow> {
        let subject = self.resolve_subject(external_id)?;
        let mut row = ConsentRow {
            subject,
            purpose: consent.purpose.clone(),
            granted: consent.granted,
            at: consent.at,
            source: consent.source.clone(),
            policy_version: consent.policy_version.clone(),
            tag: Vec::new(),
        };
        tag_consent(&*self.data_key(subject)?, &mut row)?;
        let entry = LedgerDraft::new(
            now_millis(),
            actor,
            if consent.granted {
                "consent.granted"
            } else {
                "consent.withdrawn"
            },
        )
        .subject(&self.subject_token(subject))
        .purpose(&consent.purpose)
        .detail(format!("policy_version={}", consent.policy_version));
        let head = self.storage.write(WriteBatch {
            consents: vec![row.clone()],
            ledger: vec![entry],
            ..WriteBatch::default()
        })?;
        self.after_write(head);
        Ok(row)
    }

    /// A subject's consent history, oldest first; the read is written to the ledger.
    pub fn consents_of(&self, external_id: &str, access: Access<'_>) -> Result<Vec<ConsentRow>> {
        let subject = self.active_subject(external_id)?;
        let consents = self.consents_of_subject(subject)?;
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "consents.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .detail(format!("consents={}", consents.len())),
        ])?;
        Ok(consents)
    }

    /// A subject's consent history by internal id, for rebuilding consent state at start-up
    /// (the caller writes one ledger entry for the whole rebuild).
    pub fn consents_of_subject(&self, subject: SubjectId) -> Result<Vec<ConsentRow>> {
        let consents = self.storage.consents_of(subject)?;
        if consents.is_empty() {
            return Ok(consents);
        }
        verify_consents(&*self.data_key(subject)?, &consents)?;
        Ok(consents)
    }
}
