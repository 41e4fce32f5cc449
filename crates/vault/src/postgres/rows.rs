//! Reading stored rows back into the storage contract's types: one column list and one
//! reader per kind of row, shared by every query that returns that kind (the same lists
//! and the same leniency as the embedded backend's).
//!
//! A reader never interprets sealed bytes, and never fails on a malformed clear value that
//! verification must see (a hash of the wrong length, unparseable categories): it keeps it
//! so that the vault reports the row instead of skipping it.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::crypto::WrappedKey;
use crate::error::Result;
use crate::integrity::{ConsentHead, StateSeal};
use crate::ledger::{Checkpoint, LedgerDraft, LedgerHead, LedgerRecord};
use crate::storage::*;

pub(super) const SUBJECT_COLUMNS: &str = "id, sealed_external_id, created_at, forgetting";
pub(super) const EVENT_COLUMNS: &str = "seq, subject, category, at, sealed";
pub(super) const ATTRIBUTE_COLUMNS: &str = "subject, name, category, updated_at, sealed";
pub(super) const LEDGER_COLUMNS: &str =
    "seq, at, actor, action, subject_token, purpose, categories, outcome, detail, prev_hash, hash";
pub(super) const INTENT_COLUMNS: &str = "subject, subject_token, requested_at, model_interactions";
pub(super) const CHECKPOINT_COLUMNS: &str = "seq, hash, at, key_id, signature";
pub(super) const API_KEY_COLUMNS: &str =
    "id, role, label, secret_hash, created_at, revoked_at, mac";
/// A consent row with its store sequence number and chain link.
pub(super) const STORED_CONSENT_COLUMNS: &str =
    "subject, purpose, granted, at, source, policy_version, tag, id, mac";
pub(super) const CONSENT_HEAD_COLUMNS: &str = "subject, rows, last, mac";
pub(super) const ITEM_COLUMNS: &str = "item, title, categories, price, available, updated_at";
pub(super) const SEAL_COLUMNS: &str = "ledger_seq, ledger_hash, consent_heads, api_keys, mac";

/// The parameters of one statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Every row `sql` returns with `params`, read by `read` (the statement is cached).
pub(super) async fn query_rows<T>(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    read: impl Fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let statement = client.prepare_cached(sql).await?;
    client
        .query(&statement, params)
        .await?
        .iter()
        .map(read)
        .collect()
}

/// The one row `sql` returns with `params`, if any, read by `read`.
pub(super) async fn query_opt<T>(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    read: impl Fn(&Row) -> Result<T>,
) -> Result<Option<T>> {
    let statement = client.prepare_cached(sql).await?;
    client
        .query_opt(&statement, params)
        .await?
        .as_ref()
        .map(read)
        .transpose()
}

/// Runs `sql` with `params` (cached); how many rows it changed.
pub(super) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// A stored 32-byte hash; one of another length (altered) reads as zeros, which never verify.
pub(super) fn hash_array(bytes: Vec<u8>) -> [u8; 32] {
    let mut hash = [0u8; 32];
    if bytes.len() == 32 {
        hash.copy_from_slice(&bytes);
    }
    hash
}

/// A count or size stored as `bigint`; a negative one (altered) reads as zero.
pub(super) fn unsigned(value: i64) -> u64 {
    value.max(0) as u64
}

/// `seq, hash` from column `first` on as a ledger head.
pub(super) fn head_from_row(row: &Row, first: usize) -> Result<LedgerHead> {
    Ok(LedgerHead {
        seq: row.try_get(first)?,
        hash: hash_array(row.try_get(first + 1)?),
    })
}

pub(super) fn subject_from_row(row: &Row) -> Result<SubjectRow> {
    Ok(SubjectRow {
        id: row.try_get(0)?,
        sealed_external_id: row.try_get(1)?,
        created_at: row.try_get(2)?,
        state: if row.try_get::<_, bool>(3)? {
            SubjectState::Forgetting
        } else {
            SubjectState::Active
        },
    })
}

pub(super) fn event_from_row(row: &Row) -> Result<EventRow> {
    Ok(EventRow {
        seq: row.try_get(0)?,
        subject: row.try_get(1)?,
        category: row.try_get(2)?,
        at: row.try_get(3)?,
        sealed: row.try_get(4)?,
    })
}

pub(super) fn attribute_from_row(row: &Row) -> Result<AttributeRow> {
    Ok(AttributeRow {
        subject: row.try_get(0)?,
        name: row.try_get(1)?,
        category: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        sealed: row.try_get(4)?,
    })
}

