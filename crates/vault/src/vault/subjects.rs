//! Subjects: finding one by the lookup HMAC of the shop's customer id (checked against the
//! customer id sealed in its row), creating new ones with a fresh data key, and the lookup
//! cache that spares the hot path a file read.
//!
//! The cache is keyed by the lookup HMAC, never by the customer id, and must never hand out
//! a subject whose forget has begun: a lookup that began before a forget cannot put the
//! subject back (the forget epoch guards it).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::crypto::{DataKey, constant_time_eq, random_bytes};
use crate::error::{Error, Missing, Result};
use crate::ledger::LedgerDraft;
use crate::storage::*;

use super::cache::BoundedCache;
use super::sealing::{external_id_aad, key_context, new_subject_row};
use super::{Vault, now_millis, poisoned};

/// Lookup HMAC → internal id of subjects found once, with the forget epoch that keeps a
/// lookup racing a forget from putting the subject back.
pub(super) struct SubjectCache {
    guarded: Mutex<GuardedSubjects>,
}

struct GuardedSubjects {
    subjects: BoundedCache<[u8; 32], SubjectId>,
    /// Bumped whenever a subject leaves the cache because it is being forgotten.
    forget_epoch: u64,
}

/// What the cache knows of a lookup: the subject, or the epoch at which it was missing.
pub(super) enum CachedSubject {
    Found(SubjectId),
    Absent { epoch: u64 },
}

impl SubjectCache {
    pub(super) fn new(limit: usize) -> Self {
        SubjectCache {
            guarded: Mutex::new(GuardedSubjects {
                subjects: BoundedCache::new(limit),
                forget_epoch: 0,
            }),
        }
    }

    /// The cached subject of `lookup`, or the epoch to hand back to `insert_since`.
    pub(super) fn get(&self, lookup: &[u8; 32]) -> Result<CachedSubject> {
        let guarded = self.guarded.lock().map_err(|_| poisoned())?;
        Ok(match guarded.subjects.get(lookup) {
            Some(&id) => CachedSubject::Found(id),
            None => CachedSubject::Absent {
                epoch: guarded.forget_epoch,
            },
        })
    }

    /// Caches a subject found by a lookup that missed at `epoch`, unless a forget has begun
    /// since (it may be this subject's).
    pub(super) fn insert_since(&self, lookup: [u8; 32], id: SubjectId, epoch: u64) {
        if let Ok(mut guarded) = self.guarded.lock()
            && guarded.forget_epoch == epoch
        {
            guarded.subjects.insert(lookup, id);
        }
    }

    /// Caches a subject just created (no forget can have begun for it).
    pub(super) fn insert(&self, lookup: [u8; 32], id: SubjectId) {
        if let Ok(mut guarded) = self.guarded.lock() {
            guarded.subjects.insert(lookup, id);
        }
    }

    /// Drops a subject and moves the epoch on, so no lookup begun before puts it back.
    pub(super) fn forget(&self, subject: SubjectId) {
        if let Ok(mut guarded) = self.guarded.lock() {
            guarded.forget_epoch += 1;
            guarded.subjects.retain(|_, cached| *cached != subject);
        }
    }
}

impl Vault {
    fn lookup_hash(&self, external_id: &str) -> [u8; 32] {
        self.lookup_key.tag(external_id.as_bytes())
    }

    /// The internal id of an active subject, if the shop's customer id is known.
    /// Subjects found once stay in a lookup cache (keyed by the lookup HMAC, never by the
    /// customer id) until a forget begins, so the hot path reads no file.
    pub fn subject_id(&self, external_id: &str) -> Result<Option<SubjectId>> {
        let lookup = self.lookup_hash(external_id);
        let epoch = match self.subject_cache.get(&lookup)? {
            CachedSubject::Found(id) => return Ok(Some(id)),
            CachedSubject::Absent { epoch } => epoch,
        };
        match self.find_subject(external_id)? {
            Some(row) if row.state == SubjectState::Active => {
                self.subject_cache.insert_since(lookup, row.id, epoch);
                Ok(Some(row.id))
            }
            _ => Ok(None),
        }
    }

