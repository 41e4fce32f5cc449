//! Historical consent decisions (`import_consent`) and the records export that moves a shop
//! between stores: an imported decision is checked as `set_consent` checks one, keeps its
//! own time, is never recorded twice, never revives a withdrawal the subject made later,
//! and the models follow it (invariant 4); `export_records` gives back what was imported,
//! in one ledger entry per subject.

use discreet_engine::{Caller, ConsentImported, ConsentRecord, Error, EventContext};
use discreet_vault::{LedgerFilter, rfc3339};

use crate::support::*;

fn decision(granted: bool, at: i64) -> ConsentRecord {
    ConsentRecord {
        purpose: "personalization".into(),
        granted,
        source: "old-shop-banner".into(),
        at,
        policy_version: None,
    }
}

fn personalized(engine: &discreet_engine::Engine, subject: &str) -> bool {
    engine
        .recommend(
            &storefront(),
            subject,
            "personalization",
            10,
            &EventContext::default(),
        )
        .expect("recommend")
        .personalized
}

/// Guards invariant 4 for imports: a decision recorded at its own (past) time teaches the
/// models the subject's events ingested after it — the same models as a live grant — and
/// the history shows the decision's own time, not the import's.
#[test]
fn an_imported_grant_keeps_its_time_and_teaches_the_models() {
    let shop = Shop::generate(5, 12, 20, "buyer");
    let imported = TestEngine::new();
    let given_at = days_ago(40.0);
    for subject in &shop.customers {
        let outcome = imported
            .engine
            .import_consent(&storefront(), subject, &decision(true, given_at))
            .expect("import consent");
        assert_eq!(outcome, ConsentImported::Recorded);
    }
    ingest_all(&imported, &shop.events);
    imported.refresh_models();
    let live = engine_with(&shop.customers, &shop.events);
    assert_same_answers(
        "imported grants against live grants",
        &answers(&imported, &shop.customers, &shop.items),
        &answers(&live, &shop.customers, &shop.items),
    );
    assert!(personalized(&imported, &shop.customers[0]));
    let view = imported
        .engine
        .consents(&privacy(), &shop.customers[0])
        .expect("consents");
    assert_eq!(view.history.len(), 1);
    assert_eq!(view.history[0].at, rfc3339(given_at));
    assert_eq!(view.history[0].source, "old-shop-banner");
}

/// Regression guard for re-imports: the same decision (purpose, decision, source, time) is
/// recorded once; a decision older than the latest recorded for its purpose is left out,
/// so an old grant in a file cannot revive a withdrawal made since.
#[test]
fn the_same_decision_is_recorded_once_and_an_older_one_never_undoes_a_newer() {
    let engine = TestEngine::new();
    let caller = storefront();
    let grant = decision(true, days_ago(30.0));
    assert_eq!(
        engine
            .engine
            .import_consent(&caller, "c-1", &grant)
            .expect("first"),
        ConsentImported::Recorded
    );
    assert_eq!(
        engine
            .engine
            .import_consent(&caller, "c-1", &grant)
            .expect("again"),
        ConsentImported::AlreadyRecorded
    );
    withdraw(&engine, "c-1");
    let older_grant = decision(true, days_ago(10.0));
    assert_eq!(
        engine
            .engine
            .import_consent(&caller, "c-1", &older_grant)
            .expect("older"),
        ConsentImported::Superseded
    );
    let view = engine.engine.consents(&privacy(), "c-1").expect("consents");
    assert_eq!(view.history.len(), 2, "grant, then the live withdrawal");
    assert_eq!(view.consents[0].state, "withdrawn");
    // A withdrawal after the grant, in time order, is recorded and the models forget.
    let other = TestEngine::new();
    ingest_all(&other, &[event("c-2", "purchase", "A", days_ago(20.0))]);
    other
        .engine
        .import_consent(&caller, "c-2", &decision(true, days_ago(25.0)))
        .expect("grant");
    other.refresh_models();
    assert!(personalized(&other, "c-2"));
    other
        .engine
        .import_consent(&caller, "c-2", &decision(false, days_ago(5.0)))
        .expect("withdraw");
    assert!(!personalized(&other, "c-2"));
}

