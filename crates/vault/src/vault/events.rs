//! Events: appending a batch (sealed, one ledger entry per subject, idempotent under a key),
//! reading one subject's events (logged), and scanning every active subject's events for
//! rebuilds.
//!
//! A batch is stored whole or not at all, and never for a subject whose forget has begun;
//! a logged read never returns without its ledger entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::crypto::{DataKey, sha256_parts};
use crate::error::{Error, Missing, Result};
use crate::ledger::{LedgerDraft, by_category_detail};
use crate::storage::*;

use super::sealing::{open_event, seal_event};
use super::{Access, Vault, now_millis};

/// An event to store: `payload` is the engine's encoding of what happened (sealed whole).
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The shop's customer id.
    pub subject: String,
    /// Data category (from the policy).
    pub category: String,
    /// When it happened, unix milliseconds.
    pub at: i64,
    pub payload: Vec<u8>,
}

/// A stored event, opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub subject: SubjectId,
    pub category: String,
    pub at: i64,
    pub payload: Vec<u8>,
}

/// An idempotency key with the hash of the request body it came with.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub body_hash: [u8; 32],
}

/// What an append did.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AppendOutcome {
    pub accepted: u64,
    /// Events not stored again because the same idempotency key and body were seen before.
    pub duplicates: u64,
    /// The customer ids of the batch and the internal ids they resolved to (empty when the
    /// batch was an idempotent duplicate and nothing was stored). Never serialized: it
    /// links customer ids to internal ids.
    #[serde(skip)]
    pub subjects: BTreeMap<String, SubjectId>,
}

/// Counts only: the customer ids in `subjects` must never reach a log line.
impl std::fmt::Debug for AppendOutcome {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AppendOutcome")
            .field("accepted", &self.accepted)
            .field("duplicates", &self.duplicates)
            .field("subjects", &self.subjects.len())
            .finish()
    }
}

impl Vault {
    /// Seals and stores a batch of events atomically with one ledger entry per subject.
    /// With an idempotency key, the same key and body are stored once; a different body
    /// under a used key is refused.
    pub fn append_events(
        &self,
        actor: &str,
        events: &[NewEvent],
        idempotency: Option<&Idempotency>,
    ) -> Result<AppendOutcome> {
        let idempotency_record = match idempotency {
            None => None,
            Some(idempotency) => {
                let key_hash =
                    sha256_parts(&[b"discreet/idempotency/v1", idempotency.key.as_bytes()])
                        .to_vec();
                if let Some(stored) = self.storage.idempotency(&key_hash)? {
                    return if stored.body_hash == idempotency.body_hash {
                        Ok(AppendOutcome {
                            accepted: 0,
                            duplicates: stored.accepted,
                            subjects: BTreeMap::new(),
                        })
                    } else {
                        Err(Error::IdempotencyConflict)
                    };
                }
                Some(IdempotencyRecord {
                    key_hash,
                    body_hash: idempotency.body_hash.to_vec(),
                    accepted: events.len() as u64,
                    at: now_millis(),
                })
            }
        };
        if events.is_empty() {
            return Ok(AppendOutcome {
                accepted: 0,
                duplicates: 0,
                subjects: BTreeMap::new(),
            });
        }
        let subjects = self.resolve_subjects(events.iter().map(|event| event.subject.as_str()))?;
        let first_seq = self.storage.reserve_event_seqs(events.len() as u64)?;
        let mut rows = Vec::with_capacity(events.len());
        let mut per_subject: BTreeMap<SubjectId, (u64, Vec<&str>)> = BTreeMap::new();
        let mut keys: HashMap<SubjectId, Arc<DataKey>> = HashMap::new();
        for (offset, event) in events.iter().enumerate() {
            let subject = *subjects
                .get(event.subject.as_str())
                .ok_or(Error::NotFound {
                    what: Missing::Subject,
                })?;
            let key = match keys.get(&subject) {
                Some(key) => key.clone(),
                None => {
                    let key = self.data_key(subject)?;
                    keys.insert(subject, key.clone());
                    key
                }
            };
            rows.push(seal_event(&key, subject, first_seq + offset as i64, event)?);
            let tally = per_subject.entry(subject).or_default();
            tally.0 += 1;
            tally.1.push(event.category.as_str());
        }
        let now = now_millis();
        let ledger = per_subject
            .iter()
            .map(|(subject, (count, categories))| {
                LedgerDraft::new(now, actor, "events.ingest")
                    .subject(&self.subject_token(*subject))
                    .categories(categories.iter().copied())
                    .detail(format!(
                        "events={count}{}",
                        by_category_detail(categories.iter().copied())
                    ))
            })
            .collect();
        let batch = WriteBatch {
            events: rows,
            ledger,
            idempotency: idempotency_record.clone(),
            ..WriteBatch::default()
        };
        match self.storage.write(batch) {
            Ok(head) => self.after_write(head),
            Err(error @ (Error::Forgetting | Error::NotFound { .. })) => {
                // A subject of the batch was forgotten meanwhile: look it up afresh next time.
                for subject in per_subject.keys() {
                    self.forget_cached_subject(*subject);
                }
                return Err(error);
            }
            // Two identical requests raced: the other one stored the batch.
            Err(Error::IdempotencyConflict) => {
                if let Some(record) = idempotency_record
                    && let Some(stored) = self.storage.idempotency(&record.key_hash)?
                    && stored.body_hash == record.body_hash
                {
                    return Ok(AppendOutcome {
                        accepted: 0,
                        duplicates: stored.accepted,
                        subjects: BTreeMap::new(),
                    });
                }
                return Err(Error::IdempotencyConflict);
            }
            Err(error) => return Err(error),
        }
        Ok(AppendOutcome {
            accepted: events.len() as u64,
            duplicates: 0,
            subjects: subjects
                .into_iter()
                .map(|(external_id, subject)| (external_id.to_owned(), subject))
                .collect(),
        })
    }

