//! The item catalogue through the engine: declared items are kept across restarts and
//! carry their titles into answers; filters and the policy's business rules apply before
//! the top-n cut, to personal, trending and similar answers alike; an item marked
//! unavailable disappears from the very next answer, with no rebuild of the models.

use discreet_engine::{Error, EventContext, ItemFilter, ItemInput, Recommendations};
use discreet_policy::{BUILTIN_RETAIL_TOML, Policy};

use crate::support::*;

const SHOP_ITEMS: usize = 12;

fn item_input(item: &str, categories: &[&str], price: Option<f64>, available: bool) -> ItemInput {
    ItemInput {
        item: item.to_owned(),
        title: format!("TITLE OF {item}"),
        categories: categories
            .iter()
            .map(|category| (*category).to_owned())
            .collect(),
        price,
        available,
    }
}

/// Items `i-0` .. `i-11`: even ones under `home/lighting`, odd ones under `home/kitchen`,
/// priced 1 to 12; `i-11` is never declared.
fn declare_shop(engine: &TestEngine) {
    let items = (0..SHOP_ITEMS - 1)
        .map(|index| {
            let category = if index % 2 == 0 {
                "home/lighting"
            } else {
                "home/kitchen"
            };
            item_input(
                &format!("i-{index}"),
                &[category],
                Some(index as f64 + 1.0),
                true,
            )
        })
        .collect();
    assert_eq!(
        engine.upsert_items(&storefront(), items).expect("declare"),
        SHOP_ITEMS as u64 - 1
    );
}

/// 30 consenting customers, each buying a run of 4 items (and postage); `c-0` holds
/// `i-0` and `i-1` only.
fn shop_with(policy: Policy) -> TestEngine {
    let engine = TestEngine::with_policy(policy, Default::default());
    let customers: Vec<String> = (0..30).map(|index| format!("c-{index}")).collect();
    let mut events = Vec::new();
    for (index, customer) in customers.iter().enumerate() {
        grant(&engine, customer);
        let run = if index == 0 { 2 } else { 4 };
        for offset in 0..run {
            let item = format!("i-{}", (index + offset) % SHOP_ITEMS);
            events.push(event(
                customer,
                "purchase",
                &item,
                days_ago(3.0 + offset as f64),
            ));
        }
        events.push(event(customer, "purchase", "POST", days_ago(3.0)));
    }
    ingest_all(&engine, &events);
    engine.refresh_models();
    declare_shop(&engine);
    engine
}

fn shop() -> TestEngine {
    shop_with(Policy::builtin_retail())
}

fn recommend(engine: &TestEngine, subject: &str, n: usize, filter: &ItemFilter) -> Recommendations {
    engine
        .recommend_filtered(
            &storefront(),
            subject,
            "personalization",
            n,
            &EventContext::default(),
            filter,
        )
        .expect("recommend")
}

fn codes(answer: &Recommendations) -> Vec<String> {
    answer.items.iter().map(|item| item.item.clone()).collect()
}

#[test]
fn an_item_marked_unavailable_disappears_from_the_next_answer_without_a_rebuild() {
    let engine = shop();
    let before = recommend(&engine, "c-0", 5, &ItemFilter::default());
    assert!(before.personalized);
    let first = before.items[0].item.clone();
    let declared = engine.item(&storefront(), &first).expect("declared");
    let mut input = item_input(&first, &[], declared.price, false);
    input.categories = declared.categories;
    let upserted = engine
        .upsert_item(&storefront(), input)
        .expect("mark unavailable");
    assert!(!upserted.created);
    let after = recommend(&engine, "c-0", 5, &ItemFilter::default());
    assert!(!codes(&after).contains(&first), "{:?}", codes(&after));
    assert_eq!(after.items.len(), 5, "the next best fills the list");
    let trending = recommend(&engine, "someone-new", 20, &ItemFilter::default());
    assert!(!trending.personalized);
    assert!(!codes(&trending).contains(&first));
    let asked = ItemFilter {
        include_unavailable: true,
        ..ItemFilter::default()
    };
    assert!(codes(&recommend(&engine, "c-0", 5, &asked)).contains(&first));
}

