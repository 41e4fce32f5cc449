//! `PostgresStorage`: the `Storage` contract on the data schema. Writes go through the one
//! writer (`writer`), reads through a pool of connections, each call run on the backend's
//! runtime.
//!
//! It stores what the vault hands it as it is: sealed bytes stay sealed, and it never
//! writes a row of a subject that is not live (the check runs on the writer, under the
//! writer lock, beside `begin_erasure`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Object, Pool};
use tokio_postgres::IsolationLevel;

use super::dump::{self, DumpKind};
use super::jobs::Job;
use super::rows::*;
use super::runtime::PgRuntime;
use super::scan;
use super::schema::{SchemaKind, hold_schema, migrate};
use super::writer::{Writer, read_ledger_head};
use super::{PostgresOptions, pool};
use crate::error::{Error, Result};
use crate::integrity::IntegrityKeys;
use crate::ledger::{Checkpoint, LedgerDraft, LedgerHead, LedgerKey, LedgerRecord};
use crate::storage::*;

/// Event sequence numbers taken from the database at once: the counter row is written
/// once per block, not once per batch.
const SEQ_BLOCK: i64 = 65_536;

/// Events of subjects not being forgotten (what rebuilds and retention may see).
const ACTIVE_EVENTS: &str = "SELECT e.seq, e.subject, e.category, e.at, e.sealed FROM events e
     JOIN subjects s ON s.id = e.subject AND NOT s.forgetting";

/// Sequence numbers this process holds: `next..end`.
struct SeqBlock {
    next: i64,
    end: i64,
}

/// Sealed data, consents, receipts and the ledger in a PostgreSQL schema.
pub struct PostgresStorage {
    // Dropped first: the writer commits what is queued while the runtime still runs.
    writer: Writer,
    pool: Pool,
    runtime: Arc<PgRuntime>,
    schema: String,
    /// The connection settings (the change bell makes a connection of its own).
    settings: String,
    /// One connection kept for the session advisory locks of once-only duties.
    duties: Pool,
    seqs: Mutex<SeqBlock>,
    /// The session holding the schema's advisory lock (shared when opened `shared`).
    _holder: Object,
    /// Opened beside other processes: the change log is in use.
    shared: bool,
}

impl PostgresStorage {
    /// Opens the data schema of `options` (creating or migrating it) on `runtime`.
    pub fn open(options: &PostgresOptions, runtime: Arc<PgRuntime>) -> Result<Self> {
        options.check()?;
        let schema = options.data_schema.clone();
        let writer_pool = pool(&options.data, "the data", &schema, 1)?;
        let pool = pool(&options.data, "the data", &schema, options.pool_size)?;
        // Held before migrating: a newer build never migrates a schema an older one serves.
        let holder = runtime.run(hold_schema(
            options.data.clone(),
            schema.clone(),
            options.shared,
        ))?;
        {
            let pool = pool.clone();
            let schema = schema.clone();
            runtime.run(async move {
                let mut client = pool.get().await?;
                migrate(&mut client, &schema, SchemaKind::Data, None).await?;
                Ok(())
            })?;
        }
        let writer = Writer::start(&runtime, writer_pool);
        let duties = super::pool(&options.data, "the data", &schema, 1)?;
        Ok(PostgresStorage {
            writer,
            pool,
            runtime,
            settings: options.data.clone(),
            duties,
            shared: options.shared,
            schema,
            seqs: Mutex::new(SeqBlock { next: 0, end: 0 }),
            _holder: holder,
        })
    }

    /// The data schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs `job` in the writer's next transaction.
    pub(super) fn submit(&self, job: Job) -> Result<super::jobs::Reply> {
        self.writer.submit(job)
    }

    /// The connection settings of the data.
    pub(super) fn settings(&self) -> &str {
        &self.settings
    }

    /// The runtime the backend's tasks run on.
    pub(super) fn runtime(&self) -> &PgRuntime {
        &self.runtime
    }

    /// Runs `work` on the one connection that holds this process's duty locks.
    pub(super) fn with_duties<T, F>(
        &self,
        work: impl FnOnce(Object) -> F + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let pool = self.duties.clone();
        self.runtime.run(async move {
            let client = pool.get().await?;
            work(client).await
        })
    }

