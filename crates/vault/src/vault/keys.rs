//! Keys: the vault's secrets, unwrapping subjects' data keys (with their bounded cache),
//! destroying a data key, and rotating the KEK while the vault keeps serving.
//!
//! A raw key never leaves memory here and is never written anywhere but wrapped by the
//! KEK; a key destroyed must never be found in the cache afterwards, and a rotation must
//! never retire a KEK that still wraps a key.

use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::crypto::{DataKey, Kek, KekRing, random_bytes};
use crate::error::{Error, Result};
use crate::ledger::LedgerDraft;
use crate::storage::*;

use super::sealing::key_context;
use super::{Vault, now_millis, poisoned};

/// Wrapped keys re-wrapped per key-store transaction during a KEK rotation.
const ROTATION_BATCH: usize = 512;

/// What a KEK rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    pub from_kek: String,
    pub to_kek: String,
    pub rewrapped: u64,
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
    keks.unwrap_key(&context, &wrapped)
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
