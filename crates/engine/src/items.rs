//! The item catalogue (`ItemCatalogue`): what the shop declares about its items — title,
//! categories, price, availability — and the filters and business rules every answered
//! list obeys. Items are not personal data: they are stored in clear by the vault, need no
//! consent and are not on the ledger. Not to be confused with the model crate's
//! `Catalogue`, the interner of item codes.
//!
//! A filter is resolved per request into an `ItemSelection` over the models' item ids: a
//! dense table (model id → declared record, and whether a `never` rule matches) makes each
//! check a few array reads, done only for the candidates that reach the top-n selection.
//! The table follows new model ids and new declarations without a rebuild of the models;
//! an upsert changes a record in place, so the next answer sees it. Upserts take only the
//! catalogue's own lock, never the models' write lock.

use std::collections::HashMap;

use discreet_model::{ItemId, ItemSelection, ModelSet};
use discreet_policy::RecommendationRules;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::input::check_item;

/// Most items one `POST /v1/items` batch holds.
pub const MAX_ITEMS_PER_BATCH: usize = 10_000;
/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 512;
/// Most categories one item declares.
pub const MAX_ITEM_CATEGORIES: usize = 16;
/// Longest category path accepted, in characters.
pub const MAX_CATEGORY_CHARS: usize = 128;
/// Largest price accepted.
pub const MAX_PRICE: f64 = 1_000_000_000.0;
/// Most categories one filter names.
pub const MAX_FILTER_CATEGORIES: usize = 32;
/// Most items one filter excludes.
pub const MAX_EXCLUDED_ITEMS: usize = 100;

/// Marks a model id no declared item has.
const UNDECLARED: u32 = u32::MAX;

/// An item as the shop declares it (`PUT /v1/items/{item}`).
#[derive(Clone, Debug, PartialEq)]
pub struct ItemInput {
    pub item: String,
    pub title: String,
    /// `/`-separated paths; a parent covers its children.
    pub categories: Vec<String>,
    pub price: Option<f64>,
    /// Absent in the request: available.
    pub available: bool,
}

/// A declared item, as `GET /v1/items/{item}` answers it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemView {
    pub item: String,
    pub title: String,
    pub categories: Vec<String>,
    pub price: Option<f64>,
    pub available: bool,
    /// RFC 3339.
    pub updated_at: String,
}

/// Answer to `PUT /v1/items/{item}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemUpserted {
    pub item: String,
    /// False when the item was declared before (it is replaced).
    pub created: bool,
}

/// Which items an answer may hold, as a request asks. The default asks nothing beyond the
/// policy's rules: every available item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ItemFilter {
    /// Any of these categories (each covers its children); empty: any item.
    pub categories: Vec<String>,
    /// Never these items.
    pub exclude: Vec<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    /// Unavailable items too (left out by default).
    pub include_unavailable: bool,
}

impl ItemFilter {
    /// True when the filter asks for items the catalogue must say something about.
    fn needs_declaration(&self) -> bool {
        !self.categories.is_empty() || self.min_price.is_some() || self.max_price.is_some()
    }
}

/// Checks a category path: `/`-separated non-empty segments, no control characters.
pub fn check_category(field: &str, category: &str) -> Result<()> {
    if category.is_empty() {
        return Err(Error::bad_input(field, "must not be empty"));
    }
    if category.chars().count() > MAX_CATEGORY_CHARS {
        return Err(Error::bad_input(
            field,
            format!("must be at most {MAX_CATEGORY_CHARS} characters"),
        ));
    }
    if category.chars().any(char::is_control) {
        return Err(Error::bad_input(field, "must not hold control characters"));
    }
    if category.split('/').any(str::is_empty) {
        return Err(Error::bad_input(
            field,
            "must be `/`-separated names, none empty (e.g. `home/lighting`)",
        ));
    }
    Ok(())
}

fn check_price(field: &str, price: f64) -> Result<()> {
    if price.is_finite() && (0.0..=MAX_PRICE).contains(&price) {
        Ok(())
    } else {
        Err(Error::bad_input(
            field,
            "must be a number from 0 to 1000000000",
        ))
    }
}

