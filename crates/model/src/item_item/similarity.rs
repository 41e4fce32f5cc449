//! Similarity from the counts, `c_ij * n_j^-b * n_i^-a`, computed at query time: each
//! item's kept neighbours (cached until a count they depend on changes), personal scores,
//! explanations, the "discover" list and "similar items". Reads the counts only; never
//! changes them.

use crate::ids::{ItemId, SubjectId};
use crate::interaction::UnixSeconds;
use crate::ranking::{ScoredItem, keep_strongest, top_n};
use crate::recommendation::{Contribution, Recommendation, strongest_contributions};
use crate::selection::{ItemSelection, take_within_limit};

use super::{ItemItemModel, ItemItemScratch};

impl ItemItemModel {
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
                keep_strongest(similarities, keep, (target, similarity));
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

    /// `similar` answering only items `selection` allows, within its per-group limit.
    pub fn similar_selected(
        &self,
        item: ItemId,
        n: usize,
        selection: &dyn ItemSelection,
    ) -> Vec<ScoredItem> {
        let Some(row) = self.cooccurrence_rows.get(item.index()).filter(|_| n > 0) else {
            return Vec::new();
        };
        let to_scored = |(target, score): (u32, f32)| ScoredItem {
            item: ItemId(target),
            score,
        };
        let Some(limit) = selection.per_group_limit() else {
            let source_factor = self.source_factor(item);
            let mut kept = Vec::new();
            for &(target, count) in row {
                let similarity = self.pair_similarity(count, target, source_factor);
                // Only an entry that would be kept is offered to the selection.
                let beaten = kept.len() == n
                    && kept
                        .last()
                        .is_some_and(|weakest: &(u32, f32)| similarity <= weakest.1);
                if !beaten && selection.allows(ItemId(target)) {
                    keep_strongest(&mut kept, n, (target, similarity));
                }
            }
            return kept.into_iter().map(to_scored).collect();
        };
        let mut ranked = Vec::new();
        self.neighbours_into(item, 0, &mut ranked);
        let allowed = ranked
            .into_iter()
            .filter(|(target, _)| selection.allows(ItemId(*target)))
            .map(to_scored);
        take_within_limit(allowed, n, limit, selection)
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
