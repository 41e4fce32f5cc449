//! Bad input for every field: a 400 problem+json naming the field, and nothing stored.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::{CUSTOMER, Req, TestApp, hours_ago, purchase};

/// A valid event to break one field at a time.
fn good_event() -> Value {
    purchase("c-1", "A", 2)
}

fn with(mut event: Value, field: &str, value: Value) -> Value {
    event[field] = value;
    event
}

fn without(mut event: Value, field: &str) -> Value {
    event.as_object_mut().unwrap().remove(field);
    event
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

/// (what, body, field named)
fn bad_batches() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let long_subject = "x".repeat(129);
    let search = json!({"subject": "c-1", "type": "search", "query": "mug", "at": hours_ago(1)});
    let rating =
        json!({"subject": "c-1", "type": "rating", "item": "A", "value": 4, "at": hours_ago(1)});
    let event_with = |field: &str, value: Value| batch(vec![with(good_event(), field, value)]);
    vec![
        ("not JSON", b"{\"events\": [".to_vec(), "body"),
        ("empty body", Vec::new(), "body"),
        ("a JSON array", b"[]".to_vec(), "body"),
        ("a JSON string", b"\"events\"".to_vec(), "body"),
        ("events missing", b"{}".to_vec(), "events"),
        ("events an object", b"{\"events\": {}}".to_vec(), "events"),
        (
            "events a string",
            b"{\"events\": \"many\"}".to_vec(),
            "events",
        ),
        ("events null", b"{\"events\": null}".to_vec(), "events"),
        ("events empty", b"{\"events\": []}".to_vec(), "events"),
        (
            "more than 10,000 events",
            batch(vec![good_event(); 10_001]),
            "events",
        ),
        (
            "unknown batch field",
            serde_json::to_vec(&json!({"events": [good_event()], "shop": "x"})).unwrap(),
            "body",
        ),
        ("event not an object", batch(vec![json!(17)]), "events[0]"),
        (
            "subject missing",
            batch(vec![without(good_event(), "subject")]),
            "events[0].subject",
        ),
        (
            "subject null",
            event_with("subject", Value::Null),
            "events[0].subject",
        ),
        (
            "subject empty",
            event_with("subject", json!("")),
            "events[0].subject",
        ),
        (
            "subject of 129 bytes",
            event_with("subject", json!(long_subject)),
            "events[0].subject",
        ),
        (
            "subject a number",
            event_with("subject", json!(17850)),
            "events[0].subject",
        ),
        (
            "subject with a control character",
            event_with("subject", json!("c-1\n")),
            "events[0].subject",
        ),
        (
            "type unknown",
            event_with("type", json!("teleport")),
            "events[0].type",
        ),
        (
            "type missing",
            batch(vec![without(good_event(), "type")]),
            "events[0].type",
        ),
        (
            "type a number",
            event_with("type", json!(3)),
            "events[0].type",
        ),
        (
            "type null",
            event_with("type", Value::Null),
            "events[0].type",
        ),
        (
            "item missing for a purchase",
            batch(vec![without(good_event(), "item")]),
            "events[0].item",
        ),
        (
            "item missing for a view",
            batch(vec![without(
                with(good_event(), "type", json!("view")),
                "item",
            )]),
            "events[0].item",
        ),
        (
            "item null for a purchase",
            event_with("item", Value::Null),
            "events[0].item",
        ),
        (
            "item empty",
            event_with("item", json!("")),
            "events[0].item",
        ),
        (
            "item of 65 bytes",
            event_with("item", json!("I".repeat(65))),
            "events[0].item",
        ),
        (
            "item a number",
            event_with("item", json!(85123)),
            "events[0].item",
        ),
        (
            "at missing",
            batch(vec![without(good_event(), "at")]),
            "events[0].at",
        ),
        ("at null", event_with("at", Value::Null), "events[0].at"),
        (
            "at not RFC 3339",
            event_with("at", json!("yesterday")),
            "events[0].at",
        ),
        (
            "at a date only",
            event_with("at", json!("2011-11-02")),
            "events[0].at",
        ),
        (
            "at without an offset",
            event_with("at", json!("2011-11-02T10:00:00")),
            "events[0].at",
        ),
        (
            "at in month 13",
            event_with("at", json!("2024-13-01T00:00:00Z")),
            "events[0].at",
        ),
        (
            "at a number",
            event_with("at", json!(1_320_228_000)),
            "events[0].at",
        ),
        (
            "at in the far future",
            event_with("at", json!("2999-01-01T00:00:00Z")),
            "events[0].at",
        ),
        (
            "at two days ahead",
            event_with(
                "at",
                json!(discreet_vault::rfc3339(
                    discreet_vault::now_millis() + 2 * 86_400_000
                )),
            ),
            "events[0].at",
        ),
        (
            "at before 1970",
            event_with("at", json!("1969-12-31T23:59:59Z")),
            "events[0].at",
        ),
        (
            "quantity 0",
            event_with("quantity", json!(0)),
            "events[0].quantity",
        ),
        (
            "quantity -1",
            event_with("quantity", json!(-1)),
            "events[0].quantity",
        ),
        (
            "quantity \"six\"",
            event_with("quantity", json!("six")),
            "events[0].quantity",
        ),
        (
            "quantity 1.5",
            event_with("quantity", json!(1.5)),
            "events[0].quantity",
        ),
        (
            "quantity above a million",
            event_with("quantity", json!(1_000_001)),
            "events[0].quantity",
        ),
        (
            "query missing for a search",
            batch(vec![without(search.clone(), "query")]),
            "events[0].query",
        ),
        (
            "query empty",
            batch(vec![with(search.clone(), "query", json!(""))]),
            "events[0].query",
        ),
        (
            "query of 513 bytes",
            batch(vec![with(search.clone(), "query", json!("q".repeat(513)))]),
            "events[0].query",
        ),
        (
            "query a number",
            batch(vec![with(search, "query", json!(5))]),
            "events[0].query",
        ),
        (
            "value missing for a rating",
            batch(vec![without(rating.clone(), "value")]),
            "events[0].value",
        ),
        (
            "value above 10",
            batch(vec![with(rating.clone(), "value", json!(11))]),
            "events[0].value",
        ),
        (
            "value below 0",
            batch(vec![with(rating.clone(), "value", json!(-0.5))]),
            "events[0].value",
        ),
        (
            "value a string",
            batch(vec![with(rating, "value", json!("five"))]),
            "events[0].value",
        ),
        (
            "context.weather unknown",
            event_with("context", json!({"weather": "fog"})),
            "events[0].context.weather",
        ),
        (
            "context.weather a number",
            event_with("context", json!({"weather": 3})),
            "events[0].context.weather",
        ),
        (
            "context.country empty",
            event_with("context", json!({"country": ""})),
            "events[0].context.country",
        ),
        (
            "unknown context field",
            event_with("context", json!({"humidity": "high"})),
            "events[0].context",
        ),
        (
            "context a string",
            event_with("context", json!("rain")),
            "events[0].context",
        ),
        (
            "unknown event field",
            event_with("colour", json!("red")),
            "events[0]",
        ),
        (
            "event 0 good, event 1 bad",
            batch(vec![
                good_event(),
                with(good_event(), "at", json!("not a time")),
            ]),
            "events[1].at",
        ),
        (
            "event 0 good, event 1 without subject",
            batch(vec![good_event(), without(good_event(), "subject")]),
            "events[1].subject",
        ),
    ]
}

