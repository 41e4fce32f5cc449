//! `SqliteKeyStore`: the `KeyStorage` contract in its own SQLite file, apart from the data,
//! so that a data backup holds no key and forgetting a subject shreds its key and lookup.
//!
//! It keeps keys wrapped by the KEK exactly as handed over; it never unwraps one, and never
//! lets a destroyed key's bytes linger (rollback journal, `secure_delete = ON`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{head_from_row, query_rows, wrapped_from_row};
use super::schema::{open_key_connection, vacuum_into};
use crate::crypto::WrappedKey;
use crate::error::{Error, Result};
use crate::storage::*;

/// Wrapped data keys and vault secrets, in their own SQLite file.
///
/// Rollback journal (not WAL) and `secure_delete = ON`: a destroyed key is overwritten in
/// the file, and no old copy lingers in a write-ahead log.
pub struct SqliteKeyStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteKeyStore {
    /// Opens (creating if needed) the key store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(SqliteKeyStore {
            path: path.to_owned(),
            connection: Mutex::new(open_key_connection(path)?),
        })
    }

    /// Moves the key store at `from` to `to` (which must not exist): a consistent copy is
    /// written beside `to` (a hot journal at `from` is rolled back first), synced, renamed
    /// into place and its folder synced; only then are `from` and its journal removed.
    pub fn move_file(from: &Path, to: &Path) -> Result<()> {
        let mut moving = to.as_os_str().to_owned();
        moving.push(".moving");
        let moving = PathBuf::from(moving);
        if moving.exists() {
            std::fs::remove_file(&moving)
                .map_err(|error| Error::io("removing an unfinished copy", &moving, error))?;
        }
        vacuum_into(from, &moving)?;
        std::fs::File::open(&moving)
            .and_then(|file| file.sync_all())
            .map_err(|error| Error::io("syncing", &moving, error))?;
        std::fs::rename(&moving, to)
            .map_err(|error| Error::io("moving the key store to", to, error))?;
        if let Some(folder) = to.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            std::fs::File::open(folder)
                .and_then(|folder| folder.sync_all())
                .map_err(|error| Error::io("syncing", folder, error))?;
        }
        std::fs::remove_file(from)
            .map_err(|error| Error::io("removing the old key store", from, error))?;
        let mut journal = from.as_os_str().to_owned();
        journal.push("-journal");
        let _ = std::fs::remove_file(PathBuf::from(journal));
        Ok(())
    }

    fn with<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut connection = self.connection.lock().map_err(|_| Error::Storage {
            detail: "key store lock poisoned".into(),
        })?;
        work(&mut connection)
    }
}

const SELECT_SECRET: &str = "SELECT kek_id, wrapped FROM secrets WHERE name = ?1";

