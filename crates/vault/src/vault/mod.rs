//! The vault facade: the only way personal data goes in and out of storage.
//!
//! It finds subjects by a keyed hash of the shop's customer id, seals every personal value
//! with the subject's own data key (associated data binds each ciphertext to its subject
//! and row), writes every access to the ledger in the same transaction as the data, and
//! forgets a subject by a durable intent, key destruction, row erasure and a signed receipt
//! — finishing any interrupted forget when it opens. It never decides whether a use is
//! allowed: that is the engine's job; it records what the engine says it did.
//!
//! The type and its opening live here; its `impl` blocks live beside it by responsibility:
//! `sealing` (associated data, opening rows), `subjects` (lookups and their cache), `keys`
//! (data keys, secrets, KEK rotation), `events`, `attributes` and `consents` (writes and
//! logged reads), `forget` (intent, shredding, receipts), `items` (the catalogue, in clear), `records` (every
//! active subject with its customer id, and all of one subject's records in one logged read,
//! for moving a shop between stores), `retention`, `ledger_ops`
//! (ledger, checkpoints, backups), `api_keys`, `cache` (the bounded map both caches use), and `testing` (hooks for tests,
//! with the `testing` feature only).

mod api_keys;
mod attributes;
mod cache;
mod consents;
mod documents;
mod events;
mod forget;
mod items;
mod keys;
mod ledger_ops;
mod records;
mod retention;
mod sealing;
mod subjects;
#[cfg(feature = "testing")]
mod testing;
mod verify;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, RwLock};

use crate::crypto::{DataKey, KekRing, Signer, TokenKey, to_hex};
use crate::error::{Error, Result};
use crate::integrity::IntegrityKeys;
use crate::ledger::{LedgerDraft, LedgerKey};
use crate::postgres::PostgresOptions;
use crate::receipt::{ForgetReceipt, PublicKeyInfo};
use crate::sqlite::{DATA_FILE, KEY_STORE_FILE, SqliteKeyStore, SqliteStorage};
use crate::storage::*;

pub use api_keys::api_key_hash;
pub use attributes::{Attribute, NewAttribute};
pub use consents::NewConsent;
pub use documents::DocumentSignature;
pub use events::{AppendOutcome, Event, Idempotency, NewEvent};
#[cfg(feature = "testing")]
pub use forget::ForgetStep;
pub use keys::RotationReport;
pub use records::SubjectRecords;
pub use retention::Expired;

use cache::BoundedCache;
use subjects::SubjectCache;

/// Entries each in-memory cache (unwrapped data keys, subject lookups) holds at most; past
/// this a cache starts afresh.
const KEY_CACHE_LIMIT: usize = 65_536;

const SECRET_LOOKUP: &str = "subject-lookup-key";
const SECRET_TOKEN: &str = "subject-token-key";
const SECRET_SIGNING: &str = "signing-seed";
const SECRET_LEDGER: &str = "ledger-chain-key";
/// The secret whose subkeys MAC API key rows, consent chains, the data file's seal and the
/// ledger anchor; its creation is what triggers the one-time sealing of existing rows.
const SECRET_INTEGRITY: &str = "row-integrity-key";
/// The `meta` entry naming the signing key of the key store that belongs to this data.
const META_SIGNING_KEY: &str = "signing_key_id";

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

/// Who reads, and for which purpose (written to the ledger).
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    pub actor: &'a str,
    pub purpose: &'a str,
}

/// Where an embedded vault keeps its files.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// The data folder (created if missing).
    pub data_dir: PathBuf,
    /// The key store file; `keystore.sqlite` beside the KEK file when not set. Never
    /// inside the data folder.
    pub key_store: Option<PathBuf>,
    /// Where the KEK was read from, to refuse a KEK kept inside the data folder.
    pub kek_file: Option<PathBuf>,
    /// Open to verify only: a data file whose seal does not verify is opened all the same,
    /// with every write refused, so that `verify_ledger` can say what is wrong.
    pub verify_only: bool,
}

impl SqliteOptions {
    /// Data in `data_dir`, KEK from `kek_file`, the key store beside the KEK file.
    pub fn new(data_dir: impl Into<PathBuf>, kek_file: Option<PathBuf>) -> Self {
        SqliteOptions {
            data_dir: data_dir.into(),
            key_store: None,
            kek_file,
            verify_only: false,
        }
    }

    /// The same, with the key store at `key_store`.
    pub fn with_key_store(mut self, key_store: impl Into<PathBuf>) -> Self {
        self.key_store = Some(key_store.into());
        self
    }

    /// The sealed-data file.
    pub fn data_file(&self) -> PathBuf {
        self.data_dir.join(DATA_FILE)
    }

    /// The key store file: as configured, else `keystore.sqlite` beside the KEK file.
    pub fn key_store_file(&self) -> Result<PathBuf> {
        if let Some(key_store) = &self.key_store {
            return Ok(key_store.clone());
        }
        match &self.kek_file {
            Some(kek_file) => Ok(kek_file
                .parent()
                .map(|folder| folder.join(KEY_STORE_FILE))
                .unwrap_or_else(|| PathBuf::from(KEY_STORE_FILE))),
            None => Err(Error::Config {
                detail: "no key store path: give one (it lives beside the KEK file by default, never inside the data folder)".into(),
            }),
        }
    }
}