#[tokio::test]
async fn every_bad_event_field_is_named_and_nothing_is_stored() {
    let t = TestApp::new();
    // Something stored already, so "nothing more" is not "nothing at all".
    t.ingest(vec![purchase("c-1", "A", 5)]);
    let before = t.stored();
    let mut failures = Vec::new();
    for (what, body, field) in bad_batches() {
        let reply = t
            .send(Req::post("/v1/events").key(&t.storefront).raw(body))
            .await;
        let named = reply.status.as_u16() == 400
            && reply.content_type() == "application/problem+json"
            && reply.json()["code"] == "bad_input"
            && reply.json()["field"] == field;
        if !named {
            failures.push(format!(
                "{what}: expected 400 naming {field}, got {} {}",
                reply.status,
                reply.text()
            ));
            continue;
        }
        reply.bad_input(field);
        if t.stored() != before {
            failures.push(format!("{what}: something was stored"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(t.stored(), before);
}

/// Sent in bad values: must never come back in an answer.
const MARKER: &str = "zebulon-7f3a9";

/// Guards invariant 9 for what only JSON can get wrong, in the second event of a batch
/// (moved here from the engine's tests when the engine took typed events): the answer
/// names `events[1].<field>` without echoing the value, and the good first event — of a
/// consenting customer or of a new one — is not stored, learned or creates its subject.
#[tokio::test]
async fn a_json_fault_in_a_later_event_rejects_the_batch_without_echoing_it() {
    let t = TestApp::new();
    t.consent("c-1", "personalization", true);
    t.ingest(vec![purchase("c-1", "A", 5)]);
    let before = t.stored();
    let learned_before = t.engine.figures().modelled_events;
    let cases: Vec<(&str, Value)> = vec![
        ("events[1].type", with(good_event(), "type", json!(MARKER))),
        ("events[1].at", with(good_event(), "at", json!(MARKER))),
        (
            "events[1].value",
            with(good_event(), "value", json!(MARKER)),
        ),
        (
            "events[1].context",
            with(good_event(), "context", json!(MARKER)),
        ),
        ("events[1]", json!(MARKER)),
    ];
    for (field, bad) in cases {
        for first in ["c-1", "c-new"] {
            let body = batch(vec![purchase(first, "B", 2), bad.clone()]);
            let reply = t
                .send(Req::post("/v1/events").key(&t.storefront).raw(body))
                .await;
            reply.bad_input(field);
            assert!(
                !reply.text().contains(MARKER),
                "{field}: the answer echoes the value: {}",
                reply.text()
            );
            assert_eq!(t.stored(), before, "{field} after {first}: stored");
            assert_eq!(
                t.engine.figures().modelled_events,
                learned_before,
                "{field} after {first}: learned"
            );
            assert_eq!(t.engine.vault().subject_id("c-new").unwrap(), None);
        }
    }
}

#[tokio::test]
async fn bad_event_answers_do_not_echo_personal_values() {
    let t = TestApp::new();
    let secret_query = "pregnancy test for anna";
    let reply = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&json!({"events": [
                    {"subject": "anna.k@example.com", "type": "search", "query": secret_query,
                     "at": "last tuesday"}
                ]})),
        )
        .await;
    let problem = reply.bad_input("events[0].at");
    assert!(!reply.text().contains("anna"), "{problem}");
    assert!(!reply.text().contains("last tuesday"), "{problem}");
    insta::assert_json_snapshot!("bad_event_time", problem);
}

#[tokio::test]
async fn a_batch_with_one_bad_event_stores_none_of_it() {
    let t = TestApp::new();
    let before = t.stored();
    let reply = t
        .send(Req::post("/v1/events").key(&t.storefront).json(&json!({"events": [
            purchase("c-new", "A", 2),
            {"subject": "c-new", "type": "purchase", "item": "B", "at": hours_ago(1), "quantity": 0},
        ]})))
        .await;
    let problem = reply.bad_input("events[1].quantity");
    insta::assert_json_snapshot!("bad_event_quantity", problem);
    assert_eq!(t.stored(), before);
    // Not even the subject was created.
    assert_eq!(t.engine.vault().subject_id("c-new").unwrap(), None);
    t.send(Req::get("/v1/subjects/c-new/export").key(&t.privacy))
        .await
        .problem(404, "subject_not_found");
}

#[tokio::test]
async fn a_bad_idempotency_key_is_named() {
    let t = TestApp::new();
    let before = t.stored();
    let body = json!({"events": [good_event()]});
    for key in ["", &"k".repeat(256)] {
        t.send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .header("Idempotency-Key", key)
                .json(&body),
        )
        .await
        .bad_input("Idempotency-Key");
    }
    assert_eq!(t.stored(), before);
}

#[tokio::test]
async fn not_json_is_named_body() {
    let t = TestApp::new();
    let reply = t
        .send(Req::post("/v1/events").key(&t.storefront).raw("events=1"))
        .await;
    insta::assert_json_snapshot!("not_json", reply.bad_input("body"));
}

#[tokio::test]
async fn every_bad_attribute_is_named_and_nothing_is_stored() {
    let t = TestApp::new();
    let url = "/v1/subjects/c-attr/attributes";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "undeclared name",
            br#"{"shoe_size": "42"}"#.to_vec(),
            "body",
        ),
        (
            "undeclared beside a declared one",
            br#"{"email": "a@example.com", "shoe_size": "42"}"#.to_vec(),
            "body",
        ),
        (
            "value an object",
            br#"{"email": {"at": "example.com"}}"#.to_vec(),
            "body",
        ),
        (
            "value an array",
            br#"{"email": ["a@example.com"]}"#.to_vec(),
            "body",
        ),
        ("value null", br#"{"email": null}"#.to_vec(), "body"),
        (
            "value of 1,025 bytes",
            serde_json::to_vec(&json!({"email": "e".repeat(1_025)})).unwrap(),
            "email",
        ),
        (
            "value with a control character",
            br#"{"first_name": "Ann\u0000"}"#.to_vec(),
            "first_name",
        ),
        ("no attribute", b"{}".to_vec(), "body"),
        (
            "an array",
            br#"[{"email": "a@example.com"}]"#.to_vec(),
            "body",
        ),
        ("not JSON", b"email=a@example.com".to_vec(), "body"),
    ];
    let before = t.stored();
    for (what, body, field) in cases {
        let reply = t.send(Req::put(url).key(&t.storefront).raw(body)).await;
        assert_eq!(reply.status.as_u16(), 400, "{what}: {}", reply.text());
        reply.bad_input(field);
        assert_eq!(t.stored(), before, "{what}: nothing stored");
    }
    let reply = t
        .send(
            Req::put(format!("/v1/subjects/{}/attributes", "x".repeat(129)))
                .key(&t.storefront)
                .json(&json!({"email": "a@example.com"})),
        )
        .await;
    reply.bad_input("subject");
    assert_eq!(t.stored(), before);
    assert_eq!(t.engine.vault().subject_id("c-attr").unwrap(), None);
    insta::assert_json_snapshot!(
        "undeclared_attribute",
        t.send(
            Req::put(url)
                .key(&t.storefront)
                .json(&json!({"shoe_size": 42}))
        )
        .await
        .bad_input("body")
    );
}

