//! Declaring and reading catalogue items: `upsert_item`, `upsert_items` (all or nothing)
//! and `item`. Items are not personal data: no purpose, no consent, no ledger entry. The
//! vault stores them first; only then does the in-memory catalogue change, under its own
//! lock, so a reader sees the new item in its next answer with no rebuild of the models.

use discreet_policy::Action;
use discreet_vault::{ItemRow, now_millis};

use crate::access::Caller;
use crate::engine::{Engine, lock, read, write};
use crate::error::{Error, Missing, Result};
use crate::input::check_item;
use crate::items::{ItemInput, ItemUpserted, ItemView, MAX_ITEMS_PER_BATCH, check_item_input};

impl Engine {
    /// Declares or replaces one item.
    pub fn upsert_item(&self, caller: &Caller, input: ItemInput) -> Result<ItemUpserted> {
        self.authorize(caller, Action::Catalogue)?;
        check_item_input(&input)?;
        let item = input.item.clone();
        let created = self.store_items(vec![input])? == 1;
        Ok(ItemUpserted { item, created })
    }

    /// Declares or replaces a batch of items, all or nothing: one bad item refuses the
    /// batch, naming its index (`items[3].title`), and nothing is stored. Returns how many
    /// items were upserted.
    pub fn upsert_items(&self, caller: &Caller, inputs: Vec<ItemInput>) -> Result<u64> {
        self.authorize(caller, Action::Catalogue)?;
        if inputs.is_empty() {
            return Err(Error::bad_input("items", "must hold at least one item"));
        }
        if inputs.len() > MAX_ITEMS_PER_BATCH {
            return Err(Error::bad_input(
                "items",
                format!("must hold at most {MAX_ITEMS_PER_BATCH} items"),
            ));
        }
        for (index, input) in inputs.iter().enumerate() {
            check_item_input(input).map_err(|error| error.within(&format!("items[{index}]")))?;
        }
        let upserted = inputs.len() as u64;
        self.store_items(inputs)?;
        Ok(upserted)
    }

    /// The declared item `item`; `NotFound` when it was never declared.
    pub fn item(&self, caller: &Caller, item: &str) -> Result<ItemView> {
        self.authorize(caller, Action::Catalogue)?;
        check_item("item", item)?;
        read(&self.inner.items).view(item).ok_or(Error::NotFound {
            what: Missing::Item,
        })
    }

    /// The titles of those of `items` that are declared (items are not personal data: no
    /// caller, no ledger entry), for pages that show a customer their own history.
    pub fn item_titles<'a>(
        &self,
        items: impl IntoIterator<Item = &'a str>,
    ) -> std::collections::HashMap<String, String> {
        let catalogue = read(&self.inner.items);
        items
            .into_iter()
            .filter_map(|item| Some((item.to_owned(), catalogue.view(item)?.title)))
            .collect()
    }

    /// Every category a filter may name (declared paths and their ancestors), sorted.
    pub fn declared_categories(&self) -> Vec<String> {
        read(&self.inner.items).category_names()
    }

    /// Approximate bytes the in-memory catalogue holds (for `discreet bench`).
    pub fn catalogue_memory_bytes(&self) -> usize {
        read(&self.inner.items).memory_bytes()
    }

    /// Stores checked items, then changes the in-memory catalogue; how many were new.
    fn store_items(&self, inputs: Vec<ItemInput>) -> Result<u64> {
        let _one_at_a_time = lock(&self.inner.item_writes);
        let now = now_millis();
        let rows = inputs
            .iter()
            .map(|input| ItemRow {
                item: input.item.clone(),
                title: input.title.clone(),
                categories: input.categories.clone(),
                price: input.price,
                available: input.available,
                updated_at: now,
            })
            .collect();
        self.inner.vault.upsert_items(rows)?;
        let mut items = write(&self.inner.items);
        let created = inputs
            .into_iter()
            .map(|input| items.put(input, now))
            .filter(|created| *created)
            .count();
        Ok(created as u64)
    }
}
