//! Incidents: the impact computed from the ledger counts exactly what a key read in the
//! window, per category; forgotten subjects stay counted; roles are refused.

use discreet_engine::{
    AttributeInput, Caller, ContainRequest, Error, EventContext, IncidentKind, IncidentRequest,
    Missing, NOTIFY_WITHIN_MILLIS,
};
use discreet_vault::now_millis;

use crate::support::{TestEngine, days_ago, event, grant, ingest_all, storefront};

fn admin() -> Caller {
    Caller::key("admin-key", "admin")
}

/// A customer with 2 purchases, 1 view and an email address.
fn customer(engine: &TestEngine, subject: &str) {
    ingest_all(
        engine,
        &[
            event(subject, "purchase", "85123A", days_ago(3.0)),
            event(subject, "purchase", "22423", days_ago(2.0)),
            event(subject, "view", "47566", days_ago(1.0)),
        ],
    );
    engine
        .put_attributes(
            &storefront(),
            subject,
            &[AttributeInput {
                name: "email".into(),
                value: format!("{subject}@example.com"),
            }],
        )
        .expect("attributes");
}

fn key_compromised(key_id: &str, since: i64) -> IncidentRequest {
    IncidentRequest {
        kind: IncidentKind::KeyCompromised,
        key_id: Some(key_id.to_owned()),
        since: Some(since),
        until: None,
        aware_at: None,
        kek_exposed: None,
        description: Some("a laptop with the key was stolen".into()),
    }
}

fn wait_a_millisecond() {
    std::thread::sleep(std::time::Duration::from_millis(3));
}

#[test]
fn a_key_that_read_s_subjects_yields_exactly_s_with_per_category_counts() {
    let engine = TestEngine::new();
    for subject in ["c-1", "c-2", "c-3", "c-4", "c-5"] {
        customer(&engine, subject);
    }
    let leaked = engine
        .create_api_key(&admin(), "privacy", "leaked")
        .expect("key");
    let other = engine
        .create_api_key(&admin(), "privacy", "other")
        .expect("key");
    let leaked_caller = Caller::key(leaked.id.clone(), "privacy");
    let other_caller = Caller::key(other.id.clone(), "privacy");
    // Before the window: not counted.
    engine.export(&leaked_caller, "c-5").expect("export");
    wait_a_millisecond();
    let since = now_millis();
    wait_a_millisecond();
    for subject in ["c-1", "c-2", "c-3"] {
        engine.export(&leaked_caller, subject).expect("export");
    }
    // Read twice: the same records, counted once.
    engine.export(&leaked_caller, "c-1").expect("export");
    // Another key: not counted.
    engine.export(&other_caller, "c-4").expect("export");

    let incident = engine
        .create_incident(&admin(), key_compromised(&leaked.id, since))
        .expect("incident");
    assert!(incident.ledger.ok, "{:?}", incident.ledger);
    assert_eq!(incident.impact.subjects, 3);
    assert!(incident.impact.intelligible);
    assert!(!incident.impact.approximate);
    let by_category: Vec<(&str, u64, u64)> = incident
        .impact
        .categories
        .iter()
        .map(|c| (c.category.as_str(), c.subjects, c.records))
        .collect();
    assert_eq!(
        by_category,
        vec![
            ("user.behavior.browsing_history", 3, 3),
            ("user.behavior.purchase_history", 3, 6),
            ("user.contact.email", 3, 3),
            ("user.privacy_preferences", 3, 0),
        ],
        "{:#?}",
        incident.impact
    );
    assert_eq!(incident.impact.records, 12);
    assert_eq!(incident.impact.purposes, vec!["subject_rights".to_owned()]);
    assert_eq!(incident.notify_by, incident.aware_at + NOTIFY_WITHIN_MILLIS);
    assert_eq!(NOTIFY_WITHIN_MILLIS, 72 * 3600 * 1000);
    assert!(incident.report.contact.contains("dpo@example.com"));
    assert!(incident.report.nature.contains(&leaked.id));
    assert!(incident.report.likely_consequences.contains("phishing"));

    // Stored, signed, listed.
    let listed = engine.incidents(&admin()).expect("list");
    assert!(listed.unreadable.is_empty());
    let listed = listed.incidents;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].impact, incident.impact);
    assert!(listed[0].signature.is_some());
    let markdown = engine
        .incident_report(&admin(), &incident.id)
        .expect("report");
    assert!(
        markdown.contains("| user.behavior.purchase_history | 3 | 6 |"),
        "{markdown}"
    );
    assert!(markdown.contains("Notify the supervisory authority by"));
    for subject in ["c-1", "c-2", "c-3"] {
        assert!(!markdown.contains(subject), "the report names no customer");
    }

    // A forgotten subject stays counted, but its id is gone.
    engine.forget(&admin(), "c-2").expect("forget");
    let again = engine.incident(&admin(), &incident.id).expect("incident");
    assert_eq!(again.impact.subjects, 3);
    let affected = engine
        .incident_subjects(&admin(), &incident.id)
        .expect("subjects");
    assert_eq!(affected.subjects, vec!["c-1".to_owned(), "c-3".to_owned()]);
    assert_eq!(affected.forgotten, 1);
}

