//! The embedded backend: sealed data, consents, receipts and the ledger in one SQLite
//! file (WAL, `synchronous = FULL`), written by one writer thread that batches concurrent
//! writes into a single transaction (group commit), read through a small pool of
//! connections; wrapped keys in a second SQLite file, the key store, kept apart so that a
//! data backup holds no keys.
//!
//! This module sees only sealed bytes and clear metadata; it never holds a key.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::crypto::WrappedKey;
use crate::error::{Error, Missing, Result};
use crate::ledger::{Checkpoint, LedgerDraft, LedgerHead, LedgerKey, LedgerRecord};
use crate::storage::*;

/// File name of the sealed data inside the data folder.
pub const DATA_FILE: &str = "vault.sqlite";
/// File name of the key store inside the data folder (unless configured elsewhere).
pub const KEY_STORE_FILE: &str = "keystore.sqlite";

/// Most jobs folded into one transaction.
const MAX_JOBS_PER_TRANSACTION: usize = 512;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Settings of every connection to the data file. WAL lets readers run beside the writer;
/// FULL syncs the WAL at every commit so an acknowledged write survives power loss; FAST
/// secure delete zeroes freed cells where that costs no extra I/O; a larger auto-checkpoint
/// interval writes hot index pages back to the database file less often.
/// Public so that benchmarks can give a plain baseline the very same settings.
pub const DATA_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = FAST;
     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 8192;";