pub(super) fn stored_consent_from_row(row: &Row) -> Result<StoredConsent> {
    Ok(StoredConsent {
        row: ConsentRow {
            subject: row.try_get(0)?,
            purpose: row.try_get(1)?,
            granted: row.try_get(2)?,
            at: row.try_get(3)?,
            source: row.try_get(4)?,
            policy_version: row.try_get(5)?,
            tag: row.try_get(6)?,
        },
        seq: row.try_get(7)?,
        mac: row.try_get::<_, Option<Vec<u8>>>(8)?.unwrap_or_default(),
    })
}

pub(super) fn consent_head_from_row(row: &Row) -> Result<ConsentHead> {
    Ok(ConsentHead {
        subject: row.try_get(0)?,
        rows: unsigned(row.try_get(1)?),
        last: hash_array(row.try_get(2)?),
        mac: hash_array(row.try_get(3)?),
    })
}

/// `ledger_seq, ledger_hash, consent_heads, api_keys, mac` as the stored seal.
pub(super) fn seal_from_row(row: &Row) -> Result<StoredSeal> {
    Ok(StoredSeal {
        seal: StateSeal {
            head: head_from_row(row, 0)?,
            consent_heads: hash_array(row.try_get(2)?),
            api_keys: hash_array(row.try_get(3)?),
        },
        mac: row.try_get(4)?,
    })
}

pub(super) fn ledger_from_row(row: &Row) -> Result<LedgerRecord> {
    let categories: String = row.try_get(6)?;
    Ok(LedgerRecord {
        seq: row.try_get(0)?,
        entry: LedgerDraft {
            at: row.try_get(1)?,
            actor: row.try_get(2)?,
            action: row.try_get(3)?,
            subject_token: row.try_get(4)?,
            purpose: row.try_get(5)?,
            // Unparseable categories stay as they are, so verification reports the entry.
            categories: serde_json::from_str(&categories).unwrap_or_else(|_| vec![categories]),
            outcome: row.try_get(7)?,
            detail: row.try_get(8)?,
        },
        prev_hash: hash_array(row.try_get(9)?),
        hash: hash_array(row.try_get(10)?),
    })
}

pub(super) fn intent_from_row(row: &Row) -> Result<ErasureIntent> {
    Ok(ErasureIntent {
        subject: row.try_get(0)?,
        subject_token: row.try_get(1)?,
        requested_at: row.try_get(2)?,
        model_interactions: unsigned(row.try_get(3)?),
    })
}

pub(super) fn checkpoint_from_row(row: &Row) -> Result<Checkpoint> {
    Ok(Checkpoint {
        seq: row.try_get(0)?,
        hash: hash_array(row.try_get(1)?),
        at: row.try_get(2)?,
        key_id: row.try_get(3)?,
        signature: row.try_get(4)?,
    })
}

pub(super) fn api_key_from_row(row: &Row) -> Result<StoredApiKey> {
    Ok(StoredApiKey {
        row: ApiKeyRow {
            id: row.try_get(0)?,
            role: row.try_get(1)?,
            label: row.try_get(2)?,
            secret_hash: hash_array(row.try_get(3)?),
            created_at: row.try_get(4)?,
            revoked_at: row.try_get(5)?,
        },
        mac: row.try_get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default(),
    })
}

pub(super) fn idempotency_from_row(row: &Row) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        key_hash: row.try_get(0)?,
        body_hash: row.try_get(1)?,
        accepted: unsigned(row.try_get(2)?),
        at: row.try_get(3)?,
    })
}

pub(super) fn receipt_from_row(row: &Row) -> Result<StoredReceipt> {
    Ok(StoredReceipt {
        id: row.try_get(0)?,
        subject_token: row.try_get(1)?,
        json: row.try_get(2)?,
    })
}

/// `kek_id, wrapped` from column `first` on as a wrapped key.
pub(super) fn wrapped_from_row(row: &Row, first: usize) -> Result<WrappedKey> {
    Ok(WrappedKey {
        kek_id: row.try_get(first)?,
        bytes: row.try_get(first + 1)?,
    })
}

/// A catalogue item; categories are kept as a JSON array of strings (an unreadable one
/// reads as none: items are not verified, and a bad list must not hide the item).
pub(super) fn item_from_row(row: &Row) -> Result<ItemRow> {
    let categories: String = row.try_get(2)?;
    Ok(ItemRow {
        item: row.try_get(0)?,
        title: row.try_get(1)?,
        categories: serde_json::from_str(&categories).unwrap_or_default(),
        price: row.try_get(3)?,
        available: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}
