//! Forgetting one subject in every model: the interactions handed in are checked against
//! what the models hold before anything changes, then each model drops the subject and the
//! name is released. Never leaves part of a subject behind, and never removes another
//! subject's counts.

use std::collections::HashMap;

use crate::error::{ModelError, Result};
use crate::history::HeldItem;
use crate::interaction::{Interaction, UnixSeconds};

use super::ModelSet;

/// What forgetting a subject removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForgetReport {
    pub events_removed: usize,
    pub items_held: usize,
}

impl ModelSet {
    /// Forgets a subject in every model: `interactions` are the subject's stored
    /// interactions (popularity has no per-subject state, so it unlearns these); the
    /// personal models drop what they hold; the name is released. EASE (dense or sparse)
    /// answers nothing until the next `refresh` (or `begin_refresh`…`finish_refresh`) has removed the
    /// subject from its `P`, so no model answers from the subject's data once this returns.
    pub fn forget_subject(
        &mut self,
        name: &str,
        interactions: &[Interaction],
    ) -> Result<ForgetReport> {
        self.trending_changed();
        let Some(subject) = self.subjects.get(name) else {
            return Ok(ForgetReport {
                events_removed: 0,
                items_held: 0,
            });
        };
        let subject_interactions = interactions
            .iter()
            .filter(|interaction| interaction.subject == subject);
        // Popularity holds no per-subject state, so it unlearns what it is handed: check that
        // list against what the models hold of the subject first (as a multiset of item and
        // time), so that an event never learned cannot remove another customer's count and an
        // incomplete list cannot leave some behind. Nothing is changed when the check fails.
        let held_kinds = self.item_item.histories().held_kinds();
        let mut unmatched: HashMap<(u32, UnixSeconds), usize> = HashMap::new();
        for held in self.item_item.histories().held(subject) {
            for &at in &held.event_times {
                *unmatched.entry((held.item.0, at)).or_default() += 1;
            }
        }
        for interaction in subject_interactions.clone() {
            if !held_kinds.contains(interaction.kind) {
                continue;
            }
            match unmatched.get_mut(&(interaction.item.0, interaction.at)) {
                Some(count) if *count > 0 => *count -= 1,
                _ => {
                    return Err(ModelError::NotLearned {
                        subject: subject.0,
                        item: interaction.item.0,
                        at: interaction.at,
                    });
                }
            }
        }
        let left_out: usize = unmatched.values().sum();
        if left_out > 0 {
            return Err(ModelError::BadInteraction {
                detail: format!(
                    "the interactions handed to forget leave out {left_out} that the models hold"
                ),
            });
        }
        for (done, interaction) in subject_interactions.clone().enumerate() {
            if let Err(error) = self.popularity.unlearn(interaction) {
                // An interaction that was never learned: restore the ones already removed.
                for restored in subject_interactions.take(done) {
                    self.popularity.learn(restored);
                }
                return Err(error);
            }
        }
        // EASE only drops the subject's row from its histories here; it does not score again
        // until a refresh has removed the row from `P` (quick to call, and the slow part of
        // that refresh can run without holding the models).
        if let Some(ease) = self.ease.as_mut() {
            ease.forget_subject(subject);
        }
        // Sparse EASE likewise: its Gram rows drop the subject now, its weights at the refresh.
        if let Some(sparse_ease) = self.sparse_ease.as_mut() {
            sparse_ease.forget_subject(subject);
        }
        let held: Vec<HeldItem> = self.item_item.forget_subject(subject);
        self.subjects.release(name);
        Ok(ForgetReport {
            events_removed: held
                .iter()
                .map(|held_item| held_item.event_times.len())
                .sum(),
            items_held: held.len(),
        })
    }
}