const DATA_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects(
    id INTEGER PRIMARY KEY,
    sealed_external_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    forgetting INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,
    subject INTEGER NOT NULL,
    category TEXT NOT NULL,
    at INTEGER NOT NULL,
    sealed BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_subject ON events(subject, seq);
CREATE INDEX IF NOT EXISTS events_by_category ON events(category, at);
CREATE TABLE IF NOT EXISTS attributes(
    subject INTEGER NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY(subject, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attributes_by_category ON attributes(category, updated_at);
CREATE TABLE IF NOT EXISTS consents(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    granted INTEGER NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    tag BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS consents_by_subject ON consents(subject, id);
CREATE TABLE IF NOT EXISTS idempotency(
    key_hash BLOB PRIMARY KEY,
    body_hash BLOB NOT NULL,
    accepted INTEGER NOT NULL,
    at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erasures(
    subject INTEGER PRIMARY KEY,
    subject_token TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    model_interactions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts(
    id TEXT PRIMARY KEY,
    subject_token TEXT NOT NULL,
    json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger(
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_token TEXT,
    purpose TEXT,
    categories TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_by_subject ON ledger(subject_token, seq);
CREATE INDEX IF NOT EXISTS ledger_by_actor ON ledger(actor, seq);
CREATE TABLE IF NOT EXISTS api_keys(
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    label TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS ledger_checkpoints(
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    at INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL);
";

const KEY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS data_keys(
    subject INTEGER PRIMARY KEY,
    lookup BLOB UNIQUE,
    kek_id TEXT,
    wrapped BLOB,
    destroyed_at INTEGER);
CREATE TABLE IF NOT EXISTS secrets(
    name TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    wrapped BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_anchor(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL);
";

fn open_data_connection(path: &Path) -> Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    connection.execute_batch(DATA_PRAGMAS)?;
    Ok(connection)
}

/// What the writer thread carries from one transaction to the next.
struct WriterState {
    head: LedgerHead,
    /// Keys the chain; attached by the vault before its first write.
    ledger_key: Option<Arc<LedgerKey>>,
}

type AnyBox = Box<dyn Any + Send>;
type Operation = Box<dyn FnOnce(&Connection, &mut WriterState) -> Result<AnyBox> + Send>;

struct Job {
    operation: Operation,
    reply: mpsc::SyncSender<Result<AnyBox>>,
}

/// Sealed data, consents, receipts and the ledger in SQLite.
pub struct SqliteStorage {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    next_event_seq: AtomicI64,
}

impl SqliteStorage {
    /// Opens (creating if needed) the data file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = open_data_connection(path)?;
        connection.execute_batch(DATA_SCHEMA)?;
        let head = read_ledger_head(&connection)?;
        // Sequence numbers are never reused, even after the newest events are erased: the
        // high-water mark is kept in `meta`, written with every batch of events.
        let next_event_seq: i64 = connection.query_row(
            "SELECT max(coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'event_seq_high'), 0),
                        coalesce((SELECT max(seq) FROM events), 0)) + 1",
            [],
            |row| row.get(0),
        )?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("discreet-vault-writer".into())
            .spawn(move || {
                run_writer(
                    connection,
                    receiver,
                    WriterState {
                        head,
                        ledger_key: None,
                    },
                )
            })
            .map_err(|error| Error::io("starting the writer thread for", path, error))?;
        Ok(SqliteStorage {
            path: path.to_owned(),
            jobs: Some(sender),
            writer: Some(writer),
            readers: Mutex::new(Vec::new()),
            next_event_seq: AtomicI64::new(next_event_seq),
        })
    }

    /// Runs `operation` inside the writer's next transaction; returns once it is committed.
    fn submit<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Connection, &mut WriterState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        let operation: Operation = Box::new(move |connection, state| {
            operation(connection, state).map(|value| Box::new(value) as AnyBox)
        });
        self.jobs
            .as_ref()
            .ok_or(Error::WriterStopped)?
            .send(Job { operation, reply })
            .map_err(|_| Error::WriterStopped)?;
        let value = answer.recv().map_err(|_| Error::WriterStopped)??;
        value
            .downcast::<T>()
            .map(|value| *value)
            .map_err(|_| Error::Storage {
                detail: "writer reply of the wrong type".into(),
            })
    }

    /// Runs `read` on a pooled read connection.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .map_err(|_| Error::Storage {
                detail: "reader pool poisoned".into(),
            })?
            .pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open_data_connection(&self.path)?,
        };
        let outcome = read(&connection);
        if let Ok(mut readers) = self.readers.lock() {
            if readers.len() < MAX_IDLE_READERS {
                readers.push(connection);
            }
        }
        outcome
    }
}

impl Drop for SqliteStorage {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once queued jobs are committed.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn run_writer(connection: Connection, jobs: mpsc::Receiver<Job>, mut state: WriterState) {
    let storage_error = |detail: &str| Error::Storage {
        detail: detail.to_owned(),
    };
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_TRANSACTION {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
            let detail = error.to_string();
            for job in batch {
                let _ = job.reply.send(Err(storage_error(&detail)));
            }
            continue;
        }
        let head_before_transaction = state.head;
        let single = batch.len() == 1;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut pending = batch.into_iter();
        let mut aborted: Option<String> = None;
        for job in pending.by_ref() {
            let head_before_job = state.head;
            // Alone in its transaction, a job needs no savepoint (which would copy every page
            // it touches to a sub-journal): if it fails, the whole transaction rolls back.
            let outcome = if single {
                (job.operation)(&connection, &mut state)
            } else {
                match connection.execute_batch("SAVEPOINT job") {
                    Err(error) => Err(Error::from(error)),
                    Ok(()) => {
                        let outcome = (job.operation)(&connection, &mut state);
                        let settle = if outcome.is_ok() {
                            "RELEASE job"
                        } else {
                            "ROLLBACK TO job; RELEASE job"
                        };
                        match (outcome, connection.execute_batch(settle)) {
                            (Ok(value), Ok(())) => Ok(value),
                            (Err(error), _) => Err(error),
                            (Ok(_), Err(error)) => Err(Error::from(error)),
                        }
                    }
                }
            };
            if outcome.is_err() {
                state.head = head_before_job;
                // SQLite may have rolled back the whole transaction itself (I/O error, full
                // disk): then nothing before this job will be committed either.
                if single || connection.is_autocommit() {
                    aborted = Some(match &outcome {
                        Err(error) => error.to_string(),
                        Ok(_) => String::new(),
                    });
                    let _ = job.reply.send(outcome);
                    break;
                }
            }
            outcomes.push((job.reply, outcome));
        }
        if let Some(detail) = aborted {
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            let detail = format!("transaction rolled back: {detail}");
            for (reply, _) in outcomes {
                let _ = reply.send(Err(storage_error(&detail)));
            }
            for job in pending {
                let _ = job.reply.send(Err(storage_error(&detail)));
            }
            state.head = read_ledger_head(&connection).unwrap_or(head_before_transaction);
            continue;
        }
        // Acknowledge only after the commit is durable.
        match connection.execute_batch("COMMIT") {
            Ok(()) => {
                for (reply, outcome) in outcomes {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                if !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
                // Read the head back rather than trust memory: it is whatever was committed.
                state.head = read_ledger_head(&connection).unwrap_or(head_before_transaction);
                let detail = error.to_string();
                for (reply, _) in outcomes {
                    let _ = reply.send(Err(storage_error(&detail)));
                }
            }
        }
    }
}

fn read_ledger_head(connection: &Connection) -> Result<LedgerHead> {
    let head = connection
        .query_row(
            "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    Ok(match head {
        None => LedgerHead::EMPTY,
        Some((seq, hash)) => LedgerHead {
            seq,
            hash: hash_array(hash),
        },
    })
}

fn hash_array(bytes: Vec<u8>) -> [u8; 32] {
    let mut hash = [0u8; 32];
    if bytes.len() == 32 {
        hash.copy_from_slice(&bytes);
    }
    hash
}

fn append_ledger_entries(
    connection: &Connection,
    state: &mut WriterState,
    entries: Vec<LedgerDraft>,
) -> Result<()> {
    let key = state.ledger_key.clone().ok_or_else(|| Error::Config {
        detail: "the ledger key is not attached; open the storage through the vault".into(),
    })?;
    let mut statement = connection.prepare_cached(
        "INSERT INTO ledger(seq, at, actor, action, subject_token, purpose, categories, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for entry in entries {
        let record = key.chain(&mut state.head, entry);
        let entry = &record.entry;
        let categories =
            serde_json::to_string(&entry.categories).map_err(|error| Error::Storage {
                detail: error.to_string(),
            })?;
        statement.execute(params![
            record.seq,
            entry.at,
            entry.actor,
            entry.action,
            entry.subject_token,
            entry.purpose,
            categories,
            entry.outcome,
            entry.detail,
            &record.prev_hash[..],
            &record.hash[..],
        ])?;
    }
    Ok(())
}

fn subject_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SubjectRow> {
    Ok(SubjectRow {
        id: row.get(0)?,
        sealed_external_id: row.get(1)?,
        created_at: row.get(2)?,
        state: if row.get::<_, i64>(3)? != 0 {
            SubjectState::Forgetting
        } else {
            SubjectState::Active
        },
    })
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: row.get(0)?,
        subject: row.get(1)?,
        category: row.get(2)?,
        at: row.get(3)?,
        sealed: row.get(4)?,
    })
}

