//! The statements each write job of `SqliteStorage` runs on the writer thread, inside the
//! writer's transaction: a batch of new rows, and the steps of a forget and of retention.
//!
//! A job here never commits, never keeps state outside the transaction, and never writes a
//! row of a subject that is not live: the check and `begin_erasure` both run on the one
//! writer, so a write that lost the race to a forget leaves nothing behind.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{CONSENT_COLUMNS, INTENT_COLUMNS, intent_from_row};
use super::writer::{WriterState, append_ledger_entries};
use crate::error::{Error, Missing, Result};
use crate::ledger::{LedgerDraft, LedgerHead};
use crate::storage::*;

/// The unfinished erasure of `subject`, if any.
pub(super) fn intent_of(
    connection: &Connection,
    subject: SubjectId,
) -> Result<Option<ErasureIntent>> {
    Ok(connection
        .query_row(
            &format!("SELECT {INTENT_COLUMNS} FROM erasures WHERE subject = ?1"),
            [subject],
            intent_from_row,
        )
        .optional()?)
}

/// Everything of `batch`, with its ledger entries; the new ledger head.
pub(super) fn write_batch(
    connection: &Connection,
    state: &mut WriterState,
    batch: WriteBatch,
) -> Result<LedgerHead> {
    if let Some(record) = &batch.idempotency {
        let inserted = connection.execute(
            "INSERT OR IGNORE INTO idempotency(key_hash, body_hash, accepted, at) VALUES (?1, ?2, ?3, ?4)",
            params![record.key_hash, record.body_hash, record.accepted as i64, record.at],
        )?;
        if inserted == 0 {
            return Err(Error::IdempotencyConflict);
        }
    }
    let mut statement = connection.prepare_cached(
        "INSERT INTO subjects(id, sealed_external_id, created_at, forgetting) VALUES (?1, ?2, ?3, 0)",
    )?;
    for subject in &batch.new_subjects {
        statement.execute(params![
            subject.id,
            subject.sealed_external_id,
            subject.created_at
        ])?;
    }
    check_subjects_live(connection, &batch)?;
    insert_batch_rows(connection, &batch)?;
    append_ledger_entries(connection, state, batch.ledger)?;
    Ok(state.head)
}

/// Refuses data for a subject that is being forgotten or gone.
fn check_subjects_live(connection: &Connection, batch: &WriteBatch) -> Result<()> {
    let mut subjects: Vec<SubjectId> = batch
        .events
        .iter()
        .map(|event| event.subject)
        .chain(batch.attributes.iter().map(|attribute| attribute.subject))
        .chain(batch.consents.iter().map(|consent| consent.subject))
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    let mut statement =
        connection.prepare_cached("SELECT forgetting FROM subjects WHERE id = ?1")?;
    for subject in subjects {
        let forgetting: Option<i64> = statement
            .query_row([subject], |row| row.get(0))
            .optional()?;
        match forgetting {
            Some(0) => {}
            Some(_) => return Err(Error::Forgetting),
            None => {
                return Err(Error::NotFound {
                    what: Missing::Subject,
                });
            }
        }
    }
    Ok(())
}

/// Inserts the rows of `batch` (after its subjects were checked); ledger entries apart.
fn insert_batch_rows(connection: &Connection, batch: &WriteBatch) -> Result<()> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO events(seq, subject, category, at, sealed) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for event in &batch.events {
        statement.execute(params![
            event.seq,
            event.subject,
            event.category,
            event.at,
            event.sealed
        ])?;
    }
    if let Some(high) = batch.events.iter().map(|event| event.seq).max() {
        connection.execute(
            "INSERT INTO meta(key, value) VALUES ('event_seq_high', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            [high],
        )?;
    }
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
    let mut statement = connection.prepare_cached(&format!(
        "INSERT INTO consents({CONSENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?;
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
    let mut statement = connection.prepare_cached(
        "INSERT INTO api_keys(id, role, label, secret_hash, created_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
    )?;
    for key in &batch.api_keys {
        statement.execute(params![
            key.id,
            key.role,
            key.label,
            key.secret_hash.as_slice(),
            key.created_at
        ])?;
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
    Ok(())
}

/// Records (or keeps) the intent to forget and marks the subject as forgetting.
pub(super) fn begin_erasure(
    connection: &Connection,
    state: &mut WriterState,
    intent: ErasureIntent,
    entry: LedgerDraft,
) -> Result<ErasureIntent> {
    if let Some(existing) = intent_of(connection, intent.subject)? {
        return Ok(existing);
    }
    connection.execute(
        "INSERT INTO erasures(subject, subject_token, requested_at, model_interactions) VALUES (?1, ?2, ?3, ?4)",
        params![intent.subject, intent.subject_token, intent.requested_at, intent.model_interactions as i64],
    )?;
    connection.execute(
        "UPDATE subjects SET forgetting = 1 WHERE id = ?1",
        [intent.subject],
    )?;
    append_ledger_entries(connection, state, vec![entry])?;
    Ok(intent)
}

/// Erases the subject's rows (exactly `expected` of them), stores the receipt and removes
/// the intent and the subject.
pub(super) fn complete_erasure(
    connection: &Connection,
    state: &mut WriterState,
    subject: SubjectId,
    expected: SubjectRowCounts,
    receipt: &StoredReceipt,
    entry: LedgerDraft,
) -> Result<()> {
    let delete = |table: &str| -> Result<u64> {
        Ok(connection.execute(
            &format!("DELETE FROM {table} WHERE subject = ?1"),
            [subject],
        )? as u64)
    };
    let erased = SubjectRowCounts {
        events: delete("events")?,
        attributes: delete("attributes")?,
        consents: delete("consents")?,
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
    if delete("erasures")? != 1 {
        return Err(Error::NotFound {
            what: Missing::ErasureIntent,
        });
    }
    connection.execute("DELETE FROM subjects WHERE id = ?1", [subject])?;
    append_ledger_entries(connection, state, vec![entry])?;
    Ok(())
}

/// Removes every row of a subject whose key is already destroyed.
pub(super) fn drop_subject(
    connection: &Connection,
    state: &mut WriterState,
    subject: SubjectId,
    entry: LedgerDraft,
) -> Result<()> {
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
}

/// Deletes the given events and attribute values; how many rows went.
pub(super) fn erase_records(
    connection: &Connection,
    state: &mut WriterState,
    events: &[i64],
    attributes: &[(SubjectId, String, i64)],
    ledger: Vec<LedgerDraft>,
) -> Result<u64> {
    let mut erased = 0u64;
    let mut statement = connection.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
    for seq in events {
        erased += statement.execute([seq])? as u64;
    }
    // Only the value that expired: a newer one written since stays.
    let mut statement = connection.prepare_cached(
        "DELETE FROM attributes WHERE subject = ?1 AND name = ?2 AND updated_at = ?3",
    )?;
    for (subject, name, updated_at) in attributes {
        erased += statement.execute(params![subject, name, updated_at])? as u64;
    }
    append_ledger_entries(connection, state, ledger)?;
    Ok(erased)
}
