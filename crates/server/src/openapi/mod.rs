//! The OpenAPI document at `/openapi.json`: the handlers' annotations (paths, every status
//! each operation answers, problem+json errors) and the answer schemas below, completed with
//! the request schemas, which are built here from the engine's limits and the policy in force
//! (its event types, attributes, purposes and roles). A request the document calls valid is
//! one the server accepts, and one it calls invalid is refused with a 4xx: schemathesis checks
//! both in CI. The rooms: this file holds the answer schemas, the document and its links;
//! `requests` the request schemas and parameter constraints.

#![allow(dead_code)]

mod incidents;
mod requests;

pub use incidents::{IncidentAnswer, IncidentSubjectsAnswer, IncidentsAnswer};

use discreet_policy::Policy;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::error::Problem;

use requests::{parameter_schema, request_schemas};

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
    /// The declared title; null when the item was never declared.
    title: Option<String>,
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
    /// The declared title; null when the item was never declared.
    title: Option<String>,
    score: f32,
}

/// A declared item.
#[derive(Serialize, ToSchema)]
pub struct ItemAnswer {
    item: String,
    title: String,
    /// `/`-separated paths.
    categories: Vec<String>,
    price: Option<f64>,
    available: bool,
    updated_at: String,
}

/// Answer to declaring one item.
#[derive(Serialize, ToSchema)]
pub struct ItemUpsertAnswer {
    item: String,
    /// False when the item was declared before and is replaced.
    created: bool,
}

/// Answer to declaring a batch of items.
#[derive(Serialize, ToSchema)]
pub struct ItemBatchAnswer {
    upserted: u64,
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

/// A newly issued key; the secret is shown once.
#[derive(Serialize, ToSchema)]
pub struct KeyAnswer {
    id: String,
    role: String,
    secret: String,
}

/// One API key (never its secret).
#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    id: String,
    role: String,
    label: String,
    created_at: String,
    revoked_at: Option<String>,
}

/// Every API key.
#[derive(Serialize, ToSchema)]
pub struct KeysAnswer {
    keys: Vec<KeyOut>,
}

/// A revoked key.
#[derive(Serialize, ToSchema)]
pub struct RevokedAnswer {
    revoked: String,
}

/// Whether the server accepts traffic.
#[derive(Serialize, ToSchema)]
pub struct HealthAnswer {
    /// `ready`, or `starting` while the models are rebuilt (or a node catches up).
    status: String,
    /// True when the server answers requests.
    ready: bool,
    /// With several nodes on PostgreSQL: this node's name.
    node: Option<String>,
    /// With several nodes: changes the others committed that this node has not applied yet.
    behind: Option<u64>,
}

/// A privacy-center session: send the customer's browser to `url` (once, within 10 minutes).
#[derive(Serialize, ToSchema)]
pub struct PortalSessionAnswer {
    /// `ps_…`; the ledger names the session's actions `portal:<id>`.
    id: String,
    /// The single-use start URL.
    url: String,
    /// RFC 3339: when the start URL stops working if unused.
    expires_at: String,
}

/// The request is not valid; `field` names the part at fault. Nothing was changed.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BadInput(Problem);

/// No valid API key: send `Authorization: Bearer <secret>`.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
pub struct Unauthorized(Problem);

/// The key's role does not allow this action, purpose or data category.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Forbidden(Problem);

/// The subject, item, receipt or key named is not known (or was forgotten).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotFound(Problem);

/// The subject is being forgotten, or the idempotency key came with another body.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Conflict(Problem);

/// The body is larger than the server accepts.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PayloadTooLarge(Problem);

/// Too many failed authentications from this address; retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds until the address is accepted again"))
)]
pub struct TooManyRequests(Problem);

/// The models are still being rebuilt; retry once `/healthz` answers 200.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotReady(Problem);

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
        crate::routes::put_item,
        crate::routes::post_items,
        crate::routes::get_item,
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
        crate::routes::post_incident,
        crate::routes::get_incidents,
        crate::routes::get_incident,
        crate::routes::get_incident_report,
        crate::routes::get_incident_subjects,
        crate::routes::post_incident_contain,
        crate::pages::post_portal_session,
        crate::routes::get_healthz,
        crate::routes::get_metrics,
    ),
    components(
        schemas(Problem),
        responses(BadInput, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, TooManyRequests, NotReady)
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The OpenAPI document for a server enforcing `policy`, with batches of at most
/// `max_batch_events` events, whose catalogue declares `categories` (with their parents).
pub fn document(policy: &Policy, max_batch_events: usize, categories: &[String]) -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = request_schemas(policy, max_batch_events);
    if let Some(components) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        components.extend(schemas);
    }
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(operations) = item.as_object_mut() else {
                continue;
            };
            for operation in operations.values_mut() {
                // Every body this API reads is required: an empty one is not valid JSON.
                if let Some(body) = operation.get_mut("requestBody") {
                    body["required"] = Value::Bool(true);
                }
                let operation_id = operation["operationId"].as_str().unwrap_or_default();
                let links = links_of(operation_id);
                if !links.is_empty()
                    && let Some(answer) = operation.pointer_mut("/responses/200")
                {
                    answer["links"] = Value::Object(links);
                }
                let Some(parameters) = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                // A category filter may name only declared categories (any other is
                // refused): with none declared yet, the parameter is left out.
                if categories.is_empty() {
                    parameters.retain(|parameter| parameter["name"] != "category");
                }
                for parameter in parameters {
                    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                    let place = parameter["in"].as_str().unwrap_or_default().to_owned();
                    if let Some(schema) = parameter_schema(policy, path, &place, &name, categories)
                    {
                        parameter["schema"] = schema;
                    }
                }
            }
        }
    }
    document
}

/// The links from an operation's 200 answer to the operations that use what it made or
/// named, for stateful testing (what a shop would do next).
fn links_of(operation_id: &str) -> Map<String, Value> {
    let subject = json!({"subject": "$request.path.subject"});
    let to =
        |target: &str, parameters: &Value| json!({"operationId": target, "parameters": parameters});
    let pairs: Vec<(&str, Value)> = match operation_id {
        "post_events" => {
            let first = json!({"subject": "$request.body#/events/0/subject"});
            vec![
                ("export", to("get_export", &first)),
                ("recommendations", to("get_recommendations", &first)),
                ("forget", to("delete_subject", &first)),
            ]
        }
        "put_attributes" => vec![
            ("export", to("get_export", &subject)),
            ("forget", to("delete_subject", &subject)),
        ],
        "put_consent" => vec![
            ("consents", to("get_consents", &subject)),
            ("recommendations", to("get_recommendations", &subject)),
            ("export", to("get_export", &subject)),
            ("forget", to("delete_subject", &subject)),
        ],
        "delete_subject" => vec![
            (
                "receipt",
                to("get_receipt", &json!({"id": "$response.body#/receipt/id"})),
            ),
            ("export", to("get_export", &subject)),
        ],
        "post_key" => vec![(
            "revoke",
            to("delete_key", &json!({"id": "$response.body#/id"})),
        )],
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .map(|(name, link)| (name.to_owned(), link))
        .collect()
}
