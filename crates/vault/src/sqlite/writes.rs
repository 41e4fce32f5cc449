//! The statements each write job of `SqliteStorage` runs on the writer thread, inside the
//! writer's transaction: a batch of new rows, and the steps of a forget and of retention.
//!
//! A job here never commits, never keeps state outside the transaction, and never writes a
//! row of a subject that is not live: the check and `begin_erasure` both run on the one
//! writer, so a write that lost the race to a forget leaves nothing behind.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{
    API_KEY_COLUMNS, CONSENT_COLUMNS, CONSENT_HEAD_COLUMNS, INTENT_COLUMNS, STORED_CONSENT_COLUMNS,
    api_key_from_row, consent_head_from_row, intent_from_row, query_rows, stored_consent_from_row,
};
use super::writer::{WriterState, append_ledger_entries, read_stored_seal};
use crate::error::{Error, Missing, Result};
use crate::integrity::{CHAIN_START, ConsentHead, IntegrityKeys, StateSeal, xor_into};
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
    insert_batch_rows(connection, state, &batch)?;
    append_ledger_entries(connection, state, batch.ledger)?;
    Ok(state.seal.head)
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
fn insert_batch_rows(
    connection: &Connection,
    state: &mut WriterState,
    batch: &WriteBatch,
) -> Result<()> {
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
    if !batch.consents.is_empty()
        || !batch.api_keys.is_empty()
        || !batch.revoked_api_keys.is_empty()
    {
        let keys = state.writable_integrity()?;
        for consent in &batch.consents {
            append_consent(connection, &keys, &mut state.seal, consent)?;
        }
        insert_api_keys(connection, &keys, &mut state.seal, batch)?;
    }
    Ok(())
}

/// Appends one consent decision to its subject's chain and moves the subject's head.
fn append_consent(
    connection: &Connection,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
    consent: &ConsentRow,
) -> Result<()> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO consents({CONSENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?
        .execute(params![
            consent.subject,
            consent.purpose,
            consent.granted,
            consent.at,
            consent.source,
            consent.policy_version,
            consent.tag
        ])?;
    let seq = connection.last_insert_rowid();
    // Chained after the stored head as it is: a history already broken stays broken.
    let before = consent_head_of(connection, consent.subject)?;
    let (rows, previous) = before
        .as_ref()
        .map(|head| (head.rows, head.last))
        .unwrap_or((0, CHAIN_START));
    let mac = keys.consent_mac(&previous, seq, consent);
    connection
        .prepare_cached("UPDATE consents SET mac = ?2 WHERE id = ?1")?
        .execute(params![seq, &mac[..]])?;
    let head = keys.consent_head(consent.subject, rows + 1, mac);
    store_consent_head(connection, seal, before.as_ref(), Some(&head))
}

/// A subject's stored consent head.
fn consent_head_of(connection: &Connection, subject: SubjectId) -> Result<Option<ConsentHead>> {
    Ok(connection
        .prepare_cached(&format!(
            "SELECT {CONSENT_HEAD_COLUMNS} FROM consent_heads WHERE subject = ?1"
        ))?
        .query_row([subject], consent_head_from_row)
        .optional()?)
}

/// Replaces the head `before` by `after` (either may be none) and keeps the seal's
/// accumulated MAC of every head in step.
fn store_consent_head(
    connection: &Connection,
    seal: &mut StateSeal,
    before: Option<&ConsentHead>,
    after: Option<&ConsentHead>,
) -> Result<()> {
    if let Some(before) = before {
        xor_into(&mut seal.consent_heads, &before.mac);
        connection
            .prepare_cached("DELETE FROM consent_heads WHERE subject = ?1")?
            .execute([before.subject])?;
    }
    if let Some(head) = after {
        xor_into(&mut seal.consent_heads, &head.mac);
        connection
            .prepare_cached(&format!(
                "INSERT INTO consent_heads({CONSENT_HEAD_COLUMNS}) VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute(params![
                head.subject,
                head.rows as i64,
                &head.last[..],
                &head.mac[..]
            ])?;
    }
    Ok(())
}

/// Removes a subject's consent head (its rows are being deleted with it).
fn remove_consent_head(
    connection: &Connection,
    state: &mut WriterState,
    subject: SubjectId,
) -> Result<()> {
    let before = consent_head_of(connection, subject)?;
    store_consent_head(connection, &mut state.seal, before.as_ref(), None)
}

/// Issues and revokes the batch's API keys, each row MAC'd.
fn insert_api_keys(
    connection: &Connection,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
    batch: &WriteBatch,
) -> Result<()> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO api_keys(id, role, label, secret_hash, created_at, revoked_at, mac)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
    )?;
    for key in &batch.api_keys {
        let mac = keys.api_key_mac(&ApiKeyRow {
            revoked_at: None,
            ..key.clone()
        });
        statement.execute(params![
            key.id,
            key.role,
            key.label,
            key.secret_hash.as_slice(),
            key.created_at,
            &mac[..]
        ])?;
        xor_into(&mut seal.api_keys, &mac);
    }
    for (id, at) in &batch.revoked_api_keys {
        let stored = connection
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1 AND revoked_at IS NULL"
            ))?
            .query_row([id], api_key_from_row)
            .optional()?
            .ok_or(Error::NotFound {
                what: Missing::ApiKey,
            })?;
        // A row that does not verify is revoked all the same, but keeps its bad MAC: it
        // stays reported, and revoking is never a way to bless an inserted row.
        let mac = if keys.api_key_intact(&stored.row, &stored.mac) {
            let mac = keys.api_key_mac(&ApiKeyRow {
                revoked_at: Some(*at),
                ..stored.row.clone()
            });
            xor_into(&mut seal.api_keys, &stored.mac);
            xor_into(&mut seal.api_keys, &mac);
            mac.to_vec()
        } else {
            stored.mac.clone()
        };
        connection.execute(
            "UPDATE api_keys SET revoked_at = ?2, mac = ?3 WHERE id = ?1",
            params![id, at, mac],
        )?;
    }
    Ok(())
}

