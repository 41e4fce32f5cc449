//! discreet-engine: the rules. It ties the policy, the vault and the models together and
//! is the only place that decides whether a use of personal data is allowed: every call
//! names its caller (an API key's role), reads name a purpose, and consent decides what
//! the models may learn. It never touches storage except through the vault, and never
//! keeps a personal value outside the vault except in the models, which are rebuilt from
//! the vault at start (derived state, never persisted).

mod engine;
mod error;
pub mod event;
mod export;

pub use engine::{
    Caller, ConsentDecision, ConsentState, ConsentsView, Engine, EngineFigures, EngineOptions,
    IngestOutcome, IssuedKey, MAX_ANSWER_ITEMS, MAX_ATTRIBUTE_BYTES, MAX_SOURCE_BYTES,
    RIGHTS_PURPOSE, RebuildProgress, RebuildReport, Recommendations, RecommendedItem, SimilarItem,
    SweepReport,
};
pub use error::{Error, Result};
pub use event::EventContext;