/// Refuses a KEK file that lives inside the data folder.
pub fn check_kek_outside(kek_file: &Path, data_dir: &Path) -> Result<()> {
    check_outside(kek_file, data_dir, "KEK file", "its key")
}

/// Refuses a key store that lives inside the data folder.
pub fn check_key_store_outside(key_store: &Path, data_dir: &Path) -> Result<()> {
    check_outside(key_store, data_dir, "key store", "the subjects' keys")
}

fn check_outside(file: &Path, data_dir: &Path, what: &str, carried: &str) -> Result<()> {
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
    if absolute(file).starts_with(absolute(data_dir)) {
        return Err(Error::Config {
            detail: format!(
                "the {what} {} is inside the data folder {}; keep it elsewhere so that a copy of the data never carries {carried}",
                file.display(),
                data_dir.display()
            ),
        });
    }
    Ok(())
}

/// Moves a key store kept inside the data folder by an earlier build to `dest`, once: a
/// consistent copy is written beside `dest`, synced and renamed into place, then the old
/// file is removed. With a key store at both places, nothing is moved and the vault stops.
fn move_key_store_out(data_dir: &Path, dest: &Path) -> Result<()> {
    let old = data_dir.join(KEY_STORE_FILE);
    if !old.exists() {
        return Ok(());
    }
    if dest.exists() {
        return Err(Error::Config {
            detail: format!(
                "there is a key store inside the data folder ({}) and one at {}; keep the right one \
                 outside the data folder and remove the other",
                old.display(),
                dest.display()
            ),
        });
    }
    SqliteKeyStore::move_file(&old, dest)
}