#[test]
fn the_policy_never_rule_keeps_postage_out_of_every_answer() {
    let engine = shop();
    // Everybody bought postage: without the rule it would top trending and similar items.
    for subject in ["c-0", "someone-new"] {
        let answer = recommend(&engine, subject, 20, &ItemFilter::default());
        assert!(!answer.items.is_empty());
        assert!(!codes(&answer).contains(&"POST".to_owned()), "{subject}");
    }
    let similar = engine.similar(&storefront(), "i-1", 20).expect("similar");
    assert!(!similar.is_empty());
    assert!(similar.iter().all(|item| item.item != "POST"));
    // Without the rule, postage is what everybody gets.
    let text = BUILTIN_RETAIL_TOML.replace("never = [\"POST\", ", "never = [");
    let unruled = shop_with(Policy::from_toml_str(&text, "unruled.toml").expect("policy"));
    let answer = recommend(&unruled, "someone-new", 20, &ItemFilter::default());
    assert!(codes(&answer).contains(&"POST".to_owned()));
    let similar = unruled.similar(&storefront(), "i-1", 20).expect("similar");
    assert!(similar.iter().any(|item| item.item == "POST"));
}

#[test]
fn at_most_the_policys_count_per_category_and_the_list_still_filled() {
    let text = BUILTIN_RETAIL_TOML.replace("never = [", "max_per_category = 2\nnever = [");
    let engine = shop_with(Policy::from_toml_str(&text, "capped.toml").expect("policy"));
    let answer = recommend(&engine, "c-0", 5, &ItemFilter::default());
    let lighting = codes(&answer)
        .iter()
        .filter(|code| {
            code.trim_start_matches("i-")
                .parse::<usize>()
                .is_ok_and(|index| index % 2 == 0 && index < 11)
        })
        .count();
    let kitchen = codes(&answer)
        .iter()
        .filter(|code| {
            code.trim_start_matches("i-")
                .parse::<usize>()
                .is_ok_and(|index| index % 2 == 1 && index < 11)
        })
        .count();
    assert!(lighting <= 2 && kitchen <= 2, "{:?}", codes(&answer));
    // i-11 is undeclared (no category, so not capped): 2 + 2 + 1.
    assert_eq!(answer.items.len(), 5, "{:?}", codes(&answer));
    let trending = recommend(&engine, "someone-new", 10, &ItemFilter::default());
    assert_eq!(trending.items.len(), 5, "{:?}", codes(&trending));
}

#[test]
fn filters_apply_before_the_cut_and_titles_come_with_the_items() {
    let engine = shop();
    let lighting = ItemFilter {
        categories: vec!["home/lighting".into()],
        ..ItemFilter::default()
    };
    let answer = recommend(&engine, "c-0", 3, &lighting);
    assert_eq!(answer.items.len(), 3);
    for item in &answer.items {
        let index: usize = item
            .item
            .trim_start_matches("i-")
            .parse()
            .expect("shop item");
        assert_eq!(index % 2, 0, "{}", item.item);
        assert_eq!(
            item.title.as_deref(),
            Some(format!("TITLE OF {}", item.item).as_str())
        );
    }
    // The parent covers both children.
    let home = ItemFilter {
        categories: vec!["home".into()],
        ..ItemFilter::default()
    };
    assert_eq!(recommend(&engine, "c-0", 9, &home).items.len(), 9);
    // Price range 2..=4 leaves i-1, i-2, i-3; c-0 holds i-1: two qualify, two come back.
    let priced = ItemFilter {
        min_price: Some(2.0),
        max_price: Some(4.0),
        ..ItemFilter::default()
    };
    let answer = recommend(&engine, "c-0", 10, &priced);
    let mut priced_codes = codes(&answer);
    priced_codes.sort();
    assert_eq!(priced_codes, ["i-2", "i-3"]);
    assert_eq!(answer.items.len(), 2, "{:?}", codes(&answer));
    let excluded = ItemFilter {
        exclude: vec!["i-2".into()],
        ..priced
    };
    assert_eq!(codes(&recommend(&engine, "c-0", 10, &excluded)), ["i-3"]);
    // An undeclared item has no title, and no category filter can reach it.
    let everything = recommend(&engine, "someone-new", 20, &ItemFilter::default());
    let undeclared = everything
        .items
        .iter()
        .find(|item| item.item == "i-11")
        .expect("i-11 trends");
    assert_eq!(undeclared.title, None);
    assert!(!codes(&recommend(&engine, "someone-new", 20, &home)).contains(&"i-11".to_owned()));
}

