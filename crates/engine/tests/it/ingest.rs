//! Invariants 1 (one door in) and 9 (bad input changes nothing): a batch is checked whole
//! before anything is stored; the answer names the field at fault and never echoes the
//! value; the vault, its ledger and the models are as before. Idempotency keys make a
//! retried batch count once.

use discreet_engine::{EngineOptions, Error, EventInput, EventType, IdempotencyKey};
use discreet_policy::{BUILTIN_RETAIL_TOML, Policy};

use crate::support::*;

/// Sent in bad values: must never come back in an error message.
const MARKER: &str = "zebulon-7f3a9";

fn good(subject: &str) -> EventInput {
    let mut event = event(subject, "purchase", "85123A", days_ago(1.0));
    event.quantity = Some(2);
    event.context = context("rain", "France");
    event
}

/// Text of exactly `bytes` bytes that starts with `MARKER`, to send where a value is too long.
fn marked(bytes: usize) -> String {
    let mut text = MARKER.repeat(bytes / MARKER.len() + 1);
    text.truncate(bytes);
    text
}

struct Snapshot {
    events: u64,
    ledger: usize,
    modelled_events: u64,
    items: u64,
}

fn snapshot(engine: &TestEngine) -> Snapshot {
    engine.settle();
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

/// An engine under `policy` with a small batch limit and one consenting customer with two
/// events.
fn small_engine_under(policy: Policy) -> TestEngine {
    let engine = TestEngine::with_policy(
        policy,
        EngineOptions {
            max_batch_events: 5,
            ..EngineOptions::default()
        },
    );
    grant(&engine, "regular");
    ingest(
        &engine,
        &[
            good("regular"),
            event("regular", "view", "22423", days_ago(2.0)),
        ],
    )
    .expect("ingest");
    engine
}

fn small_engine() -> TestEngine {
    small_engine_under(Policy::builtin_retail())
}

/// The built-in policy without the `cart` event type, so that a batch can hold an event of
/// a type the policy does not declare.
fn retail_without_carts() -> Policy {
    let cart = "cart = \"user.behavior.browsing_history\"\n";
    assert!(BUILTIN_RETAIL_TOML.contains(cart));
    let policy =
        Policy::from_toml_str(&BUILTIN_RETAIL_TOML.replace(cart, ""), "no-carts").expect("policy");
    assert_eq!(policy.category_of_event_type("cart"), None);
    policy
}

/// Guards invariant 9: each bad field of the second event of a batch is refused with a
/// `BadInput` naming `events[1].<field>`, the message does not echo the value, and neither
/// event is stored, logged, learned or creates its subject. (What only JSON can get wrong
/// — wrong JSON types, `null`, unknown fields, times that are not RFC 3339 — is refused by
/// the server's wire layer before the engine is called; the server's tests cover it.)
#[test]
fn a_bad_event_rejects_the_whole_batch_and_names_its_field() {
    let engine = small_engine_under(retail_without_carts());
    let before = snapshot(&engine);
    type Change = fn(&mut EventInput);
    let cases: Vec<(&str, &str, Change)> = vec![
        // A search needs its query, 1 to 512 bytes.
        ("events[1].query", "a search without a query", |event| {
            event.event_type = EventType::Search;
            event.item = None;
            event.quantity = None;
        }),
        ("events[1].query", "a search with an empty query", |event| {
            event.event_type = EventType::Search;
            event.query = Some(String::new());
            event.item = None;
        }),
        (
            "events[1].query",
            "a search with a query of 513 bytes",
            |event| {
                event.event_type = EventType::Search;
                event.query = Some(marked(513));
                event.item = None;
            },
        ),
        // A rating needs its value, 0 to 10.
        ("events[1].value", "a rating without a value", |event| {
            event.event_type = EventType::Rating;
        }),
        ("events[1].value", "a rating of 10.5", |event| {
            event.event_type = EventType::Rating;
            event.value = Some(10.5);
        }),
        ("events[1].value", "a rating of NaN", |event| {
            event.event_type = EventType::Rating;
            event.value = Some(f64::NAN);
        }),
        ("events[1].subject", "an empty subject", |event| {
            event.subject = String::new();
        }),
        ("events[1].subject", "a subject of 129 bytes", |event| {
            event.subject = marked(129);
        }),
        ("events[1].subject", "a subject with a tab", |event| {
            event.subject = format!("{MARKER}\tinside");
        }),
        (
            "events[1].type",
            "a type the policy does not declare",
            |event| {
                event.event_type = EventType::Cart;
            },
        ),
        ("events[1].item", "a purchase without an item", |event| {
            event.item = None;
        }),
        ("events[1].item", "an empty item", |event| {
            event.item = Some(String::new());
        }),
        ("events[1].item", "an item of 65 bytes", |event| {
            event.item = Some(marked(65));
        }),
        ("events[1].at", "a time before 1970", |event| {
            // 1969-12-31T23:59:59Z
            event.at = -1_000;
        }),
        ("events[1].at", "a time two days ahead", |event| {
            event.at = days_ago(-2.0);
        }),
        // Purchases are kept 3 years (of 365 days): an older one would be stored only to be
        // erased by the next sweep, and served until then.
        ("events[1].at", "a purchase past its retention", |event| {
            event.at = days_ago(3.0 * 365.0 + 2.0);
        }),
        ("events[1].quantity", "a quantity of 0", |event| {
            event.quantity = Some(0);
        }),
        ("events[1].quantity", "a quantity of 1,000,001", |event| {
            event.quantity = Some(1_000_001);
        }),
        ("events[1].value", "a value of 11", |event| {
            event.value = Some(11.0);
        }),
        ("events[1].value", "a value of -0.5", |event| {
            event.value = Some(-0.5);
        }),
        (
            "events[1].context.weather",
            "an unknown weather name",
            |event| {
                event.context.weather = Some(MARKER.to_owned());
            },
        ),
        ("events[1].context.country", "an empty country", |event| {
            event.context.country = Some(String::new());
        }),
    ];
    for (field, what, change) in cases {
        // The good first event is of a consenting customer (it would be stored and
        // learned) or of a new one (it would create the subject).
        for first in ["regular", "fresh-subject-0"] {
            let case = format!("{field}, {what}, after a good event of {first}");
            let mut bad = good("fresh-subject-1");
            change(&mut bad);
            match ingest(&engine, &[good(first), bad]) {
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

/// Guards invariant 9 at the batch level: an empty batch, a batch over `max_batch_events`,
/// a bad `Idempotency-Key` and a role that may not write all change nothing. (A body that
/// is not a batch object — no `events`, an unknown top-level field, an event that is not
/// an object — is the server's wire layer's to refuse; the server's tests cover it.)
#[test]
fn a_malformed_batch_changes_nothing() {
    let engine = small_engine();
    let before = snapshot(&engine);
    let six: Vec<EventInput> = (0..6)
        .map(|i| good(&format!("fresh-subject-{}", i % 2)))
        .collect();
    let cases: Vec<(&str, &[EventInput])> = vec![
        ("an empty batch", &[]),
        ("six events, one over the limit", &six),
    ];
    for (what, events) in cases {
        match ingest(&engine, events) {
            Err(Error::BadInput { field, detail }) => {
                assert_eq!(field, "events", "{what}: {detail}");
                assert!(!detail.contains(MARKER), "{detail}");
            }
            other => panic!("{what}: expected BadInput on events, got {other:?}"),
        }
        assert_unchanged(&engine, &before, what);
    }
    let five: Vec<EventInput> = (0..5).map(|_| good("regular")).collect();
    assert_eq!(ingest(&engine, &five).expect("five fit").accepted, 5);
    let before = snapshot(&engine);

    let events = [good("fresh-subject-1")];
    for key in ["", "line\nbreak", &"k".repeat(256)] {
        match engine.ingest(
            &storefront(),
            &events,
            Some(IdempotencyKey::of_events(key, &events)),
        ) {
            Err(Error::BadInput { field, .. }) => assert_eq!(field, "Idempotency-Key"),
            other => panic!("idempotency key {key:?}: {other:?}"),
        }
        assert_unchanged(&engine, &before, "bad idempotency key");
    }
    for caller in [analyst(), privacy()] {
        match engine.ingest(&caller, &events, None) {
            Err(Error::Forbidden { .. }) => {}
            other => panic!("{} may not ingest: {other:?}", caller.role),
        }
        assert_unchanged(&engine, &before, "forbidden role");
    }
}

/// Guards invariant 8 with idempotency: the same key and events are stored once (the retry
/// answers `accepted 0, duplicates N` and the models learn nothing twice); the same key
/// with other events is a conflict that changes nothing.
#[test]
fn an_idempotency_key_stores_a_batch_once() {
    let engine = small_engine();
    grant(&engine, "retrying");
    let events = [
        good("retrying"),
        event("retrying", "view", "22423", days_ago(3.0)),
        event("retrying", "cart", "21212", days_ago(2.0)),
    ];
    let first = engine
        .ingest(
            &storefront(),
            &events,
            Some(IdempotencyKey::of_events("order-1001", &events)),
        )
        .expect("first");
    assert_eq!((first.accepted, first.duplicates), (3, 0));
    let before = snapshot(&engine);
    let again = engine
        .ingest(
            &storefront(),
            &events,
            Some(IdempotencyKey::of_events("order-1001", &events)),
        )
        .expect("retry");
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert_eq!(snapshot(&engine).events, before.events);
    assert_eq!(snapshot(&engine).modelled_events, before.modelled_events);

    let other = [good("retrying")];
    assert!(matches!(
        engine.ingest(
            &storefront(),
            &other,
            Some(IdempotencyKey::of_events("order-1001", &other))
        ),
        Err(Error::IdempotencyConflict)
    ));
    assert_eq!(snapshot(&engine).events, before.events);
    assert_eq!(snapshot(&engine).modelled_events, before.modelled_events);
    assert_eq!(snapshot(&engine).ledger, before.ledger);

    // Another key is another request.
    let fresh = engine
        .ingest(
            &storefront(),
            &events,
            Some(IdempotencyKey::of_events("order-1002", &events)),
        )
        .expect("new key");
    assert_eq!((fresh.accepted, fresh.duplicates), (3, 0));
    assert_eq!(snapshot(&engine).events, before.events + 3);
}
