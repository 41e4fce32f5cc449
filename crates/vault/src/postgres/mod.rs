//! The PostgreSQL backend: sealed data, consents, receipts and the ledger in one schema
//! (`discreet` by default), wrapped keys in another (`discreet_keys`) or in a database of
//! their own, so that a data-only dump holds no keys. The same logical schema as the
//! embedded backend, the same sealing, the same conformance suite.
//!
//! The storage traits are synchronous (the engine calls the vault from blocking threads),
//! while tokio-postgres is asynchronous: the backend owns a small tokio runtime and every
//! call hands its work to it as a task and waits for the answer on a plain channel. That
//! never panics whatever thread calls it (a plain thread, a `spawn_blocking` thread, or
//! even an async task, which it merely blocks), unlike entering a runtime with `block_on`.
//!
//! Like `sqlite`, this module sees only sealed bytes and clear metadata; it never holds a
//! data key or the KEK. The writer holds the ledger's chain key and the row-integrity keys
//! the vault attaches, to chain entries and MAC rows inside the transaction that writes them.
//!
//! - `schema`: the tables of both schemas, their migrations and the version table;
//! - `runtime`: the tokio runtime the backend owns and how sync calls wait on it;
//! - `writer`: the writer task, group commit, the writer lock and the ledger chain;
//! - `jobs`: the writes the writer runs, as values, and what each answers;
//! - `writes`: the statements each write job runs inside the writer's transaction;
//! - `chains`: consent chains, API key MACs, the first sealing and the seal's check;
//! - `rows`: reading stored rows back into the storage contract's types;
//! - `data_store`: `PostgresStorage`, the `Storage` of the data schema;
//! - `scan`: the integrity scan, from one snapshot, in chunks;
//! - `key_store`: `PostgresKeyStore`, the `KeyStorage` of the key schema;
//! - `cluster`: the change log, the nodes' heartbeats, the change bell and once-only duties;
//! - `dump`: our own data-only dump and its restore (COPY in binary, one snapshot).

mod chains;
mod cluster;
mod data_store;
mod dump;
mod jobs;
mod key_store;
mod rows;
mod runtime;
mod scan;
mod schema;
mod writer;
mod writes;

use std::str::FromStr;
use std::sync::Arc;

pub use data_store::PostgresStorage;
pub use key_store::PostgresKeyStore;
pub use runtime::PgRuntime;
pub use schema::{DATA_SCHEMA_VERSION, KEY_SCHEMA_VERSION};

use crate::error::{Error, Result};

/// The data schema's name unless configured.
pub const DEFAULT_DATA_SCHEMA: &str = "discreet";
/// The key schema's name unless configured.
pub const DEFAULT_KEY_SCHEMA: &str = "discreet_keys";
/// Pooled connections per schema unless configured (the writer has one of its own).
const DEFAULT_POOL_SIZE: usize = 8;
/// How long a new connection may take, unless the settings say otherwise.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a call waits for a pooled connection when every one is busy.
const POOL_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Where a PostgreSQL vault keeps its data and its keys.
#[derive(Clone)]
pub struct PostgresOptions {
    /// Connection settings of the data (`host=... user=... dbname=...` or a URL).
    pub data: String,
    /// Connection settings of a separate key database; the data's database when not set.
    pub keys: Option<String>,
    /// Schema of the sealed data.
    pub data_schema: String,
    /// Schema of the key store (in the key database).
    pub key_schema: String,
    /// Pooled connections for reads, per schema.
    pub pool_size: usize,
    /// Open to verify only (see `SqliteOptions::verify_only`).
    pub verify_only: bool,
    /// Let other processes open the same data schema at the same time; their writes are
    /// ordered by the schema's writer lock. Off by default, where the data schema is held by
    /// one vault at a time (a session advisory lock, as the data folder's `LOCK` file on
    /// SQLite): until a change log carries every write to every node's models, a second
    /// process's forget would leave the first one's models holding the subject.
    pub shared: bool,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Connection strings may carry a password: never printed.
        formatter
            .debug_struct("PostgresOptions")
            .field("data_schema", &self.data_schema)
            .field("key_schema", &self.key_schema)
            .field("separate_key_database", &self.keys.is_some())
            .field("pool_size", &self.pool_size)
            .field("verify_only", &self.verify_only)
            .field("shared", &self.shared)
            .finish()
    }
}

impl PostgresOptions {
    /// Data and keys in the database `data` names, in the default schemas.
    pub fn new(data: impl Into<String>) -> Self {
        PostgresOptions {
            data: data.into(),
            keys: None,
            data_schema: DEFAULT_DATA_SCHEMA.to_owned(),
            key_schema: DEFAULT_KEY_SCHEMA.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            verify_only: false,
            shared: false,
        }
    }

