//! The item catalogue: titles, categories, prices and availability of the shop's items.
//! Items are not personal data, so they are stored in clear, never sealed, never on the
//! ledger, and need no consent; the vault keeps them only so they survive restarts. It
//! never checks what an item says (the engine does).

use crate::error::Result;
use crate::storage::ItemRow;

use super::Vault;

impl Vault {
    /// Declares or replaces items in one transaction (all or none); how many were new.
    pub fn upsert_items(&self, items: Vec<ItemRow>) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        self.storage.upsert_items(items)
    }

    /// The declared item `item`, if any.
    pub fn item(&self, item: &str) -> Result<Option<ItemRow>> {
        self.storage.item(item)
    }

    /// Every declared item, by item id (the engine loads them at start).
    pub fn items(&self) -> Result<Vec<ItemRow>> {
        self.storage.items()
    }
}