#[tokio::test]
async fn every_bad_consent_is_named_and_nothing_is_stored() {
    let t = TestApp::new();
    let url = |purpose: &str| format!("/v1/subjects/{CUSTOMER}/consents/{purpose}");
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        (
            "unknown purpose",
            url("world_domination"),
            br#"{"granted": true}"#.to_vec(),
            "purpose",
        ),
        (
            "purpose on legitimate interests",
            url("analytics"),
            br#"{"granted": true}"#.to_vec(),
            "purpose",
        ),
        (
            "purpose on a contract",
            url("order_fulfilment"),
            br#"{"granted": false}"#.to_vec(),
            "purpose",
        ),
        (
            "granted missing",
            url("personalization"),
            b"{}".to_vec(),
            "granted",
        ),
        (
            "granted missing, source given",
            url("personalization"),
            br#"{"source": "banner"}"#.to_vec(),
            "granted",
        ),
        (
            "granted a string",
            url("personalization"),
            br#"{"granted": "yes"}"#.to_vec(),
            "granted",
        ),
        (
            "granted a number",
            url("personalization"),
            br#"{"granted": 1}"#.to_vec(),
            "granted",
        ),
        (
            "granted null",
            url("personalization"),
            br#"{"granted": null}"#.to_vec(),
            "granted",
        ),
        (
            "unknown field",
            url("personalization"),
            br#"{"granted": true, "until": "2030-01-01"}"#.to_vec(),
            "body",
        ),
        (
            "source a number",
            url("personalization"),
            br#"{"granted": true, "source": 3}"#.to_vec(),
            "source",
        ),
        (
            "source empty",
            url("personalization"),
            br#"{"granted": true, "source": ""}"#.to_vec(),
            "source",
        ),
        (
            "source of 129 bytes",
            url("personalization"),
            serde_json::to_vec(&json!({"granted": true, "source": "s".repeat(129)})).unwrap(),
            "source",
        ),
        (
            "body an array",
            url("personalization"),
            b"[true]".to_vec(),
            "body",
        ),
        (
            "body a boolean",
            url("personalization"),
            b"true".to_vec(),
            "body",
        ),
        (
            "not JSON",
            url("personalization"),
            b"granted=1".to_vec(),
            "body",
        ),
    ];
    let before = t.stored();
    for (what, path, body, field) in cases {
        let reply = t.send(Req::put(&path).key(&t.storefront).raw(body)).await;
        assert_eq!(reply.status.as_u16(), 400, "{what}: {}", reply.text());
        reply.bad_input(field);
        assert_eq!(t.stored(), before, "{what}: nothing stored");
    }
    let consents = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/consents")).key(&t.storefront))
        .await
        .ok();
    assert_eq!(consents["history"], json!([]));
    insta::assert_json_snapshot!(
        "consent_purpose_not_on_consent",
        t.send(
            Req::put(url("analytics"))
                .key(&t.storefront)
                .json(&json!({"granted": true}))
        )
        .await
        .bad_input("purpose")
    );
}