    /// The subject row of a customer id, in any state, read from storage (not the cache).
    pub(super) fn find_subject(&self, external_id: &str) -> Result<Option<SubjectRow>> {
        let Some(id) = self.keys.find_subject(&self.lookup_hash(external_id))? else {
            return Ok(None);
        };
        // A key without its subject row is a creation cut short; it is finished on next use.
        let Some(row) = self.storage.subject(id)? else {
            return Ok(None);
        };
        self.check_external_id(&row, external_id)?;
        Ok(Some(row))
    }

    /// The subject row must hold, sealed under its own key, the very customer id it was
    /// found by: a row swapped or moved in the data file fails here.
    fn check_external_id(&self, row: &SubjectRow, external_id: &str) -> Result<()> {
        let key = self.data_key(row.id)?;
        let stored = key.open(&external_id_aad(row.id), &row.sealed_external_id, "subject")?;
        if constant_time_eq(&stored, external_id.as_bytes()) {
            Ok(())
        } else {
            Err(Error::Tampered { what: "subject" })
        }
    }

    /// The internal id of an active subject: `NotFound` when the customer id is unknown (or
    /// forgotten), `Forgetting` while it is being forgotten. Always read from storage, not
    /// the lookup cache, so it sees a forget that has begun and checks the sealed customer id.
    pub fn active_subject_id(&self, external_id: &str) -> Result<SubjectId> {
        match self.find_subject(external_id)? {
            None => Err(Error::NotFound {
                what: Missing::Subject,
            }),
            Some(row) if row.state == SubjectState::Forgetting => Err(Error::Forgetting),
            Some(row) => Ok(row.id),
        }
    }

    /// Whether the subject is held and not being forgotten.
    pub fn is_active(&self, subject: SubjectId) -> Result<bool> {
        Ok(self
            .storage
            .subject(subject)?
            .is_some_and(|row| row.state != SubjectState::Forgetting))
    }

    /// Drops a subject from the lookup cache (after a forget, or when a write found it gone).
    pub(super) fn forget_cached_subject(&self, subject: SubjectId) {
        self.subject_cache.forget(subject);
    }

    /// Active subjects with at least one consent decision for `purpose`.
    pub fn subjects_with_consent(&self, purpose: &str) -> Result<Vec<SubjectId>> {
        let subjects = self.storage.subjects_with_consent(purpose)?;
        let mut active = Vec::with_capacity(subjects.len());
        for subject in subjects {
            if matches!(self.storage.subject(subject)?, Some(row) if row.state == SubjectState::Active)
            {
                active.push(subject);
            }
        }
        Ok(active)
    }

    /// Why storage would refuse a write for `subject` (`Forgetting`, or `NotFound` once it
    /// is gone), or `None` while it is active.
    pub(super) fn write_refusal(&self, subject: SubjectId) -> Result<Option<Error>> {
        Ok(match self.storage.subject(subject)? {
            None => Some(Error::NotFound {
                what: Missing::Subject,
            }),
            Some(row) if row.state == SubjectState::Forgetting => Some(Error::Forgetting),
            Some(_) => None,
        })
    }

    /// Finds or creates one subject.
    pub(super) fn resolve_subject(&self, external_id: &str) -> Result<SubjectId> {
        self.resolve_subjects(std::iter::once(external_id))?
            .get(external_id)
            .copied()
            .ok_or(Error::NotFound {
                what: Missing::Subject,
            })
    }

