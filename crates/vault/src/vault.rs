//! The vault facade: the only way personal data goes in and out of storage.
//!
//! It finds subjects by a keyed hash of the shop's customer id, seals every personal value
//! with the subject's own data key (associated data binds each ciphertext to its subject
//! and row), writes every access to the ledger in the same transaction as the data, and
//! forgets a subject by a durable intent, key destruction, row erasure and a signed receipt
//! — finishing any interrupted forget when it opens. It never decides whether a use is
//! allowed: that is the engine's job; it records what the engine says it did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::crypto::{
    DataKey, Kek, KekRing, Signer, TokenKey, constant_time_eq, random_bytes, sha256_parts, to_hex,
};
use crate::error::{Error, Missing, Result};
use crate::ledger::{
    CHECKPOINT_INTERVAL, ChainVerifier, Checkpoint, LedgerDraft, LedgerHead, LedgerKey,
    LedgerRecord, LedgerVerification, checkpoint_message,
};
use crate::receipt::{ErasedCounts, ForgetReceipt, PublicKeyInfo};
use crate::sqlite::{DATA_FILE, KEY_STORE_FILE, SqliteKeyStore, SqliteStorage};
use crate::storage::*;

/// Unwrapped data keys kept in memory at most; past this the cache starts afresh.
const KEY_CACHE_LIMIT: usize = 65_536;
/// Wrapped keys re-wrapped per key-store transaction during a KEK rotation.
const ROTATION_BATCH: usize = 512;

const SECRET_LOOKUP: &str = "subject-lookup-key";
const SECRET_TOKEN: &str = "subject-token-key";
const SECRET_SIGNING: &str = "signing-seed";
const SECRET_LEDGER: &str = "ledger-chain-key";
/// The `meta` entry naming the signing key of the key store that belongs to this data.
const META_SIGNING_KEY: &str = "signing_key_id";

/// The hash under which an API key's secret is stored and looked up.
pub fn api_key_hash(secret: &str) -> [u8; 32] {
    sha256_parts(&[b"discreet/api-key/v1", secret.as_bytes()])
}

/// Unix milliseconds now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(millis: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| millis.to_string())
}

/// Associated data: every part length-prefixed, so no two records share it.
fn associated_data(parts: &[&[u8]]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    for part in parts {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

fn event_aad(subject: SubjectId, seq: i64, category: &str, at: i64) -> Vec<u8> {
    associated_data(&[
        b"discreet/event/v1",
        &subject.to_be_bytes(),
        &seq.to_be_bytes(),
        category.as_bytes(),
        &at.to_be_bytes(),
    ])
}

fn attribute_aad(subject: SubjectId, name: &str, category: &str, updated_at: i64) -> Vec<u8> {
    associated_data(&[
        b"discreet/attribute/v1",
        &subject.to_be_bytes(),
        name.as_bytes(),
        category.as_bytes(),
        &updated_at.to_be_bytes(),
    ])
}

fn external_id_aad(subject: SubjectId) -> Vec<u8> {
    associated_data(&[b"discreet/subject-id/v1", &subject.to_be_bytes()])
}

/// A consent row's fields (all but its tag) as associated data.
fn consent_aad(consent: &ConsentRow) -> Vec<u8> {
    associated_data(&[
        b"discreet/consent/v1",
        &consent.subject.to_be_bytes(),
        consent.purpose.as_bytes(),
        &[consent.granted as u8],
        &consent.at.to_be_bytes(),
        consent.source.as_bytes(),
        consent.policy_version.as_bytes(),
    ])
}

fn key_context(key_ref: &KeyRef) -> Vec<u8> {
    match key_ref {
        KeyRef::Subject(subject) => {
            associated_data(&[b"discreet/data-key/v1", &subject.to_be_bytes()])
        }
        KeyRef::Secret(name) => associated_data(&[b"discreet/secret/v1", name.as_bytes()]),
    }
}

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

/// An attribute value to store.
#[derive(Clone, Debug)]
pub struct NewAttribute {
    pub name: String,
    pub category: String,
    pub value: Vec<u8>,
}

/// A stored attribute, opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub subject: SubjectId,
    pub name: String,
    pub category: String,
    pub updated_at: i64,
    pub value: Vec<u8>,
}

/// A consent decision to record.
#[derive(Clone, Debug)]
pub struct NewConsent {
    pub purpose: String,
    pub granted: bool,
    pub at: i64,
    pub source: String,
    pub policy_version: String,
}

/// Who reads, and for which purpose (written to the ledger).
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    pub actor: &'a str,
    pub purpose: &'a str,
}

/// An idempotency key with the hash of the request body it came with.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub body_hash: [u8; 32],
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppendOutcome {
    pub accepted: u64,
    /// Events not stored again because the same idempotency key and body were seen before.
    pub duplicates: u64,
}

