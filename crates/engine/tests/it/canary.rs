//! Invariant 5, forget is total and exact, checked with a canary: one customer alone bought
//! a pair of items together. Before the forget the models show it; after, no call returns
//! the customer's data, the receipt is signed and counts exactly what was unlearned, and
//! every answer equals that of an engine that never saw the canary — incrementally and
//! after a rebuild from the vault.

use discreet_engine::{Error, EventContext, EventInput, NotPersonal};
use discreet_vault::crypto::from_hex;

use crate::support::*;

const CANARY: &str = "canary-7f3a9";
/// An item only the canary ever bought.
const CANARY_ONLY: &str = "CANARY-ONLY-7F3A9";

struct CanaryShop {
    shop: Shop,
    /// The canary's events, sent after everyone else's.
    canary_events: Vec<EventInput>,
    a: String,
    b: String,
    c: String,
}

fn canary_shop() -> CanaryShop {
    let mut shop = Shop::generate(7, 50, 40, "cust");
    let a = shop.items[1].clone();
    let b = shop.items[25].clone();
    let c = shop.items[3].clone();
    // Nobody else holds both A and B, in any kind of event.
    for (customer, held) in shop.holdings() {
        if held.contains(&a) && held.contains(&b) {
            shop.drop_item_of(&customer, &b);
        }
    }
    let holdings = shop.holdings();
    let holders = |item: &str| holdings.values().filter(|held| held.contains(item)).count();
    assert!(
        holders(&a) >= 2 && holders(&b) >= 2,
        "A and B are bought by others too, just never together"
    );
    assert!(
        !holdings
            .values()
            .any(|held| held.contains(&a) && held.contains(&b))
    );
    let mut bought_a = event(CANARY, "purchase", &a, days_ago(3.0));
    bought_a.quantity = Some(2);
    let mut bought_b = event(CANARY, "purchase", &b, days_ago(3.0));
    bought_b.context = context("rain", "France");
    let canary_events = vec![
        bought_a,
        bought_b,
        event(CANARY, "view", &c, days_ago(5.5)),
        event(CANARY, "cart", &c, days_ago(5.4)),
        event(CANARY, "purchase", CANARY_ONLY, days_ago(4.0)),
        rating(CANARY, &a, 4.5, days_ago(2.0)),
        search(CANARY, "canary 7f3a9 gift", days_ago(6.0)),
    ];
    CanaryShop {
        shop,
        canary_events,
        a,
        b,
        c,
    }
}

fn lists(similar: &[discreet_engine::SimilarItem], item: &str) -> bool {
    similar.iter().any(|similar| similar.item == item)
}