/// Bad input changes nothing (invariant 9): a decision dated in the future, a purpose that
/// rests on no consent, an empty source or an absurd policy version is refused naming the
/// field, and nothing is recorded.
#[test]
fn an_imported_decision_is_checked_like_a_live_one_and_never_dated_ahead() {
    let engine = TestEngine::new();
    let caller = storefront();
    let entries_before = ledger_len(&engine);
    let refused = |record: ConsentRecord, field: &str| match engine
        .engine
        .import_consent(&caller, "c-9", &record)
    {
        Err(Error::BadInput { field: named, .. }) => assert_eq!(named, field),
        other => panic!("expected bad input in `{field}`, got {other:?}"),
    };
    refused(decision(true, discreet_vault::now_millis() + 60_000), "at");
    refused(decision(true, -1), "at");
    refused(
        ConsentRecord {
            purpose: "analytics".into(),
            ..decision(true, days_ago(1.0))
        },
        "purpose",
    );
    refused(
        ConsentRecord {
            source: String::new(),
            ..decision(true, days_ago(1.0))
        },
        "source",
    );
    refused(
        ConsentRecord {
            policy_version: Some("v".repeat(500)),
            ..decision(true, days_ago(1.0))
        },
        "policy_version",
    );
    assert!(matches!(
        engine
            .engine
            .import_consent(&analyst(), "c-9", &decision(true, days_ago(1.0))),
        Err(Error::Forbidden { .. })
    ));
    assert_eq!(ledger_len(&engine), entries_before, "nothing was recorded");
    assert!(
        engine
            .engine
            .vault()
            .subject_id("c-9")
            .expect("lookup")
            .is_none()
    );
}

/// `export_records` gives back what was stored, in the import's shapes, and each subject's
/// read is one ledger entry; the listing names every active subject and never a forgotten
/// one; a customer's own session may not list anyone.
#[test]
fn export_records_gives_back_what_was_stored_in_one_entry_per_subject() {
    let engine = TestEngine::new();
    let operator = Caller::operator();
    let mut bought = event("c-1", "purchase", "85123A", days_ago(3.0));
    bought.quantity = Some(6);
    bought.context = context("rain", "United Kingdom");
    let searched = search("c-1", "heart lights", days_ago(2.0));
    let rated = rating("c-1", "85123A", 4.5, days_ago(1.0));
    ingest_all(&engine, &[bought.clone(), searched.clone(), rated.clone()]);
    ingest_all(&engine, &[event("c-2", "view", "22423", days_ago(1.0))]);
    let consented_at = days_ago(4.0);
    engine
        .engine
        .import_consent(&storefront(), "c-1", &decision(true, consented_at))
        .expect("consent");
    engine
        .engine
        .put_attributes(
            &storefront(),
            "c-1",
            &[discreet_engine::AttributeInput {
                name: "email".into(),
                value: "c1@example.com".into(),
            }],
        )
        .expect("attributes");
    engine.engine.forget(&privacy(), "c-2").expect("forget c-2");
    let mut subjects = engine.engine.export_subjects(&operator).expect("subjects");
    subjects.sort();
    assert_eq!(subjects, ["c-1"]);
    let entries_before = ledger_len(&engine);
    let records = engine
        .engine
        .export_records(&operator, "c-1")
        .expect("records");
    assert_eq!(records.events, [bought, searched, rated]);
    assert_eq!(records.attributes.len(), 1);
    assert_eq!(records.attributes[0].value, "c1@example.com");
    assert_eq!(records.consents.len(), 1);
    assert_eq!(records.consents[0].at, consented_at);
    assert_eq!(records.consents[0].source, "old-shop-banner");
    assert_eq!(
        ledger_len(&engine),
        entries_before + 1,
        "one entry for the read"
    );
    let entries = engine
        .engine
        .vault()
        .ledger(&LedgerFilter {
            limit: 1,
            ..LedgerFilter::default()
        })
        .expect("ledger");
    assert_eq!(entries[0].entry.action, "records.read");
    assert_eq!(entries[0].entry.purpose.as_deref(), Some("store_migration"));
    assert!(matches!(
        engine
            .engine
            .export_subjects(&Caller::data_subject("session-1", "c-1")),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        engine.engine.export_subjects(&storefront()),
        Err(Error::Forbidden { .. })
    ));
}
