//! Scoring with EASE: a subject's scores from the columns of `P` their history selects,
//! or from each history item's pruned weight row (derived lazily, emptied when `P`
//! changes); single weights, explanations and the personal "discover" list. Reads `P`
//! only; never changes it.

use crate::error::{ModelError, Result};
use crate::ids::{ItemId, SubjectId};
use crate::interaction::UnixSeconds;
use crate::ranking::{keep_strongest, top_n};
use crate::recommendation::{Contribution, Recommendation, strongest_contributions};

use super::{EaseModel, EaseScratch, WeightRow};

/// Weights smaller than this fraction of a row's largest are rounding noise (see `weight_row`).
const WEIGHT_NOISE_RELATIVE: f64 = 1e-9;

impl EaseModel {
    /// Derives every pruned weight row now (they are otherwise derived by the first scoring
    /// that needs them, which then pays for it). Safe beside concurrent scoring.
    /// `rows` is a range of item ids (callers warm in slices so as not to hold a lock
    /// long); returns how many rows there are.
    pub fn warm_weight_rows(&self, rows: std::ops::Range<usize>) -> usize {
        let count = self.weight_rows.len();
        if self.config.kept_weights_per_item > 0 {
            for index in rows.start.min(count)..rows.end.min(count) {
                self.weight_row(ItemId(index as u32));
            }
        }
        count
    }

    /// The kept weights of `source` (computed on first use after `P` changed).
    fn weight_row(&self, source: ItemId) -> Option<&WeightRow> {
        let keep = self.config.kept_weights_per_item;
        let cell = self.weight_rows.get(source.index())?;
        Some(cell.get_or_init(|| {
            let column = self.gram_inverse.col_as_slice(source.index());
            let keep = keep.min(column.len());
            // A rank-1 downdate leaves ~1e-17 where a rebuild has an exact 0: weights within
            // rounding noise of zero are zeros, or noise would win kept slots after a forget
            // that a rebuilt model gives to real neighbours.
            let largest = column
                .iter()
                .zip(&self.inverse_diagonal)
                .enumerate()
                .filter(|(target, _)| *target != source.index())
                .map(|(_, (value, diagonal))| (value / diagonal).abs())
                .fold(0.0f64, f64::max);
            let noise = largest * WEIGHT_NOISE_RELATIVE;
            let mut kept: Vec<(u32, f32)> = Vec::with_capacity(keep + 1);
            for (target, (value, diagonal)) in column.iter().zip(&self.inverse_diagonal).enumerate()
            {
                if target == source.index() || (value / diagonal).abs() <= noise {
                    continue;
                }
                let weight = (-value / diagonal) as f32;
                keep_strongest(&mut kept, keep, (target as u32, weight));
            }
            // By item id, so explanations find a weight by binary search.
            kept.sort_unstable_by_key(|(target, _)| *target);
            WeightRow {
                weights: kept.into_boxed_slice(),
            }
        }))
    }

    /// Writes the subject's scores into `scores` (length ≥ `item_bound()`; overwritten).
    /// Held items get scores too; callers exclude them. Needs a `scorable` model.
    pub fn score_into(
        &self,
        subject: SubjectId,
        now: UnixSeconds,
        scores: &mut [f32],
        scratch: &mut EaseScratch,
    ) -> Result<()> {
        if !self.scorable() {
            return Err(ModelError::NotRefreshed);
        }
        let dimension = self.gram_inverse.nrows();
        self.histories.recency_weights(
            subject,
            now,
            self.config.history_half_life_days,
            self.config.max_history_items,
            &mut scratch.history_weights,
        );
        if self.config.kept_weights_per_item > 0 {
            for score in scores.iter_mut().take(dimension) {
                *score = 0.0;
            }
            for &(item, weight) in &scratch.history_weights {
                if let Some(row) = self.weight_row(item) {
                    for &(target, item_weight) in row.weights.iter() {
                        if let Some(score) = scores.get_mut(target as usize) {
                            *score += weight * item_weight;
                        }
                    }
                }
            }
            return Ok(());
        }
        scratch.accumulated.clear();
        scratch.accumulated.resize(dimension, 0.0);
        for &(item, weight) in &scratch.history_weights {
            // Items learned since the last refresh are not in `P` yet.
            if item.index() >= dimension {
                continue;
            }
            let column = self.gram_inverse.col_as_slice(item.index());
            let weight = weight as f64;
            for (sum, value) in scratch.accumulated.iter_mut().zip(column) {
                *sum += weight * value;
            }
        }
        for (index, score) in scores.iter_mut().enumerate().take(dimension) {
            *score = (-scratch.accumulated[index] / self.inverse_diagonal[index]) as f32;
        }
        Ok(())
    }

    /// Weight `B_source,target` of the regression.
    pub fn weight(&self, source: ItemId, target: ItemId) -> f64 {
        let dimension = self.gram_inverse.nrows();
        if source.index() >= dimension || target.index() >= dimension || source == target {
            return 0.0;
        }
        // Column `target` (P is symmetric up to rounding): explaining one recommended item
        // then reads one column, sequentially, instead of one cache line per history item.
        -self.gram_inverse[(source.index(), target.index())] / self.inverse_diagonal[target.index()]
    }

    /// The weight of `source → target` as scoring uses it (0 when pruned away).
    fn scoring_weight(&self, source: ItemId, target: ItemId) -> f32 {
        if self.config.kept_weights_per_item == 0 {
            return self.weight(source, target) as f32;
        }
        self.weight_row(source)
            .and_then(|row| {
                row.weights
                    .binary_search_by_key(&target.0, |(kept, _)| *kept)
                    .ok()
                    .map(|position| row.weights[position].1)
            })
            .unwrap_or(0.0)
    }

    /// The history items that contributed most to `item` in the last `score_into` call
    /// with this scratch (strongest first, at most `limit`).
    pub fn explain_from_scratch(
        &self,
        item: ItemId,
        scratch: &EaseScratch,
        limit: usize,
    ) -> Vec<Contribution> {
        strongest_contributions(self.contributions(item, scratch), limit)
    }

    /// Every history item's share of `item`'s score in the last `score_into` call with this
    /// scratch, ascending by history item.
    pub fn contributions<'a>(
        &'a self,
        item: ItemId,
        scratch: &'a EaseScratch,
    ) -> impl Iterator<Item = Contribution> + 'a {
        scratch
            .history_weights
            .iter()
            .map(move |&(source, weight)| Contribution {
                item: source,
                weight: weight * self.scoring_weight(source, item),
            })
    }

    /// Personal recommendations ("discover": excludes what the subject holds), each with
    /// the subject's own items that contributed most. Needs a refreshed model.
    pub fn recommend(
        &self,
        subject: SubjectId,
        n: usize,
        now: UnixSeconds,
    ) -> Result<Vec<Recommendation>> {
        let mut scratch = EaseScratch::default();
        let mut scores = vec![0.0f32; self.item_bound];
        self.score_into(subject, now, &mut scores, &mut scratch)?;
        let held = self.histories.held(subject);
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let best = top_n(&scores, n, |index| {
            held.binary_search_by_key(&(index as u32), |held_item| held_item.item.0)
                .is_ok()
        });
        Ok(best
            .into_iter()
            .map(|scored| Recommendation {
                item: scored.item,
                score: scored.score,
                because: self.explain_from_scratch(scored.item, &scratch, 3),
            })
            .collect())
    }
}