#[test]
fn recommendation_reads_count_their_subjects_and_categories() {
    let engine = TestEngine::new();
    for subject in ["r-1", "r-2", "r-3"] {
        grant(&engine, subject);
        customer(&engine, subject);
    }
    let key = engine
        .create_api_key(&admin(), "storefront", "web")
        .expect("key");
    let caller = Caller::key(key.id.clone(), "storefront");
    let since = now_millis() - 1;
    for subject in ["r-1", "r-2"] {
        let answer = engine
            .recommend(
                &caller,
                subject,
                "personalization",
                5,
                &EventContext::default(),
            )
            .expect("recommend");
        assert!(answer.personalized);
    }
    let incident = engine
        .create_incident(&admin(), key_compromised(&key.id, since))
        .expect("incident");
    assert_eq!(incident.impact.subjects, 2, "{:#?}", incident.impact);
    assert_eq!(incident.impact.recommendation_reads, 2);
    assert_eq!(incident.impact.purposes, vec!["personalization".to_owned()]);
    assert!(
        incident
            .impact
            .categories
            .iter()
            .all(|category| category.subjects == 2 && category.records == 0)
    );
    // The key's role says what it could read.
    assert!(incident.report.nature.contains("storefront"));
}

#[test]
fn a_consent_the_key_records_is_not_a_read_by_that_key() {
    let engine = TestEngine::new();
    customer(&engine, "g-1");
    let key = engine
        .create_api_key(&admin(), "storefront", "checkout")
        .expect("key");
    let caller = Caller::key(key.id.clone(), "storefront");
    let since = now_millis() - 1;
    // The grant teaches the models the customer's history: the models read it, the key
    // that recorded the decision never sees it.
    engine
        .set_consent(&caller, "g-1", "personalization", true, "checkout-banner")
        .expect("grant");
    let incident = engine
        .create_incident(&admin(), key_compromised(&key.id, since))
        .expect("incident");
    assert_eq!(incident.impact.subjects, 0, "{:#?}", incident.impact);
    assert_eq!(incident.impact.records, 0);
    // Nor is it an exposure of the window: discreet's own reads reach no caller.
    let window = IncidentRequest {
        kind: IncidentKind::Window,
        key_id: None,
        ..key_compromised(&key.id, since)
    };
    let window = engine.create_incident(&admin(), window).expect("window");
    assert_eq!(window.impact.subjects, 0, "{:#?}", window.impact);
    let learned = engine
        .audit(
            &admin(),
            &discreet_engine::AuditQuery {
                subject: Some("g-1".into()),
                actor: Some("learner".into()),
                since: Some(since),
                until: None,
                limit: 10,
            },
        )
        .expect("audit");
    assert!(
        learned
            .iter()
            .any(|record| record.entry.action == "events.read"),
        "the models' read is on the ledger under the learner"
    );
}

#[test]
fn a_window_counts_every_key_and_a_data_copy_without_the_kek_is_unintelligible() {
    let engine = TestEngine::new();
    for subject in ["w-1", "w-2"] {
        customer(&engine, subject);
    }
    let since = now_millis() - 1;
    engine
        .export(&Caller::key("k-a", "privacy"), "w-1")
        .expect("export");
    engine
        .export(&Caller::key("k-b", "admin"), "w-2")
        .expect("export");
    let window = engine
        .create_incident(
            &admin(),
            IncidentRequest {
                kind: IncidentKind::Window,
                key_id: None,
                since: Some(since),
                until: None,
                aware_at: None,
                kek_exposed: None,
                description: None,
            },
        )
        .expect("window");
    assert_eq!(window.impact.subjects, 2);

    wait_a_millisecond();
    let copy_at = now_millis();
    wait_a_millisecond();
    customer(&engine, "w-3"); // after the copy: not in it
    let copy = |kek_exposed| IncidentRequest {
        kind: IncidentKind::DataCopy,
        key_id: None,
        since: Some(copy_at),
        until: None,
        aware_at: None,
        kek_exposed,
        description: None,
    };
    let sealed = engine.create_incident(&admin(), copy(None)).expect("copy");
    assert_eq!(sealed.impact.subjects, 2, "{:#?}", sealed.impact);
    assert_eq!(sealed.impact.records, 8);
    assert!(!sealed.impact.intelligible);
    assert!(
        sealed
            .impact
            .in_clear
            .iter()
            .any(|what| what.contains("internal subject ids"))
    );
    assert!(sealed.report.likely_consequences.contains("low"));
    let exposed = engine
        .create_incident(&admin(), copy(Some(true)))
        .expect("copy");
    assert!(exposed.impact.intelligible);
    assert!(exposed.impact.in_clear.is_empty());
}