impl KeyStorage for SqliteKeyStore {
    fn insert_data_keys(&self, keys: &[NewDataKey]) -> Result<()> {
        self.with(|connection| {
            let transaction = connection.transaction()?;
            {
                let mut statement = transaction
                    .prepare_cached("INSERT INTO data_keys(subject, lookup, kek_id, wrapped) VALUES (?1, ?2, ?3, ?4)")?;
                for key in keys {
                    statement.execute(params![key.subject, key.lookup, key.wrapped.kek_id, key.wrapped.bytes])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })
    }

    fn find_subject(&self, lookup: &[u8]) -> Result<Option<SubjectId>> {
        self.with(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT subject FROM data_keys WHERE lookup = ?1 AND destroyed_at IS NULL",
                )?
                .query_row([lookup], |row| row.get(0))
                .optional()?)
        })
    }

    fn data_key(&self, subject: SubjectId) -> Result<KeyState> {
        self.with(|connection| {
            let row = connection
                .prepare_cached(
                    "SELECT kek_id, wrapped, destroyed_at FROM data_keys WHERE subject = ?1",
                )?
                .query_row([subject], |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<Vec<u8>>>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                    ))
                })
                .optional()?;
            Ok(match row {
                None => KeyState::Missing,
                Some((Some(kek_id), Some(bytes), None)) => {
                    KeyState::Live(WrappedKey { kek_id, bytes })
                }
                Some((_, _, destroyed_at)) => KeyState::Destroyed {
                    at: destroyed_at.unwrap_or(0),
                },
            })
        })
    }

    fn destroy_data_key(&self, subject: SubjectId, at: i64) -> Result<bool> {
        self.with(|connection| {
            let changed = connection.execute(
                "UPDATE data_keys SET lookup = NULL, kek_id = NULL, wrapped = NULL, destroyed_at = ?2
                 WHERE subject = ?1 AND destroyed_at IS NULL",
                params![subject, at],
            )?;
            if changed == 0 {
                // Never had a key here (e.g. a restored backup): leave a tombstone all the same.
                connection.execute(
                    "INSERT OR IGNORE INTO data_keys(subject, kek_id, wrapped, destroyed_at) VALUES (?1, NULL, NULL, ?2)",
                    params![subject, at],
                )?;
            }
            Ok(changed > 0)
        })
    }

    fn ledger_anchor(&self) -> Result<Option<SealedAnchor>> {
        self.with(|connection| {
            Ok(connection
                .query_row(
                    "SELECT seq, hash, mac FROM ledger_anchor WHERE id = 1",
                    [],
                    |row| {
                        Ok(SealedAnchor {
                            head: head_from_row(row)?,
                            mac: row.get(2)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn set_ledger_anchor(&self, anchor: &SealedAnchor) -> Result<()> {
        self.with(|connection| {
            // Never back: an anchor moves forward, or stays where it is (to be MAC'd once).
            connection.execute(
                "INSERT INTO ledger_anchor(id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac
                 WHERE excluded.seq >= seq",
                params![anchor.head.seq, &anchor.head.hash[..], anchor.mac],
            )?;
            Ok(())
        })
    }

    fn destroyed_subjects(&self) -> Result<Vec<SubjectId>> {
        self.with(|connection| {
            query_rows(
                connection,
                "SELECT subject FROM data_keys WHERE destroyed_at IS NOT NULL",
                [],
                |row| row.get(0),
            )
        })
    }

    fn secret(&self, name: &str) -> Result<Option<WrappedKey>> {
        self.with(|connection| {
            Ok(connection
                .query_row(SELECT_SECRET, [name], |row| wrapped_from_row(row, 0))
                .optional()?)
        })
    }

    fn insert_secret(&self, name: &str, wrapped: &WrappedKey) -> Result<WrappedKey> {
        self.with(|connection| {
            connection.execute(
                "INSERT OR IGNORE INTO secrets(name, kek_id, wrapped) VALUES (?1, ?2, ?3)",
                params![name, wrapped.kek_id, wrapped.bytes],
            )?;
            Ok(connection.query_row(SELECT_SECRET, [name], |row| wrapped_from_row(row, 0))?)
        })
    }

    fn keys_not_wrapped_by(&self, kek_id: &str, limit: usize) -> Result<Vec<(KeyRef, WrappedKey)>> {
        self.with(|connection| {
            let mut found = query_rows(
                connection,
                "SELECT name, kek_id, wrapped FROM secrets WHERE kek_id <> ?1 LIMIT ?2",
                params![kek_id, limit as i64],
                |row| Ok((KeyRef::Secret(row.get(0)?), wrapped_from_row(row, 1)?)),
            )?;
            let remaining = limit.saturating_sub(found.len());
            found.extend(query_rows(
                connection,
                "SELECT subject, kek_id, wrapped FROM data_keys WHERE wrapped IS NOT NULL AND kek_id <> ?1 LIMIT ?2",
                params![kek_id, remaining as i64],
                |row| Ok((KeyRef::Subject(row.get(0)?), wrapped_from_row(row, 1)?)),
            )?);
            Ok(found)
        })
    }

    fn rewrap(&self, updates: &[(KeyRef, WrappedKey, WrappedKey)]) -> Result<u64> {
        self.with(|connection| {
            let transaction = connection.transaction()?;
            let mut changed = 0u64;
            for (key_ref, old, new) in updates {
                changed += match key_ref {
                    KeyRef::Subject(subject) => transaction.execute(
                        "UPDATE data_keys SET kek_id = ?2, wrapped = ?3 WHERE subject = ?1 AND kek_id = ?4 AND wrapped = ?5",
                        params![subject, new.kek_id, new.bytes, old.kek_id, old.bytes],
                    )?,
                    KeyRef::Secret(name) => transaction.execute(
                        "UPDATE secrets SET kek_id = ?2, wrapped = ?3 WHERE name = ?1 AND kek_id = ?4 AND wrapped = ?5",
                        params![name, new.kek_id, new.bytes, old.kek_id, old.bytes],
                    )?,
                } as u64;
            }
            transaction.commit()?;
            Ok(changed)
        })
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        vacuum_into(&self.path, dest)
    }
}
