//! Sparse EASE for catalogues past dense EASE's limit ("local EASE"). Dense EASE needs the
//! n×n inverse of `G + λI`; here each item `j`'s column of `B` regresses `j` on its `k`
//! strongest co-occurring items only, `B_N(j),j = (G_NN + λI)⁻¹ G_N(j),j` — EASE's own
//! formula restricted to a neighbourhood (with every item as neighbour it is exactly dense
//! EASE). Work per item is one `k×k` Cholesky solve, memory `O(n·k)` for `B` plus the sparse
//! Gram rows; a subject's score for `j` is `Σ_i w_i B_ij` over its history.
//!
//! `G` is built from the bounded contributions (each subject's at most
//! `max_contributed_items` most recent distinct items), kept as sparse co-occurrence rows
//! that learning, unlearning and forgetting update exactly. `B` is a deterministic function
//! of `G`: a refresh solves again exactly the columns whose inputs changed (an item whose
//! Gram row changed, or whose neighbourhood holds one) and keeps the others, which gives the
//! same `B`, bit for bit, as solving every column of the new `G`. So forgetting a subject,
//! then refreshing, equals building without the subject. Between a removal and the refresh
//! that applies it the model does not score, so no answer comes from a forgotten subject.
//!
//! The rooms: this file holds the type, its settings and accessors; `gram` the sparse
//! co-occurrence rows; `solve` the local regressions and the weight rows; `learning`
//! learn, unlearn, forget and the three-step refresh; `scoring` scores and explanations.

mod gram;
mod learning;
mod scoring;
mod solve;

pub use learning::{SparseRefreshOutcome, SparseRefreshPlan, SparseRefreshReport};
pub use scoring::SparseEaseScratch;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{ModelError, Result};
use crate::history::SubjectHistories;
use crate::ids::{ItemId, SubjectId};
use crate::interaction::{Interaction, KindSet};

use gram::Gram;
use solve::WeightRows;

/// Most neighbours one item's regression may use (its solve is `k³/3` flops).
pub const MAX_NEIGHBOURS_PER_ITEM: usize = 1_024;

/// Settings of the sparse EASE model.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseEaseConfig {
    /// Which interaction kinds make an item held by a subject.
    pub held_kinds: KindSet,
    /// The ridge regularisation λ added to the Gram diagonal.
    pub regularisation: f64,
    /// `k`: how many of an item's strongest co-occurring items its regression uses.
    pub neighbours_per_item: usize,
    /// Half-life of a history item's weight, in days; `None` weighs all items equally.
    pub history_half_life_days: Option<f64>,
    /// Only the most recent this-many history items score (0 = all); bounds latency.
    pub max_history_items: usize,
    /// The bounded contribution: a subject's row of `X` holds at most this many of its most
    /// recent distinct items (0 = all).
    pub max_contributed_items: usize,
}

impl Default for SparseEaseConfig {
    fn default() -> Self {
        SparseEaseConfig {
            held_kinds: KindSet::engagement(),
            regularisation: 100.0,
            neighbours_per_item: 64,
            history_half_life_days: Some(120.0),
            max_history_items: 200,
            max_contributed_items: crate::item_item::DEFAULT_CONTRIBUTED_ITEMS,
        }
    }
}

/// The sparse EASE model.
#[derive(Clone, Debug)]
pub struct SparseEaseModel {
    config: SparseEaseConfig,
    histories: SubjectHistories,
    gram: Gram,
    /// `B` as of the last refresh, by source item.
    weights: Arc<WeightRows>,
    /// Items whose Gram row or diagonal changed since the last refresh plan, and a flag
    /// per item so each is noted once.
    changed_items: Vec<u32>,
    is_changed: Vec<bool>,
    solved_once: bool,
    /// The last plan failed (or was overtaken): the next one solves every column.
    needs_full_solve: bool,
    /// Plans taken and not yet finished: each holds changed items, so a plan made while any
    /// is out solves every column rather than miss them (a count, not a flag: the first of
    /// two outstanding plans finishing must not make a third one partial).
    plans_outstanding: usize,
    /// Removals (unlearns that changed a row, forgets) so far, and how many of them the
    /// installed weights reflect: while they differ, `B` still holds something removed.
    removals: u64,
    removals_in_weights: u64,
    /// Counts installed weights, so an outcome planned on older ones is refused.
    generation: u64,
}

impl SparseEaseModel {
    /// An empty model (checks the settings).
    pub fn new(config: SparseEaseConfig) -> Result<SparseEaseModel> {
        check_config(&config)?;
        let histories = SubjectHistories::new(config.held_kinds);
        Ok(SparseEaseModel::unsolved_from_histories(
            config, histories, 0,
        ))
    }

    /// The model of `interactions`, solved once.
    pub fn build(
        config: SparseEaseConfig,
        interactions: &[Interaction],
    ) -> Result<SparseEaseModel> {
        let mut histories = SubjectHistories::new(config.held_kinds);
        let mut item_bound = 0;
        for interaction in interactions {
            histories.learn(interaction);
            item_bound = item_bound.max(interaction.item.index() + 1);
        }
        SparseEaseModel::from_histories(config, histories, item_bound)
    }

