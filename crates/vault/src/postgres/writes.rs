//! The statements each write job of `PostgresStorage` runs on the writer, inside the
//! writer's transaction: a batch of new rows, and the steps of a forget and of retention.
//! Rows of one kind go in one statement (`unnest` of arrays), so a batch of 1,000 events
//! costs a handful of round trips, not a thousand.
//!
//! A job here never commits, never keeps state outside the transaction, and never writes a
//! row of a subject that is not live: the check locks the subjects' rows, and
//! `begin_erasure` changes them on the same writer lock.

use deadpool_postgres::Transaction;

use super::rows::{
    API_KEY_COLUMNS, CONSENT_HEAD_COLUMNS, INTENT_COLUMNS, STORED_CONSENT_COLUMNS,
    api_key_from_row, consent_head_from_row, execute, intent_from_row, query_opt, query_rows,
    stored_consent_from_row,
};
use super::writer::{WriterState, append_ledger_entries, read_stored_seal};
use crate::error::{Error, Missing, Result};
use crate::integrity::{CHAIN_START, ConsentHead, IntegrityKeys, StateSeal, xor_into};
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

/// Appends one consent decision to its subject's chain and moves the subject's head.
async fn append_consent(
    transaction: &Transaction<'_>,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
    consent: &ConsentRow,
) -> Result<()> {
    let seq: i64 = query_opt(
        transaction,
        "INSERT INTO consents(subject, purpose, granted, at, source, policy_version, tag)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &[
            &consent.subject,
            &consent.purpose,
            &consent.granted,
            &consent.at,
            &consent.source,
            &consent.policy_version,
            &consent.tag,
        ],
        |row| Ok(row.try_get(0)?),
    )
    .await?
    .ok_or_else(|| Error::Storage {
        detail: "a consent insert returned no id".into(),
    })?;
    // Chained after the stored head as it is: a history already broken stays broken.
    let before = consent_head_of(transaction, consent.subject).await?;
    let (rows, previous) = before
        .as_ref()
        .map(|head| (head.rows, head.last))
        .unwrap_or((0, CHAIN_START));
    let mac = keys.consent_mac(&previous, seq, consent);
    execute(
        transaction,
        "UPDATE consents SET mac = $3 WHERE subject = $1 AND id = $2",
        &[&consent.subject, &seq, &&mac[..]],
    )
    .await?;
    let head = keys.consent_head(consent.subject, rows + 1, mac);
    store_consent_head(transaction, seal, before.as_ref(), Some(&head)).await
}

/// A subject's stored consent head.
async fn consent_head_of(
    transaction: &Transaction<'_>,
    subject: SubjectId,
) -> Result<Option<ConsentHead>> {
    query_opt(
        transaction,
        &format!("SELECT {CONSENT_HEAD_COLUMNS} FROM consent_heads WHERE subject = $1"),
        &[&subject],
        consent_head_from_row,
    )
    .await
}

/// Replaces the head `before` by `after` (either may be none) and keeps the seal's
/// accumulated MAC of every head in step.
async fn store_consent_head(
    transaction: &Transaction<'_>,
    seal: &mut StateSeal,
    before: Option<&ConsentHead>,
    after: Option<&ConsentHead>,
) -> Result<()> {
    if let Some(before) = before {
        xor_into(&mut seal.consent_heads, &before.mac);
        execute(
            transaction,
            "DELETE FROM consent_heads WHERE subject = $1",
            &[&before.subject],
        )
        .await?;
    }
    if let Some(head) = after {
        xor_into(&mut seal.consent_heads, &head.mac);
        execute(
            transaction,
            &format!("INSERT INTO consent_heads({CONSENT_HEAD_COLUMNS}) VALUES ($1, $2, $3, $4)"),
            &[
                &head.subject,
                &(head.rows as i64),
                &&head.last[..],
                &&head.mac[..],
            ],
        )
        .await?;
    }
    Ok(())
}

/// Removes a subject's consent head (its rows are being deleted with it).
async fn remove_consent_head(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    subject: SubjectId,
) -> Result<()> {
    let before = consent_head_of(transaction, subject).await?;
    store_consent_head(transaction, &mut state.seal, before.as_ref(), None).await
}

