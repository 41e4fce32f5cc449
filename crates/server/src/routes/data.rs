//! Writes of what customers do, declare and decide: event batches, attributes and consents.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use discreet_engine::IdempotencyKey;
use discreet_policy::Action;
use serde_json::json;

use super::{JsonBody, blocking, gpc_requested, honour_gpc, path};
use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult, bad};
use crate::state::AppState;
use crate::wire;

/// Ingest a batch of events.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = ref("#/components/schemas/EventBatch"), description = "At most 10,000 events; one bad event rejects the batch"),
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key and body are accepted once")),
    responses((status = 200, body = crate::openapi::IngestAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::NotReady)),
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
    request_body(content = ref("#/components/schemas/AttributesIn"), description = "Attribute names declared in the policy, to values"),
    responses((status = 200, body = crate::openapi::AttributesAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::NotReady)),
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
    request_body(content = ref("#/components/schemas/ConsentIn")),
    responses((status = 200, body = crate::openapi::ConsentAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::NotReady)),
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
    responses((status = 200, body = crate::openapi::ConsentsAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 429, response = crate::openapi::TooManyRequests)),
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