/// Data past its retention, opened so that the engine can unlearn it before erasing it.
#[derive(Clone, Debug, Default)]
pub struct Expired {
    pub events: Vec<Event>,
    pub attributes: Vec<Attribute>,
}

/// What a KEK rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    pub from_kek: String,
    pub to_kek: String,
    pub rewrapped: u64,
}

/// The steps of a forget, for crash-injection tests: stop right after this step.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForgetStep {
    IntentWritten,
    KeyDestroyed,
}

/// Where an embedded vault keeps its files.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// The data folder (created if missing).
    pub data_dir: PathBuf,
    /// The key store file; `DATA_DIR/keystore.sqlite` when not set.
    pub key_store: Option<PathBuf>,
    /// Where the KEK was read from, to refuse a KEK kept inside the data folder.
    pub kek_file: Option<PathBuf>,
}

impl SqliteOptions {
    /// Files in `data_dir`, KEK from `kek_file`.
    pub fn new(data_dir: impl Into<PathBuf>, kek_file: Option<PathBuf>) -> Self {
        SqliteOptions {
            data_dir: data_dir.into(),
            key_store: None,
            kek_file,
        }
    }

    /// The sealed-data file.
    pub fn data_file(&self) -> PathBuf {
        self.data_dir.join(DATA_FILE)
    }

    /// The key store file.
    pub fn key_store_file(&self) -> PathBuf {
        self.key_store
            .clone()
            .unwrap_or_else(|| self.data_dir.join(KEY_STORE_FILE))
    }
}

/// Refuses a KEK file that lives inside the data folder.
pub fn check_kek_outside(kek_file: &Path, data_dir: &Path) -> Result<()> {
    let absolute = |path: &Path| -> PathBuf {
        match std::fs::canonicalize(path) {
            Ok(path) => path,
            Err(_) => match (path.parent(), path.file_name()) {
                (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
                    std::fs::canonicalize(parent)
                        .map(|parent| parent.join(name))
                        .unwrap_or_else(|_| path.to_owned())
                }
                _ => std::env::current_dir()
                    .map(|dir| dir.join(path))
                    .unwrap_or_else(|_| path.to_owned()),
            },
        }
    };
    if absolute(kek_file).starts_with(absolute(data_dir)) {
        return Err(Error::Config {
            detail: format!(
                "the KEK file {} is inside the data folder {}; keep it elsewhere so that a copy of the data never carries its key",
                kek_file.display(),
                data_dir.display()
            ),
        });
    }
    Ok(())
}

/// The vault.
pub struct Vault {
    storage: Box<dyn Storage>,
    keys: Box<dyn KeyStorage>,
    keks: RwLock<KekRing>,
    lookup_key: TokenKey,
    token_key: TokenKey,
    signer: Signer,
    key_cache: Mutex<HashMap<SubjectId, Arc<DataKey>>>,
    subject_cache: Mutex<HashMap<[u8; 32], SubjectId>>,
    /// Bumped (under the cache lock) whenever a subject leaves the cache because it is being
    /// forgotten: a lookup that began before may not put it back.
    forget_epoch: AtomicU64,
    subject_creation: Mutex<()>,
    /// Held while a data key is loaded into the cache or destroyed, so that a key read just
    /// before its destruction never lands in the cache after it.
    key_loading: Mutex<()>,
    /// One KEK rotation at a time.
    rotation: Mutex<()>,
    ledger_key: LedgerKey,
    last_checkpoint_seq: AtomicI64,
    recovered: Vec<ForgetReceipt>,
    /// Keeps other processes out of the data folder while this vault is open.
    _folder_lock: Option<std::fs::File>,
}

impl Vault {
    /// Opens the embedded vault (SQLite files in the data folder).
    pub fn open_sqlite(options: &SqliteOptions, keks: KekRing) -> Result<Vault> {
        if let Some(kek_file) = &options.kek_file {
            check_kek_outside(kek_file, &options.data_dir)?;
        }
        create_private_dir(&options.data_dir)?;
        let folder_lock = lock_folder(&options.data_dir)?;
        let storage = SqliteStorage::open(&options.data_file())?;
        let keys = SqliteKeyStore::open(&options.key_store_file())?;
        let mut vault = Vault::open(Box::new(storage), Box::new(keys), keks)?;
        vault._folder_lock = Some(folder_lock);
        Ok(vault)
    }