/// Guards invariant 5 (forget is total and exact) and 4 (the canary's events shaped the
/// models only through consent, and the forget removes exactly them): after forget(canary)
/// no answer shows the pair, export and a second forget find nothing, the signed receipt
/// counts the canary's learned events, and every other customer's recommendations and
/// every item's similar items equal those of an engine built without the canary — both
/// right after the forget and after rebuilding the models from the vault.
#[test]
fn forget_removes_the_canary_from_every_answer_and_model() {
    let CanaryShop {
        shop,
        canary_events,
        a,
        b,
        c,
    } = canary_shop();
    let mut everyone = shop.customers.clone();
    everyone.push(CANARY.to_owned());
    let mut items = shop.items.clone();
    items.push(CANARY_ONLY.to_owned());

    let with_canary = TestEngine::new();
    for customer in &everyone {
        grant(&with_canary, customer);
    }
    ingest_all(&with_canary, &shop.events);
    assert_eq!(
        ingest_all(&with_canary, &canary_events),
        canary_events.len() as u64
    );
    with_canary.refresh_models();
    let without_canary = engine_with(&shop.customers, &shop.events);

    // Before: the models show the canary's pair, and the canary's list is personal and
    // explained by the canary's own items.
    let similar_a = with_canary
        .similar(&storefront(), &a, 100)
        .expect("similar");
    assert!(lists(&similar_a, &b), "before forget, similar(A) lists B");
    let similar_only = with_canary
        .similar(&storefront(), CANARY_ONLY, 100)
        .expect("similar");
    assert!(lists(&similar_only, &a) && lists(&similar_only, &b));
    let baseline = without_canary
        .similar(&storefront(), &a, 100)
        .expect("similar");
    assert!(
        !lists(&baseline, &b),
        "only the canary holds A and B together"
    );
    let recommendations = with_canary
        .recommend(
            &storefront(),
            CANARY,
            "personalization",
            10,
            &EventContext::default(),
        )
        .expect("recommend");
    assert!(recommendations.personalized);
    assert_eq!(recommendations.reason, None);
    assert!(!recommendations.items.is_empty());
    let own = [a.as_str(), b.as_str(), c.as_str(), CANARY_ONLY];
    for item in &recommendations.items {
        assert!(
            !own.contains(&item.item.as_str()),
            "held items are not offered"
        );
        for because in &item.because {
            assert!(
                own.contains(&because.as_str()),
                "`because` names only the canary's own items, got {because}"
            );
        }
    }
    assert!(
        recommendations.items.iter().any(|item| item
            .because
            .iter()
            .any(|because| *because == a || *because == b)),
        "some recommendation is explained by A or B: {:?}",
        recommendations.items
    );
    let export = with_canary.export(&privacy(), CANARY).expect("export");
    assert_eq!(export.events.len(), 7);

    // The forget.
    let events_before = with_canary.vault().count_events().expect("count");
    let receipt = with_canary.forget(&privacy(), CANARY).expect("forget");
    assert_eq!(
        receipt.erased.model_interactions, 6,
        "three purchases, a view, a cart and a rating were learned; the search was not"
    );
    assert_eq!(receipt.erased.events, 7);
    assert!(receipt.erased.key_destroyed);
    let public_key = from_hex(&with_canary.public_key().public_key).expect("hex public key");
    assert!(receipt.verify(&public_key), "the receipt's signature holds");
    let mut forged = receipt.clone();
    forged.erased.model_interactions = 0;
    assert!(!forged.verify(&public_key), "an altered receipt fails");
    assert_eq!(
        with_canary
            .receipt(&privacy(), &receipt.id)
            .expect("stored receipt"),
        receipt
    );
    assert_eq!(
        with_canary.vault().count_events().expect("count"),
        events_before - 7
    );
    assert!(!receipt.subject_token.contains(CANARY));

    // After: nothing returns the canary's data.
    let similar_a = with_canary
        .similar(&storefront(), &a, 100)
        .expect("similar");
    assert!(
        !lists(&similar_a, &b),
        "after forget, similar(A) does not list B"
    );
    let similar_b = with_canary
        .similar(&storefront(), &b, 100)
        .expect("similar");
    assert!(
        !lists(&similar_b, &a),
        "after forget, similar(B) does not list A"
    );
    match with_canary.similar(&storefront(), CANARY_ONLY, 100) {
        Ok(list) => assert!(list.is_empty(), "nobody else holds it: {list:?}"),
        Err(error) => assert!(matches!(error, Error::NotFound { .. }), "{error}"),
    }
    assert!(matches!(
        with_canary.export(&privacy(), CANARY),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        with_canary.forget(&privacy(), CANARY),
        Err(Error::NotFound { .. })
    ));
    let after = with_canary
        .recommend(
            &storefront(),
            CANARY,
            "personalization",
            10,
            &EventContext::default(),
        )
        .expect("recommend");
    assert!(!after.personalized);
    assert_eq!(after.reason, Some(NotPersonal::UnknownSubject));
    assert!(after.items.iter().all(|item| item.because.is_empty()));
    let consents = with_canary
        .consents(&storefront(), CANARY)
        .expect("consents");
    assert!(consents.history.is_empty(), "no consent record is left");

    // Every model equals the one built without the canary.
    let (left, right) = answers_of_both(&with_canary, &without_canary, &everyone, &items);
    assert_same_answers("after forget vs never seen", &left, &right);

    // And so does a rebuild of the same vault.
    let rebuilt = with_canary.reopen();
    let (left, right) = answers_of_both(&rebuilt, &without_canary, &everyone, &items);
    assert_same_answers("rebuilt after forget vs never seen", &left, &right);
    assert!(matches!(
        rebuilt.export(&privacy(), CANARY),
        Err(Error::NotFound { .. })
    ));
    let similar_a = rebuilt.similar(&storefront(), &a, 100).expect("similar");
    assert!(!lists(&similar_a, &b));
}