/// Issues and revokes the batch's API keys, each row MAC'd.
async fn insert_api_keys(
    transaction: &Transaction<'_>,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
    batch: &WriteBatch,
) -> Result<()> {
    for key in &batch.api_keys {
        let mac = keys.api_key_mac(&ApiKeyRow {
            revoked_at: None,
            ..key.clone()
        });
        execute(
            transaction,
            "INSERT INTO api_keys(id, role, label, secret_hash, created_at, revoked_at, mac)
             VALUES ($1, $2, $3, $4, $5, NULL, $6)",
            &[
                &key.id,
                &key.role,
                &key.label,
                &&key.secret_hash[..],
                &key.created_at,
                &&mac[..],
            ],
        )
        .await?;
        xor_into(&mut seal.api_keys, &mac);
    }
    for (id, at) in &batch.revoked_api_keys {
        let stored = query_opt(
            transaction,
            &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1 AND revoked_at IS NULL"),
            &[id],
            api_key_from_row,
        )
        .await?
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
        execute(
            transaction,
            "UPDATE api_keys SET revoked_at = $2, mac = $3 WHERE id = $1",
            &[id, at, &mac],
        )
        .await?;
    }
    Ok(())
}

/// The first sealing of a new data schema (or one written before rows were MAC'd): MACs
/// every API key row, chains every subject's consent rows in store order, and takes the
/// ledger's head as it is. Only ever run when the key store's integrity secret is created.
pub(super) async fn seal_existing_rows(
    transaction: &Transaction<'_>,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
) -> Result<()> {
    seal.consent_heads = [0u8; 32];
    seal.api_keys = [0u8; 32];
    let api_keys = query_rows(
        transaction,
        &format!("SELECT {API_KEY_COLUMNS} FROM api_keys"),
        &[],
        api_key_from_row,
    )
    .await?;
    for key in api_keys {
        let mac = keys.api_key_mac(&key.row);
        execute(
            transaction,
            "UPDATE api_keys SET mac = $2 WHERE id = $1",
            &[&key.row.id, &&mac[..]],
        )
        .await?;
        xor_into(&mut seal.api_keys, &mac);
    }
    execute(transaction, "DELETE FROM consent_heads", &[]).await?;
    let consents = query_rows(
        transaction,
        &format!("SELECT {STORED_CONSENT_COLUMNS} FROM consents ORDER BY subject, id"),
        &[],
        stored_consent_from_row,
    )
    .await?;
    let mut current: Option<ConsentHead> = None;
    for stored in consents {
        let subject = stored.row.subject;
        let (rows, previous) = match current.take() {
            Some(head) if head.subject == subject => (head.rows, head.last),
            finished => {
                if let Some(head) = finished {
                    store_consent_head(transaction, seal, None, Some(&head)).await?;
                }
                (0, CHAIN_START)
            }
        };
        let mac = keys.consent_mac(&previous, stored.seq, &stored.row);
        execute(
            transaction,
            "UPDATE consents SET mac = $3 WHERE subject = $1 AND id = $2",
            &[&subject, &stored.seq, &&mac[..]],
        )
        .await?;
        current = Some(keys.consent_head(subject, rows + 1, mac));
    }
    if let Some(head) = current {
        store_consent_head(transaction, seal, None, Some(&head)).await?;
    }
    Ok(())
}

/// Checks the stored seal against the ledger's head as the writer read it; what is wrong.
pub(super) async fn check_stored_seal(
    transaction: &Transaction<'_>,
    keys: &IntegrityKeys,
    seal: &mut StateSeal,
) -> Result<Option<String>> {
    let Some(stored) = read_stored_seal(transaction).await? else {
        return Ok(Some("the data schema's seal is missing".into()));
    };
    if !crate::crypto::constant_time_eq(&keys.seal_mac(&stored.seal), &stored.mac) {
        return Ok(Some("the data schema's seal was altered".into()));
    }
    let head = seal.head;
    if stored.seal.head.seq > head.seq {
        return Ok(Some(format!(
            "ledger entries {}..={} were removed (the data schema's seal covers them)",
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
pub(super) async fn begin_erasure(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    intent: ErasureIntent,
    entry: LedgerDraft,
) -> Result<ErasureIntent> {
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
