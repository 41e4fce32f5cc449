//! The built-in retail policy keeps the public contract of API.md: the four purposes
//! with their data use, legal basis and data, and the four roles with their actions.

use std::collections::BTreeSet;

use discreet_policy::{Action, LegalBasis, Policy};

fn actions_allowed(policy: &Policy, role: &str) -> BTreeSet<Action> {
    let Some(role) = policy.role(role) else {
        panic!("no role `{role}`")
    };
    Action::ALL
        .into_iter()
        .filter(|action| role.allows_action(*action))
        .collect()
}

#[test]
fn purposes_match_the_api_table() {
    let policy = Policy::builtin_retail();
    let expected = [
        (
            "personalization",
            "personalize.content.profiling",
            LegalBasis::Consent,
        ),
        (
            "marketing_email",
            "marketing.communications.email",
            LegalBasis::Consent,
        ),
        (
            "analytics",
            "analytics.reporting",
            LegalBasis::LegitimateInterests,
        ),
        (
            "order_fulfilment",
            "essential.service",
            LegalBasis::Contract,
        ),
    ];
    for (name, data_use, legal_basis) in expected {
        let Some(purpose) = policy.purpose(name) else {
            panic!("no purpose `{name}`")
        };
        assert_eq!(purpose.data_use, data_use, "{name}");
        assert_eq!(purpose.legal_basis, legal_basis, "{name}");
        assert!(
            purpose.description.is_some(),
            "{name} has no customer-facing description"
        );
        assert!(
            purpose
                .data_subjects
                .iter()
                .any(|subject| subject == "customer"),
            "{name}"
        );
    }
    assert!(policy.purpose("unknown").is_none());
}

#[test]
fn personalization_uses_histories_and_preferences_only() {
    let policy = Policy::builtin_retail();
    let Some(purpose) = policy.purpose("personalization") else {
        panic!("no personalization")
    };
    assert!(purpose.requires_consent());
    for category in [
        "user.behavior.purchase_history",
        "user.behavior.browsing_history",
        "user.behavior.search_history",
        "user.demographic.profile",
    ] {
        assert!(purpose.uses_category(category), "{category}");
    }
    for category in [
        "user.contact.email",
        "user.name.first",
        "user.contact.address.city",
    ] {
        assert!(!purpose.uses_category(category), "{category}");
    }
}

#[test]
fn marketing_email_uses_the_email_and_preferences_only() {
    let policy = Policy::builtin_retail();
    let Some(purpose) = policy.purpose("marketing_email") else {
        panic!("no marketing_email")
    };
    assert!(purpose.uses_category("user.contact.email"));
    assert!(purpose.uses_category("user.demographic.profile"));
    assert!(!purpose.uses_category("user.contact.phone_number"));
    assert!(!purpose.uses_category("user.behavior.purchase_history"));
}

#[test]
fn analytics_uses_behaviour_in_aggregate_only() {
    let policy = Policy::builtin_retail();
    let Some(purpose) = policy.purpose("analytics") else {
        panic!("no analytics")
    };
    assert!(purpose.aggregated_only);
    assert!(purpose.legitimate_interest.is_some());
    assert!(purpose.uses_category("user.behavior.purchase_history"));
    assert!(!purpose.uses_category("user.contact.email"));
    assert!(!purpose.uses_category("user.demographic.profile"));
}

#[test]
fn order_fulfilment_uses_contact_address_and_purchases() {
    let policy = Policy::builtin_retail();
    let Some(purpose) = policy.purpose("order_fulfilment") else {
        panic!("no order_fulfilment")
    };
    assert!(!purpose.requires_consent());
    for category in [
        "user.contact.email",
        "user.contact.address.postal_code",
        "user.behavior.purchase_history",
    ] {
        assert!(purpose.uses_category(category), "{category}");
    }
    assert!(!purpose.uses_category("user.behavior.browsing_history"));
}

#[test]
fn no_builtin_purpose_is_a_sale_or_sharing() {
    assert!(
        Policy::builtin_retail()
            .purposes_sale_or_sharing()
            .is_empty()
    );
}

#[test]
fn roles_are_exactly_those_of_the_api() {
    let policy = Policy::builtin_retail();
    let names: BTreeSet<&str> = policy
        .roles()
        .iter()
        .map(|role| role.name.as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["admin", "analyst", "privacy", "storefront"])
    );
    assert!(policy.role("root").is_none());
}

#[test]
fn admin_may_do_everything() {
    let policy = Policy::builtin_retail();
    let Some(admin) = policy.role("admin") else {
        panic!("no admin")
    };
    assert_eq!(
        actions_allowed(&policy, "admin"),
        Action::ALL.into_iter().collect()
    );
    for purpose in policy.purposes() {
        assert!(admin.allows_purpose(&purpose.name));
    }
    assert!(admin.allows_category("user.contact.email"));
    assert!(admin.allows_category("system.operations"));
}

#[test]
fn storefront_ingests_declares_items_and_recommends_but_cannot_export_or_forget() {
    let policy = Policy::builtin_retail();
    assert_eq!(
        actions_allowed(&policy, "storefront"),
        BTreeSet::from([
            Action::Ingest,
            Action::AttributesWrite,
            Action::ConsentsRead,
            Action::ConsentsWrite,
            Action::Recommendations,
            Action::SimilarItems,
            Action::Catalogue,
            Action::Portal,
        ])
    );
    let Some(storefront) = policy.role("storefront") else {
        panic!("no storefront")
    };
    assert!(storefront.allows_purpose("personalization"));
    assert!(!storefront.allows_purpose("analytics"));
    // It writes every declared attribute and event.
    for category in policy
        .attributes()
        .values()
        .chain(policy.event_types().values())
    {
        assert!(storefront.allows_category(category), "{category}");
    }
}

