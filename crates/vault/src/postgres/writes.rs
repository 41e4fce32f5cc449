//! The statements each write job of `PostgresStorage` runs on the writer, inside the
//! writer's transaction: a batch of new rows, and the steps of a forget and of retention
//! (consent chains and API key MACs are `chains`).
//! Rows of one kind go in one statement (`unnest` of arrays), so a batch of 1,000 events
//! costs a handful of round trips, not a thousand.
//!
//! A job here never commits, never keeps state outside the transaction, and never writes a
//! row of a subject that is not live: the check locks the subjects' rows, and
//! `begin_erasure` changes them on the same writer lock.

use deadpool_postgres::Transaction;

use super::chains::{append_consent, insert_api_keys, remove_consent_head};
use super::cluster::record_change;
use super::rows::{INTENT_COLUMNS, execute, intent_from_row, query_opt, query_rows};
use super::writer::{WriterState, append_ledger_entries};
use crate::error::{Error, Missing, Result};
use crate::ledger::{LedgerDraft, LedgerHead};
use crate::storage::*;

/// The unfinished erasure of `subject`, if any.
pub(super) async fn intent_of(
    client: &impl deadpool_postgres::GenericClient,
    subject: SubjectId,
) -> Result<Option<ErasureIntent>> {
    query_opt(
        client,
        &format!("SELECT {INTENT_COLUMNS} FROM erasures WHERE subject = $1"),
        &[&subject],
        intent_from_row,
    )
    .await
}

/// Everything of `batch`, with its ledger entries; the new ledger head.
pub(super) async fn write_batch(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    batch: WriteBatch,
) -> Result<LedgerHead> {
    if let Some(record) = &batch.idempotency {
        let inserted = execute(
            transaction,
            "INSERT INTO idempotency(key_hash, body_hash, accepted, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_hash) DO NOTHING",
            &[
                &record.key_hash,
                &record.body_hash,
                &(record.accepted as i64),
                &record.at,
            ],
        )
        .await?;
        if inserted == 0 {
            return Err(Error::IdempotencyConflict);
        }
    }
    if !batch.new_subjects.is_empty() {
        let ids: Vec<i64> = batch
            .new_subjects
            .iter()
            .map(|subject| subject.id)
            .collect();
        let sealed: Vec<&[u8]> = batch
            .new_subjects
            .iter()
            .map(|subject| subject.sealed_external_id.as_slice())
            .collect();
        let created: Vec<i64> = batch
            .new_subjects
            .iter()
            .map(|subject| subject.created_at)
            .collect();
        execute(
            transaction,
            "INSERT INTO subjects(id, sealed_external_id, created_at, forgetting)
             SELECT id, sealed, created_at, false
             FROM unnest($1::bigint[], $2::bytea[], $3::bigint[]) AS new(id, sealed, created_at)",
            &[&ids, &sealed, &created],
        )
        .await?;
    }
    check_subjects_live(transaction, &batch).await?;
    insert_batch_rows(transaction, state, &batch).await?;
    if !batch.events.is_empty() {
        let mut subjects: Vec<SubjectId> = batch.events.iter().map(|event| event.subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let seqs: Vec<i64> = batch.events.iter().map(|event| event.seq).collect();
        record_change(transaction, state, ChangeKind::Events, &subjects, &seqs).await?;
    }
    if !batch.consents.is_empty() {
        let mut subjects: Vec<SubjectId> = batch.consents.iter().map(|row| row.subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        record_change(transaction, state, ChangeKind::Consents, &subjects, &[]).await?;
    }
    if !batch.api_keys.is_empty() || !batch.revoked_api_keys.is_empty() {
        record_change(transaction, state, ChangeKind::Keys, &[], &[]).await?;
    }
    append_ledger_entries(transaction, state, batch.ledger).await?;
    Ok(state.seal.head)
}

/// Refuses data for a subject that is being forgotten or gone. The rows are locked
/// (`FOR SHARE`): a forget of another process cannot mark them in between.
async fn check_subjects_live(transaction: &Transaction<'_>, batch: &WriteBatch) -> Result<()> {
    let mut subjects: Vec<SubjectId> = batch
        .events
        .iter()
        .map(|event| event.subject)
        .chain(batch.attributes.iter().map(|attribute| attribute.subject))
        .chain(batch.consents.iter().map(|consent| consent.subject))
        .collect();
    if subjects.is_empty() {
        return Ok(());
    }
    subjects.sort_unstable();
    subjects.dedup();
    let found = query_rows(
        transaction,
        "SELECT id, forgetting FROM subjects WHERE id = ANY($1) FOR SHARE",
        &[&subjects],
        |row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, bool>(1)?)),
    )
    .await?;
    if found.iter().any(|(_, forgetting)| *forgetting) {
        return Err(Error::Forgetting);
    }
    if found.len() != subjects.len() {
        return Err(Error::NotFound {
            what: Missing::Subject,
        });
    }
    Ok(())
}

