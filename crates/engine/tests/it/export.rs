//! Invariants 2 (encrypted per subject at rest) and the right of access: the export tells
//! a customer everything held and derived about them, while no file the engine writes holds
//! any of it in plaintext.

use discreet_engine::{AttributeInput, Error};
use serde_json::json;

use crate::support::*;

const CUSTOMER: &str = "export-me-7f3a9";
const EMAIL: &str = "zebulon.canaryfield.7f3a9@example.com";
const FIRST_NAME: &str = "Zebulon";
const ITEM: &str = "CANARY-ITEM-7F3A9";
const QUERY: &str = "canaryfield wedding 7f3a9";

fn scan_for_plaintext(dir: &std::path::Path, phase: &str) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(
        files.iter().any(|file| file.ends_with("vault.sqlite")),
        "{phase}: the scan sees the data file: {files:?}"
    );
    for file in &files {
        let bytes = std::fs::read(file).expect("read file");
        for secret in [CUSTOMER, EMAIL, FIRST_NAME, ITEM, QUERY] {
            for form in [
                secret.to_owned(),
                secret.to_lowercase(),
                secret.to_uppercase(),
            ] {
                assert!(
                    !contains(&bytes, form.as_bytes()),
                    "{phase}: `{form}` found in plaintext in {}",
                    file.display()
                );
            }
        }
    }
}

/// Guards invariant 2 and the right of access (GDPR Art. 15, 20): the export of a
/// consenting customer holds their events, attributes, consents with history, what the
/// models hold, the purposes, retention and a non-empty access log — and the email that the
/// export shows appears in no byte of any file under the data folder, open or closed.
#[test]
fn export_holds_everything_and_the_files_hold_nothing_readable() {
    let shop = Shop::generate(31, 12, 12, "neighbour");
    let engine = engine_with(&shop.customers, &shop.events);
    grant(&engine, CUSTOMER);
    engine
        .set_consent(
            &storefront(),
            CUSTOMER,
            "marketing_email",
            true,
            "sign-up form",
        )
        .expect("grant marketing");
    engine
        .set_consent(
            &storefront(),
            CUSTOMER,
            "marketing_email",
            false,
            "email footer",
        )
        .expect("withdraw marketing");
    let written = engine
        .put_attributes(
            &storefront(),
            CUSTOMER,
            &[
                AttributeInput {
                    name: "email".into(),
                    value: EMAIL.into(),
                },
                AttributeInput {
                    name: "first_name".into(),
                    value: FIRST_NAME.into(),
                },
            ],
        )
        .expect("attributes");
    assert_eq!(written.len(), 2);
    let mut purchase = event(CUSTOMER, "purchase", ITEM, days_ago(12.0));
    purchase.quantity = Some(4);
    let events = vec![
        purchase,
        event(CUSTOMER, "view", &shop.items[0], days_ago(11.0)),
        event(CUSTOMER, "purchase", &shop.items[1], days_ago(10.0)),
        search(CUSTOMER, QUERY, days_ago(9.0)),
    ];
    assert_eq!(ingest(&engine, &events).expect("ingest").accepted, 4);
    engine
        .recommend(
            &storefront(),
            CUSTOMER,
            "personalization",
            5,
            &discreet_engine::EventContext::default(),
        )
        .expect("recommend");

    // Checked as the JSON document the customer receives.
    let export =
        serde_json::to_value(engine.export(&privacy(), CUSTOMER).expect("export")).expect("json");
    assert_eq!(export["subject"], CUSTOMER);
    let token = export["subject_token"].as_str().expect("token");
    assert!(!token.is_empty() && !token.contains(CUSTOMER));

    let exported_events = export["events"].as_array().expect("events");
    assert_eq!(exported_events.len(), 4);
    assert!(exported_events.iter().any(|event| event["item"] == ITEM
        && event["quantity"] == 4
        && event["category"] == "user.behavior.purchase_history"));
    assert!(exported_events.iter().any(|event| event["query"] == QUERY));

    assert_eq!(export["attributes"]["email"]["value"], EMAIL);
    assert_eq!(
        export["attributes"]["email"]["category"],
        "user.contact.email"
    );
    assert_eq!(export["attributes"]["first_name"]["value"], FIRST_NAME);

    let states = export["consents"]["consents"].as_array().expect("states");
    let state_of = |purpose: &str| {
        states
            .iter()
            .find(|state| state["purpose"] == purpose)
            .map(|state| state["state"].clone())
    };
    assert_eq!(state_of("personalization"), Some(json!("granted")));
    assert_eq!(state_of("marketing_email"), Some(json!("withdrawn")));
    let history = export["consents"]["history"].as_array().expect("history");
    assert_eq!(history.len(), 3);
    assert!(
        history
            .iter()
            .any(|decision| decision["source"] == "email footer"
                && decision["state"] == "withdrawn"
                && decision["policy_version"] == "builtin-retail-1")
    );

    assert_eq!(export["derived"]["learned"], true);
    let held: Vec<&str> = export["derived"]["models_hold"]
        .as_array()
        .expect("models_hold")
        .iter()
        .filter_map(|held| held["item"].as_str())
        .collect();
    assert!(
        held.contains(&ITEM),
        "the models hold the purchase: {held:?}"
    );
    assert!(held.contains(&shop.items[0].as_str()));

    let purposes = export["purposes"].as_array().expect("purposes");
    assert!(
        purposes
            .iter()
            .any(|purpose| purpose["purpose"] == "personalization"
                && purpose["legal_basis"] == "consent")
    );
    assert!(
        export["retention"]["user.behavior.purchase_history"]
            .as_str()
            .is_some_and(|retention| retention.contains('3'))
    );
    let categories = export["categories"].as_array().expect("categories");
    assert!(categories.iter().any(|category| category["category"]
        == "user.behavior.purchase_history"
        && category["records"] == 2));
    let access_log = export["access_log"].as_array().expect("access_log");
    assert!(!access_log.is_empty());
    let actions: Vec<&str> = access_log
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    assert!(
        actions.iter().any(|action| action.contains("ingest")),
        "the access log lists the writes: {actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|action| action.contains("recommendations")),
        "the access log lists the reads: {actions:?}"
    );

    let text = serde_json::to_string(&export).expect("json");
    assert!(text.contains(EMAIL), "the export shows the email");

    // The same values are in no file, while the engine is open and after it closed.
    scan_for_plaintext(engine.dir.path(), "open");
    let dir = engine.dir.path().to_owned();
    let engine = engine.reopen();
    scan_for_plaintext(&dir, "reopened");
    let again = engine.export(&privacy(), CUSTOMER).expect("export");
    assert_eq!(again.attributes["email"].value, EMAIL);
    let TestEngine { engine, dir, .. } = engine;
    drop(engine);
    scan_for_plaintext(dir.path(), "closed");
}

/// Guards the right of access's scope: only roles allowed `export` may read a whole
/// record, and a customer discreet does not know is not found (not an empty document).
#[test]
fn export_of_an_unknown_customer_is_not_found() {
    let engine = TestEngine::new();
    assert!(matches!(
        engine.export(&privacy(), "never-seen"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        engine.export(&analyst(), "never-seen"),
        Err(Error::Forbidden { .. })
    ));
    match engine.export(&privacy(), "") {
        Err(Error::BadInput { field, .. }) => assert_eq!(field, "subject"),
        other => panic!("an empty subject is bad input: {other:?}"),
    }
}
