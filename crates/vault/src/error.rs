//! The vault's one error type. Variants are named by meaning, never by the library that
//! failed, and no message ever carries a personal value.

use std::path::PathBuf;

/// Result with the vault's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the vault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The subject (or receipt, API key, erasure intent) is unknown, or has been forgotten.
    #[error("{what} not found")]
    NotFound { what: Missing },
    /// The subject is being forgotten; its data can no longer be read or added to.
    #[error("the subject is being forgotten")]
    Forgetting,
    /// The subject's data key was destroyed: its sealed data can never be opened again.
    #[error("the subject's data key was destroyed")]
    KeyDestroyed,
    /// A sealed value failed to open: it was altered, moved to another row, or the key is wrong.
    #[error("sealed {what} failed to open: altered, moved or wrong key")]
    Tampered { what: &'static str },
    /// The data file was changed outside discreet: a row that grants power or records a
    /// decision, or the ledger's sealed head, does not verify against the key store.
    #[error("the data file was altered outside discreet: {detail}")]
    Integrity { detail: String },
    /// The same idempotency key was used with a different body.
    #[error("idempotency key reused with a different body")]
    IdempotencyConflict,
    /// Data changed under an operation that needed it still (retry the operation).
    #[error("conflict: {detail}")]
    Conflict { detail: String },
    /// A value given to the vault is not acceptable.
    #[error("bad input: {detail}")]
    BadInput { detail: String },
    /// The vault was configured in a way that would break a promise (e.g. KEK inside the data folder).
    #[error("configuration: {detail}")]
    Config { detail: String },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The storage backend failed.
    #[error("storage: {detail}")]
    Storage { detail: String },
    /// A cryptographic primitive failed where it should not (e.g. no randomness).
    #[error("cryptography: {detail}")]
    Crypto { detail: &'static str },
    /// The writer thread has stopped; the vault must be reopened.
    #[error("the vault writer has stopped")]
    WriterStopped,
}

/// What was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A subject: never known, or forgotten.
    Subject,
    /// A forget receipt.
    Receipt,
    /// A live API key.
    ApiKey,
    /// A durable intent to forget a subject.
    ErasureIntent,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Missing::Subject => "subject",
            Missing::Receipt => "receipt",
            Missing::ApiKey => "API key",
            Missing::ErasureIntent => "erasure intent",
        })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Error::Storage {
            detail: error.to_string(),
        }
    }
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
