//! The engine's errors, named by meaning. Messages carry field names, ids and counts, never
//! a personal value, so they are safe to return to callers and to log.

use std::fmt;

/// What a `NotFound` did not find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A subject discreet does not know, or has forgotten.
    Subject,
    /// An item no model has seen.
    Item,
    /// A forget receipt.
    Receipt,
    /// A live API key.
    ApiKey,
    /// An incident record.
    Incident,
}

impl fmt::Display for Missing {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Missing::Subject => "subject",
            Missing::Item => "item",
            Missing::Receipt => "receipt",
            Missing::ApiKey => "API key",
            Missing::Incident => "incident",
        })
    }
}

/// What went wrong in an engine call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `field` names what is wrong (e.g. `events[3].at`).
    #[error("{field}: {detail}")]
    BadInput { field: String, detail: String },
    /// The caller's role does not allow this action, purpose or data category.
    #[error("{detail}")]
    Forbidden { detail: String },
    /// No such subject, item, receipt or key (a forgotten subject is not found).
    #[error("{what} not found")]
    NotFound { what: Missing },
    /// The subject is being forgotten; nothing more is written for them.
    #[error("the subject is being forgotten; no data is accepted for them")]
    Forgetting,
    /// An idempotency key was reused with a different body.
    #[error("the Idempotency-Key was already used with a different body")]
    IdempotencyConflict,
    /// A write conflicted with another one; retrying may succeed.
    #[error("{detail}")]
    Conflict { detail: String },
    /// The engine is still rebuilding its models.
    #[error("the models are still being rebuilt; retry shortly")]
    NotReady,
    /// Read entries cannot reach the ledger, and the buffer for them is full: reads of
    /// personal data are refused rather than left off the ledger.
    #[error(
        "the access ledger cannot be written now; reads of personal data wait for it, retry shortly"
    )]
    LedgerUnavailable,
    /// A fault inside discreet (storage, keys, models); the detail is for operators.
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

/// Engine result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Bad input in `field`.
    pub fn bad_input(field: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::BadInput {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn forbidden(detail: impl Into<String>) -> Error {
        Error::Forbidden {
            detail: detail.into(),
        }
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Error {
        Error::Internal {
            detail: detail.into(),
        }
    }

    /// The same error with its field named inside `prefix` (e.g. `events[3]` + `at`).
    pub fn within(self, prefix: &str) -> Error {
        match self {
            Error::BadInput { field, detail } if field.is_empty() => Error::BadInput {
                field: prefix.to_owned(),
                detail,
            },
            Error::BadInput { field, detail } => Error::BadInput {
                field: format!("{prefix}.{field}"),
                detail,
            },
            other => other,
        }
    }
}

impl From<discreet_vault::Error> for Error {
    fn from(error: discreet_vault::Error) -> Error {
        use discreet_vault::Error as Vault;
        match error {
            Vault::NotFound { what } => match what {
                discreet_vault::Missing::Subject => Error::NotFound {
                    what: Missing::Subject,
                },
                discreet_vault::Missing::Receipt => Error::NotFound {
                    what: Missing::Receipt,
                },
                discreet_vault::Missing::ApiKey => Error::NotFound {
                    what: Missing::ApiKey,
                },
                // The engine never asks for an intent: one missing is a fault, not bad input.
                discreet_vault::Missing::ErasureIntent => {
                    Error::internal(format!("{what} not found"))
                }
            },
            Vault::KeyDestroyed => Error::NotFound {
                what: Missing::Subject,
            },
            Vault::Forgetting => Error::Forgetting,
            Vault::IdempotencyConflict => Error::IdempotencyConflict,
            Vault::BadInput { detail } => Error::BadInput {
                field: String::new(),
                detail,
            },
            Vault::Conflict { detail } => Error::Conflict { detail },
            other => Error::internal(other.to_string()),
        }
    }
}

impl From<discreet_model::ModelError> for Error {
    fn from(error: discreet_model::ModelError) -> Error {
        Error::internal(format!("models: {error}"))
    }
}
