//! Prometheus text metrics. Labels come from fixed sets: route templates
//! (`/v1/subjects/{subject}/export`, or `unmatched`), the standard methods (any other is
//! `other`) and status codes — never a path with a customer id in it, never a personal
//! value, never a name a caller chose, so no caller can grow the exposition.
//!
//! Two scopes: the operational figures (requests, latency, connections, readiness, ledger
//! backlog, failed authentications) and the business figures (catalogue, subjects,
//! consents, events, forgets, retention). The API's listener shows only the operational
//! ones (it needs no key); every figure is served on the metrics listener.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use discreet_engine::EngineFigures;

use crate::connections::ConnectionFigures;
use crate::state::AppState;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    total: u64,
    sum: f64,
}

/// Which figures an exposition holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Operational figures only (the API's listener).
    Operational,
    /// Operational and business figures (the metrics listener).
    Everything,
}

/// The label of a request's method: a standard method's name, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Request counters and latency histograms per route, and the API listener's connections.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    auth_failures: AtomicU64,
    /// The API listener's connections (the server updates them).
    pub connections: Arc<ConnectionFigures>,
}

impl Metrics {
    /// Counts a failed authentication.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((route.to_owned(), method, status))
                .or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let histogram = latency.entry(route.to_owned()).or_default();
            for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *count += 1;
                }
            }
            histogram.total += 1;
            histogram.sum += seconds;
        }
    }

    /// The Prometheus text exposition of `scope`.
    pub fn render(&self, figures: &EngineFigures, scope: Scope) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP discreet_http_requests_total HTTP requests answered."
        );
        let _ = writeln!(out, "# TYPE discreet_http_requests_total counter");
        if let Ok(requests) = self.requests.lock() {
            for ((route, method, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "discreet_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP discreet_http_request_duration_seconds Time to answer."
        );
        let _ = writeln!(
            out,
            "# TYPE discreet_http_request_duration_seconds histogram"
        );
        if let Ok(latency) = self.latency.lock() {
            for (route, histogram) in latency.iter() {
                for (count, bound) in histogram.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(
                        out,
                        "discreet_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "discreet_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\ndiscreet_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\ndiscreet_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    histogram.total, histogram.sum, histogram.total
                );
            }
        }
        let connections = &self.connections;
        let mut gauges: Vec<(&str, &str, u64, &str)> = vec![
            (
                "discreet_ready",
                "1 once the models are rebuilt.",
                figures.ready as u64,
                "gauge",
            ),
            (
                "discreet_ledger_entries_pending",
                "Read entries waiting to reach the ledger.",
                figures.access_entries_pending,
                "gauge",
            ),
            (
                "discreet_http_connections_open",
                "Connections open on the API listener.",
                connections.open(),
                "gauge",
            ),
            (
                "discreet_http_connections_peak",
                "Most connections open at once on the API listener since start.",
                connections.peak(),
                "gauge",
            ),
            (
                "discreet_http_connections_accepted_total",
                "Connections accepted on the API listener.",
                connections.accepted(),
                "counter",
            ),
            (
                "discreet_http_connections_timed_out_total",
                "Connections closed because a request head was late or they sat idle.",
                connections.timed_out(),
                "counter",
            ),
        ];
        if scope == Scope::Everything {
            gauges.extend([
                (
                    "discreet_model_items",
                    "Items in the catalogue.",
                    figures.items,
                    "gauge",
                ),
                (
                    "discreet_declared_items",
                    "Items declared with a title (PUT or POST /v1/items).",
                    figures.declared_items,
                    "gauge",
                ),
                (
                    "discreet_model_subjects",
                    "Subjects the models hold.",
                    figures.modelled_subjects,
                    "gauge",
                ),
                (
                    "discreet_model_events",
                    "Events the personal models hold.",
                    figures.modelled_events,
                    "gauge",
                ),
                (
                    "discreet_consented_subjects",
                    "Subjects whose personalization consent holds.",
                    figures.consented_subjects,
                    "gauge",
                ),
                (
                    "discreet_events_accepted_total",
                    "Events stored since start.",
                    figures.events_accepted,
                    "counter",
                ),
                (
                    "discreet_forgets_completed_total",
                    "Forgets completed since start.",
                    figures.forgets_completed,
                    "counter",
                ),
                (
                    "discreet_retention_erased_rows_total",
                    "Rows erased by retention since start.",
                    figures.retention_erased_rows,
                    "counter",
                ),
            ]);
        }
        for (name, help, value, kind) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP discreet_auth_failures_total Failed authentications.\n# TYPE discreet_auth_failures_total counter\ndiscreet_auth_failures_total {}",
            self.auth_failures.load(Ordering::Relaxed)
        );
        out
    }
}

/// Times every request and counts it by route template and method label; logs the same,
/// never the path.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe(&route, method, status, elapsed.as_secs_f64());
    tracing::debug!(%method, %route, status, micros = elapsed.as_micros() as u64, "request");
    response
}
