//! `PostgresKeyStore`: the `KeyStorage` contract in its own schema (`discreet_keys`), or in
//! a database of its own, apart from the data, so that a data dump holds no key and
//! forgetting a subject shreds its key and lookup.
//!
//! It keeps keys wrapped by the KEK exactly as handed over and never unwraps one.
//! PostgreSQL never overwrites a row in place: a destroyed key's old row version stays in
//! the table's file until vacuum prunes it. So every destruction (and every re-wrapping)
//! prunes the table's heap before it returns (`VACUUM (INDEX_CLEANUP OFF)`, a few
//! milliseconds: the wrapped bytes are gone from the table), and asks a background task for
//! a full `VACUUM` soon after, which also takes the old lookup hash out of its index. What
//! vacuum cannot reach — the write-ahead log, pages' free space until reused, physical
//! backups — holds wrapped keys only: useless without the KEK, and dead for good once the
//! KEK is rotated and the old one discarded (docs/POSTGRES.md).

use std::path::Path;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};

use super::dump::{self, DumpKind};
use super::rows::{execute, head_from_row, query_opt, query_rows, wrapped_from_row};
use super::runtime::PgRuntime;
use super::schema::{SchemaKind, migrate};
use super::{PostgresOptions, pool};
use crate::crypto::WrappedKey;
use crate::error::Result;
use crate::storage::*;

/// Wrapped data keys and vault secrets, in their own PostgreSQL schema.
pub struct PostgresKeyStore {
    pool: Pool,
    runtime: Arc<PgRuntime>,
    /// One vacuum at a time: concurrent forgets wait for it rather than queue their own
    /// behind PostgreSQL's table lock.
    vacuuming: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the background task that runs the full vacuum.
    full_vacuum: Arc<FullVacuum>,
}

/// What the background vacuum task and the store share.
struct FullVacuum {
    due: tokio::sync::Notify,
    closing: std::sync::atomic::AtomicBool,
}

/// How long the background task gathers requests before one full vacuum serves them all.
const FULL_VACUUM_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

const SELECT_SECRET: &str = "SELECT kek_id, wrapped FROM secrets WHERE name = $1";

impl PostgresKeyStore {
    /// Opens the key schema of `options` (creating or migrating it) on `runtime`.
    pub fn open(options: &PostgresOptions, runtime: Arc<PgRuntime>) -> Result<Self> {
        options.check()?;
        let schema = options.key_schema.clone();
        let pool = pool(
            options.key_connection(),
            "the key store",
            &schema,
            options.pool_size,
        )?;
        {
            let pool = pool.clone();
            runtime.run(async move {
                let mut client = pool.get().await?;
                migrate(&mut client, &schema, SchemaKind::Keys, None).await?;
                Ok(())
            })?;
        }
        let vacuuming = Arc::new(tokio::sync::Mutex::new(()));
        let full_vacuum = Arc::new(FullVacuum {
            due: tokio::sync::Notify::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        runtime.spawn(run_full_vacuums(
            pool.clone(),
            vacuuming.clone(),
            full_vacuum.clone(),
        ));
        Ok(PostgresKeyStore {
            pool,
            runtime,
            vacuuming,
            full_vacuum,
        })
    }

    /// Restores a key dump written by `backup` into the key schema of `options`, which
    /// must not exist yet.
    pub fn restore(options: &PostgresOptions, source: &Path) -> Result<()> {
        options.check()?;
        let runtime = PgRuntime::new()?;
        let pool = pool(
            options.key_connection(),
            "the key store",
            &options.key_schema,
            1,
        )?;
        dump::restore(&runtime, pool, &options.key_schema, DumpKind::Keys, source)
    }

    fn read<T, F>(&self, read: impl FnOnce(Object) -> F + Send + 'static) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.runtime.run(async move {
            let client = pool.get().await?;
            read(client).await
        })
    }
}

impl Drop for PostgresKeyStore {
    fn drop(&mut self) {
        self.full_vacuum
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.full_vacuum.due.notify_one();
    }
}

/// Prunes the heap of the tables that held what was just destroyed or replaced, so their
/// old row versions are gone before the caller is told it is done; the full vacuum (the
/// indexes too) is asked of the background task.
async fn vacuum(
    client: &Object,
    lock: &tokio::sync::Mutex<()>,
    full_vacuum: &FullVacuum,
    tables: &str,
) -> Result<()> {
    {
        let _one_at_a_time = lock.lock().await;
        client
            .batch_execute(&format!("VACUUM (INDEX_CLEANUP OFF) {tables}"))
            .await?;
    }
    full_vacuum.due.notify_one();
    Ok(())
}

