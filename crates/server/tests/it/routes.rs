//! Every route answers with the shapes of API.md, through the real router and engine.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use discreet_vault::ForgetReceipt;
use discreet_vault::crypto::from_hex;
use serde_json::{Value, json};

use crate::support::{CUSTOMER, Req, TestApp, hours_ago, purchase, view};

fn keys_of(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[tokio::test]
async fn events_answer_accepted_and_duplicates_and_honour_idempotency_keys() {
    let t = TestApp::new();
    let batch = json!({"events": [purchase("c-1", "A", 3), view("c-1", "B", 2), {
        "subject": "c-2", "type": "search", "query": "red mug", "at": hours_ago(1)
    }, {
        "subject": "c-2", "type": "rating", "item": "A", "value": 4.5, "at": hours_ago(1)
    }, {
        "subject": "c-2", "type": "cart", "item": "C", "at": hours_ago(1)
    }]});
    let first = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .header("Idempotency-Key", "batch-1")
                .json(&batch),
        )
        .await
        .ok();
    assert_eq!(first, json!({"accepted": 5, "duplicates": 0}));
    assert_eq!(t.engine.vault().count_events().unwrap(), 5);

    // The same key and body again: accepted once only.
    let replay = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .header("Idempotency-Key", "batch-1")
                .json(&batch),
        )
        .await
        .ok();
    assert_eq!(replay, json!({"accepted": 0, "duplicates": 5}));
    assert_eq!(t.engine.vault().count_events().unwrap(), 5);

    // The same key with another body is a conflict, and stores nothing.
    let other = json!({"events": [purchase("c-1", "Z", 1)]});
    let conflict = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .header("Idempotency-Key", "batch-1")
                .json(&other),
        )
        .await;
    let problem = conflict.problem(409, "idempotency_conflict");
    insta::assert_json_snapshot!("idempotency_conflict", problem);
    assert_eq!(t.engine.vault().count_events().unwrap(), 5);

    // Another key, another batch: accepted.
    let next = t
        .send(
            Req::post("/v1/events")
                .key(&t.storefront)
                .header("Idempotency-Key", "batch-2")
                .json(&other),
        )
        .await
        .ok();
    assert_eq!(next, json!({"accepted": 1, "duplicates": 0}));
}

