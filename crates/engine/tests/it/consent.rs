//! Invariants 3 (purpose-bound use) and 4 (consent reaches the models): without consent a
//! customer gets a useful non-personal answer and their events shape no model; a grant
//! teaches the models exactly their stored events, a withdrawal unlearns them exactly;
//! every read names a purpose the caller's role allows, and a `Sec-GPC: 1` withdrawal is
//! authorized like the request that carries it.

use discreet_engine::{
    Caller, ConsentsView, EngineOptions, Error, EventContext, EventInput, GPC_CARRIERS,
    NotPersonal, Recommendations,
};
use discreet_policy::{Action, Policy};
use discreet_vault::LedgerFilter;

use crate::support::*;

const HOLDOUT: &str = "holdout-5c1e";

fn recommend_as(
    engine: &discreet_engine::Engine,
    caller: &Caller,
    subject: &str,
    purpose: &str,
) -> Result<Recommendations, Error> {
    engine.recommend(caller, subject, purpose, 20, &EventContext::default())
}

/// The shop, and the holdout customer's events: mostly popular items, plus one item
/// nobody else holds.
fn shop_and_holdout() -> (Shop, Vec<EventInput>) {
    let shop = Shop::generate(11, 30, 30, "shopper");
    let mut holdout = vec![
        event(HOLDOUT, "purchase", &shop.items[0], days_ago(10.0)),
        event(HOLDOUT, "purchase", &shop.items[17], days_ago(9.0)),
        event(HOLDOUT, "view", &shop.items[29], days_ago(8.5)),
        event(HOLDOUT, "purchase", "HOLDOUT-ONLY-1", days_ago(4.0)),
        rating(HOLDOUT, &shop.items[17], 5.0, days_ago(2.0)),
    ];
    holdout[0].quantity = Some(3);
    (shop, holdout)
}

fn non_personal(answer: &Recommendations) -> Vec<String> {
    assert!(!answer.personalized);
    assert!(
        answer.items.iter().all(|item| item.because.is_empty()),
        "a non-personal answer explains nothing by the customer's items"
    );
    answer.items.iter().map(|item| item.item.clone()).collect()
}

/// Guards invariants 3 and 4: a customer without consent gets the non-personal list
/// (reason `no_consent`) — the same as any unknown visitor of an engine that never saw
/// them — and their events shape no model; the grant makes the models equal to those of
/// an engine where they consented from the start; the withdrawal makes them equal to those
/// of an engine that never saw them.
#[test]
fn consent_decides_what_the_models_learn() {
    let (shop, holdout_events) = shop_and_holdout();
    let mut items = shop.items.clone();
    items.push("HOLDOUT-ONLY-1".into());
    let mut everyone = shop.customers.clone();
    everyone.push(HOLDOUT.to_owned());
    let mut all_events = shop.events.clone();
    all_events.extend(holdout_events.iter().cloned());

    // The holdout's events are stored but not learned.
    let engine = engine_with(&shop.customers, &all_events);
    let never_sent = engine_with(&shop.customers, &shop.events);
    let from_start = engine_with(&everyone, &all_events);

    let (answer, unknown) = within_one_hour(|| {
        (
            recommend_as(&engine, &storefront(), HOLDOUT, "personalization").expect("ok"),
            recommend_as(&never_sent, &storefront(), HOLDOUT, "personalization").expect("ok"),
        )
    });
    assert_eq!(answer.reason, Some(NotPersonal::NoConsent));
    assert!(!non_personal(&answer).is_empty(), "still a useful answer");
    assert_eq!(unknown.reason, Some(NotPersonal::UnknownSubject));
    assert_eq!(
        non_personal(&answer),
        non_personal(&unknown),
        "the holdout's events did not even reach the popularity counts"
    );
    let (left, right) = answers_of_both(&engine, &never_sent, &shop.customers, &items);
    assert_same_answers("no consent vs never sent", &left, &right);
    assert!(matches!(
        engine.similar(&storefront(), "HOLDOUT-ONLY-1", 10),
        Err(Error::NotFound { .. })
    ));

    // Grant: the stored events are learned.
    grant(&engine, HOLDOUT);
    let answer = recommend_as(&engine, &storefront(), HOLDOUT, "personalization").expect("ok");
    assert!(answer.personalized);
    assert_eq!(answer.reason, None);
    let (left, right) = answers_of_both(&engine, &from_start, &everyone, &items);
    assert_same_answers("granted later vs consented from the start", &left, &right);

    // Withdraw: they are unlearned.
    withdraw(&engine, HOLDOUT);
    let (left, right) = answers_of_both(&engine, &never_sent, &shop.customers, &items);
    assert_same_answers("withdrawn vs never sent", &left, &right);
    let (answer, unknown) = within_one_hour(|| {
        (
            recommend_as(&engine, &storefront(), HOLDOUT, "personalization").expect("ok"),
            recommend_as(&never_sent, &storefront(), HOLDOUT, "personalization").expect("ok"),
        )
    });
    assert_eq!(answer.reason, Some(NotPersonal::NoConsent));
    assert_eq!(non_personal(&answer), non_personal(&unknown));

    // The customer's export says the models no longer hold anything of theirs.
    let export = engine.export(&privacy(), HOLDOUT).expect("export");
    assert!(!export.derived.learned);
    assert!(export.derived.models_hold.is_empty());
    assert_eq!(export.events.len(), 5);

    // Events sent after the withdrawal are stored, not learned.
    ingest(
        &engine,
        &[event(HOLDOUT, "purchase", &shop.items[5], days_ago(1.0))],
    )
    .expect("ingest");
    let (left, right) = answers_of_both(&engine, &never_sent, &shop.customers, &items);
    assert_same_answers("ingest after withdrawal vs never sent", &left, &right);

    // And a rebuild from the vault agrees: the withdrawal holds across restarts.
    let engine = engine.reopen();
    let (left, right) = answers_of_both(&engine, &never_sent, &shop.customers, &items);
    assert_same_answers("rebuilt after withdrawal vs never sent", &left, &right);
    let answer = recommend_as(&engine, &storefront(), HOLDOUT, "personalization").expect("ok");
    assert_eq!(answer.reason, Some(NotPersonal::NoConsent));
}