#[tokio::test]
async fn every_bad_query_parameter_is_named() {
    let t = TestApp::new();
    t.seed_shop();
    let recommendations = format!("/v1/subjects/{CUSTOMER}/recommendations");
    let cases: Vec<(String, &str)> = vec![
        (format!("{recommendations}?n=0"), "n"),
        (format!("{recommendations}?n=101"), "n"),
        (format!("{recommendations}?n=abc"), "n"),
        (format!("{recommendations}?n=-1"), "n"),
        (format!("{recommendations}?n=2.5"), "n"),
        (format!("{recommendations}?n="), "n"),
        (format!("{recommendations}?n=1&n=2"), "n"),
        (format!("{recommendations}?colour=red"), "query"),
        (format!("{recommendations}?context.humidity=high"), "query"),
        (
            format!("{recommendations}?context.weather=fog"),
            "context.weather",
        ),
        (
            format!("{recommendations}?context.country="),
            "context.country",
        ),
        (format!("{recommendations}?purpose=nope"), "purpose"),
        (
            format!("/v1/subjects/{}/recommendations", "x".repeat(129)),
            "subject",
        ),
        ("/v1/items/A/similar?n=0".to_owned(), "n"),
        ("/v1/items/A/similar?n=101".to_owned(), "n"),
        ("/v1/items/A/similar?n=ten".to_owned(), "n"),
        ("/v1/items/A/similar?purpose=analytics".to_owned(), "query"),
        (format!("/v1/items/{}/similar", "I".repeat(65)), "item"),
        ("/v1/audit?since=yesterday".to_owned(), "since"),
        ("/v1/audit?until=2011-11-02".to_owned(), "until"),
        ("/v1/audit?limit=0".to_owned(), "limit"),
        ("/v1/audit?limit=10001".to_owned(), "limit"),
        ("/v1/audit?limit=many".to_owned(), "limit"),
        ("/v1/audit?page=2".to_owned(), "query"),
        (format!("/v1/audit?subject={}", "x".repeat(129)), "subject"),
    ];
    let mut failures = Vec::new();
    for (uri, field) in cases {
        let reply = t.send(Req::get(&uri).key(&t.admin)).await;
        let named = reply.status.as_u16() == 400
            && reply.content_type() == "application/problem+json"
            && reply.json()["code"] == "bad_input"
            && reply.json()["field"] == field;
        if !named {
            failures.push(format!(
                "{uri}: expected 400 naming {field}, got {} {}",
                reply.status,
                reply.text()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    insta::assert_json_snapshot!(
        "recommendations_n_out_of_range",
        t.send(Req::get(format!("{recommendations}?n=101")).key(&t.storefront))
            .await
            .bad_input("n")
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let t = TestApp::with_state(|state| state.limits.max_body_bytes = 512);
    let before = t.stored();
    let events: Vec<Value> = (0..20)
        .map(|i| purchase("c-1", &format!("I{i}"), 2))
        .collect();
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    assert!(body.len() > 512);
    let reply = t
        .send(Req::post("/v1/events").key(&t.storefront).raw(body))
        .await;
    let problem = reply.problem(413, "payload_too_large");
    insta::assert_json_snapshot!("payload_too_large", problem);
    assert_eq!(t.stored(), before);

    let attributes = json!({"email": "e".repeat(600)});
    t.send(
        Req::put("/v1/subjects/c-1/attributes")
            .key(&t.storefront)
            .json(&attributes),
    )
    .await
    .problem(413, "payload_too_large");
    assert_eq!(t.stored(), before);

    // A body under the limit is fine.
    t.send(
        Req::post("/v1/events")
            .key(&t.storefront)
            .json(&json!({"events": [purchase("c-1", "A", 2)]})),
    )
    .await
    .ok();
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let t = TestApp::new();
    for uri in [
        "/",
        "/v1",
        "/v1/nope",
        "/v2/events",
        "/v1/items/A/x",
        "/v1/subjects/c-1/x",
    ] {
        t.send(Req::get(uri).key(&t.admin))
            .await
            .problem(404, "route_not_found");
    }
    // Without a key too: an unknown route is not an authentication question.
    t.send(Req::get("/v1/nope"))
        .await
        .problem(404, "route_not_found");
    let not_found = t.send(Req::get("/v1/nope").key(&t.admin)).await;
    insta::assert_json_snapshot!("route_not_found", not_found.problem(404, "route_not_found"));

    for (method, uri) in [
        (Method::GET, "/v1/events"),
        (Method::PATCH, "/v1/events"),
        (Method::DELETE, "/v1/events"),
        (Method::POST, "/v1/policy"),
        (Method::GET, "/v1/subjects/c-1"),
        (Method::PUT, "/v1/subjects/c-1/export"),
        (Method::POST, "/v1/subjects/c-1/consents"),
        (Method::DELETE, "/healthz"),
        (Method::PUT, "/v1/keys"),
    ] {
        let reply = t.send(Req::new(method.clone(), uri).key(&t.admin)).await;
        reply.problem(405, "method_not_allowed");
        assert!(
            reply.headers.contains_key("allow"),
            "{method} {uri}: 405 names the methods"
        );
    }
    let wrong = t
        .send(Req::new(Method::PATCH, "/v1/events").key(&t.admin))
        .await;
    insta::assert_json_snapshot!(
        "method_not_allowed",
        wrong.problem(405, "method_not_allowed")
    );
}

#[tokio::test]
async fn path_segments_that_are_not_utf8_are_named() {
    let t = TestApp::new();
    for (method, uri) in [
        (Method::GET, "/v1/subjects/%FF/export"),
        (Method::GET, "/v1/subjects/%C3%28/consents"),
        (Method::DELETE, "/v1/subjects/%FF"),
        (Method::GET, "/v1/items/%FF/similar"),
    ] {
        t.send(Req::new(method, uri).key(&t.admin))
            .await
            .bad_input("path");
    }
}

#[tokio::test]
async fn unknown_and_forgotten_subjects_are_404() {
    let t = TestApp::new();
    t.seed_shop();
    for reply in [
        t.send(Req::get("/v1/subjects/c-nobody/export").key(&t.privacy))
            .await,
        t.send(Req::delete("/v1/subjects/c-nobody").key(&t.privacy))
            .await,
    ] {
        let problem = reply.problem(404, "subject_not_found");
        assert!(!reply.text().contains("c-nobody"), "{problem}");
    }
    insta::assert_json_snapshot!(
        "subject_not_found",
        t.send(Req::get("/v1/subjects/c-nobody/export").key(&t.privacy))
            .await
            .problem(404, "subject_not_found")
    );

    t.send(Req::delete("/v1/subjects/s-1").key(&t.privacy))
        .await
        .ok();
    t.send(Req::get("/v1/subjects/s-1/export").key(&t.privacy))
        .await
        .problem(404, "subject_not_found");
    t.send(Req::delete("/v1/subjects/s-1").key(&t.privacy))
        .await
        .problem(404, "subject_not_found");
    let recommendations = t
        .send(Req::get("/v1/subjects/s-1/recommendations").key(&t.storefront))
        .await
        .ok();
    assert_eq!(recommendations["personalized"], false);
    assert_eq!(recommendations["reason"], "unknown_subject");
    assert!(
        recommendations["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["because"] == json!([]))
    );
}

/// The limits themselves are accepted: every bound is inclusive where the contract says so.
#[tokio::test]
async fn values_at_the_limits_are_accepted() {
    let t = TestApp::new();
    let subject = "s".repeat(128);
    let events = vec![
        json!({"subject": subject, "type": "purchase", "item": "I".repeat(64), "quantity": 1_000_000,
               "at": hours_ago(2)}),
        json!({"subject": "c-1", "type": "rating", "item": "A", "value": 0, "at": hours_ago(1)}),
        json!({"subject": "c-1", "type": "rating", "item": "A", "value": 10.0, "at": hours_ago(1)}),
        json!({"subject": "c-1", "type": "search", "query": "q".repeat(512), "at": hours_ago(-23),
               "context": {"weather": "snow", "country": "C".repeat(64)}}),
        // Fractional seconds and an offset (the events must lie within retention).
        json!({"subject": "c-1", "type": "view", "item": "A",
               "at": format!("{}.123+01:00", &hours_ago(30)[..19]),
               "quantity": null, "context": null}),
    ];
    let answer = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&json!({"events": events})),
        )
        .await
        .ok();
    assert_eq!(answer, json!({"accepted": 5, "duplicates": 0}));

    let answer = t
        .send(
            Req::put(format!("/v1/subjects/{subject}/attributes"))
                .key(&t.storefront)
                .json(&json!({"email": "e".repeat(1_024), "size": 38, "favourite_category": true})),
        )
        .await
        .ok();
    assert_eq!(answer["updated"].as_array().unwrap().len(), 3);
    t.send(
        Req::put(format!("/v1/subjects/{subject}/consents/personalization"))
            .key(&t.storefront)
            .json(&json!({"granted": true, "source": "s".repeat(128)})),
    )
    .await
    .ok();
    t.send(Req::get(format!("/v1/subjects/{subject}/recommendations?n=100")).key(&t.storefront))
        .await
        .ok();
    // The grant taught the models the long subject's purchase of the longest item code.
    t.send(Req::get(format!("/v1/items/{}/similar?n=1", "I".repeat(64))).key(&t.analyst))
        .await
        .ok();
    t.send(Req::get("/v1/audit?limit=10000").key(&t.privacy))
        .await
        .ok();
}

/// Regression: limits are counted in characters, as the OpenAPI document's `maxLength`
/// counts them; a limit counted in bytes refused text of multi-byte characters that the
/// document calls valid.
#[tokio::test]
async fn limits_count_characters_not_bytes() {
    let t = TestApp::new();
    let subject = "é".repeat(128);
    let events = vec![
        json!({"subject": subject, "type": "purchase", "item": "€".repeat(64), "at": hours_ago(1),
               "context": {"country": "ö".repeat(64)}}),
        json!({"subject": subject, "type": "search", "query": "ü".repeat(512), "at": hours_ago(1)}),
    ];
    let answer = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&json!({"events": events})),
        )
        .await
        .ok();
    assert_eq!(answer, json!({"accepted": 2, "duplicates": 0}));
    let path = format!("/v1/subjects/{}", subject.replace('é', "%C3%A9"));
    t.send(
        Req::put(format!("{path}/attributes"))
            .key(&t.storefront)
            .json(&json!({"email": "é".repeat(1_024)})),
    )
    .await
    .ok();
    t.send(
        Req::put(format!("{path}/consents/personalization"))
            .key(&t.storefront)
            .json(&json!({"granted": true, "source": "ß".repeat(128)})),
    )
    .await
    .ok();
    t.send(
        Req::post("/v1/keys")
            .key(&t.admin)
            .json(&json!({"role": "analyst", "label": "é".repeat(50)})),
    )
    .await
    .ok();
    let too_long = json!({"events": [{"subject": "é".repeat(129), "type": "view", "item": "A",
                                      "at": hours_ago(1)}]});
    t.send(Req::post("/v1/events").key(&t.storefront).json(&too_long))
        .await
        .bad_input("events[0].subject");
}

/// A full batch of 10,000 events is accepted whole.
#[tokio::test]
async fn a_batch_of_ten_thousand_events_is_accepted() {
    let t = TestApp::new();
    let events: Vec<Value> = (0..10_000)
        .map(|i| {
            purchase(
                &format!("c-{}", i % 500),
                &format!("I{}", i % 300),
                1 + i % 48,
            )
        })
        .collect();
    let answer = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&json!({"events": events})),
        )
        .await
        .ok();
    assert_eq!(answer, json!({"accepted": 10_000, "duplicates": 0}));
    assert_eq!(t.engine.vault().count_events().unwrap(), 10_000);
}

