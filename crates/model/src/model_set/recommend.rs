//! The blended personal list: EASE, item-item and contextual trending scores, each divided
//! by its largest unheld score, summed with the blend weights, with explanations merged
//! from the personal models; the trending cache; and the non-blended answers (similar,
//! popular, buy again). Reads the models only; never changes what they learned.

use std::sync::{Arc, PoisonError};

use crate::ease::EaseScratch;
use crate::history::HeldItem;
use crate::ids::{ItemId, SubjectId};
use crate::interaction::{Context, UnixSeconds};
use crate::item_item::ItemItemScratch;
use crate::ranking::{ScoredItem, normalise_by_max};
use crate::recommendation::{Contribution, Recommendation, strongest_contributions, sum_ascending};
use crate::selection::{AnyItem, ItemSelection, select_top_n};
use crate::sparse_ease::SparseEaseScratch;

use super::ModelSet;

/// Buffers for `recommend_with`, reused across calls by one thread.
#[derive(Default)]
pub struct RecommendScratch {
    blended: Vec<f32>,
    component: Vec<f32>,
    ease: EaseScratch,
    item_item: ItemItemScratch,
    sparse_ease: SparseEaseScratch,
}

/// Contexts whose trending scores are kept at most (weather × country × hour).
const TRENDING_CACHE_LIMIT: usize = 4_096;

/// Below this a component's largest score is rounding noise (e.g. what a rank-1 downdate
/// leaves of a forgotten subject's co-occurrences), and is not scaled up to 1.
const NOISE_FLOOR: f32 = 1e-6;

impl ModelSet {
    /// Personal "discover" list for a subject: excludes what they hold; each entry says
    /// which of their own items contributed most. Subjects with no history get the
    /// contextual trending list (without explanations).
    pub fn recommend(
        &self,
        subject: SubjectId,
        n: usize,
        now: UnixSeconds,
        context: &Context,
    ) -> Vec<Recommendation> {
        let mut scratch = RecommendScratch::default();
        self.recommend_with(&mut scratch, subject, n, now, context)
    }

    /// `recommend` with caller-owned buffers (no per-call allocation of score vectors).
    pub fn recommend_with(
        &self,
        scratch: &mut RecommendScratch,
        subject: SubjectId,
        n: usize,
        now: UnixSeconds,
        context: &Context,
    ) -> Vec<Recommendation> {
        self.recommend_selected(scratch, subject, n, now, context, &AnyItem)
    }

