//! Item-to-item co-occurrence recommender. The state is integer counts — for each pair of
//! items, how many subjects hold both; for each item, how many hold it — so learning and
//! unlearning are exact and order-independent. Similarity is computed from the counts at
//! query time, `sim(i, j) = c_ij / (n_i^a * n_j^b)` (a = b = 1/2 is cosine; a = 1 is the
//! conditional probability of RP3beta with a popularity penalty b), keeping each item's
//! `k` strongest neighbours. Derived state — each item's popularity factor and its lazily
//! computed neighbour list — is updated or emptied in the same call that changes a count it
//! depends on, so nothing about a forgotten subject survives in it.
//!
//! The rooms: this file holds the type, its settings and read-only accessors; `counts`
//! builds, learns, unlearns and forgets the counts and empties what they invalidate;
//! `rows` holds the merge operations on one sorted count row; `similarity` turns counts
//! into neighbours, scores, explanations and "similar items".

mod counts;
pub(crate) mod rows;
mod similarity;

use std::sync::OnceLock;

use crate::history::SubjectHistories;
use crate::ids::ItemId;
use crate::interaction::KindSet;

/// An item's kept neighbours `(item, similarity)`, best first.
type NeighbourList = Box<[(u32, f32)]>;

/// Distinct items one subject contributes to the counts, by default (see `discreet eval`).
pub const DEFAULT_CONTRIBUTED_ITEMS: usize = 150;

/// Settings of the item-item model.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemItemConfig {
    /// Which interaction kinds make an item held by a subject.
    pub held_kinds: KindSet,
    /// Exponent `a` of the source item's holder count in the similarity denominator.
    pub source_popularity_exponent: f32,
    /// Exponent `b` of the neighbour's holder count in the similarity denominator.
    pub target_popularity_exponent: f32,
    /// Neighbours kept per history item when scoring (0 keeps all).
    pub neighbours_per_item: usize,
    /// Half-life of a history item's weight, in days; `None` weighs all items equally.
    pub history_half_life_days: Option<f64>,
    /// Only the most recent this-many history items score (0 = all); bounds latency.
    pub max_history_items: usize,
    /// The bounded contribution: each subject's counts come from at most this many of its
    /// most recent distinct items (0 = all), so one subject adds at most this² pairs.
    pub max_contributed_items: usize,
}

impl Default for ItemItemConfig {
    fn default() -> Self {
        ItemItemConfig {
            held_kinds: KindSet::engagement(),
            source_popularity_exponent: 0.3,
            target_popularity_exponent: 0.5,
            neighbours_per_item: 10,
            history_half_life_days: Some(120.0),
            max_history_items: 200,
            max_contributed_items: DEFAULT_CONTRIBUTED_ITEMS,
        }
    }
}

/// Reusable buffers for scoring, so the hot path does not allocate per call.
#[derive(Default)]
pub struct ItemItemScratch {
    history_weights: Vec<(ItemId, f32)>,
}

/// The item-item model: exact co-occurrence counts plus the subjects' histories.
#[derive(Clone, Debug)]
pub struct ItemItemModel {
    config: ItemItemConfig,
    histories: SubjectHistories,
    /// For each item, `(other item, subjects holding both)`, ascending by other item, no zeros.
    cooccurrence_rows: Vec<Vec<(u32, u32)>>,
    /// For each item, how many subjects hold it.
    holder_counts: Vec<u32>,
    /// Derived from `holder_counts`: `max(1, n_j)^-b`, so scoring needs no `powf` per pair.
    target_factors: Vec<f32>,
    /// Derived, lazily: each item's kept neighbours `(item, similarity)`, best first. Filled
    /// on first use by a query; emptied by every change to an input of that list (the row's
    /// counts or a member's holder count), so it never outlives the counts it came from.
    neighbour_lists: Vec<OnceLock<NeighbourList>>,
}

impl ItemItemModel {
    /// An empty model.
    pub fn new(config: ItemItemConfig) -> ItemItemModel {
        let histories = SubjectHistories::new(config.held_kinds)
            .with_contribution_bound(config.max_contributed_items);
        ItemItemModel {
            config,
            histories,
            cooccurrence_rows: Vec::new(),
            holder_counts: Vec::new(),
            target_factors: Vec::new(),
            neighbour_lists: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ItemItemConfig {
        &self.config
    }

    /// Changes the scoring settings (not `held_kinds` or the contribution bound, which
    /// shape the counts).
    pub fn set_scoring(&mut self, config: ItemItemConfig) {
        let held_kinds = self.config.held_kinds;
        let max_contributed_items = self.config.max_contributed_items;
        self.config = ItemItemConfig {
            held_kinds,
            max_contributed_items,
            ..config
        };
        self.recompute_target_factors();
        self.forget_all_neighbour_lists();
    }

    /// The subjects' histories this model holds.
    pub fn histories(&self) -> &SubjectHistories {
        &self.histories
    }

    /// One past the largest item id known.
    pub fn item_bound(&self) -> usize {
        self.cooccurrence_rows.len()
    }

    /// How many subjects hold `item`.
    pub fn holder_count(&self, item: ItemId) -> u32 {
        self.holder_counts.get(item.index()).copied().unwrap_or(0)
    }

    /// How many subjects hold both items.
    pub fn cooccurrence(&self, first: ItemId, second: ItemId) -> u32 {
        self.cooccurrence_rows
            .get(first.index())
            .and_then(|row| {
                row.binary_search_by_key(&second.0, |(other, _)| *other)
                    .ok()
                    .map(|position| row[position].1)
            })
            .unwrap_or(0)
    }
}

/// Equal when the counts and histories are equal; item slots nobody holds do not count.
impl PartialEq for ItemItemModel {
    fn eq(&self, other: &ItemItemModel) -> bool {
        let length = self.item_bound().max(other.item_bound());
        let empty: Vec<(u32, u32)> = Vec::new();
        self.config == other.config
            && self.histories == other.histories
            && (0..length).all(|index| {
                self.holder_counts.get(index).copied().unwrap_or(0)
                    == other.holder_counts.get(index).copied().unwrap_or(0)
                    && self.cooccurrence_rows.get(index).unwrap_or(&empty)
                        == other.cooccurrence_rows.get(index).unwrap_or(&empty)
            })
    }
}
