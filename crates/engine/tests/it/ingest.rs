//! Invariants 1 (one door in) and 9 (bad input changes nothing): a batch is checked whole
//! before anything is stored; the answer names the field at fault and never echoes the
//! value; the vault, its ledger and the models are as before. Idempotency keys make a
//! retried batch count once.

use discreet_engine::{EngineOptions, Error};
use serde_json::{Value, json};

use crate::support::*;

/// Sent in bad values: must never come back in an error message.
const MARKER: &str = "zebulon-7f3a9";

fn good(subject: &str) -> Value {
    let mut event = event(subject, "purchase", "85123A", &days_ago(1.0));
    event["quantity"] = json!(2);
    event["context"] = json!({"weather": "rain", "country": "France"});
    event
}

/// A good event with `change` applied: fields set (a `null` value removes the field).
fn changed(subject: &str, change: Value) -> Value {
    let mut event = good(subject);
    for (name, value) in change.as_object().expect("object") {
        if value.is_null() {
            event.as_object_mut().expect("object").remove(name);
        } else {
            event[name] = value.clone();
        }
    }
    event
}

struct Snapshot {
    events: u64,
    ledger: usize,
    modelled_events: u64,
    items: u64,
}

fn snapshot(engine: &TestEngine) -> Snapshot {
    let figures = engine.figures();
    Snapshot {
        events: engine.vault().count_events().expect("count"),
        ledger: ledger_len(engine),
        modelled_events: figures.modelled_events,
        items: figures.items,
    }
}

fn assert_unchanged(engine: &TestEngine, before: &Snapshot, case: &str) {
    let after = snapshot(engine);
    assert_eq!(after.events, before.events, "{case}: events stored");
    assert_eq!(
        after.ledger, before.ledger,
        "{case}: ledger entries written"
    );
    assert_eq!(
        after.modelled_events, before.modelled_events,
        "{case}: models learned"
    );
    assert_eq!(after.items, before.items, "{case}: items interned");
    for subject in ["fresh-subject-0", "fresh-subject-1"] {
        assert_eq!(
            engine.vault().subject_id(subject).expect("lookup"),
            None,
            "{case}: subject {subject} created"
        );
    }
}

/// An engine with a small batch limit and one consenting customer with two events.
fn small_engine() -> TestEngine {
    let engine = TestEngine::with_options(EngineOptions {
        max_batch_events: 5,
        ..EngineOptions::default()
    });
    grant(&engine, "regular");
    ingest(
        &engine,
        &[
            good("regular"),
            event("regular", "view", "22423", &days_ago(2.0)),
        ],
    )
    .expect("ingest");
    engine
}

/// Guards invariant 9: each malformed field of the second event of a batch is refused with
/// a `BadInput` naming `events[1].<field>`, the message does not echo the value, and
/// neither event is stored, logged, learned or creates its subject.
#[test]
fn a_bad_event_rejects_the_whole_batch_and_names_its_field() {
    let engine = small_engine();
    let before = snapshot(&engine);
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Value)> = vec![
        ("events[1].subject", json!({"subject": null})),
        ("events[1].subject", json!({"subject": ""})),
        ("events[1].subject", json!({"subject": long(129)})),
        ("events[1].subject", json!({"subject": 42})),
        ("events[1].subject", json!({"subject": "tab\tinside"})),
        ("events[1].type", json!({"type": MARKER})),
        ("events[1].type", json!({"type": null})),
        ("events[1].item", json!({"item": null})),
        ("events[1].item", json!({"item": ""})),
        ("events[1].item", json!({"item": long(65)})),
        ("events[1].item", json!({"item": 85123})),
        ("events[1].at", json!({"at": MARKER})),
        ("events[1].at", json!({"at": null})),
        ("events[1].at", json!({"at": "2024-13-01T00:00:00Z"})),
        ("events[1].at", json!({"at": "1969-12-31T23:59:59Z"})),
        ("events[1].at", json!({"at": days_ago(-2.0)})),
        ("events[1].at", json!({"at": 1_700_000_000})),
        ("events[1].quantity", json!({"quantity": 0})),
        ("events[1].quantity", json!({"quantity": -1})),
        ("events[1].quantity", json!({"quantity": 1.5})),
        ("events[1].quantity", json!({"quantity": 1_000_001})),
        ("events[1].quantity", json!({"quantity": "2"})),
        ("events[1].value", json!({"value": 11})),
        ("events[1].value", json!({"value": -0.5})),
        ("events[1].value", json!({"value": MARKER})),
        (
            "events[1].context.weather",
            json!({"context": {"weather": MARKER}}),
        ),
        (
            "events[1].context.weather",
            json!({"context": {"weather": 3}}),
        ),
        (
            "events[1].context.country",
            json!({"context": {"country": ""}}),
        ),
        (
            "events[1].context.mood",
            json!({"context": {"mood": "happy"}}),
        ),
        ("events[1].context", json!({"context": MARKER})),
        ("events[1].price", json!({"price": 3.5})),
    ];
    let mut more: Vec<(&str, Value)> = vec![
        // A search needs its query, 1 to 512 bytes.
        (
            "events[1].query",
            json!({"type": "search", "item": null, "quantity": null}),
        ),
        (
            "events[1].query",
            json!({"type": "search", "query": "", "item": null}),
        ),
        (
            "events[1].query",
            json!({"type": "search", "query": long(513), "item": null}),
        ),
        (
            "events[1].query",
            json!({"type": "search", "query": ["a"], "item": null}),
        ),
        // A rating needs its value, 0 to 10.
        ("events[1].value", json!({"type": "rating"})),
        ("events[1].value", json!({"type": "rating", "value": 10.5})),
    ];
    more.extend(cases);
    for (field, change) in more {
        // The good first event is of a consenting customer (it would be stored and
        // learned) or of a new one (it would create the subject).
        for first in ["regular", "fresh-subject-0"] {
            let case = format!("{field} with {change} after a good event of {first}");
            let events = [good(first), changed("fresh-subject-1", change.clone())];
            match ingest(&engine, &events) {
                Err(Error::BadInput {
                    field: found,
                    detail,
                }) => {
                    assert_eq!(found, field, "{case}: {detail}");
                    assert!(!detail.is_empty());
                    assert!(
                        !detail.contains(MARKER) && !found.contains(MARKER),
                        "{case}: the message echoes the value: {detail}"
                    );
                }
                other => panic!("{case}: expected BadInput, got {other:?}"),
            }
            assert_unchanged(&engine, &before, &case);
        }
    }
    // The same good event alone is accepted (the cases failed for their change only).
    let accepted = ingest(&engine, &[good("another")]).expect("good batch");
    assert_eq!(accepted.accepted, 1);
}

