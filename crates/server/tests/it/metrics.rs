//! `/metrics`: labels from fixed sets only, operational figures on the API's listener (it
//! needs no key), every figure on the metrics listener, and a 404 on the API's listener
//! once a metrics listener serves them.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{CUSTOMER, Req, TestApp, send};

fn series_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| line.starts_with("discreet_http_requests_total{"))
        .collect()
}

/// Regression: the `method` label took any method name, so 2,000 made-up methods grew the
/// exposition to megabytes. Now every method outside the standard set is `other`, and the
/// exposition does not grow with them.
#[tokio::test]
async fn odd_methods_do_not_grow_the_metrics() {
    let t = TestApp::new();
    let odd = |number: usize| Method::from_bytes(format!("M{number:04}").as_bytes()).unwrap();
    t.send(Req::new(odd(0), "/v1/policy").key(&t.admin)).await;
    let first = t.send(Req::get("/metrics")).await.text();
    for number in 1..=2_000 {
        let reply = t.send(Req::new(odd(number), "/v1/policy")).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = t.send(Req::get("/metrics")).await.text();
    assert!(
        !after.contains("M0001") && !after.contains("M2000"),
        "{after}"
    );
    assert!(
        after.contains(r#"route="/v1/policy",method="other",status="405"} 2001"#),
        "{after}"
    );
    // The same series as after the first odd method (one more: `/metrics` itself).
    assert_eq!(
        series_lines(&after).len(),
        series_lines(&first).len() + 1,
        "{after}"
    );
    assert!(after.len() < 16 * 1024, "{} bytes", after.len());
}

/// The API's `/metrics` needs no key, so it shows operational figures only; business
/// figures (catalogue, subjects, consents, events, forgets, retention) are served on the
/// metrics listener, and with one the API's `/metrics` is not served at all.
#[tokio::test]
async fn business_figures_are_only_on_the_metrics_listener() {
    let t = TestApp::new();
    t.seed_shop();
    t.send(
        Req::post("/v1/events")
            .key(&t.storefront)
            .json(&json!({"events": [crate::support::purchase(CUSTOMER, "C", 1)]})),
    )
    .await
    .ok();
    let business = [
        "discreet_model_items",
        "discreet_declared_items",
        "discreet_model_subjects",
        "discreet_model_events",
        "discreet_consented_subjects",
        "discreet_events_accepted_total",
        "discreet_forgets_completed_total",
        "discreet_retention_erased_rows_total",
    ];
    let operational = [
        "discreet_ready 1",
        "discreet_ledger_entries_pending",
        "discreet_auth_failures_total",
        "discreet_http_connections_open",
        "discreet_http_requests_total{",
    ];

    let public = t.send(Req::get("/metrics")).await;
    assert_eq!(public.status, StatusCode::OK);
    let public = public.text();
    for name in business {
        assert!(
            !public.contains(name),
            "{name} on the API's listener:\n{public}"
        );
    }
    for name in operational {
        assert!(public.contains(name), "{name} missing:\n{public}");
    }

    let metrics_listener = discreet_server::metrics_router(t.state.clone());
    let private = send(&metrics_listener, Req::get("/metrics")).await;
    assert_eq!(private.status, StatusCode::OK);
    let private = private.text();
    for name in business.iter().chain(&operational) {
        assert!(private.contains(name), "{name} missing:\n{private}");
    }
    let accepted = format!(
        "discreet_events_accepted_total {}",
        t.engine.figures().events_accepted
    );
    assert!(private.contains(&accepted), "{private}");
    send(&metrics_listener, Req::get("/v1/policy").key(&t.admin))
        .await
        .problem(404, "route_not_found");

    let separate = TestApp::with_state(|state| state.metrics_elsewhere = true);
    separate
        .send(Req::get("/metrics"))
        .await
        .problem(404, "route_not_found");
}