    /// The model of what `histories` hold (counted with this model's contribution bound;
    /// they must count `config.held_kinds`), for items below `item_bound`, solved once.
    pub fn from_histories(
        config: SparseEaseConfig,
        histories: SubjectHistories,
        item_bound: usize,
    ) -> Result<SparseEaseModel> {
        check_config(&config)?;
        if histories.held_kinds() != config.held_kinds {
            return Err(ModelError::BadConfig {
                detail: "sparse EASE must count the same interaction kinds as the histories it is built from"
                    .to_string(),
            });
        }
        let mut model = SparseEaseModel::unsolved_from_histories(config, histories, item_bound);
        model.refresh()?;
        Ok(model)
    }

    /// The Gram rows of what `histories` hold, not solved yet (the next refresh solves
    /// every column); `config` must have been checked.
    pub(crate) fn unsolved_from_histories(
        config: SparseEaseConfig,
        histories: SubjectHistories,
        item_bound: usize,
    ) -> SparseEaseModel {
        let histories = histories.with_contribution_bound(config.max_contributed_items);
        let contributions: Vec<Vec<u32>> = histories
            .subjects()
            .map(|(subject, _)| histories.contributed_item_ids(subject))
            .collect();
        let item_bound = contributions
            .iter()
            .flatten()
            .map(|&item| item as usize + 1)
            .fold(item_bound, usize::max);
        SparseEaseModel {
            config,
            histories,
            gram: Gram::build(&contributions, item_bound),
            weights: Arc::new(WeightRows::default()),
            changed_items: Vec::new(),
            is_changed: vec![false; item_bound],
            solved_once: false,
            needs_full_solve: true,
            plans_outstanding: 0,
            removals: 0,
            removals_in_weights: 0,
            generation: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SparseEaseConfig {
        &self.config
    }

    /// Changes how history items are weighted when scoring (no new solve needed).
    pub fn set_history_weighting(
        &mut self,
        history_half_life_days: Option<f64>,
        max_history_items: usize,
    ) {
        self.config.history_half_life_days = history_half_life_days;
        self.config.max_history_items = max_history_items;
    }

    /// The subjects' histories this model holds.
    pub fn histories(&self) -> &SubjectHistories {
        &self.histories
    }

    /// One past the largest item id known.
    pub fn item_bound(&self) -> usize {
        self.gram.n_items()
    }

    /// True when learned changes are waiting for `refresh`.
    pub fn needs_refresh(&self) -> bool {
        !self.solved_once || self.needs_full_solve || !self.changed_items.is_empty()
    }

    /// True when the last refresh may serve scores: it solved, and nothing learned since
    /// was removed (events learned since are missing from the scores until the next one).
    pub fn scorable(&self) -> bool {
        self.solved_once && self.removals == self.removals_in_weights
    }

    /// `G_ij` as the model holds it now: subjects contributing both items (`G_ii`: the item).
    pub fn gram_entry(&self, first: ItemId, second: ItemId) -> u32 {
        if first == second {
            return self.gram.diagonal(first.0);
        }
        let row = self.gram.row(first.0);
        row.binary_search_by_key(&second.0, |(other, _)| *other)
            .map(|position| row[position].1)
            .unwrap_or(0)
    }

    /// Every weight of `B` as of the last refresh: `(source, target, weight)`, ascending.
    pub fn weights(&self) -> Vec<(ItemId, ItemId, f32)> {
        (0..self.item_bound() as u32)
            .flat_map(|source| {
                self.weights
                    .row(source)
                    .iter()
                    .map(move |&(target, weight)| (ItemId(source), ItemId(target), weight))
            })
            .collect()
    }

    /// How many weights `B` holds (at most `k` per item).
    pub fn n_weights(&self) -> usize {
        self.weights.n_weights()
    }

    /// Bytes held by the Gram rows and `B` (not the histories).
    pub fn held_bytes(&self) -> usize {
        self.gram.held_bytes() + self.weights.held_bytes()
    }

    /// Notes that `item`'s Gram row or diagonal changed.
    fn note_changed(&mut self, item: u32) {
        if let Some(flag) = self.is_changed.get_mut(item as usize)
            && !*flag
        {
            *flag = true;
            self.changed_items.push(item);
        }
    }

    /// Replaces `subject`'s contribution `before` by what the histories now say.
    fn apply_contribution_change(&mut self, subject: SubjectId, before: &[u32]) {
        let after = self.histories.contributed_item_ids(subject);
        let mut changed = Vec::new();
        self.gram
            .change_contribution(before, &after, |item| changed.push(item));
        for item in changed {
            self.note_changed(item);
        }
    }
}

/// Equal when the histories, the Gram matrix and the weights of the last refresh are.
impl PartialEq for SparseEaseModel {
    fn eq(&self, other: &SparseEaseModel) -> bool {
        self.config == other.config
            && self.histories == other.histories
            && self.gram == other.gram
            && *self.weights == *other.weights
    }
}

pub(crate) fn check_config(config: &SparseEaseConfig) -> Result<()> {
    if !(config.regularisation > 0.0 && config.regularisation.is_finite()) {
        return Err(ModelError::BadConfig {
            detail: format!(
                "sparse EASE regularisation must be a positive number, got {}",
                config.regularisation
            ),
        });
    }
    if !(1..=MAX_NEIGHBOURS_PER_ITEM).contains(&config.neighbours_per_item) {
        return Err(ModelError::BadConfig {
            detail: format!(
                "sparse EASE neighbours per item must be between 1 and {MAX_NEIGHBOURS_PER_ITEM}, got {}",
                config.neighbours_per_item
            ),
        });
    }
    Ok(())
}

/// Subjects with their contribution before a batch, for `learn_batch`.
type ContributionsBefore = BTreeMap<SubjectId, Vec<u32>>;