#[test]
fn privacy_answers_requests_and_reads_the_trail() {
    let policy = Policy::builtin_retail();
    assert_eq!(
        actions_allowed(&policy, "privacy"),
        BTreeSet::from([
            Action::Export,
            Action::Forget,
            Action::ConsentsRead,
            Action::ConsentsWrite,
            Action::AuditRead,
            Action::ReceiptsRead,
            Action::RecordsRead,
            Action::PolicyRead,
            Action::Console,
            Action::Incidents,
        ])
    );
    let Some(privacy) = policy.role("privacy") else {
        panic!("no privacy")
    };
    assert!(!privacy.allows_purpose("marketing_email"));
    assert!(privacy.allows_category("user.behavior.purchase_history"));
}

#[test]
fn analyst_sees_similar_items_and_non_personal_figures_only() {
    let policy = Policy::builtin_retail();
    assert_eq!(
        actions_allowed(&policy, "analyst"),
        BTreeSet::from([Action::SimilarItems, Action::AggregatesRead])
    );
    let Some(analyst) = policy.role("analyst") else {
        panic!("no analyst")
    };
    for category in policy.categories() {
        assert!(
            !analyst.allows_category(&category.name),
            "{}",
            category.name
        );
    }
    assert!(!analyst.allows_purpose("personalization"));
}

#[test]
fn every_event_type_of_the_api_is_classified_and_reaches_personalization() {
    let policy = Policy::builtin_retail();
    let Some(personalization) = policy.purpose("personalization") else {
        panic!("no personalization")
    };
    for event_type in ["view", "cart", "purchase", "search", "rating"] {
        let Some(category) = policy.category_of_event_type(event_type) else {
            panic!("event type `{event_type}` has no category")
        };
        assert!(policy.retention_of(category).is_some(), "{event_type}");
        assert!(personalization.uses_category(category), "{event_type}");
    }
    assert_eq!(
        policy.category_of_event_type("purchase"),
        Some("user.behavior.purchase_history")
    );
    assert_eq!(policy.category_of_event_type("refund"), None);
}

#[test]
fn declared_attributes_have_a_category_a_retention_and_a_purpose() {
    let policy = Policy::builtin_retail();
    for attribute in [
        "email",
        "first_name",
        "last_name",
        "phone",
        "street",
        "postal_code",
        "city",
        "country",
        "favourite_category",
        "size",
    ] {
        let Some(category) = policy.category_of_attribute(attribute) else {
            panic!("attribute `{attribute}` is not declared")
        };
        assert!(policy.retention_of(category).is_some(), "{attribute}");
        // Data minimisation: nothing is collected that no purpose (beyond answering the
        // subject's own requests) uses.
        let users: Vec<&str> = policy
            .purposes_using_category(category)
            .into_iter()
            .map(|purpose| purpose.name.as_str())
            .filter(|name| *name != "subject_rights")
            .collect();
        assert!(
            !users.is_empty(),
            "attribute `{attribute}` serves no purpose"
        );
    }
    assert_eq!(
        policy.category_of_attribute("email"),
        Some("user.contact.email")
    );
    assert_eq!(policy.category_of_attribute("password"), None);
}

#[test]
fn retention_is_realistic_per_category() {
    let policy = Policy::builtin_retail();
    let days = |category: &str| match policy.retention_of(category) {
        Some(duration) => duration.as_secs() / 86_400,
        None => panic!("no retention for {category}"),
    };
    assert_eq!(days("user.behavior.browsing_history"), 13 * 30);
    assert_eq!(days("user.behavior.search_history"), 13 * 30);
    assert_eq!(days("user.behavior.purchase_history"), 3 * 365);
    assert_eq!(days("user.contact.email"), 3 * 365);
    assert!(
        days("user.privacy_preferences") > days("user.contact.email"),
        "consent proof outlives contact data"
    );
}

#[test]
fn version_and_fingerprint_identify_the_policy() {
    let policy = Policy::builtin_retail();
    assert_eq!(policy.version(), "builtin-retail-1");
    assert_eq!(policy.origin(), "builtin:retail");
    let fingerprint = policy.fingerprint();
    assert!(fingerprint.starts_with("fnv1a64:"), "{fingerprint}");
    assert_eq!(fingerprint.len(), "fnv1a64:".len() + 16);
    assert!(
        fingerprint["fnv1a64:".len()..]
            .chars()
            .all(|digit| digit.is_ascii_hexdigit())
    );
}

#[test]
fn non_product_codes_of_the_retail_data_are_never_recommended() {
    let rules = Policy::builtin_retail().recommendation_rules().clone();
    for code in [
        "POST",
        "DOT",
        "M",
        "m",
        "C2",
        "D",
        "S",
        "B",
        "BANK CHARGES",
        "AMAZONFEE",
    ] {
        assert!(rules.never_answers(code), "{code}");
    }
    assert!(rules.never_answers("gift_0001_20"));
    for product in ["85123A", "22423", "DCGS0076", "POSTAGE"] {
        assert!(!rules.never_answers(product), "{product}");
    }
    assert_eq!(rules.max_per_category, None);
}
