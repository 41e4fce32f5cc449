//! The ledger side of the engine: buffered read entries (recommendations are on the ledger
//! within one flush interval), security events, ledger queries and verification, and the
//! policy documents an auditor reads.
//!
//! The read-entry buffer is bounded and never drops an entry: past
//! `MAX_PENDING_READ_ENTRIES` (waiting plus being written) a read writes the buffer to the
//! ledger itself before it answers, and when the ledger cannot be written the read is
//! refused (`Error::LedgerUnavailable`) rather than answered off the ledger.

use std::sync::Mutex;

use discreet_policy::{Action, Policy, RecordsOfProcessing};
use discreet_vault::{LedgerDraft, LedgerFilter, LedgerRecord, LedgerVerification, now_millis};

use crate::access::Caller;
use crate::engine::{Engine, lock};
use crate::error::{Error, Result};
use crate::input::check_subject;

/// Most ledger entries one audit query lists.
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

/// Read entries held at most, waiting for the ledger or being written to it (about 80
/// flush intervals at 1,000 personal reads a second).
pub const MAX_PENDING_READ_ENTRIES: usize = 16_384;

/// Read entries waiting for the ledger, and how many a flush is writing now.
#[derive(Debug, Default)]
pub(crate) struct ReadEntries {
    waiting: Vec<LedgerDraft>,
    writing: usize,
}

impl ReadEntries {
    /// Entries held: waiting, or being written.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len() + self.writing
    }
}

/// How a batch of read entries reaches the ledger.
type LedgerWrite<'a> = &'a dyn Fn(Vec<LedgerDraft>) -> discreet_vault::Result<()>;

/// Buffers `entry`; when `max` are held, writes them first, and refuses the entry when the
/// ledger cannot take them.
fn buffer_read_entry(
    buffer: &Mutex<ReadEntries>,
    entry: LedgerDraft,
    max: usize,
    write: LedgerWrite<'_>,
) -> Result<()> {
    {
        let mut entries = lock(buffer);
        if entries.len() < max {
            entries.waiting.push(entry);
            return Ok(());
        }
    }
    if let Err(error) = flush_read_entries(buffer, write) {
        tracing::error!(%error, "the read-entry buffer is full and the ledger cannot be written; refusing the read");
        return Err(Error::LedgerUnavailable);
    }
    let mut entries = lock(buffer);
    if entries.len() < max {
        entries.waiting.push(entry);
        Ok(())
    } else {
        Err(Error::LedgerUnavailable)
    }
}

/// Writes the waiting entries; on failure they wait again, ahead of newer ones.
fn flush_read_entries(
    buffer: &Mutex<ReadEntries>,
    write: LedgerWrite<'_>,
) -> discreet_vault::Result<()> {
    let batch = {
        let mut entries = lock(buffer);
        let batch = std::mem::take(&mut entries.waiting);
        entries.writing += batch.len();
        batch
    };
    if batch.is_empty() {
        return Ok(());
    }
    let n_entries = batch.len();
    let outcome = write(batch.clone());
    let mut entries = lock(buffer);
    entries.writing -= n_entries;
    if outcome.is_err() {
        let newer = std::mem::replace(&mut entries.waiting, batch);
        entries.waiting.extend(newer);
    }
    outcome
}

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
    /// A full buffer is written first; `LedgerUnavailable` when the ledger cannot take it
    /// (the read must then not be answered).
    pub(crate) fn log_access(&self, entry: LedgerDraft) -> Result<()> {
        buffer_read_entry(
            &self.inner.access_log,
            entry,
            MAX_PENDING_READ_ENTRIES,
            &|entries| self.inner.vault.record_access(entries),
        )
    }

    /// Writes buffered read entries to the ledger (a failure keeps them for the next try).
    pub fn flush_access_log(&self) {
        if let Err(error) = flush_read_entries(&self.inner.access_log, &|entries| {
            self.inner.vault.record_access(entries)
        }) {
            tracing::error!(%error, "writing read entries to the ledger failed; kept for the next try");
        }
    }

    /// Writes an authentication refusal (e.g. a blocked address) to the ledger.
    pub fn record_security_event(&self, action: &str, detail: String) -> Result<()> {
        self.log_access(
            LedgerDraft::new(now_millis(), "system", action)
                .outcome("denied")
                .detail(detail),
        )
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
            before_seq: None,
            limit: query.limit,
        })?)
    }

    /// Re-walks the ledger chain.
    pub fn verify_ledger(&self, caller: &Caller) -> Result<LedgerVerification> {
        self.authorize(caller, Action::AuditRead)?;
        self.flush_access_log();
        self.verified_ledger()
    }

    /// Re-walks the ledger chain and remembers when, and what it found.
    pub(crate) fn verified_ledger(&self) -> Result<LedgerVerification> {
        let verification = self.inner.vault.verify_ledger()?;
        *lock(&self.inner.ledger_checked) = Some(crate::dashboard::LedgerChecked {
            at: now_millis(),
            ok: verification.ok,
            entries: u64::try_from(verification.entries).unwrap_or(0),
        });
        Ok(verification)
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

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    fn entry(number: usize) -> LedgerDraft {
        LedgerDraft::new(0, "key_test", "recommendations.read").detail(format!("n={number}"))
    }

    /// Guards the bound on buffered read entries: while the ledger cannot be written, the
    /// buffer never holds more than its bound and refuses further reads (the old buffer grew
    /// without end); once the ledger works again, every entry reaches it, in order.
    #[test]
    fn read_entries_are_bounded_and_never_lost() {
        let buffer = Mutex::new(ReadEntries::default());
        let ledger_works = Cell::new(false);
        let written = RefCell::new(Vec::new());
        let write = |entries: Vec<LedgerDraft>| {
            if ledger_works.get() {
                written.borrow_mut().extend(entries);
                Ok(())
            } else {
                Err(discreet_vault::Error::BadInput {
                    detail: "the ledger is unavailable".into(),
                })
            }
        };
        for number in 0..4 {
            buffer_read_entry(&buffer, entry(number), 4, &write).expect("room");
        }
        for number in 4..10 {
            assert!(matches!(
                buffer_read_entry(&buffer, entry(number), 4, &write),
                Err(Error::LedgerUnavailable)
            ));
            assert_eq!(lock(&buffer).len(), 4);
        }
        assert!(flush_read_entries(&buffer, &write).is_err());
        assert_eq!(lock(&buffer).len(), 4);

        // The ledger is back: the full buffer is written before the next entry is taken.
        ledger_works.set(true);
        buffer_read_entry(&buffer, entry(10), 4, &write).expect("written, then room");
        assert_eq!(written.borrow().len(), 4);
        flush_read_entries(&buffer, &write).expect("flush");
        let details: Vec<String> = written
            .borrow()
            .iter()
            .map(|entry| entry.detail.clone())
            .collect();
        let expected: Vec<String> = [0, 1, 2, 3, 10]
            .iter()
            .map(|number| format!("n={number}"))
            .collect();
        assert_eq!(details, expected);
        assert_eq!(lock(&buffer).len(), 0);
    }
}
