//! `Sec-GPC: 1` records a withdrawal of every consent-based purpose the policy marks as
//! sale or sharing, for the subjects a request names.

use discreet_policy::Policy;
use serde_json::{Value, json};

use crate::support::{Req, TestApp, view};

/// A small shop whose partner-advertising purpose shares data (sale/sharing under CCPA).
const GPC_POLICY: &str = include_str!("../../../policy/tests/it/valid/sale_or_sharing.toml");

fn gpc_app() -> TestApp {
    TestApp::with_policy(Policy::from_toml_str(GPC_POLICY, "gpc-test.toml").expect("policy"))
}

fn withdrawals_by_gpc(consents: &Value) -> Vec<&Value> {
    consents["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["source"] == "gpc-header")
        .collect()
}

fn state_of<'a>(consents: &'a Value, purpose: &str) -> &'a Value {
    &consents["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["purpose"] == purpose)
        .unwrap_or_else(|| panic!("{purpose} in {consents}"))["state"]
}

#[tokio::test]
async fn sec_gpc_withdraws_sale_or_sharing_purposes() {
    let t = gpc_app();
    let url = "/v1/subjects/c-gpc/consents";
    for purpose in ["personalization", "partner_ads"] {
        t.send(
            Req::put(format!("{url}/{purpose}"))
                .key(&t.storefront)
                .json(&json!({"granted": true, "source": "banner"})),
        )
        .await
        .ok();
    }
    let before = t.send(Req::get(url).key(&t.storefront)).await.ok();
    assert_eq!(state_of(&before, "partner_ads"), "granted");
    assert!(withdrawals_by_gpc(&before).is_empty());

    // `Sec-GPC: 0` and other values are not a signal.
    for value in ["0", "yes"] {
        let answer = t
            .send(Req::get(url).key(&t.storefront).header("Sec-GPC", value))
            .await
            .ok();
        assert!(withdrawals_by_gpc(&answer).is_empty(), "Sec-GPC: {value}");
    }

    let after = t
        .send(Req::get(url).key(&t.storefront).header("Sec-GPC", "1"))
        .await
        .ok();
    let withdrawals = withdrawals_by_gpc(&after);
    assert_eq!(withdrawals.len(), 1, "{after}");
    assert_eq!(withdrawals[0]["purpose"], "partner_ads");
    assert_eq!(withdrawals[0]["state"], "withdrawn");
    assert_eq!(withdrawals[0]["policy_version"], "gpc-test-1");
    assert_eq!(state_of(&after, "partner_ads"), "withdrawn");
    // Consent-based purposes that do not sell or share are left alone.
    assert_eq!(state_of(&after, "personalization"), "granted");

    // The signal on every request records nothing new once withdrawn.
    let again = t
        .send(Req::get(url).key(&t.storefront).header("Sec-GPC", "1"))
        .await
        .ok();
    assert_eq!(withdrawals_by_gpc(&again).len(), 1);

    // A later grant is the customer's own decision; the next signal withdraws it again.
    t.send(
        Req::put(format!("{url}/partner_ads"))
            .key(&t.storefront)
            .json(&json!({"granted": true, "source": "banner"})),
    )
    .await
    .ok();
    let regranted = t.send(Req::get(url).key(&t.storefront)).await.ok();
    assert_eq!(state_of(&regranted, "partner_ads"), "granted");
    t.send(
        Req::get("/v1/subjects/c-gpc/recommendations")
            .key(&t.storefront)
            .header("Sec-GPC", "1"),
    )
    .await
    .ok();
    let last = t.send(Req::get(url).key(&t.storefront)).await.ok();
    assert_eq!(state_of(&last, "partner_ads"), "withdrawn");
    assert_eq!(withdrawals_by_gpc(&last).len(), 2);

    // The ledger records the withdrawal under the key that relayed the signal.
    let storefront_key = t
        .engine
        .authenticate(&t.storefront)
        .expect("live storefront key")
        .key_id;
    assert!(t.ledger().iter().any(|record| {
        record.entry.actor == storefront_key && record.entry.action == "consent.withdrawn"
    }));
}

#[tokio::test]
async fn sec_gpc_on_ingest_and_attributes_covers_the_subjects_named() {
    let t = gpc_app();
    let answer = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .header("Sec-GPC", "1")
                .json(&json!({"events": [view("c-new-1", "A", 2), view("c-new-2", "B", 1)]})),
        )
        .await
        .ok();
    assert_eq!(answer["accepted"], 2);
    for subject in ["c-new-1", "c-new-2"] {
        let consents = t
            .send(Req::get(format!("/v1/subjects/{subject}/consents")).key(&t.storefront))
            .await
            .ok();
        let withdrawals = withdrawals_by_gpc(&consents);
        assert_eq!(withdrawals.len(), 1, "{subject}: {consents}");
        assert_eq!(withdrawals[0]["purpose"], "partner_ads");
        assert_eq!(state_of(&consents, "personalization"), "never");
    }

    t.send(
        Req::put("/v1/subjects/c-new-3/attributes")
            .key(&t.storefront)
            .header("Sec-GPC", "1")
            .json(&json!({"email": "c3@example.com"})),
    )
    .await
    .ok();
    let consents = t
        .send(Req::get("/v1/subjects/c-new-3/consents").key(&t.storefront))
        .await
        .ok();
    assert_eq!(withdrawals_by_gpc(&consents).len(), 1, "{consents}");

    // The built-in policy sells or shares nothing: the signal records nothing there.
    let retail = TestApp::new();
    retail.ingest(vec![view("c-1", "A", 2)]);
    let consents = retail
        .send(
            Req::get("/v1/subjects/c-1/consents")
                .key(&retail.storefront)
                .header("Sec-GPC", "1"),
        )
        .await
        .ok();
    assert_eq!(consents["history"], json!([]));
}

/// A request the caller's role may not make is answered 403 and changes nothing — not
/// even through the `Sec-GPC` header it carries.
#[tokio::test]
async fn a_forbidden_request_with_sec_gpc_changes_no_consent() {
    let t = gpc_app();
    t.consent("c-gpc", "partner_ads", true);
    let (_, ledger_before) = t.stored();
    for path in [
        "/v1/subjects/c-gpc/recommendations",
        "/v1/subjects/c-gpc/consents",
    ] {
        t.send(Req::get(path).key(&t.analyst).header("Sec-GPC", "1"))
            .await
            .problem(403, "forbidden");
    }
    let consents = t
        .send(Req::get("/v1/subjects/c-gpc/consents").key(&t.storefront))
        .await
        .ok();
    assert_eq!(
        state_of(&consents, "partner_ads"),
        "granted",
        "a 403 request withdrew a consent: {consents}"
    );
    assert!(withdrawals_by_gpc(&consents).is_empty(), "{consents}");
    // The storefront's read itself adds one entry (consents.read); nothing else was written.
    assert_eq!(t.stored().1, ledger_before + 1);
}