#[tokio::test]
async fn attributes_answer_the_names_updated() {
    let t = TestApp::new();
    let body = json!({"email": "ann@example.com", "first_name": "Ann", "size": 38});
    let answer = t
        .send(
            Req::put(format!("/v1/subjects/{CUSTOMER}/attributes"))
                .key(&t.storefront)
                .json(&body),
        )
        .await
        .ok();
    assert_eq!(keys_of(&answer), set(&["updated"]));
    let updated: BTreeSet<String> = answer["updated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(updated, set(&["email", "first_name", "size"]));

    // The export shows them back.
    let export = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/export")).key(&t.privacy))
        .await
        .ok();
    assert_eq!(export["attributes"]["email"]["value"], "ann@example.com");
    assert_eq!(export["attributes"]["size"]["value"], "38");
}

#[tokio::test]
async fn consents_answer_states_history_and_never_for_undecided_purposes() {
    let t = TestApp::new();
    let url = format!("/v1/subjects/{CUSTOMER}/consents");

    // Nothing decided yet: every consent-based purpose is `never`, without a time.
    let before = t.send(Req::get(&url).key(&t.storefront)).await.ok();
    assert_eq!(keys_of(&before), set(&["consents", "history"]));
    assert_eq!(
        before["consents"],
        json!([
            {"purpose": "personalization", "state": "never", "at": null},
            {"purpose": "marketing_email", "state": "never", "at": null},
        ])
    );
    assert_eq!(before["history"], json!([]));

    let granted = t
        .send(
            Req::put(format!("{url}/personalization"))
                .key(&t.storefront)
                .json(&json!({"granted": true, "source": "checkout-banner-v3"})),
        )
        .await
        .ok();
    assert_eq!(keys_of(&granted), set(&["purpose", "state", "at"]));
    assert_eq!(granted["purpose"], "personalization");
    assert_eq!(granted["state"], "granted");
    assert!(granted["at"].as_str().unwrap().ends_with('Z'));

    let withdrawn = t
        .send(
            Req::put(format!("{url}/marketing_email"))
                .key(&t.privacy)
                .json(&json!({"granted": false})),
        )
        .await
        .ok();
    assert_eq!(withdrawn["purpose"], "marketing_email");
    assert_eq!(withdrawn["state"], "withdrawn");

    let after = t.send(Req::get(&url).key(&t.storefront)).await.ok();
    let consents = after["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 2);
    for consent in consents {
        assert_eq!(keys_of(consent), set(&["purpose", "state", "at"]));
    }
    assert_eq!(consents[0]["purpose"], "personalization");
    assert_eq!(consents[0]["state"], "granted");
    assert_eq!(consents[0]["at"], granted["at"]);
    assert_eq!(consents[1]["purpose"], "marketing_email");
    assert_eq!(consents[1]["state"], "withdrawn");
    let history = after["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let sources: BTreeSet<&str> = history
        .iter()
        .map(|entry| entry["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, BTreeSet::from(["checkout-banner-v3", "api"]));
    for entry in history {
        assert!(entry["purpose"].is_string() && entry["state"].is_string());
        assert!(entry["at"].is_string());
        assert_eq!(entry["policy_version"], "builtin-retail-1");
    }
}

#[tokio::test]
async fn recommendations_are_personal_only_with_consent() {
    let t = TestApp::new();
    t.seed_shop();

    let personal = t
        .send(
            Req::get(format!(
                "/v1/subjects/{CUSTOMER}/recommendations?n=3&purpose=personalization&context.weather=rain&context.country=United%20Kingdom"
            ))
            .key(&t.storefront),
        )
        .await
        .ok();
    assert_eq!(
        keys_of(&personal),
        set(&["personalized", "reason", "items"])
    );
    assert_eq!(personal["personalized"], true, "{personal}");
    assert_eq!(personal["reason"], Value::Null);
    let items = personal["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.len() <= 3, "{personal}");
    for item in items {
        assert_eq!(keys_of(item), set(&["item", "title", "score", "because"]));
        assert!(item["score"].is_number());
        let because = item["because"].as_array().unwrap();
        assert!(!because.is_empty(), "{item}");
        for reason in because {
            assert!(
                reason == "A" || reason == "B",
                "because names the customer's own items: {item}"
            );
        }
        // The customer's own items are not suggested back.
        assert!(item["item"] != "A" && item["item"] != "B", "{personal}");
    }

    // A grant after the events teaches the models what was stored before it.
    t.ingest(vec![purchase("c-late", "C", 3), purchase("c-late", "D", 2)]);
    let before_grant = t
        .send(Req::get("/v1/subjects/c-late/recommendations").key(&t.storefront))
        .await
        .ok();
    assert_eq!(before_grant["reason"], "no_consent");
    t.send(
        Req::put("/v1/subjects/c-late/consents/personalization")
            .key(&t.storefront)
            .json(&json!({"granted": true, "source": "account-settings"})),
    )
    .await
    .ok();
    let after_grant = t
        .send(Req::get("/v1/subjects/c-late/recommendations").key(&t.storefront))
        .await
        .ok();
    assert_eq!(after_grant["personalized"], true, "{after_grant}");

    // A customer who never consented: still 200, non-personal, with the reason.
    t.ingest(vec![purchase("c-no-consent", "A", 3)]);
    let plain = t
        .send(Req::get("/v1/subjects/c-no-consent/recommendations?n=5").key(&t.storefront))
        .await
        .ok();
    assert_eq!(plain["personalized"], false);
    assert_eq!(plain["reason"], "no_consent");
    let items = plain["items"].as_array().unwrap();
    assert!(!items.is_empty(), "contextual popularity: {plain}");
    for item in items {
        assert_eq!(keys_of(item), set(&["item", "title", "score", "because"]));
        assert_eq!(item["because"], json!([]));
    }

    // After a withdrawal the customer is back to the non-personal list.
    t.send(
        Req::put(format!("/v1/subjects/{CUSTOMER}/consents/personalization"))
            .key(&t.storefront)
            .json(&json!({"granted": false, "source": "privacy-center"})),
    )
    .await
    .ok();
    let withdrawn = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations")).key(&t.storefront))
        .await
        .ok();
    assert_eq!(withdrawn["personalized"], false);
    assert_eq!(withdrawn["reason"], "no_consent");

    // A customer discreet has never heard of.
    let unknown = t
        .send(Req::get("/v1/subjects/c-nobody/recommendations").key(&t.storefront))
        .await
        .ok();
    assert_eq!(unknown["personalized"], false);
    assert_eq!(unknown["reason"], "unknown_subject");
    assert!(
        unknown["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["because"] == json!([]))
    );

    // A purpose that is not the models' own is never personal.
    let marketing = t
        .send(
            Req::get("/v1/subjects/s-1/recommendations?purpose=marketing_email").key(&t.storefront),
        )
        .await
        .ok();
    assert_eq!(marketing["personalized"], false);
    assert_eq!(marketing["reason"], "purpose_not_personal");
}

#[tokio::test]
async fn similar_items_answer_items_and_scores() {
    let t = TestApp::new();
    t.seed_shop();
    let answer = t
        .send(Req::get("/v1/items/A/similar?n=2").key(&t.analyst))
        .await
        .ok();
    assert_eq!(keys_of(&answer), set(&["items"]));
    let items = answer["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.len() <= 2, "{answer}");
    for item in items {
        assert_eq!(keys_of(item), set(&["item", "title", "score"]));
        assert!(item["score"].is_number());
        assert_ne!(item["item"], "A");
    }
    t.send(Req::get("/v1/items/NOPE/similar").key(&t.analyst))
        .await
        .problem(404, "item_not_found");
}

#[tokio::test]
async fn export_holds_every_section() {
    let t = TestApp::new();
    t.seed_shop();
    t.send(
        Req::put(format!("/v1/subjects/{CUSTOMER}/attributes"))
            .key(&t.storefront)
            .json(&json!({"email": "ann@example.com"})),
    )
    .await
    .ok();
    let export = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/export")).key(&t.privacy))
        .await
        .ok();
    let expected = set(&[
        "subject",
        "attributes",
        "events",
        "consents",
        "derived",
        "purposes",
        "categories",
        "recipients",
        "retention",
        "rights",
        "source",
        "automated_decisions",
        "access_log",
    ]);
    let keys = keys_of(&export);
    assert!(
        expected.is_subset(&keys),
        "missing: {:?}",
        expected.difference(&keys).collect::<Vec<_>>()
    );
    assert_eq!(export["events"].as_array().unwrap().len(), 2);
    assert_eq!(export["attributes"]["email"]["value"], "ann@example.com");
    assert!(
        export["consents"]["history"].is_array(),
        "{}",
        export["consents"]
    );
    assert!(export["access_log"].is_array());

    // The admin may export too; the answer says the same.
    let by_admin = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/export")).key(&t.admin))
        .await
        .ok();
    assert_eq!(by_admin["events"], export["events"]);
}

#[tokio::test]
async fn forget_answers_a_signed_receipt_that_verifies() {
    let t = TestApp::new();
    t.seed_shop();
    t.send(
        Req::put(format!("/v1/subjects/{CUSTOMER}/attributes"))
            .key(&t.storefront)
            .json(&json!({"email": "ann@example.com", "first_name": "Ann"})),
    )
    .await
    .ok();
    let token = t.token_of(CUSTOMER);

    let answer = t
        .send(Req::delete(format!("/v1/subjects/{CUSTOMER}")).key(&t.privacy))
        .await
        .ok();
    assert_eq!(keys_of(&answer), set(&["receipt"]));
    let receipt = &answer["receipt"];
    assert_eq!(
        keys_of(receipt),
        set(&[
            "id",
            "subject_token",
            "requested_at",
            "completed_at",
            "erased",
            "signature",
            "key_id"
        ])
    );
    assert_eq!(
        keys_of(&receipt["erased"]),
        set(&[
            "events",
            "attributes",
            "consents",
            "model_interactions",
            "key_destroyed"
        ])
    );
    assert_eq!(receipt["subject_token"], token.as_str());
    assert!(!receipt.to_string().contains(CUSTOMER));
    insta::assert_json_snapshot!("forget_receipt", answer, {
        ".receipt.id" => "[id]",
        ".receipt.subject_token" => "[subject token]",
        ".receipt.requested_at" => "[time]",
        ".receipt.completed_at" => "[time]",
        ".receipt.signature" => "[signature]",
        ".receipt.key_id" => "[key id]",
    });

    // The signature verifies with the published key, and fails once a field changes.
    let public = t.send(Req::get("/v1/receipts/public-key")).await.ok();
    assert_eq!(
        keys_of(&public),
        set(&["key_id", "algorithm", "public_key"])
    );
    assert_eq!(public["key_id"], receipt["key_id"]);
    let public_key = from_hex(public["public_key"].as_str().unwrap()).expect("hex key");
    let parsed: ForgetReceipt = serde_json::from_value(receipt.clone()).expect("receipt");
    assert!(parsed.verify(&public_key), "the receipt verifies");
    let mut forged = parsed.clone();
    forged.erased.events += 1;
    assert!(!forged.verify(&public_key), "a changed receipt does not");

    // The stored receipt is the same one.
    let id = receipt["id"].as_str().unwrap();
    let stored = t
        .send(Req::get(format!("/v1/receipts/{id}")).key(&t.privacy))
        .await
        .ok();
    assert_eq!(stored, answer);
    t.send(Req::get("/v1/receipts/no-such-receipt").key(&t.privacy))
        .await
        .problem(404, "receipt_not_found");

    // The subject is gone: export and a second forget are 404, recommendations are not personal.
    t.send(Req::get(format!("/v1/subjects/{CUSTOMER}/export")).key(&t.privacy))
        .await
        .problem(404, "subject_not_found");
    t.send(Req::delete(format!("/v1/subjects/{CUSTOMER}")).key(&t.privacy))
        .await
        .problem(404, "subject_not_found");
    let recommendations = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations")).key(&t.storefront))
        .await
        .ok();
    assert_eq!(recommendations["personalized"], false);
    assert_eq!(recommendations["reason"], "unknown_subject");
    let consents = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/consents")).key(&t.storefront))
        .await
        .ok();
    assert_eq!(consents["history"], json!([]));

    // The ledger still verifies, and records the forget by token.
    let verify = t
        .send(Req::get("/v1/audit/verify").key(&t.privacy))
        .await
        .ok();
    assert_eq!(verify["ok"], true, "{verify}");
    let audit = t
        .send(Req::get(format!("/v1/audit?subject={token}")).key(&t.privacy))
        .await
        .ok();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"forget.requested"), "{actions:?}");
    assert!(actions.contains(&"forget.completed"), "{actions:?}");
}

#[tokio::test]
async fn audit_names_subjects_by_token_and_filters_by_customer() {
    let t = TestApp::new();
    t.seed_shop();
    t.send(Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations")).key(&t.storefront))
        .await
        .ok();
    t.send(Req::get(format!("/v1/subjects/{CUSTOMER}/export")).key(&t.privacy))
        .await
        .ok();
    let token = t.token_of(CUSTOMER);

    let audit = t
        .send(Req::get("/v1/audit?limit=10000").key(&t.privacy))
        .await;
    let body = audit.ok();
    assert!(
        !audit.text().contains(CUSTOMER),
        "the audit trail names customers by token only"
    );
    assert_eq!(keys_of(&body), set(&["entries"]));
    let entries = body["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for entry in entries {
        assert_eq!(
            keys_of(entry),
            set(&[
                "seq",
                "at",
                "actor",
                "action",
                "subject_token",
                "purpose",
                "categories",
                "outcome",
                "detail",
                "hash"
            ])
        );
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first"
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry["subject_token"] == token.as_str())
    );

    // Filtered by the customer id: only that customer's entries, by token.
    let filtered = t
        .send(Req::get(format!("/v1/audit?subject={CUSTOMER}&limit=10000")).key(&t.privacy))
        .await;
    assert!(!filtered.text().contains(CUSTOMER));
    let filtered = filtered.ok();
    let entries = filtered["entries"].as_array().unwrap();
    let actions: BTreeSet<&str> = entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .all(|entry| entry["subject_token"] == token.as_str())
    );
    for action in [
        "subject.created",
        "events.ingest",
        "consent.granted",
        "events.read",
    ] {
        assert!(actions.contains(action), "{action} in {actions:?}");
    }
    // By token too, the same entries.
    let by_token = t
        .send(Req::get(format!("/v1/audit?subject={token}&limit=10000")).key(&t.privacy))
        .await
        .ok();
    assert_eq!(by_token, filtered);
    // Limit and time window.
    let one = t
        .send(Req::get("/v1/audit?limit=1").key(&t.privacy))
        .await
        .ok();
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    let future = t
        .send(Req::get("/v1/audit?since=2999-01-01T00:00:00Z").key(&t.privacy))
        .await
        .ok();
    assert_eq!(future["entries"], json!([]));

    // Filtered by actor: only what that key did.
    let storefront_id = t.engine.authenticate(&t.storefront).unwrap().key_id;
    let by_actor = t
        .send(Req::get(format!("/v1/audit?actor={storefront_id}&limit=10000")).key(&t.privacy))
        .await
        .ok();
    let entries = by_actor["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|entry| entry["actor"] == storefront_id.as_str())
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry["action"] == "recommendations.read")
    );

    let verify = t
        .send(Req::get("/v1/audit/verify").key(&t.privacy))
        .await
        .ok();
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["entries"].as_i64().unwrap() > 0);
    assert!(verify["head"].as_str().is_some_and(|head| head.len() == 64));
}

#[tokio::test]
async fn policy_and_records_are_served() {
    let t = TestApp::new();
    let policy = t.send(Req::get("/v1/policy").key(&t.privacy)).await.ok();
    let text = policy.to_string();
    for name in [
        "personalization",
        "marketing_email",
        "analytics",
        "order_fulfilment",
    ] {
        assert!(text.contains(name), "{name} in the policy document");
    }
    let records = t
        .send(Req::get("/v1/policy/records").key(&t.privacy))
        .await
        .ok();
    assert!(records.is_object() && !keys_of(&records).is_empty());
    assert!(records.to_string().contains("Example Retail Ltd"));
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let t = TestApp::new();
    let document = t.send(Req::get("/openapi.json")).await.ok();
    let paths = document["paths"].as_object().expect("paths");
    let expected: [(&str, &str); 17] = [
        ("/v1/events", "post"),
        ("/v1/subjects/{subject}/attributes", "put"),
        ("/v1/subjects/{subject}/consents/{purpose}", "put"),
        ("/v1/subjects/{subject}/consents", "get"),
        ("/v1/subjects/{subject}/recommendations", "get"),
        ("/v1/items/{item}/similar", "get"),
        ("/v1/subjects/{subject}/export", "get"),
        ("/v1/subjects/{subject}", "delete"),
        ("/v1/receipts/{id}", "get"),
        ("/v1/receipts/public-key", "get"),
        ("/v1/audit", "get"),
        ("/v1/audit/verify", "get"),
        ("/v1/policy", "get"),
        ("/v1/policy/records", "get"),
        ("/v1/keys", "post"),
        ("/v1/keys", "get"),
        ("/v1/keys/{id}", "delete"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} in the OpenAPI document"
        );
    }
    for path in ["/healthz", "/metrics"] {
        assert!(paths.contains_key(path), "{path}");
    }
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3'))
    );
}

/// The document declares what every operation answers: each secured operation its 401 and
/// 429, every error as problem+json, every body as required; and its request schemas carry
/// the engine's limits and the policy's names.
#[tokio::test]
async fn openapi_declares_every_answer_and_the_engines_limits() {
    let t = TestApp::new();
    let document = t.send(Req::get("/openapi.json")).await.ok();
    let responses = &document["components"]["responses"];
    for name in [
        "BadInput",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "TooManyRequests",
    ] {
        assert!(
            responses[name]["content"]["application/problem+json"].is_object(),
            "{name} is problem+json"
        );
    }
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let answers = operation["responses"].as_object().unwrap();
            if operation.get("security").is_some() {
                for status in ["401", "403", "429"] {
                    assert!(
                        answers.contains_key(status),
                        "{method} {path} declares {status}"
                    );
                }
            }
            for (status, answer) in answers {
                if !status.starts_with('2') && path.starts_with("/v1/") {
                    let reference = answer["$ref"].as_str().unwrap_or_default();
                    assert!(
                        reference.starts_with("#/components/responses/"),
                        "{method} {path} {status}"
                    );
                }
            }
            if let Some(body) = operation.get("requestBody") {
                assert_eq!(body["required"], true, "{method} {path}");
            }
        }
    }
    let schemas = &document["components"]["schemas"];
    let events = &schemas["EventBatch"]["properties"]["events"];
    assert_eq!(events["maxItems"], t.engine.max_batch_events());
    let branches = schemas["EventIn"]["oneOf"].as_array().unwrap();
    assert_eq!(branches.len(), 5, "one branch per declared event type");
    for branch in branches {
        let properties = &branch["properties"];
        assert_eq!(
            properties["subject"]["maxLength"],
            discreet_engine::input::MAX_SUBJECT_CHARS
        );
        assert_eq!(
            properties["quantity"]["maximum"],
            discreet_engine::input::MAX_QUANTITY
        );
    }
    let roles = &schemas["KeyIn"]["properties"]["role"]["enum"];
    assert_eq!(roles, &json!(["admin", "storefront", "privacy", "analyst"]));
    let attributes = schemas["AttributesIn"]["properties"].as_object().unwrap();
    assert!(attributes.contains_key("email") && attributes.contains_key("size"));
    let consent = &document["paths"]["/v1/subjects/{subject}/consents/{purpose}"]["put"];
    let purpose = consent["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "purpose")
        .unwrap();
    assert_eq!(
        purpose["schema"]["enum"],
        json!(["personalization", "marketing_email"]),
        "only purposes that rest on consent"
    );
}

