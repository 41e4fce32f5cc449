//! The co-occurrence counts and holder counts of the item-item model: building them in one
//! pass, learning, unlearning and forgetting, and in the same call emptying every derived
//! value (popularity factor, cached neighbour list) that a changed count feeds. Never
//! leaves a cached list computed from counts that have since changed.

use std::sync::OnceLock;

use crate::error::Result;
use crate::history::{HeldChange, HeldItem};
use crate::ids::SubjectId;
use crate::interaction::Interaction;

use super::rows::{add_sorted, increment_pair, subtract_members, subtract_sorted};
use super::{ItemItemConfig, ItemItemModel};

/// Subjects holding at least this many items are forgotten on two threads.
const PARALLEL_FORGET_ITEMS: usize = 256;

impl ItemItemModel {
    /// The model of `interactions`, built in one pass (same result as learning them one by one).
    pub fn build(config: ItemItemConfig, interactions: &[Interaction]) -> ItemItemModel {
        let mut model = ItemItemModel::new(config);
        for interaction in interactions {
            model.histories.learn(interaction);
        }
        let n_items = interactions
            .iter()
            .map(|interaction| interaction.item.index() + 1)
            .max()
            .unwrap_or(0);
        model.ensure_items(n_items);
        model.count_all_pairs();
        model.recompute_target_factors();
        model
    }

    pub(super) fn recompute_target_factors(&mut self) {
        let exponent = -self.config.target_popularity_exponent;
        self.target_factors = self
            .holder_counts
            .iter()
            .map(|&count| (count.max(1) as f32).powf(exponent))
            .collect();
    }

    /// Adds `delta` to an item's holder count and keeps its derived factor in step.
    fn change_holders(&mut self, item: u32, delta: i64) {
        let count = (self.holder_counts[item as usize] as i64 + delta).max(0) as u32;
        self.holder_counts[item as usize] = count;
        self.target_factors[item as usize] =
            (count.max(1) as f32).powf(-self.config.target_popularity_exponent);
    }

    /// Counts pairs block by block into a dense counter, then compresses each row: much
    /// faster than sorted-row inserts, and identical in result.
    fn count_all_pairs(&mut self) {
        let n_items = self.cooccurrence_rows.len();
        let held_lists: Vec<Vec<u32>> = self
            .histories
            .subjects()
            .map(|(_, held)| held.iter().map(|held_item| held_item.item.0).collect())
            .collect();
        for list in &held_lists {
            for &item in list {
                self.holder_counts[item as usize] += 1;
            }
        }
        let block_rows = (1usize << 24) / n_items.max(1);
        let block_rows = block_rows.clamp(1, n_items.max(1));
        let mut counter = vec![0u32; block_rows * n_items];
        let mut block_start = 0;
        while block_start < n_items {
            let block_end = (block_start + block_rows).min(n_items);
            counter.iter_mut().for_each(|count| *count = 0);
            for list in &held_lists {
                let first = list.partition_point(|&item| (item as usize) < block_start);
                let last = list.partition_point(|&item| (item as usize) < block_end);
                for &source in &list[first..last] {
                    let offset = (source as usize - block_start) * n_items;
                    for &target in list {
                        counter[offset + target as usize] += 1;
                    }
                }
            }
            for source in block_start..block_end {
                let offset = (source - block_start) * n_items;
                let row = &mut self.cooccurrence_rows[source];
                row.clear();
                for (target, &count) in counter[offset..offset + n_items].iter().enumerate() {
                    if count > 0 && target != source {
                        row.push((target as u32, count));
                    }
                }
                row.shrink_to_fit();
            }
            block_start = block_end;
        }
    }

    pub(super) fn forget_all_neighbour_lists(&mut self) {
        for list in &mut self.neighbour_lists {
            list.take();
        }
    }

    /// Empties the cached lists that depend on `item`'s row or holder count: its own and
    /// those of every item it co-occurs with (call before counts drop, after they grow).
    fn forget_neighbour_lists_around(&mut self, item: u32) {
        let ItemItemModel {
            cooccurrence_rows,
            neighbour_lists,
            ..
        } = self;
        if let Some(list) = neighbour_lists.get_mut(item as usize) {
            list.take();
        }
        for &(other, _) in &cooccurrence_rows[item as usize] {
            neighbour_lists[other as usize].take();
        }
    }

    /// Many items changed: emptying every list is cheaper than walking their rows.
    fn forget_neighbour_lists_around_all(&mut self, items: &[u32]) {
        if items.len() > 32 {
            self.forget_all_neighbour_lists();
        } else {
            for &item in items {
                self.forget_neighbour_lists_around(item);
            }
        }
    }