/// Checks one declared item; `field` prefixes the names of what is wrong.
pub fn check_item_input(input: &ItemInput) -> Result<()> {
    check_item("item", &input.item)?;
    if input.title.is_empty() {
        return Err(Error::bad_input("title", "must not be empty"));
    }
    if input.title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::bad_input(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    if input.title.chars().any(char::is_control) {
        return Err(Error::bad_input(
            "title",
            "must not hold control characters",
        ));
    }
    if input.categories.len() > MAX_ITEM_CATEGORIES {
        return Err(Error::bad_input(
            "categories",
            format!("must hold at most {MAX_ITEM_CATEGORIES} categories"),
        ));
    }
    for (index, category) in input.categories.iter().enumerate() {
        check_category(&format!("categories[{index}]"), category)?;
    }
    if let Some(price) = input.price {
        check_price("price", price)?;
    }
    Ok(())
}

/// Checks the shape of a filter (what needs no catalogue: counts, prices, item ids).
pub fn check_filter(filter: &ItemFilter) -> Result<()> {
    if filter.categories.len() > MAX_FILTER_CATEGORIES {
        return Err(Error::bad_input(
            "category",
            format!("may be given at most {MAX_FILTER_CATEGORIES} times"),
        ));
    }
    for category in &filter.categories {
        check_category("category", category)?;
    }
    if filter.exclude.len() > MAX_EXCLUDED_ITEMS {
        return Err(Error::bad_input(
            "exclude",
            format!("may be given at most {MAX_EXCLUDED_ITEMS} times"),
        ));
    }
    for item in &filter.exclude {
        check_item("exclude", item)?;
    }
    if let Some(price) = filter.min_price {
        check_price("min_price", price)?;
    }
    if let Some(price) = filter.max_price {
        check_price("max_price", price)?;
    }
    // A minimum above the maximum is no error: no item qualifies, and fewer items come back.
    Ok(())
}

/// One declared item in memory.
#[derive(Clone, Debug)]
struct ItemRecord {
    item: String,
    title: String,
    categories: Vec<String>,
    /// Ids of the declared category paths (the groups of `max_per_category`).
    declared: Vec<u32>,
    /// Ids of the declared paths and every ancestor of them, sorted.
    covered: Vec<u32>,
    price: Option<f64>,
    available: bool,
    updated_at: i64,
}

/// What the dense table knows of one model item id.
#[derive(Clone, Copy, Debug)]
struct DenseEntry {
    slot: u32,
    never: bool,
}

/// The declared items, their categories and the dense table over the models' item ids.
#[derive(Default)]
pub(crate) struct ItemCatalogue {
    slots: HashMap<String, u32>,
    records: Vec<ItemRecord>,
    /// Every declared category path and each of its ancestors → id.
    category_ids: HashMap<String, u32>,
    /// Model item id → entry; covers the models' ids up to its length.
    dense: Vec<DenseEntry>,
    /// A new item was declared since `dense` was built: entries may point nowhere.
    dense_stale: bool,
}

impl ItemCatalogue {
    /// A catalogue of stored items (at start).
    pub(crate) fn from_rows(rows: Vec<discreet_vault::ItemRow>) -> ItemCatalogue {
        let mut catalogue = ItemCatalogue::default();
        for row in rows {
            catalogue.put(
                ItemInput {
                    item: row.item,
                    title: row.title,
                    categories: row.categories,
                    price: row.price,
                    available: row.available,
                },
                row.updated_at,
            );
        }
        catalogue
    }

    /// Declares or replaces an item in memory; true if it is new.
    pub(crate) fn put(&mut self, input: ItemInput, updated_at: i64) -> bool {
        let mut declared = Vec::with_capacity(input.categories.len());
        let mut covered = Vec::new();
        for category in &input.categories {
            declared.push(self.category_id(category));
            for (end, _) in category.match_indices('/') {
                covered.push(self.category_id(&category[..end]));
            }
            covered.push(self.category_id(category));
        }
        declared.sort_unstable();
        declared.dedup();
        covered.sort_unstable();
        covered.dedup();
        let record = ItemRecord {
            item: input.item,
            title: input.title,
            categories: input.categories,
            declared,
            covered,
            price: input.price,
            available: input.available,
            updated_at,
        };
        match self.slots.get(&record.item) {
            Some(&slot) => {
                self.records[slot as usize] = record;
                false
            }
            None => {
                let slot = self.records.len() as u32;
                self.slots.insert(record.item.clone(), slot);
                self.records.push(record);
                self.dense_stale = true;
                true
            }
        }
    }

    fn category_id(&mut self, path: &str) -> u32 {
        let next = self.category_ids.len() as u32;
        *self.category_ids.entry(path.to_owned()).or_insert(next)
    }

    /// The declared item `item`.
    pub(crate) fn view(&self, item: &str) -> Option<ItemView> {
        let record = &self.records[*self.slots.get(item)? as usize];
        Some(ItemView {
            item: record.item.clone(),
            title: record.title.clone(),
            categories: record.categories.clone(),
            price: record.price,
            available: record.available,
            updated_at: discreet_vault::rfc3339(record.updated_at),
        })
    }

    /// Number of declared items.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The models were replaced (a rebuild): their ids mean other items now.
    pub(crate) fn models_replaced(&mut self) {
        self.dense.clear();
        self.dense_stale = false;
    }

    /// True when the dense table covers `set`'s item ids as they are.
    pub(crate) fn is_current_for(&self, set: &ModelSet) -> bool {
        !self.dense_stale && self.dense.len() == set.catalogue().len()
    }

    /// Brings the dense table up to date with `set`'s item ids: a full pass after a new
    /// declaration, else only the ids learned since.
    pub(crate) fn refresh_for(&mut self, set: &ModelSet, rules: &RecommendationRules) {
        if self.dense_stale || self.dense.len() > set.catalogue().len() {
            self.dense.clear();
            self.dense_stale = false;
        }
        for index in self.dense.len()..set.catalogue().len() {
            let code = set.catalogue().code(ItemId(index as u32));
            self.dense.push(DenseEntry {
                slot: code
                    .and_then(|code| self.slots.get(code))
                    .copied()
                    .unwrap_or(UNDECLARED),
                never: code.is_some_and(|code| rules.never_answers(code)),
            });
        }
    }

    /// The ids of the categories `filter` names; a category nobody declared is bad input.
    fn resolve_categories(&self, filter: &ItemFilter) -> Result<Vec<u32>> {
        filter
            .categories
            .iter()
            .map(|category| {
                self.category_ids.get(category).copied().ok_or_else(|| {
                    Error::bad_input("category", "is not a category any declared item has")
                })
            })
            .collect()
    }

    /// The per-request selection of `filter` under `rules`, over `set`'s ids (the dense
    /// table must be current: `refresh_for`).
    pub(crate) fn selection<'a>(
        &'a self,
        set: &ModelSet,
        filter: &'a ItemFilter,
        rules: &RecommendationRules,
    ) -> Result<Selection<'a>> {
        let categories = self.resolve_categories(filter)?;
        let mut excluded: Vec<u32> = filter
            .exclude
            .iter()
            .filter_map(|item| set.catalogue().get(item))
            .map(|item| item.0)
            .collect();
        excluded.sort_unstable();
        Ok(Selection {
            catalogue: self,
            filter,
            categories,
            excluded,
            per_group_limit: rules.max_per_category.map(|limit| limit as usize),
        })
    }

    /// The title of model item `item`, if declared.
    pub(crate) fn title_of(&self, item: ItemId) -> Option<&str> {
        let entry = self.dense.get(item.index())?;
        self.records
            .get(entry.slot as usize)
            .map(|record| record.title.as_str())
    }

    /// Every declared category path and each ancestor of them, sorted (the values a
    /// filter may name).
    pub(crate) fn category_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.category_ids.keys().cloned().collect();
        names.sort();
        names
    }

    /// Approximate bytes held (strings, records, maps, the dense table).
    pub(crate) fn memory_bytes(&self) -> usize {
        let records: usize = self
            .records
            .iter()
            .map(|record| {
                size_of::<ItemRecord>()
                    + record.item.capacity()
                    + record.title.capacity()
                    + record
                        .categories
                        .iter()
                        .map(|category| size_of::<String>() + category.capacity())
                        .sum::<usize>()
                    + (record.declared.capacity() + record.covered.capacity()) * 4
            })
            .sum();
        let slots: usize = self
            .slots
            .keys()
            .map(|key| key.capacity() + size_of::<(String, u32)>() + 8)
            .sum();
        let categories: usize = self
            .category_ids
            .keys()
            .map(|key| key.capacity() + size_of::<(String, u32)>() + 8)
            .sum();
        records + slots + categories + self.dense.capacity() * size_of::<DenseEntry>()
    }
}

