//! The item catalogue: declare one item, a batch (all or nothing), read one back. Items
//! are not personal data; the role needs the `catalogue` action.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use discreet_policy::Action;
use serde_json::json;

use super::{JsonBody, blocking, path};
use crate::auth::Authenticated;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::wire;

/// Declare or replace one item.
#[utoipa::path(put, path = "/v1/items/{item}", tag = "catalogue",
    params(("item" = String, Path, description = "Item code")),
    request_body(content = ref("#/components/schemas/ItemIn"), description = "Only `title` is required; an item is available unless it says otherwise"),
    responses((status = 200, body = crate::openapi::ItemUpsertAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn put_item(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    item: Result<Path<String>, PathRejection>,
    body: JsonBody,
) -> ApiResult<Response> {
    let item = path(item)?;
    state.engine.check_action(&caller, Action::Catalogue)?;
    let input = wire::item("", Some(&item), &body.value)?;
    let engine = state.engine.clone();
    let answer = blocking(move || engine.upsert_item(&caller, input)).await?;
    Ok(Json(answer).into_response())
}

/// Declare or replace a batch of items, all or nothing.
#[utoipa::path(post, path = "/v1/items", tag = "catalogue",
    request_body(content = ref("#/components/schemas/ItemBatch"), description = "At most 10,000 items; one bad item rejects the batch"),
    responses((status = 200, body = crate::openapi::ItemBatchAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn post_items(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: JsonBody,
) -> ApiResult<Response> {
    state.engine.check_action(&caller, Action::Catalogue)?;
    let inputs = wire::item_batch(&body.value)?;
    let engine = state.engine.clone();
    let upserted = blocking(move || engine.upsert_items(&caller, inputs)).await?;
    Ok(Json(json!({ "upserted": upserted })).into_response())
}

/// A declared item.
#[utoipa::path(get, path = "/v1/items/{item}", tag = "catalogue",
    params(("item" = String, Path, description = "Item code")),
    responses((status = 200, body = crate::openapi::ItemAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_item(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    item: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let item = path(item)?;
    let engine = state.engine.clone();
    let answer = blocking(move || engine.item(&caller, &item)).await?;
    Ok(Json(answer).into_response())
}
