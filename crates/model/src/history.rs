//! What each subject holds: per subject, the items they interacted with (of the kinds a
//! model counts) and the time of every such event. Exactly reversible: unlearning an
//! event removes exactly that event, so the history is a pure function of the multiset
//! of learned interactions. Serves recency weights, "buy again" and the view of a subject.
//! Never stores names, contexts or anything the models do not need.
//!
//! Bounded contributions: a subject holds any number of items, but what it contributes to a
//! model's counts is only its `contribution_bound` most recent distinct items (by the time
//! of each item's latest event; ties go to the lower item id). That set is a pure function
//! of the subject's held events, so a model that counts only contributed items can still
//! unlearn exactly: forgetting a subject, or an event sliding an item in or out of the
//! window, gives what a rebuild from the same events would.

use crate::error::{ModelError, Result};
use crate::ids::{ItemId, SubjectId};
use crate::interaction::{Interaction, KindSet, SECONDS_PER_DAY, UnixSeconds};
use crate::ranking::ScoredItem;

/// One item a subject holds, with the times of its events (ascending).
#[derive(Clone, Debug, PartialEq)]
pub struct HeldItem {
    pub item: ItemId,
    pub event_times: Vec<UnixSeconds>,
}

impl HeldItem {
    /// Time of the latest event.
    pub fn last_at(&self) -> UnixSeconds {
        self.event_times.last().copied().unwrap_or(UnixSeconds::MIN)
    }
    /// Number of distinct days (UTC) with an event: distinct orders for a reorder rhythm.
    pub fn distinct_days(&self) -> usize {
        let mut count = 0;
        let mut previous_day = None;
        for at in &self.event_times {
            let day = at.div_euclid(86_400);
            if previous_day != Some(day) {
                count += 1;
                previous_day = Some(day);
            }
        }
        count
    }
}

/// How one learn/unlearn changed what the subject holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldChange {
    /// The subject now holds the item and did not before.
    BecameHeld,
    /// The subject held the item and no longer does.
    NoLongerHeld,
    /// Held-ness is unchanged (another event of an already held item, or a kind not counted).
    Unchanged,
}

/// Histories of all subjects, indexed by subject id.
#[derive(Clone, Debug)]
pub struct SubjectHistories {
    held_kinds: KindSet,
    /// Most distinct items one subject contributes (0 = every held item).
    contribution_bound: usize,
    items_by_subject: Vec<Vec<HeldItem>>,
    n_events: usize,
}

impl SubjectHistories {
    /// Empty histories counting interactions of `held_kinds`.
    pub fn new(held_kinds: KindSet) -> SubjectHistories {
        SubjectHistories {
            held_kinds,
            contribution_bound: 0,
            items_by_subject: Vec::new(),
            n_events: 0,
        }
    }

    /// The same histories, each subject contributing at most `bound` items (0 = all).
    pub fn with_contribution_bound(mut self, bound: usize) -> SubjectHistories {
        self.contribution_bound = bound;
        self
    }

    /// Which kinds are counted.
    pub fn held_kinds(&self) -> KindSet {
        self.held_kinds
    }

    /// Most distinct items one subject contributes (0 = every held item).
    pub fn contribution_bound(&self) -> usize {
        self.contribution_bound
    }

    /// Total number of events held.
    pub fn n_events(&self) -> usize {
        self.n_events
    }

    /// Number of subject slots (one past the largest subject id seen).
    pub fn subject_bound(&self) -> usize {
        self.items_by_subject.len()
    }