    /// Finds or creates the subjects named in a batch: new ones get a fresh data key.
    pub(super) fn resolve_subjects<'a>(
        &self,
        external_ids: impl Iterator<Item = &'a str>,
    ) -> Result<BTreeMap<&'a str, SubjectId>> {
        let mut resolved = BTreeMap::new();
        let mut missing = Vec::new();
        for external_id in external_ids {
            if resolved.contains_key(external_id) || missing.contains(&external_id) {
                continue;
            }
            let lookup = self.lookup_hash(external_id);
            let epoch = match self.subject_cache.get(&lookup)? {
                CachedSubject::Found(id) => {
                    resolved.insert(external_id, id);
                    continue;
                }
                CachedSubject::Absent { epoch } => epoch,
            };
            match self.find_subject(external_id)? {
                Some(row) if row.state == SubjectState::Forgetting => {
                    return Err(Error::Forgetting);
                }
                Some(row) => {
                    self.subject_cache.insert_since(lookup, row.id, epoch);
                    resolved.insert(external_id, row.id);
                }
                None => missing.push(external_id),
            }
        }
        if missing.is_empty() {
            return Ok(resolved);
        }
        // One creator at a time, so two batches naming the same new customer agree on its id.
        let _creating = self.subject_creation.lock().map_err(|_| poisoned())?;
        // The ring stays read-locked from wrapping to storing the new keys, so a KEK rotation
        // cannot retire the KEK they are wrapped with in between.
        let ring = self.keks.read().map_err(|_| poisoned())?;
        let mut new_keys = Vec::new();
        let mut new_subjects = Vec::new();
        let now = now_millis();
        let mut lookups = Vec::new();
        for external_id in missing {
            let lookup = self.lookup_hash(external_id);
            if let Some(id) = self.keys.find_subject(&lookup)? {
                match self.storage.subject(id)? {
                    Some(row) if row.state == SubjectState::Forgetting => {
                        return Err(Error::Forgetting);
                    }
                    Some(row) => {
                        self.check_external_id(&row, external_id)?;
                        resolved.insert(external_id, row.id);
                    }
                    // Its key was stored but the row never was (a crash in between): finish it.
                    None => {
                        new_subjects.push(new_subject_row(
                            &*self.data_key(id)?,
                            id,
                            external_id,
                            now,
                        )?);
                        lookups.push(lookup);
                        resolved.insert(external_id, id);
                    }
                }
                continue;
            }
            let id = (i64::from_be_bytes(*random_bytes::<8>()?) & i64::MAX).max(1);
            let key_bytes = random_bytes::<32>()?;
            let wrapped = ring.wrap(&key_context(&KeyRef::Subject(id)), key_bytes.as_ref())?;
            let key = DataKey::from_bytes(key_bytes.as_ref())?;
            new_keys.push(NewDataKey {
                subject: id,
                lookup: lookup.to_vec(),
                wrapped,
            });
            new_subjects.push(new_subject_row(&key, id, external_id, now)?);
            lookups.push(lookup);
            resolved.insert(external_id, id);
        }
        if new_subjects.is_empty() {
            return Ok(resolved);
        }
        // Keys first: a subject row never exists without its key.
        if !new_keys.is_empty() {
            self.keys.insert_data_keys(&new_keys)?;
        }
        drop(ring);
        let entries = new_subjects
            .iter()
            .map(|subject| {
                LedgerDraft::new(now, "system", "subject.created")
                    .subject(&self.subject_token(subject.id))
            })
            .collect();
        let head = self.storage.write(WriteBatch {
            new_subjects: new_subjects.clone(),
            ledger: entries,
            ..WriteBatch::default()
        })?;
        for (subject, lookup) in new_subjects.iter().zip(lookups) {
            self.subject_cache.insert(lookup, subject.id);
        }
        self.after_write(head);
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::{CachedSubject, SubjectCache};

    fn found(cache: &SubjectCache, lookup: &[u8; 32]) -> Option<i64> {
        match cache.get(lookup).expect("cache") {
            CachedSubject::Found(id) => Some(id),
            CachedSubject::Absent { .. } => None,
        }
    }

    fn epoch(cache: &SubjectCache, lookup: &[u8; 32]) -> u64 {
        match cache.get(lookup).expect("cache") {
            CachedSubject::Found(_) => panic!("expected a miss"),
            CachedSubject::Absent { epoch } => epoch,
        }
    }

    /// Regression guard for the forget epoch: a lookup that missed before a forget began
    /// cannot put the subject back after it.
    #[test]
    fn a_lookup_that_began_before_a_forget_cannot_put_the_subject_back() {
        let cache = SubjectCache::new(16);
        let lookup = [1; 32];
        let before = epoch(&cache, &lookup);
        cache.forget(7);
        cache.insert_since(lookup, 7, before);
        assert_eq!(found(&cache, &lookup), None);
        let after = epoch(&cache, &lookup);
        cache.insert_since(lookup, 7, after);
        assert_eq!(found(&cache, &lookup), Some(7));
    }

    #[test]
    fn a_forget_drops_only_its_subject() {
        let cache = SubjectCache::new(16);
        cache.insert([1; 32], 7);
        cache.insert([2; 32], 8);
        cache.forget(7);
        assert_eq!(found(&cache, &[1; 32]), None);
        assert_eq!(found(&cache, &[2; 32]), Some(8));
    }
}
