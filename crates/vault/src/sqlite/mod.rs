//! The embedded backend: sealed data, consents, receipts and the ledger in one SQLite
//! file (WAL, `synchronous = FULL`), written by one writer thread that batches concurrent
//! writes into a single transaction (group commit), read through a small pool of
//! connections; wrapped keys in a second SQLite file, the key store, kept apart so that a
//! data backup holds no keys.
//!
//! This module sees only sealed bytes and clear metadata; it never holds a data key or the
//! KEK. The writer holds the ledger's chain key and the row-integrity keys the vault
//! attaches, to chain entries and MAC rows inside the very transaction that writes them.
//!
//! - `schema`: the tables of both files and how their connections are opened;
//! - `writer`: the writer thread, group commit and the ledger chain it extends;
//! - `writes`: the statements each write job runs inside the writer's transaction;
//! - `rows`: reading stored rows back into the storage contract's types;
//! - `data_store`: `SqliteStorage`, the `Storage` of the data file;
//! - `key_store`: `SqliteKeyStore`, the `KeyStorage` of the key store file.

mod data_store;
mod key_store;
mod rows;
mod schema;
mod writer;
mod writes;

pub use data_store::SqliteStorage;
pub use key_store::SqliteKeyStore;

/// File name of the sealed data inside the data folder.
pub const DATA_FILE: &str = "vault.sqlite";
/// File name of the key store: beside the KEK file unless configured elsewhere, never inside
/// the data folder (where an earlier build kept it; `Vault::open_sqlite` moves it out once).
pub const KEY_STORE_FILE: &str = "keystore.sqlite";

/// Settings of every connection to the data file. WAL lets readers run beside the writer;
/// FULL syncs the WAL at every commit so an acknowledged write survives power loss; FAST
/// secure delete zeroes freed cells where that costs no extra I/O; a larger auto-checkpoint
/// interval writes hot index pages back to the database file less often.
/// Public so that benchmarks can give a plain baseline the very same settings.
pub const DATA_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = FAST;
     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 8192;";

/// Settings of the key store connection: a rollback journal (not WAL) and `secure_delete =
/// ON`, so a destroyed key is overwritten in the file and no old copy lingers in a log.
const KEY_PRAGMAS: &str =
    "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;";
