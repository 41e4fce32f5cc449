//! The answer shapes of the incident routes (GDPR Art. 33), for the OpenAPI document.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// One category's exposure.
#[derive(Serialize, ToSchema)]
pub struct CategoryImpactOut {
    category: String,
    subjects: u64,
    records: u64,
}

/// What the incident exposed, computed from the verified ledger.
#[derive(Serialize, ToSchema)]
pub struct ImpactOut {
    subjects: u64,
    records: u64,
    categories: Vec<CategoryImpactOut>,
    purposes: Vec<String>,
    /// False when the exposed material could not be opened (a data copy without the KEK).
    intelligible: bool,
    /// What was readable without keys, when not intelligible.
    in_clear: Vec<String>,
    /// Read entries counted.
    reads: u64,
    /// Recommendation answers among them.
    recommendation_reads: u64,
    /// Some counts are upper bounds (older entries without per-category counts).
    approximate: bool,
    subject_tokens_url: String,
}

/// Containment actions, with their times (RFC 3339).
#[derive(Serialize, ToSchema)]
pub struct ContainmentOut {
    key_revoked_at: Option<String>,
    kek_rotated_at: Option<String>,
}

/// The Art. 33(3) sections.
#[derive(Serialize, ToSchema)]
pub struct ReportOut {
    nature: String,
    categories_and_numbers: String,
    contact: String,
    likely_consequences: String,
    measures: String,
}

/// The ledger's verification before the impact was computed.
#[derive(Serialize, ToSchema)]
pub struct LedgerCheckOut {
    ok: bool,
    entries: u64,
    problem: Option<String>,
}

/// The incident's signature by the receipt key (Ed25519 over the stored record).
#[derive(Serialize, ToSchema)]
pub struct SignatureOut {
    key_id: String,
    signature: String,
}

/// An incident.
#[derive(Serialize, ToSchema)]
pub struct IncidentAnswer {
    id: String,
    /// `key_compromised`, `window` or `data_copy`.
    kind: String,
    key_id: Option<String>,
    since: Option<String>,
    until: String,
    aware_at: String,
    /// `aware_at` + 72 hours.
    notify_by: String,
    created_at: String,
    created_by: String,
    description: Option<String>,
    kek_exposed: Option<bool>,
    impact: ImpactOut,
    containment: ContainmentOut,
    report: ReportOut,
    ledger: LedgerCheckOut,
    signature: Option<SignatureOut>,
}

/// Every incident, newest first.
#[derive(Serialize, ToSchema)]
pub struct IncidentsAnswer {
    incidents: Vec<IncidentAnswer>,
    /// Ids of stored incidents that could not be read: missing, or altered in the data
    /// store (their signature does not verify). The others are listed all the same.
    unreadable: Vec<String>,
}

/// The affected customers, for Art. 34 notices.
#[derive(Serialize, ToSchema)]
pub struct IncidentSubjectsAnswer {
    /// Customer ids of the affected subjects still held.
    subjects: Vec<String>,
    /// Affected subjects forgotten since: counted, their ids gone.
    forgotten: u64,
}