    /// A subject's events by internal id, opened; the read is written to the ledger.
    pub fn events_of(&self, subject: SubjectId, access: Access<'_>) -> Result<Vec<Event>> {
        let events = self.open_rows_of(
            subject,
            |subject| self.storage.events_of(subject),
            open_event,
        )?;
        let categories: BTreeSet<&str> =
            events.iter().map(|event| event.category.as_str()).collect();
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "events.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .categories(categories)
                .detail(format!(
                    "events={}{}",
                    events.len(),
                    by_category_detail(events.iter().map(|event| event.category.as_str()))
                )),
        ])?;
        Ok(events)
    }

    /// Up to `limit` events of active subjects after `after_seq`, opened, for rebuilding
    /// derived state (the caller writes one ledger entry for the whole rebuild).
    pub fn scan_events(&self, after_seq: i64, limit: usize) -> Result<Vec<Event>> {
        // Forgotten between the query and now: skipped.
        self.open_rows_of_live_subjects(
            self.storage.events_after(after_seq, limit)?,
            |row| row.subject,
            open_event,
        )
    }

    /// The stored events with these sequence numbers, opened (another node's change the
    /// models follow: the same learning the writing node did, so no ledger entry; events of
    /// subjects whose key is gone are skipped).
    pub fn events_by_seq(&self, seqs: &[i64]) -> Result<Vec<Event>> {
        let Some(cluster) = self.storage.cluster() else {
            return Ok(Vec::new());
        };
        self.open_rows_of_live_subjects(cluster.events_by_seq(seqs)?, |row| row.subject, open_event)
    }

    /// The change log, when several processes share this store.
    pub fn cluster(&self) -> Option<&dyn ClusterLog> {
        self.storage.cluster()
    }

    /// How many events are stored for active subjects (a rebuild's progress total).
    pub fn count_events(&self) -> Result<u64> {
        self.storage.count_events()
    }
}
