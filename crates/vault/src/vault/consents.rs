//! Consents: appending a decision to a subject's history (tagged under its key, so it
//! cannot be altered in the data file) and reading the history, logged or for the engine's
//! own bookkeeping.
//!
//! The history is append-only and chained (`crate::integrity`); a row is never returned
//! without its tag and the subject's chain verified. A history whose chain does not verify
//! (a decision inserted, altered or deleted in the data file) fails closed: for the
//! engine's bookkeeping it reads as no decision at all (so never as consent), a grant is
//! refused, and the first time this process sees it, it is put on the ledger.

use crate::error::{Error, Result};
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
        // A withdrawal is always taken; a grant on a history that does not verify is not.
        if consent.granted
            && let Err(problem) = self.checked_history(subject)?
        {
            self.consent_alarm(subject, problem);
            return Err(self.broken_history(subject, problem));
        }
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

    /// A subject's consent history by internal id, in the order the decisions were
    /// recorded (never by their time), every tag and the chain verified; the read is
    /// written to the ledger. A history that does not verify is `Error::Integrity`.
    pub fn consents_of(&self, subject: SubjectId, access: Access<'_>) -> Result<Vec<ConsentRow>> {
        let consents = self.verified_history(subject)?;
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "consents.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .detail(format!("consents={}", consents.len())),
        ])?;
        Ok(consents)
    }

    /// A subject's consent history by internal id, in recorded order, every tag and the
    /// chain verified, unlogged: for the engine's own bookkeeping, such as rebuilding
    /// consent state at start-up (the caller writes one ledger entry for the whole
    /// rebuild). A history that does not verify fails closed: it reads as empty — no
    /// decision, so no consent — and is put on the ledger once.
    pub fn consent_history(&self, subject: SubjectId) -> Result<Vec<ConsentRow>> {
        match self.checked_history(subject)? {
            Ok(consents) => Ok(consents),
            Err(problem) => {
                self.consent_alarm(subject, problem);
                Ok(Vec::new())
            }
        }
    }

    /// The subject's history, unlogged (the caller logs the read), or `Error::Integrity`
    /// (and the alarm) when it does not verify.
    pub(super) fn verified_history(&self, subject: SubjectId) -> Result<Vec<ConsentRow>> {
        match self.checked_history(subject)? {
            Ok(consents) => Ok(consents),
            Err(problem) => {
                self.consent_alarm(subject, problem);
                Err(self.broken_history(subject, problem))
            }
        }
    }

    /// The subject's history if its chain and every tag verify, else what is wrong.
    fn checked_history(
        &self,
        subject: SubjectId,
    ) -> Result<std::result::Result<Vec<ConsentRow>, &'static str>> {
        let stored = self.storage.consents_of(subject)?;
        if let Err(problem) =
            self.integrity
                .check_consent_chain(subject, &stored.rows, stored.head.as_ref())
        {
            return Ok(Err(problem));
        }
        let consents: Vec<ConsentRow> = stored.rows.into_iter().map(|stored| stored.row).collect();
        if consents.is_empty() {
            return Ok(Ok(consents));
        }
        match verify_consents(&*self.data_key(subject)?, &consents) {
            Ok(()) => Ok(Ok(consents)),
            Err(Error::Tampered { .. }) => Ok(Err("a decision's tag does not open")),
            Err(error) => Err(error),
        }
    }

    fn broken_history(&self, subject: SubjectId, problem: &str) -> Error {
        Error::Integrity {
            detail: format!(
                "the consent history of subject {} does not verify: {problem}",
                self.subject_token(subject)
            ),
        }
    }

    /// Puts a broken consent history on the ledger, once per subject and process (best
    /// effort: the refusal it accompanies stands whatever happens here).
    fn consent_alarm(&self, subject: SubjectId, problem: &str) {
        let first = self
            .consent_alarms
            .lock()
            .map(|mut alarms| alarms.insert(subject))
            .unwrap_or(false);
        if first {
            let _ = self.record_access(vec![
                LedgerDraft::new(now_millis(), "system:integrity", "integrity.alarm")
                    .subject(&self.subject_token(subject))
                    .outcome("failed")
                    .detail(format!(
                        "consent history does not verify ({problem}); treated as not consenting"
                    )),
            ]);
        }
    }
}
