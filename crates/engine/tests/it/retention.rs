//! Invariant 6: retention is enforced. Data past its category's retention period is erased
//! from the vault and unlearned from the models, exactly as if it had never been sent,
//! while newer data stays.

use discreet_engine::{AttributeInput, Error, EventInput, EventType};
use discreet_vault::rfc3339;

use crate::support::*;

const YEAR_DAYS: i64 = 365;
/// The sweep runs this many days from now: purchases (kept 3 years) older than
/// `3 × 365 − SWEEP_AHEAD_DAYS` = 100 days today are then past retention; every view, cart,
/// search and rating (kept 13 months or 2 years) is.
const SWEEP_AHEAD_DAYS: i64 = 3 * YEAR_DAYS - 100;
const NO_CONSENT: &str = "no-consent-0001";

/// Whether the built-in policy keeps `event` at the sweep time.
fn kept(event: &EventInput, now: i64) -> bool {
    event.event_type == EventType::Purchase && event.at > now - 100 * DAY_MILLIS
}

/// Drops purchases within a day of the retention boundary, where the clock moving on
/// during the test would decide.
fn keep_clear_of_the_boundary(shop: &mut Shop, now: i64) {
    shop.events.retain(|event| {
        let age = now - event.at;
        event.event_type != EventType::Purchase || (age - 100 * DAY_MILLIS).abs() > DAY_MILLIS
    });
}

/// Guards invariant 6: a sweep at a time when old purchases (3 years) and all browsing,
/// search and rating events (13 months, 2 years) are past retention erases them from the
/// vault and the models — every answer then equals an engine that only ever saw the kept
/// events, also after a rebuild — keeps newer purchases, erases an expired attribute but
/// not a newer one, and unlearns only what consent had let the models learn.
#[test]
fn sweep_erases_and_unlearns_what_is_past_retention() {
    let now = discreet_vault::now_millis();
    let mut shop = Shop::generate(23, 30, 30, "keeper");
    keep_clear_of_the_boundary(&mut shop, now);
    let mut no_consent_events = vec![
        event(NO_CONSENT, "purchase", &shop.items[2], days_ago(200.0)),
        event(NO_CONSENT, "purchase", &shop.items[3], days_ago(20.0)),
        event(NO_CONSENT, "view", &shop.items[4], days_ago(20.0)),
    ];
    let mut all_events = shop.events.clone();
    all_events.append(&mut no_consent_events);
    let kept_events: Vec<EventInput> = all_events
        .iter()
        .filter(|event| kept(event, now))
        .cloned()
        .collect();
    let expired = all_events.len() - kept_events.len();
    let expired_learned = shop
        .events
        .iter()
        .filter(|event| !kept(event, now) && event.event_type != EventType::Search)
        .count();
    assert!(
        kept_events.len() >= 20 && expired >= 40,
        "a mix: {} kept, {expired} expired",
        kept_events.len()
    );

    let engine = engine_with(&shop.customers, &all_events);
    let attribute_owner = &shop.customers[0];
    engine
        .put_attributes(
            &storefront(),
            attribute_owner,
            &[
                AttributeInput {
                    name: "email".into(),
                    value: "keeper@example.com".into(),
                },
                AttributeInput {
                    name: "favourite_category".into(),
                    value: "candles".into(),
                },
            ],
        )
        .expect("attributes");
    let fresh = engine_with(&shop.customers, &kept_events);

    // A sweep today finds nothing: every event is within its retention.
    let report = engine.sweep_retention(now).expect("sweep");
    assert_eq!((report.events, report.attributes), (0, 0));

    let sweep_at = now + SWEEP_AHEAD_DAYS * DAY_MILLIS;
    let report = engine.sweep_retention(sweep_at).expect("sweep");
    assert_eq!(report.events, expired as u64);
    assert_eq!(
        report.attributes, 1,
        "the favourite category (2 years) expired, the email (3 years) did not"
    );
    assert_eq!(
        report.model_interactions, expired_learned as u64,
        "only consenting customers' item events had been learned"
    );
    assert_eq!(
        engine.vault().count_events().expect("count"),
        kept_events.len() as u64
    );

    let mut everyone = shop.customers.clone();
    everyone.push(NO_CONSENT.to_owned());
    let (left, right) = answers_of_both(&engine, &fresh, &everyone, &shop.items);
    assert_same_answers("after the sweep vs never sent", &left, &right);

    // What remains of a customer is only what is kept.
    let export = engine.export(&privacy(), attribute_owner).expect("export");
    let expected = kept_events
        .iter()
        .filter(|event| event.subject == *attribute_owner)
        .count();
    assert_eq!(export.events.len(), expected);
    assert!(
        export
            .events
            .iter()
            .all(|event| event.payload.event_type == EventType::Purchase)
    );
    assert_eq!(export.attributes["email"].value, "keeper@example.com");
    assert!(!export.attributes.contains_key("favourite_category"));
    // The models keep whole seconds, and times are exported in one fixed UTC format, so
    // their text sorts as they do.
    let cutoff = rfc3339((now - 100 * DAY_MILLIS) / 1_000 * 1_000);
    for held in &export.derived.models_hold {
        for at in &held.event_times {
            assert!(
                *at > cutoff,
                "the models still hold an expired event at {at}"
            );
        }
    }

    // A second sweep at the same time finds nothing more.
    let again = engine.sweep_retention(sweep_at).expect("sweep");
    assert_eq!(
        (again.events, again.attributes, again.model_interactions),
        (0, 0, 0)
    );

    // The vault no longer holds the expired events: a rebuild agrees.
    let engine = engine.reopen();
    let (left, right) = answers_of_both(&engine, &fresh, &everyone, &shop.items);
    assert_same_answers("rebuilt after the sweep vs never sent", &left, &right);
    assert!(matches!(
        engine.similar(&storefront(), "no-such-item", 5),
        Err(Error::NotFound { .. })
    ));
}

