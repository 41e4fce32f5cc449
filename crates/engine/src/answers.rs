//! What engine calls answer: plain typed values, serializable in the API's wire shapes. They
//! carry customer ids only where the caller named them, and never a value the caller's role
//! may not see.

use serde::Serialize;
use zeroize::Zeroizing;

/// Answer to an ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    pub accepted: u64,
    pub duplicates: u64,
}

/// The current state of one consent purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentState {
    pub purpose: String,
    /// `granted`, `withdrawn` or `never`.
    pub state: &'static str,
    /// RFC 3339, absent for `never`.
    pub at: Option<String>,
}

/// One recorded consent decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentDecision {
    pub purpose: String,
    pub state: &'static str,
    pub at: String,
    pub source: String,
    pub policy_version: String,
}

/// Every consent purpose's state and the full history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentsView {
    pub consents: Vec<ConsentState>,
    pub history: Vec<ConsentDecision>,
}

/// One recommended item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecommendedItem {
    pub item: String,
    /// The declared title (null when the item was never declared).
    pub title: Option<String>,
    pub score: f32,
    /// The subject's own items that contributed most (empty for non-personal answers).
    pub because: Vec<String>,
}

/// Why an answer is not personal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotPersonal {
    /// The subject has not consented to the models' purpose.
    NoConsent,
    /// discreet does not know the subject.
    UnknownSubject,
    /// The subject consented but the models hold nothing of theirs.
    NoHistory,
    /// The purpose asked for is not the models' purpose (or the role may not use its data).
    PurposeNotPersonal,
}

impl NotPersonal {
    /// The wire name (`no_consent`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NotPersonal::NoConsent => "no_consent",
            NotPersonal::UnknownSubject => "unknown_subject",
            NotPersonal::NoHistory => "no_history",
            NotPersonal::PurposeNotPersonal => "purpose_not_personal",
        }
    }
}

/// Answer to a recommendation request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendations {
    pub personalized: bool,
    /// Why the answer is not personal (absent when it is).
    pub reason: Option<NotPersonal>,
    pub items: Vec<RecommendedItem>,
}

/// One similar item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimilarItem {
    pub item: String,
    /// The declared title (null when the item was never declared).
    pub title: Option<String>,
    pub score: f32,
}

/// Figures for `/metrics` and the console: counts only, never personal values.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EngineFigures {
    pub ready: bool,
    pub items: u64,
    /// Items declared in the catalogue.
    pub declared_items: u64,
    pub modelled_subjects: u64,
    pub modelled_events: u64,
    pub consented_subjects: u64,
    pub events_accepted: u64,
    pub forgets_completed: u64,
    pub retention_erased_rows: u64,
    pub access_entries_pending: u64,
    /// Events acknowledged (durable) that the learner has not taught the models yet.
    pub events_waiting_to_be_learned: u64,
    /// Batches the models failed to learn (they are learned again at the next start).
    pub learn_failures: u64,
}

/// Progress of the start-up rebuild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildProgress {
    pub events_read: u64,
    pub events_total: u64,
}

/// What a rebuild found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub events_read: u64,
    pub events_learned: u64,
    pub subjects: u64,
    pub consented_subjects: u64,
    pub items: u64,
    pub millis: u64,
}

/// What a retention sweep erased.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub events: u64,
    pub attributes: u64,
    pub model_interactions: u64,
}

/// A newly issued API key; `secret` is shown once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedKey {
    pub id: String,
    pub role: String,
    pub secret: Zeroizing<String>,
}
