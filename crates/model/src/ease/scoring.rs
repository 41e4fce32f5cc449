//! Scoring with EASE: a subject's scores from the rows of `B` their history selects — in
//! `f32`, derived lazily from `P` (up to `DENSE_WEIGHTS_MAX_DIMENSION` slots; above it, from
//! the columns of `P` itself) — or from each history item's pruned weight row (also derived
//! lazily); derived rows are emptied when `P` changes. Single weights, explanations and the
//! personal "discover" list. Reads `P` only; never changes it.

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
    /// `rows` is a range of slots (callers warm in slices so as not to hold a lock
    /// long); returns how many rows there are.
    pub fn warm_weight_rows(&self, rows: std::ops::Range<usize>) -> usize {
        let count = self.solution.weight_rows.len();
        for slot in rows.start.min(count)..rows.end.min(count) {
            if self.config.kept_weights_per_item > 0 {
                self.weight_row_of_slot(slot);
            } else {
                self.dense_row_of_slot(slot);
            }
        }
        count
    }

    /// Every weight `B_i·` of slot `source_slot`, by target slot, in `f32` (computed on
    /// first use after `P` changed); `None` above `DENSE_WEIGHTS_MAX_DIMENSION`.
    fn dense_row_of_slot(&self, source_slot: usize) -> Option<&[f32]> {
        let cell = self.solution.dense_weights.get(source_slot)?;
        Some(cell.get_or_init(|| {
            // `P` is symmetric: row `source` is column `source`, read sequentially.
            let column = self.solution.gram_inverse.col_as_slice(source_slot);
            let mut row: Box<[f32]> = column
                .iter()
                .zip(&self.solution.inverse_diagonal)
                .map(|(value, diagonal)| (-value / diagonal) as f32)
                .collect();
            row[source_slot] = 0.0;
            row
        }))
    }

    /// The kept weights of `source` (computed on first use after `P` changed).
    fn weight_row(&self, source: ItemId) -> Option<&WeightRow> {
        self.weight_row_of_slot(self.solution.slot(source)?)
    }

    fn weight_row_of_slot(&self, source_slot: usize) -> Option<&WeightRow> {
        let keep = self.config.kept_weights_per_item;
        let cell = self.solution.weight_rows.get(source_slot)?;
        Some(cell.get_or_init(|| {
            let column = self.solution.gram_inverse.col_as_slice(source_slot);
            let keep = keep.min(column.len());
            // A rank-1 downdate leaves ~1e-17 where a rebuild has an exact 0: weights within
            // rounding noise of zero are zeros, or noise would win kept slots after a forget
            // that a rebuilt model gives to real neighbours.
            let largest = column
                .iter()
                .zip(&self.solution.inverse_diagonal)
                .enumerate()
                .filter(|(target, _)| *target != source_slot)
                .map(|(_, (value, diagonal))| (value / diagonal).abs())
                .fold(0.0f64, f64::max);
            let noise = largest * WEIGHT_NOISE_RELATIVE;
            let mut kept: Vec<(u32, f32)> = Vec::with_capacity(keep + 1);
            for (target_slot, (value, diagonal)) in column
                .iter()
                .zip(&self.solution.inverse_diagonal)
                .enumerate()
            {
                if target_slot == source_slot || (value / diagonal).abs() <= noise {
                    continue;
                }
                let weight = (-value / diagonal) as f32;
                keep_strongest(
                    &mut kept,
                    keep,
                    (self.solution.item_of_slot[target_slot], weight),
                );
            }
            // By item id, so explanations find a weight by binary search.
            kept.sort_unstable_by_key(|(target, _)| *target);
            WeightRow {
                weights: kept.into_boxed_slice(),
            }
        }))
    }

    /// Writes the subject's scores into `scores` (by item id; overwritten, 0 for items
    /// without a slot).
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
        scores.iter_mut().for_each(|score| *score = 0.0);
        self.histories.recency_weights(
            subject,
            now,
            self.config.history_half_life_days,
            self.config.max_history_items,
            &mut scratch.history_weights,
        );
        if self.config.kept_weights_per_item > 0 {
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
        if self.solution.dense_weights.is_empty() {
            self.score_from_inverse(scores, scratch);
        } else {
            self.score_from_dense_rows(scores, scratch);
        }
        Ok(())
    }

    /// The scores of `scratch.history_weights` from the `f32` rows of `B`.
    fn score_from_dense_rows(&self, scores: &mut [f32], scratch: &mut EaseScratch) {
        let dimension = self.solution.gram_inverse.nrows();
        scratch.accumulated_f32.clear();
        scratch.accumulated_f32.resize(dimension, 0.0);
        // Items learned since the last refresh are not in `P` yet.
        let rows: Vec<(f32, &[f32])> = scratch
            .history_weights
            .iter()
            .filter_map(|&(item, weight)| {
                let row = self.dense_row_of_slot(self.solution.slot(item)?)?;
                Some((weight, row))
            })
            .collect();
        add_weighted_rows(&mut scratch.accumulated_f32, &rows);
        for (&item, &sum) in self
            .solution
            .item_of_slot
            .iter()
            .zip(&scratch.accumulated_f32)
        {
            if let Some(score) = scores.get_mut(item as usize) {
                *score = sum;
            }
        }
    }

    /// The scores of `scratch.history_weights` from the columns of `P` (in `f64`).
    fn score_from_inverse(&self, scores: &mut [f32], scratch: &mut EaseScratch) {
        let dimension = self.solution.gram_inverse.nrows();
        scratch.accumulated.clear();
        scratch.accumulated.resize(dimension, 0.0);
        for &(item, weight) in &scratch.history_weights {
            // Items learned since the last refresh are not in `P` yet.
            let Some(slot) = self.solution.slot(item) else {
                continue;
            };
            let column = self.solution.gram_inverse.col_as_slice(slot);
            let weight = weight as f64;
            for (sum, value) in scratch.accumulated.iter_mut().zip(column) {
                *sum += weight * value;
            }
        }
        for (slot, &item) in self.solution.item_of_slot.iter().enumerate() {
            if let Some(score) = scores.get_mut(item as usize) {
                *score = (-scratch.accumulated[slot] / self.solution.inverse_diagonal[slot]) as f32;
            }
        }
    }

    /// Weight `B_source,target` of the regression.
    pub fn weight(&self, source: ItemId, target: ItemId) -> f64 {
        let (Some(source_slot), Some(target_slot)) =
            (self.solution.slot(source), self.solution.slot(target))
        else {
            return 0.0;
        };
        if source == target {
            return 0.0;
        }
        // Column `target` (P is symmetric up to rounding): explaining one recommended item
        // then reads one column, sequentially, instead of one cache line per history item.
        -self.solution.gram_inverse[(source_slot, target_slot)]
            / self.solution.inverse_diagonal[target_slot]
    }

    /// The weight of `source → target` as scoring uses it (0 when pruned away).
    fn scoring_weight(&self, source: ItemId, target: ItemId) -> f32 {
        if self.config.kept_weights_per_item == 0 {
            let dense = self.solution.slot(source).and_then(|source_slot| {
                let target_slot = self.solution.slot(target)?;
                Some(self.dense_row_of_slot(source_slot)?[target_slot])
            });
            return dense.unwrap_or_else(|| self.weight(source, target) as f32);
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

/// `accumulated += Σ weight · row` over `rows` (each as long as `accumulated`), four rows per
/// pass so `accumulated` is read and written a quarter as often; vectorised for the widest
/// instruction set the processor has (detected once, at run time).
fn add_weighted_rows(accumulated: &mut [f32], rows: &[(f32, &[f32])]) {
    pulp::Arch::new().dispatch(|| {
        let mut groups = rows.chunks_exact(4);
        for group in &mut groups {
            let [(w0, r0), (w1, r1), (w2, r2), (w3, r3)] = [group[0], group[1], group[2], group[3]];
            let length = accumulated
                .len()
                .min(r0.len())
                .min(r1.len())
                .min(r2.len())
                .min(r3.len());
            let (accumulated, r0, r1, r2, r3) = (
                &mut accumulated[..length],
                &r0[..length],
                &r1[..length],
                &r2[..length],
                &r3[..length],
            );
            for index in 0..length {
                accumulated[index] +=
                    w0 * r0[index] + w1 * r1[index] + w2 * r2[index] + w3 * r3[index];
            }
        }
        for &(weight, row) in groups.remainder() {
            for (sum, value) in accumulated.iter_mut().zip(row) {
                *sum += weight * value;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ease::EaseConfig;
    use crate::interaction::{Context, Interaction, InteractionKind};

    fn purchase(subject: u32, item: u32, at: UnixSeconds) -> Interaction {
        Interaction {
            subject: SubjectId(subject),
            item: ItemId(item),
            at,
            kind: InteractionKind::Purchase,
            quantity: 1,
            context: Context::default(),
        }
    }

    /// Guards the `f32` rows of `B`: every unheld score equals the one read from `P` in `f64`,
    /// within `f32` rounding of the largest score.
    #[test]
    fn dense_rows_score_like_the_inverse_they_come_from() {
        // 40 subjects over 60 items, with overlapping tastes (deterministic).
        let interactions: Vec<Interaction> = (0..40u32)
            .flat_map(|subject| {
                (0..12u32).map(move |step| {
                    purchase(
                        subject,
                        (subject * 7 + step * step * 3) % 60,
                        1_000 + i64::from(step),
                    )
                })
            })
            .collect();
        let model = EaseModel::build(EaseConfig::default(), &interactions).expect("builds");
        assert!(!model.solution.dense_weights.is_empty());
        let now = 2_000;
        for subject in 0..40 {
            let mut from_rows = vec![0.0f32; model.item_bound];
            let mut from_inverse = vec![0.0f32; model.item_bound];
            let mut scratch = EaseScratch::default();
            model
                .score_into(SubjectId(subject), now, &mut from_rows, &mut scratch)
                .expect("scorable");
            model.score_from_inverse(&mut from_inverse, &mut scratch);
            let largest = from_inverse.iter().fold(0.0f32, |a, b| a.max(b.abs()));
            let held = model.histories.held(SubjectId(subject));
            for (item, (row_score, inverse_score)) in
                from_rows.iter().zip(&from_inverse).enumerate()
            {
                if held.iter().any(|held_item| held_item.item.index() == item) {
                    continue;
                }
                assert!(
                    (row_score - inverse_score).abs() <= 1e-5 * largest.max(1e-6),
                    "subject {subject} item {item}: {row_score} vs {inverse_score}"
                );
            }
        }
    }
}
