//! Subject-rights calls are purpose-bound, and retention is enforced from the moment the
//! background work starts.

use discreet_engine::{Caller, EngineOptions, Error};
use discreet_policy::{BUILTIN_RETAIL_TOML, Policy};

use crate::support::{days_ago, event, ingest_all, open_engine_with_policy, privacy};

/// Invariant 3 (purpose-bound use): export and forget read every category of a subject
/// under `subject_rights`; a role that has the actions but not that purpose is refused,
/// and nothing changes.
#[test]
fn export_and_forget_need_the_subject_rights_purpose() {
    let toml = BUILTIN_RETAIL_TOML.replace(
        "purposes = [\"subject_rights\"]",
        "purposes = [\"analytics\"]",
    );
    let policy = Policy::from_toml_str(&toml, "test").expect("policy");
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = open_engine_with_policy(dir.path(), policy, EngineOptions::default());
    ingest_all(&engine, &[event("c-1", "purchase", "A", days_ago(2.0))]);

    for outcome in [
        engine.export(&privacy(), "c-1").map(|_| ()),
        engine.forget(&privacy(), "c-1").map(|_| ()),
    ] {
        match outcome {
            Err(Error::Forbidden { detail }) => {
                assert!(detail.contains("subject_rights"), "{detail}")
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }
    let export = engine
        .export(&Caller::operator(), "c-1")
        .expect("the subject is untouched");
    assert_eq!(export.events.len(), 1);
}

/// Invariant 6 (retention): data that expired while discreet was stopped is erased by a
/// sweep that runs as soon as the background work starts, not an interval later.
#[test]
fn the_first_retention_sweep_runs_when_the_background_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Stored while purchases were kept 5 years (an event already past retention is refused
    // at ingest); the built-in policy, in force at the next start, keeps them 3 years: one
    // is then past it, one is not.
    let kept_longer = "retention = \"3 years\"\nretention_reason = \"Covers the two-year";
    assert!(BUILTIN_RETAIL_TOML.contains(kept_longer));
    let earlier_policy = Policy::from_toml_str(
        &BUILTIN_RETAIL_TOML.replace(
            kept_longer,
            "retention = \"5 years\"\nretention_reason = \"Covers the two-year",
        ),
        "purchases-kept-5-years",
    )
    .expect("policy");
    {
        let earlier = open_engine_with_policy(dir.path(), earlier_policy, EngineOptions::default());
        ingest_all(
            &earlier,
            &[
                event("c-1", "purchase", "A", days_ago(4.0 * 366.0)),
                event("c-1", "purchase", "B", days_ago(2.0)),
            ],
        );
        earlier.shutdown();
    }
    let engine = open_engine_with_policy(
        dir.path(),
        Policy::builtin_retail(),
        EngineOptions::default(),
    );
    assert_eq!(engine.vault().count_events().expect("count"), 2);
    engine.start_background();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while engine.vault().count_events().expect("count") != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired purchase was not erased at start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    engine.shutdown();
}

/// A customer's own caller (a privacy-center session) sees, decides and forgets only its
/// own data: naming anyone else, or asking for what only the shop's keys do, is refused and
/// changes nothing; what it does is on the ledger as `portal:<session id>`.
#[test]
fn a_customers_own_caller_reaches_only_that_customer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = open_engine_with_policy(
        dir.path(),
        Policy::builtin_retail(),
        EngineOptions::default(),
    );
    ingest_all(
        &engine,
        &[
            event("c-1", "purchase", "A", days_ago(2.0)),
            event("c-2", "purchase", "B", days_ago(2.0)),
        ],
    );
    let own = Caller::data_subject("ps_test", "c-1");

    let export = engine.export(&own, "c-1").expect("own export");
    assert_eq!(export.events.len(), 1);
    engine
        .set_consent(&own, "c-1", "personalization", true, "privacy-center")
        .expect("own consent");
    assert!(engine.consents(&own, "c-1").is_ok());

    let refused = [
        engine.export(&own, "c-2").map(|_| ()),
        engine.consents(&own, "c-2").map(|_| ()),
        engine
            .set_consent(&own, "c-2", "personalization", true, "privacy-center")
            .map(|_| ()),
        engine.forget(&own, "c-2").map(|_| ()),
        engine
            .honour_gpc(&own, discreet_policy::Action::ConsentsRead, &["c-2".into()])
            .map(|_| ()),
        engine
            .recommend(
                &own,
                "c-1",
                "personalization",
                5,
                &discreet_engine::EventContext::default(),
            )
            .map(|_| ()),
        engine
            .audit(&own, &discreet_engine::AuditQuery::default())
            .map(|_| ()),
    ];
    for outcome in refused {
        assert!(
            matches!(outcome, Err(Error::Forbidden { .. })),
            "expected Forbidden, got {outcome:?}"
        );
    }
    let other = engine
        .export(&Caller::operator(), "c-2")
        .expect("c-2 untouched");
    assert_eq!(other.events.len(), 1);
    assert!(
        other.consents.history.is_empty(),
        "no consent was recorded for c-2"
    );

    let own_entries = export_actors(&engine, "c-1");
    assert!(own_entries.iter().any(|actor| actor == "portal:ps_test"));
    let receipt = engine.forget(&own, "c-1").expect("own forget");
    assert!(receipt.erased.key_destroyed);
    assert!(
        export_actors(&engine, "c-2")
            .iter()
            .all(|actor| actor != "portal:ps_test")
    );
}

/// The actors of a subject's access log, as the operator's export shows them.
fn export_actors(engine: &discreet_engine::Engine, subject: &str) -> Vec<String> {
    engine
        .export(&Caller::operator(), subject)
        .expect("export")
        .access_log
        .into_iter()
        .map(|entry| entry.actor)
        .collect()
}
