//! Incidents and the breach-impact report (GDPR Art. 33): create, list, read, the Markdown
//! draft, the affected customers for Art. 34 notices, containment.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{JsonBody, blocking, path};
use crate::auth::Authenticated;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::wire;
use crate::wire::incident_json;

/// Open an incident: its impact is computed from the verified ledger, stored and signed.
#[utoipa::path(post, path = "/v1/incidents", tag = "incidents",
    request_body(content = ref("#/components/schemas/IncidentIn")),
    responses((status = 201, body = crate::openapi::IncidentAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn post_incident(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: JsonBody,
) -> ApiResult<Response> {
    let request = wire::incident_request(&body.value)?;
    let engine = state.engine.clone();
    let incident = blocking(move || engine.create_incident(&caller, request)).await?;
    Ok((StatusCode::CREATED, Json(incident_json(&incident))).into_response())
}

/// Every incident, newest first.
#[utoipa::path(get, path = "/v1/incidents", tag = "incidents",
    responses((status = 200, body = crate::openapi::IncidentsAnswer),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_incidents(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    let engine = state.engine.clone();
    let list = blocking(move || engine.incidents(&caller)).await?;
    let incidents: Vec<Value> = list.incidents.iter().map(incident_json).collect();
    Ok(Json(json!({ "incidents": incidents, "unreadable": list.unreadable })).into_response())
}

/// One incident.
#[utoipa::path(get, path = "/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = crate::openapi::IncidentAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_incident(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = path(id)?;
    let engine = state.engine.clone();
    let incident = blocking(move || engine.incident(&caller, &id)).await?;
    Ok(Json(incident_json(&incident)).into_response())
}

/// The Art. 33(3) draft notification, in Markdown.
#[utoipa::path(get, path = "/v1/incidents/{id}/report", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, content_type = "text/markdown", body = String),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_incident_report(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = path(id)?;
    let engine = state.engine.clone();
    let report = blocking(move || engine.incident_report(&caller, &id)).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        report,
    )
        .into_response())
}

/// The affected customers' ids, for Art. 34 notices (itself a ledger entry).
#[utoipa::path(get, path = "/v1/incidents/{id}/subjects", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = crate::openapi::IncidentSubjectsAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_incident_subjects(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = path(id)?;
    let engine = state.engine.clone();
    let subjects = blocking(move || engine.incident_subjects(&caller, &id)).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "subjects": subjects.subjects, "forgotten": subjects.forgotten })),
    )
        .into_response())
}

/// Contain: revoke the incident's key, record the KEK's rotation.
#[utoipa::path(post, path = "/v1/incidents/{id}/contain", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = ref("#/components/schemas/ContainIn")),
    responses((status = 200, body = crate::openapi::IncidentAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn post_incident_contain(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
    body: JsonBody,
) -> ApiResult<Response> {
    let id = path(id)?;
    let request = wire::contain_request(&body.value)?;
    let engine = state.engine.clone();
    let incident = blocking(move || engine.contain_incident(&caller, &id, request)).await?;
    Ok(Json(incident_json(&incident)).into_response())
}
