//! discreet-server: the HTTP API (axum). It authenticates callers, parses and checks
//! input, and maps engine answers and errors to the contract of `API.md`; every decision
//! about whether a use is allowed is the engine's. It never logs a path, a body or a query
//! (they carry customer ids and personal values): logs and metrics name route templates.

mod auth;
mod error;
mod metrics;
mod openapi;
mod routes;
mod state;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};

pub use auth::{AuthGuard, BLOCK_AFTER, BLOCK_FOR, SLOW_AFTER};
pub use error::{Code, PROBLEM_TYPE_BASE, Problem};
pub use metrics::Metrics;
pub use openapi::document as openapi_document;
pub use state::{AppState, Limits};

/// The router of every route in the API contract.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/events", post(routes::post_events))
        .route(
            "/v1/subjects/{subject}/attributes",
            put(routes::put_attributes),
        )
        .route(
            "/v1/subjects/{subject}/consents/{purpose}",
            put(routes::put_consent),
        )
        .route("/v1/subjects/{subject}/consents", get(routes::get_consents))
        .route(
            "/v1/subjects/{subject}/recommendations",
            get(routes::get_recommendations),
        )
        .route("/v1/subjects/{subject}/export", get(routes::get_export))
        .route("/v1/subjects/{subject}", delete(routes::delete_subject))
        .route("/v1/items/{item}/similar", get(routes::get_similar))
        .route("/v1/receipts/public-key", get(routes::get_public_key))
        .route("/v1/receipts/{id}", get(routes::get_receipt))
        .route("/v1/audit", get(routes::get_audit))
        .route("/v1/audit/verify", get(routes::get_audit_verify))
        .route("/v1/policy", get(routes::get_policy))
        .route("/v1/policy/records", get(routes::get_records))
        .route("/v1/keys", post(routes::post_key).get(routes::get_keys))
        .route("/v1/keys/{id}", delete(routes::delete_key))
        .route("/healthz", get(routes::get_healthz))
        .route("/metrics", get(routes::get_metrics))
        .route("/openapi.json", get(routes::get_openapi))
        .fallback(routes::route_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