    /// The same, with the key store in the database `keys` names.
    pub fn with_key_database(mut self, keys: impl Into<String>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// The same, with these schema names.
    pub fn with_schemas(mut self, data_schema: &str, key_schema: &str) -> Self {
        self.data_schema = data_schema.to_owned();
        self.key_schema = key_schema.to_owned();
        self
    }

    /// Checks what can be checked before connecting: schema names, connection settings,
    /// and that data and keys never share a schema.
    pub fn check(&self) -> Result<()> {
        check_schema_name("data schema", &self.data_schema)?;
        check_schema_name("key schema", &self.key_schema)?;
        connection_config(&self.data, "the data", &self.data_schema)?;
        if let Some(keys) = &self.keys {
            connection_config(keys, "the key database", &self.key_schema)?;
        } else if self.data_schema == self.key_schema {
            return Err(Error::Config {
                detail:
                    "the key schema must not be the data schema: a data dump would carry the keys"
                        .into(),
            });
        }
        if self.pool_size == 0 {
            return Err(Error::BadInput {
                detail: "the PostgreSQL pool size must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Connection settings of the key store.
    pub(crate) fn key_connection(&self) -> &str {
        self.keys.as_deref().unwrap_or(&self.data)
    }
}

/// A schema name we accept: a plain lower-case SQL identifier, so it never needs quoting
/// and can never carry SQL.
fn check_schema_name(what: &str, name: &str) -> Result<()> {
    let mut characters = name.chars();
    let first_ok = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_');
    let rest_ok = characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > 63 || name.starts_with("pg_") {
        return Err(Error::BadInput {
            detail: format!(
                "the {what} name must be 1 to 63 lower-case letters, digits and underscores, \
                 starting with a letter or underscore, and not start with `pg_`"
            ),
        });
    }
    Ok(())
}

/// Parses connection settings and points their `search_path` at `schema` only, so that
/// every statement names its tables unqualified and can reach no other schema's.
pub(crate) fn connection_config(
    settings: &str,
    what: &str,
    schema: &str,
) -> Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(settings).map_err(|_| Error::Config {
        detail: format!(
            "the PostgreSQL connection settings of {what} are not valid \
             (expected `host=... user=... dbname=...` or `postgresql://...`)"
        ),
    })?;
    let mut options = config.get_options().unwrap_or_default().to_owned();
    if !options.is_empty() {
        options.push(' ');
    }
    options.push_str(&format!("-c search_path={schema}"));
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name("discreet");
    }
    // An unreachable server is an error after a while, never a hang.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// A pool of connections whose `search_path` is `schema`.
pub(crate) fn pool(
    settings: &str,
    what: &str,
    schema: &str,
    size: usize,
) -> Result<deadpool_postgres::Pool> {
    let config = connection_config(settings, what, schema)?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|error| Error::Config {
            detail: format!("the PostgreSQL pool of {what}: {error}"),
        })
}

/// Opens both stores of `options` on one runtime: the data store and the key store.
pub fn open_stores(options: &PostgresOptions) -> Result<(PostgresStorage, PostgresKeyStore)> {
    options.check()?;
    let runtime = Arc::new(PgRuntime::new()?);
    let keys = PostgresKeyStore::open(options, runtime.clone())?;
    let storage = PostgresStorage::open(options, runtime)?;
    Ok((storage, keys))
}

/// Drops the data schema and the key schema of `options` with everything in them (what a
/// benchmark or a test made for itself). Irreversible: every subject's key goes with it.
pub fn drop_store(options: &PostgresOptions) -> Result<()> {
    options.check()?;
    let runtime = PgRuntime::new()?;
    let data = pool(&options.data, "the data", &options.data_schema, 1)?;
    let keys_settings = options.keys.clone().unwrap_or_else(|| options.data.clone());
    let keys = pool(&keys_settings, "the key database", &options.key_schema, 1)?;
    let (data_schema, key_schema) = (options.data_schema.clone(), options.key_schema.clone());
    runtime.run(async move {
        data.get()
            .await?
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {data_schema} CASCADE"))
            .await?;
        keys.get()
            .await?
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {key_schema} CASCADE"))
            .await?;
        Ok(())
    })
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        // The server's message names the statement's problem; its DETAIL may quote a row's
        // values (a unique violation does), so it is never carried. A data exception's
        // message may quote the value it could not take: only its code is kept.
        let detail = match error.as_db_error() {
            Some(db) if db.code().code().starts_with("22") => {
                format!("a value was refused (SQLSTATE {})", db.code().code())
            }
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => error.to_string(),
        };
        Error::Storage { detail }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => Error::from(error),
            other => Error::Storage {
                detail: format!("PostgreSQL connection pool: {other}"),
            },
        }
    }
}
