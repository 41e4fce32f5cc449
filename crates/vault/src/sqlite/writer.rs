//! The one writer of the data file: a thread that folds the jobs waiting for it into one
//! transaction (group commit), each job in its own savepoint, and answers each job only
//! once its transaction is durable. It also extends the ledger chain, so entries are
//! chained in the order they are committed.
//!
//! It also seals every transaction: just before `COMMIT` it rewrites the data file's seal
//! (the ledger's head and the accumulated MACs of consent heads and API key rows, MAC'd
//! with a key from the key store), so a cut tail or a replayed row is found later.
//!
//! It must never acknowledge a write before `COMMIT` returns, never keep a ledger head
//! in memory that was not committed, and never seal a file whose seal it found broken.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{head_from_row, seal_from_row};
use crate::error::{Error, Result};
use crate::integrity::{IntegrityKeys, StateSeal};
use crate::ledger::{LedgerDraft, LedgerHead, LedgerKey};

/// Most jobs folded into one transaction.
const MAX_JOBS_PER_TRANSACTION: usize = 512;

/// What the writer thread carries from one transaction to the next.
pub(super) struct WriterState {
    /// The ledger's head and the accumulated MACs, as the open transaction leaves them.
    pub(super) seal: StateSeal,
    /// Keys the chain; attached by the vault before its first write.
    pub(super) ledger_key: Option<Arc<LedgerKey>>,
    /// MACs rows and the seal; attached by the vault after the ledger key.
    pub(super) integrity: Option<Arc<IntegrityKeys>>,
    /// Why every write is refused: the stored seal did not verify when it was attached.
    pub(super) refused: Option<String>,
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

type AnyBox = Box<dyn Any + Send>;
type Operation = Box<dyn FnOnce(&Connection, &mut WriterState) -> Result<AnyBox> + Send>;

struct Job {
    operation: Operation,
    reply: mpsc::SyncSender<Result<AnyBox>>,
}

/// The handle on the writer thread; dropping it commits the queued jobs and stops the thread.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer on `connection` (to the file at `path`, named in errors).
    pub(super) fn start(connection: Connection, path: &Path) -> Result<Writer> {
        let head = read_ledger_head(&connection)?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("discreet-vault-writer".into())
            .spawn(move || {
                run_writer(
                    connection,
                    receiver,
                    WriterState {
                        seal: StateSeal {
                            head,
                            ..StateSeal::EMPTY
                        },
                        ledger_key: None,
                        integrity: None,
                        refused: None,
                    },
                )
            })
            .map_err(|error| Error::io("starting the writer thread for", path, error))?;
        Ok(Writer {
            jobs: Some(sender),
            thread: Some(thread),
        })
    }

    /// Runs `operation` inside the writer's next transaction; returns once it is committed.
    pub(super) fn submit<T: Send + 'static>(
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
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once queued jobs are committed.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
        let seal_before_transaction = state.seal;
        let single = batch.len() == 1;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut pending = batch.into_iter();
        let mut aborted: Option<String> = None;
        for job in pending.by_ref() {
            let seal_before_job = state.seal;
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
                state.seal = seal_before_job;
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
            state.seal =
                read_committed_seal(&connection, &state).unwrap_or(seal_before_transaction);
            continue;
        }
        // Acknowledge only after the seal is written and the commit is durable.
        let committed = write_seal(&connection, &state)
            .and_then(|()| connection.execute_batch("COMMIT").map_err(Error::from));
        match committed {
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
                state.seal =
                    read_committed_seal(&connection, &state).unwrap_or(seal_before_transaction);
                let detail = error.to_string();
                for (reply, _) in outcomes {
                    let _ = reply.send(Err(storage_error(&detail)));
                }
            }
        }
    }
}

/// The newest committed ledger entry, or the empty head.
pub(super) fn read_ledger_head(connection: &Connection) -> Result<LedgerHead> {
    let head = connection
        .query_row(
            "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1",
            [],
            head_from_row,
        )
        .optional()?;
    Ok(head.unwrap_or(LedgerHead::EMPTY))
}

/// The seal as committed: the ledger's newest entry, and the accumulated MACs of the stored
/// seal (those of memory when no seal is stored yet).
fn read_committed_seal(connection: &Connection, state: &WriterState) -> Result<StateSeal> {
    let head = read_ledger_head(connection)?;
    let stored = read_stored_seal(connection)?;
    Ok(StateSeal {
        head,
        ..stored.map(|stored| stored.seal).unwrap_or(state.seal)
    })
}

/// The seal row of the data file.
pub(super) fn read_stored_seal(
    connection: &Connection,
) -> Result<Option<crate::storage::StoredSeal>> {
    Ok(connection
        .query_row(
            "SELECT ledger_seq, ledger_hash, consent_heads, api_keys, mac FROM integrity_seal WHERE id = 1",
            [],
            seal_from_row,
        )
        .optional()?)
}

/// Rewrites the seal for the transaction about to commit; nothing while integrity keys are
/// not attached (the vault's opening steps), and never once writes are refused.
fn write_seal(connection: &Connection, state: &WriterState) -> Result<()> {
    let (Some(keys), None) = (&state.integrity, &state.refused) else {
        return Ok(());
    };
    let mac = keys.seal_mac(&state.seal);
    connection
        .prepare_cached(
            "INSERT INTO integrity_seal(id, ledger_seq, ledger_hash, consent_heads, api_keys, mac)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET ledger_seq = excluded.ledger_seq,
                 ledger_hash = excluded.ledger_hash, consent_heads = excluded.consent_heads,
                 api_keys = excluded.api_keys, mac = excluded.mac",
        )?
        .execute(params![
            state.seal.head.seq,
            &state.seal.head.hash[..],
            &state.seal.consent_heads[..],
            &state.seal.api_keys[..],
            &mac[..],
        ])?;
    Ok(())
}

/// Chains `entries` after the writer's head and inserts them (inside the job's transaction).
pub(super) fn append_ledger_entries(
    connection: &Connection,
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
    let mut statement = connection.prepare_cached(
        "INSERT INTO ledger(seq, at, actor, action, subject_token, purpose, categories, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for entry in entries {
        let record = key.chain(&mut state.seal.head, entry);
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
