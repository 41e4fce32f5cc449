//! The OpenAPI document at `/openapi.json`: the handlers' annotations (paths, every status
//! each operation answers, problem+json errors) and the answer schemas below, completed with
//! the request schemas, which are built here from the engine's limits and the policy in force
//! (its event types, attributes, purposes and roles). A request the document calls valid is
//! one the server accepts, and one it calls invalid is refused with a 4xx: schemathesis checks
//! both in CI. It must never describe a limit the engine does not apply.

#![allow(dead_code)]

use discreet_engine::input::{
    MAX_ANSWER_ITEMS, MAX_ATTRIBUTE_CHARS, MAX_COUNTRY_CHARS, MAX_ITEM_CHARS, MAX_QUANTITY,
    MAX_QUERY_CHARS, MAX_SOURCE_CHARS, MAX_SUBJECT_CHARS, WEATHER_NAMES,
};
use discreet_engine::{EventType, MAX_AUDIT_ENTRIES, MAX_KEY_LABEL_CHARS};
use discreet_policy::Policy;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::error::Problem;

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
    /// `ready`, or `starting` while the models are rebuilt.
    status: String,
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
    components(
        schemas(Problem),
        responses(BadInput, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, TooManyRequests, NotReady)
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Text without control characters (what the engine refuses in identifiers and names).
const NO_CONTROL: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// A header value of visible ASCII that starts and ends with a non-space (HTTP trims spaces).
const VISIBLE_HEADER: &str = r"^[\x21-\x7E]([\x20-\x7E]{0,253}[\x21-\x7E])?$";
/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The OpenAPI document for a server enforcing `policy`, with batches of at most
/// `max_batch_events` events.
pub fn document(policy: &Policy, max_batch_events: usize) -> Value {
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
                for parameter in parameters {
                    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                    let place = parameter["in"].as_str().unwrap_or_default().to_owned();
                    if let Some(schema) = parameter_schema(policy, path, &place, &name) {
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
    let to = |target: &str, parameters: &Value| {
        json!({"operationId": target, "parameters": parameters})
    };
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
        "post_key" => vec![("revoke", to("delete_key", &json!({"id": "$response.body#/id"})))],
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .map(|(name, link)| (name.to_owned(), link))
        .collect()
}

/// A string of 1 to `max_chars` characters without control characters.
fn identifier(max_chars: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": NO_CONTROL})
}

fn nullable(mut schema: Value) -> Value {
    if let Some(kind) = schema.get("type").and_then(Value::as_str).map(str::to_owned) {
        schema["type"] = json!([kind, "null"]);
    }
    if let Some(names) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        names.push(Value::Null);
    }
    schema
}

/// RFC 3339 times whose year matches `years`, in the form the document promises (`T`, `Z` or
/// an offset, days 01 to 28 so every month has them, fractions up to nanoseconds).
fn rfc3339(years: &str) -> Value {
    json!({
        "type": "string",
        "pattern": format!(
            r"^({years})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,9}})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
        ),
    })
}

/// Event times the document promises the engine accepts: days 01 to 28 of the month before
/// the current one. An event time must lie between 1970 and a day from now, and within its
/// category's retention (13 months at the shortest in the built-in policy), so a fixed range
/// of years would promise times the retention refuses; the month before now is inside both
/// whatever the offset. (Other times in the window are accepted too; a pattern cannot follow
/// the clock. A policy keeping some events less than two months is not described exactly.)
fn event_time(this_year: i32, this_month: u8) -> Value {
    let (year, month) = if this_month <= 1 {
        (this_year - 1, 12)
    } else {
        (this_year, this_month - 1)
    };
    json!({
        "type": "string",
        "pattern": format!(
            r"^{year:04}-{month:02}-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,9}})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
        ),
        "description": "RFC 3339; between 1970-01-01 and one day from now, and within the retention of the event's data category (the pattern lists the days always in range: those of the month before this one)",
    })
}

fn count(max: usize, description: &str) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": max, "description": description})
}

/// The schema of a parameter, by the operation's path, its place and its name.
fn parameter_schema(
    policy: &Policy,
    path: &str,
    place: &str,
    name: &str,
) -> Option<Value> {
    let schema = match (place, name) {
        ("path", "subject") | ("query", "subject") => identifier(MAX_SUBJECT_CHARS),
        ("path", "item") => identifier(MAX_ITEM_CHARS),
        ("path", "purpose") => json!({"type": "string", "enum": consent_purposes(policy)}),
        ("path", "id") if path.starts_with("/v1/receipts/") => {
            json!({"type": "string", "minLength": 1, "maxLength": 128})
        }
        ("path", "id") => json!({"type": "string", "minLength": 1}),
        ("query", "n") => count(MAX_ANSWER_ITEMS, "default 10"),
        ("query", "limit") => count(MAX_AUDIT_ENTRIES, "default 100"),
        ("query", "purpose") => json!({"type": "string", "enum": purposes(policy)}),
        ("query", "context.weather") => json!({"type": "string", "enum": WEATHER_NAMES}),
        ("query", "context.country") => identifier(MAX_COUNTRY_CHARS),
        ("query", "since") | ("query", "until") => rfc3339("[0-9]{4}"),
        ("query", "actor") => json!({"type": "string"}),
        ("header", "Idempotency-Key") => json!({
            "type": "string",
            "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
            "pattern": VISIBLE_HEADER,
        }),
        _ => return None,
    };
    Some(schema)
}

fn purposes(policy: &Policy) -> Vec<&str> {
    policy
        .purposes()
        .iter()
        .map(|purpose| purpose.name.as_str())
        .collect()
}

fn consent_purposes(policy: &Policy) -> Vec<&str> {
    policy
        .purposes()
        .iter()
        .filter(|purpose| purpose.requires_consent())
        .map(|purpose| purpose.name.as_str())
        .collect()
}

/// The request bodies, from the engine's limits and the policy.
fn request_schemas(policy: &Policy, max_batch_events: usize) -> Map<String, Value> {
    let now = time::OffsetDateTime::now_utc();
    let (this_year, this_month) = (now.year(), u8::from(now.month()));
    let declared: Vec<EventType> = EventType::ALL
        .into_iter()
        .filter(|event_type| {
            policy
                .category_of_event_type(event_type.as_str())
                .is_some()
        })
        .collect();
    let mut schemas = Map::new();
    schemas.insert(
        "EventBatch".into(),
        json!({
            "type": "object",
            "description": "One bad event rejects the whole batch, naming `events[i].field`; nothing of it is stored.",
            "required": ["events"],
            "additionalProperties": false,
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_batch_events,
                    "items": {"$ref": "#/components/schemas/EventIn"},
                },
            },
        }),
    );
    schemas.insert(
        "EventIn".into(),
        json!({
            "description": "One event; which fields it needs depends on its `type` (event types of the policy).",
            "oneOf": declared
                .iter()
                .map(|event_type| event_schema(*event_type, this_year, this_month))
                .collect::<Vec<_>>(),
        }),
    );
    schemas.insert(
        "ContextIn".into(),
        json!({
            "type": ["object", "null"],
            "description": "Non-personal context.",
            "additionalProperties": false,
            "properties": {
                "weather": nullable(json!({"type": "string", "enum": WEATHER_NAMES})),
                "country": nullable(identifier(MAX_COUNTRY_CHARS)),
            },
        }),
    );
    let attribute_value = json!({
        "type": ["string", "number", "boolean"],
        "maxLength": MAX_ATTRIBUTE_CHARS,
        "pattern": NO_CONTROL,
    });
    let attributes: Map<String, Value> = policy
        .attributes()
        .keys()
        .map(|name| (name.clone(), attribute_value.clone()))
        .collect();
    schemas.insert(
        "AttributesIn".into(),
        json!({
            "type": "object",
            "description": "Attribute names declared in the policy, to values (numbers and booleans are stored as text).",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": attributes,
        }),
    );
    schemas.insert(
        "ConsentIn".into(),
        json!({
            "type": "object",
            "required": ["granted"],
            "additionalProperties": false,
            "properties": {
                "granted": {"type": "boolean"},
                "source": nullable(json!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_SOURCE_CHARS,
                    "pattern": NO_CONTROL,
                    "description": "Where the decision was collected, e.g. `checkout-banner-v3`; `api` when absent.",
                })),
            },
        }),
    );
    let roles: Vec<&str> = policy.roles().iter().map(|role| role.name.as_str()).collect();
    schemas.insert(
        "KeyIn".into(),
        json!({
            "type": "object",
            "required": ["role"],
            "additionalProperties": false,
            "properties": {
                "role": {"type": "string", "enum": roles},
                "label": nullable(json!({"type": "string", "maxLength": MAX_KEY_LABEL_CHARS})),
            },
        }),
    );
    schemas
}

/// One event of `event_type`: the fields it requires and the ones it may carry.
fn event_schema(event_type: EventType, this_year: i32, this_month: u8) -> Value {
    let item = identifier(MAX_ITEM_CHARS);
    let query = json!({"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS});
    let rating = json!({"type": "number", "minimum": 0, "maximum": 10});
    let mut required = vec!["subject", "type", "at"];
    let (item, query, rating) = match event_type {
        EventType::Search => {
            required.push("query");
            (nullable(item), query, nullable(rating))
        }
        EventType::Rating => {
            required.extend(["item", "value"]);
            (item, nullable(query), rating)
        }
        EventType::View | EventType::Cart | EventType::Purchase => {
            required.push("item");
            (item, nullable(query), nullable(rating))
        }
    };
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": {
            "subject": identifier(MAX_SUBJECT_CHARS),
            "type": {"type": "string", "enum": [event_type.as_str()]},
            "item": item,
            "at": event_time(this_year, this_month),
            "quantity": nullable(json!({"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY})),
            "query": query,
            "value": rating,
            "context": {"$ref": "#/components/schemas/ContextIn"},
        },
    })
}
