//! The incident routes (API.md, "Incidents and the breach-impact report"): the answer's
//! shape and its 72-hour clock, an impact that counts exactly the subjects a leaked key
//! read, the role check on every route, bad input named without its value, the Markdown
//! report, the affected customers, and containment that locks the leaked key out.

use axum::http::{Method, StatusCode};
use discreet_engine::Caller;
use discreet_vault::{now_millis, rfc3339};
use serde_json::{Value, json};

use crate::support::{CUSTOMER, Req, TestApp, hours_ago};

/// 72 hours, in milliseconds.
const SEVENTY_TWO_HOURS: i64 = 72 * 3_600_000;

/// A storefront key issued for the test, as the leaked one: (id, secret).
fn leaked_storefront_key(t: &TestApp) -> (String, String) {
    let issued = t
        .engine
        .create_api_key(&Caller::operator(), "storefront", "leaked web shop key")
        .expect("key");
    (issued.id, issued.secret.to_string())
}

/// Opens an incident with the privacy key; the 201 answer's body.
async fn create(t: &TestApp, body: &Value) -> Value {
    let reply = t
        .send(Req::post("/v1/incidents").key(&t.privacy).json(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "body: {}", reply.text());
    assert!(reply.content_type().starts_with("application/json"));
    reply.json()
}

#[tokio::test]
async fn a_created_incident_has_the_documented_shape_and_a_72_hour_clock() {
    let t = TestApp::new();
    t.seed_shop();
    let (key_id, _) = leaked_storefront_key(&t);
    let aware_ms = now_millis() - 3_600_000;
    let aware_at = rfc3339(aware_ms);
    let incident = create(
        &t,
        &json!({"kind": "key_compromised", "key_id": key_id, "since": hours_ago(2),
                "aware_at": aware_at, "description": "the key was pasted in a public chat"}),
    )
    .await;

    let id = incident["id"].as_str().expect("id");
    assert!(id.starts_with("inc_"), "{incident}");
    assert_eq!(incident["kind"], "key_compromised");
    assert_eq!(incident["key_id"], key_id.as_str());
    assert_eq!(incident["aware_at"], aware_at.as_str());
    assert_eq!(
        incident["notify_by"],
        rfc3339(aware_ms + SEVENTY_TWO_HOURS).as_str(),
        "notify_by is aware_at + 72 h: {incident}"
    );
    let impact = &incident["impact"];
    assert_eq!(impact["subjects"], 0, "the key read nothing: {impact}");
    assert_eq!(impact["records"], 0);
    assert!(impact["categories"].is_array(), "{impact}");
    assert!(impact["purposes"].is_array(), "{impact}");
    assert_eq!(impact["intelligible"], true);
    assert_eq!(
        impact["subject_tokens_url"],
        format!("/v1/incidents/{id}/subjects").as_str()
    );
    assert_eq!(
        incident["containment"],
        json!({"key_revoked_at": null, "kek_rotated_at": null})
    );
    for section in [
        "nature",
        "categories_and_numbers",
        "contact",
        "likely_consequences",
        "measures",
    ] {
        assert!(
            incident["report"][section]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "report.{section}: {incident}"
        );
    }
    assert_eq!(incident["ledger"]["ok"], true, "{incident}");
    assert!(incident["signature"].is_object(), "{incident}");

    // Read back as it was answered, and listed.
    let read = t
        .send(Req::get(format!("/v1/incidents/{id}")).key(&t.privacy))
        .await
        .ok();
    assert_eq!(read, incident);
    let listed = t.send(Req::get("/v1/incidents").key(&t.admin)).await.ok();
    let ids: Vec<&str> = listed["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter_map(|incident| incident["id"].as_str())
        .collect();
    assert_eq!(ids, vec![id], "{listed}");
}

/// The leaked key read 4 customers (3 recommendation lists, 2 consent histories, one of the
/// same customer); another key's reads and answers that disclosed nothing personal are not
/// counted. The report, the affected customers, then containment.
#[tokio::test]
async fn a_leaked_key_that_read_s_subjects_yields_s_and_is_contained_by_revoking() {
    let t = TestApp::new();
    t.seed_shop();
    let (key_id, secret) = leaked_storefront_key(&t);
    for subject in ["s-1", "s-2", "s-3"] {
        let answer = t
            .send(Req::get(format!("/v1/subjects/{subject}/recommendations?n=3")).key(&secret))
            .await
            .ok();
        assert_eq!(answer["personalized"], true, "{subject}: {answer}");
    }
    for subject in ["s-3", "s-4"] {
        t.send(Req::get(format!("/v1/subjects/{subject}/consents")).key(&secret))
            .await
            .ok();
    }
    // Not personal (no such customer): nothing disclosed, nothing on the ledger to count.
    let trending = t
        .send(Req::get("/v1/subjects/c-nobody/recommendations").key(&secret))
        .await
        .ok();
    assert_eq!(trending["personalized"], false);
    // Another key's read.
    t.send(Req::get("/v1/subjects/s-5/recommendations").key(&t.storefront))
        .await
        .ok();

    let incident = create(&t, &json!({"kind": "key_compromised", "key_id": key_id})).await;
    let id = incident["id"].as_str().expect("id").to_owned();
    let impact = &incident["impact"];
    assert_eq!(impact["subjects"], 4, "{impact}");
    assert_eq!(impact["recommendation_reads"], 3, "{impact}");
    assert_eq!(
        impact["purposes"],
        json!(["consent_management", "personalization"]),
        "{impact}"
    );
    let privacy_preferences = impact["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|category| category["category"] == "user.privacy_preferences")
        .unwrap_or_else(|| panic!("consent reads are a category: {impact}"));
    assert_eq!(privacy_preferences["subjects"], 2, "{impact}");
    assert!(
        incident["report"]["nature"]
            .as_str()
            .is_some_and(|nature| nature.contains(&key_id) && nature.contains("storefront")),
        "{incident}"
    );

    let report = t
        .send(Req::get(format!("/v1/incidents/{id}/report")).key(&t.privacy))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    assert!(
        report.content_type().starts_with("text/markdown"),
        "{}",
        report.content_type()
    );
    let markdown = report.text();
    assert!(
        markdown.starts_with("# Personal data breach: draft notification (GDPR Art. 33)"),
        "{markdown}"
    );
    assert!(markdown.contains(&id), "{markdown}");
    assert!(
        markdown.contains("Notify the supervisory authority by"),
        "{markdown}"
    );
    assert!(!markdown.contains("s-1"), "the report names no customer");

    let subjects_read_before = subjects_reads(&t);
    let affected = t
        .send(Req::get(format!("/v1/incidents/{id}/subjects")).key(&t.privacy))
        .await
        .ok();
    assert_eq!(
        affected,
        json!({"subjects": ["s-1", "s-2", "s-3", "s-4"], "forgotten": 0})
    );
    assert_eq!(
        subjects_reads(&t),
        subjects_read_before + 1,
        "reading the affected customers is itself on the ledger"
    );

    let contained = t
        .send(
            Req::post(format!("/v1/incidents/{id}/contain"))
                .key(&t.privacy)
                .json(&json!({"revoke_key": true})),
        )
        .await
        .ok();
    assert!(
        contained["containment"]["key_revoked_at"].is_string(),
        "{contained}"
    );
    assert_eq!(contained["containment"]["kek_rotated_at"], Value::Null);
    t.send(Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations")).key(&secret))
        .await
        .problem(401, "unauthorized");
    let stored = t
        .send(Req::get(format!("/v1/incidents/{id}")).key(&t.privacy))
        .await
        .ok();
    assert_eq!(stored["containment"], contained["containment"]);
}

/// `incident.subjects_read` entries on the ledger.
fn subjects_reads(t: &TestApp) -> usize {
    t.ledger()
        .iter()
        .filter(|record| record.entry.action == "incident.subjects_read")
        .count()
}

#[tokio::test]
async fn a_storefront_key_is_refused_on_every_incident_route() {
    let t = TestApp::new();
    let incident = create(&t, &json!({"kind": "window", "since": hours_ago(1)})).await;
    let id = incident["id"].as_str().expect("id");
    let routes = [
        (
            Method::POST,
            "/v1/incidents".to_owned(),
            Some(json!({"kind": "window", "since": hours_ago(1)})),
        ),
        (Method::GET, "/v1/incidents".to_owned(), None),
        (Method::GET, format!("/v1/incidents/{id}"), None),
        (Method::GET, format!("/v1/incidents/{id}/report"), None),
        (Method::GET, format!("/v1/incidents/{id}/subjects"), None),
        (
            Method::POST,
            format!("/v1/incidents/{id}/contain"),
            Some(json!({"revoke_key": true})),
        ),
    ];
    for (method, path, body) in routes {
        let mut request = Req::new(method.clone(), path.as_str()).key(&t.storefront);
        if let Some(body) = &body {
            request = request.json(body);
        }
        t.send(request).await.problem(403, "forbidden");
    }
    let listed = t.send(Req::get("/v1/incidents").key(&t.privacy)).await.ok();
    assert_eq!(
        listed["incidents"].as_array().map(Vec::len),
        Some(1),
        "a refused create stores nothing: {listed}"
    );
}

#[tokio::test]
async fn bad_incident_bodies_name_the_field_and_never_echo_the_value() {
    let t = TestApp::new();
    let (key_id, _) = leaked_storefront_key(&t);
    let an_hour_ago = hours_ago(1);
    let two_hours_ago = hours_ago(2);
    // (what, body, field named, text the answer must not contain)
    let cases = [
        (
            "unknown kind",
            json!({"kind": "meteor-strike-7431"}),
            "kind",
            "meteor-strike-7431",
        ),
        (
            "unknown field",
            json!({"kind": "window", "since": an_hour_ago, "ann@example.com": true}),
            "body",
            "ann@example.com",
        ),
        (
            "since after until",
            json!({"kind": "window", "since": an_hour_ago, "until": two_hours_ago}),
            "since",
            an_hour_ago.as_str(),
        ),
        (
            "key_id missing for key_compromised",
            json!({"kind": "key_compromised", "since": two_hours_ago}),
            "key_id",
            two_hours_ago.as_str(),
        ),
        (
            "since not a time",
            json!({"kind": "window", "since": "yesterday-at-noon"}),
            "since",
            "yesterday-at-noon",
        ),
        (
            "key_id on a window",
            json!({"kind": "window", "since": an_hour_ago, "key_id": key_id}),
            "key_id",
            key_id.as_str(),
        ),
    ];
    for (what, body, field, value) in cases {
        let reply = t
            .send(Req::post("/v1/incidents").key(&t.privacy).json(&body))
            .await;
        reply.bad_input(field);
        assert!(
            !reply.text().contains(value),
            "{what}: the answer echoes the value: {}",
            reply.text()
        );
    }
    let not_json = t
        .send(
            Req::post("/v1/incidents")
                .key(&t.privacy)
                .raw(b"{\"kind\": ".to_vec()),
        )
        .await;
    not_json.bad_input("body");
    let listed = t.send(Req::get("/v1/incidents").key(&t.privacy)).await.ok();
    assert_eq!(
        listed,
        json!({"incidents": [], "unreadable": []}),
        "nothing stored"
    );
}

#[tokio::test]
async fn an_unknown_incident_is_404_on_every_route() {
    let t = TestApp::new();
    for path in [
        "/v1/incidents/inc_0000000000000000",
        "/v1/incidents/inc_0000000000000000/report",
        "/v1/incidents/inc_0000000000000000/subjects",
        "/v1/incidents/not-an-incident-id",
    ] {
        t.send(Req::get(path).key(&t.privacy))
            .await
            .problem(404, "incident_not_found");
    }
    t.send(
        Req::post("/v1/incidents/inc_0000000000000000/contain")
            .key(&t.privacy)
            .json(&json!({"revoke_key": true})),
    )
    .await
    .problem(404, "incident_not_found");
}
