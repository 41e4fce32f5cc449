//! The one writer of the data schema in this process: a task on the backend's runtime, on
//! a connection of its own, that folds the jobs waiting for it into one transaction (group
//! commit), each job in its own savepoint, and answers each job only once its transaction
//! is committed (`synchronous_commit = on`). It extends the ledger chain, so entries are
//! chained in the order they are committed, and rewrites the seal just before `COMMIT`.
//!
//! Every transaction first locks the schema's `writer_lock` row and reads the ledger's
//! committed head: writers of several processes sharing one database take turns, and a
//! writer that finds the head moved (another process wrote) reloads the seal — checking
//! its MAC — instead of chaining after a head that is no longer the last.
//!
//! It must never acknowledge a write before `COMMIT` returns, never keep a ledger head in
//! memory that was not committed, and never seal a schema whose seal it found broken.

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Object, Pool, Transaction};
use tokio::sync::mpsc;

use super::jobs::{Job, Reply, apply};
use super::rows::{SEAL_COLUMNS, head_from_row, query_opt, seal_from_row};
use super::runtime::PgRuntime;
use crate::error::{Error, Result};
use crate::integrity::{IntegrityKeys, StateSeal};
use crate::ledger::{LedgerDraft, LedgerHead, LedgerKey};
use crate::storage::*;

/// Most jobs folded into one transaction.
const MAX_JOBS_PER_TRANSACTION: usize = 512;

/// What the writer task carries from one transaction to the next.
pub(super) struct WriterState {
    /// The ledger's head and the accumulated MACs, as the open transaction leaves them.
    pub(super) seal: StateSeal,
    /// Keys the chain; attached by the vault before its first write.
    pub(super) ledger_key: Option<Arc<LedgerKey>>,
    /// MACs rows and the seal; attached by the vault after the ledger key.
    pub(super) integrity: Option<Arc<IntegrityKeys>>,
    /// Why every write is refused: the stored seal did not verify.
    pub(super) refused: Option<String>,
    /// The node this process is, once it joined the others on the schema: every write
    /// then also writes its change.
    pub(super) node: Option<String>,
    /// The notification channel changes ring.
    pub(super) channel: String,
    /// The seal in memory may not be what was committed (a commit whose outcome is
    /// unknown, a new connection): read it back before the next transaction writes.
    stale: bool,
}

impl WriterState {
    /// The integrity keys, or why a write cannot be made now.
    pub(super) fn writable_integrity(&self) -> Result<Arc<IntegrityKeys>> {
        if let Some(problem) = &self.refused {
            return Err(Error::Integrity {
                detail: format!("{problem}; writes are refused"),
            });
        }
        self.integrity.clone().ok_or_else(|| Error::Config {
            detail: "the integrity keys are not attached; open the storage through the vault"
                .into(),
        })
    }
}

struct Queued {
    job: Job,
    reply: std::sync::mpsc::SyncSender<Result<Reply>>,
}

/// The handle on the writer task; dropping it commits the queued jobs and stops the task.
pub(super) struct Writer {
    jobs: Option<mpsc::UnboundedSender<Queued>>,
    stopped: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Writer {
    /// Starts the writer on `runtime`, with connections from `pool` (its own, of one).
    pub(super) fn start(runtime: &PgRuntime, pool: Pool) -> Writer {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (stopping, stopped) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let state = WriterState {
                seal: StateSeal::EMPTY,
                ledger_key: None,
                integrity: None,
                refused: None,
                node: None,
                channel: String::new(),
                stale: true,
            };
            run_writer(pool, receiver, state).await;
            drop(stopping);
        });
        Writer {
            jobs: Some(sender),
            stopped: std::sync::Mutex::new(stopped),
        }
    }

    /// Runs `job` inside the writer's next transaction; returns once it is committed.
    pub(super) fn submit(&self, job: Job) -> Result<Reply> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or(Error::WriterStopped)?
            .send(Queued { job, reply })
            .map_err(|_| Error::WriterStopped)?;
        answer.recv().map_err(|_| Error::WriterStopped)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once queued jobs are committed.
        self.jobs.take();
        if let Ok(stopped) = self.stopped.get_mut() {
            let _ = stopped.recv();
        }
    }
}

async fn run_writer(pool: Pool, mut jobs: mpsc::UnboundedReceiver<Queued>, mut state: WriterState) {
    let mut connection: Option<Object> = None;
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_TRANSACTION {
            match jobs.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        run_transaction(&pool, &mut connection, &mut state, batch).await;
    }
}

/// Answers every job of `batch` with the same failure.
fn fail_all(
    batch: impl IntoIterator<Item = std::sync::mpsc::SyncSender<Result<Reply>>>,
    detail: &str,
) {
    for reply in batch {
        let _ = reply.send(Err(Error::Storage {
            detail: detail.to_owned(),
        }));
    }
}

