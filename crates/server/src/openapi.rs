//! The OpenAPI document, generated from the handlers' annotations and the schemas below.
//! The schemas describe the wire shapes of `API.md`; the handlers build those shapes from
//! the engine's types, and the HTTP tests check that they agree.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// A batch of events.
#[derive(Serialize, ToSchema)]
pub struct EventBatch {
    events: Vec<EventIn>,
}

/// One event.
#[derive(Serialize, ToSchema)]
pub struct EventIn {
    /// The shop's customer id (1 to 128 bytes).
    subject: String,
    /// `view`, `cart`, `purchase`, `search` (with `query`) or `rating` (with `value`).
    #[serde(rename = "type")]
    event_type: String,
    /// Item code; required except for searches.
    item: Option<String>,
    /// RFC 3339; not more than a day in the future.
    at: String,
    quantity: Option<u32>,
    query: Option<String>,
    /// Rating, 0 to 10.
    value: Option<f64>,
    context: Option<ContextIn>,
}

/// Non-personal context.
#[derive(Serialize, ToSchema)]
pub struct ContextIn {
    /// clear, cloudy, rain, snow, hot or cold.
    weather: Option<String>,
    country: Option<String>,
}

/// Answer to an ingest.
#[derive(Serialize, ToSchema)]
pub struct IngestAnswer {
    accepted: u64,
    duplicates: u64,
}

/// Names of the attributes stored.
#[derive(Serialize, ToSchema)]
pub struct AttributesAnswer {
    updated: Vec<String>,
}

/// A consent decision.
#[derive(Serialize, ToSchema)]
pub struct ConsentBody {
    granted: bool,
    /// Where the decision was collected, e.g. `checkout-banner-v3`.
    source: Option<String>,
}

/// The state of one purpose.
#[derive(Serialize, ToSchema)]
pub struct ConsentAnswer {
    purpose: String,
    /// `granted`, `withdrawn` or `never`.
    state: String,
    at: Option<String>,
}

/// One recorded decision.
#[derive(Serialize, ToSchema)]
pub struct ConsentHistoryEntry {
    purpose: String,
    state: String,
    at: String,
    source: String,
    policy_version: String,
}

/// Every consent purpose and the history.
#[derive(Serialize, ToSchema)]
pub struct ConsentsAnswer {
    consents: Vec<ConsentAnswer>,
    history: Vec<ConsentHistoryEntry>,
}

/// One recommended item.
#[derive(Serialize, ToSchema)]
pub struct RecommendedItemOut {
    item: String,
    score: f32,
    /// The subject's own items that led to it; empty when not personal.
    because: Vec<String>,
}

/// Recommendations.
#[derive(Serialize, ToSchema)]
pub struct RecommendationsAnswer {
    personalized: bool,
    /// `no_consent`, `unknown_subject`, `no_history` or `purpose_not_personal`.
    reason: Option<String>,
    items: Vec<RecommendedItemOut>,
}

/// One similar item.
#[derive(Serialize, ToSchema)]
pub struct SimilarItemOut {
    item: String,
    score: f32,
}

/// Similar items.
#[derive(Serialize, ToSchema)]
pub struct SimilarAnswer {
    items: Vec<SimilarItemOut>,
}

/// What a forget erased.
#[derive(Serialize, ToSchema)]
pub struct ErasedOut {
    events: u64,
    attributes: u64,
    consents: u64,
    model_interactions: u64,
    key_destroyed: bool,
}

/// A signed forget receipt.
#[derive(Serialize, ToSchema)]
pub struct ReceiptOut {
    id: String,
    subject_token: String,
    requested_at: String,
    completed_at: String,
    erased: ErasedOut,
    /// Ed25519 signature, hex.
    signature: String,
    key_id: String,
}

/// `{"receipt": ...}`.
#[derive(Serialize, ToSchema)]
pub struct ReceiptAnswer {
    receipt: ReceiptOut,
}

/// The receipt-signing public key.
#[derive(Serialize, ToSchema)]
pub struct PublicKeyAnswer {
    key_id: String,
    algorithm: String,
    /// Hex.
    public_key: String,
}

/// One ledger entry.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    subject_token: Option<String>,
    purpose: Option<String>,
    categories: Vec<String>,
    outcome: String,
    detail: String,
    hash: String,
}

/// Ledger entries, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditAnswer {
    entries: Vec<AuditEntry>,
}

/// Result of re-walking the ledger.
#[derive(Serialize, ToSchema)]
pub struct VerifyAnswer {
    ok: bool,
    entries: i64,
    head: String,
    checkpoints_verified: usize,
    first_bad_entry: Option<i64>,
    problem: Option<String>,
}

/// A key to issue.
#[derive(Serialize, ToSchema)]
pub struct KeyRequest {
    role: String,
    label: Option<String>,
}

/// A newly issued key; the secret is shown once.
#[derive(Serialize, ToSchema)]
pub struct KeyAnswer {
    id: String,
    role: String,
    secret: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "discreet API", version = "1", description = "Personalization with privacy as a property of the engine. Errors are RFC 9457 problem+json with a stable `code`."),
    paths(
        crate::routes::post_events,
        crate::routes::put_attributes,
        crate::routes::put_consent,
        crate::routes::get_consents,
        crate::routes::get_recommendations,
        crate::routes::get_similar,
        crate::routes::get_export,
        crate::routes::delete_subject,
        crate::routes::get_receipt,
        crate::routes::get_public_key,
        crate::routes::get_audit,
        crate::routes::get_audit_verify,
        crate::routes::get_policy,
        crate::routes::get_records,
        crate::routes::post_key,
        crate::routes::get_keys,
        crate::routes::delete_key,
        crate::routes::get_healthz,
        crate::routes::get_metrics,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
