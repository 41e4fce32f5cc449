//! The writes the writer runs, as values: each `Job` names one write of the storage
//! contract and carries what it needs, each `Reply` what it answers, and `apply` runs a
//! job inside the writer's open transaction (the statements themselves are in `writes`
//! and `chains`). A job never commits: the writer does, for the whole group.

use std::sync::Arc;

use deadpool_postgres::Transaction;

use super::cluster::record_change;
use super::rows::execute;
use super::writer::{WriterState, append_ledger_entries};
use super::{chains, writes};
use crate::error::{Error, Result};
use crate::integrity::IntegrityKeys;
use crate::ledger::{Checkpoint, LedgerDraft, LedgerHead, LedgerKey};
use crate::storage::*;

/// A write the writer runs inside its transaction.
pub(super) enum Job {
    AttachLedgerKey(Arc<LedgerKey>),
    AttachIntegrity {
        keys: Arc<IntegrityKeys>,
        migrate: bool,
        refuse: Option<String>,
    },
    SetMeta(String, String),
    Write(WriteBatch),
    BeginErasure(ErasureIntent, LedgerDraft),
    CompleteErasure {
        subject: SubjectId,
        expected: SubjectRowCounts,
        receipt: StoredReceipt,
        entry: LedgerDraft,
    },
    DropSubject(SubjectId, LedgerDraft),
    EraseRecords {
        events: Vec<i64>,
        attributes: Vec<(SubjectId, String, i64)>,
        ledger: Vec<LedgerDraft>,
    },
    AppendLedger(Vec<LedgerDraft>),
    AddCheckpoint(Checkpoint),
    UpsertItems(Vec<ItemRow>),
    /// This process joins the others on the schema as `node`.
    Join {
        node: String,
        channel: String,
    },
    /// A change on its own; answers its sequence number.
    Announce {
        kind: ChangeKind,
        subjects: Vec<SubjectId>,
        events: Vec<i64>,
    },
}

/// What a job answers.
pub(super) enum Reply {
    Done,
    Head(LedgerHead),
    Problem(Option<String>),
    Intent(ErasureIntent),
    Count(u64),
}

impl Reply {
    fn unexpected() -> Error {
        Error::Storage {
            detail: "writer reply of the wrong kind".into(),
        }
    }

    pub(super) fn done(self) -> Result<()> {
        match self {
            Reply::Done => Ok(()),
            _ => Err(Reply::unexpected()),
        }
    }

    pub(super) fn head(self) -> Result<LedgerHead> {
        match self {
            Reply::Head(head) => Ok(head),
            _ => Err(Reply::unexpected()),
        }
    }

    pub(super) fn problem(self) -> Result<Option<String>> {
        match self {
            Reply::Problem(problem) => Ok(problem),
            _ => Err(Reply::unexpected()),
        }
    }

    pub(super) fn intent(self) -> Result<ErasureIntent> {
        match self {
            Reply::Intent(intent) => Ok(intent),
            _ => Err(Reply::unexpected()),
        }
    }

    pub(super) fn count(self) -> Result<u64> {
        match self {
            Reply::Count(count) => Ok(count),
            _ => Err(Reply::unexpected()),
        }
    }
}

/// Runs one job.
pub(super) async fn apply(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    job: Job,
) -> Result<Reply> {
    match job {
        Job::AttachLedgerKey(key) => {
            state.ledger_key = Some(key);
            Ok(Reply::Done)
        }
        Job::AttachIntegrity {
            keys,
            migrate,
            refuse,
        } => {
            let problem = if migrate {
                chains::seal_existing_rows(transaction, &keys, &mut state.seal).await?;
                refuse
            } else {
                chains::check_stored_seal(transaction, &keys, &mut state.seal)
                    .await?
                    .or(refuse)
            };
            state.integrity = Some(keys);
            state.refused = problem.clone();
            Ok(Reply::Problem(problem))
        }
        Job::SetMeta(name, value) => {
            execute(
                transaction,
                "INSERT INTO meta(key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&name, &value],
            )
            .await?;
            Ok(Reply::Done)
        }
        Job::Write(batch) => Ok(Reply::Head(
            writes::write_batch(transaction, state, batch).await?,
        )),
        Job::BeginErasure(intent, entry) => Ok(Reply::Intent(
            writes::begin_erasure(transaction, state, intent, entry).await?,
        )),
        Job::CompleteErasure {
            subject,
            expected,
            receipt,
            entry,
        } => {
            writes::complete_erasure(transaction, state, subject, expected, &receipt, entry)
                .await?;
            Ok(Reply::Done)
        }
        Job::DropSubject(subject, entry) => {
            writes::drop_subject(transaction, state, subject, entry).await?;
            Ok(Reply::Done)
        }
        Job::EraseRecords {
            events,
            attributes,
            ledger,
        } => Ok(Reply::Count(
            writes::erase_records(transaction, state, &events, &attributes, ledger).await?,
        )),
        Job::AppendLedger(entries) => {
            append_ledger_entries(transaction, state, entries).await?;
            Ok(Reply::Head(state.seal.head))
        }
        Job::AddCheckpoint(checkpoint) => {
            state.writable_integrity()?;
            execute(
                transaction,
                "INSERT INTO ledger_checkpoints(seq, hash, at, key_id, signature)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
                &[
                    &checkpoint.seq,
                    &&checkpoint.hash[..],
                    &checkpoint.at,
                    &checkpoint.key_id,
                    &checkpoint.signature,
                ],
            )
            .await?;
            Ok(Reply::Done)
        }
        Job::UpsertItems(items) => {
            state.writable_integrity()?;
            let created = writes::upsert_items(transaction, &items).await?;
            record_change(transaction, state, ChangeKind::Items, &[], &[]).await?;
            Ok(Reply::Count(created))
        }
        Job::Join { node, channel } => {
            state.node = Some(node);
            state.channel = channel;
            Ok(Reply::Done)
        }
        Job::Announce {
            kind,
            subjects,
            events,
        } => {
            state.writable_integrity()?;
            let seq = record_change(transaction, state, kind, &subjects, &events)
                .await?
                .ok_or_else(|| Error::Config {
                    detail: "a change is announced only by a process that joined the others".into(),
                })?;
            Ok(Reply::Count(u64::try_from(seq).unwrap_or(0)))
        }
    }
}