/// Inserts the rows of `batch` (after its subjects were checked); ledger entries apart.
async fn insert_batch_rows(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    batch: &WriteBatch,
) -> Result<()> {
    if !batch.events.is_empty() {
        let seqs: Vec<i64> = batch.events.iter().map(|event| event.seq).collect();
        let subjects: Vec<i64> = batch.events.iter().map(|event| event.subject).collect();
        let categories: Vec<&str> = batch
            .events
            .iter()
            .map(|event| event.category.as_str())
            .collect();
        let ats: Vec<i64> = batch.events.iter().map(|event| event.at).collect();
        let sealed: Vec<&[u8]> = batch
            .events
            .iter()
            .map(|event| event.sealed.as_slice())
            .collect();
        execute(
            transaction,
            "INSERT INTO events(seq, subject, category, at, sealed)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bytea[])",
            &[&seqs, &subjects, &categories, &ats, &sealed],
        )
        .await?;
    }
    // One statement per value: a batch may set one attribute twice, and the last one wins.
    for attribute in &batch.attributes {
        execute(
            transaction,
            "INSERT INTO attributes(subject, name, category, updated_at, sealed) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (subject, name) DO UPDATE SET category = excluded.category,
                 updated_at = excluded.updated_at, sealed = excluded.sealed",
            &[
                &attribute.subject,
                &attribute.name,
                &attribute.category,
                &attribute.updated_at,
                &attribute.sealed,
            ],
        )
        .await?;
    }
    if !batch.consents.is_empty()
        || !batch.api_keys.is_empty()
        || !batch.revoked_api_keys.is_empty()
    {
        let keys = state.writable_integrity()?;
        for consent in &batch.consents {
            append_consent(transaction, &keys, &mut state.seal, consent).await?;
        }
        insert_api_keys(transaction, &keys, &mut state.seal, batch).await?;
    }
    Ok(())
}

/// Records (or keeps) the intent to forget and marks the subject as forgetting.
pub(super) async fn begin_erasure(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    intent: ErasureIntent,
    entry: LedgerDraft,
) -> Result<ErasureIntent> {
    // Every node unlearns the subject now, while its events can still be read.
    record_change(
        transaction,
        state,
        ChangeKind::Forgetting,
        &[intent.subject],
        &[],
    )
    .await?;
    if let Some(existing) = intent_of(transaction, intent.subject).await? {
        return Ok(existing);
    }
    execute(
        transaction,
        "INSERT INTO erasures(subject, subject_token, requested_at, model_interactions)
         VALUES ($1, $2, $3, $4)",
        &[
            &intent.subject,
            &intent.subject_token,
            &intent.requested_at,
            &(intent.model_interactions as i64),
        ],
    )
    .await?;
    execute(
        transaction,
        "UPDATE subjects SET forgetting = true WHERE id = $1",
        &[&intent.subject],
    )
    .await?;
    append_ledger_entries(transaction, state, vec![entry]).await?;
    Ok(intent)
}

/// Deletes a subject's rows of `table`; how many went.
async fn delete_rows_of(
    transaction: &Transaction<'_>,
    table: &str,
    subject: SubjectId,
) -> Result<u64> {
    execute(
        transaction,
        &format!("DELETE FROM {table} WHERE subject = $1"),
        &[&subject],
    )
    .await
}

