//! The ledger side of the engine: buffered read entries (recommendations are on the ledger
//! within one flush interval), security events, ledger queries and verification, and the
//! policy documents an auditor reads.

use discreet_policy::{Action, Policy, RecordsOfProcessing};
use discreet_vault::{LedgerDraft, LedgerFilter, LedgerRecord, LedgerVerification, now_millis};

use crate::access::Caller;
use crate::engine::{Engine, lock};
use crate::error::{Error, Result};
use crate::input::check_subject;

/// Most ledger entries one audit query lists.
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

/// Which ledger entries to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// A customer id or a subject token.
    pub subject: Option<String>,
    /// An API key id (or `system`, `cli`, ...).
    pub actor: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    /// Newest first, at most this many (1 to `MAX_AUDIT_ENTRIES`).
    pub limit: usize,
}

impl Engine {
    /// Buffers a read entry; the background flush writes it within the flush interval.
    pub(crate) fn log_access(&self, entry: LedgerDraft) {
        lock(&self.inner.access_log).push(entry);
    }

    /// Writes buffered read entries to the ledger.
    pub fn flush_access_log(&self) {
        let entries = std::mem::take(&mut *lock(&self.inner.access_log));
        if entries.is_empty() {
            return;
        }
        if let Err(error) = self.inner.vault.record_access(entries.clone()) {
            tracing::error!(%error, entries = entries.len(), "writing read entries to the ledger failed; kept for the next try");
            let mut log = lock(&self.inner.access_log);
            let newer = std::mem::replace(&mut *log, entries);
            log.extend(newer);
        }
    }

    /// Writes an authentication refusal (e.g. a blocked address) to the ledger.
    pub fn record_security_event(&self, action: &str, detail: String) {
        self.log_access(
            LedgerDraft::new(now_millis(), "system", action)
                .outcome("denied")
                .detail(detail),
        );
    }

    /// Ledger entries, newest first. `query.subject` may be a customer id or a token.
    pub fn audit(&self, caller: &Caller, query: &AuditQuery) -> Result<Vec<LedgerRecord>> {
        self.authorize(caller, Action::AuditRead)?;
        if !(1..=MAX_AUDIT_ENTRIES).contains(&query.limit) {
            return Err(Error::bad_input("limit", "must be from 1 to 10000"));
        }
        self.flush_access_log();
        let vault = &self.inner.vault;
        let subject_token = match &query.subject {
            None => None,
            Some(subject) => {
                check_subject("subject", subject)?;
                Some(match vault.subject_id(subject)? {
                    Some(id) => vault.subject_token(id),
                    None => subject.clone(),
                })
            }
        };
        Ok(vault.ledger(&LedgerFilter {
            subject_token,
            actor: query.actor.clone(),
            since: query.since,
            until: query.until,
            limit: query.limit,
        })?)
    }

    /// Re-walks the ledger chain.
    pub fn verify_ledger(&self, caller: &Caller) -> Result<LedgerVerification> {
        self.authorize(caller, Action::AuditRead)?;
        self.flush_access_log();
        Ok(self.inner.vault.verify_ledger()?)
    }

    /// The policy in force.
    pub fn policy_document(&self, caller: &Caller) -> Result<&Policy> {
        self.authorize(caller, Action::PolicyRead)?;
        Ok(&self.inner.policy)
    }

    /// The records of processing (GDPR Art. 30).
    pub fn records(&self, caller: &Caller) -> Result<RecordsOfProcessing> {
        self.authorize(caller, Action::RecordsRead)?;
        Ok(self.inner.policy.records_of_processing())
    }
}