/// Guards invariant 5's "models are a pure function of the retained, consented events":
/// the models learned one ingest at a time answer as the models rebuilt from the vault.
#[test]
fn models_learned_incrementally_equal_models_rebuilt_from_the_vault() {
    let CanaryShop {
        shop,
        canary_events,
        ..
    } = canary_shop();
    let mut everyone = shop.customers.clone();
    everyone.push(CANARY.to_owned());
    let mut items = shop.items.clone();
    items.push(CANARY_ONLY.to_owned());
    let mut events = shop.events.clone();
    events.extend(canary_events);
    let live = engine_with(&everyone, &events);
    let other = engine_with(&everyone, &events);
    let other = other.reopen();
    let (left, right) = answers_of_both(&live, &other, &everyone, &items);
    assert_same_answers("incremental vs rebuilt", &left, &right);
}

/// Guards invariants 4 and 5 together: a customer who never consented shaped no model, so
/// forgetting them unlearns nothing (`model_interactions` 0) and leaves every answer as it
/// was — while their stored events are still erased and the receipt is signed.
#[test]
fn forget_of_a_customer_who_never_consented_leaves_the_models_unchanged() {
    let shop = Shop::generate(5, 25, 25, "cust");
    let never = "never-consented-1";
    let mut events = shop.events.clone();
    let mut bought = event(never, "purchase", &shop.items[4], days_ago(7.0));
    bought.quantity = Some(3);
    events.extend([
        bought,
        event(never, "view", &shop.items[9], days_ago(6.0)),
        event(never, "purchase", "ONLY-NEVER-1", days_ago(5.0)),
    ]);
    let engine = engine_with(&shop.customers, &events);
    // The same data, not forgotten: what "unchanged" means.
    let twin = engine_with(&shop.customers, &events);
    let mut items = shop.items.clone();
    items.push("ONLY-NEVER-1".into());
    let figures_before = engine.figures();
    let answer = engine
        .recommend(
            &storefront(),
            never,
            "personalization",
            10,
            &EventContext::default(),
        )
        .expect("recommend");
    assert_eq!(answer.reason, Some(NotPersonal::NoConsent));

    let receipt = engine.forget(&privacy(), never).expect("forget");
    assert_eq!(receipt.erased.model_interactions, 0);
    assert_eq!(receipt.erased.events, 3);
    assert!(receipt.erased.key_destroyed);
    let public_key = from_hex(&engine.public_key().public_key).expect("hex");
    assert!(receipt.verify(&public_key));

    let figures_after = engine.figures();
    assert_eq!(
        figures_after.modelled_events,
        figures_before.modelled_events
    );
    assert_eq!(
        figures_after.modelled_subjects,
        figures_before.modelled_subjects
    );
    assert_eq!(figures_after.items, figures_before.items);
    let (left, right) = answers_of_both(&engine, &twin, &shop.customers, &items);
    assert_same_answers("forgotten without consent vs not forgotten", &left, &right);
    let answer = engine
        .recommend(
            &storefront(),
            never,
            "personalization",
            10,
            &EventContext::default(),
        )
        .expect("recommend");
    assert_eq!(answer.reason, Some(NotPersonal::UnknownSubject));
    assert!(matches!(
        engine.export(&privacy(), never),
        Err(Error::NotFound { .. })
    ));
}

/// Guards invariant 5 when the forget comes before the models' periodic refresh: EASE
/// still has the canary's events pending, and the forget must drop them rather than
/// down-date what was never applied.
#[test]
fn forget_right_after_ingest_before_any_refresh_is_exact() {
    let CanaryShop {
        shop,
        canary_events,
        ..
    } = canary_shop();
    let mut everyone = shop.customers.clone();
    everyone.push(CANARY.to_owned());
    let mut items = shop.items.clone();
    items.push(CANARY_ONLY.to_owned());
    let engine = engine_with(&everyone, &shop.events);
    let without_canary = engine_with(&shop.customers, &shop.events);
    ingest_all(&engine, &canary_events);
    assert!(personal_model_has_pending_changes(&engine));
    let receipt = engine.forget(&privacy(), CANARY).expect("forget");
    assert_eq!(receipt.erased.model_interactions, 6);
    let (left, right) = answers_of_both(&engine, &without_canary, &everyone, &items);
    assert_same_answers("forget before refresh vs never seen", &left, &right);
}
