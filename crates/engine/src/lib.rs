//! discreet-engine: the rules. It ties the policy, the vault and the models together and
//! is the only place that decides whether a use of personal data is allowed: every call
//! names its caller (an API key's role), reads name a purpose, and consent decides what
//! the models may learn. It takes typed values (parsing a wire format is its callers' job),
//! never touches storage except through the vault, and never keeps a personal value
//! outside the vault except in the models, which are rebuilt from the vault at start
//! (derived state, never persisted).

mod access;
mod answers;
mod audit;
mod cluster;
mod consent;
mod dashboard;
mod engine;
mod error;
mod export;
mod import;
mod incidents;
mod ingest;
pub mod input;
mod interactions;
mod item_ops;
pub mod items;
mod keys;
mod learner;
mod lifecycle;
mod portal;
mod recommend;
mod retention;
mod rights;

pub use access::{Caller, DATA_SUBJECT_ROLE, RIGHTS_PURPOSE};
pub use answers::{
    ConsentDecision, ConsentState, ConsentsView, EngineFigures, IngestOutcome, IssuedKey,
    NotPersonal, RebuildProgress, RebuildReport, Recommendations, RecommendedItem, SimilarItem,
    SweepReport,
};
pub use audit::{AuditQuery, MAX_AUDIT_ENTRIES};
pub use cluster::{ClusterOptions, NodeHealth};
pub use consent::GPC_CARRIERS;
pub use dashboard::{
    ConsentSeries, DASHBOARD_DAYS, Dashboard, DayFigures, LedgerChecked, MAX_DASHBOARD_ENTRIES,
};
pub use engine::{Engine, EngineOptions, tuned_model_config};
pub use error::{Error, Missing, Result};
pub use export::{
    AccessEntry, AutomatedDecisions, CategoryHeld, Derived, ExportedAttribute, ExportedEvent,
    ExportedPurpose, HeldItem, Right, SubjectExport,
};
pub use import::{
    ConsentImported, ConsentRecord, MAX_POLICY_VERSION_CHARS, MIGRATION_PURPOSE, SubjectRecords,
};
pub use incidents::{
    CategoryImpact, ContainRequest, Containment, Impact, Incident, IncidentKind, IncidentList,
    IncidentRequest, IncidentSubjects, LedgerCheck, MAX_DESCRIPTION_CHARS, NOTIFY_WITHIN_MILLIS,
    PORTAL_SESSION_REACH_MILLIS, READ_ACTIONS, ReportSections,
};
pub use ingest::IdempotencyKey;
pub use input::{AttributeInput, EventContext, EventInput, EventType};
pub use interactions::EventPayload;
pub use items::{ItemFilter, ItemInput, ItemUpserted, ItemView};
pub use keys::MAX_KEY_LABEL_CHARS;
