//! The tables of the data file and of the key store, and how connections to each are
//! opened. Only clear metadata and sealed bytes have a column here: no table may ever hold
//! a key in the data file, or a personal value in either file.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{DATA_PRAGMAS, KEY_PRAGMAS};
use crate::error::{Error, Result};

/// How long a connection waits for a lock held by another before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) const DATA_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    item TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    categories TEXT NOT NULL,
    price REAL,
    available INTEGER NOT NULL,
    updated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subjects(
    id INTEGER PRIMARY KEY,
    sealed_external_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    forgetting INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,
    subject INTEGER NOT NULL,
    category TEXT NOT NULL,
    at INTEGER NOT NULL,
    sealed BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_subject ON events(subject, seq);
CREATE INDEX IF NOT EXISTS events_by_category ON events(category, at);
CREATE TABLE IF NOT EXISTS attributes(
    subject INTEGER NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY(subject, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attributes_by_category ON attributes(category, updated_at);
CREATE TABLE IF NOT EXISTS consents(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    granted INTEGER NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    tag BLOB NOT NULL,
    mac BLOB);
CREATE INDEX IF NOT EXISTS consents_by_subject ON consents(subject, id);
CREATE TABLE IF NOT EXISTS consent_heads(
    subject INTEGER PRIMARY KEY,
    rows INTEGER NOT NULL,
    last BLOB NOT NULL,
    mac BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency(
    key_hash BLOB PRIMARY KEY,
    body_hash BLOB NOT NULL,
    accepted INTEGER NOT NULL,
    at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erasures(
    subject INTEGER PRIMARY KEY,
    subject_token TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    model_interactions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts(
    id TEXT PRIMARY KEY,
    subject_token TEXT NOT NULL,
    json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger(
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_token TEXT,
    purpose TEXT,
    categories TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_by_subject ON ledger(subject_token, seq);
CREATE INDEX IF NOT EXISTS ledger_by_actor ON ledger(actor, seq);
CREATE TABLE IF NOT EXISTS api_keys(
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    label TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    mac BLOB);
CREATE TABLE IF NOT EXISTS integrity_seal(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ledger_seq INTEGER NOT NULL,
    ledger_hash BLOB NOT NULL,
    consent_heads BLOB NOT NULL,
    api_keys BLOB NOT NULL,
    mac BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_checkpoints(
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    at INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL);
";

pub(super) const KEY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS data_keys(
    subject INTEGER PRIMARY KEY,
    lookup BLOB UNIQUE,
    kek_id TEXT,
    wrapped BLOB,
    destroyed_at INTEGER);
CREATE TABLE IF NOT EXISTS secrets(
    name TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    wrapped BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_anchor(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    mac BLOB);
";

/// Columns added since a table was first created: (table, column, type). A file written
/// by an earlier build gets them at open (empty; the vault fills the MACs once).
pub(super) const DATA_COLUMNS_ADDED: &[(&str, &str, &str)] =
    &[("consents", "mac", "BLOB"), ("api_keys", "mac", "BLOB")];
const KEY_COLUMNS_ADDED: &[(&str, &str, &str)] = &[("ledger_anchor", "mac", "BLOB")];

/// Adds each missing column of `columns` (a file from an earlier build).
pub(super) fn add_missing_columns(
    connection: &Connection,
    columns: &[(&str, &str, &str)],
) -> Result<()> {
    for (table, column, kind) in columns {
        let present: bool = connection.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

/// A connection to the data file with its settings (the schema is created by the store).
pub(super) fn open_data_connection(path: &Path) -> Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.execute_batch(DATA_PRAGMAS)?;
    Ok(connection)
}

/// The key store's one connection, its schema created and the file readable by its owner only.
pub(super) fn open_key_connection(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.execute_batch(KEY_PRAGMAS)?;
    connection.execute_batch(KEY_SCHEMA)?;
    add_missing_columns(&connection, KEY_COLUMNS_ADDED)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(connection)
}

/// Writes a consistent, compacted copy of the SQLite file at `source` to `dest`.
pub(super) fn vacuum_into(source: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::BadInput {
            detail: format!("backup destination {} already exists", dest.display()),
        });
    }
    let dest_text = dest.to_str().ok_or_else(|| Error::BadInput {
        detail: "backup destination must be a UTF-8 path".into(),
    })?;
    let connection = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.execute("VACUUM INTO ?1", [dest_text])?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600))
            .map_err(|error| Error::io("restricting permissions of", dest, error))?;
    }
    Ok(())
}
