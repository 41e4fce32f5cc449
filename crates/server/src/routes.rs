//! The handlers of every route in the API contract. Each one parses and checks its input
//! (naming the field at fault), authenticates, and hands the call to the engine, which
//! decides whether it is allowed. Calls that touch storage run on the blocking pool.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use discreet_engine::{AuditQuery, Caller, Engine, EventContext, IdempotencyKey};
use discreet_policy::Action;
use serde_json::{Value, json};

use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult, bad};
use crate::state::AppState;
use crate::wire;

/// A JSON body, parsed by us so that every failure is a problem+json naming the body.
pub struct JsonBody {
    pub value: Value,
    /// The bytes as received (idempotency keys remember their hash).
    pub raw: Bytes,
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let raw =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge {
                            limit_bytes: state.limits.max_body_bytes,
                        }
                    } else {
                        bad("body", "could not be read")
                    }
                })?;
        let value = serde_json::from_slice(&raw)
            .map_err(|error| bad("body", format!("is not valid JSON ({error})")))?;
        Ok(JsonBody { value, raw })
    }
}

fn path<T>(extracted: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    extracted
        .map(|Path(value)| value)
        .map_err(|_| bad("path", "has a segment that is not valid UTF-8 text"))
}

fn query(
    extracted: Result<Query<Vec<(String, String)>>, QueryRejection>,
    known: &[&str],
) -> ApiResult<Vec<(String, String)>> {
    let Query(pairs) = extracted.map_err(|_| bad("query", "is not a valid query string"))?;
    let mut seen = BTreeSet::new();
    for (name, _) in &pairs {
        if !known.contains(&name.as_str()) {
            return Err(bad(
                name,
                format!(
                    "is not a parameter of this route; known: {}",
                    known.join(", ")
                ),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(bad(name, "is given more than once"));
        }
    }
    Ok(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn count_param(pairs: &[(String, String)], default: usize) -> ApiResult<usize> {
    match param(pairs, "n") {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| bad("n", "must be a whole number from 1 to 100")),
    }
}

fn time_param(pairs: &[(String, String)], name: &str) -> ApiResult<Option<i64>> {
    param(pairs, name)
        .map(|text| wire::parse_time(name, text).map_err(ApiError::from))
        .transpose()
}

/// Runs engine work that touches storage on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> discreet_engine::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| {
            ApiError::Engine(discreet_engine::Error::Internal {
                detail: format!("a worker stopped: {error}"),
            })
        })?
        .map_err(ApiError::from)
}

fn gpc_requested(headers: &HeaderMap) -> bool {
    headers
        .get("sec-gpc")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim() == "1")
}

/// Honours `Sec-GPC: 1` for the subjects a request of kind `request` names. The engine
/// refuses it for a role that may not make the request (a request answered 403 changes
/// nothing). True when a withdrawal was recorded.
async fn honour_gpc(
    engine: &Engine,
    caller: &Caller,
    request: Action,
    headers: &HeaderMap,
    subjects: Vec<String>,
) -> ApiResult<bool> {
    if !gpc_requested(headers) || subjects.is_empty() {
        return Ok(false);
    }
    let (engine, caller) = (engine.clone(), caller.clone());
    blocking(move || Ok(engine.honour_gpc(&caller, request, &subjects)? > 0)).await
}

