//! The catalogue through the real router: declaring items one at a time and in batches
//! (all or nothing), reading them back, and the filters on recommendations, trending and
//! similar items, with titles in every answer and the roles that may do each.

use discreet_policy::{BUILTIN_RETAIL_TOML, Policy};
use serde_json::{Value, json};

use crate::support::*;

/// The built-in policy without its rule against the retail data's one-letter codes `B`
/// and `D`, which the seeded shop uses as products.
fn shop_policy() -> Policy {
    let text = BUILTIN_RETAIL_TOML.replace(r#""D", "S", "B", "#, r#""S", "#);
    assert_ne!(text, BUILTIN_RETAIL_TOML);
    Policy::from_toml_str(&text, "shop.toml").expect("policy")
}

fn codes(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["item"].as_str().expect("item id").to_owned())
        .collect()
}

fn sorted(mut codes: Vec<String>) -> Vec<String> {
    codes.sort();
    codes
}

/// The seeded shop with C and D under `home`, E in the garden and out of stock; A and B
/// (what the customer holds) undeclared.
async fn shop() -> TestApp {
    let t = TestApp::with_policy(shop_policy());
    t.seed_shop();
    let batch = json!({"items": [
        {"item": "C", "title": "WHITE HANGING HEART T-LIGHT HOLDER", "categories": ["home/lighting"], "price": 2.55},
        {"item": "D", "title": "REGENCY CAKESTAND 3 TIER", "categories": ["home/kitchen"], "price": 12.75, "available": true},
        {"item": "E", "title": "GARDEN PARASOL", "categories": ["garden"], "price": 30.0, "available": false},
    ]});
    let answer = t
        .send(Req::post("/v1/items").key(&t.storefront).json(&batch))
        .await
        .ok();
    assert_eq!(answer, json!({"upserted": 3}));
    t
}

async fn recommend(t: &TestApp, query: &str) -> Value {
    t.send(
        Req::get(format!(
            "/v1/subjects/{CUSTOMER}/recommendations?n=10{query}"
        ))
        .key(&t.storefront),
    )
    .await
    .ok()
}