/// The background task: a full `VACUUM` of the key tables shortly after each request
/// (requests made meanwhile are served by the same one), until the store is dropped.
async fn run_full_vacuums(
    pool: Pool,
    lock: Arc<tokio::sync::Mutex<()>>,
    full_vacuum: Arc<FullVacuum>,
) {
    loop {
        full_vacuum.due.notified().await;
        if full_vacuum
            .closing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        tokio::time::sleep(FULL_VACUUM_DELAY).await;
        if full_vacuum
            .closing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        // Best effort: autovacuum (told to treat the table as always due) is behind it.
        if let Ok(client) = pool.get().await {
            let _one_at_a_time = lock.lock().await;
            let _ = client.batch_execute("VACUUM data_keys, secrets").await;
        }
    }
}

impl KeyStorage for PostgresKeyStore {
    fn insert_data_keys(&self, keys: &[NewDataKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let subjects: Vec<i64> = keys.iter().map(|key| key.subject).collect();
        let lookups: Vec<Vec<u8>> = keys.iter().map(|key| key.lookup.clone()).collect();
        let kek_ids: Vec<String> = keys.iter().map(|key| key.wrapped.kek_id.clone()).collect();
        let wrapped: Vec<Vec<u8>> = keys.iter().map(|key| key.wrapped.bytes.clone()).collect();
        self.read(move |client| async move {
            // One statement: all the keys or none, and any id or lookup taken fails it.
            execute(
                &client,
                "INSERT INTO data_keys(subject, lookup, kek_id, wrapped)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::bytea[])",
                &[&subjects, &lookups, &kek_ids, &wrapped],
            )
            .await?;
            Ok(())
        })
    }

    fn find_subject(&self, lookup: &[u8]) -> Result<Option<SubjectId>> {
        let lookup = lookup.to_vec();
        self.read(move |client| async move {
            query_opt(
                &client,
                "SELECT subject FROM data_keys WHERE lookup = $1 AND destroyed_at IS NULL",
                &[&lookup],
                |row| Ok(row.try_get(0)?),
            )
            .await
        })
    }

    fn data_key(&self, subject: SubjectId) -> Result<KeyState> {
        self.read(move |client| async move {
            let row = query_opt(
                &client,
                "SELECT kek_id, wrapped, destroyed_at FROM data_keys WHERE subject = $1",
                &[&subject],
                |row| {
                    Ok((
                        row.try_get::<_, Option<String>>(0)?,
                        row.try_get::<_, Option<Vec<u8>>>(1)?,
                        row.try_get::<_, Option<i64>>(2)?,
                    ))
                },
            )
            .await?;
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
        let lock = self.vacuuming.clone();
        let full_vacuum = self.full_vacuum.clone();
        self.read(move |client| async move {
            let changed = execute(
                &client,
                "UPDATE data_keys SET lookup = NULL, kek_id = NULL, wrapped = NULL, destroyed_at = $2
                 WHERE subject = $1 AND destroyed_at IS NULL",
                &[&subject, &at],
            )
            .await?;
            if changed == 0 {
                // Never had a key here (e.g. a restored backup): leave a tombstone all the same.
                execute(
                    &client,
                    "INSERT INTO data_keys(subject, kek_id, wrapped, destroyed_at) VALUES ($1, NULL, NULL, $2)
                     ON CONFLICT (subject) DO NOTHING",
                    &[&subject, &at],
                )
                .await?;
            } else {
                vacuum(&client, &lock, &full_vacuum, "data_keys").await?;
            }
            Ok(changed > 0)
        })
    }

    fn destroyed_subjects(&self) -> Result<Vec<SubjectId>> {
        self.read(|client| async move {
            query_rows(
                &client,
                "SELECT subject FROM data_keys WHERE destroyed_at IS NOT NULL ORDER BY subject",
                &[],
                |row| Ok(row.try_get(0)?),
            )
            .await
        })
    }

    fn ledger_anchor(&self) -> Result<Option<SealedAnchor>> {
        self.read(|client| async move {
            query_opt(
                &client,
                "SELECT seq, hash, mac FROM ledger_anchor WHERE id = 1",
                &[],
                |row| {
                    Ok(SealedAnchor {
                        head: head_from_row(row, 0)?,
                        mac: row.try_get(2)?,
                    })
                },
            )
            .await
        })
    }

    fn set_ledger_anchor(&self, anchor: &SealedAnchor) -> Result<()> {
        let anchor = anchor.clone();
        self.read(move |client| async move {
            // Never back: an anchor moves forward, or stays where it is (to be MAC'd once).
            execute(
                &client,
                "INSERT INTO ledger_anchor(id, seq, hash, mac) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac
                 WHERE excluded.seq >= ledger_anchor.seq",
                &[&anchor.head.seq, &&anchor.head.hash[..], &anchor.mac],
            )
            .await?;
            Ok(())
        })
    }

    fn secret(&self, name: &str) -> Result<Option<WrappedKey>> {
        let name = name.to_owned();
        self.read(move |client| async move {
            query_opt(&client, SELECT_SECRET, &[&name], |row| {
                wrapped_from_row(row, 0)
            })
            .await
        })
    }

    fn insert_secret(&self, name: &str, wrapped: &WrappedKey) -> Result<WrappedKey> {
        let name = name.to_owned();
        let wrapped = wrapped.clone();
        self.read(move |client| async move {
            execute(
                &client,
                "INSERT INTO secrets(name, kek_id, wrapped) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &wrapped.kek_id, &wrapped.bytes],
            )
            .await?;
            query_opt(&client, SELECT_SECRET, &[&name], |row| {
                wrapped_from_row(row, 0)
            })
            .await?
            .ok_or_else(|| crate::error::Error::Storage {
                detail: "a secret just stored cannot be read back".into(),
            })
        })
    }

    fn keys_not_wrapped_by(&self, kek_id: &str, limit: usize) -> Result<Vec<(KeyRef, WrappedKey)>> {
        let kek_id = kek_id.to_owned();
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |client| async move {
            let mut found = query_rows(
                &client,
                "SELECT name, kek_id, wrapped FROM secrets WHERE kek_id <> $1 ORDER BY name LIMIT $2",
                &[&kek_id, &limit],
                |row| Ok((KeyRef::Secret(row.try_get(0)?), wrapped_from_row(row, 1)?)),
            )
            .await?;
            let remaining = (limit - found.len() as i64).max(0);
            found.extend(
                query_rows(
                    &client,
                    "SELECT subject, kek_id, wrapped FROM data_keys
                     WHERE wrapped IS NOT NULL AND kek_id <> $1 ORDER BY subject LIMIT $2",
                    &[&kek_id, &remaining],
                    |row| Ok((KeyRef::Subject(row.try_get(0)?), wrapped_from_row(row, 1)?)),
                )
                .await?,
            );
            Ok(found)
        })
    }

    fn rewrap(&self, updates: &[(KeyRef, WrappedKey, WrappedKey)]) -> Result<u64> {
        let updates = updates.to_vec();
        let lock = self.vacuuming.clone();
        let full_vacuum = self.full_vacuum.clone();
        self.read(move |mut client| async move {
            let transaction = client.transaction().await?;
            let mut changed = 0u64;
            for (key_ref, old, new) in &updates {
                changed += match key_ref {
                    KeyRef::Subject(subject) => {
                        execute(
                            &transaction,
                            "UPDATE data_keys SET kek_id = $2, wrapped = $3
                             WHERE subject = $1 AND kek_id = $4 AND wrapped = $5",
                            &[subject, &new.kek_id, &new.bytes, &old.kek_id, &old.bytes],
                        )
                        .await?
                    }
                    KeyRef::Secret(name) => {
                        execute(
                            &transaction,
                            "UPDATE secrets SET kek_id = $2, wrapped = $3
                             WHERE name = $1 AND kek_id = $4 AND wrapped = $5",
                            &[name, &new.kek_id, &new.bytes, &old.kek_id, &old.bytes],
                        )
                        .await?
                    }
                };
            }
            transaction.commit().await?;
            // The copies under the old KEK are what a rotation retires: prune them too.
            if changed > 0 {
                vacuum(&client, &lock, &full_vacuum, "data_keys, secrets").await?;
            }
            Ok(changed)
        })
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        dump::write(&self.runtime, self.pool.clone(), DumpKind::Keys, dest)
    }
}