    /// Opens a vault over any backend; finishes interrupted forgets and re-applies forgets
    /// to data restored from an old backup.
    pub fn open(
        storage: Box<dyn Storage>,
        keys: Box<dyn KeyStorage>,
        keks: KekRing,
    ) -> Result<Vault> {
        // Fresh keys for data that already exists would make it unreadable for good: a lost
        // or misplaced key store must stop the vault, not be silently replaced.
        if keys.secret(SECRET_SIGNING)?.is_none() && !storage.is_empty()? {
            return Err(Error::Config {
                detail: "the key store is empty but the data is not: wrong key store path, or the key store \
                         was lost (restore it from its backup); refusing to create new keys"
                    .into(),
            });
        }
        let secret = |name: &str| -> Result<Zeroizing<Vec<u8>>> {
            let context = key_context(&KeyRef::Secret(name.to_owned()));
            let wrapped = match keys.secret(name)? {
                Some(wrapped) => wrapped,
                None => {
                    keys.insert_secret(name, &keks.wrap(&context, random_bytes::<32>()?.as_ref())?)?
                }
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
        };
        let lookup_key = TokenKey::new(&secret(SECRET_LOOKUP)?);
        let token_key = TokenKey::new(&secret(SECRET_TOKEN)?);
        let signer = Signer::from_seed(&secret(SECRET_SIGNING)?)?;
        let ledger_secret = secret(SECRET_LEDGER)?;
        match storage.meta(META_SIGNING_KEY)? {
            Some(key_id) if key_id != signer.key_id() => {
                return Err(Error::Config {
                    detail: format!(
                        "the key store (signing key {}) does not belong to this data (signing key {key_id})",
                        signer.key_id()
                    ),
                });
            }
            Some(_) => {}
            None => storage.set_meta(META_SIGNING_KEY, signer.key_id())?,
        }
        storage.attach_ledger_key(LedgerKey::new(&ledger_secret))?;
        let last_checkpoint_seq = storage
            .checkpoints()?
            .last()
            .map(|checkpoint| checkpoint.seq)
            .unwrap_or(0);
        let mut vault = Vault {
            storage,
            keys,
            keks: RwLock::new(keks),
            lookup_key,
            token_key,
            signer,
            key_cache: Mutex::new(HashMap::new()),
            subject_cache: Mutex::new(HashMap::new()),
            forget_epoch: AtomicU64::new(0),
            subject_creation: Mutex::new(()),
            key_loading: Mutex::new(()),
            rotation: Mutex::new(()),
            ledger_key: LedgerKey::new(&ledger_secret),
            last_checkpoint_seq: AtomicI64::new(last_checkpoint_seq),
            recovered: Vec::new(),
            _folder_lock: None,
        };
        vault.recovered = vault.recover()?;
        Ok(vault)
    }

    /// Finishes every interrupted forget, then drops rows of subjects whose key is destroyed.
    fn recover(&self) -> Result<Vec<ForgetReceipt>> {
        let mut receipts = Vec::new();
        for intent in self.storage.erasure_intents()? {
            receipts.push(
                self.finish_forget_until(intent.subject, "system:recovery", None)?
                    .ok_or(Error::Storage {
                        detail: "recovery stopped before its receipt".into(),
                    })?,
            );
        }
        let destroyed = self.keys.destroyed_subjects()?;
        for subject in self.storage.subjects_present(&destroyed)? {
            let entry = LedgerDraft::new(now_millis(), "system:recovery", "forget.reapplied")
                .subject(&self.subject_token(subject))
                .detail("rows of a forgotten subject found (restored backup?) and dropped");
            self.storage.drop_subject(subject, entry)?;
        }
        Ok(receipts)
    }

    /// Receipts of forgets that were interrupted and completed when this vault opened.
    pub fn recovered_forgets(&self) -> &[ForgetReceipt] {
        &self.recovered
    }

    /// The pseudonymous token naming a subject in the ledger, metrics and receipts.
    pub fn subject_token(&self, subject: SubjectId) -> String {
        to_hex(&self.token_key.tag(&subject.to_be_bytes())[..16])
    }

    fn lookup_hash(&self, external_id: &str) -> [u8; 32] {
        self.lookup_key.tag(external_id.as_bytes())
    }

    /// The internal id of an active subject, if the shop's customer id is known.
    /// Subjects found once stay in a lookup cache (keyed by the lookup HMAC, never by the
    /// customer id) until a forget begins, so the hot path reads no file.
    pub fn subject_id(&self, external_id: &str) -> Result<Option<SubjectId>> {
        let lookup = self.lookup_hash(external_id);
        if let Some(id) = self.cached_subject(&lookup)? {
            return Ok(Some(id));
        }
        let epoch = self.forget_epoch.load(Ordering::SeqCst);
        match self.find_subject(external_id)? {
            Some(row) if row.state == SubjectState::Active => {
                self.remember_subject_since(lookup, row.id, epoch);
                Ok(Some(row.id))
            }
            _ => Ok(None),
        }
    }

    fn find_subject(&self, external_id: &str) -> Result<Option<SubjectRow>> {
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

    fn active_subject(&self, external_id: &str) -> Result<SubjectId> {
        match self.find_subject(external_id)? {
            None => Err(Error::NotFound {
                what: Missing::Subject,
            }),
            Some(row) if row.state == SubjectState::Forgetting => Err(Error::Forgetting),
            Some(row) => Ok(row.id),
        }
    }

    fn data_key(&self, subject: SubjectId) -> Result<Arc<DataKey>> {
        if let Some(key) = self
            .key_cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&subject).cloned())
        {
            return Ok(key);
        }
        let _loading = self.key_loading.lock().map_err(|_| poisoned())?;
        if let Some(key) = self
            .key_cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&subject).cloned())
        {
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
            if cache.len() >= KEY_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(subject, key.clone());
        }
        Ok(key)
    }

    /// Finds or creates the subjects named in a batch: new ones get a fresh data key.
    fn resolve_subjects<'a>(
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
            if let Some(id) = self.cached_subject(&lookup)? {
                resolved.insert(external_id, id);
                continue;
            }
            let epoch = self.forget_epoch.load(Ordering::SeqCst);
            match self.find_subject(external_id)? {
                Some(row) if row.state == SubjectState::Forgetting => {
                    return Err(Error::Forgetting);
                }
                Some(row) => {
                    self.remember_subject_since(lookup, row.id, epoch);
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
            self.remember_subject(lookup, subject.id);
        }
        self.after_write(head);
        Ok(resolved)
    }

    /// Drops a subject from the lookup cache (after a forget, or when a write found it gone).
    fn forget_cached_subject(&self, subject: SubjectId) {
        if let Ok(mut cache) = self.subject_cache.lock() {
            self.forget_epoch.fetch_add(1, Ordering::SeqCst);
            cache.retain(|_, cached| *cached != subject);
        }
    }

    fn cached_subject(&self, lookup: &[u8; 32]) -> Result<Option<SubjectId>> {
        Ok(self
            .subject_cache
            .lock()
            .map_err(|_| poisoned())?
            .get(lookup)
            .copied())
    }

    /// Caches a subject found by a lookup that began at `epoch`, unless a forget has begun
    /// since (it may be this subject's).
    fn remember_subject_since(&self, lookup: [u8; 32], id: SubjectId, epoch: u64) {
        if let Ok(mut cache) = self.subject_cache.lock() {
            if self.forget_epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            if cache.len() >= KEY_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(lookup, id);
        }
    }

    fn remember_subject(&self, lookup: [u8; 32], id: SubjectId) {
        if let Ok(mut cache) = self.subject_cache.lock() {
            if cache.len() >= KEY_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(lookup, id);
        }
    }

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
            });
        }
        let subjects = self.resolve_subjects(events.iter().map(|event| event.subject.as_str()))?;
        let first_seq = self.storage.reserve_event_seqs(events.len() as u64)?;
        let mut rows = Vec::with_capacity(events.len());
        let mut per_subject: BTreeMap<SubjectId, (u64, BTreeSet<&str>)> = BTreeMap::new();
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
            let seq = first_seq + offset as i64;
            let sealed = key.seal(
                &event_aad(subject, seq, &event.category, event.at),
                &event.payload,
            )?;
            rows.push(EventRow {
                seq,
                subject,
                category: event.category.clone(),
                at: event.at,
                sealed,
            });
            let tally = per_subject.entry(subject).or_default();
            tally.0 += 1;
            tally.1.insert(event.category.as_str());
        }
        let now = now_millis();
        let ledger = per_subject
            .iter()
            .map(|(subject, (count, categories))| {
                LedgerDraft::new(now, actor, "events.ingest")
                    .subject(&self.subject_token(*subject))
                    .categories(categories.iter().copied())
                    .detail(format!("events={count}"))
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
                if let Some(record) = idempotency_record {
                    if let Some(stored) = self.storage.idempotency(&record.key_hash)? {
                        if stored.body_hash == record.body_hash {
                            return Ok(AppendOutcome {
                                accepted: 0,
                                duplicates: stored.accepted,
                            });
                        }
                    }
                }
                return Err(Error::IdempotencyConflict);
            }
            Err(error) => return Err(error),
        }
        Ok(AppendOutcome {
            accepted: events.len() as u64,
            duplicates: 0,
        })
    }

    fn open_event(&self, key: &DataKey, row: EventRow) -> Result<Event> {
        let payload = key.open(
            &event_aad(row.subject, row.seq, &row.category, row.at),
            &row.sealed,
            "event",
        )?;
        Ok(Event {
            seq: row.seq,
            subject: row.subject,
            category: row.category,
            at: row.at,
            payload: payload.to_vec(),
        })
    }

    fn open_attribute(&self, key: &DataKey, row: AttributeRow) -> Result<Attribute> {
        let value = key.open(
            &attribute_aad(row.subject, &row.name, &row.category, row.updated_at),
            &row.sealed,
            "attribute",
        )?;
        Ok(Attribute {
            subject: row.subject,
            name: row.name,
            category: row.category,
            updated_at: row.updated_at,
            value: value.to_vec(),
        })
    }

    /// A subject's events, opened; the read is written to the ledger.
    pub fn events_of(&self, external_id: &str, access: Access<'_>) -> Result<Vec<Event>> {
        let subject = self.active_subject(external_id)?;
        self.events_of_subject(subject, access)
    }

    /// A subject's events by internal id, opened; the read is written to the ledger.
    pub fn events_of_subject(&self, subject: SubjectId, access: Access<'_>) -> Result<Vec<Event>> {
        let key = self.data_key(subject)?;
        let events = self
            .storage
            .events_of(subject)?
            .into_iter()
            .map(|row| self.open_event(&key, row))
            .collect::<Result<Vec<_>>>()?;
        let categories: BTreeSet<&str> =
            events.iter().map(|event| event.category.as_str()).collect();
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "events.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .categories(categories)
                .detail(format!("events={}", events.len())),
        ])?;
        Ok(events)
    }

    /// Up to `limit` events of active subjects after `after_seq`, opened, for rebuilding
    /// derived state (the caller writes one ledger entry for the whole rebuild).
    pub fn scan_events(&self, after_seq: i64, limit: usize) -> Result<Vec<Event>> {
        let rows = self.storage.events_after(after_seq, limit)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            match self.data_key(row.subject) {
                Ok(key) => events.push(self.open_event(&key, row)?),
                // Forgotten between the query and now: skip.
                Err(Error::KeyDestroyed) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(events)
    }

    /// Seals and stores attribute values (a new value replaces the old one).
    pub fn put_attributes(
        &self,
        external_id: &str,
        actor: &str,
        attributes: &[NewAttribute],
    ) -> Result<()> {
        if attributes.is_empty() {
            return Ok(());
        }
        let subject = *self
            .resolve_subjects(std::iter::once(external_id))?
            .get(external_id)
            .ok_or(Error::NotFound {
                what: Missing::Subject,
            })?;
        let key = self.data_key(subject)?;
        let now = now_millis();
        let rows = attributes
            .iter()
            .map(|attribute| {
                let sealed = key.seal(
                    &attribute_aad(subject, &attribute.name, &attribute.category, now),
                    &attribute.value,
                )?;
                Ok(AttributeRow {
                    subject,
                    name: attribute.name.clone(),
                    category: attribute.category.clone(),
                    updated_at: now,
                    sealed,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<&str> = attributes
            .iter()
            .map(|attribute| attribute.name.as_str())
            .collect();
        let entry = LedgerDraft::new(now, actor, "attributes.write")
            .subject(&self.subject_token(subject))
            .categories(
                attributes
                    .iter()
                    .map(|attribute| attribute.category.as_str()),
            )
            .detail(format!("names={}", names.join(",")));
        let head = self.storage.write(WriteBatch {
            attributes: rows,
            ledger: vec![entry],
            ..WriteBatch::default()
        })?;
        self.after_write(head);
        Ok(())
    }

    /// A subject's attributes, opened; the read is written to the ledger.
    pub fn attributes_of(&self, external_id: &str, access: Access<'_>) -> Result<Vec<Attribute>> {
        let subject = self.active_subject(external_id)?;
        let key = self.data_key(subject)?;
        let attributes = self
            .storage
            .attributes_of(subject)?
            .into_iter()
            .map(|row| self.open_attribute(&key, row))
            .collect::<Result<Vec<_>>>()?;
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "attributes.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .categories(
                    attributes
                        .iter()
                        .map(|attribute| attribute.category.as_str()),
                )
                .detail(format!("attributes={}", attributes.len())),
        ])?;
        Ok(attributes)
    }

    /// Appends a consent decision to the subject's history (creating the subject if new).
    pub fn record_consent(
        &self,
        external_id: &str,
        actor: &str,
        consent: &NewConsent,
    ) -> Result<ConsentRow> {
        let subject = *self
            .resolve_subjects(std::iter::once(external_id))?
            .get(external_id)
            .ok_or(Error::NotFound {
                what: Missing::Subject,
            })?;
        let mut row = ConsentRow {
            subject,
            purpose: consent.purpose.clone(),
            granted: consent.granted,
            at: consent.at,
            source: consent.source.clone(),
            policy_version: consent.policy_version.clone(),
            tag: Vec::new(),
        };
        row.tag = self.data_key(subject)?.seal(&consent_aad(&row), &[])?;
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
        let key = self.data_key(subject)?;
        for consent in &consents {
            key.open(&consent_aad(consent), &consent.tag, "consent")?;
        }
        Ok(consents)
    }

    /// Forgets a subject completely: durable intent, key destroyed, rows erased, signed
    /// receipt, ledger. `model_interactions` is what the caller's models unlearned.
    pub fn forget(
        &self,
        external_id: &str,
        actor: &str,
        model_interactions: u64,
    ) -> Result<ForgetReceipt> {
        let subject = self.begin_forget(external_id, actor, model_interactions)?;
        self.finish_forget(subject, actor)
    }

    /// Writes the durable intent to forget; from here the forget completes even across crashes.
    pub fn begin_forget(
        &self,
        external_id: &str,
        actor: &str,
        model_interactions: u64,
    ) -> Result<SubjectId> {
        let row = self.find_subject(external_id)?.ok_or(Error::NotFound {
            what: Missing::Subject,
        })?;
        let token = self.subject_token(row.id);
        let intent = ErasureIntent {
            subject: row.id,
            subject_token: token.clone(),
            requested_at: now_millis(),
            model_interactions,
        };
        let entry =
            LedgerDraft::new(intent.requested_at, actor, "forget.requested").subject(&token);
        self.storage.begin_erasure(&intent, entry)?;
        if let Ok(mut cache) = self.subject_cache.lock() {
            self.forget_epoch.fetch_add(1, Ordering::SeqCst);
            cache.remove(&self.lookup_hash(external_id));
        }
        Ok(row.id)
    }

    /// Completes a forget begun with `begin_forget`.
    pub fn finish_forget(&self, subject: SubjectId, actor: &str) -> Result<ForgetReceipt> {
        self.finish_forget_until(subject, actor, None)?
            .ok_or(Error::Storage {
                detail: "forget stopped early".into(),
            })
    }

    /// Crash injection for tests: begins a forget and stops right after `step`.
    #[doc(hidden)]
    pub fn forget_until(&self, external_id: &str, actor: &str, step: ForgetStep) -> Result<()> {
        let subject = self.begin_forget(external_id, actor, 0)?;
        if step != ForgetStep::IntentWritten {
            self.finish_forget_until(subject, actor, Some(step))?;
        }
        Ok(())
    }

    fn finish_forget_until(
        &self,
        subject: SubjectId,
        actor: &str,
        stop_after: Option<ForgetStep>,
    ) -> Result<Option<ForgetReceipt>> {
        // Only a subject with a durable intent is shredded: the intent is what makes the
        // forget finish after a crash.
        let intent = self
            .storage
            .erasure_intent(subject)?
            .ok_or(Error::NotFound {
                what: Missing::ErasureIntent,
            })?;
        // Shred first: from this commit on, every copy of the subject's data is unreadable.
        {
            let _loading = self.key_loading.lock().map_err(|_| poisoned())?;
            self.keys.destroy_data_key(subject, now_millis())?;
            if let Ok(mut cache) = self.key_cache.lock() {
                cache.remove(&subject);
            }
        }
        if stop_after == Some(ForgetStep::KeyDestroyed) {
            return Ok(None);
        }
        // Count, sign, then erase in one transaction that checks the counts: the receipt says
        // exactly what went. Writes to a forgetting subject are refused, so a recount is rare.
        let mut attempts = 0;
        let receipt = loop {
            attempts += 1;
            let counts = self.storage.count_subject_rows(subject)?;
            let completed_at = now_millis();
            let mut receipt = ForgetReceipt {
                id: format!("rcpt_{}", to_hex(random_bytes::<12>()?.as_ref())),
                subject_token: intent.subject_token.clone(),
                requested_at: rfc3339(intent.requested_at),
                completed_at: rfc3339(completed_at),
                erased: ErasedCounts {
                    events: counts.events,
                    attributes: counts.attributes,
                    consents: counts.consents,
                    model_interactions: intent.model_interactions,
                    key_destroyed: true,
                },
                signature: String::new(),
                key_id: self.signer.key_id().to_owned(),
            };
            receipt.signature = to_hex(&self.signer.sign(&receipt.signed_message()));
            let stored = StoredReceipt {
                id: receipt.id.clone(),
                subject_token: receipt.subject_token.clone(),
                json: serde_json::to_string(&receipt).map_err(|error| Error::Storage {
                    detail: error.to_string(),
                })?,
            };
            let entry = LedgerDraft::new(completed_at, actor, "forget.completed")
                .subject(&intent.subject_token)
                .detail(format!(
                    "receipt={} events={} attributes={} consents={} model_interactions={}",
                    receipt.id,
                    counts.events,
                    counts.attributes,
                    counts.consents,
                    intent.model_interactions
                ));
            match self
                .storage
                .complete_erasure(subject, counts, &stored, entry)
            {
                Ok(()) => {
                    self.forget_cached_subject(subject);
                    break receipt;
                }
                Err(Error::Conflict { .. }) if attempts < 5 => continue,
                Err(error) => return Err(error),
            }
        };
        if let Ok(head) = self.storage.ledger_head() {
            self.after_write(head);
        }
        Ok(Some(receipt))
    }

    /// Events and attributes past their category's retention. `retention_millis(category)`
    /// gives the retention period, `None` for "kept while the subject is".
    pub fn expired(
        &self,
        now: i64,
        retention_millis: &dyn Fn(&str) -> Option<i64>,
    ) -> Result<Expired> {
        let mut expired = Expired::default();
        for category in self.storage.categories_in_use()? {
            let Some(retention) = retention_millis(&category) else {
                continue;
            };
            let before = now.saturating_sub(retention);
            for row in self.storage.events_before(&category, before)? {
                match self.data_key(row.subject) {
                    Ok(key) => expired.events.push(self.open_event(&key, row)?),
                    Err(Error::KeyDestroyed) => continue,
                    Err(error) => return Err(error),
                }
            }
            for row in self.storage.attributes_before(&category, before)? {
                match self.data_key(row.subject) {
                    Ok(key) => expired.attributes.push(self.open_attribute(&key, row)?),
                    Err(Error::KeyDestroyed) => continue,
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(expired)
    }

    /// Erases what `expired` found, one ledger entry per subject; returns the rows erased.
    pub fn erase_expired(&self, expired: &Expired, actor: &str) -> Result<u64> {
        let mut per_subject: BTreeMap<SubjectId, (u64, u64, BTreeSet<&str>)> = BTreeMap::new();
        for event in &expired.events {
            let tally = per_subject.entry(event.subject).or_default();
            tally.0 += 1;
            tally.2.insert(&event.category);
        }
        for attribute in &expired.attributes {
            let tally = per_subject.entry(attribute.subject).or_default();
            tally.1 += 1;
            tally.2.insert(&attribute.category);
        }
        if per_subject.is_empty() {
            return Ok(0);
        }
        let now = now_millis();
        let ledger = per_subject
            .iter()
            .map(|(subject, (events, attributes, categories))| {
                LedgerDraft::new(now, actor, "retention.erase")
                    .subject(&self.subject_token(*subject))
                    .categories(categories.iter().copied())
                    .detail(format!("events={events} attributes={attributes}"))
            })
            .collect();
        let seqs: Vec<i64> = expired.events.iter().map(|event| event.seq).collect();
        let attributes: Vec<(SubjectId, String, i64)> = expired
            .attributes
            .iter()
            .map(|attribute| {
                (
                    attribute.subject,
                    attribute.name.clone(),
                    attribute.updated_at,
                )
            })
            .collect();
        let erased = self.storage.erase_records(&seqs, &attributes, ledger)?;
        if let Ok(head) = self.storage.ledger_head() {
            self.after_write(head);
        }
        Ok(erased)
    }

    /// A stored forget receipt.
    pub fn receipt(&self, id: &str) -> Result<Option<ForgetReceipt>> {
        match self.storage.receipt(id)? {
            None => Ok(None),
            Some(stored) => serde_json::from_str(&stored.json)
                .map(Some)
                .map_err(|error| Error::Storage {
                    detail: format!("stored receipt unreadable: {error}"),
                }),
        }
    }

    /// The key that verifies receipts and ledger checkpoints.
    pub fn public_key(&self) -> PublicKeyInfo {
        PublicKeyInfo {
            key_id: self.signer.key_id().to_owned(),
            algorithm: "Ed25519",
            public_key: to_hex(&self.signer.public_key()),
        }
    }

    /// Appends entries for accesses the engine made (reads, denials).
    pub fn record_access(&self, entries: Vec<LedgerDraft>) -> Result<()> {
        let head = self.storage.append_ledger(entries)?;
        self.after_write(head);
        Ok(())
    }

    /// Issues an API key with `role`: returns the stored row and the secret, which is shown
    /// only now (the vault keeps its SHA-256, never the secret).
    pub fn create_api_key(
        &self,
        role: &str,
        label: &str,
        actor: &str,
    ) -> Result<(ApiKeyRow, Zeroizing<String>)> {
        if role.is_empty() || label.len() > 200 {
            return Err(Error::BadInput {
                detail: "an API key needs a role and a label of at most 200 bytes".into(),
            });
        }
        let id = format!("key_{}", to_hex(&random_bytes::<6>()?[..]));
        let secret = Zeroizing::new(format!("dsk_{}", to_hex(&random_bytes::<32>()?[..])));
        let now = now_millis();
        let row = ApiKeyRow {
            id: id.clone(),
            role: role.to_owned(),
            label: label.to_owned(),
            secret_hash: api_key_hash(&secret),
            created_at: now,
            revoked_at: None,
        };
        let head = self.storage.write(WriteBatch {
            api_keys: vec![row.clone()],
            ledger: vec![
                LedgerDraft::new(now, actor, "api_key.created").detail(format!("{id} role {role}")),
            ],
            ..WriteBatch::default()
        })?;
        self.after_write(head);
        Ok((row, secret))
    }

    /// How many events are stored for active subjects (a rebuild's progress total).
    pub fn count_events(&self) -> Result<u64> {
        self.storage.count_events()
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

    /// Every API key ever issued (revoked ones too), oldest first.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        self.storage.api_keys()
    }

    /// Revokes a live API key; `NotFound` when no live key has that id.
    pub fn revoke_api_key(&self, id: &str, actor: &str) -> Result<()> {
        let now = now_millis();
        let head = self.storage.write(WriteBatch {
            revoked_api_keys: vec![(id.to_owned(), now)],
            ledger: vec![LedgerDraft::new(now, actor, "api_key.revoked").detail(id.to_owned())],
            ..WriteBatch::default()
        })?;
        self.after_write(head);
        Ok(())
    }

    /// Ledger entries, newest first.
    pub fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerRecord>> {
        self.storage.ledger_query(filter)
    }

    /// Re-walks the whole chain and checks every signed checkpoint.
    pub fn verify_ledger(&self) -> Result<LedgerVerification> {
        let checkpoints = self.storage.checkpoints()?;
        let anchor = self.keys.ledger_anchor()?;
        let mut verifier = ChainVerifier::new(
            &self.ledger_key,
            checkpoints.iter().map(|checkpoint| checkpoint.seq),
            anchor,
        );
        self.storage
            .ledger_scan(&mut |record| verifier.push(record))?;
        Ok(verifier.finish(&checkpoints, &self.signer.public_key()))
    }

    /// Signs a checkpoint at the current head now (e.g. before a shutdown or a backup).
    pub fn checkpoint_ledger(&self) -> Result<()> {
        let head = self.storage.ledger_head()?;
        if head.seq > self.last_checkpoint_seq.load(Ordering::SeqCst) {
            self.sign_checkpoint(head)?;
        }
        Ok(())
    }

    /// Signs a checkpoint when the head crossed an interval. Best effort: the write it
    /// follows is committed whatever happens here, and a failed checkpoint is retried at the
    /// next crossing check (the last checkpoint mark only moves on success).
    fn after_write(&self, head: LedgerHead) {
        let last = self.last_checkpoint_seq.load(Ordering::SeqCst);
        if head.seq / CHECKPOINT_INTERVAL > last / CHECKPOINT_INTERVAL {
            let _ = self.sign_checkpoint(head);
        }
    }

    fn sign_checkpoint(&self, head: LedgerHead) -> Result<()> {
        let at = now_millis();
        let signature = self
            .signer
            .sign(&checkpoint_message(head.seq, &head.hash, at));
        self.storage.add_checkpoint(&Checkpoint {
            seq: head.seq,
            hash: head.hash,
            at,
            key_id: self.signer.key_id().to_owned(),
            signature,
        })?;
        // The anchor lives in the key store, apart from the data: cutting the chain short or
        // deleting checkpoints in the data file cannot hide entries up to here.
        self.keys.set_ledger_anchor(&head)?;
        self.last_checkpoint_seq
            .fetch_max(head.seq, Ordering::SeqCst);
        Ok(())
    }

    /// Writes a consistent data-only backup (no keys) to `dest`, which must not exist.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        self.checkpoint_ledger()?;
        self.storage.backup(dest)
    }

    /// Writes a copy of the key store (keys stay wrapped by the KEK) to `dest`. Keep such
    /// copies short-lived: a forgotten subject's key lives on in them until they are deleted.
    pub fn backup_keys(&self, dest: &Path) -> Result<()> {
        self.keys.backup(dest)
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

    /// The backend underneath, for conformance cases that must act as a racing writer.
    #[doc(hidden)]
    pub fn storage_for_tests(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Events of one subject by internal id, unlogged, for tests that check a restored
    /// backup: opening fails once the key is destroyed.
    #[doc(hidden)]
    pub fn open_events_of_subject(&self, subject: SubjectId) -> Result<Vec<Event>> {
        let key = self.data_key(subject)?;
        self.storage
            .events_of(subject)?
            .into_iter()
            .map(|row| self.open_event(&key, row))
            .collect()
    }
}

/// Takes an exclusive lock on `DATA_DIR/LOCK` for as long as the returned file lives: two
/// processes writing one data folder would each believe they own the ledger head.
fn lock_folder(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| Error::io("opening lock file", &path, error))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Config {
            detail: format!(
                "the data folder {} is in use by another discreet process",
                dir.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(Error::io("locking", &path, error)),
    }
}

/// A new subject's row: its customer id sealed under its own key.
fn new_subject_row(
    key: &DataKey,
    id: SubjectId,
    external_id: &str,
    now: i64,
) -> Result<SubjectRow> {
    let sealed_external_id = key.seal(&external_id_aad(id), external_id.as_bytes())?;
    Ok(SubjectRow {
        id,
        sealed_external_id,
        created_at: now,
        state: SubjectState::Active,
    })
}

fn poisoned() -> Error {
    Error::Storage {
        detail: "a lock was poisoned by a panic".into(),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|error| Error::io("creating data folder", dir, error))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}