/// Erases the subject's rows (exactly `expected` of them), stores the receipt and removes
/// the intent and the subject.
pub(super) async fn complete_erasure(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    subject: SubjectId,
    expected: SubjectRowCounts,
    receipt: &StoredReceipt,
    entry: LedgerDraft,
) -> Result<()> {
    let erased = SubjectRowCounts {
        events: delete_rows_of(transaction, "events", subject).await?,
        attributes: delete_rows_of(transaction, "attributes", subject).await?,
        consents: delete_rows_of(transaction, "consents", subject).await?,
    };
    remove_consent_head(transaction, state, subject).await?;
    if erased != expected {
        return Err(Error::Conflict {
            detail: "the subject's rows changed while its receipt was signed".into(),
        });
    }
    execute(
        transaction,
        "INSERT INTO receipts(id, subject_token, json) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
        &[&receipt.id, &receipt.subject_token, &receipt.json],
    )
    .await?;
    // Exactly one forget completes: another that raced here finds no intent left.
    if delete_rows_of(transaction, "erasures", subject).await? != 1 {
        return Err(Error::NotFound {
            what: Missing::ErasureIntent,
        });
    }
    execute(
        transaction,
        "DELETE FROM subjects WHERE id = $1",
        &[&subject],
    )
    .await?;
    record_change(transaction, state, ChangeKind::Forgotten, &[subject], &[]).await?;
    append_ledger_entries(transaction, state, vec![entry]).await?;
    Ok(())
}

/// Removes every row of a subject whose key is already destroyed.
pub(super) async fn drop_subject(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    subject: SubjectId,
    entry: LedgerDraft,
) -> Result<()> {
    remove_consent_head(transaction, state, subject).await?;
    for table in ["events", "attributes", "consents", "erasures"] {
        delete_rows_of(transaction, table, subject).await?;
    }
    execute(
        transaction,
        "DELETE FROM subjects WHERE id = $1",
        &[&subject],
    )
    .await?;
    record_change(transaction, state, ChangeKind::Forgotten, &[subject], &[]).await?;
    append_ledger_entries(transaction, state, vec![entry]).await?;
    Ok(())
}

/// Deletes the given events and attribute values; how many rows went.
pub(super) async fn erase_records(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    events: &[i64],
    attributes: &[(SubjectId, String, i64)],
    ledger: Vec<LedgerDraft>,
) -> Result<u64> {
    let mut erased = 0u64;
    if !events.is_empty() {
        erased += execute(
            transaction,
            "DELETE FROM events WHERE seq = ANY($1)",
            &[&events],
        )
        .await?;
    }
    // Only the value that expired: a newer one written since stays.
    for (subject, name, updated_at) in attributes {
        erased += execute(
            transaction,
            "DELETE FROM attributes WHERE subject = $1 AND name = $2 AND updated_at = $3",
            &[subject, name, updated_at],
        )
        .await?;
    }
    let mut subjects: Vec<SubjectId> = attributes.iter().map(|(subject, _, _)| *subject).collect();
    subjects.sort_unstable();
    subjects.dedup();
    record_change(transaction, state, ChangeKind::Erased, &subjects, events).await?;
    append_ledger_entries(transaction, state, ledger).await?;
    Ok(erased)
}

/// Declares or replaces catalogue items; how many were new. Items are not personal data:
/// no subject check, no ledger entry.
pub(super) async fn upsert_items(transaction: &Transaction<'_>, items: &[ItemRow]) -> Result<u64> {
    let mut created = 0;
    for item in items {
        let categories =
            serde_json::to_string(&item.categories).map_err(|error| Error::Storage {
                detail: format!("item categories: {error}"),
            })?;
        // `xmax = 0` only on a row this statement inserted (an update leaves its xid).
        let inserted: bool = query_opt(
            transaction,
            "INSERT INTO items(item, title, categories, price, available, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (item) DO UPDATE SET title = excluded.title, categories = excluded.categories,
                 price = excluded.price, available = excluded.available, updated_at = excluded.updated_at
             RETURNING (xmax = 0)",
            &[
                &item.item,
                &item.title,
                &categories,
                &item.price,
                &item.available,
                &item.updated_at,
            ],
            |row| Ok(row.try_get(0)?),
        )
        .await?
        .unwrap_or(false);
        if inserted {
            created += 1;
        }
    }
    Ok(created)
}
