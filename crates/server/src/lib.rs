//! discreet-server: the HTTP API (axum). It authenticates callers, parses and checks
//! input, and maps engine answers and errors to the contract of `API.md`; every decision
//! about whether a use is allowed is the engine's. It never logs a path, a body or a query
//! (they carry customer ids and personal values): logs and metrics name route templates.

mod auth;
mod client;
mod connections;
mod error;
mod metrics;
mod openapi;
pub mod pages;
mod routes;
mod state;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth::{
    ADDRESS_BLOCK_AFTER, ADDRESS_SLOW_AFTER, AuthGuard, BLOCK_AFTER, BLOCK_FOR, MAX_TRACKED,
    SLOW_AFTER,
};
pub use client::{Cidr, CidrError, TrustedProxies};
pub use connections::{ConnectionFigures, ConnectionSettings};
pub use error::{Code, PROBLEM_TYPE_BASE, Problem};
pub use metrics::{Metrics, Scope as MetricsScope, method_label};
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
        .route("/v1/items", post(routes::post_items))
        .route(
            "/v1/items/{item}",
            put(routes::put_item).get(routes::get_item),
        )
        .route("/v1/items/{item}/similar", get(routes::get_similar))
        .route("/v1/receipts/public-key", get(routes::get_public_key))
        .route("/v1/receipts/{id}", get(routes::get_receipt))
        .route("/v1/audit", get(routes::get_audit))
        .route("/v1/audit/verify", get(routes::get_audit_verify))
        .route("/v1/policy", get(routes::get_policy))
        .route("/v1/policy/records", get(routes::get_records))
        .route("/v1/keys", post(routes::post_key).get(routes::get_keys))
        .route("/v1/keys/{id}", delete(routes::delete_key))
        .route(
            "/v1/incidents",
            post(routes::post_incident).get(routes::get_incidents),
        )
        .route("/v1/incidents/{id}", get(routes::get_incident))
        .route(
            "/v1/incidents/{id}/report",
            get(routes::get_incident_report),
        )
        .route(
            "/v1/incidents/{id}/subjects",
            get(routes::get_incident_subjects),
        )
        .route(
            "/v1/incidents/{id}/contain",
            post(routes::post_incident_contain),
        )
        .route("/v1/portal/sessions", post(pages::post_portal_session))
        .route("/healthz", get(routes::get_healthz))
        .route("/metrics", get(routes::get_metrics))
        .route("/openapi.json", get(routes::get_openapi))
        .merge(pages::routes())
        .fallback(routes::route_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_time_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(pages::page_headers))
        .with_state(state)
}

/// The router of the metrics listener: `/metrics` with every figure, business ones too.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(routes::get_all_metrics))
        .fallback(routes::route_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_time_limit,
        ))
        .with_state(state)
}

/// Answers 503 `request_timeout` when a request (its body upload included) takes longer
/// than `Limits::request_timeout`. Work already handed to the blocking pool still
/// finishes; the answer says a write may have taken effect.
async fn request_time_limit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::RequestTimeout {
            limit_secs: limit.as_secs_f64(),
        }
        .into_response(),
    }
}

/// Where a server listens: the API, and optionally `/metrics` on an address of its own.
pub struct Listeners {
    pub api: TcpListener,
    /// With it, the API's listener answers `/metrics` 404 and this one serves every figure.
    pub metrics: Option<TcpListener>,
}

/// Connections the metrics listener serves at once.
const METRICS_MAX_CONNECTIONS: usize = 64;

/// Serves the API (and the metrics listener) until `shutdown` completes, then stops
/// accepting, lets open requests finish for at most `settings.shutdown_grace`, and closes
/// what is left, so the caller can always flush the ledger afterwards.
pub async fn serve(
    listeners: Listeners,
    mut state: AppState,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.metrics_elsewhere = listeners.metrics.is_some();
    let figures = state.metrics.connections.clone();
    let api = router(state.clone());
    let Some(metrics_listener) = listeners.metrics else {
        return connections::serve_router(listeners.api, api, settings, figures, shutdown).await;
    };
    let (stop, stopped) = watch::channel(false);
    let stop_when = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stopping| *stopping).await;
    };
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let metrics_settings = ConnectionSettings {
        max_connections: METRICS_MAX_CONNECTIONS.min(settings.max_connections),
        ..settings
    };
    let (api_served, metrics_served, ()) = tokio::join!(
        connections::serve_router(
            listeners.api,
            api,
            settings,
            figures,
            stop_when(stopped.clone())
        ),
        connections::serve_router(
            metrics_listener,
            metrics_router(state),
            metrics_settings,
            Arc::new(ConnectionFigures::default()),
            stop_when(stopped)
        ),
        signal,
    );
    api_served.and(metrics_served)
}
