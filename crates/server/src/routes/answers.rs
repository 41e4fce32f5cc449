//! Recommendations (personal with consent, contextual without) and similar items.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use discreet_engine::{EventContext, ItemFilter};
use discreet_policy::Action;
use serde_json::json;

use super::{blocking, count_param, honour_gpc, param, params, path, query_repeating};
use crate::auth::Authenticated;
use crate::error::{ApiResult, bad};
use crate::state::AppState;

/// Recommendations for a subject: personal with consent, contextual popularity without.
#[utoipa::path(get, path = "/v1/subjects/{subject}/recommendations", tag = "recommendations",
    params(("subject" = String, Path, description = "The shop's customer id"),
        ("n" = Option<usize>, Query, description = "1 to 100, default 10"),
        ("purpose" = Option<String>, Query, description = "Default `personalization`"),
        ("context.weather" = Option<String>, Query, description = "clear, cloudy, rain, snow, hot or cold"),
        ("context.country" = Option<String>, Query, description = "Country name"),
        ("category" = Option<Vec<String>>, Query, description = "Only items in any of these categories (a parent covers its children); repeatable; an undeclared category is refused"),
        ("exclude" = Option<Vec<String>>, Query, description = "Never these items; repeatable"),
        ("min_price" = Option<f64>, Query, description = "Only items priced at least this"),
        ("max_price" = Option<f64>, Query, description = "Only items priced at most this"),
        ("include_unavailable" = Option<bool>, Query, description = "Unavailable items too (default false)")),
    responses((status = 200, body = crate::openapi::RecommendationsAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::NotReady)),
    security(("api_key" = [])))]
pub async fn get_recommendations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    subject: Result<Path<String>, PathRejection>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let subject = path(subject)?;
    let pairs = query_repeating(
        pairs,
        &[
            "n",
            "purpose",
            "context.weather",
            "context.country",
            "category",
            "exclude",
            "min_price",
            "max_price",
            "include_unavailable",
        ],
        &FILTER_REPEATABLE,
    )?;
    let n = count_param(&pairs, 10)?;
    let filter = item_filter(&pairs)?;
    let purpose = param(&pairs, "purpose").unwrap_or("personalization");
    let context = EventContext {
        weather: param(&pairs, "context.weather").map(str::to_owned),
        country: param(&pairs, "context.country").map(str::to_owned),
    };
    let purpose = purpose.to_owned();
    let ask = || {
        let engine = state.engine.clone();
        let (caller, subject, purpose, context, filter) = (
            caller.clone(),
            subject.clone(),
            purpose.clone(),
            context.clone(),
            filter.clone(),
        );
        blocking(move || {
            engine.recommend_filtered(&caller, &subject, &purpose, n, &context, &filter)
        })
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
    params(("item" = String, Path, description = "Item code"), ("n" = Option<usize>, Query, description = "1 to 100, default 10"),
        ("category" = Option<Vec<String>>, Query, description = "Only items in any of these categories (a parent covers its children); repeatable; an undeclared category is refused"),
        ("exclude" = Option<Vec<String>>, Query, description = "Never these items; repeatable"),
        ("min_price" = Option<f64>, Query, description = "Only items priced at least this"),
        ("max_price" = Option<f64>, Query, description = "Only items priced at most this"),
        ("include_unavailable" = Option<bool>, Query, description = "Unavailable items too (default false)")),
    responses((status = 200, body = crate::openapi::SimilarAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::NotReady)),
    security(("api_key" = [])))]
pub async fn get_similar(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    item: Result<Path<String>, PathRejection>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let item = path(item)?;
    let pairs = query_repeating(
        pairs,
        &[
            "n",
            "category",
            "exclude",
            "min_price",
            "max_price",
            "include_unavailable",
        ],
        &FILTER_REPEATABLE,
    )?;
    let n = count_param(&pairs, 10)?;
    let filter = item_filter(&pairs)?;
    let engine = state.engine.clone();
    let items = blocking(move || engine.similar_filtered(&caller, &item, n, &filter)).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// The filter parameters that may be given more than once.
const FILTER_REPEATABLE: [&str; 2] = ["category", "exclude"];

/// The item filter a request's query asks for (shapes only; the engine checks the values).
fn item_filter(pairs: &[(String, String)]) -> ApiResult<ItemFilter> {
    let price = |name: &str| {
        param(pairs, name)
            .map(|text| {
                text.parse::<f64>()
                    .map_err(|_| bad(name, "must be a number from 0 to 1000000000"))
            })
            .transpose()
    };
    let include_unavailable = match param(pairs, "include_unavailable") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad("include_unavailable", "must be true or false")),
    };
    Ok(ItemFilter {
        categories: params(pairs, "category"),
        exclude: params(pairs, "exclude"),
        min_price: price("min_price")?,
        max_price: price("max_price")?,
        include_unavailable,
    })
}