#[tokio::test]
async fn an_item_is_declared_read_back_and_replaced() {
    let t = TestApp::new();
    let body = json!({"title": "HEART", "categories": ["home/lighting"], "price": 2.55, "available": true});
    let answer = t
        .send(Req::put("/v1/items/85123A").key(&t.storefront).json(&body))
        .await
        .ok();
    assert_eq!(answer, json!({"item": "85123A", "created": true}));
    let item = t
        .send(Req::get("/v1/items/85123A").key(&t.storefront))
        .await
        .ok();
    assert_eq!(item["title"], "HEART");
    assert_eq!(item["categories"], json!(["home/lighting"]));
    assert_eq!(item["price"], 2.55);
    assert_eq!(item["available"], true);
    assert!(
        item["updated_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    // Only the title is required; the item is replaced whole.
    let answer = t
        .send(
            Req::put("/v1/items/85123A")
                .key(&t.admin)
                .json(&json!({"title": "HEART 2"})),
        )
        .await
        .ok();
    assert_eq!(answer, json!({"item": "85123A", "created": false}));
    let item = t
        .send(Req::get("/v1/items/85123A").key(&t.storefront))
        .await
        .ok();
    assert_eq!(
        (
            item["title"].clone(),
            item["categories"].clone(),
            item["price"].clone(),
            item["available"].clone()
        ),
        (json!("HEART 2"), json!([]), Value::Null, json!(true))
    );
    t.send(Req::get("/v1/items/NEVER-DECLARED").key(&t.storefront))
        .await
        .problem(404, "item_not_found");
}

#[tokio::test]
async fn a_bad_item_refuses_the_whole_batch_naming_its_index() {
    let t = TestApp::new();
    let batch = json!({"items": [
        {"item": "X1", "title": "ONE"},
        {"item": "X2", "title": "TWO", "price": 3},
        {"item": "X3", "categories": ["home"]},
    ]});
    t.send(Req::post("/v1/items").key(&t.storefront).json(&batch))
        .await
        .bad_input("items[2].title");
    let bad_price = json!({"items": [{"item": "X1", "title": "ONE"}, {"item": "X2", "title": "TWO", "price": -3}]});
    t.send(Req::post("/v1/items").key(&t.storefront).json(&bad_price))
        .await
        .bad_input("items[1].price");
    let bad_category =
        json!({"items": [{"item": "X1", "title": "ONE", "categories": ["home//lamps"]}]});
    t.send(
        Req::post("/v1/items")
            .key(&t.storefront)
            .json(&bad_category),
    )
    .await
    .bad_input("items[0].categories[0]");
    t.send(Req::get("/v1/items/X1").key(&t.storefront))
        .await
        .problem(404, "item_not_found");
    let too_many: Vec<Value> = (0..10_001)
        .map(|index| json!({"item": format!("Y{index}"), "title": "T"}))
        .collect();
    t.send(
        Req::post("/v1/items")
            .key(&t.storefront)
            .json(&json!({"items": too_many})),
    )
    .await
    .bad_input("items");
    t.send(
        Req::post("/v1/items")
            .key(&t.storefront)
            .json(&json!({"items": []})),
    )
    .await
    .bad_input("items");
    let unknown_field = json!({"title": "T", "colour": "red"});
    let refused = t
        .send(
            Req::put("/v1/items/X1")
                .key(&t.storefront)
                .json(&unknown_field),
        )
        .await
        .bad_input("body");
    assert!(
        !refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("colour")
    );
    t.send(
        Req::put("/v1/items/X1")
            .key(&t.storefront)
            .json(&json!({"title": "T", "available": "yes"})),
    )
    .await
    .bad_input("available");
}

#[tokio::test]
async fn every_filter_applies_before_the_cut_and_titles_come_with_the_items() {
    let t = shop().await;
    let plain = recommend(&t, "").await;
    assert_eq!(plain["personalized"], true);
    assert_eq!(
        sorted(codes(&plain)),
        ["C", "D"],
        "E is unavailable: {plain}"
    );
    for item in plain["items"].as_array().unwrap() {
        assert!(item["title"].is_string(), "{item}");
        assert!(
            item["because"]
                .as_array()
                .unwrap()
                .iter()
                .all(|id| id == "A" || id == "B")
        );
    }
    let with_unavailable = recommend(&t, "&include_unavailable=true").await;
    assert_eq!(sorted(codes(&with_unavailable)), ["C", "D", "E"]);
    let garden = with_unavailable["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["item"] == "E")
        .unwrap();
    assert_eq!(garden["title"], "GARDEN PARASOL");
    // A parent covers its children; repeated categories mean any of them.
    assert_eq!(
        sorted(codes(&recommend(&t, "&category=home").await)),
        ["C", "D"]
    );
    assert_eq!(
        codes(&recommend(&t, "&category=home/lighting").await),
        ["C"]
    );
    assert_eq!(
        sorted(codes(
            &recommend(
                &t,
                "&category=home/lighting&category=garden&include_unavailable=true"
            )
            .await
        )),
        ["C", "E"]
    );
    assert_eq!(
        codes(&recommend(&t, "&category=home&exclude=C").await),
        ["D"]
    );
    assert_eq!(codes(&recommend(&t, "&min_price=5").await), ["D"]);
    assert_eq!(codes(&recommend(&t, "&max_price=5").await), ["C"]);
    assert_eq!(
        codes(&recommend(&t, "&min_price=3&max_price=4").await),
        Vec::<String>::new()
    );
    // Fewer qualify than asked for: fewer come back, no error.
    let none = recommend(&t, "&category=garden").await;
    assert_eq!(none["items"], json!([]));
    assert_eq!(none["personalized"], true);
}

#[tokio::test]
async fn an_unknown_category_is_refused_without_echoing_it() {
    let t = shop().await;
    let refused = t
        .send(
            Req::get(format!(
                "/v1/subjects/{CUSTOMER}/recommendations?category=home/secret-garden"
            ))
            .key(&t.storefront),
        )
        .await
        .bad_input("category");
    assert!(
        !refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("secret"),
        "{refused}"
    );
    t.send(Req::get("/v1/items/A/similar?category=nowhere").key(&t.storefront))
        .await
        .bad_input("category");
    for (query, field) in [
        ("include_unavailable=yes", "include_unavailable"),
        ("min_price=cheap", "min_price"),
        ("max_price=-1", "max_price"),
        ("min_price=NaN", "min_price"),
    ] {
        t.send(
            Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations?{query}")).key(&t.storefront),
        )
        .await
        .bad_input(field);
    }
}

#[tokio::test]
async fn trending_answers_obey_the_same_filters() {
    let t = shop().await;
    let trending = t
        .send(Req::get("/v1/subjects/nobody-yet/recommendations?n=10").key(&t.storefront))
        .await
        .ok();
    assert_eq!(trending["personalized"], false);
    let all = codes(&trending);
    assert!(
        all.contains(&"A".to_owned()) && !all.contains(&"E".to_owned()),
        "{trending}"
    );
    let undeclared = trending["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["item"] == "A")
        .unwrap();
    assert_eq!(undeclared["title"], Value::Null);
    let kitchen = t
        .send(
            Req::get("/v1/subjects/nobody-yet/recommendations?n=10&category=home/kitchen")
                .key(&t.storefront),
        )
        .await
        .ok();
    assert_eq!(codes(&kitchen), ["D"]);
    let priced = t
        .send(
            Req::get("/v1/subjects/nobody-yet/recommendations?n=10&max_price=20&exclude=C")
                .key(&t.storefront),
        )
        .await
        .ok();
    assert_eq!(codes(&priced), ["D"]);
}

#[tokio::test]
async fn similar_items_obey_the_filters_and_carry_titles() {
    let t = shop().await;
    let similar = t
        .send(Req::get("/v1/items/A/similar?n=10&category=home").key(&t.analyst))
        .await
        .ok();
    assert_eq!(sorted(codes(&similar)), ["C", "D"]);
    for item in similar["items"].as_array().unwrap() {
        assert!(item["title"].is_string(), "{item}");
    }
    let all = t
        .send(Req::get("/v1/items/A/similar?n=10").key(&t.analyst))
        .await
        .ok();
    assert!(!codes(&all).contains(&"E".to_owned()), "{all}");
    let with_e = t
        .send(Req::get("/v1/items/A/similar?n=10&include_unavailable=true").key(&t.analyst))
        .await
        .ok();
    assert!(codes(&with_e).contains(&"E".to_owned()), "{with_e}");
}

#[tokio::test]
async fn only_roles_with_the_catalogue_action_declare_or_read_items() {
    let t = TestApp::new();
    let body = json!({"title": "T"});
    for role in ["analyst", "privacy"] {
        t.send(Req::put("/v1/items/Z").key(t.key(role)).json(&body))
            .await
            .problem(403, "forbidden");
        t.send(
            Req::post("/v1/items")
                .key(t.key(role))
                .json(&json!({"items": [{"item": "Z", "title": "T"}]})),
        )
        .await
        .problem(403, "forbidden");
        t.send(Req::get("/v1/items/Z").key(t.key(role)))
            .await
            .problem(403, "forbidden");
    }
    t.send(Req::put("/v1/items/Z").json(&body))
        .await
        .problem(401, "unauthorized");
    // A refused caller changed nothing.
    t.send(Req::get("/v1/items/Z").key(&t.admin))
        .await
        .problem(404, "item_not_found");
    // A refused body from a refused role is refused for the role first.
    t.send(
        Req::put("/v1/items/Z")
            .key(&t.analyst)
            .json(&json!({"nonsense": 1})),
    )
    .await
    .problem(403, "forbidden");
}

#[tokio::test]
async fn the_policys_never_rule_keeps_postage_out_through_the_router() {
    let t = TestApp::new();
    t.seed_shop();
    // Every basket paid postage: without the rule it would lead every answer.
    let postage: Vec<Value> = ["s-1", "s-2", "s-3", "s-4", "s-5", "s-6", CUSTOMER]
        .iter()
        .map(|subject| purchase(subject, "POST", 1))
        .collect();
    t.ingest(postage);
    t.engine.refresh_models();
    for uri in [
        format!("/v1/subjects/{CUSTOMER}/recommendations?n=10"),
        "/v1/subjects/nobody-yet/recommendations?n=10".to_owned(),
        "/v1/items/A/similar?n=10".to_owned(),
    ] {
        let answer = t.send(Req::get(uri.as_str()).key(&t.admin)).await.ok();
        assert!(!codes(&answer).is_empty(), "{uri}: {answer}");
        assert!(
            !codes(&answer).contains(&"POST".to_owned()),
            "{uri}: {answer}"
        );
    }
}

/// The parameters of the recommendations operation in the served OpenAPI document.
async fn recommendation_parameters(t: &TestApp) -> Vec<Value> {
    let document = t.send(Req::get("/openapi.json")).await.ok();
    document["paths"]["/v1/subjects/{subject}/recommendations"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .clone()
}

#[tokio::test]
async fn the_openapi_document_lists_the_declared_categories_as_the_filters_values() {
    let t = TestApp::with_policy(shop_policy());
    let before = recommendation_parameters(&t).await;
    assert!(
        before
            .iter()
            .all(|parameter| parameter["name"] != "category"),
        "no category declared yet"
    );
    assert!(
        before
            .iter()
            .any(|parameter| parameter["name"] == "max_price")
    );
    let t = shop().await;
    let after = recommendation_parameters(&t).await;
    let category = after
        .iter()
        .find(|parameter| parameter["name"] == "category")
        .expect("a category parameter");
    assert_eq!(
        category["schema"]["items"]["enum"],
        json!(["garden", "home", "home/kitchen", "home/lighting"])
    );
    let exclude = after
        .iter()
        .find(|parameter| parameter["name"] == "exclude")
        .expect("exclude");
    assert_eq!(exclude["schema"]["type"], "array");
}
