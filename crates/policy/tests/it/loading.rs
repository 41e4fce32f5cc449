//! Loading valid policies: lookups, the sale/sharing flag, wildcard grants, and a
//! fingerprint that follows meaning, not layout.

use std::time::Duration;

use discreet_policy::{Action, Grant, Policy, RecipientKind};

use crate::{read_test_file, test_file};

fn minimal() -> Policy {
    match Policy::from_file(test_file("valid/minimal.toml")) {
        Ok(policy) => policy,
        Err(error) => panic!("{error}"),
    }
}

fn from_text(text: &str) -> Policy {
    match Policy::from_toml_str(text, "variant.toml") {
        Ok(policy) => policy,
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn a_file_loads_and_answers_lookups() {
    let policy = minimal();
    assert!(policy.origin().ends_with("minimal.toml"));
    assert_eq!(policy.version(), "test-1");
    assert_eq!(policy.controller().name, "Tiny Shop SARL");
    assert_eq!(policy.controller().data_protection_officer, None);
    assert_eq!(
        policy.category_of_attribute("email"),
        Some("user.contact.email")
    );
    assert_eq!(
        policy.category_of_event_type("view"),
        Some("user.behavior.browsing_history")
    );
    assert_eq!(policy.category_of_event_type("purchase"), None);
    // "6 months" counts 30-day months; "1 year" 365 days, inherited by the child.
    assert_eq!(
        policy.retention_of("user.contact.email"),
        Some(Duration::from_secs(180 * 86_400))
    );
    assert_eq!(
        policy.retention_of("user.behavior.search_history"),
        Some(Duration::from_secs(365 * 86_400))
    );
    assert_eq!(policy.retention_of("user.contact.phone_number"), None);
    let Some(rule) = policy.category_rule_of("user.behavior.browsing_history") else {
        panic!("no rule")
    };
    assert_eq!(rule.name, "user.behavior");
    assert_eq!(policy.recipients()[0].kind, RecipientKind::Controller);
    assert_eq!(policy.transfers()[0].country, "United States");
}

#[test]
fn sale_or_sharing_purposes_are_what_global_privacy_control_withdraws() {
    let policy = minimal();
    let names: Vec<&str> = policy
        .purposes_sale_or_sharing()
        .iter()
        .map(|purpose| purpose.name.as_str())
        .collect();
    assert_eq!(names, ["partner_ads"]);
    let Some(personalization) = policy.purpose("personalization") else {
        panic!("no personalization")
    };
    assert!(!personalization.sale_or_sharing);
}

#[test]
fn role_grants_are_limited_to_what_the_file_lists() {
    let policy = minimal();
    let Some(storefront) = policy.role("storefront") else {
        panic!("no storefront")
    };
    assert!(storefront.allows_action(Action::Ingest));
    assert!(storefront.allows_action(Action::Recommendations));
    assert!(!storefront.allows_action(Action::Export));
    assert!(storefront.allows_purpose("personalization"));
    assert!(!storefront.allows_purpose("partner_ads"));
    assert!(storefront.allows_category("user.behavior.browsing_history"));
    assert!(!storefront.allows_category("user.contact.email"));
}

#[test]
fn a_wildcard_anywhere_in_a_grant_list_grants_everything() {
    let text = read_test_file("valid/minimal.toml").replace(
        r#"actions = ["ingest", "recommendations"]"#,
        r#"actions = ["ingest", "*"]"#,
    );
    let policy = from_text(&text);
    let Some(storefront) = policy.role("storefront") else {
        panic!("no storefront")
    };
    assert_eq!(storefront.actions, Grant::All);
    assert!(
        Action::ALL
            .into_iter()
            .all(|action| storefront.allows_action(action))
    );
}

#[test]
fn fingerprint_ignores_comments_layout_order_and_origin() {
    let original = read_test_file("valid/minimal.toml");
    let reference = minimal();
    let without_comments: String = original
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| format!("{line}\n\n"))
        .collect();
    assert_eq!(
        from_text(&without_comments).fingerprint(),
        reference.fingerprint()
    );
    // Reordering the two [[categories]] entries says the same thing.
    let behavior = "[[categories]]\nname = \"user.behavior\"\nretention = \"1 year\"\n";
    let email = "[[categories]]\nname = \"user.contact.email\"\nretention = \"6 months\"\n";
    assert!(original.contains(behavior) && original.contains(email));
    let reordered = original
        .replace(behavior, "PLACEHOLDER")
        .replace(email, behavior)
        .replace("PLACEHOLDER", email);
    assert_ne!(reordered, original);
    assert_eq!(from_text(&reordered).fingerprint(), reference.fingerprint());
}

#[test]
fn fingerprint_changes_with_meaning() {
    let original = read_test_file("valid/minimal.toml");
    let reference = minimal();
    for (from, to) in [
        ("retention = \"6 months\"", "retention = \"7 months\""),
        ("sale_or_sharing = true", "sale_or_sharing = false"),
        ("version = \"test-1\"", "version = \"test-2\""),
        (
            "We suggest products from what you viewed.",
            "We suggest products.",
        ),
    ] {
        assert!(original.contains(from), "{from}");
        let changed = from_text(&original.replace(from, to));
        assert_ne!(
            changed.fingerprint(),
            reference.fingerprint(),
            "{from} -> {to}"
        );
    }
}

#[test]
fn the_policy_serialises_for_the_policy_route() {
    let policy = minimal();
    let json = match serde_json::to_value(&policy) {
        Ok(json) => json,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(json["version"], "test-1");
    assert_eq!(json["fingerprint"], policy.fingerprint());
    assert_eq!(json["purposes"][1]["sale_or_sharing"], true);
    assert_eq!(
        json["roles"][0]["actions"],
        serde_json::json!(["ingest", "recommendations"])
    );
    assert_eq!(
        json["categories"][1]["retention"],
        serde_json::json!({"amount": 6, "unit": "months"})
    );
    // Where the file lives on the server is not part of the policy.
    assert!(json.get("origin").is_none());
}

#[test]
fn the_shipped_builtin_text_is_the_builtin_policy() {
    let Ok(policy) = Policy::from_toml_str(discreet_policy::BUILTIN_RETAIL_TOML, "copy.toml")
    else {
        panic!("the built-in text does not load")
    };
    assert_eq!(policy.fingerprint(), Policy::builtin_retail().fingerprint());
}

#[test]
fn business_rules_are_read_and_change_the_fingerprint() {
    let original = read_test_file("valid/minimal.toml");
    let reference = minimal();
    assert!(reference.recommendation_rules().is_empty());
    let with_rules = from_text(&format!(
        "{original}\n[recommendations]\nnever = [\"POST\", \"gift_*\", \"POST\"]\nmax_per_category = 3\n"
    ));
    let rules = with_rules.recommendation_rules();
    assert_eq!(rules.never, ["POST", "gift_*"]);
    assert_eq!(rules.max_per_category, Some(3));
    assert!(rules.never_answers("gift_0001_10"));
    assert!(!rules.never_answers("85123A"));
    assert_ne!(with_rules.fingerprint(), reference.fingerprint());
    // The order of `never` carries no meaning.
    let reordered = from_text(&format!(
        "{original}\n[recommendations]\nnever = [\"gift_*\", \"POST\"]\nmax_per_category = 3\n"
    ));
    assert_eq!(reordered.fingerprint(), with_rules.fingerprint());
    // An empty section says nothing: the fingerprint is the one without it.
    let empty = from_text(&format!("{original}\n[recommendations]\n"));
    assert_eq!(empty.fingerprint(), reference.fingerprint());
}

#[test]
fn an_unknown_business_rule_is_a_structure_error() {
    let original = read_test_file("valid/minimal.toml");
    let text = format!("{original}\n[recommendations]\nmax_per_categroy = 3\n");
    assert!(matches!(
        Policy::from_toml_str(&text, "rules.toml"),
        Err(discreet_policy::Error::Structure { .. })
    ));
}
