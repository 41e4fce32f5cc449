//! `SqliteStorage`: the `Storage` contract on the data file. Writes go through the one
//! writer (`writer`), reads through a small pool of read connections.
//!
//! It stores what the vault hands it as it is: sealed bytes stay sealed, and it never
//! writes a row of a subject that is not live (the check runs on the writer, beside
//! `begin_erasure`, so a write that lost the race to a forget leaves nothing behind).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::*;
use super::schema::{
    DATA_COLUMNS_ADDED, DATA_SCHEMA, add_missing_columns, open_data_connection, vacuum_into,
};
use super::writer::{Writer, append_ledger_entries, read_ledger_head, read_stored_seal};
use super::writes;
use crate::error::{Error, Result};
use crate::integrity::IntegrityKeys;
use crate::ledger::{Checkpoint, LedgerDraft, LedgerHead, LedgerKey, LedgerRecord};
use crate::storage::*;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Events of subjects not being forgotten (what rebuilds and retention may see).
const ACTIVE_EVENTS: &str = "SELECT e.seq, e.subject, e.category, e.at, e.sealed FROM events e
     JOIN subjects s ON s.id = e.subject AND s.forgetting = 0";

/// Sealed data, consents, receipts and the ledger in SQLite.
pub struct SqliteStorage {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    next_event_seq: AtomicI64,
}