/// The first sealing of a data file written before rows were MAC'd (or a new one): MACs
/// every API key row, chains every subject's consent rows in store order, and takes the
/// ledger's head as it is. Only ever run when the key store's integrity secret is created.
pub(super) fn seal_existing_rows(
    connection: &Connection,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
) -> Result<()> {
    seal.consent_heads = [0u8; 32];
    seal.api_keys = [0u8; 32];
    let api_keys = query_rows(
        connection,
        &format!("SELECT {API_KEY_COLUMNS} FROM api_keys"),
        [],
        api_key_from_row,
    )?;
    for key in api_keys {
        let mac = keys.api_key_mac(&key.row);
        connection.execute(
            "UPDATE api_keys SET mac = ?2 WHERE id = ?1",
            params![key.row.id, &mac[..]],
        )?;
        xor_into(&mut seal.api_keys, &mac);
    }
    connection.execute("DELETE FROM consent_heads", [])?;
    let consents = query_rows(
        connection,
        &format!("SELECT {STORED_CONSENT_COLUMNS} FROM consents ORDER BY subject, id"),
        [],
        stored_consent_from_row,
    )?;
    let mut current: Option<ConsentHead> = None;
    for stored in consents {
        let subject = stored.row.subject;
        let (rows, previous) = match current.take() {
            Some(head) if head.subject == subject => (head.rows, head.last),
            finished => {
                if let Some(head) = finished {
                    store_consent_head(connection, seal, None, Some(&head))?;
                }
                (0, CHAIN_START)
            }
        };
        let mac = keys.consent_mac(&previous, stored.seq, &stored.row);
        connection.execute(
            "UPDATE consents SET mac = ?2 WHERE id = ?1",
            params![stored.seq, &mac[..]],
        )?;
        current = Some(keys.consent_head(subject, rows + 1, mac));
    }
    if let Some(head) = current {
        store_consent_head(connection, seal, None, Some(&head))?;
    }
    Ok(())
}

/// Checks the stored seal against the ledger's head as the writer read it; what is wrong.
pub(super) fn check_stored_seal(
    connection: &Connection,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
) -> Result<Option<String>> {
    let Some(stored) = read_stored_seal(connection)? else {
        return Ok(Some("the data file's seal is missing".into()));
    };
    if !crate::crypto::constant_time_eq(&keys.seal_mac(&stored.seal), &stored.mac) {
        return Ok(Some("the data file's seal was altered".into()));
    }
    let head = seal.head;
    if stored.seal.head.seq > head.seq {
        return Ok(Some(format!(
            "ledger entries {}..={} were removed (the data file's seal covers them)",
            head.seq + 1,
            stored.seal.head.seq
        )));
    }
    if stored.seal.head != head {
        return Ok(Some(format!(
            "the ledger's head (entry {}) is not the sealed one (entry {})",
            head.seq, stored.seal.head.seq
        )));
    }
    *seal = stored.seal;
    Ok(None)
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
    remove_consent_head(connection, state, subject)?;
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
    remove_consent_head(connection, state, subject)?;
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

/// Declares or replaces catalogue items; how many were new. Items are not personal data:
/// no subject check, no ledger entry.
pub(super) fn upsert_items(connection: &Connection, items: &[ItemRow]) -> Result<u64> {
    let mut created = 0;
    let mut exists = connection.prepare_cached("SELECT 1 FROM items WHERE item = ?1")?;
    let mut upsert = connection.prepare_cached(
        "INSERT INTO items(item, title, categories, price, available, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(item) DO UPDATE SET title = excluded.title, categories = excluded.categories,
             price = excluded.price, available = excluded.available, updated_at = excluded.updated_at",
    )?;
    for item in items {
        if !exists.exists([&item.item])? {
            created += 1;
        }
        let categories =
            serde_json::to_string(&item.categories).map_err(|error| Error::Storage {
                detail: format!("item categories: {error}"),
            })?;
        upsert.execute(params![
            item.item,
            item.title,
            categories,
            item.price,
            item.available,
            item.updated_at
        ])?;
    }
    Ok(created)
}