/// The vault.
pub struct Vault {
    storage: Box<dyn Storage>,
    keys: Box<dyn KeyStorage>,
    keks: RwLock<KekRing>,
    lookup_key: TokenKey,
    token_key: TokenKey,
    signer: Signer,
    key_cache: Mutex<BoundedCache<SubjectId, Arc<DataKey>>>,
    /// Lookup HMAC → internal id, guarded by a forget epoch.
    subject_cache: SubjectCache,
    subject_creation: Mutex<()>,
    /// Held while a data key is loaded into the cache or destroyed, so that a key read just
    /// before its destruction never lands in the cache after it.
    key_loading: Mutex<()>,
    /// One KEK rotation at a time.
    rotation: Mutex<()>,
    ledger_key: LedgerKey,
    /// MACs rows that grant power or record decisions, the seal and the ledger anchor.
    integrity: Arc<IntegrityKeys>,
    /// Why the data file is refused for writing (opened with `verify_only` only).
    refused: Option<String>,
    /// Subjects whose broken consent history was already put on the ledger by this process.
    consent_alarms: Mutex<HashSet<SubjectId>>,
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
        let key_store = options.key_store_file()?;
        check_key_store_outside(&key_store, &options.data_dir)?;
        create_private_dir(&options.data_dir)?;
        let folder_lock = lock_folder(&options.data_dir)?;
        // A missing key store folder is made private; an existing one is left as it is.
        if let Some(folder) = key_store
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
            && !folder.exists()
        {
            create_private_dir(folder)?;
        }
        move_key_store_out(&options.data_dir, &key_store)?;
        let storage = SqliteStorage::open(&options.data_file())?;
        let keys = SqliteKeyStore::open(&key_store)?;
        let mut vault =
            Vault::open_checked(Box::new(storage), Box::new(keys), keks, options.verify_only)?;
        vault._folder_lock = Some(folder_lock);
        Ok(vault)
    }

    /// Opens the vault on PostgreSQL: sealed data in the data schema, keys in the key
    /// schema (or the key database), both created or migrated first. Several processes may
    /// open the same schemas: their writers take turns on the schema's writer lock.
    pub fn open_postgres(options: &PostgresOptions, keks: KekRing) -> Result<Vault> {
        let (storage, keys) = crate::postgres::open_stores(options)?;
        Vault::open_checked(Box::new(storage), Box::new(keys), keks, options.verify_only)
    }

    /// Opens a vault over any backend; finishes interrupted forgets and re-applies forgets
    /// to data restored from an old backup. A data file whose seal does not verify (a cut
    /// ledger tail, a replayed or deleted row) is refused: `Error::Integrity`.
    pub fn open(
        storage: Box<dyn Storage>,
        keys: Box<dyn KeyStorage>,
        keks: KekRing,
    ) -> Result<Vault> {
        Vault::open_checked(storage, keys, keks, false)
    }

    /// As `open`; with `verify_only`, a data file whose seal does not verify is opened all
    /// the same, every write refused, so that `verify_ledger` can report it.
    pub fn open_checked(
        storage: Box<dyn Storage>,
        keys: Box<dyn KeyStorage>,
        keks: KekRing,
        verify_only: bool,
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
        let secret = |name: &str| keys::open_secret(keys.as_ref(), &keks, name);
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
        let (integrity, refused) = keys::attach_integrity(storage.as_ref(), keys.as_ref(), &keks)?;
        if let Some(problem) = &refused
            && !verify_only
        {
            return Err(Error::Integrity {
                detail: format!(
                    "{problem}; refusing to start: `discreet audit verify` says what is wrong; \
                     restore the data file from a backup"
                ),
            });
        }
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
            key_cache: Mutex::new(BoundedCache::new(KEY_CACHE_LIMIT)),
            subject_cache: SubjectCache::new(KEY_CACHE_LIMIT),
            subject_creation: Mutex::new(()),
            key_loading: Mutex::new(()),
            rotation: Mutex::new(()),
            ledger_key: LedgerKey::new(&ledger_secret),
            integrity,
            refused,
            consent_alarms: Mutex::new(HashSet::new()),
            last_checkpoint_seq: AtomicI64::new(last_checkpoint_seq),
            recovered: Vec::new(),
            _folder_lock: None,
        };
        if vault.refused.is_none() {
            // Beside other processes, a forget in progress may be another's: only those
            // begun long ago (their process is gone) are finished here.
            let begun_before = if vault.storage.cluster().is_some() {
                now_millis() - STALE_FORGET_MILLIS
            } else {
                i64::MAX
            };
            vault.recovered = vault.recover(begun_before)?;
        }
        Ok(vault)
    }

    /// Forgets begun and not yet finished (they finish at the next start).
    pub fn pending_erasures(&self) -> Result<usize> {
        Ok(self.storage.erasure_intents()?.len())
    }

    /// Subjects held (forgotten ones are gone).
    pub fn subjects_held(&self) -> Result<usize> {
        Ok(self.storage.subject_ids()?.len())
    }

    /// Finishes every interrupted forget, then drops rows of subjects whose key is destroyed.
    /// Finishes the forgets begun before `begun_before` (unix ms) and not finished (their
    /// process stopped), and drops the rows of subjects whose key is destroyed and whose
    /// forget is not in progress (a restored backup). Beside other processes, the once-only
    /// duty that calls it passes a time long enough ago that the forget's own process is gone.
    pub fn recover(&self, begun_before: i64) -> Result<Vec<ForgetReceipt>> {
        let mut receipts = Vec::new();
        let intents = self.storage.erasure_intents()?;
        let in_progress: HashSet<SubjectId> = intents
            .iter()
            .filter(|intent| intent.requested_at >= begun_before)
            .map(|intent| intent.subject)
            .collect();
        for intent in intents
            .into_iter()
            .filter(|intent| intent.requested_at < begun_before)
        {
            receipts.push(
                self.finish_forget_until(intent.subject, "system:recovery", None)?
                    .ok_or(Error::Storage {
                        detail: "recovery stopped before its receipt".into(),
                    })?,
            );
        }
        let destroyed = self.keys.destroyed_subjects()?;
        for subject in self.storage.subjects_present(&destroyed)? {
            if in_progress.contains(&subject) {
                continue;
            }
            let entry = LedgerDraft::new(now_millis(), "system:recovery", "forget.reapplied")
                .subject(&self.subject_token(subject))
                .detail("rows of a forgotten subject found (restored backup?) and dropped");
            self.storage.drop_subject(subject, entry)?;
        }
        Ok(receipts)
    }

    /// Why writes are refused, when the vault was opened `verify_only` over a data file
    /// whose seal does not verify.
    pub fn refused_writes(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// Receipts of forgets that were interrupted and completed when this vault opened.
    pub fn recovered_forgets(&self) -> &[ForgetReceipt] {
        &self.recovered
    }

    /// The pseudonymous token naming a subject in the ledger, metrics and receipts.
    pub fn subject_token(&self, subject: SubjectId) -> String {
        to_hex(&self.token_key.tag(&subject.to_be_bytes())[..16])
    }

    /// The key that verifies receipts and ledger checkpoints.
    pub fn public_key(&self) -> PublicKeyInfo {
        PublicKeyInfo {
            key_id: self.signer.key_id().to_owned(),
            algorithm: "Ed25519",
            public_key: to_hex(&self.signer.public_key()),
        }
    }
}

/// How long ago a forget must have begun before another process finishes it for the one
/// that began it (which then surely stopped: a forget waits for the other nodes at most
/// seconds).
pub const STALE_FORGET_MILLIS: i64 = 2 * 60 * 1000;

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
    // A lock just released can still be held for a moment by a process forked in between
    // (it shares the descriptor until it execs or exits): wait briefly before refusing.
    let mut attempts = 0;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if attempts < LOCK_ATTEMPTS => {
                attempts += 1;
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Config {
                    detail: format!(
                        "the data folder {} is in use by another discreet process",
                        dir.display()
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(Error::io("locking", &path, error));
            }
        }
    }
}

/// How often, and how long apart, a held folder lock is tried again before refusing.
const LOCK_ATTEMPTS: u32 = 20;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// The error for a lock whose holder panicked.
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