impl SqliteStorage {
    /// Opens (creating if needed) the data file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = open_data_connection(path)?;
        connection.execute_batch(DATA_SCHEMA)?;
        add_missing_columns(&connection, DATA_COLUMNS_ADDED)?;
        // Sequence numbers are never reused, even after the newest events are erased: the
        // high-water mark is kept in `meta`, written with every batch of events.
        let next_event_seq: i64 = connection.query_row(
            "SELECT max(coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'event_seq_high'), 0),
                        coalesce((SELECT max(seq) FROM events), 0)) + 1",
            [],
            |row| row.get(0),
        )?;
        Ok(SqliteStorage {
            path: path.to_owned(),
            writer: Writer::start(connection, path)?,
            readers: Mutex::new(Vec::new()),
            next_event_seq: AtomicI64::new(next_event_seq),
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
        if let Ok(mut readers) = self.readers.lock()
            && readers.len() < MAX_IDLE_READERS
        {
            readers.push(connection);
        }
        outcome
    }
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
        self.writer.submit(move |_connection, state| {
            state.ledger_key = Some(key);
            Ok(())
        })
    }

    fn attach_integrity(
        &self,
        keys: Arc<IntegrityKeys>,
        migrate: bool,
        refuse: Option<String>,
    ) -> Result<Option<String>> {
        self.writer.submit(move |connection, state| {
            let problem = if migrate {
                writes::seal_existing_rows(connection, &keys, &mut state.seal)?;
                refuse
            } else {
                writes::check_stored_seal(connection, &keys, &mut state.seal)?.or(refuse)
            };
            state.integrity = Some(keys);
            state.refused = problem.clone();
            Ok(problem)
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
        self.writer.submit(move |connection, _state| {
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
                    idempotency_from_row,
                )
                .optional()?)
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<LedgerHead> {
        self.writer
            .submit(move |connection, state| writes::write_batch(connection, state, batch))
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
            query_rows(
                connection,
                "SELECT DISTINCT subject FROM consents WHERE purpose = ?1 ORDER BY subject",
                [purpose],
                |row| row.get(0),
            )
        })
    }

    fn subject_ids(&self) -> Result<Vec<SubjectId>> {
        self.read(|connection| {
            query_rows(
                connection,
                "SELECT id FROM subjects WHERE forgetting = 0 ORDER BY id",
                [],
                |row| row.get(0),
            )
        })
    }

    fn api_keys(&self) -> Result<Vec<StoredApiKey>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                [],
                api_key_from_row,
            )
        })
    }

    fn events_of(&self, subject: SubjectId) -> Result<Vec<EventRow>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE subject = ?1 ORDER BY seq"),
                [subject],
                event_from_row,
            )
        })
    }

    fn events_after(&self, after_seq: i64, limit: usize) -> Result<Vec<EventRow>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!("{ACTIVE_EVENTS} WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"),
                params![after_seq, limit as i64],
                event_from_row,
            )
        })
    }

    fn attributes_of(&self, subject: SubjectId) -> Result<Vec<AttributeRow>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!(
                    "SELECT {ATTRIBUTE_COLUMNS} FROM attributes WHERE subject = ?1 ORDER BY name"
                ),
                [subject],
                attribute_from_row,
            )
        })
    }

    fn consents_of(&self, subject: SubjectId) -> Result<StoredConsents> {
        self.read(|connection| {
            // One snapshot: the rows and the head that closes them.
            let snapshot = connection.unchecked_transaction()?;
            let rows = query_rows(
                &snapshot,
                &format!(
                    "SELECT {STORED_CONSENT_COLUMNS} FROM consents WHERE subject = ?1 ORDER BY id"
                ),
                [subject],
                stored_consent_from_row,
            )?;
            let head = snapshot
                .prepare_cached(&format!(
                    "SELECT {CONSENT_HEAD_COLUMNS} FROM consent_heads WHERE subject = ?1"
                ))?
                .query_row([subject], consent_head_from_row)
                .optional()?;
            snapshot.commit()?;
            Ok(StoredConsents { rows, head })
        })
    }

    fn begin_erasure(&self, intent: &ErasureIntent, entry: LedgerDraft) -> Result<ErasureIntent> {
        let intent = intent.clone();
        self.writer.submit(move |connection, state| {
            writes::begin_erasure(connection, state, intent, entry)
        })
    }

    fn erasure_intents(&self) -> Result<Vec<ErasureIntent>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!("SELECT {INTENT_COLUMNS} FROM erasures ORDER BY requested_at"),
                [],
                intent_from_row,
            )
        })
    }

    fn erasure_intent(&self, subject: SubjectId) -> Result<Option<ErasureIntent>> {
        self.read(|connection| writes::intent_of(connection, subject))
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
        self.writer.submit(move |connection, state| {
            writes::complete_erasure(connection, state, subject, expected, &receipt, entry)
        })
    }

    fn drop_subject(&self, subject: SubjectId, entry: LedgerDraft) -> Result<()> {
        self.writer.submit(move |connection, state| {
            writes::drop_subject(connection, state, subject, entry)
        })
    }

    fn categories_in_use(&self) -> Result<Vec<String>> {
        self.read(|connection| {
            query_rows(
                connection,
                "SELECT DISTINCT category FROM events UNION SELECT DISTINCT category FROM attributes ORDER BY 1",
                [],
                |row| row.get(0),
            )
        })
    }

    fn events_before(&self, category: &str, before: i64) -> Result<Vec<EventRow>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!("{ACTIVE_EVENTS} WHERE e.category = ?1 AND e.at < ?2 ORDER BY e.seq"),
                params![category, before],
                event_from_row,
            )
        })
    }

    fn attributes_before(&self, category: &str, before: i64) -> Result<Vec<AttributeRow>> {
        self.read(|connection| {
            query_rows(
                connection,
                "SELECT a.subject, a.name, a.category, a.updated_at, a.sealed FROM attributes a
                 JOIN subjects s ON s.id = a.subject AND s.forgetting = 0
                 WHERE a.category = ?1 AND a.updated_at < ?2",
                params![category, before],
                attribute_from_row,
            )
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
        self.writer.submit(move |connection, state| {
            writes::erase_records(connection, state, &events, &attributes, ledger)
        })
    }

    fn receipt(&self, id: &str) -> Result<Option<StoredReceipt>> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT id, subject_token, json FROM receipts WHERE id = ?1",
                    [id],
                    receipt_from_row,
                )
                .optional()?)
        })
    }

    fn append_ledger(&self, entries: Vec<LedgerDraft>) -> Result<LedgerHead> {
        self.writer.submit(move |connection, state| {
            append_ledger_entries(connection, state, entries)?;
            Ok(state.seal.head)
        })
    }

    fn ledger_head(&self) -> Result<LedgerHead> {
        self.read(read_ledger_head)
    }

    fn ledger_query(&self, filter: &LedgerFilter) -> Result<Vec<LedgerRecord>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!(
                    "SELECT {LEDGER_COLUMNS} FROM ledger
                     WHERE (?1 IS NULL OR subject_token = ?1) AND (?2 IS NULL OR actor = ?2)
                       AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4)
                       AND (?6 IS NULL OR seq < ?6)
                     ORDER BY seq DESC LIMIT ?5"
                ),
                params![
                    filter.subject_token,
                    filter.actor,
                    filter.since,
                    filter.until,
                    filter.limit.min(i64::MAX as usize) as i64,
                    filter.before_seq
                ],
                ledger_from_row,
            )
        })
    }

    fn integrity_scan(&self, visitor: &mut dyn IntegrityVisitor) -> Result<()> {
        self.read(|connection| {
            // One read transaction: the seal and every row it covers from one snapshot.
            let snapshot = connection.unchecked_transaction()?;
            visitor.seal(read_stored_seal(&snapshot)?);
            {
                let mut statement = snapshot
                    .prepare(&format!("SELECT {LEDGER_COLUMNS} FROM ledger ORDER BY seq"))?;
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    if !visitor.ledger(&ledger_from_row(row)?) {
                        break;
                    }
                }
            }
            for key in query_rows(
                &snapshot,
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                [],
                api_key_from_row,
            )? {
                visitor.api_key(key);
            }
            {
                let mut statement = snapshot
                    .prepare(&format!("SELECT {CONSENT_HEAD_COLUMNS} FROM consent_heads"))?;
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    visitor.consent_head(consent_head_from_row(row)?);
                }
            }
            {
                let mut statement = snapshot.prepare(&format!(
                    "SELECT {STORED_CONSENT_COLUMNS} FROM consents ORDER BY subject, id"
                ))?;
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    visitor.consent(stored_consent_from_row(row)?);
                }
            }
            snapshot.commit()?;
            Ok(())
        })
    }

    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let checkpoint = checkpoint.clone();
        self.writer.submit(move |connection, state| {
            state.writable_integrity()?;
            connection.execute(
                &format!("INSERT OR IGNORE INTO ledger_checkpoints({CHECKPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![checkpoint.seq, &checkpoint.hash[..], checkpoint.at, checkpoint.key_id, checkpoint.signature],
            )?;
            Ok(())
        })
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!("SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints ORDER BY seq"),
                [],
                checkpoint_from_row,
            )
        })
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        vacuum_into(&self.path, dest)
    }

    fn upsert_items(&self, items: Vec<ItemRow>) -> Result<u64> {
        self.writer.submit(move |connection, state| {
            state.writable_integrity()?;
            writes::upsert_items(connection, &items)
        })
    }

    fn item(&self, item: &str) -> Result<Option<ItemRow>> {
        self.read(|connection| {
            Ok(query_rows(
                connection,
                &format!("SELECT {ITEM_COLUMNS} FROM items WHERE item = ?1"),
                [item],
                item_from_row,
            )?
            .pop())
        })
    }

    fn items(&self) -> Result<Vec<ItemRow>> {
        self.read(|connection| {
            query_rows(
                connection,
                &format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY item"),
                [],
                item_from_row,
            )
        })
    }
}
