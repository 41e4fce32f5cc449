//! Item-to-item co-occurrence recommender. The state is integer counts — for each pair of
//! items, how many subjects hold both; for each item, how many hold it — so learning and
//! unlearning are exact and order-independent. Similarity is computed from the counts at
//! query time, `sim(i, j) = c_ij / (n_i^a * n_j^b)` (a = b = 1/2 is cosine; a = 1 is the
//! conditional probability of RP3beta with a popularity penalty b), keeping each item's
//! `k` strongest neighbours. Derived state — each item's popularity factor and its lazily
//! computed neighbour list — is updated or emptied in the same call that changes a count it
//! depends on, so nothing about a forgotten subject survives in it.

use std::sync::OnceLock;

use crate::error::Result;
use crate::history::{HeldChange, HeldItem, SubjectHistories};
use crate::ids::{ItemId, SubjectId};
use crate::interaction::{Interaction, KindSet, UnixSeconds};
use crate::ranking::{ScoredItem, top_n};
use crate::recommendation::{Contribution, Recommendation, strongest_contributions};

/// An item's kept neighbours `(item, similarity)`, best first.
type NeighbourList = Box<[(u32, f32)]>;

/// Subjects holding at least this many items are forgotten on two threads.
const PARALLEL_FORGET_ITEMS: usize = 256;

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
        let histories = SubjectHistories::new(config.held_kinds);
        ItemItemModel {
            config,
            histories,
            cooccurrence_rows: Vec::new(),
            holder_counts: Vec::new(),
            target_factors: Vec::new(),
            neighbour_lists: Vec::new(),
        }
    }

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

    fn recompute_target_factors(&mut self) {
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

    /// The configuration.
    pub fn config(&self) -> &ItemItemConfig {
        &self.config
    }

    /// Changes the scoring settings (not `held_kinds`, which shapes the counts).
    pub fn set_scoring(&mut self, config: ItemItemConfig) {
        let held_kinds = self.config.held_kinds;
        self.config = ItemItemConfig {
            held_kinds,
            ..config
        };
        self.recompute_target_factors();
        self.forget_all_neighbour_lists();
    }

    fn forget_all_neighbour_lists(&mut self) {
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
            let held_items: Vec<u32> = self
                .histories
                .held(subject)
                .iter()
                .map(|held_item| held_item.item.0)
                .collect();
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
            let others: Vec<u32> = self
                .histories
                .held(interaction.subject)
                .iter()
                .map(|held_item| held_item.item.0)
                .collect();
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

    /// Strongest neighbours of `source` by similarity, written into `similarities` (cleared
    /// first), keeping the `keep` best (all when 0), best first (ties: lower id first).
    /// One pass; most entries cost one comparison.
    fn neighbours_into(&self, source: ItemId, keep: usize, similarities: &mut Vec<(u32, f32)>) {
        similarities.clear();
        let Some(row) = self.cooccurrence_rows.get(source.index()) else {
            return;
        };
        let source_factor = self.source_factor(source);
        if keep == 0 {
            similarities.extend(row.iter().map(|&(target, count)| {
                (target, self.pair_similarity(count, target, source_factor))
            }));
            similarities
                .sort_by(|left, right| right.1.total_cmp(&left.1).then(left.0.cmp(&right.0)));
        } else {
            for &(target, count) in row {
                let similarity = self.pair_similarity(count, target, source_factor);
                if similarities.len() == keep
                    && similarities
                        .last()
                        .is_some_and(|weakest| similarity <= weakest.1)
                {
                    continue;
                }
                let position = similarities.partition_point(|kept| kept.1 >= similarity);
                similarities.insert(position, (target, similarity));
                if similarities.len() > keep {
                    similarities.pop();
                }
            }
        }
    }

    fn source_factor(&self, source: ItemId) -> f32 {
        (self.holder_counts[source.index()].max(1) as f32)
            .powf(-self.config.source_popularity_exponent)
    }

    /// `c_ij * n_j^-b * n_i^-a`, computed the same way everywhere so thresholds compare exactly.
    fn pair_similarity(&self, count: u32, target: u32, source_factor: f32) -> f32 {
        count as f32 * self.target_factors[target as usize] * source_factor
    }

    /// The kept neighbours of `source`, best first (computed once per change of its inputs).
    pub fn neighbours(&self, source: ItemId) -> &[(u32, f32)] {
        match self.neighbour_lists.get(source.index()) {
            Some(list) => list.get_or_init(|| {
                let mut similarities = Vec::new();
                self.neighbours_into(source, self.config.neighbours_per_item, &mut similarities);
                similarities.into_boxed_slice()
            }),
            None => &[],
        }
    }

    /// Writes the subject's personal scores into `scores` (length = `item_bound()`, zeroed
    /// by the caller). Held items are scored too; callers exclude them.
    pub fn score_into(
        &self,
        subject: SubjectId,
        now: UnixSeconds,
        scores: &mut [f32],
        scratch: &mut ItemItemScratch,
    ) {
        self.histories.recency_weights(
            subject,
            now,
            self.config.history_half_life_days,
            self.config.max_history_items,
            &mut scratch.history_weights,
        );
        for &(source, weight) in &scratch.history_weights {
            for &(target, similarity) in self.neighbours(source) {
                if let Some(score) = scores.get_mut(target as usize) {
                    *score += weight * similarity;
                }
            }
        }
    }

    /// The history items that contributed most to `item`'s score in the last
    /// `score_into` call with this scratch (strongest first, at most `limit`).
    pub fn explain_from_scratch(
        &self,
        item: ItemId,
        scratch: &ItemItemScratch,
        limit: usize,
    ) -> Vec<Contribution> {
        strongest_contributions(self.contributions(item, scratch), limit)
    }

    /// Every history item's share of `item`'s score in the last `score_into` call with this
    /// scratch, ascending by history item.
    pub fn contributions<'a>(
        &'a self,
        item: ItemId,
        scratch: &'a ItemItemScratch,
    ) -> impl Iterator<Item = Contribution> + 'a {
        scratch
            .history_weights
            .iter()
            .map(move |&(source, weight)| {
                let similarity = self
                    .neighbours(source)
                    .iter()
                    .find(|(target, _)| *target == item.0)
                    .map(|(_, similarity)| *similarity)
                    .unwrap_or(0.0);
                Contribution {
                    item: source,
                    weight: weight * similarity,
                }
            })
    }

    /// Personal recommendations ("discover": excludes what the subject holds), each with
    /// the subject's own items that contributed most.
    pub fn recommend(&self, subject: SubjectId, n: usize, now: UnixSeconds) -> Vec<Recommendation> {
        let mut scratch = ItemItemScratch::default();
        let mut scores = vec![0.0f32; self.item_bound()];
        self.score_into(subject, now, &mut scores, &mut scratch);
        let held = self.histories.held(subject);
        let best = top_n(&scores, n, |index| {
            scores[index] <= 0.0
                || held
                    .binary_search_by_key(&(index as u32), |held_item| held_item.item.0)
                    .is_ok()
        });
        best.into_iter()
            .map(|scored| Recommendation {
                item: scored.item,
                score: scored.score,
                because: self.explain_from_scratch(scored.item, &scratch, 3),
            })
            .collect()
    }

    /// Items most similar to `item` (its strongest neighbours), best first.
    pub fn similar(&self, item: ItemId, n: usize) -> Vec<ScoredItem> {
        let mut similarities = Vec::new();
        if n == 0 {
            return Vec::new();
        }
        // Keeping only the best n in one pass, rather than sorting the whole row.
        self.neighbours_into(item, n, &mut similarities);
        similarities
            .into_iter()
            .map(|(target, score)| ScoredItem {
                item: ItemId(target),
                score,
            })
            .collect()
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

/// Adds one to the count of `other` in a sorted row.
fn increment_pair(row: &mut Vec<(u32, u32)>, other: u32) {
    match row.binary_search_by_key(&other, |(item, _)| *item) {
        Ok(position) => row[position].1 += 1,
        Err(position) => row.insert(position, (other, 1)),
    }
}

/// Adds one to the count of every item of `sorted_items` (ascending) except `skip`, in one
/// merge pass; `merged` is a reusable buffer.
fn add_sorted(
    row: &mut Vec<(u32, u32)>,
    sorted_items: &[u32],
    skip: u32,
    merged: &mut Vec<(u32, u32)>,
) {
    merged.clear();
    merged.reserve(row.len() + sorted_items.len());
    let mut existing = row.iter().peekable();
    for &item in sorted_items.iter().filter(|&&item| item != skip) {
        while let Some(&&(other, count)) = existing.peek() {
            if other >= item {
                break;
            }
            merged.push((other, count));
            existing.next();
        }
        match existing.peek() {
            Some(&&(other, count)) if other == item => {
                merged.push((other, count + 1));
                existing.next();
            }
            _ => merged.push((item, 1)),
        }
    }
    merged.extend(existing.copied());
    std::mem::swap(row, merged);
}

/// Subtracts one from the count of every entry whose item is a member, dropping zeros
/// (a row never holds its own item, so no skip is needed).
fn subtract_members(row: &mut Vec<(u32, u32)>, is_member: &[bool]) {
    // Branch-free compaction: a forgotten wholesaler touches millions of entries.
    let mut kept = 0;
    for index in 0..row.len() {
        let (item, count) = row[index];
        let count = count - u32::from(is_member[item as usize]);
        row[kept] = (item, count);
        kept += usize::from(count > 0);
    }
    row.truncate(kept);
}

/// Subtracts one from the count of every item of `sorted_items` (ascending) except `skip`,
/// dropping counts that reach zero; one merge pass over the row.
fn subtract_sorted(row: &mut Vec<(u32, u32)>, sorted_items: &[u32], skip: u32) {
    let mut next = 0;
    row.retain_mut(|(item, count)| {
        while next < sorted_items.len() && sorted_items[next] < *item {
            next += 1;
        }
        if next < sorted_items.len() && sorted_items[next] == *item && *item != skip {
            *count -= 1;
        }
        *count > 0
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sorted_increments_matches_and_inserts_new_items_in_order() {
        let mut row = vec![(1, 2), (5, 4)];
        let mut buffer = Vec::new();
        add_sorted(&mut row, &[0, 1, 3, 5, 7], 3, &mut buffer);
        assert_eq!(row, vec![(0, 1), (1, 3), (5, 5), (7, 1)]);
    }

    #[test]
    fn subtract_sorted_decrements_matches_and_drops_zeros() {
        let mut row = vec![(1, 2), (3, 1), (5, 4), (9, 1)];
        subtract_sorted(&mut row, &[0, 1, 3, 5, 7], 5);
        assert_eq!(row, vec![(1, 1), (5, 4), (9, 1)]);
    }
}