/// One group-commit transaction over `batch`.
async fn run_transaction(
    pool: &Pool,
    connection: &mut Option<Object>,
    state: &mut WriterState,
    batch: Vec<Queued>,
) {
    if connection.as_ref().is_none_or(|client| client.is_closed()) {
        *connection = None;
        match pool.get().await {
            Ok(client) => {
                *connection = Some(client);
                state.stale = true;
            }
            Err(error) => {
                let detail = Error::from(error).to_string();
                fail_all(batch.into_iter().map(|queued| queued.reply), &detail);
                return;
            }
        }
    }
    let Some(client) = connection.as_mut() else {
        return;
    };
    let mut transaction = match client.transaction().await {
        Ok(transaction) => transaction,
        Err(error) => {
            let detail = Error::from(error).to_string();
            fail_all(batch.into_iter().map(|queued| queued.reply), &detail);
            return;
        }
    };
    if let Err(error) = lock_and_refresh(&transaction, state).await {
        state.stale = true;
        let detail = error.to_string();
        let _ = transaction.rollback().await;
        fail_all(batch.into_iter().map(|queued| queued.reply), &detail);
        return;
    }
    let seal_before_transaction = state.seal;
    let single = batch.len() == 1;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut pending = batch.into_iter();
    let mut aborted: Option<String> = None;
    for queued in pending.by_ref() {
        let seal_before_job = state.seal;
        // Alone in its transaction, a job needs no savepoint: if it fails, the whole
        // transaction rolls back.
        let (outcome, usable) = if single {
            let outcome = apply(&transaction, state, queued.job).await;
            let usable = outcome.is_ok();
            (outcome, usable)
        } else {
            match transaction.savepoint("job").await {
                Err(error) => (Err(Error::from(error)), false),
                Ok(savepoint) => {
                    let outcome = apply(&savepoint, state, queued.job).await;
                    let settled = if outcome.is_ok() {
                        savepoint.commit().await
                    } else {
                        savepoint.rollback().await
                    };
                    match (outcome, settled) {
                        (outcome, Ok(())) => (outcome, true),
                        (Err(error), Err(_)) => (Err(error), false),
                        (Ok(_), Err(error)) => (Err(Error::from(error)), false),
                    }
                }
            }
        };
        if outcome.is_err() {
            state.seal = seal_before_job;
        }
        if !usable {
            aborted = Some(match &outcome {
                Err(error) => error.to_string(),
                Ok(_) => String::new(),
            });
            let _ = queued.reply.send(outcome);
            break;
        }
        outcomes.push((queued.reply, outcome));
    }
    if let Some(detail) = aborted {
        let _ = transaction.rollback().await;
        state.seal = seal_before_transaction;
        let detail = format!("transaction rolled back: {detail}");
        fail_all(outcomes.into_iter().map(|(reply, _)| reply), &detail);
        fail_all(pending.map(|queued| queued.reply), &detail);
        return;
    }
    // Acknowledge only after the seal is written and the commit is durable.
    let committed = match write_seal(&transaction, state).await {
        Ok(()) => transaction.commit().await.map_err(Error::from),
        Err(error) => {
            let _ = transaction.rollback().await;
            Err(error)
        }
    };
    match committed {
        Ok(()) => {
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            // Whatever was committed is read back before the next write.
            state.seal = seal_before_transaction;
            state.stale = true;
            fail_all(
                outcomes.into_iter().map(|(reply, _)| reply),
                &error.to_string(),
            );
        }
    }
}

