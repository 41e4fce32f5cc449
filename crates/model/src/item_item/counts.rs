//! The co-occurrence counts and holder counts of the item-item model: building them in one
//! pass, learning, unlearning and forgetting, and in the same call emptying every derived
//! value (popularity factor, cached neighbour list) that a changed count feeds. Never
//! leaves a cached list computed from counts that have since changed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::error::Result;
use crate::history::{HeldChange, HeldItem};
use crate::ids::SubjectId;
use crate::interaction::Interaction;

use super::rows::{add_sorted, difference, subtract_members, subtract_sorted};
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
            .map(|(subject, _)| self.histories.contributed_item_ids(subject))
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
        self.learn_batch(std::slice::from_ref(interaction));
    }

    /// Learns many interactions: each subject's contributed items are compared before and
    /// after, and only the difference changes the counts (each affected row merged once).
    pub fn learn_batch(&mut self, interactions: &[Interaction]) {
        let mut before: BTreeMap<SubjectId, Vec<u32>> = BTreeMap::new();
        for interaction in interactions {
            self.ensure_items(interaction.item.index() + 1);
            if !self.histories.held_kinds().contains(interaction.kind) {
                continue;
            }
            before
                .entry(interaction.subject)
                .or_insert_with(|| self.histories.contributed_item_ids(interaction.subject));
            self.histories.learn(interaction);
        }
        for (subject, contributed_before) in before {
            let contributed_after = self.histories.contributed_item_ids(subject);
            self.change_contribution(&contributed_before, &contributed_after);
        }
    }

    /// Unlearns one previously learned interaction (an error if it was never learned).
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        let contributed_before = self.histories.contributed_item_ids(interaction.subject);
        let bound = self.histories.contribution_bound();
        if self.histories.unlearn(interaction)? == HeldChange::Unchanged
            && (bound == 0 || self.histories.held(interaction.subject).len() <= bound)
        {
            // Every held item contributes and held-ness did not change: nor did the counts.
            return Ok(());
        }
        let contributed_after = self.histories.contributed_item_ids(interaction.subject);
        self.change_contribution(&contributed_before, &contributed_after);
        Ok(())
    }

    /// Replaces one subject's contribution `before` by `after` (both ascending): pairs and
    /// holder counts of the items that left are removed, those of the items that joined
    /// added, and every cached list that read a changed count is emptied.
    fn change_contribution(&mut self, before: &[u32], after: &[u32]) {
        if before == after {
            return;
        }
        let left = difference(before, after);
        let joined = difference(after, before);
        let stayed = difference(before, &left);
        // Before counts drop, the rows still name every neighbour that read them.
        self.forget_neighbour_lists_around_all(&left);
        let mut merged = Vec::new();
        for &item in &left {
            self.change_holders(item, -1);
            subtract_sorted(&mut self.cooccurrence_rows[item as usize], before, item);
        }
        for &item in &joined {
            self.change_holders(item, 1);
            add_sorted(
                &mut self.cooccurrence_rows[item as usize],
                after,
                item,
                &mut merged,
            );
        }
        for &item in &stayed {
            let row = &mut self.cooccurrence_rows[item as usize];
            if !left.is_empty() {
                subtract_sorted(row, &left, item);
            }
            if !joined.is_empty() {
                add_sorted(row, &joined, item, &mut merged);
            }
        }
        // After counts grow, the rows name every neighbour that will read them.
        self.forget_neighbour_lists_around_all(&joined);
    }

    /// Removes everything learned from `subject`; returns what the subject held.
    pub fn forget_subject(&mut self, subject: SubjectId) -> Vec<HeldItem> {
        let items = self.histories.contributed_item_ids(subject);
        let held = self.histories.take_subject(subject);
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
