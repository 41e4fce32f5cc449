//! The rows that grant power or record decisions, MAC'd inside the writer's transaction:
//! each subject's consent chain and the head that closes it, API key rows, the first
//! sealing of a schema written before rows were MAC'd, and the check of the stored seal.
//! The seal's accumulated MACs move in step with every head and key row written here.
//!
//! Nothing here ever blesses a row it did not write: a broken chain stays broken, and an
//! API key row that does not verify keeps its bad MAC when revoked.

use deadpool_postgres::Transaction;

use super::rows::{
    API_KEY_COLUMNS, CONSENT_HEAD_COLUMNS, STORED_CONSENT_COLUMNS, api_key_from_row,
    consent_head_from_row, execute, query_opt, query_rows, stored_consent_from_row,
};
use super::writer::{WriterState, read_stored_seal};
use crate::error::{Error, Missing, Result};
use crate::integrity::{CHAIN_START, ConsentHead, IntegrityKeys, StateSeal, xor_into};
use crate::storage::*;

/// Appends one consent decision to its subject's chain and moves the subject's head.
pub(super) async fn append_consent(
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
pub(super) async fn remove_consent_head(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    subject: SubjectId,
) -> Result<()> {
    let before = consent_head_of(transaction, subject).await?;
    store_consent_head(transaction, &mut state.seal, before.as_ref(), None).await
}

/// Issues and revokes the batch's API keys, each row MAC'd.
pub(super) async fn insert_api_keys(
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
