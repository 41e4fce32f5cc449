//! API keys: issue (the secret shown once), list, revoke.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{JsonBody, blocking, path};
use crate::auth::Authenticated;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::wire;

/// Issue an API key (admin); the secret is in this answer only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys",
    request_body(content = ref("#/components/schemas/KeyIn")),
    responses((status = 200, body = crate::openapi::KeyAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests)),
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
    responses((status = 200, body = crate::openapi::KeysAnswer),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests)),
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
    responses((status = 200, body = crate::openapi::RevokedAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests)),
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
