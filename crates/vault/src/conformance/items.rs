//! Conformance cases: the item catalogue — upserts replace, count what is new, survive a
//! reopen and a forget, and write nothing to the ledger (items are not personal data).

use crate::storage::ItemRow;

use super::*;

fn item(
    id: &str,
    title: &str,
    categories: &[&str],
    price: Option<f64>,
    available: bool,
) -> ItemRow {
    ItemRow {
        item: id.to_owned(),
        title: title.to_owned(),
        categories: categories
            .iter()
            .map(|category| (*category).to_owned())
            .collect(),
        price,
        available,
        updated_at: 1_700_000_000_000,
    }
}

/// An upsert stores every field as given, replaces a declared item whole, counts only new
/// ones, and the catalogue reads back the same after a reopen.
pub fn items_upsert_replace_and_survive_reopen(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    assert_eq!(vault.item("85123A").expect("read"), None);
    let heart = item(
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        &["home/lighting"],
        Some(2.55),
        true,
    );
    let lantern = item(
        "71053",
        "WHITE METAL LANTERN",
        &["home/lighting", "garden"],
        None,
        false,
    );
    assert_eq!(
        vault
            .upsert_items(vec![heart.clone(), lantern.clone()])
            .expect("upsert"),
        2
    );
    assert_eq!(vault.item("85123A").expect("read"), Some(heart.clone()));
    let mut renamed = heart.clone();
    renamed.title = "HEART T-LIGHT HOLDER".into();
    renamed.categories.clear();
    renamed.price = None;
    renamed.available = false;
    let bag = item("22423", "REGENCY CAKESTAND 3 TIER", &[], Some(12.75), true);
    assert_eq!(
        vault
            .upsert_items(vec![renamed.clone(), bag.clone()])
            .expect("upsert"),
        1
    );
    assert_eq!(vault.upsert_items(Vec::new()).expect("empty upsert"), 0);
    let expected = vec![bag, lantern, renamed];
    assert_eq!(vault.items().expect("items"), expected);
    drop(vault);
    let reopened = backend.open();
    assert_eq!(reopened.items().expect("items after reopen"), expected);
    assert_eq!(
        reopened.item("22423").expect("read"),
        Some(expected[0].clone())
    );
}

/// Declaring items writes nothing to the ledger, and forgetting a subject leaves them.
pub fn items_are_not_personal_data(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .append_events("conformance", &[event("c-1", "85123A", 1)], None)
        .expect("append");
    let before = vault.verify_ledger().expect("verify").entries;
    vault
        .upsert_items(vec![item("85123A", "HEART", &["home"], Some(1.0), true)])
        .expect("upsert");
    let after = vault.verify_ledger().expect("verify");
    assert!(after.ok);
    assert_eq!(after.entries, before);
    vault.forget("c-1", "conformance", 1).expect("forget");
    assert_eq!(vault.items().expect("items").len(), 1);
}
