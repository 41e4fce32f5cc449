//! Keys: the vault's secrets, unwrapping subjects' data keys (with their bounded cache),
//! destroying a data key, and rotating the KEK while the vault keeps serving.
//!
//! A raw key never leaves memory here and is never written anywhere but wrapped by the
//! KEK; a key destroyed must never be found in the cache afterwards, and a rotation must
//! never retire a KEK that still wraps a key.

use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::crypto::{DataKey, Kek, KekRing, WrappedKey, random_bytes};
use crate::error::{Error, Result};
use crate::integrity::IntegrityKeys;
use crate::ledger::LedgerDraft;
use crate::storage::*;

use super::sealing::key_context;
use super::{SECRET_INTEGRITY, Vault, now_millis, poisoned};

/// Wrapped keys re-wrapped per key-store transaction during a KEK rotation.
const ROTATION_BATCH: usize = 512;

/// What a KEK rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    pub from_kek: String,
    pub to_kek: String,
    pub rewrapped: u64,
}

/// Unwraps a stored secret, naming a wrong KEK as such.
fn unwrap_secret(keks: &KekRing, name: &str, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
    let context = key_context(&KeyRef::Secret(name.to_owned()));
    keks.unwrap_key(&context, wrapped)
        .map_err(|error| match error {
            Error::Tampered { .. } => Error::Config {
                detail: format!(
                    "the KEK {} does not open this key store (wrong KEK file?)",
                    keks.current().id()
                ),
            },
            other => other,
        })
}

/// The row-integrity keys, attached to the storage. When the key store has no integrity
/// secret yet (a new store, or one written by an earlier build), one is made, every
/// existing row is MAC'd and the data sealed as it is now, the key store's anchor is MAC'd
/// where it stands — and only then is the secret stored, so an interrupted first sealing
/// is simply done again. Otherwise the seal (against the ledger's head) and the anchor's MAC
/// are checked; what is wrong is returned, and the storage then refuses every write.
pub(super) fn attach_integrity(
    storage: &dyn Storage,
    keys: &dyn KeyStorage,
    keks: &KekRing,
) -> Result<(Arc<IntegrityKeys>, Option<String>)> {
    if let Some(wrapped) = keys.secret(SECRET_INTEGRITY)? {
        let integrity = Arc::new(IntegrityKeys::new(&unwrap_secret(
            keks,
            SECRET_INTEGRITY,
            &wrapped,
        )?));
        // Only the anchor's MAC stops the vault here: an anchor past the head is also what a
        // data file restored from a backup shows, which must open (and `verify_ledger` says
        // which entries that backup lacks).
        let anchor_problem = check_anchor(&integrity, keys.ledger_anchor()?, i64::MAX);
        let problem = storage.attach_integrity(integrity.clone(), false, anchor_problem)?;
        return Ok((integrity, problem));
    }
    let secret = random_bytes::<32>()?;
    let integrity = Arc::new(IntegrityKeys::new(secret.as_ref()));
    storage.attach_integrity(integrity.clone(), true, None)?;
    let head = match keys.ledger_anchor()? {
        Some(anchor) => anchor.head,
        None => storage.ledger_head()?,
    };
    keys.set_ledger_anchor(&SealedAnchor {
        head,
        mac: Some(integrity.anchor_mac(&head).to_vec()),
    })?;
    let context = key_context(&KeyRef::Secret(SECRET_INTEGRITY.to_owned()));
    let stored = keys.insert_secret(SECRET_INTEGRITY, &keks.wrap(&context, secret.as_ref())?)?;
    if unwrap_secret(keks, SECRET_INTEGRITY, &stored)?[..] != secret[..] {
        return Err(Error::Storage {
            detail: "another process stored the integrity secret while this one sealed the data"
                .into(),
        });
    }
    Ok((integrity, None))
}

/// What is wrong with the key store's anchor for a ledger whose head is at `head_seq`.
pub(super) fn check_anchor(
    integrity: &IntegrityKeys,
    anchor: Option<SealedAnchor>,
    head_seq: i64,
) -> Option<String> {
    let Some(anchor) = anchor else {
        return Some("the key store's ledger anchor is missing".into());
    };
    let intact = anchor.mac.as_deref().is_some_and(|mac| {
        crate::crypto::constant_time_eq(&integrity.anchor_mac(&anchor.head), mac)
    });
    if !intact {
        return Some("the key store's ledger anchor was altered".into());
    }
    if anchor.head.seq > head_seq {
        return Some(format!(
            "ledger entries {}..={} were removed (the key store's anchor covers them)",
            head_seq + 1,
            anchor.head.seq
        ));
    }
    None
}