#[test]
fn an_unknown_category_is_bad_input_naming_the_parameter_only() {
    let engine = shop();
    let unknown = ItemFilter {
        categories: vec!["home/secret-garden".into()],
        ..ItemFilter::default()
    };
    let refused = engine.recommend_filtered(
        &storefront(),
        "c-0",
        "personalization",
        5,
        &EventContext::default(),
        &unknown,
    );
    match refused {
        Err(Error::BadInput { field, detail }) => {
            assert_eq!(field, "category");
            assert!(!detail.contains("secret"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        engine.similar_filtered(&storefront(), "i-1", 5, &unknown),
        Err(Error::BadInput { .. })
    ));
}

#[test]
fn a_bad_item_refuses_the_whole_batch_naming_its_index() {
    let engine = TestEngine::new();
    let mut items: Vec<ItemInput> = (0..5)
        .map(|index| item_input(&format!("b-{index}"), &["garden"], Some(1.0), true))
        .collect();
    items[3].price = Some(-1.0);
    match engine.upsert_items(&storefront(), items.clone()) {
        Err(Error::BadInput { field, .. }) => assert_eq!(field, "items[3].price"),
        other => panic!("{other:?}"),
    }
    assert!(
        engine.item(&storefront(), "b-0").is_err(),
        "nothing of the batch is stored"
    );
    items[3].price = None;
    items[4].categories = vec!["garden//pots".into()];
    match engine.upsert_items(&storefront(), items) {
        Err(Error::BadInput { field, .. }) => assert_eq!(field, "items[4].categories[0]"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        engine.upsert_items(&storefront(), Vec::new()),
        Err(Error::BadInput { .. })
    ));
}

#[test]
fn the_catalogue_survives_a_restart_and_roles_are_checked() {
    let engine = shop();
    assert!(matches!(
        engine.upsert_item(&analyst(), item_input("x", &[], None, true)),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        engine.item(&privacy(), "i-0"),
        Err(Error::Forbidden { .. })
    ));
    engine
        .upsert_item(
            &storefront(),
            item_input("i-0", &["garden/pots"], Some(9.5), false),
        )
        .expect("replace");
    let engine = engine.reopen();
    let kept = engine.item(&storefront(), "i-0").expect("kept");
    assert_eq!(kept.title, "TITLE OF i-0");
    assert_eq!(kept.categories, ["garden/pots"]);
    assert_eq!(kept.price, Some(9.5));
    assert!(!kept.available);
    assert!(matches!(
        engine.item(&storefront(), "i-11"),
        Err(Error::NotFound { .. })
    ));
    // Unavailable after the restart too, and the category is known again.
    let answer = recommend(&engine, "someone-new", 20, &ItemFilter::default());
    assert!(!codes(&answer).contains(&"i-0".to_owned()));
    let garden = ItemFilter {
        categories: vec!["garden".into()],
        include_unavailable: true,
        ..ItemFilter::default()
    };
    assert_eq!(
        codes(&recommend(&engine, "someone-new", 20, &garden)),
        ["i-0"]
    );
}