/// Guards invariant 3: the reason a non-personal answer gives — unknown subject, a purpose
/// the models do not serve — and that the answer is still a list of items.
#[test]
fn non_personal_answers_say_why() {
    let (shop, _) = shop_and_holdout();
    let engine = engine_with(&shop.customers, &shop.events);
    let customer = &shop.customers[0];
    let personal = recommend_as(&engine, &storefront(), customer, "personalization").expect("ok");
    assert!(personal.personalized, "a consenting customer with history");

    let answer = recommend_as(&engine, &storefront(), "nobody-knows-me", "personalization")
        .expect("recommend");
    assert_eq!(answer.reason, Some(NotPersonal::UnknownSubject));
    assert!(!non_personal(&answer).is_empty());

    let answer = recommend_as(&engine, &storefront(), customer, "marketing_email").expect("ok");
    assert_eq!(answer.reason, Some(NotPersonal::PurposeNotPersonal));
    assert!(!non_personal(&answer).is_empty());

    // A customer who consented but has no events yet.
    grant(&engine, "signed-up-today");
    let answer =
        recommend_as(&engine, &storefront(), "signed-up-today", "personalization").expect("ok");
    assert_eq!(answer.reason, Some(NotPersonal::NoHistory));
    assert!(!non_personal(&answer).is_empty());
}

/// Guards invariant 3: every read names a purpose, and only roles allowed that purpose
/// (and the action) may use it; a purpose the policy does not declare is bad input.
#[test]
fn recommend_refuses_roles_and_purposes_the_policy_does_not_allow() {
    let (shop, _) = shop_and_holdout();
    let engine = engine_with(&shop.customers, &shop.events);
    let customer = &shop.customers[1];

    match recommend_as(&engine, &analyst(), customer, "personalization") {
        Err(Error::Forbidden { .. }) => {}
        other => panic!("analyst may not ask for recommendations: {other:?}"),
    }
    match recommend_as(&engine, &analyst(), customer, "analytics") {
        Err(Error::Forbidden { .. }) => {}
        other => panic!("analyst may not ask for recommendations: {other:?}"),
    }
    match recommend_as(&engine, &storefront(), customer, "analytics") {
        Err(Error::Forbidden { detail }) => assert!(detail.contains("analytics"), "{detail}"),
        other => panic!("storefront may not use `analytics`: {other:?}"),
    }
    match recommend_as(&engine, &storefront(), customer, "telepathy") {
        Err(Error::BadInput { field, .. }) => assert_eq!(field, "purpose"),
        other => panic!("an undeclared purpose is bad input: {other:?}"),
    }
    let stranger = Caller::key("k", "no-such-role");
    assert!(matches!(
        recommend_as(&engine, &stranger, customer, "personalization"),
        Err(Error::Forbidden { .. })
    ));
    // Consent for a purpose that rests on another legal basis cannot be given.
    match engine.set_consent(&storefront(), customer, "order_fulfilment", true, "banner") {
        Err(Error::BadInput { field, .. }) => assert_eq!(field, "purpose"),
        other => panic!("order_fulfilment rests on a contract: {other:?}"),
    }
    // The storefront may not read or erase a customer's whole record.
    assert!(matches!(
        engine.export(&storefront(), customer),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        engine.forget(&storefront(), customer),
        Err(Error::Forbidden { .. })
    ));
}

