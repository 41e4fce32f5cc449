//! What operators and tools read: health, metrics, the OpenAPI document, and the answers
//! for routes and methods that do not exist.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::metrics::Scope as MetricsScope;
use crate::state::AppState;

/// 200 once the models are rebuilt and the server accepts traffic; 503 before.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = crate::openapi::HealthAnswer), (status = 503, body = crate::openapi::HealthAnswer)))]
pub async fn get_healthz(State(state): State<AppState>) -> Response {
    let ready = state.engine.is_ready();
    let mut answer = json!({
        "status": if ready { "ready" } else { "starting" },
        "ready": ready,
    });
    // With several nodes on PostgreSQL: which node this is and how far behind the others'
    // changes it is (a node catching up answers 503 until it has).
    if let Some(node) = state.engine.node_health() {
        answer["node"] = json!(node.node);
        answer["behind"] = json!(node.behind);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(answer)).into_response()
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    // It needs no key, so it shows operational figures only, and none at all when a
    // metrics listener of its own serves them.
    if state.metrics_elsewhere {
        return ApiError::RouteNotFound.into_response();
    }
    metrics_text(&state, MetricsScope::Operational)
}

/// Prometheus text metrics with every figure (the metrics listener's only route).
pub async fn get_all_metrics(State(state): State<AppState>) -> Response {
    metrics_text(&state, MetricsScope::Everything)
}

fn metrics_text(state: &AppState, scope: MetricsScope) -> Response {
    let text = state.metrics.render(&state.engine.figures(), scope);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The OpenAPI document of this API, for the policy and limits in force.
pub async fn get_openapi(State(state): State<AppState>) -> Response {
    let engine = &state.engine;
    Json(crate::openapi::document(
        engine.policy(),
        engine.max_batch_events(),
        &engine.declared_categories(),
    ))
    .into_response()
}

/// Problem answer for paths no route matches.
pub async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Problem answer for a method a route does not answer.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
