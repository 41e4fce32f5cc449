//! Errors of the model crate: one enum, named by meaning. Never carries a subject's name
//! or history, only ids and counts, so an error can be logged without leaking anything.

/// What went wrong inside a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// An unlearn asked to remove an interaction that was never learned.
    #[error(
        "cannot unlearn an interaction of subject #{subject} with item #{item} at {at}: it was never learned"
    )]
    NotLearned { subject: u32, item: u32, at: i64 },
    /// An id was used that the model has never seen.
    #[error("unknown {what} #{id}")]
    UnknownId { what: &'static str, id: u32 },
    /// An interaction the models must not take (a released subject, an unknown item, a
    /// time outside the supported range).
    #[error("bad interaction: {detail}")]
    BadInteraction { detail: String },
    /// A configuration value is outside its allowed range.
    #[error("bad model configuration: {detail}")]
    BadConfig { detail: String },
    /// A model was asked to score before `refresh` applied its learned changes.
    #[error("the model has learned changes not yet applied; call refresh first")]
    NotRefreshed,
    /// A step inside the model failed unexpectedly (a worker thread panicked).
    #[error("internal model failure: {detail}")]
    Internal { detail: String },
    /// The linear algebra failed (the regularised Gram matrix was not positive definite).
    #[error("numerical failure: {detail}")]
    Numerical { detail: String },
}

/// Result of model operations.
pub type Result<T> = std::result::Result<T, ModelError>;