/// Guards invariant 9 at the batch level: the body's shape, an empty batch, a batch over
/// `max_batch_events`, an unknown top-level field, a non-object event, a bad
/// `Idempotency-Key` and a role that may not write all change nothing.
#[test]
fn a_malformed_batch_changes_nothing() {
    let engine = small_engine();
    let before = snapshot(&engine);
    let six: Vec<Value> = (0..6)
        .map(|i| good(&format!("fresh-subject-{}", i % 2)))
        .collect();
    let cases: Vec<(&str, Value)> = vec![
        ("events", json!({"events": []})),
        ("events", json!({"events": six})),
        ("events", json!({})),
        ("events", json!({"events": {"subject": "fresh-subject-0"}})),
        (
            "batch",
            json!({"events": [good("fresh-subject-0")], "batch": 1}),
        ),
        ("body", json!([good("fresh-subject-0")])),
        (
            "events[1]",
            json!({"events": [good("fresh-subject-0"), MARKER]}),
        ),
    ];
    for (field, body) in cases {
        let raw = serde_json::to_vec(&body).expect("bytes");
        match engine.ingest(&storefront(), &body, &raw, None) {
            Err(Error::BadInput {
                field: found,
                detail,
            }) => {
                assert_eq!(found, field, "{body}: {detail}");
                assert!(!detail.contains(MARKER), "{detail}");
            }
            other => panic!("{body}: expected BadInput on {field}, got {other:?}"),
        }
        assert_unchanged(&engine, &before, &format!("{body}"));
    }
    let five: Vec<Value> = (0..5).map(|_| good("regular")).collect();
    assert_eq!(ingest(&engine, &five).expect("five fit").accepted, 5);
    let before = snapshot(&engine);

    let body = body_of(&[good("fresh-subject-1")]);
    let raw = serde_json::to_vec(&body).expect("bytes");
    for key in ["", "line\nbreak", &"k".repeat(256)] {
        match engine.ingest(&storefront(), &body, &raw, Some(key)) {
            Err(Error::BadInput { field, .. }) => assert_eq!(field, "Idempotency-Key"),
            other => panic!("idempotency key {key:?}: {other:?}"),
        }
        assert_unchanged(&engine, &before, "bad idempotency key");
    }
    for caller in [analyst(), privacy()] {
        match engine.ingest(&caller, &body, &raw, None) {
            Err(Error::Forbidden { .. }) => {}
            other => panic!("{} may not ingest: {other:?}", caller.role),
        }
        assert_unchanged(&engine, &before, "forbidden role");
    }
}

/// Guards invariant 8 with idempotency: the same key and body are stored once (the retry
/// answers `accepted 0, duplicates N` and the models learn nothing twice); the same key
/// with another body is a conflict that changes nothing.
#[test]
fn an_idempotency_key_stores_a_batch_once() {
    let engine = small_engine();
    grant(&engine, "retrying");
    let body = body_of(&[
        good("retrying"),
        event("retrying", "view", "22423", &days_ago(3.0)),
        event("retrying", "cart", "21212", &days_ago(2.0)),
    ]);
    let raw = serde_json::to_vec(&body).expect("bytes");
    let first = engine
        .ingest(&storefront(), &body, &raw, Some("order-1001"))
        .expect("first");
    assert_eq!((first.accepted, first.duplicates), (3, 0));
    let before = snapshot(&engine);
    let again = engine
        .ingest(&storefront(), &body, &raw, Some("order-1001"))
        .expect("retry");
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert_eq!(snapshot(&engine).events, before.events);
    assert_eq!(snapshot(&engine).modelled_events, before.modelled_events);

    let other = body_of(&[good("retrying")]);
    let other_raw = serde_json::to_vec(&other).expect("bytes");
    assert!(matches!(
        engine.ingest(&storefront(), &other, &other_raw, Some("order-1001")),
        Err(Error::IdempotencyConflict)
    ));
    assert_eq!(snapshot(&engine).events, before.events);
    assert_eq!(snapshot(&engine).modelled_events, before.modelled_events);
    assert_eq!(snapshot(&engine).ledger, before.ledger);

    // Another key is another request.
    let fresh = engine
        .ingest(&storefront(), &body, &raw, Some("order-1002"))
        .expect("new key");
    assert_eq!((fresh.accepted, fresh.duplicates), (3, 0));
    assert_eq!(snapshot(&engine).events, before.events + 3);
}