    /// Runs `read` on a pooled connection.
    pub(super) fn read<T, F>(&self, read: impl FnOnce(Object) -> F + Send + 'static) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.runtime.run(async move {
            let client = pool.get().await?;
            read(client).await
        })
    }

    /// Every row of one query, read by `read` (both `'static`, for the runtime).
    fn rows<T: Send + 'static>(
        &self,
        sql: String,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
        read: fn(&tokio_postgres::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.read(move |client| async move {
            let borrowed: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|param| param.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            query_rows(&client, &sql, &borrowed, read).await
        })
    }

    /// Restores a dump written by `backup` into the data schema of `options`, which must
    /// not exist yet (drop it first). The key store is never part of a data dump.
    pub fn restore(options: &PostgresOptions, source: &Path) -> Result<()> {
        options.check()?;
        let runtime = PgRuntime::new()?;
        let pool = pool(&options.data, "the data", &options.data_schema, 1)?;
        dump::restore(&runtime, pool, &options.data_schema, DumpKind::Data, source)
    }
}

impl Storage for PostgresStorage {
    fn attach_ledger_key(&self, key: LedgerKey) -> Result<()> {
        self.writer
            .submit(Job::AttachLedgerKey(Arc::new(key)))?
            .done()
    }

    fn attach_integrity(
        &self,
        keys: Arc<IntegrityKeys>,
        migrate: bool,
        refuse: Option<String>,
    ) -> Result<Option<String>> {
        self.writer
            .submit(Job::AttachIntegrity {
                keys,
                migrate,
                refuse,
            })?
            .problem()
    }

    fn meta(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.read(move |client| async move {
            query_opt(
                &client,
                "SELECT value FROM meta WHERE key = $1",
                &[&name],
                |row| Ok(row.try_get(0)?),
            )
            .await
        })
    }

    fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        self.writer
            .submit(Job::SetMeta(name.to_owned(), value.to_owned()))?
            .done()
    }

    fn is_empty(&self) -> Result<bool> {
        self.read(|client| async move {
            let any = query_opt(
                &client,
                "SELECT 1 FROM (SELECT 1 FROM subjects LIMIT 1) s
                 UNION ALL SELECT 1 FROM (SELECT 1 FROM ledger LIMIT 1) l LIMIT 1",
                &[],
                |_| Ok(()),
            )
            .await?;
            Ok(any.is_none())
        })
    }

    fn count_events(&self) -> Result<u64> {
        self.read(|client| async move {
            let count: i64 = query_opt(
                &client,
                "SELECT count(*) FROM events e JOIN subjects s ON s.id = e.subject AND NOT s.forgetting",
                &[],
                |row| Ok(row.try_get(0)?),
            )
            .await?
            .unwrap_or(0);
            Ok(unsigned(count))
        })
    }

    fn subjects_with_consent(&self, purpose: &str) -> Result<Vec<SubjectId>> {
        self.rows(
            "SELECT DISTINCT subject FROM consents WHERE purpose = $1 ORDER BY subject".into(),
            vec![Box::new(purpose.to_owned())],
            |row| Ok(row.try_get(0)?),
        )
    }

    fn subject_ids(&self) -> Result<Vec<SubjectId>> {
        self.rows(
            "SELECT id FROM subjects WHERE NOT forgetting ORDER BY id".into(),
            Vec::new(),
            |row| Ok(row.try_get(0)?),
        )
    }

    fn api_keys(&self) -> Result<Vec<StoredApiKey>> {
        self.rows(
            format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
            Vec::new(),
            api_key_from_row,
        )
    }

    fn subject(&self, id: SubjectId) -> Result<Option<SubjectRow>> {
        self.read(move |client| async move {
            query_opt(
                &client,
                &format!("SELECT {SUBJECT_COLUMNS} FROM subjects WHERE id = $1"),
                &[&id],
                subject_from_row,
            )
            .await
        })
    }

    fn subjects_present(&self, ids: &[SubjectId]) -> Result<Vec<SubjectId>> {
        let mut present = self.rows(
            "SELECT id FROM subjects WHERE id = ANY($1)".into(),
            vec![Box::new(ids.to_vec())],
            |row| Ok(row.try_get(0)?),
        )?;
        // In the order asked, as the embedded backend answers.
        let order: std::collections::HashMap<SubjectId, usize> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| (*id, index))
            .collect();
        present.sort_by_key(|id| order.get(id).copied().unwrap_or(usize::MAX));
        Ok(present)
    }

    fn reserve_event_seqs(&self, n: u64) -> Result<i64> {
        let wanted = i64::try_from(n).map_err(|_| Error::BadInput {
            detail: "too many event sequence numbers asked at once".into(),
        })?;
        let mut block = self.seqs.lock().map_err(|_| Error::Storage {
            detail: "sequence block lock poisoned".into(),
        })?;
        if block.end - block.next < wanted {
            let size = wanted.max(SEQ_BLOCK);
            // Committed before any number of the block is used: numbers are never handed
            // out twice, by this process or another, even if this one crashes.
            let first: i64 = self.read(move |client| async move {
                query_opt(
                    &client,
                    "UPDATE counters SET next = next + $1 WHERE name = 'event_seq' RETURNING next - $1",
                    &[&size],
                    |row| Ok(row.try_get(0)?),
                )
                .await?
                .ok_or_else(|| Error::Integrity {
                    detail: "the data schema's event sequence counter is missing".into(),
                })
            })?;
            *block = SeqBlock {
                next: first,
                end: first + size,
            };
        }
        let first = block.next;
        block.next += wanted;
        Ok(first)
    }

    fn idempotency(&self, key_hash: &[u8]) -> Result<Option<IdempotencyRecord>> {
        let key_hash = key_hash.to_vec();
        self.read(move |client| async move {
            query_opt(
                &client,
                "SELECT key_hash, body_hash, accepted, at FROM idempotency WHERE key_hash = $1",
                &[&key_hash],
                idempotency_from_row,
            )
            .await
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<LedgerHead> {
        self.writer.submit(Job::Write(batch))?.head()
    }

    fn events_of(&self, subject: SubjectId) -> Result<Vec<EventRow>> {
        self.rows(
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE subject = $1 ORDER BY seq"),
            vec![Box::new(subject)],
            event_from_row,
        )
    }

    fn events_after(&self, after_seq: i64, limit: usize) -> Result<Vec<EventRow>> {
        self.rows(
            format!("{ACTIVE_EVENTS} WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"),
            vec![Box::new(after_seq), Box::new(limit as i64)],
            event_from_row,
        )
    }

    fn attributes_of(&self, subject: SubjectId) -> Result<Vec<AttributeRow>> {
        self.rows(
            format!("SELECT {ATTRIBUTE_COLUMNS} FROM attributes WHERE subject = $1 ORDER BY name"),
            vec![Box::new(subject)],
            attribute_from_row,
        )
    }

    fn consents_of(&self, subject: SubjectId) -> Result<StoredConsents> {
        self.read(move |mut client| async move {
            // One snapshot: the rows and the head that closes them.
            let snapshot = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let rows = query_rows(
                &snapshot,
                &format!(
                    "SELECT {STORED_CONSENT_COLUMNS} FROM consents WHERE subject = $1 ORDER BY id"
                ),
                &[&subject],
                stored_consent_from_row,
            )
            .await?;
            let head = query_opt(
                &snapshot,
                &format!("SELECT {CONSENT_HEAD_COLUMNS} FROM consent_heads WHERE subject = $1"),
                &[&subject],
                consent_head_from_row,
            )
            .await?;
            snapshot.commit().await?;
            Ok(StoredConsents { rows, head })
        })
    }

    fn begin_erasure(&self, intent: &ErasureIntent, entry: LedgerDraft) -> Result<ErasureIntent> {
        self.writer
            .submit(Job::BeginErasure(intent.clone(), entry))?
            .intent()
    }

    fn erasure_intents(&self) -> Result<Vec<ErasureIntent>> {
        self.rows(
            format!("SELECT {INTENT_COLUMNS} FROM erasures ORDER BY requested_at"),
            Vec::new(),
            intent_from_row,
        )
    }

    fn erasure_intent(&self, subject: SubjectId) -> Result<Option<ErasureIntent>> {
        self.read(move |client| async move { super::writes::intent_of(&client, subject).await })
    }

    fn count_subject_rows(&self, subject: SubjectId) -> Result<SubjectRowCounts> {
        self.read(move |client| async move {
            let counts = query_opt(
                &client,
                "SELECT (SELECT count(*) FROM events WHERE subject = $1),
                        (SELECT count(*) FROM attributes WHERE subject = $1),
                        (SELECT count(*) FROM consents WHERE subject = $1)",
                &[&subject],
                |row| {
                    Ok(SubjectRowCounts {
                        events: unsigned(row.try_get(0)?),
                        attributes: unsigned(row.try_get(1)?),
                        consents: unsigned(row.try_get(2)?),
                    })
                },
            )
            .await?;
            Ok(counts.unwrap_or_default())
        })
    }

    fn complete_erasure(
        &self,
        subject: SubjectId,
        expected: SubjectRowCounts,
        receipt: &StoredReceipt,
        entry: LedgerDraft,
    ) -> Result<()> {
        self.writer
            .submit(Job::CompleteErasure {
                subject,
                expected,
                receipt: receipt.clone(),
                entry,
            })?
            .done()
    }

    fn drop_subject(&self, subject: SubjectId, entry: LedgerDraft) -> Result<()> {
        self.writer.submit(Job::DropSubject(subject, entry))?.done()
    }

    fn categories_in_use(&self) -> Result<Vec<String>> {
        self.rows(
            "SELECT DISTINCT category FROM events UNION SELECT DISTINCT category FROM attributes ORDER BY 1"
                .into(),
            Vec::new(),
            |row| Ok(row.try_get(0)?),
        )
    }

    fn events_before(&self, category: &str, before: i64) -> Result<Vec<EventRow>> {
        self.rows(
            format!("{ACTIVE_EVENTS} WHERE e.category = $1 AND e.at < $2 ORDER BY e.seq"),
            vec![Box::new(category.to_owned()), Box::new(before)],
            event_from_row,
        )
    }

    fn attributes_before(&self, category: &str, before: i64) -> Result<Vec<AttributeRow>> {
        self.rows(
            "SELECT a.subject, a.name, a.category, a.updated_at, a.sealed FROM attributes a
             JOIN subjects s ON s.id = a.subject AND NOT s.forgetting
             WHERE a.category = $1 AND a.updated_at < $2"
                .into(),
            vec![Box::new(category.to_owned()), Box::new(before)],
            attribute_from_row,
        )
    }

    fn erase_records(
        &self,
        events: &[i64],
        attributes: &[(SubjectId, String, i64)],
        ledger: Vec<LedgerDraft>,
    ) -> Result<u64> {
        self.writer
            .submit(Job::EraseRecords {
                events: events.to_vec(),
                attributes: attributes.to_vec(),
                ledger,
            })?
            .count()
    }

    fn receipt(&self, id: &str) -> Result<Option<StoredReceipt>> {
        let id = id.to_owned();
        self.read(move |client| async move {
            query_opt(
                &client,
                "SELECT id, subject_token, json FROM receipts WHERE id = $1",
                &[&id],
                receipt_from_row,
            )
            .await
        })
    }

    fn append_ledger(&self, entries: Vec<LedgerDraft>) -> Result<LedgerHead> {
        self.writer.submit(Job::AppendLedger(entries))?.head()
    }

    fn ledger_head(&self) -> Result<LedgerHead> {
        self.read(|client| async move { read_ledger_head(&client).await })
    }

    fn ledger_query(&self, filter: &LedgerFilter) -> Result<Vec<LedgerRecord>> {
        self.rows(
            format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger
                 WHERE ($1::text IS NULL OR subject_token = $1) AND ($2::text IS NULL OR actor = $2)
                   AND ($3::bigint IS NULL OR at >= $3) AND ($4::bigint IS NULL OR at < $4)
                   AND ($6::bigint IS NULL OR seq < $6)
                 ORDER BY seq DESC LIMIT $5"
            ),
            vec![
                Box::new(filter.subject_token.clone()),
                Box::new(filter.actor.clone()),
                Box::new(filter.since),
                Box::new(filter.until),
                Box::new(filter.limit.min(i64::MAX as usize) as i64),
                Box::new(filter.before_seq),
            ],
            ledger_from_row,
        )
    }

    fn integrity_scan(&self, visitor: &mut dyn IntegrityVisitor) -> Result<()> {
        scan::integrity_scan(&self.runtime, self.pool.clone(), visitor)
    }

    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.writer
            .submit(Job::AddCheckpoint(checkpoint.clone()))?
            .done()
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.rows(
            format!("SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints ORDER BY seq"),
            Vec::new(),
            checkpoint_from_row,
        )
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        dump::write(&self.runtime, self.pool.clone(), DumpKind::Data, dest)
    }

    fn upsert_items(&self, items: Vec<ItemRow>) -> Result<u64> {
        self.writer.submit(Job::UpsertItems(items))?.count()
    }

    fn item(&self, item: &str) -> Result<Option<ItemRow>> {
        let item = item.to_owned();
        self.read(move |client| async move {
            query_opt(
                &client,
                &format!("SELECT {ITEM_COLUMNS} FROM items WHERE item = $1"),
                &[&item],
                item_from_row,
            )
            .await
        })
    }

    fn cluster(&self) -> Option<&dyn ClusterLog> {
        self.shared.then_some(self as &dyn ClusterLog)
    }

    fn items(&self) -> Result<Vec<ItemRow>> {
        self.rows(
            format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY item"),
            Vec::new(),
            item_from_row,
        )
    }
}