#[tokio::test]
async fn healthz_is_ready_only_after_the_rebuild() {
    let ready = TestApp::new();
    let answer = ready.send(Req::get("/healthz")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "ready");

    let starting = TestApp::unready();
    let answer = starting.send(Req::get("/healthz")).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["status"], "starting");
    // Writes wait for the rebuild too.
    starting
        .send(
            Req::post("/v1/events")
                .key(&starting.storefront)
                .json(&json!({"events": [purchase("c-1", "A", 1)]})),
        )
        .await
        .problem(503, "not_ready");
    assert_eq!(starting.engine.vault().count_events().unwrap(), 0);

    starting.engine.rebuild(&|_| {}).unwrap();
    assert_eq!(
        starting.send(Req::get("/healthz")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_name_route_templates_never_customers() {
    let t = TestApp::new();
    t.seed_shop();
    let customer = "c-secret-4711";
    t.ingest(vec![purchase(customer, "A", 2)]);
    t.send(Req::get(format!("/v1/subjects/{customer}/recommendations")).key(&t.storefront))
        .await
        .ok();
    t.send(Req::get(format!("/v1/subjects/{customer}/consents")).key(&t.storefront))
        .await
        .ok();
    t.send(Req::get(format!("/v1/subjects/{customer}/export")).key(&t.privacy))
        .await
        .ok();
    t.send(Req::get(format!("/v1/subjects/{customer}/export")).key(&t.storefront))
        .await
        .problem(403, "forbidden");
    t.send(Req::get(format!("/v1/nowhere/{customer}")).key(&t.storefront))
        .await
        .problem(404, "route_not_found");
    t.send(Req::get(format!("/v1/audit?subject={customer}")).key(&t.privacy))
        .await
        .ok();

    let metrics = t.send(Req::get("/metrics")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.content_type().starts_with("text/plain"));
    let text = metrics.text();
    assert!(!text.contains(customer), "{text}");
    for line in [
        r#"discreet_http_requests_total{route="/v1/subjects/{subject}/recommendations",method="GET",status="200"} 1"#,
        r#"discreet_http_requests_total{route="/v1/subjects/{subject}/consents",method="GET",status="200"} 1"#,
        r#"discreet_http_requests_total{route="/v1/subjects/{subject}/export",method="GET",status="200"} 1"#,
        r#"discreet_http_requests_total{route="/v1/subjects/{subject}/export",method="GET",status="403"} 1"#,
        r#"discreet_http_requests_total{route="/v1/audit",method="GET",status="200"} 1"#,
        "discreet_ready 1",
    ] {
        assert!(text.contains(line), "{line}\n in\n{text}");
    }
    assert!(text.contains("discreet_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn keys_are_issued_listed_and_revoked_by_the_admin() {
    let t = TestApp::new();
    let issued = t
        .send(
            Req::post("/v1/keys")
                .key(&t.admin)
                .json(&json!({"role": "analyst", "label": "merch team"})),
        )
        .await
        .ok();
    assert_eq!(keys_of(&issued), set(&["id", "role", "secret"]));
    assert_eq!(issued["role"], "analyst");
    let id = issued["id"].as_str().unwrap().to_owned();
    let secret = issued["secret"].as_str().unwrap().to_owned();

    // The new key works for its role.
    t.send(Req::get("/v1/items/A/similar").key(&secret))
        .await
        .problem(404, "item_not_found");

    let listed = t.send(Req::get("/v1/keys").key(&t.admin)).await;
    assert!(!listed.text().contains(&secret), "secrets are never listed");
    let listed = listed.ok();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 5);
    let entry = keys.iter().find(|key| key["id"] == id.as_str()).unwrap();
    assert_eq!(
        keys_of(entry),
        set(&["id", "role", "label", "created_at", "revoked_at"])
    );
    assert_eq!(entry["label"], "merch team");
    assert_eq!(entry["revoked_at"], Value::Null);

    let revoked = t
        .send(Req::delete(format!("/v1/keys/{id}")).key(&t.admin))
        .await
        .ok();
    assert_eq!(revoked, json!({"revoked": id}));
    t.send(Req::get("/v1/items/A/similar").key(&secret))
        .await
        .problem(401, "unauthorized");
    t.send(Req::delete(format!("/v1/keys/{id}")).key(&t.admin))
        .await
        .problem(404, "api_key_not_found");
    t.send(Req::delete("/v1/keys/no-such-key").key(&t.admin))
        .await
        .problem(404, "api_key_not_found");
    t.send(
        Req::post("/v1/keys")
            .key(&t.admin)
            .json(&json!({"role": "janitor"})),
    )
    .await
    .bad_input("role");
}