    /// `recommend_with` answering only items `selection` allows (applied before the top-n
    /// cut, so n items come back when n qualify).
    pub fn recommend_selected(
        &self,
        scratch: &mut RecommendScratch,
        subject: SubjectId,
        n: usize,
        now: UnixSeconds,
        context: &Context,
        selection: &dyn ItemSelection,
    ) -> Vec<Recommendation> {
        let held = self.item_item.histories().held(subject);
        if held.is_empty() {
            return self
                .popularity
                .popular_selected(context, n, now, selection)
                .into_iter()
                .map(|scored| Recommendation {
                    item: scored.item,
                    score: scored.score,
                    because: Vec::new(),
                })
                .collect();
        }
        let blend = &self.config.blend;
        let item_bound = self
            .item_item
            .item_bound()
            .max(self.popularity.item_bound());
        scratch.blended.clear();
        scratch.blended.resize(item_bound, 0.0);
        let ease = self
            .ease
            .as_ref()
            .filter(|ease| ease.scorable() && blend.ease_weight != 0.0);
        let mut ease_scale = 0.0;
        if let Some(ease) = ease {
            scratch.component.clear();
            scratch.component.resize(item_bound, 0.0);
            if ease
                .score_into(subject, now, &mut scratch.component, &mut scratch.ease)
                .is_ok()
            {
                ease_scale = blend.ease_weight / largest_unheld(&scratch.component, held);
                add_scaled(&mut scratch.blended, &scratch.component, ease_scale);
            }
        }
        // Past `ease_max_items` sparse EASE takes dense EASE's place (never both).
        let sparse_ease = self
            .sparse_ease
            .as_ref()
            .filter(|sparse_ease| sparse_ease.scorable() && blend.ease_weight != 0.0);
        let mut sparse_ease_scale = 0.0;
        if let Some(sparse_ease) = sparse_ease {
            scratch.component.clear();
            scratch.component.resize(item_bound, 0.0);
            if sparse_ease
                .score_into(
                    subject,
                    now,
                    &mut scratch.component,
                    &mut scratch.sparse_ease,
                )
                .is_ok()
            {
                sparse_ease_scale = blend.ease_weight / largest_unheld(&scratch.component, held);
                add_scaled(&mut scratch.blended, &scratch.component, sparse_ease_scale);
            }
        }
        let mut item_item_scale = 0.0;
        if blend.item_item_weight != 0.0 {
            scratch.component.clear();
            scratch.component.resize(item_bound, 0.0);
            self.item_item
                .score_into(subject, now, &mut scratch.component, &mut scratch.item_item);
            item_item_scale = blend.item_item_weight / largest_unheld(&scratch.component, held);
            add_scaled(&mut scratch.blended, &scratch.component, item_item_scale);
        }
        if blend.trending_weight != 0.0 {
            let trending = self.trending_normalised(context, item_bound);
            add_scaled(&mut scratch.blended, &trending, blend.trending_weight);
        }
        // Items no model has any data on (e.g. known only from a forgotten subject) are
        // never recommended, so a forget leaves no trace in what is offered.
        let best = select_top_n(
            &scratch.blended,
            n,
            |index| {
                let item = ItemId(index as u32);
                (self.item_item.holder_count(item) == 0 && self.popularity.event_count(item) == 0)
                    || held
                        .binary_search_by_key(&item.0, |held_item| held_item.item.0)
                        .is_ok()
            },
            selection,
        );
        best.into_iter()
            .map(|scored| {
                // Each model's shares come ascending by history item; add them in one pass.
                let from_ease = ease
                    .filter(|_| ease_scale > 0.0)
                    .into_iter()
                    .flat_map(|ease| {
                        scaled(ease.contributions(scored.item, &scratch.ease), ease_scale)
                    })
                    .chain(
                        sparse_ease
                            .filter(|_| sparse_ease_scale > 0.0)
                            .into_iter()
                            .flat_map(|sparse_ease| {
                                scaled(
                                    sparse_ease.contributions(scored.item, &scratch.sparse_ease),
                                    sparse_ease_scale,
                                )
                            }),
                    );
                let from_item_item = (item_item_scale > 0.0)
                    .then(|| {
                        scaled(
                            self.item_item
                                .contributions(scored.item, &scratch.item_item),
                            item_item_scale,
                        )
                    })
                    .into_iter()
                    .flatten();
                Recommendation {
                    item: scored.item,
                    score: scored.score,
                    because: strongest_contributions(sum_ascending(from_ease, from_item_item), 3),
                }
            })
            .collect()
    }

