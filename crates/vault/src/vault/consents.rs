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
        self.record_consent_of(subject, actor, consent)
    }

    /// Appends a consent decision to the history of a subject already resolved (no lookup);
    /// a subject being forgotten or gone is refused as the storage write refuses it.
    pub fn record_consent_of(
        &self,
        subject: SubjectId,
        actor: &str,
        consent: &NewConsent,
    ) -> Result<ConsentRow> {
        let key = match self.data_key(subject) {
            Ok(key) => key,
            // A forgotten subject has no key left: say why, as the write would.
            Err(error) => return Err(self.write_refusal(subject)?.unwrap_or(error)),
        };
        let mut row = ConsentRow {
            subject,
            purpose: consent.purpose.clone(),
            granted: consent.granted,
            at: consent.at,
            source: consent.source.clone(),
            policy_version: consent.policy_version.clone(),
            tag: Vec::new(),
        };
        tag_consent(&key, &mut row)?;
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

    /// A subject's consent history by internal id, oldest first, every tag verified; the
    /// read is written to the ledger.
    pub fn consents_of(&self, subject: SubjectId, access: Access<'_>) -> Result<Vec<ConsentRow>> {
        let consents = self.consent_history(subject)?;
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "consents.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .detail(format!("consents={}", consents.len())),
        ])?;
        Ok(consents)
    }

    /// A subject's consent history by internal id, every tag verified, unlogged: for the
    /// engine's own bookkeeping, such as rebuilding consent state at start-up (the caller
    /// writes one ledger entry for the whole rebuild).
    pub fn consent_history(&self, subject: SubjectId) -> Result<Vec<ConsentRow>> {
        let consents = self.storage.consents_of(subject)?;
        if consents.is_empty() {
            return Ok(consents);
        }
        verify_consents(&*self.data_key(subject)?, &consents)?;
        Ok(consents)
    }
}
