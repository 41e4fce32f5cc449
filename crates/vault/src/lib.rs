//! discreet-vault: everything discreet persists — subjects, sealed events and attributes,
//! consent history, wrapped keys, the hash-chained ledger and forget receipts.
//!
//! Every personal value is sealed with its subject's own AES-256-GCM data key before it
//! reaches a backend; data keys are wrapped by a key-encryption key kept outside the data
//! folder, in a key store kept apart from the data. Forgetting a subject destroys its key,
//! so copies in old backups can never be opened again. This crate never decides whether a
//! use is allowed (the engine does) and never sees a plaintext value it was not handed.

#[cfg(feature = "testing")]
pub mod conformance;
pub mod crypto;
mod error;
pub mod integrity;
pub mod ledger;
pub mod postgres;
pub mod receipt;
pub mod sqlite;
pub mod storage;
mod vault;

pub use crypto::{Kek, KekRing};
pub use error::{Error, Missing, Result};
pub use ledger::{LedgerDraft, LedgerRecord, LedgerVerification};
pub use postgres::PostgresOptions;
pub use receipt::{ErasedCounts, ForgetReceipt, PublicKeyInfo};
pub use storage::{ApiKeyRow, ConsentRow, ItemRow, KeyStorage, LedgerFilter, Storage, SubjectId};
pub use vault::*;