/// Reading the consents of a customer discreet does not know creates nothing.
#[tokio::test]
async fn reading_an_unknown_subject_creates_nothing() {
    let t = TestApp::new();
    let before = t.stored();
    let consents = t
        .send(Req::get("/v1/subjects/c-stranger/consents").key(&t.storefront))
        .await
        .ok();
    assert!(
        consents["consents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "never")
    );
    assert_eq!(consents["history"], json!([]));
    t.send(Req::get("/v1/subjects/c-stranger/recommendations").key(&t.storefront))
        .await
        .ok();
    t.send(Req::get("/v1/subjects/c-stranger/export").key(&t.privacy))
        .await
        .problem(404, "subject_not_found");
    assert_eq!(t.engine.vault().subject_id("c-stranger").unwrap(), None);
    assert_eq!(t.stored(), before);
}

#[tokio::test]
async fn every_bad_key_request_is_named() {
    let t = TestApp::new();
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("role missing", b"{}", "role"),
        ("role a number", br#"{"role": 5}"#, "role"),
        ("role unknown", br#"{"role": "janitor"}"#, "role"),
        (
            "label a number",
            br#"{"role": "analyst", "label": 5}"#,
            "label",
        ),
        (
            "unknown field",
            br#"{"role": "analyst", "expires": "never"}"#,
            "body",
        ),
        ("an array", br#"["analyst"]"#, "body"),
        ("not JSON", b"role=analyst", "body"),
    ];
    let long_label =
        serde_json::to_vec(&json!({"role": "analyst", "label": "l".repeat(51)})).unwrap();
    let cases: Vec<(&str, &[u8], &str)> = cases
        .into_iter()
        .chain([("label over 50 characters", long_label.as_slice(), "label")])
        .collect();
    for (what, body, field) in cases {
        let reply = t
            .send(Req::post("/v1/keys").key(&t.admin).raw(body.to_vec()))
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{what}: {}", reply.text());
        reply.bad_input(field);
    }
    let keys = t.send(Req::get("/v1/keys").key(&t.admin)).await.ok();
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        4,
        "no key was issued"
    );
}

/// Regression: unknown field, attribute, parameter and policy names were echoed in errors
/// (as `field` and in `detail`), and a name can be personal — an email typed into the wrong
/// place. Now the error names the object and the position, and nothing is stored.
#[tokio::test]
async fn unknown_names_are_not_echoed() {
    let t = TestApp::new();
    let name = "jane.doe@example.com";
    let event_with_field = with(good_event(), name, json!("x"));
    let mut context_event = good_event();
    context_event["context"][name] = json!("x");
    let mut batch_body = json!({ "events": [good_event()] });
    batch_body[name] = json!(1);
    let cases: Vec<(&str, Req, &str, &str)> = vec![
        (
            "event field",
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&json!({"events": [good_event(), event_with_field]})),
            "events[1]",
            "has a field that is not an event field (field 4 of 7, in name order)",
        ),
        (
            "context field",
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&json!({ "events": [context_event] })),
            "events[0].context",
            "has a field that is not a context field",
        ),
        (
            "batch field",
            Req::post("/v1/events").key(&t.storefront).json(&batch_body),
            "body",
            "has a field that is not a field of a batch",
        ),
        (
            "attribute name",
            Req::put("/v1/subjects/c-attr/attributes")
                .key(&t.storefront)
                .json(&json!({"email": "a@example.com", name: "x"})),
            "body",
            "names an attribute the policy does not declare (attribute 2 of 2)",
        ),
        (
            "attribute of a non-scalar value",
            Req::put("/v1/subjects/c-attr/attributes")
                .key(&t.storefront)
                .json(&json!({ name: {"nested": true} })),
            "body",
            "has an attribute whose value is not a string, a number or a boolean (attribute 1 of 1, in name order)",
        ),
        (
            "consent field",
            Req::put(format!("/v1/subjects/{CUSTOMER}/consents/personalization"))
                .key(&t.storefront)
                .json(&json!({"granted": true, name: 1})),
            "body",
            "has a field that is not a consent field",
        ),
        (
            "purpose",
            Req::put(format!("/v1/subjects/{CUSTOMER}/consents/{name}"))
                .key(&t.storefront)
                .json(&json!({"granted": true})),
            "purpose",
            "is not a purpose of the policy",
        ),
        (
            "query parameter",
            Req::get(format!(
                "/v1/subjects/{CUSTOMER}/recommendations?n=3&{name}=1"
            ))
            .key(&t.storefront),
            "query",
            "has a parameter that is not one of this route's (parameter 2)",
        ),
        (
            "role",
            Req::post("/v1/keys")
                .key(&t.admin)
                .json(&json!({ "role": name })),
            "role",
            "is not a role of the policy",
        ),
    ];
    let before = t.stored();
    for (what, request, field, detail) in cases {
        let reply = t.send(request).await;
        let problem = reply.bad_input(field);
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{what}: {problem}"
        );
        assert!(
            !reply.text().contains("jane.doe"),
            "{what} echoes the name: {problem}"
        );
    }
    assert_eq!(t.stored(), before, "nothing stored");
    assert_eq!(t.engine.vault().subject_id("c-attr").unwrap(), None);
}