    fn ensure_items(&mut self, n_items: usize) {
        if n_items > self.cooccurrence_rows.len() {
            self.cooccurrence_rows.resize_with(n_items, Vec::new);
            self.holder_counts.resize(n_items, 0);
            self.target_factors.resize(n_items, 1.0);
            self.neighbour_lists.resize_with(n_items, OnceLock::new);
        }
    }

    /// Learns one interaction.
    pub fn learn(&mut self, interaction: &Interaction) {
        self.ensure_items(interaction.item.index() + 1);
        if self.histories.learn(interaction) == HeldChange::BecameHeld {
            let item = interaction.item.0;
            self.change_holders(item, 1);
            let others: Vec<u32> = self
                .histories
                .held(interaction.subject)
                .iter()
                .map(|held_item| held_item.item.0)
                .filter(|&other| other != item)
                .collect();
            for &other in &others {
                increment_pair(&mut self.cooccurrence_rows[item as usize], other);
                increment_pair(&mut self.cooccurrence_rows[other as usize], item);
            }
            self.forget_neighbour_lists_around(item);
        }
    }

    /// Learns many interactions; the same result as `learn` on each, but each affected
    /// co-occurrence row is merged once instead of receiving one insert per pair.
    pub fn learn_batch(&mut self, interactions: &[Interaction]) {
        let mut newly_held: std::collections::BTreeMap<SubjectId, Vec<u32>> =
            std::collections::BTreeMap::new();
        for interaction in interactions {
            self.ensure_items(interaction.item.index() + 1);
            if self.histories.learn(interaction) == HeldChange::BecameHeld {
                newly_held
                    .entry(interaction.subject)
                    .or_default()
                    .push(interaction.item.0);
            }
        }
        let mut merged: Vec<(u32, u32)> = Vec::new();
        let mut changed_items: Vec<u32> = Vec::new();
        for (subject, mut new_items) in newly_held {
            changed_items.extend_from_slice(&new_items);
            new_items.sort_unstable();
            let held_items = self.histories.held_item_ids(subject);
            for &item in &held_items {
                if new_items.binary_search(&item).is_ok() {
                    self.change_holders(item, 1);
                }
                // A new item pairs with everything held; an old one only with the new items.
                let partners: &[u32] = if new_items.binary_search(&item).is_ok() {
                    &held_items
                } else {
                    &new_items
                };
                add_sorted(
                    &mut self.cooccurrence_rows[item as usize],
                    partners,
                    item,
                    &mut merged,
                );
            }
        }
        changed_items.sort_unstable();
        changed_items.dedup();
        self.forget_neighbour_lists_around_all(&changed_items);
    }

    /// Unlearns one previously learned interaction (an error if it was never learned).
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        if self.histories.unlearn(interaction)? == HeldChange::NoLongerHeld {
            let item = interaction.item.0;
            self.forget_neighbour_lists_around(item);
            self.change_holders(item, -1);
            let others = self.histories.held_item_ids(interaction.subject);
            subtract_sorted(
                &mut self.cooccurrence_rows[item as usize],
                &others,
                u32::MAX,
            );
            for &other in &others {
                subtract_sorted(
                    &mut self.cooccurrence_rows[other as usize],
                    &[item],
                    u32::MAX,
                );
            }
        }
        Ok(())
    }

    /// Removes everything learned from `subject`; returns what the subject held.
    pub fn forget_subject(&mut self, subject: SubjectId) -> Vec<HeldItem> {
        let held = self.histories.take_subject(subject);
        let items: Vec<u32> = held.iter().map(|held_item| held_item.item.0).collect();
        self.forget_neighbour_lists_around_all(&items);
        for &item in &items {
            self.change_holders(item, -1);
        }
        // Membership by item id: one byte lookup per row entry instead of a merge.
        let mut is_member = vec![false; self.cooccurrence_rows.len()];
        for &item in &items {
            is_member[item as usize] = true;
        }
        let is_member = &is_member;
        if items.len() < PARALLEL_FORGET_ITEMS {
            for &item in &items {
                subtract_members(&mut self.cooccurrence_rows[item as usize], is_member);
            }
        } else {
            // Rows are independent: split them in two halves, one per thread.
            let middle = self.cooccurrence_rows.len() / 2;
            let (low_rows, high_rows) = self.cooccurrence_rows.split_at_mut(middle);
            let items = &items;
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    for &item in items.iter().filter(|&&item| (item as usize) < middle) {
                        subtract_members(&mut low_rows[item as usize], is_member);
                    }
                });
                for &item in items.iter().filter(|&&item| (item as usize) >= middle) {
                    subtract_members(&mut high_rows[item as usize - middle], is_member);
                }
            });
        }
        held
    }
}