/// A named vault secret, unwrapped; created (random, wrapped by the current KEK) when the
/// key store has none yet.
pub(super) fn open_secret(
    keys: &dyn KeyStorage,
    keks: &KekRing,
    name: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    let context = key_context(&KeyRef::Secret(name.to_owned()));
    let wrapped = match keys.secret(name)? {
        Some(wrapped) => wrapped,
        None => keys.insert_secret(name, &keks.wrap(&context, random_bytes::<32>()?.as_ref())?)?,
    };
    unwrap_secret(keks, name, &wrapped)
}

impl Vault {
    fn cached_data_key(&self, subject: SubjectId) -> Option<Arc<DataKey>> {
        self.key_cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&subject).cloned())
    }

    /// A subject's data key, unwrapped (cached); `KeyDestroyed` once it was forgotten.
    pub(super) fn data_key(&self, subject: SubjectId) -> Result<Arc<DataKey>> {
        if let Some(key) = self.cached_data_key(subject) {
            return Ok(key);
        }
        let _loading = self.key_loading.lock().map_err(|_| poisoned())?;
        if let Some(key) = self.cached_data_key(subject) {
            return Ok(key);
        }
        let wrapped = match self.keys.data_key(subject)? {
            KeyState::Live(wrapped) => wrapped,
            KeyState::Destroyed { .. } => return Err(Error::KeyDestroyed),
            KeyState::Missing => {
                return Err(Error::Storage {
                    detail: "a subject has no data key".into(),
                });
            }
        };
        let context = key_context(&KeyRef::Subject(subject));
        let bytes = self
            .keks
            .read()
            .map_err(|_| poisoned())?
            .unwrap_key(&context, &wrapped)?;
        let key = Arc::new(DataKey::from_bytes(&bytes)?);
        if let Ok(mut cache) = self.key_cache.lock() {
            cache.insert(subject, key.clone());
        }
        Ok(key)
    }

    /// Drops what this process holds in memory of a subject another process is forgetting:
    /// its data key and its lookup.
    pub fn evict_subject(&self, subject: SubjectId) {
        if let Ok(mut cache) = self.key_cache.lock() {
            cache.remove(&subject);
        }
        self.forget_cached_subject(subject);
    }

    /// Destroys a subject's data key (and its lookup) in the key store and drops it from
    /// the cache: from here on, every copy of the subject's data is unreadable.
    pub(super) fn destroy_data_key(&self, subject: SubjectId) -> Result<()> {
        let _loading = self.key_loading.lock().map_err(|_| poisoned())?;
        self.keys.destroy_data_key(subject, now_millis())?;
        if let Ok(mut cache) = self.key_cache.lock() {
            cache.remove(&subject);
        }
        Ok(())
    }

    /// Re-wraps every data key and secret with `next` while the vault keeps serving.
    pub fn rotate_kek(&self, next: Kek, actor: &str) -> Result<RotationReport> {
        let _rotating = self.rotation.lock().map_err(|_| poisoned())?;
        let from_kek = self
            .keks
            .read()
            .map_err(|_| poisoned())?
            .current()
            .id()
            .to_owned();
        let to_kek = next.id().to_owned();
        if from_kek != to_kek {
            self.keks.write().map_err(|_| poisoned())?.rotate_to(next);
        }
        let mut rewrapped = 0u64;
        let mut idle_rounds = 0;
        loop {
            let batch = self.keys.keys_not_wrapped_by(&to_kek, ROTATION_BATCH)?;
            if batch.is_empty() {
                // Retire the old KEKs only under the write lock, when no new key is being
                // wrapped and none is left under them.
                let mut ring = self.keks.write().map_err(|_| poisoned())?;
                if self.keys.keys_not_wrapped_by(&to_kek, 1)?.is_empty() {
                    ring.drop_previous();
                    break;
                }
                continue;
            }
            let updates = {
                let ring = self.keks.read().map_err(|_| poisoned())?;
                batch
                    .into_iter()
                    .map(|(key_ref, old)| {
                        let context = key_context(&key_ref);
                        let secret = ring.unwrap_key(&context, &old)?;
                        let new = ring.wrap(&context, &secret)?;
                        Ok((key_ref, old, new))
                    })
                    .collect::<Result<Vec<_>>>()?
            };
            let changed = self.keys.rewrap(&updates)?;
            rewrapped += changed;
            idle_rounds = if changed == 0 { idle_rounds + 1 } else { 0 };
            if idle_rounds > 3 {
                return Err(Error::Storage {
                    detail: "KEK rotation made no progress".into(),
                });
            }
        }
        self.record_access(vec![
            LedgerDraft::new(now_millis(), actor, "kek.rotated")
                .detail(format!("from={from_kek} to={to_kek} rewrapped={rewrapped}")),
        ])?;
        Ok(RotationReport {
            from_kek,
            to_kek,
            rewrapped,
        })
    }
}