/// Takes the writer lock for this transaction and reads the ledger's committed head; when
/// it is not the head in memory (another process wrote) or memory is stale, reloads the
/// seal as committed.
async fn lock_and_refresh(transaction: &Transaction<'_>, state: &mut WriterState) -> Result<()> {
    // Locked first, read after, in one round trip: the two statements are pipelined, and in
    // READ COMMITTED the second sees what was committed when it starts, after the lock.
    let lock = transaction
        .prepare_cached("SELECT id FROM writer_lock WHERE id = 1 FOR UPDATE")
        .await?;
    let newest = transaction
        .prepare_cached("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
        .await?;
    let (locked, newest) = futures_util::future::try_join(
        transaction.query_opt(&lock, &[]),
        transaction.query_opt(&newest, &[]),
    )
    .await?;
    if locked.is_none() {
        return Err(Error::Integrity {
            detail: "the data schema's writer lock row is missing".into(),
        });
    }
    let head = match newest {
        Some(row) => head_from_row(&row, 0)?,
        None => LedgerHead::EMPTY,
    };
    if !state.stale && head == state.seal.head {
        return Ok(());
    }
    let stored = read_stored_seal(transaction).await?;
    match (&state.integrity, &state.refused) {
        (Some(keys), None) => match stored {
            Some(stored)
                if crate::crypto::constant_time_eq(&keys.seal_mac(&stored.seal), &stored.mac)
                    && stored.seal.head == head =>
            {
                state.seal = stored.seal;
            }
            // A seal missing, altered or not matching the ledger: never re-sealed from here.
            _ => {
                state.refused = Some(
                    "the data schema's seal does not match its ledger (changed outside discreet)"
                        .into(),
                );
                state.seal.head = head;
            }
        },
        _ => {
            state.seal = StateSeal {
                head,
                ..stored.map(|stored| stored.seal).unwrap_or(state.seal)
            };
        }
    }
    state.stale = false;
    Ok(())
}

/// The newest committed ledger entry, or the empty head.
pub(super) async fn read_ledger_head(client: &impl GenericClient) -> Result<LedgerHead> {
    Ok(query_opt(
        client,
        "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1",
        &[],
        |row| head_from_row(row, 0),
    )
    .await?
    .unwrap_or(LedgerHead::EMPTY))
}

/// The seal row of the data schema.
pub(super) async fn read_stored_seal(client: &impl GenericClient) -> Result<Option<StoredSeal>> {
    query_opt(
        client,
        &format!("SELECT {SEAL_COLUMNS} FROM integrity_seal WHERE id = 1"),
        &[],
        seal_from_row,
    )
    .await
}

/// Rewrites the seal for the transaction about to commit; nothing while integrity keys are
/// not attached (the vault's opening steps), and never once writes are refused.
async fn write_seal(transaction: &Transaction<'_>, state: &WriterState) -> Result<()> {
    let (Some(keys), None) = (&state.integrity, &state.refused) else {
        return Ok(());
    };
    let mac = keys.seal_mac(&state.seal);
    super::rows::execute(
        transaction,
        "INSERT INTO integrity_seal(id, ledger_seq, ledger_hash, consent_heads, api_keys, mac)
         VALUES (1, $1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET ledger_seq = excluded.ledger_seq,
             ledger_hash = excluded.ledger_hash, consent_heads = excluded.consent_heads,
             api_keys = excluded.api_keys, mac = excluded.mac",
        &[
            &state.seal.head.seq,
            &&state.seal.head.hash[..],
            &&state.seal.consent_heads[..],
            &&state.seal.api_keys[..],
            &&mac[..],
        ],
    )
    .await?;
    Ok(())
}

/// Chains `entries` after the writer's head and inserts them in one statement (inside the
/// job's transaction).
pub(super) async fn append_ledger_entries(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    entries: Vec<LedgerDraft>,
) -> Result<()> {
    if let Some(problem) = &state.refused {
        return Err(Error::Integrity {
            detail: format!("{problem}; writes are refused"),
        });
    }
    let key = state.ledger_key.clone().ok_or_else(|| Error::Config {
        detail: "the ledger key is not attached; open the storage through the vault".into(),
    })?;
    if entries.is_empty() {
        return Ok(());
    }
    let count = entries.len();
    let mut seqs = Vec::with_capacity(count);
    let mut ats = Vec::with_capacity(count);
    let mut actors = Vec::with_capacity(count);
    let mut actions = Vec::with_capacity(count);
    let mut tokens = Vec::with_capacity(count);
    let mut purposes = Vec::with_capacity(count);
    let mut categories = Vec::with_capacity(count);
    let mut outcomes = Vec::with_capacity(count);
    let mut details = Vec::with_capacity(count);
    let mut prev_hashes = Vec::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);
    for entry in entries {
        let record = key.chain(&mut state.seal.head, entry);
        categories.push(
            serde_json::to_string(&record.entry.categories).map_err(|error| Error::Storage {
                detail: error.to_string(),
            })?,
        );
        seqs.push(record.seq);
        prev_hashes.push(record.prev_hash.to_vec());
        hashes.push(record.hash.to_vec());
        let entry = record.entry;
        ats.push(entry.at);
        actors.push(entry.actor);
        actions.push(entry.action);
        tokens.push(entry.subject_token);
        purposes.push(entry.purpose);
        outcomes.push(entry.outcome);
        details.push(entry.detail);
    }
    super::rows::execute(
        transaction,
        "INSERT INTO ledger(seq, at, actor, action, subject_token, purpose, categories, outcome, detail, prev_hash, hash)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[], $11::bytea[])",
        &[
            &seqs, &ats, &actors, &actions, &tokens, &purposes, &categories, &outcomes, &details,
            &prev_hashes, &hashes,
        ],
    )
    .await?;
    Ok(())
}
