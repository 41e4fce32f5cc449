//! The engine's errors, named by meaning. Messages carry field names, ids and counts, never
//! a personal value, so they are safe to return to callers and to log.

/// What went wrong in an engine call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `field` names what is wrong (e.g. `events[3].at`).
    #[error("{field}: {detail}")]
    BadInput { field: String, detail: String },
    /// The caller's role does not allow this action, purpose or data category.
    #[error("{detail}")]
    Forbidden { detail: String },
    /// No such subject, receipt or key (a forgotten subject is not found).
    #[error("{what} not found")]
    NotFound { what: &'static str },
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
    /// A fault inside discreet (storage, keys, models); the detail is for operators.
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

/// Engine result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn bad_input(field: impl Into<String>, detail: impl Into<String>) -> Error {
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
}

impl From<discreet_vault::Error> for Error {
    fn from(error: discreet_vault::Error) -> Error {
        use discreet_vault::Error as Vault;
        match error {
            Vault::NotFound { what } => Error::NotFound { what },
            Vault::KeyDestroyed => Error::NotFound { what: "subject" },
            Vault::Forgetting => Error::Forgetting,
            Vault::IdempotencyConflict => Error::IdempotencyConflict,
            Vault::BadInput { detail } => Error::BadInput {
                field: String::new(),
                detail,
            },
            Vault::Conflict { detail } => Error::Conflict { detail },
            other => Error::Internal {
                detail: other.to_string(),
            },
        }
    }
}

impl From<discreet_model::ModelError> for Error {
    fn from(error: discreet_model::ModelError) -> Error {
        Error::Internal {
            detail: format!("models: {error}"),
        }
    }
}