/// Guards invariants 5 and 6 together, with repeated identical events (one invoice listing
/// an item twice) and EASE updates still pending: a sweep right after the ingest, then a
/// forget of the same customer, leave the models equal to an engine that saw only the kept
/// events and forgot the customer too; the forget's receipt counts only what was left.
#[test]
fn sweep_before_refresh_then_forget_is_exact() {
    let now = discreet_vault::now_millis();
    let mut shop = Shop::generate(3, 15, 12, "dup");
    keep_clear_of_the_boundary(&mut shop, now);
    let who = "duplicated-1";
    let (old, new) = (days_ago(200.0), days_ago(10.0));
    let own = vec![
        event(who, "purchase", &shop.items[1], old),
        event(who, "purchase", &shop.items[1], old),
        event(who, "purchase", &shop.items[7], old),
        event(who, "view", &shop.items[7], old),
        event(who, "view", &shop.items[7], old),
        event(who, "purchase", &shop.items[2], new),
        event(who, "purchase", &shop.items[2], new),
        event(who, "purchase", &shop.items[9], new),
    ];
    let mut everyone = shop.customers.clone();
    everyone.push(who.to_owned());
    let engine = engine_with(&everyone, &shop.events);
    ingest_all(&engine, &own);
    assert!(personal_model_has_pending_changes(&engine));
    let report = engine
        .sweep_retention(now + SWEEP_AHEAD_DAYS * DAY_MILLIS)
        .expect("sweep");
    let mut all_events = shop.events.clone();
    all_events.extend(own.iter().cloned());
    let kept_events: Vec<EventInput> = all_events
        .iter()
        .filter(|event| kept(event, now))
        .cloned()
        .collect();
    assert_eq!(report.events, (all_events.len() - kept_events.len()) as u64);
    let fresh = engine_with(&everyone, &kept_events);
    let (left, right) = answers_of_both(&engine, &fresh, &everyone, &shop.items);
    assert_same_answers("swept before refresh vs never sent", &left, &right);

    let receipt = engine.forget(&privacy(), who).expect("forget");
    assert_eq!(
        (receipt.erased.events, receipt.erased.model_interactions),
        (3, 3),
        "only the three newer purchases were left to forget"
    );
    fresh.forget(&privacy(), who).expect("forget");
    let (left, right) = answers_of_both(&engine, &fresh, &shop.customers, &shop.items);
    assert_same_answers("forgotten after the sweep vs never sent", &left, &right);
}