    /// Records one interaction.
    pub fn learn(&mut self, interaction: &Interaction) -> HeldChange {
        if !self.held_kinds.contains(interaction.kind) {
            return HeldChange::Unchanged;
        }
        let subject_index = interaction.subject.index();
        if subject_index >= self.items_by_subject.len() {
            self.items_by_subject
                .resize_with(subject_index + 1, Vec::new);
        }
        let items = &mut self.items_by_subject[subject_index];
        self.n_events += 1;
        match items.binary_search_by_key(&interaction.item, |held| held.item) {
            Ok(position) => {
                let times = &mut items[position].event_times;
                let at = times.partition_point(|&time| time <= interaction.at);
                times.insert(at, interaction.at);
                HeldChange::Unchanged
            }
            Err(position) => {
                items.insert(
                    position,
                    HeldItem {
                        item: interaction.item,
                        event_times: vec![interaction.at],
                    },
                );
                HeldChange::BecameHeld
            }
        }
    }

    /// Removes one previously learned interaction; an error if it was never learned.
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<HeldChange> {
        if !self.held_kinds.contains(interaction.kind) {
            return Ok(HeldChange::Unchanged);
        }
        let not_learned = || ModelError::NotLearned {
            subject: interaction.subject.0,
            item: interaction.item.0,
            at: interaction.at,
        };
        let items = self
            .items_by_subject
            .get_mut(interaction.subject.index())
            .ok_or_else(not_learned)?;
        let position = items
            .binary_search_by_key(&interaction.item, |held| held.item)
            .map_err(|_| not_learned())?;
        let times = &mut items[position].event_times;
        let at = times
            .binary_search(&interaction.at)
            .map_err(|_| not_learned())?;
        times.remove(at);
        self.n_events -= 1;
        if times.is_empty() {
            items.remove(position);
            Ok(HeldChange::NoLongerHeld)
        } else {
            Ok(HeldChange::Unchanged)
        }
    }