fn attribute_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AttributeRow> {
    Ok(AttributeRow {
        subject: row.get(0)?,
        name: row.get(1)?,
        category: row.get(2)?,
        updated_at: row.get(3)?,
        sealed: row.get(4)?,
    })
}

fn ledger_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerRecord> {
    let categories: String = row.get(6)?;
    Ok(LedgerRecord {
        seq: row.get(0)?,
        entry: LedgerDraft {
            at: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            subject_token: row.get(4)?,
            purpose: row.get(5)?,
            // Unparseable categories stay as they are, so verification reports the entry.
            categories: serde_json::from_str(&categories).unwrap_or_else(|_| vec![categories]),
            outcome: row.get(7)?,
            detail: row.get(8)?,
        },
        prev_hash: hash_array(row.get(9)?),
        hash: hash_array(row.get(10)?),
    })
}

fn intent_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ErasureIntent> {
    Ok(ErasureIntent {
        subject: row.get(0)?,
        subject_token: row.get(1)?,
        requested_at: row.get(2)?,
        model_interactions: row.get::<_, i64>(3)? as u64,
    })
}

const SUBJECT_COLUMNS: &str = "id, sealed_external_id, created_at, forgetting";
const EVENT_COLUMNS: &str = "seq, subject, category, at, sealed";
const ATTRIBUTE_COLUMNS: &str = "subject, name, category, updated_at, sealed";
const LEDGER_COLUMNS: &str =
    "seq, at, actor, action, subject_token, purpose, categories, outcome, detail, prev_hash, hash";
const INTENT_COLUMNS: &str = "subject, subject_token, requested_at, model_interactions";

fn intent_of(connection: &Connection, subject: SubjectId) -> Result<Option<ErasureIntent>> {
    Ok(connection
        .query_row(
            &format!("SELECT {INTENT_COLUMNS} FROM erasures WHERE subject = ?1"),
            [subject],
            intent_from_row,
        )
        .optional()?)
}

