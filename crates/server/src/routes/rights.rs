//! The subject's rights: the export, the forget and its receipts.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{blocking, path};
use crate::auth::Authenticated;
use crate::error::ApiResult;
use crate::state::AppState;

/// Everything discreet holds or derived about a subject (GDPR Art. 15 and 20).
#[utoipa::path(get, path = "/v1/subjects/{subject}/export", tag = "subject rights",
    params(("subject" = String, Path, description = "The shop's customer id")),
    responses((status = 200, body = Object, description = "subject, attributes, events, consents, derived, purposes, categories, recipients, retention, rights, source, automated_decisions, access_log"),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 429, response = crate::openapi::TooManyRequests)),
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
    responses((status = 200, body = crate::openapi::ReceiptAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::NotReady)),
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
    responses((status = 200, body = crate::openapi::ReceiptAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests)),
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