/// One request's filter and the policy's rules, as the models' `ItemSelection`.
pub(crate) struct Selection<'a> {
    catalogue: &'a ItemCatalogue,
    filter: &'a ItemFilter,
    categories: Vec<u32>,
    excluded: Vec<u32>,
    per_group_limit: Option<usize>,
}

impl Selection<'_> {
    fn record(&self, item: ItemId) -> Option<&ItemRecord> {
        let entry = self.catalogue.dense.get(item.index())?;
        self.catalogue.records.get(entry.slot as usize)
    }
}

impl ItemSelection for Selection<'_> {
    fn allows(&self, item: ItemId) -> bool {
        let Some(entry) = self.catalogue.dense.get(item.index()) else {
            return false;
        };
        if entry.never || self.excluded.binary_search(&item.0).is_ok() {
            return false;
        }
        let Some(record) = self.catalogue.records.get(entry.slot as usize) else {
            // Never declared: no title, always available, in no category and of no price.
            return !self.filter.needs_declaration();
        };
        if !record.available && !self.filter.include_unavailable {
            return false;
        }
        if self.filter.min_price.is_some() || self.filter.max_price.is_some() {
            let Some(price) = record.price else {
                return false;
            };
            if self.filter.min_price.is_some_and(|min| price < min)
                || self.filter.max_price.is_some_and(|max| price > max)
            {
                return false;
            }
        }
        self.categories.is_empty()
            || record
                .covered
                .iter()
                .any(|category| self.categories.contains(category))
    }

    fn groups(&self, item: ItemId) -> &[u32] {
        self.record(item)
            .map_or(&[], |record| record.declared.as_slice())
    }

    fn per_group_limit(&self) -> Option<usize> {
        self.per_group_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(item: &str, categories: &[&str]) -> ItemInput {
        ItemInput {
            item: item.into(),
            title: format!("title of {item}"),
            categories: categories
                .iter()
                .map(|category| (*category).into())
                .collect(),
            price: Some(1.0),
            available: true,
        }
    }

    #[test]
    fn a_category_covers_its_ancestors_and_counts_only_as_itself() {
        let mut catalogue = ItemCatalogue::default();
        assert!(catalogue.put(input("a", &["home/lighting/lamps", "garden"]), 0));
        assert!(!catalogue.put(input("a", &["home/lighting/lamps", "garden"]), 1));
        let record = &catalogue.records[0];
        assert_eq!(record.declared.len(), 2);
        assert_eq!(record.covered.len(), 4);
        for known in ["home", "home/lighting", "home/lighting/lamps", "garden"] {
            assert!(catalogue.category_ids.contains_key(known), "{known}");
        }
        assert!(!catalogue.category_ids.contains_key("lighting"));
    }

    #[test]
    fn category_paths_and_prices_are_checked() {
        assert!(check_category("c", "home/lighting").is_ok());
        assert!(check_category("c", "home/ lamps ").is_ok());
        for bad in ["", "/home", "home/", "home//lighting", "a\nb"] {
            assert!(check_category("c", bad).is_err(), "{bad:?}");
        }
        let mut filter = ItemFilter {
            min_price: Some(5.0),
            max_price: Some(2.0),
            ..ItemFilter::default()
        };
        assert!(
            check_filter(&filter).is_ok(),
            "nothing qualifies; not an error"
        );
        filter.max_price = Some(f64::NAN);
        assert!(check_filter(&filter).is_err());
        filter.max_price = Some(5.0);
        assert!(check_filter(&filter).is_ok());
    }
}
