//! Prometheus text metrics. Labels are route templates (`/v1/subjects/{subject}/export`),
//! methods and status codes — never a path with a customer id in it, never a personal value.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use discreet_engine::EngineFigures;

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

/// Request counters and latency histograms per route.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    auth_failures: AtomicU64,
}

impl Metrics {
    /// Counts a failed authentication.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((route.to_owned(), method.to_owned(), status))
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

    /// The Prometheus text exposition.
    pub fn render(&self, figures: &EngineFigures) -> String {
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
        let gauges: [(&str, &str, u64, &str); 9] = [
            (
                "discreet_ready",
                "1 once the models are rebuilt.",
                figures.ready as u64,
                "gauge",
            ),
            (
                "discreet_model_items",
                "Items in the catalogue.",
                figures.items,
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
            (
                "discreet_ledger_entries_pending",
                "Read entries waiting to reach the ledger.",
                figures.access_entries_pending,
                "gauge",
            ),
        ];
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

/// Times every request and counts it by route template; logs the same, never the path.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe(&route, &method, status, elapsed.as_secs_f64());
    tracing::debug!(%method, %route, status, micros = elapsed.as_micros() as u64, "request");
    response
}