#[test]
fn incidents_refuse_other_roles_and_bad_requests_and_contain_by_revoking() {
    let engine = TestEngine::new();
    customer(&engine, "x-1");
    let key = engine
        .create_api_key(&admin(), "storefront", "web")
        .expect("key");
    let request = key_compromised(&key.id, now_millis() - 1000);
    for caller in [storefront(), Caller::key("analyst-key", "analyst")] {
        assert!(matches!(
            engine.create_incident(&caller, request.clone()),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            engine.incidents(&caller),
            Err(Error::Forbidden { .. })
        ));
    }
    assert!(
        engine
            .incidents(&admin())
            .expect("list")
            .incidents
            .is_empty()
    );
    let privacy = Caller::key("privacy-key", "privacy");
    let unknown = key_compromised("key_000000000000", now_millis() - 1000);
    assert!(matches!(
        engine.create_incident(&privacy, unknown),
        Err(Error::NotFound {
            what: Missing::ApiKey
        })
    ));
    let mut no_key = request.clone();
    no_key.key_id = None;
    assert!(matches!(
        engine.create_incident(&privacy, no_key),
        Err(Error::BadInput { field, .. }) if field == "key_id"
    ));
    let mut backwards = request.clone();
    backwards.until = Some(now_millis() - 5000);
    assert!(matches!(
        engine.create_incident(&privacy, backwards),
        Err(Error::BadInput { field, .. }) if field == "since"
    ));
    let mut future = request.clone();
    future.aware_at = Some(now_millis() + 3_600_000);
    assert!(matches!(
        engine.create_incident(&privacy, future),
        Err(Error::BadInput { field, .. }) if field == "aware_at"
    ));
    assert!(
        engine
            .incidents(&admin())
            .expect("list")
            .incidents
            .is_empty()
    );

    let incident = engine.create_incident(&privacy, request).expect("incident");
    assert!(engine.authenticate(&key.secret).is_some());
    let rotate = ContainRequest {
        revoke_key: false,
        rotate_kek: true,
    };
    assert!(matches!(
        engine.contain_incident(&privacy, &incident.id, rotate),
        Err(Error::Conflict { .. })
    ));
    assert!(
        engine.authenticate(&key.secret).is_some(),
        "a refused rotation changes nothing"
    );
    // Both at once without a recorded rotation: the key is revoked all the same, and the
    // answer says the rotation is still missing.
    let both = ContainRequest {
        revoke_key: true,
        rotate_kek: true,
    };
    assert!(matches!(
        engine.contain_incident(&privacy, &incident.id, both),
        Err(Error::Conflict { detail }) if detail.starts_with("the key is revoked")
    ));
    assert!(engine.authenticate(&key.secret).is_none());
    let revoke = ContainRequest {
        revoke_key: true,
        rotate_kek: false,
    };
    let contained = engine
        .contain_incident(&privacy, &incident.id, revoke)
        .expect("contain");
    let revoked_at = contained.containment.key_revoked_at.expect("revoked");
    assert!(contained.report.measures.contains("revoked at"));
    // Again: the first time stays.
    let again = engine
        .contain_incident(&privacy, &incident.id, revoke)
        .expect("contain");
    assert_eq!(again.containment.key_revoked_at, Some(revoked_at));
    assert!(matches!(
        engine.incident(&privacy, "inc_doesnotexist"),
        Err(Error::NotFound {
            what: Missing::Incident
        })
    ));
}

#[test]
fn a_leaked_key_is_followed_into_the_privacy_center_sessions_it_opened() {
    let engine = TestEngine::new();
    for subject in ["c-1", "c-2"] {
        customer(&engine, subject);
    }
    let leaked = engine
        .create_api_key(&admin(), "storefront", "leaked")
        .expect("key");
    let other = engine
        .create_api_key(&admin(), "storefront", "other")
        .expect("key");
    // Opened just before the window, used inside it: counted.
    engine
        .open_portal(
            &Caller::key(leaked.id.clone(), "storefront"),
            "c-1",
            "ps_leaked",
        )
        .expect("open");
    // A session another key opened: not counted.
    engine
        .open_portal(
            &Caller::key(other.id.clone(), "storefront"),
            "c-2",
            "ps_other",
        )
        .expect("open");
    wait_a_millisecond();
    let since = now_millis();
    wait_a_millisecond();
    engine
        .export(&Caller::data_subject("ps_leaked", "c-1"), "c-1")
        .expect("export");
    engine
        .export(&Caller::data_subject("ps_other", "c-2"), "c-2")
        .expect("export");
    let incident = engine
        .create_incident(&admin(), key_compromised(&leaked.id, since))
        .expect("incident");
    assert_eq!(incident.impact.subjects, 1, "{:#?}", incident.impact);
    let affected = engine
        .incident_subjects(&admin(), &incident.id)
        .expect("subjects");
    assert_eq!(affected.subjects, vec!["c-1".to_owned()]);
    let purchases = incident
        .impact
        .categories
        .iter()
        .find(|c| c.category == "user.behavior.purchase_history")
        .expect("purchases");
    assert_eq!((purchases.subjects, purchases.records), (1, 2));
}