/// Regression: an event already past its category's retention was accepted, stored and
/// served until the next hourly sweep erased it. Now it is refused with a 400 naming its
/// `at`, and nothing of the batch is stored; an event just within retention is accepted.
#[tokio::test]
async fn events_past_their_retention_are_refused() {
    let t = TestApp::new();
    const DAY_HOURS: i64 = 24;
    let before = t.stored();
    // Views are kept 13 months (of 30 days), purchases 3 years (of 365 days).
    let cases = [
        (
            "a view of 14 months ago",
            crate::support::view("c-old", "A", 14 * 30 * DAY_HOURS),
            "user.behavior.browsing_history",
        ),
        (
            "a purchase of 3 years and 2 days ago",
            purchase("c-old", "A", (3 * 365 + 2) * DAY_HOURS),
            "user.behavior.purchase_history",
        ),
    ];
    for (what, old, category) in cases {
        let reply = t
            .send(
                Req::post("/v1/events")
                    .key(&t.storefront)
                    .json(&json!({"events": [good_event(), old]})),
            )
            .await;
        let problem = reply.bad_input("events[1].at");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("past the retention") && detail.contains(category),
            "{what}: {detail}"
        );
    }
    assert_eq!(t.stored(), before, "nothing stored");
    assert_eq!(t.engine.vault().subject_id("c-old").unwrap(), None);

    let within_retention = vec![
        crate::support::view("c-old", "A", 12 * 30 * DAY_HOURS),
        purchase("c-old", "A", (3 * 365 - 2) * DAY_HOURS),
    ];
    let answer = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&json!({ "events": within_retention })),
        )
        .await
        .ok();
    assert_eq!(answer["accepted"], 2);
}

/// Regression (found by schemathesis): `6.0` is the same JSON number as `6`, and JSON
/// Schema's `integer` accepts it, but the quantity check refused it. A fraction is refused.
#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_a_quantity() {
    let t = TestApp::new();
    let event = |quantity: Value| {
        json!({"events": [{"subject": "c-1", "type": "purchase", "item": "A", "at": hours_ago(1),
                           "quantity": quantity}]})
    };
    let answer = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .json(&event(json!(6.0))),
        )
        .await
        .ok();
    assert_eq!(answer, json!({"accepted": 1, "duplicates": 0}));
    for bad in [json!(6.5), json!(-1.0), json!(1e300)] {
        t.send(Req::post("/v1/events").key(&t.storefront).json(&event(bad)))
            .await
            .bad_input("events[0].quantity");
    }
    assert_eq!(t.engine.vault().count_events().unwrap(), 1);
}
