//! Scoring with sparse EASE: a subject's scores from the weight rows of its history items,
//! single weights, explanations and the personal "discover" list. Reads `B` only; never
//! changes it, and refuses to score while a removal waits for its refresh.

use crate::error::{ModelError, Result};
use crate::ids::{ItemId, SubjectId};
use crate::interaction::UnixSeconds;
use crate::ranking::top_n;
use crate::recommendation::{Contribution, Recommendation, strongest_contributions};

use super::SparseEaseModel;

/// Reusable buffers for scoring.
#[derive(Default)]
pub struct SparseEaseScratch {
    history_weights: Vec<(ItemId, f32)>,
}

impl SparseEaseModel {
    /// Writes the subject's scores into `scores` (by item id; overwritten, 0 for items no
    /// history item reaches). Held items get scores too; callers exclude them. Needs a
    /// `scorable` model.
    pub fn score_into(
        &self,
        subject: SubjectId,
        now: UnixSeconds,
        scores: &mut [f32],
        scratch: &mut SparseEaseScratch,
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
        for &(item, weight) in &scratch.history_weights {
            for &(target, item_weight) in self.weights.row(item.0) {
                if let Some(score) = scores.get_mut(target as usize) {
                    *score += weight * item_weight;
                }
            }
        }
        Ok(())
    }

    /// Weight `B_source,target` as of the last refresh (0 outside `target`'s neighbourhood).
    pub fn weight(&self, source: ItemId, target: ItemId) -> f32 {
        self.weights.weight(source.0, target.0)
    }

    /// Every history item's share of `item`'s score in the last `score_into` call with this
    /// scratch, ascending by history item.
    pub fn contributions<'a>(
        &'a self,
        item: ItemId,
        scratch: &'a SparseEaseScratch,
    ) -> impl Iterator<Item = Contribution> + 'a {
        scratch
            .history_weights
            .iter()
            .map(move |&(source, weight)| Contribution {
                item: source,
                weight: weight * self.weight(source, item),
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
        let mut scratch = SparseEaseScratch::default();
        let mut scores = vec![0.0f32; self.item_bound()];
        self.score_into(subject, now, &mut scores, &mut scratch)?;
        let held = self.histories.held(subject);
        if held.is_empty() {
            return Ok(Vec::new());
        }
        // Items without any weight from this history are not offered (score exactly 0).
        let best = top_n(&scores, n, |index| {
            scores[index] == 0.0
                || held
                    .binary_search_by_key(&(index as u32), |held_item| held_item.item.0)
                    .is_ok()
        });
        Ok(best
            .into_iter()
            .map(|scored| Recommendation {
                item: scored.item,
                score: scored.score,
                because: strongest_contributions(self.contributions(scored.item, &scratch), 3),
            })
            .collect())
    }
}