/// Guards invariant 4 across repeated decisions and before the periodic refresh: grant,
/// withdraw and grant again (each right after the other, EASE updates still pending) leave
/// models equal to consenting from the start.
#[test]
fn consent_given_withdrawn_and_given_again_is_learned_once() {
    let (shop, holdout_events) = shop_and_holdout();
    let mut items = shop.items.clone();
    items.push("HOLDOUT-ONLY-1".into());
    let mut everyone = shop.customers.clone();
    everyone.push(HOLDOUT.to_owned());
    let mut all_events = shop.events.clone();
    all_events.extend(holdout_events.iter().cloned());
    let engine = engine_with(&shop.customers, &all_events);
    let from_start = engine_with(&everyone, &all_events);
    grant(&engine, HOLDOUT);
    withdraw(&engine, HOLDOUT);
    grant(&engine, HOLDOUT);
    grant(&engine, HOLDOUT);
    let (left, right) = answers_of_both(&engine, &from_start, &everyone, &items);
    assert_same_answers("grant, withdraw, grant vs from the start", &left, &right);
    let export = engine.export(&privacy(), HOLDOUT).expect("export");
    assert!(export.derived.learned);
    assert_eq!(export.consents.history.len(), 4);
    // Decisions made within the same millisecond: the last one holds, also after a
    // rebuild from the vault.
    let quick = &shop.customers[2];
    let slow = &shop.customers[3];
    withdraw(&engine, quick);
    grant(&engine, quick);
    withdraw(&engine, quick);
    withdraw(&engine, slow);
    grant(&engine, slow);
    let engine = engine.reopen();
    for (customer, personalized) in [(quick, false), (slow, true)] {
        let answer = recommend_as(&engine, &storefront(), customer, "personalization").expect("ok");
        assert_eq!(answer.personalized, personalized, "{customer}");
        let consents = engine.consents(&storefront(), customer).expect("consents");
        let state = consents
            .consents
            .iter()
            .find(|state| state.purpose == "personalization")
            .expect("state");
        assert_eq!(
            state.state,
            if personalized { "granted" } else { "withdrawn" }
        );
    }
}

/// Guards invariant 4 across a restart: a consent given before any event (at sign-up) is
/// still in force after the models are rebuilt from the vault, so later events are learned.
#[test]
fn consent_given_before_any_event_survives_a_restart() {
    let (shop, holdout_events) = shop_and_holdout();
    let mut everyone = shop.customers.clone();
    everyone.push(HOLDOUT.to_owned());
    let mut all_events = shop.events.clone();
    all_events.extend(holdout_events.iter().cloned());
    let engine = engine_with(&everyone, &shop.events);
    let engine = engine.reopen();
    ingest_all(&engine, &holdout_events);
    let answer = recommend_as(&engine, &storefront(), HOLDOUT, "personalization").expect("ok");
    assert!(answer.personalized, "reason: {:?}", answer.reason);
    let from_start = engine_with(&everyone, &all_events);
    let mut items = shop.items.clone();
    items.push("HOLDOUT-ONLY-1".into());
    let (left, right) = answers_of_both(&engine, &from_start, &everyone, &items);
    assert_same_answers("consent before restart vs from the start", &left, &right);
}

/// Guards invariant 4 under concurrency: ingests racing consent changes never leave an
/// event learned twice or learned after the withdrawal; once the last decision is a
/// withdrawal, the models equal an engine that never saw the customer's events, and a
/// rebuild from the vault agrees.
#[test]
fn consent_changes_racing_ingests_leave_exact_models() {
    let shop = Shop::generate(41, 20, 20, "racer");
    let racer = "racer-x";
    let racing: Vec<[EventInput; 2]> = (0..60)
        .map(|i| {
            [
                event(
                    racer,
                    "purchase",
                    &shop.items[i % shop.items.len()],
                    days_ago(1.0 + i as f64 / 10.0),
                ),
                event(
                    &shop.customers[1],
                    "view",
                    &shop.items[(i * 7) % shop.items.len()],
                    days_ago(1.0 + i as f64 / 7.0),
                ),
            ]
        })
        .collect();
    let engine = engine_with(&shop.customers, &shop.events);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for batch in &racing {
                ingest(&engine, batch).expect("ingest");
            }
        });
        scope.spawn(|| {
            for i in 0..40 {
                engine
                    .set_consent(&storefront(), racer, "personalization", i % 2 == 0, "race")
                    .expect("consent");
                std::thread::yield_now();
            }
        });
        scope.spawn(|| {
            for _ in 0..40 {
                engine.refresh_models();
                std::thread::yield_now();
            }
        });
    });
    let mut others_events = shop.events.clone();
    others_events.extend(racing.iter().map(|batch| batch[1].clone()));
    let never_learned = engine_with(&shop.customers, &others_events);
    let (left, right) = answers_of_both(&engine, &never_learned, &shop.customers, &shop.items);
    assert_same_answers("after racing, withdrawn vs never learned", &left, &right);
    let answer = recommend_as(&engine, &storefront(), racer, "personalization").expect("ok");
    assert_eq!(answer.reason, Some(NotPersonal::NoConsent));
    grant(&engine, racer);
    let mut everyone = shop.customers.clone();
    everyone.push(racer.to_owned());
    let live = engine.reopen();
    let mut all_events = others_events.clone();
    all_events.extend(racing.iter().map(|batch| batch[0].clone()));
    let from_start = engine_with(&everyone, &all_events);
    let (left, right) = answers_of_both(&live, &from_start, &everyone, &shop.items);
    assert_same_answers("granted at last, rebuilt vs from the start", &left, &right);
}