/// Ingest a batch of events.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = crate::openapi::EventBatch, description = "At most 10,000 events; one bad event rejects the batch"),
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key and body are accepted once")),
    responses((status = 200, body = crate::openapi::IngestAnswer), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 413, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn post_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| bad("Idempotency-Key", "must be visible ASCII text"))?
                .to_owned(),
        ),
    };
    // The role and readiness first, as for every call: a refused caller learns nothing of
    // what its body should look like.
    state.engine.check_action(&caller, Action::Ingest)?;
    if !state.engine.is_ready() {
        return Err(ApiError::Engine(discreet_engine::Error::NotReady));
    }
    let events = wire::event_batch(&body.value, state.engine.max_batch_events())?;
    let subjects: Vec<String> = if gpc_requested(&headers) {
        events
            .iter()
            .map(|event| event.subject.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    let (engine, for_engine) = (state.engine.clone(), caller.clone());
    let outcome = blocking(move || {
        let idempotency = idempotency_key
            .as_deref()
            .map(|key| IdempotencyKey::of_body(key, &body.raw));
        engine.ingest(&for_engine, &events, idempotency)
    })
    .await?;
    honour_gpc(&state.engine, &caller, Action::Ingest, &headers, subjects).await?;
    Ok(Json(outcome).into_response())
}

/// Store declared attributes of a subject.
#[utoipa::path(put, path = "/v1/subjects/{subject}/attributes", tag = "subjects",
    params(("subject" = String, Path, description = "The shop's customer id")),
    request_body(content = Object, description = "Attribute names declared in the policy, to values"),
    responses((status = 200, body = crate::openapi::AttributesAnswer), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn put_attributes(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    subject: Result<Path<String>, PathRejection>,
    body: JsonBody,
) -> ApiResult<Response> {
    let subject = path(subject)?;
    state
        .engine
        .check_action(&caller, Action::AttributesWrite)?;
    let attributes = wire::attributes(&body.value)?;
    let engine = state.engine.clone();
    let for_engine = (caller.clone(), subject.clone());
    let updated =
        blocking(move || engine.put_attributes(&for_engine.0, &for_engine.1, &attributes)).await?;
    honour_gpc(
        &state.engine,
        &caller,
        Action::AttributesWrite,
        &headers,
        vec![subject],
    )
    .await?;
    Ok(Json(json!({ "updated": updated })).into_response())
}

/// Grant or withdraw consent for a purpose.
#[utoipa::path(put, path = "/v1/subjects/{subject}/consents/{purpose}", tag = "consents",
    params(("subject" = String, Path, description = "The shop's customer id"), ("purpose" = String, Path, description = "A purpose of the policy that rests on consent")),
    request_body(content = crate::openapi::ConsentBody),
    responses((status = 200, body = crate::openapi::ConsentAnswer), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn put_consent(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    segments: Result<Path<(String, String)>, PathRejection>,
    body: JsonBody,
) -> ApiResult<Response> {
    let (subject, purpose) = path(segments)?;
    let decision = wire::consent(&body.value)?;
    let engine = state.engine.clone();
    let answer = blocking(move || {
        engine.set_consent(
            &caller,
            &subject,
            &purpose,
            decision.granted,
            &decision.source,
        )
    })
    .await?;
    Ok(Json(answer).into_response())
}

/// Every consent purpose's state and the history of decisions.
#[utoipa::path(get, path = "/v1/subjects/{subject}/consents", tag = "consents",
    params(("subject" = String, Path, description = "The shop's customer id")),
    responses((status = 200, body = crate::openapi::ConsentsAnswer), (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_consents(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    subject: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let subject = path(subject)?;
    let ask = || {
        let (engine, caller, subject) = (state.engine.clone(), caller.clone(), subject.clone());
        blocking(move || engine.consents(&caller, &subject))
    };
    // Answered first, so a refused request withdraws nothing; when the signal does withdraw
    // a purpose, the view is read again to show it.
    let mut view = ask().await?;
    let withdrew = honour_gpc(
        &state.engine,
        &caller,
        Action::ConsentsRead,
        &headers,
        vec![subject.clone()],
    )
    .await?;
    if withdrew {
        view = ask().await?;
    }
    Ok(Json(view).into_response())
}

/// Recommendations for a subject: personal with consent, contextual popularity without.
#[utoipa::path(get, path = "/v1/subjects/{subject}/recommendations", tag = "recommendations",
    params(("subject" = String, Path, description = "The shop's customer id"),
        ("n" = Option<usize>, Query, description = "1 to 100, default 10"),
        ("purpose" = Option<String>, Query, description = "Default `personalization`"),
        ("context.weather" = Option<String>, Query, description = "clear, cloudy, rain, snow, hot or cold"),
        ("context.country" = Option<String>, Query, description = "Country name")),
    responses((status = 200, body = crate::openapi::RecommendationsAnswer), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_recommendations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    subject: Result<Path<String>, PathRejection>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let subject = path(subject)?;
    let pairs = query(
        pairs,
        &["n", "purpose", "context.weather", "context.country"],
    )?;
    let n = count_param(&pairs, 10)?;
    let purpose = param(&pairs, "purpose").unwrap_or("personalization");
    let context = EventContext {
        weather: param(&pairs, "context.weather").map(str::to_owned),
        country: param(&pairs, "context.country").map(str::to_owned),
    };
    let purpose = purpose.to_owned();
    let ask = || {
        let engine = state.engine.clone();
        let (caller, subject, purpose, context) = (
            caller.clone(),
            subject.clone(),
            purpose.clone(),
            context.clone(),
        );
        blocking(move || engine.recommend(&caller, &subject, &purpose, n, &context))
    };
    // Checked and answered first, so a refused request withdraws nothing; when the signal
    // does withdraw a purpose, the answer is made again under the new consents.
    let mut answer = ask().await?;
    let withdrew = honour_gpc(
        &state.engine,
        &caller,
        Action::Recommendations,
        &headers,
        vec![subject.clone()],
    )
    .await?;
    if withdrew {
        answer = ask().await?;
    }
    Ok(Json(answer).into_response())
}

/// Items similar to an item, from aggregated co-occurrence only.
#[utoipa::path(get, path = "/v1/items/{item}/similar", tag = "recommendations",
    params(("item" = String, Path, description = "Item code"), ("n" = Option<usize>, Query, description = "1 to 100, default 10")),
    responses((status = 200, body = crate::openapi::SimilarAnswer), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_similar(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    item: Result<Path<String>, PathRejection>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let item = path(item)?;
    let pairs = query(pairs, &["n"])?;
    let n = count_param(&pairs, 10)?;
    let engine = state.engine.clone();
    let items = blocking(move || engine.similar(&caller, &item, n)).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// Everything discreet holds or derived about a subject (GDPR Art. 15 and 20).
#[utoipa::path(get, path = "/v1/subjects/{subject}/export", tag = "subject rights",
    params(("subject" = String, Path, description = "The shop's customer id")),
    responses((status = 200, body = Object, description = "subject, attributes, events, consents, derived, purposes, categories, recipients, retention, rights, source, automated_decisions, access_log"),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    subject: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let subject = path(subject)?;
    let engine = state.engine.clone();
    let export = blocking(move || engine.export(&caller, &subject)).await?;
    Ok(Json(export).into_response())
}

/// Forget a subject everywhere; answers with a signed receipt when complete.
#[utoipa::path(delete, path = "/v1/subjects/{subject}", tag = "subject rights",
    params(("subject" = String, Path, description = "The shop's customer id")),
    responses((status = 200, body = crate::openapi::ReceiptAnswer), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn delete_subject(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    subject: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let subject = path(subject)?;
    let engine = state.engine.clone();
    let receipt = blocking(move || engine.forget(&caller, &subject)).await?;
    Ok(Json(json!({ "receipt": receipt })).into_response())
}

/// A stored forget receipt.
#[utoipa::path(get, path = "/v1/receipts/{id}", tag = "subject rights",
    params(("id" = String, Path, description = "Receipt id")),
    responses((status = 200, body = crate::openapi::ReceiptAnswer), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_receipt(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = path(id)?;
    let engine = state.engine.clone();
    let receipt = blocking(move || engine.receipt(&caller, &id)).await?;
    Ok(Json(json!({ "receipt": receipt })).into_response())
}

/// The public key that verifies receipts (no key needed).
#[utoipa::path(get, path = "/v1/receipts/public-key", tag = "subject rights",
    responses((status = 200, body = crate::openapi::PublicKeyAnswer)))]
pub async fn get_public_key(State(state): State<AppState>) -> Response {
    Json(state.engine.public_key()).into_response()
}

/// Ledger entries, newest first (subjects appear as tokens).
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(("subject" = Option<String>, Query, description = "Customer id or subject token"),
        ("actor" = Option<String>, Query, description = "API key id"),
        ("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("until" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("limit" = Option<usize>, Query, description = "1 to 10,000, default 100")),
    responses((status = 200, body = crate::openapi::AuditAnswer), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_audit(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let pairs = query(pairs, &["subject", "actor", "since", "until", "limit"])?;
    let limit = match param(&pairs, "limit") {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| bad("limit", "must be a whole number from 1 to 10000"))?,
    };
    let audit_query = AuditQuery {
        subject: param(&pairs, "subject").map(str::to_owned),
        actor: param(&pairs, "actor").map(str::to_owned),
        since: time_param(&pairs, "since")?,
        until: time_param(&pairs, "until")?,
        limit,
    };
    let engine = state.engine.clone();
    let records = blocking(move || engine.audit(&caller, &audit_query)).await?;
    let entries: Vec<Value> = records
        .into_iter()
        .map(|record| {
            json!({
                "seq": record.seq,
                "at": discreet_vault::rfc3339(record.entry.at),
                "actor": record.entry.actor,
                "action": record.entry.action,
                "subject_token": record.entry.subject_token,
                "purpose": record.entry.purpose,
                "categories": record.entry.categories,
                "outcome": record.entry.outcome,
                "detail": record.entry.detail,
                "hash": discreet_vault::crypto::to_hex(&record.hash),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })).into_response())
}

/// Re-walks the ledger chain and its signed checkpoints.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = crate::openapi::VerifyAnswer), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_audit_verify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    let engine = state.engine.clone();
    let verification = blocking(move || engine.verify_ledger(&caller)).await?;
    Ok(Json(verification).into_response())
}

/// The policy in force.
#[utoipa::path(get, path = "/v1/policy", tag = "policy",
    responses((status = 200, body = Object), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    Ok(Json(state.engine.policy_document(&caller)?).into_response())
}

/// Records of processing (GDPR Art. 30).
#[utoipa::path(get, path = "/v1/policy/records", tag = "policy",
    responses((status = 200, body = Object), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_records(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    Ok(Json(state.engine.records(&caller)?).into_response())
}

/// Issue an API key (admin); the secret is in this answer only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys",
    request_body(content = crate::openapi::KeyRequest),
    responses((status = 200, body = crate::openapi::KeyAnswer), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn post_key(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: JsonBody,
) -> ApiResult<Response> {
    let request = wire::key_request(&body.value)?;
    let engine = state.engine.clone();
    let issued =
        blocking(move || engine.create_api_key(&caller, &request.role, &request.label)).await?;
    Ok(
        Json(json!({ "id": issued.id, "role": issued.role, "secret": issued.secret.as_str() }))
            .into_response(),
    )
}

/// Every API key (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = Object), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_keys(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    let keys: Vec<Value> = state
        .engine
        .api_keys(&caller)?
        .into_iter()
        .map(|key| {
            json!({
                "id": key.id,
                "role": key.role,
                "label": key.label,
                "created_at": discreet_vault::rfc3339(key.created_at),
                "revoked_at": key.revoked_at.map(discreet_vault::rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Object), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
pub async fn delete_key(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = path(id)?;
    let engine = state.engine.clone();
    let revoked = id.clone();
    blocking(move || engine.revoke_api_key(&caller, &revoked)).await?;
    Ok(Json(json!({ "revoked": id })).into_response())
}

/// 200 once the models are rebuilt and the server accepts traffic; 503 before.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Object), (status = 503, body = Object)))]
pub async fn get_healthz(State(state): State<AppState>) -> Response {
    if state.engine.is_ready() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting" })),
        )
            .into_response()
    }
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&state.engine.figures());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The OpenAPI document of this API.
pub async fn get_openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

/// Problem answer for paths no route matches.
pub async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Problem answer for a method a route does not answer.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
