//! Reading stored rows back into the storage contract's types: one column list and one
//! reader per kind of row, shared by every query that returns that kind.
//!
//! A reader never interprets sealed bytes, and never fails on a malformed clear value that
//! verification must see (a hash of the wrong length, unparseable categories): it keeps it
//! so that the vault reports the row instead of skipping it.

use rusqlite::{Connection, Params, Row};

use crate::crypto::WrappedKey;
use crate::error::Result;
use crate::integrity::{ConsentHead, StateSeal};
use crate::ledger::{Checkpoint, LedgerDraft, LedgerHead, LedgerRecord};
use crate::storage::*;

pub(super) const SUBJECT_COLUMNS: &str = "id, sealed_external_id, created_at, forgetting";
pub(super) const EVENT_COLUMNS: &str = "seq, subject, category, at, sealed";
pub(super) const ATTRIBUTE_COLUMNS: &str = "subject, name, category, updated_at, sealed";
pub(super) const CONSENT_COLUMNS: &str =
    "subject, purpose, granted, at, source, policy_version, tag";
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

/// Every row `sql` returns with `params`, read by `read` (the statement is cached).
pub(super) fn query_rows<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement
        .query_map(params, read)?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    Ok(rows)
}

/// A stored 32-byte hash; one of another length (altered) reads as zeros, which never verify.
pub(super) fn hash_array(bytes: Vec<u8>) -> [u8; 32] {
    let mut hash = [0u8; 32];
    if bytes.len() == 32 {
        hash.copy_from_slice(&bytes);
    }
    hash
}

/// `seq, hash` as a ledger head (the ledger's newest entry, or the key store's anchor).
pub(super) fn head_from_row(row: &Row<'_>) -> rusqlite::Result<LedgerHead> {
    Ok(LedgerHead {
        seq: row.get(0)?,
        hash: hash_array(row.get(1)?),
    })
}

pub(super) fn subject_from_row(row: &Row<'_>) -> rusqlite::Result<SubjectRow> {
    Ok(SubjectRow {
        id: row.get(0)?,
        sealed_external_id: row.get(1)?,
        created_at: row.get(2)?,
        state: if row.get::<_, i64>(3)? != 0 {
            SubjectState::Forgetting
        } else {
            SubjectState::Active
        },
    })
}

pub(super) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: row.get(0)?,
        subject: row.get(1)?,
        category: row.get(2)?,
        at: row.get(3)?,
        sealed: row.get(4)?,
    })
}

pub(super) fn attribute_from_row(row: &Row<'_>) -> rusqlite::Result<AttributeRow> {
    Ok(AttributeRow {
        subject: row.get(0)?,
        name: row.get(1)?,
        category: row.get(2)?,
        updated_at: row.get(3)?,
        sealed: row.get(4)?,
    })
}

pub(super) fn consent_from_row(row: &Row<'_>) -> rusqlite::Result<ConsentRow> {
    Ok(ConsentRow {
        subject: row.get(0)?,
        purpose: row.get(1)?,
        granted: row.get(2)?,
        at: row.get(3)?,
        source: row.get(4)?,
        policy_version: row.get(5)?,
        tag: row.get(6)?,
    })
}

pub(super) fn stored_consent_from_row(row: &Row<'_>) -> rusqlite::Result<StoredConsent> {
    Ok(StoredConsent {
        row: consent_from_row(row)?,
        seq: row.get(7)?,
        mac: row.get::<_, Option<Vec<u8>>>(8)?.unwrap_or_default(),
    })
}

pub(super) fn consent_head_from_row(row: &Row<'_>) -> rusqlite::Result<ConsentHead> {
    Ok(ConsentHead {
        subject: row.get(0)?,
        rows: row.get::<_, i64>(1)?.max(0) as u64,
        last: hash_array(row.get(2)?),
        mac: hash_array(row.get(3)?),
    })
}

/// `ledger_seq, ledger_hash, consent_heads, api_keys, mac` as the stored seal.
pub(super) fn seal_from_row(row: &Row<'_>) -> rusqlite::Result<StoredSeal> {
    Ok(StoredSeal {
        seal: StateSeal {
            head: LedgerHead {
                seq: row.get(0)?,
                hash: hash_array(row.get(1)?),
            },
            consent_heads: hash_array(row.get(2)?),
            api_keys: hash_array(row.get(3)?),
        },
        mac: row.get(4)?,
    })
}

pub(super) fn ledger_from_row(row: &Row<'_>) -> rusqlite::Result<LedgerRecord> {
    let categories: String = row.get(6)?;
    Ok(LedgerRecord {
        seq: row.get(0)?,
        entry: LedgerDraft {
            at: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            subject_token: row.get(4)?,
            purpose: row.get(5)?,
            // Unparseable categories stay as they are, so verification reports the entry.
            categories: serde_json::from_str(&categories).unwrap_or_else(|_| vec![categories]),
            outcome: row.get(7)?,
            detail: row.get(8)?,
        },
        prev_hash: hash_array(row.get(9)?),
        hash: hash_array(row.get(10)?),
    })
}

pub(super) fn intent_from_row(row: &Row<'_>) -> rusqlite::Result<ErasureIntent> {
    Ok(ErasureIntent {
        subject: row.get(0)?,
        subject_token: row.get(1)?,
        requested_at: row.get(2)?,
        model_interactions: row.get::<_, i64>(3)? as u64,
    })
}

pub(super) fn checkpoint_from_row(row: &Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        seq: row.get(0)?,
        hash: hash_array(row.get(1)?),
        at: row.get(2)?,
        key_id: row.get(3)?,
        signature: row.get(4)?,
    })
}

pub(super) fn api_key_from_row(row: &Row<'_>) -> rusqlite::Result<StoredApiKey> {
    Ok(StoredApiKey {
        row: ApiKeyRow {
            id: row.get(0)?,
            role: row.get(1)?,
            label: row.get(2)?,
            secret_hash: hash_array(row.get(3)?),
            created_at: row.get(4)?,
            revoked_at: row.get(5)?,
        },
        mac: row.get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default(),
    })
}

pub(super) fn idempotency_from_row(row: &Row<'_>) -> rusqlite::Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        key_hash: row.get(0)?,
        body_hash: row.get(1)?,
        accepted: row.get::<_, i64>(2)? as u64,
        at: row.get(3)?,
    })
}

pub(super) fn receipt_from_row(row: &Row<'_>) -> rusqlite::Result<StoredReceipt> {
    Ok(StoredReceipt {
        id: row.get(0)?,
        subject_token: row.get(1)?,
        json: row.get(2)?,
    })
}

/// `kek_id, wrapped` as a wrapped key (a secret, or a live data key).
pub(super) fn wrapped_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<WrappedKey> {
    Ok(WrappedKey {
        kek_id: row.get(first)?,
        bytes: row.get(first + 1)?,
    })
}

/// A catalogue item; categories are kept as a JSON array of strings (an unreadable one
/// reads as none: items are not verified, and a bad list must not hide the item).
pub(super) fn item_from_row(row: &Row<'_>) -> rusqlite::Result<ItemRow> {
    let categories: String = row.get(2)?;
    Ok(ItemRow {
        item: row.get(0)?,
        title: row.get(1)?,
        categories: serde_json::from_str(&categories).unwrap_or_default(),
        price: row.get(3)?,
        available: row.get::<_, i64>(4)? != 0,
        updated_at: row.get(5)?,
    })
}
