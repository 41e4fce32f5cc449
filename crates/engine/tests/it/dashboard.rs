//! The console's dashboard: its figures come from the vault, the models and one replay of
//! the ledger, and only a role with the `console` action sees them.

use discreet_engine::{Caller, DASHBOARD_DAYS, Error};

use crate::support::{
    TestEngine, days_ago, event, grant, ingest_all, privacy, storefront, withdraw,
};

#[test]
fn the_dashboard_counts_subjects_consents_forgets_and_rights_requests_of_today() {
    let engine = TestEngine::new();
    for subject in ["c-1", "c-2", "c-3", "c-4"] {
        ingest_all(
            &engine,
            &[event(subject, "purchase", "85123A", days_ago(2.0))],
        );
    }
    for subject in ["c-1", "c-2", "c-3"] {
        grant(&engine, subject);
    }
    withdraw(&engine, "c-3");
    engine.export(&privacy(), "c-2").expect("export");
    engine.export(&privacy(), "c-2").expect("export again");
    engine.export(&privacy(), "c-1").expect("export");
    engine.forget(&privacy(), "c-4").expect("forget");

    let dashboard = engine.dashboard(&privacy()).expect("dashboard");
    assert!(dashboard.complete, "a small ledger is replayed whole");
    assert_eq!(dashboard.subjects_held, 3);
    assert_eq!(dashboard.consented_subjects, 2);
    assert_eq!(dashboard.erasures_pending, 0);
    assert_eq!(dashboard.days.len(), DASHBOARD_DAYS);
    let today = dashboard.days.last().expect("today");
    assert_eq!(today.forgets, 1);
    assert_eq!(today.consents_granted, 3);
    assert_eq!(today.consents_withdrawn, 1);
    // Two customers' data read for their rights (c-2 twice counts once).
    assert_eq!(today.rights_requests, 2);
    assert!(
        dashboard.days[..DASHBOARD_DAYS - 1]
            .iter()
            .all(|day| day.forgets == 0 && day.consents_granted == 0),
        "nothing happened on earlier days"
    );
    let personalization = dashboard
        .consents
        .iter()
        .find(|series| series.purpose == "personalization")
        .expect("a consent-based purpose");
    assert_eq!(personalization.granted_now, Some(2));
    assert_eq!(personalization.rates.len(), DASHBOARD_DAYS);
    // Today: 2 of the 3 subjects held consent; before today none were held.
    assert_eq!(personalization.rates.last(), Some(&Some(2.0 / 3.0)));
    assert_eq!(personalization.rates[0], None);
    assert!(dashboard.ledger_checked.is_none(), "not verified yet");

    engine.verify_ledger(&privacy()).expect("verify");
    let checked = engine
        .dashboard(&privacy())
        .expect("dashboard")
        .ledger_checked
        .expect("verified");
    assert!(checked.ok);
    assert!(checked.entries > 0);
}

#[test]
fn roles_without_the_console_action_are_refused() {
    let engine = TestEngine::new();
    for caller in [storefront(), Caller::key("analyst-key", "analyst")] {
        assert!(matches!(
            engine.dashboard(&caller),
            Err(Error::Forbidden { .. })
        ));
    }
    assert!(engine.dashboard(&Caller::key("admin-key", "admin")).is_ok());
}