impl Storage for SqliteStorage {
    fn subject(&self, id: SubjectId) -> Result<Option<SubjectRow>> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {SUBJECT_COLUMNS} FROM subjects WHERE id = ?1"
                ))?
                .query_row([id], subject_from_row)
                .optional()?)
        })
    }

    fn subjects_present(&self, ids: &[SubjectId]) -> Result<Vec<SubjectId>> {
        self.read(|connection| {
            let mut statement =
                connection.prepare_cached("SELECT 1 FROM subjects WHERE id = ?1")?;
            let mut present = Vec::new();
            for &id in ids {
                if statement.exists([id])? {
                    present.push(id);
                }
            }
            Ok(present)
        })
    }

    fn attach_ledger_key(&self, key: LedgerKey) -> Result<()> {
        let key = Arc::new(key);
        self.submit(move |_connection, state| {
            state.ledger_key = Some(key);
            Ok(())
        })
    }

    fn meta(&self, name: &str) -> Result<Option<String>> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [name], |row| {
                    row.get(0)
                })
                .optional()?)
        })
    }

    fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.submit(move |connection, _state| {
            connection.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![name, value],
            )?;
            Ok(())
        })
    }

    fn is_empty(&self) -> Result<bool> {
        self.read(|connection| {
            Ok(!connection
                .prepare_cached("SELECT 1 FROM subjects UNION ALL SELECT 1 FROM ledger LIMIT 1")?
                .exists([])?)
        })
    }

    fn reserve_event_seqs(&self, n: u64) -> Result<i64> {
        Ok(self.next_event_seq.fetch_add(n as i64, Ordering::SeqCst))
    }

    fn idempotency(&self, key_hash: &[u8]) -> Result<Option<IdempotencyRecord>> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT key_hash, body_hash, accepted, at FROM idempotency WHERE key_hash = ?1",
                    [key_hash],
                    |row| {
                        Ok(IdempotencyRecord {
                            key_hash: row.get(0)?,
                            body_hash: row.get(1)?,
                            accepted: row.get::<_, i64>(2)? as u64,
                            at: row.get(3)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<LedgerHead> {
        self.submit(move |connection, state| {
            if let Some(record) = &batch.idempotency {
                let inserted = connection.execute(
                    "INSERT OR IGNORE INTO idempotency(key_hash, body_hash, accepted, at) VALUES (?1, ?2, ?3, ?4)",
                    params![record.key_hash, record.body_hash, record.accepted as i64, record.at],
                )?;
                if inserted == 0 {
                    return Err(Error::IdempotencyConflict);
                }
            }
            {
                let mut statement = connection.prepare_cached(
                    "INSERT INTO subjects(id, sealed_external_id, created_at, forgetting) VALUES (?1, ?2, ?3, 0)",
                )?;
                for subject in &batch.new_subjects {
                    statement.execute(params![subject.id, subject.sealed_external_id, subject.created_at])?;
                }
            }
            // Data only for live subjects: a write that lost the race to a forget must not
            // leave rows behind it (this check and `begin_erasure` run on the one writer).
            {
                let mut subjects: Vec<SubjectId> = batch
                    .events
                    .iter()
                    .map(|event| event.subject)
                    .chain(batch.attributes.iter().map(|attribute| attribute.subject))
                    .chain(batch.consents.iter().map(|consent| consent.subject))
                    .collect();
                subjects.sort_unstable();
                subjects.dedup();
                let mut statement = connection.prepare_cached("SELECT forgetting FROM subjects WHERE id = ?1")?;
                for subject in subjects {
                    let forgetting: Option<i64> = statement.query_row([subject], |row| row.get(0)).optional()?;
                    match forgetting {
                        Some(0) => {}
                        Some(_) => return Err(Error::Forgetting),
                        None => return Err(Error::NotFound {
 what: Missing::Subject,
 }),
                    }
                }
            }
            {
                let mut statement = connection
                    .prepare_cached("INSERT INTO events(seq, subject, category, at, sealed) VALUES (?1, ?2, ?3, ?4, ?5)")?;
                for event in &batch.events {
                    statement.execute(params![event.seq, event.subject, event.category, event.at, event.sealed])?;
                }
                if let Some(high) = batch.events.iter().map(|event| event.seq).max() {
                    connection.execute(
                        "INSERT INTO meta(key, value) VALUES ('event_seq_high', ?1)
                         ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                        [high],
                    )?;
                }
            }
            {
                let mut statement = connection.prepare_cached(
                    "INSERT INTO attributes(subject, name, category, updated_at, sealed) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(subject, name) DO UPDATE SET category = excluded.category,
                         updated_at = excluded.updated_at, sealed = excluded.sealed",
                )?;
                for attribute in &batch.attributes {
                    statement.execute(params![
                        attribute.subject,
                        attribute.name,
                        attribute.category,
                        attribute.updated_at,
                        attribute.sealed
                    ])?;
                }
            }
            {
                let mut statement = connection.prepare_cached(
                    "INSERT INTO consents(subject, purpose, granted, at, source, policy_version, tag)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for consent in &batch.consents {
                    statement.execute(params![
                        consent.subject,
                        consent.purpose,
                        consent.granted,
                        consent.at,
                        consent.source,
                        consent.policy_version,
                        consent.tag
                    ])?;
                }
            }
            {
                let mut statement = connection.prepare_cached(
                    "INSERT INTO api_keys(id, role, label, secret_hash, created_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                )?;
                for key in &batch.api_keys {
                    statement.execute(params![key.id, key.role, key.label, key.secret_hash.as_slice(), key.created_at])?;
                }
            }
            for (id, at) in &batch.revoked_api_keys {
                let changed = connection.execute(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, at],
                )?;
                if changed == 0 {
                    return Err(Error::NotFound {
 what: Missing::ApiKey,
 });
                }
            }
            append_ledger_entries(connection, state, batch.ledger)?;
            Ok(state.head)
        })
    }

    fn count_events(&self) -> Result<u64> {
        self.read(|connection| {
            let count: i64 = connection.query_row(
                "SELECT count(*) FROM events e JOIN subjects s ON s.id = e.subject AND s.forgetting = 0",
                [],
                |row| row.get(0),
            )?;
            Ok(count as u64)
        })
    }

    fn subjects_with_consent(&self, purpose: &str) -> Result<Vec<SubjectId>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT DISTINCT subject FROM consents WHERE purpose = ?1 ORDER BY subject",
            )?;
            let rows = statement
                .query_map([purpose], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<SubjectId>>>()?;
            Ok(rows)
        })
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, role, label, secret_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
            )?;
            let rows = statement
                .query_map([], |row| {
                    let hash: Vec<u8> = row.get(3)?;
                    let mut secret_hash = [0u8; 32];
                    if hash.len() == 32 {
                        secret_hash.copy_from_slice(&hash);
                    }
                    Ok(ApiKeyRow {
                        id: row.get(0)?,
                        role: row.get(1)?,
                        label: row.get(2)?,
                        secret_hash,
                        created_at: row.get(4)?,
                        revoked_at: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn events_of(&self, subject: SubjectId) -> Result<Vec<EventRow>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE subject = ?1 ORDER BY seq"
            ))?;
            let rows = statement
                .query_map([subject], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn events_after(&self, after_seq: i64, limit: usize) -> Result<Vec<EventRow>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT e.seq, e.subject, e.category, e.at, e.sealed FROM events e
                 JOIN subjects s ON s.id = e.subject AND s.forgetting = 0
                 WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
            )?;
            let rows = statement
                .query_map(params![after_seq, limit as i64], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn attributes_of(&self, subject: SubjectId) -> Result<Vec<AttributeRow>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {ATTRIBUTE_COLUMNS} FROM attributes WHERE subject = ?1 ORDER BY name"
            ))?;
            let rows = statement
                .query_map([subject], attribute_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn consents_of(&self, subject: SubjectId) -> Result<Vec<ConsentRow>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT subject, purpose, granted, at, source, policy_version, tag FROM consents WHERE subject = ?1 ORDER BY id",
            )?;
            let rows = statement
                .query_map([subject], |row| {
                    Ok(ConsentRow {
                        subject: row.get(0)?,
                        purpose: row.get(1)?,
                        granted: row.get(2)?,
                        at: row.get(3)?,
                        source: row.get(4)?,
                        policy_version: row.get(5)?,
                        tag: row.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn begin_erasure(&self, intent: &ErasureIntent, entry: LedgerDraft) -> Result<ErasureIntent> {
        let intent = intent.clone();
        self.submit(move |connection, state| {
            if let Some(existing) = intent_of(connection, intent.subject)? {
                return Ok(existing);
            }
            connection.execute(
                "INSERT INTO erasures(subject, subject_token, requested_at, model_interactions) VALUES (?1, ?2, ?3, ?4)",
                params![intent.subject, intent.subject_token, intent.requested_at, intent.model_interactions as i64],
            )?;
            connection.execute("UPDATE subjects SET forgetting = 1 WHERE id = ?1", [intent.subject])?;
            append_ledger_entries(connection, state, vec![entry])?;
            Ok(intent)
        })
    }

    fn erasure_intents(&self) -> Result<Vec<ErasureIntent>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {INTENT_COLUMNS} FROM erasures ORDER BY requested_at"
            ))?;
            let rows = statement
                .query_map([], intent_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn erasure_intent(&self, subject: SubjectId) -> Result<Option<ErasureIntent>> {
        self.read(|connection| intent_of(connection, subject))
    }

    fn count_subject_rows(&self, subject: SubjectId) -> Result<SubjectRowCounts> {
        self.read(|connection| {
            let count = |table: &str| -> Result<u64> {
                let sql = format!("SELECT count(*) FROM {table} WHERE subject = ?1");
                Ok(connection
                    .prepare_cached(&sql)?
                    .query_row([subject], |row| row.get::<_, i64>(0))? as u64)
            };
            Ok(SubjectRowCounts {
                events: count("events")?,
                attributes: count("attributes")?,
                consents: count("consents")?,
            })
        })
    }

    fn complete_erasure(
        &self,
        subject: SubjectId,
        expected: SubjectRowCounts,
        receipt: &StoredReceipt,
        entry: LedgerDraft,
    ) -> Result<()> {
        let receipt = receipt.clone();
        self.submit(move |connection, state| {
            let erased = SubjectRowCounts {
                events: connection.execute("DELETE FROM events WHERE subject = ?1", [subject])?
                    as u64,
                attributes: connection
                    .execute("DELETE FROM attributes WHERE subject = ?1", [subject])?
                    as u64,
                consents: connection
                    .execute("DELETE FROM consents WHERE subject = ?1", [subject])?
                    as u64,
            };
            if erased != expected {
                return Err(Error::Conflict {
                    detail: "the subject's rows changed while its receipt was signed".into(),
                });
            }
            connection.execute(
                "INSERT OR IGNORE INTO receipts(id, subject_token, json) VALUES (?1, ?2, ?3)",
                params![receipt.id, receipt.subject_token, receipt.json],
            )?;
            // Exactly one forget completes: another that raced here finds no intent left.
            if connection.execute("DELETE FROM erasures WHERE subject = ?1", [subject])? != 1 {
                return Err(Error::NotFound {
                    what: Missing::ErasureIntent,
                });
            }
            connection.execute("DELETE FROM subjects WHERE id = ?1", [subject])?;
            append_ledger_entries(connection, state, vec![entry])?;
            Ok(())
        })
    }

    fn drop_subject(&self, subject: SubjectId, entry: LedgerDraft) -> Result<()> {
        self.submit(move |connection, state| {
            for table_and_column in [
                "events WHERE subject",
                "attributes WHERE subject",
                "consents WHERE subject",
                "erasures WHERE subject",
                "subjects WHERE id",
            ] {
                connection.execute(&format!("DELETE FROM {table_and_column} = ?1"), [subject])?;
            }
            append_ledger_entries(connection, state, vec![entry])?;
            Ok(())
        })
    }

    fn categories_in_use(&self) -> Result<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT DISTINCT category FROM events UNION SELECT DISTINCT category FROM attributes ORDER BY 1",
            )?;
            let rows = statement.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(rows)
        })
    }

    fn events_before(&self, category: &str, before: i64) -> Result<Vec<EventRow>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT e.seq, e.subject, e.category, e.at, e.sealed FROM events e
                 JOIN subjects s ON s.id = e.subject AND s.forgetting = 0
                 WHERE e.category = ?1 AND e.at < ?2 ORDER BY e.seq"
            ))?;
            let rows = statement
                .query_map(params![category, before], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn attributes_before(&self, category: &str, before: i64) -> Result<Vec<AttributeRow>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT a.subject, a.name, a.category, a.updated_at, a.sealed FROM attributes a
                 JOIN subjects s ON s.id = a.subject AND s.forgetting = 0
                 WHERE a.category = ?1 AND a.updated_at < ?2"
            ))?;
            let rows = statement
                .query_map(params![category, before], attribute_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn erase_records(
        &self,
        events: &[i64],
        attributes: &[(SubjectId, String, i64)],
        ledger: Vec<LedgerDraft>,
    ) -> Result<u64> {
        let events = events.to_vec();
        let attributes = attributes.to_vec();
        self.submit(move |connection, state| {
            let mut erased = 0u64;
            {
                let mut statement =
                    connection.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
                for seq in &events {
                    erased += statement.execute([seq])? as u64;
                }
            }
            {
                // Only the value that expired: a newer one written since stays.
                let mut statement = connection.prepare_cached(
                    "DELETE FROM attributes WHERE subject = ?1 AND name = ?2 AND updated_at = ?3",
                )?;
                for (subject, name, updated_at) in &attributes {
                    erased += statement.execute(params![subject, name, updated_at])? as u64;
                }
            }
            append_ledger_entries(connection, state, ledger)?;
            Ok(erased)
        })
    }

    fn receipt(&self, id: &str) -> Result<Option<StoredReceipt>> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT id, subject_token, json FROM receipts WHERE id = ?1",
                    [id],
                    |row| {
                        Ok(StoredReceipt {
                            id: row.get(0)?,
                            subject_token: row.get(1)?,
                            json: row.get(2)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn append_ledger(&self, entries: Vec<LedgerDraft>) -> Result<LedgerHead> {
        self.submit(move |connection, state| {
            append_ledger_entries(connection, state, entries)?;
            Ok(state.head)
        })
    }

    fn ledger_head(&self) -> Result<LedgerHead> {
        self.read(read_ledger_head)
    }

    fn ledger_query(&self, filter: &LedgerFilter) -> Result<Vec<LedgerRecord>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger
                 WHERE (?1 IS NULL OR subject_token = ?1) AND (?2 IS NULL OR actor = ?2)
                   AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4)
                 ORDER BY seq DESC LIMIT ?5"
            ))?;
            let rows = statement
                .query_map(
                    params![
                        filter.subject_token,
                        filter.actor,
                        filter.since,
                        filter.until,
                        filter.limit as i64
                    ],
                    ledger_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn ledger_scan(&self, visit: &mut dyn FnMut(&LedgerRecord) -> bool) -> Result<()> {
        self.read(|connection| {
            let mut statement =
                connection.prepare(&format!("SELECT {LEDGER_COLUMNS} FROM ledger ORDER BY seq"))?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                if !visit(&ledger_from_row(row)?) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let checkpoint = checkpoint.clone();
        self.submit(move |connection, _state| {
            connection.execute(
                "INSERT OR IGNORE INTO ledger_checkpoints(seq, hash, at, key_id, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![checkpoint.seq, &checkpoint.hash[..], checkpoint.at, checkpoint.key_id, checkpoint.signature],
            )?;
            Ok(())
        })
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT seq, hash, at, key_id, signature FROM ledger_checkpoints ORDER BY seq",
            )?;
            let rows = statement
                .query_map([], |row| {
                    Ok(Checkpoint {
                        seq: row.get(0)?,
                        hash: hash_array(row.get(1)?),
                        at: row.get(2)?,
                        key_id: row.get(3)?,
                        signature: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        vacuum_into(&self.path, dest)
    }
}

/// Writes a consistent, compacted copy of the SQLite file at `source` to `dest`.
fn vacuum_into(source: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::BadInput {
            detail: format!("backup destination {} already exists", dest.display()),
        });
    }
    let dest_text = dest.to_str().ok_or_else(|| Error::BadInput {
        detail: "backup destination must be a UTF-8 path".into(),
    })?;
    let connection = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    connection.execute("VACUUM INTO ?1", [dest_text])?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600))
            .map_err(|error| Error::io("restricting permissions of", dest, error))?;
    }
    Ok(())
}

/// Wrapped data keys and vault secrets, in their own SQLite file.
///
/// Rollback journal (not WAL) and `secure_delete = ON`: a destroyed key is overwritten in
/// the file, and no old copy lingers in a write-ahead log.
pub struct SqliteKeyStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteKeyStore {
    /// Opens (creating if needed) the key store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        connection.execute_batch(
            "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;",
        )?;
        connection.execute_batch(KEY_SCHEMA)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(SqliteKeyStore {
            path: path.to_owned(),
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut connection = self.connection.lock().map_err(|_| Error::Storage {
            detail: "key store lock poisoned".into(),
        })?;
        work(&mut connection)
    }
}

impl KeyStorage for SqliteKeyStore {
    fn insert_data_keys(&self, keys: &[NewDataKey]) -> Result<()> {
        self.with(|connection| {
            let transaction = connection.transaction()?;
            {
                let mut statement = transaction
                    .prepare_cached("INSERT INTO data_keys(subject, lookup, kek_id, wrapped) VALUES (?1, ?2, ?3, ?4)")?;
                for key in keys {
                    statement.execute(params![key.subject, key.lookup, key.wrapped.kek_id, key.wrapped.bytes])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })
    }

    fn find_subject(&self, lookup: &[u8]) -> Result<Option<SubjectId>> {
        self.with(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT subject FROM data_keys WHERE lookup = ?1 AND destroyed_at IS NULL",
                )?
                .query_row([lookup], |row| row.get(0))
                .optional()?)
        })
    }

    fn data_key(&self, subject: SubjectId) -> Result<KeyState> {
        self.with(|connection| {
            let row = connection
                .prepare_cached(
                    "SELECT kek_id, wrapped, destroyed_at FROM data_keys WHERE subject = ?1",
                )?
                .query_row([subject], |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<Vec<u8>>>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                    ))
                })
                .optional()?;
            Ok(match row {
                None => KeyState::Missing,
                Some((Some(kek_id), Some(bytes), None)) => {
                    KeyState::Live(WrappedKey { kek_id, bytes })
                }
                Some((_, _, destroyed_at)) => KeyState::Destroyed {
                    at: destroyed_at.unwrap_or(0),
                },
            })
        })
    }

    fn destroy_data_key(&self, subject: SubjectId, at: i64) -> Result<bool> {
        self.with(|connection| {
            let changed = connection.execute(
                "UPDATE data_keys SET lookup = NULL, kek_id = NULL, wrapped = NULL, destroyed_at = ?2
                 WHERE subject = ?1 AND destroyed_at IS NULL",
                params![subject, at],
            )?;
            if changed == 0 {
                // Never had a key here (e.g. a restored backup): leave a tombstone all the same.
                connection.execute(
                    "INSERT OR IGNORE INTO data_keys(subject, kek_id, wrapped, destroyed_at) VALUES (?1, NULL, NULL, ?2)",
                    params![subject, at],
                )?;
            }
            Ok(changed > 0)
        })
    }

    fn ledger_anchor(&self) -> Result<Option<LedgerHead>> {
        self.with(|connection| {
            Ok(connection
                .query_row(
                    "SELECT seq, hash FROM ledger_anchor WHERE id = 1",
                    [],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
                )
                .optional()?
                .map(|(seq, hash)| LedgerHead {
                    seq,
                    hash: hash_array(hash),
                }))
        })
    }

    fn set_ledger_anchor(&self, head: &LedgerHead) -> Result<()> {
        self.with(|connection| {
            // Only forward: an anchor never moves back to an older head.
            connection.execute(
                "INSERT INTO ledger_anchor(id, seq, hash) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > seq",
                params![head.seq, &head.hash[..]],
            )?;
            Ok(())
        })
    }

    fn destroyed_subjects(&self) -> Result<Vec<SubjectId>> {
        self.with(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT subject FROM data_keys WHERE destroyed_at IS NOT NULL")?;
            let rows = statement
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<SubjectId>>>()?;
            Ok(rows)
        })
    }

    fn secret(&self, name: &str) -> Result<Option<WrappedKey>> {
        self.with(|connection| {
            Ok(connection
                .query_row(
                    "SELECT kek_id, wrapped FROM secrets WHERE name = ?1",
                    [name],
                    |row| {
                        Ok(WrappedKey {
                            kek_id: row.get(0)?,
                            bytes: row.get(1)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn insert_secret(&self, name: &str, wrapped: &WrappedKey) -> Result<WrappedKey> {
        self.with(|connection| {
            connection.execute(
                "INSERT OR IGNORE INTO secrets(name, kek_id, wrapped) VALUES (?1, ?2, ?3)",
                params![name, wrapped.kek_id, wrapped.bytes],
            )?;
            Ok(connection.query_row(
                "SELECT kek_id, wrapped FROM secrets WHERE name = ?1",
                [name],
                |row| {
                    Ok(WrappedKey {
                        kek_id: row.get(0)?,
                        bytes: row.get(1)?,
                    })
                },
            )?)
        })
    }

    fn keys_not_wrapped_by(&self, kek_id: &str, limit: usize) -> Result<Vec<(KeyRef, WrappedKey)>> {
        self.with(|connection| {
            let mut found = Vec::new();
            let mut statement =
                connection.prepare_cached("SELECT name, kek_id, wrapped FROM secrets WHERE kek_id <> ?1 LIMIT ?2")?;
            let mut rows = statement.query(params![kek_id, limit as i64])?;
            while let Some(row) = rows.next()? {
                found.push((KeyRef::Secret(row.get(0)?), WrappedKey { kek_id: row.get(1)?, bytes: row.get(2)? }));
            }
            let remaining = limit.saturating_sub(found.len());
            let mut statement = connection.prepare_cached(
                "SELECT subject, kek_id, wrapped FROM data_keys WHERE wrapped IS NOT NULL AND kek_id <> ?1 LIMIT ?2",
            )?;
            let mut rows = statement.query(params![kek_id, remaining as i64])?;
            while let Some(row) = rows.next()? {
                found.push((KeyRef::Subject(row.get(0)?), WrappedKey { kek_id: row.get(1)?, bytes: row.get(2)? }));
            }
            Ok(found)
        })
    }

    fn rewrap(&self, updates: &[(KeyRef, WrappedKey, WrappedKey)]) -> Result<u64> {
        self.with(|connection| {
            let transaction = connection.transaction()?;
            let mut changed = 0u64;
            for (key_ref, old, new) in updates {
                changed += match key_ref {
                    KeyRef::Subject(subject) => transaction.execute(
                        "UPDATE data_keys SET kek_id = ?2, wrapped = ?3 WHERE subject = ?1 AND kek_id = ?4 AND wrapped = ?5",
                        params![subject, new.kek_id, new.bytes, old.kek_id, old.bytes],
                    )?,
                    KeyRef::Secret(name) => transaction.execute(
                        "UPDATE secrets SET kek_id = ?2, wrapped = ?3 WHERE name = ?1 AND kek_id = ?4 AND wrapped = ?5",
                        params![name, new.kek_id, new.bytes, old.kek_id, old.bytes],
                    )?,
                } as u64;
            }
            transaction.commit()?;
            Ok(changed)
        })
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        vacuum_into(&self.path, dest)
    }
}