/// A small shop whose partner-advertising purpose shares data (sale/sharing under CCPA);
/// the analyst may only ask for similar items.
const GPC_POLICY: &str = include_str!("../../../policy/tests/it/valid/sale_or_sharing.toml");

/// Ledger entries written under `actor` with `action`.
fn ledger_entries(engine: &discreet_engine::Engine, actor: &str, action: &str) -> usize {
    engine.flush_access_log();
    engine
        .vault()
        .ledger(&LedgerFilter {
            actor: Some(actor.to_owned()),
            limit: 1_000_000,
            ..LedgerFilter::default()
        })
        .expect("ledger")
        .iter()
        .filter(|record| record.entry.action == action)
        .count()
}

fn partner_ads_state(consents: &ConsentsView) -> &'static str {
    consents
        .consents
        .iter()
        .find(|state| state.purpose == "partner_ads")
        .expect("partner_ads state")
        .state
}

/// Guards invariant 3 for `Sec-GPC: 1` at the engine's own door, not only at the HTTP
/// layer's: a role that may not make the request carrying the signal (the analyst, who
/// may not ingest, write attributes, read consents or ask for recommendations) cannot
/// withdraw a customer's consent through `honour_gpc`, nor can any role through an action
/// whose requests name no subject; neither refusal touches the consents or the ledger. The
/// storefront, relaying the signal on a recommendations request, records the withdrawal.
#[test]
fn a_role_without_the_action_cannot_trigger_gpc_withdrawals_through_the_engine() {
    let policy = Policy::from_toml_str(GPC_POLICY, "gpc-test.toml").expect("policy");
    let engine = TestEngine::with_policy(policy, EngineOptions::default());
    ingest(&engine, &[event("c-1", "view", "A", days_ago(2.0))]).expect("ingest");
    engine
        .set_consent(&storefront(), "c-1", "partner_ads", true, "banner")
        .expect("grant");
    let subjects = ["c-1".to_owned()];
    let consents_before = engine.consents(&storefront(), "c-1").expect("consents");
    assert_eq!(partner_ads_state(&consents_before), "granted");
    let ledger_before = ledger_len(&engine);

    for request in GPC_CARRIERS {
        match engine.honour_gpc(&analyst(), request, &subjects) {
            Err(Error::Forbidden { .. }) => {}
            other => panic!("the analyst may not relay GPC on {request:?}: {other:?}"),
        }
    }
    for caller in [storefront(), analyst()] {
        match engine.honour_gpc(&caller, Action::SimilarItems, &subjects) {
            Err(Error::BadInput { field, .. }) => assert_eq!(field, "Sec-GPC", "{}", caller.role),
            other => panic!(
                "{}: similar items name no subject to withdraw for: {other:?}",
                caller.role
            ),
        }
    }
    assert_eq!(
        ledger_len(&engine),
        ledger_before,
        "a refusal wrote to the ledger"
    );
    let consents_after = engine.consents(&storefront(), "c-1").expect("consents");
    assert_eq!(
        consents_after, consents_before,
        "a refusal changed a consent"
    );

    let withdrawn_before = ledger_entries(&engine, &storefront().key_id, "consent.withdrawn");
    let withdrawals = engine
        .honour_gpc(&storefront(), Action::Recommendations, &subjects)
        .expect("honour GPC");
    assert_eq!(withdrawals, 1);
    let consents = engine.consents(&storefront(), "c-1").expect("consents");
    assert_eq!(partner_ads_state(&consents), "withdrawn");
    let last = consents.history.last().expect("a decision");
    assert_eq!(
        (last.purpose.as_str(), last.state, last.source.as_str()),
        ("partner_ads", "withdrawn", "gpc-header")
    );
    assert_eq!(
        ledger_entries(&engine, &storefront().key_id, "consent.withdrawn"),
        withdrawn_before + 1,
        "the withdrawal is on the ledger under the storefront's key"
    );
}
