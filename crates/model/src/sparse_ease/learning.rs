//! Learning, unlearning and forgetting in sparse EASE, and the refresh that turns them into
//! a new `B`. Each change updates the sparse Gram rows at once (exactly, as a difference of
//! the subject's bounded contribution) and notes the items whose row changed. A refresh is
//! three steps so that the slow one needs no lock on the model: `begin_refresh` (takes a
//! snapshot of the Gram rows — pointers, copy-on-write — and the noted items: quick, needs
//! `&mut`), `SparseRefreshPlan::compute` (solves the columns whose inputs changed: slow,
//! owns its inputs) and `finish_refresh` (swaps the new `B` in: quick). Never changes the
//! installed `B` in place.

use std::sync::Arc;

use crate::error::{ModelError, Result};
use crate::history::HeldItem;
use crate::ids::SubjectId;
use crate::interaction::Interaction;

use super::gram::Gram;
use super::solve::{WeightRows, solve_and_merge};
use super::{ContributionsBefore, SparseEaseModel};

/// What `refresh` did, for benchmarks and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SparseRefreshReport {
    /// Columns of `B` solved again.
    pub solved_items: usize,
    /// Every column was solved (the first refresh, or after a failed one).
    pub full: bool,
}

/// What a refresh must compute, taken from the model by `begin_refresh`.
pub struct SparseRefreshPlan {
    gram: Gram,
    /// The weights the work starts from (`None`: solve every column).
    base: Option<Arc<WeightRows>>,
    /// Items whose Gram row or diagonal changed since `base`, ascending.
    changed_items: Vec<u32>,
    neighbours_per_item: usize,
    regularisation: f64,
    base_generation: u64,
    /// Removals the histories held when the plan was made (the new `B` reflects them).
    removals: u64,
}

/// What `SparseRefreshPlan::compute` made, for `finish_refresh`.
pub struct SparseRefreshOutcome {
    weights: Result<WeightRows>,
    report: SparseRefreshReport,
    base_generation: u64,
    removals: u64,
}

impl SparseRefreshPlan {
    /// Computes the new `B` (the slow part: run it without holding the model).
    pub fn compute(self) -> SparseRefreshOutcome {
        let empty = WeightRows::default();
        let (base, targets) = match &self.base {
            None => {
                let every_item: Vec<u32> = (0..self.gram.n_items() as u32)
                    .filter(|&item| !self.gram.row(item).is_empty())
                    .collect();
                (&empty, every_item)
            }
            Some(base) => {
                // A column read the Gram entries of its target and of its neighbours; a
                // source's row names every column whose neighbourhood holds it.
                let mut targets = self.changed_items.clone();
                for &item in &self.changed_items {
                    targets.extend(base.row(item).iter().map(|&(target, _)| target));
                }
                targets.sort_unstable();
                targets.dedup();
                (base.as_ref(), targets)
            }
        };
        let weights = solve_and_merge(
            &self.gram,
            base,
            &targets,
            self.neighbours_per_item,
            self.regularisation,
        );
        SparseRefreshOutcome {
            weights,
            report: SparseRefreshReport {
                solved_items: targets.len(),
                full: self.base.is_none(),
            },
            base_generation: self.base_generation,
            removals: self.removals,
        }
    }
}

impl SparseEaseModel {
    fn ensure_item(&mut self, item_bound: usize) {
        self.gram.ensure_items(item_bound);
        if self.is_changed.len() < item_bound {
            self.is_changed.resize(item_bound, false);
        }
    }

    /// Learns one interaction; takes effect at the next refresh.
    pub fn learn(&mut self, interaction: &Interaction) {
        self.learn_batch(std::slice::from_ref(interaction));
    }

    /// Learns many interactions: each subject's bounded contribution is compared once,
    /// before and after the batch, and only the difference changes the Gram rows.
    pub fn learn_batch(&mut self, interactions: &[Interaction]) {
        let mut before = ContributionsBefore::new();
        for interaction in interactions {
            self.ensure_item(interaction.item.index() + 1);
            if !self.histories.held_kinds().contains(interaction.kind) {
                continue;
            }
            before
                .entry(interaction.subject)
                .or_insert_with(|| self.histories.contributed_item_ids(interaction.subject));
            self.histories.learn(interaction);
        }
        for (subject, contributed_before) in before {
            self.apply_contribution_change(subject, &contributed_before);
        }
    }

    /// Unlearns one previously learned interaction (an error if it was never learned);
    /// takes effect at the next refresh, and until then the model does not score if the
    /// subject's contribution changed.
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        let subject = interaction.subject;
        let before = self.histories.contributed_item_ids(subject);
        self.histories.unlearn(interaction)?;
        if self.histories.contributed_item_ids(subject) != before {
            self.apply_contribution_change(subject, &before);
            self.removals += 1;
        }
        Ok(())
    }

    /// Removes everything learned from `subject`: the model does not score until the next
    /// refresh has solved the columns that read the subject's Gram entries.
    pub fn forget_subject(&mut self, subject: SubjectId) -> Vec<HeldItem> {
        let before = self.histories.contributed_item_ids(subject);
        let taken = self.histories.take_subject(subject);
        if !taken.is_empty() {
            self.apply_contribution_change(subject, &before);
            self.removals += 1;
        }
        taken
    }

    /// Takes the noted changes and a snapshot of the Gram rows (`None`: nothing to do).
    pub fn begin_refresh(&mut self) -> Option<SparseRefreshPlan> {
        if !self.needs_refresh() {
            return None;
        }
        let full = !self.solved_once || self.needs_full_solve || self.plans_outstanding > 0;
        let mut changed_items = std::mem::take(&mut self.changed_items);
        for &item in &changed_items {
            self.is_changed[item as usize] = false;
        }
        changed_items.sort_unstable();
        self.needs_full_solve = false;
        self.plans_outstanding += 1;
        Some(SparseRefreshPlan {
            gram: self.gram.clone(),
            base: (!full).then(|| Arc::clone(&self.weights)),
            changed_items,
            neighbours_per_item: self.config.neighbours_per_item,
            regularisation: self.config.regularisation,
            base_generation: self.generation,
            removals: self.removals,
        })
    }

    /// Installs what `compute` made. An outcome that failed, or that was planned on weights
    /// since replaced, is refused: the next refresh then solves every column, and the
    /// installed `B` stays as it was.
    pub fn finish_refresh(&mut self, outcome: SparseRefreshOutcome) -> Result<SparseRefreshReport> {
        self.plans_outstanding = self.plans_outstanding.saturating_sub(1);
        if outcome.base_generation != self.generation {
            self.needs_full_solve = true;
            return Err(ModelError::Internal {
                detail:
                    "a sparse EASE refresh was overtaken by another; the next one solves every item"
                        .to_string(),
            });
        }
        match outcome.weights {
            Ok(weights) => {
                self.weights = Arc::new(weights);
                self.generation += 1;
                self.removals_in_weights = outcome.removals;
                self.solved_once = true;
                Ok(outcome.report)
            }
            Err(error) => {
                self.needs_full_solve = true;
                Err(error)
            }
        }
    }

    /// Applies noted changes now: `begin_refresh`, `compute` and `finish_refresh` in one
    /// call (for callers that own the model; shared models run `compute` without a lock).
    pub fn refresh(&mut self) -> Result<SparseRefreshReport> {
        match self.begin_refresh() {
            Some(plan) => self.finish_refresh(plan.compute()),
            None => Ok(SparseRefreshReport::default()),
        }
    }
}