    /// The items a subject holds, ascending by item id (empty for unknown subjects).
    pub fn held(&self, subject: SubjectId) -> &[HeldItem] {
        self.items_by_subject
            .get(subject.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The ids of the items the subject contributes, ascending: every held item, or the
    /// `contribution_bound` most recent ones (what the personal models' counts and rank-1
    /// updates are made of).
    pub(crate) fn contributed_item_ids(&self, subject: SubjectId) -> Vec<u32> {
        let held = self.held(subject);
        let bound = self.contribution_bound;
        if bound == 0 || held.len() <= bound {
            return held.iter().map(|held_item| held_item.item.0).collect();
        }
        let mut recent: Vec<(UnixSeconds, u32)> = held
            .iter()
            .map(|held_item| (held_item.last_at(), held_item.item.0))
            .collect();
        recent.select_nth_unstable_by(bound - 1, most_recent_first);
        recent.truncate(bound);
        let mut items: Vec<u32> = recent.into_iter().map(|(_, item)| item).collect();
        items.sort_unstable();
        items
    }

    /// True if the subject holds the item.
    pub fn holds(&self, subject: SubjectId, item: ItemId) -> bool {
        self.held(subject)
            .binary_search_by_key(&item, |held| held.item)
            .is_ok()
    }

    /// Removes and returns everything held about a subject.
    pub fn take_subject(&mut self, subject: SubjectId) -> Vec<HeldItem> {
        match self.items_by_subject.get_mut(subject.index()) {
            Some(items) => {
                let taken = std::mem::take(items);
                self.n_events -= taken
                    .iter()
                    .map(|held| held.event_times.len())
                    .sum::<usize>();
                taken
            }
            None => Vec::new(),
        }
    }

    /// Iterates over every subject that holds something.
    pub fn subjects(&self) -> impl Iterator<Item = (SubjectId, &[HeldItem])> {
        self.items_by_subject
            .iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .map(|(index, items)| (SubjectId(index as u32), items.as_slice()))
    }

    /// Recency weights of a subject's held items at `now`: `0.5^(age / half_life)`, for
    /// the `max_items` most recent items (all when `max_items` is 0); `None` half-life
    /// means every item weighs 1. Written into `weights` (cleared first), by item id.
    pub fn recency_weights(
        &self,
        subject: SubjectId,
        now: UnixSeconds,
        half_life_days: Option<f64>,
        max_items: usize,
        weights: &mut Vec<(ItemId, f32)>,
    ) {
        weights.clear();
        let held = self.held(subject);
        if max_items > 0 && held.len() > max_items {
            // Choose the most recent by time first (ties: lower item id), so only the kept
            // items pay for a `powf`.
            let mut recent: Vec<(UnixSeconds, ItemId)> = held
                .iter()
                .map(|held_item| (held_item.last_at(), held_item.item))
                .collect();
            recent.select_nth_unstable_by(max_items - 1, most_recent_first);
            recent.truncate(max_items);
            recent.sort_unstable_by_key(|(_, item)| *item);
            weights.extend(
                recent
                    .into_iter()
                    .map(|(at, item)| (item, recency_weight(now, at, half_life_days))),
            );
        } else {
            weights.extend(held.iter().map(|held_item| {
                (
                    held_item.item,
                    recency_weight(now, held_item.last_at(), half_life_days),
                )
            }));
        }
    }

    /// "Buy again": items the subject ordered on at least two distinct days, ranked by how
    /// due they are by the subject's own rhythm for that item. An item is most due when the
    /// time since the last order equals its mean interval between orders; the score is
    /// `sqrt(orders) * exp(-ln(elapsed / interval)^2 / 2)`.
    pub fn buy_again(&self, subject: SubjectId, now: UnixSeconds, n: usize) -> Vec<ScoredItem> {
        let mut scored: Vec<ScoredItem> = Vec::new();
        for held_item in self.held(subject) {
            let orders = held_item.distinct_days();
            if orders < 2 {
                continue;
            }
            let first = held_item.event_times[0];
            let last = held_item.last_at();
            let interval_seconds =
                ((last - first) as f64 / (orders - 1) as f64).max(SECONDS_PER_DAY);
            let elapsed_seconds = (now.saturating_sub(last) as f64).max(SECONDS_PER_DAY / 2.0);
            let log_ratio = (elapsed_seconds / interval_seconds).ln();
            let score = (orders as f64).sqrt() * (-0.5 * log_ratio * log_ratio).exp();
            scored.push(ScoredItem {
                item: held_item.item,
                score: score as f32,
            });
        }
        scored.sort_by(|left, right| {
            right
                .score
                .total_cmp(&left.score)
                .then(left.item.cmp(&right.item))
        });
        scored.truncate(n);
        scored
    }
}

/// Equal when both hold the same events for the same subjects (id slots with nothing held
/// do not count, so a model that learned and forgot a subject equals one that never saw it).
impl PartialEq for SubjectHistories {
    fn eq(&self, other: &SubjectHistories) -> bool {
        let length = self
            .items_by_subject
            .len()
            .max(other.items_by_subject.len());
        self.held_kinds == other.held_kinds
            && self.contribution_bound == other.contribution_bound
            && self.n_events == other.n_events
            && (0..length).all(|index| {
                self.held(SubjectId(index as u32)) == other.held(SubjectId(index as u32))
            })
    }
}

/// Orders `(latest event time, item)` pairs most recent first, ties to the lower item id.
fn most_recent_first<T: Ord>(
    left: &(UnixSeconds, T),
    right: &(UnixSeconds, T),
) -> std::cmp::Ordering {
    right.0.cmp(&left.0).then(left.1.cmp(&right.1))
}

/// `0.5^(age / half_life)` with age clamped at zero; 1 without a half-life.
pub fn recency_weight(now: UnixSeconds, at: UnixSeconds, half_life_days: Option<f64>) -> f32 {
    match half_life_days {
        None => 1.0,
        Some(half_life_days) => {
            let age_days = (now.saturating_sub(at).max(0) as f64) / SECONDS_PER_DAY;
            (0.5f64).powf(age_days / half_life_days) as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interaction::{Context, InteractionKind};

    fn purchase(subject: u32, item: u32, at: i64) -> Interaction {
        Interaction {
            subject: SubjectId(subject),
            item: ItemId(item),
            at,
            kind: InteractionKind::Purchase,
            quantity: 1,
            context: Context::default(),
        }
    }

    #[test]
    fn learn_then_unlearn_reports_held_changes_and_rejects_unknown_events() {
        let mut histories = SubjectHistories::new(KindSet::purchases());
        assert_eq!(histories.learn(&purchase(0, 3, 10)), HeldChange::BecameHeld);
        assert_eq!(histories.learn(&purchase(0, 3, 20)), HeldChange::Unchanged);
        assert_eq!(
            histories.unlearn(&purchase(0, 3, 15)).unwrap_err(),
            ModelError::NotLearned {
                subject: 0,
                item: 3,
                at: 15
            }
        );
        assert_eq!(
            histories.unlearn(&purchase(0, 3, 10)),
            Ok(HeldChange::Unchanged)
        );
        assert_eq!(
            histories.unlearn(&purchase(0, 3, 20)),
            Ok(HeldChange::NoLongerHeld)
        );
        assert!(histories.held(SubjectId(0)).is_empty());
        assert_eq!(histories.n_events(), 0);
    }

    #[test]
    fn a_history_cap_keeps_the_most_recent_items_even_without_decay() {
        let mut histories = SubjectHistories::new(KindSet::purchases());
        for (item, at) in [(1, 50), (2, 10), (3, 40), (4, 20)] {
            histories.learn(&purchase(0, item, at));
        }
        let mut weights = Vec::new();
        histories.recency_weights(SubjectId(0), 100, None, 2, &mut weights);
        assert_eq!(weights, vec![(ItemId(1), 1.0), (ItemId(3), 1.0)]);
        histories.recency_weights(SubjectId(0), 100 + 86_400, Some(1.0), 0, &mut weights);
        assert_eq!(weights.len(), 4);
        assert!((weights[0].1 - 0.5).abs() < 1e-3);
    }

    #[test]
    fn a_contribution_bound_keeps_the_most_recent_distinct_items_and_slides() {
        let mut histories = SubjectHistories::new(KindSet::purchases()).with_contribution_bound(2);
        for (item, at) in [(1, 50), (2, 10), (3, 40), (4, 20)] {
            histories.learn(&purchase(0, item, at));
        }
        assert_eq!(histories.contributed_item_ids(SubjectId(0)), vec![1, 3]);
        // A new event on an old item brings it back into the window; item 3 slides out.
        histories.learn(&purchase(0, 2, 60));
        assert_eq!(histories.contributed_item_ids(SubjectId(0)), vec![1, 2]);
        // Unlearning it slides item 3 back in: the set depends only on what is held.
        histories.unlearn(&purchase(0, 2, 60)).unwrap();
        assert_eq!(histories.contributed_item_ids(SubjectId(0)), vec![1, 3]);
        assert_eq!(histories.held(SubjectId(0)).len(), 4);
    }

    #[test]
    fn buy_again_prefers_the_item_that_is_due() {
        let day = 86_400;
        let mut histories = SubjectHistories::new(KindSet::purchases());
        // Item 1 reordered every 10 days, last 10 days ago: due now.
        for at in [0, 10 * day, 20 * day] {
            histories.learn(&purchase(0, 1, at));
        }
        // Item 2 reordered every 2 days, last 10 days ago: overdue long ago.
        for at in [16 * day, 18 * day, 20 * day] {
            histories.learn(&purchase(0, 2, at));
        }
        // Item 3 bought once: not a repeat purchase.
        histories.learn(&purchase(0, 3, 20 * day));
        let ranked = histories.buy_again(SubjectId(0), 30 * day, 10);
        let items: Vec<u32> = ranked.iter().map(|scored| scored.item.0).collect();
        assert_eq!(items, vec![1, 2]);
    }
}