    /// Empties the trending cache (the counts are about to change).
    pub(super) fn trending_changed(&mut self) {
        self.trending_cache
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The contextual trending scores for `context`, divided by their maximum: computed
    /// once per context until the counts change.
    fn trending_normalised(&self, context: &Context, item_bound: usize) -> Arc<Vec<f32>> {
        let mut cache = self
            .trending_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(scores) = cache.get(context) {
            return Arc::clone(scores);
        }
        let mut scores = vec![0.0; item_bound];
        self.popularity.trending_scores_into(context, &mut scores);
        normalise_by_max(&mut scores);
        let scores = Arc::new(scores);
        if cache.len() >= TRENDING_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(*context, Arc::clone(&scores));
        scores
    }

    /// Items similar to `item` (item-item neighbours), best first.
    pub fn similar(&self, item: ItemId, n: usize) -> Vec<ScoredItem> {
        self.item_item.similar(item, n)
    }

    /// `similar` answering only items `selection` allows.
    pub fn similar_selected(
        &self,
        item: ItemId,
        n: usize,
        selection: &dyn ItemSelection,
    ) -> Vec<ScoredItem> {
        self.item_item.similar_selected(item, n, selection)
    }

    /// Non-personal answer: trending items in `context` at `now`.
    pub fn popular(&self, context: &Context, n: usize, now: UnixSeconds) -> Vec<ScoredItem> {
        self.popularity.popular(context, n, now)
    }

    /// `popular` answering only items `selection` allows.
    pub fn popular_selected(
        &self,
        context: &Context,
        n: usize,
        now: UnixSeconds,
        selection: &dyn ItemSelection,
    ) -> Vec<ScoredItem> {
        self.popularity.popular_selected(context, n, now, selection)
    }

    /// "Buy again": the subject's repeat purchases ranked by their own reorder rhythm.
    pub fn buy_again(&self, subject: SubjectId, n: usize, now: UnixSeconds) -> Vec<ScoredItem> {
        self.item_item.histories().buy_again(subject, now, n)
    }
}

/// Largest score among items the subject does not hold (1 when none is above the noise floor).
/// `held` is ascending by item, so the unheld scores are the runs between held items.
fn largest_unheld(scores: &[f32], held: &[HeldItem]) -> f32 {
    let mut largest = 0.0f32;
    let mut run_start = 0;
    for held_item in held {
        let index = held_item.item.index().min(scores.len());
        if index > run_start {
            largest = largest.max(largest_finite(&scores[run_start..index]));
        }
        run_start = run_start.max(index + 1);
    }
    if run_start < scores.len() {
        largest = largest.max(largest_finite(&scores[run_start..]));
    }
    if largest > NOISE_FLOOR { largest } else { 1.0 }
}

/// Largest finite value of `values`, or 0 when none is above 0: eight independent lanes, so
/// the loop compiles to vector instructions.
fn largest_finite(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            let value = if value.is_finite() { value } else { 0.0 };
            *lane = if value > *lane { value } else { *lane };
        }
    }
    let mut largest = lanes.into_iter().fold(0.0f32, f32::max);
    for &value in chunks.remainder() {
        if value.is_finite() && value > largest {
            largest = value;
        }
    }
    largest
}

fn add_scaled(into: &mut [f32], from: &[f32], scale: f32) {
    for (target, value) in into.iter_mut().zip(from) {
        *target += scale * value;
    }
}

fn scaled(
    contributions: impl Iterator<Item = Contribution>,
    scale: f32,
) -> impl Iterator<Item = Contribution> {
    contributions.map(move |contribution| Contribution {
        item: contribution.item,
        weight: scale * contribution.weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ItemId;

    /// Guards the run-by-run maximum against the definition: the largest finite score of an
    /// item not held, whatever the held items, NaNs and infinities.
    #[test]
    fn largest_unheld_is_the_largest_finite_score_of_an_unheld_item() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..200 {
            let length = (next() % 70) as usize;
            let scores: Vec<f32> = (0..length)
                .map(|_| match next() % 10 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => -1.0,
                    _ => (next() % 1000) as f32 / 100.0,
                })
                .collect();
            let mut held_items: Vec<u32> = (0..(next() % 12))
                .map(|_| (next() % (length as u64 + 3)) as u32)
                .collect();
            held_items.sort_unstable();
            held_items.dedup();
            let held: Vec<HeldItem> = held_items
                .iter()
                .map(|&item| HeldItem {
                    item: ItemId(item),
                    event_times: vec![0],
                })
                .collect();
            let expected = scores
                .iter()
                .enumerate()
                .filter(|(index, score)| {
                    score.is_finite() && !held_items.contains(&(*index as u32))
                })
                .fold(0.0f32, |largest, (_, &score)| largest.max(score));
            let expected = if expected > NOISE_FLOOR {
                expected
            } else {
                1.0
            };
            assert_eq!(largest_unheld(&scores, &held), expected, "case {case}");
        }
    }
}
