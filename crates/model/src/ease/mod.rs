//! EASE: closed-form item-item regression (Steck, 2019). With `X` the binary subject×item
//! matrix, `G = XᵀX`, and `P = (G + λI)⁻¹`, the weights are `B_ij = -P_ij / P_jj` and a
//! subject's score for item `j` is `Σ_i w_i B_ij` over their history. `P` is what is kept
//! and updated; scoring reads `B`'s rows in `f32`, derived from `P` when first read (or
//! warmed) and dropped whenever `P` changes, so they never outlive the `P` they came from.
//!
//! A subject's row of `X` is its bounded contribution: at most `max_contributed_items` of
//! its most recent distinct items. `P` has one slot per item that some row held at the last
//! factorisation or since, so an item nobody contributes costs no memory, and one subject
//! adds at most its bound in new slots (an item whose last contributor left keeps its slot,
//! decoupled — a zero Gram row — until the next factorisation compacts the slots).
//!
//! Learning and unlearning are exact: a subject whose row changes from `x` to `x'` is a
//! rank-1 downdate by `x` and a rank-1 update by `x'` of `P` (Sherman–Morrison). Changes are
//! collected and applied by `refresh`; after many updates the accumulated rounding is
//! measured (residual of `(G + λI)P = I` on sampled columns) and `P` is refactorised when
//! it passes a bound. Optionally (`kept_weights_per_item`), scoring uses only each history
//! item's strongest weights, computed lazily from `P` and emptied whenever `P` changes.
//! Never holds more than the subjects' histories, `P` and what is derived from `P`.
//!
//! The rooms: this file holds the type, its settings and what it reports; `learning`
//! collects changes and applies them at `refresh`; `inverse` keeps `P` (factorisation,
//! Sherman–Morrison updates, drift); `scoring` reads `P` (scores, pruned rows, explanations).

mod inverse;
mod learning;
mod scoring;

pub use learning::{RefreshOutcome, RefreshPlan};

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use faer::Mat;

use crate::error::{ModelError, Result};
use crate::history::SubjectHistories;
use crate::ids::{ItemId, SubjectId};
use crate::interaction::{Interaction, KindSet};

/// Settings of the EASE model.
#[derive(Clone, Debug, PartialEq)]
pub struct EaseConfig {
    /// Which interaction kinds make an item held by a subject.
    pub held_kinds: KindSet,
    /// The ridge regularisation λ added to the Gram diagonal.
    pub regularisation: f64,
    /// Half-life of a history item's weight, in days; `None` weighs all items equally.
    pub history_half_life_days: Option<f64>,
    /// Only the most recent this-many history items score (0 = all); bounds latency.
    pub max_history_items: usize,
    /// Keep only each history item's this-many strongest weights when scoring (0 = use
    /// every weight, exact EASE). Pruned rows are computed lazily and cached until `P`
    /// changes: far fewer reads per recommendation, at some cost in quality.
    pub kept_weights_per_item: usize,
    /// Refactorise when the measured residual of `(G + λI)P = I` exceeds this.
    pub drift_bound: f64,
    /// Measure the residual after this many rank-1 updates since the last measurement.
    pub drift_check_every_updates: usize,
    /// The bounded contribution: a subject's row of `X` holds at most this many of its most
    /// recent distinct items (0 = all), so one subject adds at most this many slots to `P`.
    pub max_contributed_items: usize,
}

impl Default for EaseConfig {
    fn default() -> Self {
        EaseConfig {
            held_kinds: KindSet::engagement(),
            regularisation: 300.0,
            history_half_life_days: Some(120.0),
            max_history_items: 200,
            kept_weights_per_item: 0,
            drift_bound: 1e-9,
            drift_check_every_updates: 64,
            max_contributed_items: crate::item_item::DEFAULT_CONTRIBUTED_ITEMS,
        }
    }
}

/// Reusable buffers for scoring.
#[derive(Default)]
pub struct EaseScratch {
    history_weights: Vec<(ItemId, f32)>,
    accumulated: Vec<f64>,
    accumulated_f32: Vec<f32>,
}

/// The slot of an item that has none in `P`.
const NO_SLOT: u32 = u32::MAX;

/// One item's kept weights `(target item, weight)`, ascending by target.
#[derive(Clone, Debug)]
struct WeightRow {
    weights: Box<[(u32, f32)]>,
}

/// What `refresh` did, for benchmarks and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RefreshReport {
    pub rank_one_updates: usize,
    pub refactorised: bool,
    /// Residual measured during this refresh, if one was measured.
    pub measured_drift: Option<f64>,
}

/// `P` with its slots and what is derived from it. A refresh builds a new one beside the
/// old and swaps it in whole, so scoring never reads a half-updated matrix and the slow part
/// of a refresh needs no lock on the model (see `RefreshPlan`).
#[derive(Debug)]
pub(crate) struct Solution {
    /// `(G + λI)⁻¹`, indexed by slot.
    gram_inverse: Mat<f64>,
    /// The item of each slot of `gram_inverse`.
    item_of_slot: Vec<u32>,
    /// The slot of each item id (`NO_SLOT` for items no row held).
    slot_of_item: Vec<u32>,
    /// Copy of the diagonal of `gram_inverse`: scoring divides by it, and reading it from
    /// the matrix is one cache miss per item.
    inverse_diagonal: Vec<f64>,
    /// Derived, lazily, when `kept_weights_per_item > 0`: each slot's strongest weights
    /// `B_i·`; a new solution starts with none.
    weight_rows: Vec<OnceLock<WeightRow>>,
    /// Derived, lazily, when every weight scores (`kept_weights_per_item == 0`) and the
    /// dimension is at most `DENSE_WEIGHTS_MAX_DIMENSION`: each slot's whole row `B_i·` in
    /// `f32`, by target slot. Scoring then reads half the bytes of `P`'s columns and adds
    /// twice as many per instruction; a new solution starts with none.
    dense_weights: Vec<OnceLock<Box<[f32]>>>,
}

/// Above this many slots, scoring reads `P` itself: the `f32` rows would add half of `P`'s
/// memory again (10,000 slots: 400 MB).
const DENSE_WEIGHTS_MAX_DIMENSION: usize = 10_000;

/// The EASE model.
#[derive(Debug)]
pub struct EaseModel {
    config: EaseConfig,
    histories: SubjectHistories,
    /// `P` as of the last refresh.
    solution: Arc<Solution>,
    /// Subjects changed since the last refresh plan, with what they contributed at it.
    pending_changes: BTreeMap<SubjectId, Vec<u32>>,
    item_bound: usize,
    updates_since_drift_check: usize,
    factorised_once: bool,
    /// The last plan failed (or was overtaken): the next one factorises from the histories.
    needs_factorisation: bool,
    /// Removals (unlearns that changed a row, forgets) so far, and how many of them the
    /// installed solution reflects: while they differ, `P` still holds something removed
    /// and must not score.
    removals: u64,
    removals_in_solution: u64,
    /// Counts installed solutions, so an outcome planned on an older one is refused.
    solution_generation: u64,
    /// Plans taken and not yet finished: each holds noted changes, so a plan made while any
    /// is out factorises from the histories rather than miss them.
    plans_outstanding: usize,
}

/// A clone has its own copy of `P`, with no pruned rows derived yet.
impl Clone for EaseModel {
    fn clone(&self) -> EaseModel {
        EaseModel {
            config: self.config.clone(),
            histories: self.histories.clone(),
            solution: Arc::new(self.solution.copy_of_inverse()),
            pending_changes: self.pending_changes.clone(),
            item_bound: self.item_bound,
            updates_since_drift_check: self.updates_since_drift_check,
            factorised_once: self.factorised_once,
            needs_factorisation: self.needs_factorisation,
            removals: self.removals,
            removals_in_solution: self.removals_in_solution,
            solution_generation: self.solution_generation,
            plans_outstanding: self.plans_outstanding,
        }
    }
}

impl EaseModel {
    /// An empty model.
    pub fn new(config: EaseConfig) -> EaseModel {
        let histories = SubjectHistories::new(config.held_kinds)
            .with_contribution_bound(config.max_contributed_items);
        EaseModel {
            config,
            histories,
            solution: Arc::new(Solution::default()),
            pending_changes: BTreeMap::new(),
            item_bound: 0,
            updates_since_drift_check: 0,
            factorised_once: false,
            needs_factorisation: false,
            removals: 0,
            removals_in_solution: 0,
            solution_generation: 0,
            plans_outstanding: 0,
        }
    }

    /// The model of `interactions`, factorised once.
    pub fn build(config: EaseConfig, interactions: &[Interaction]) -> Result<EaseModel> {
        check_config(&config)?;
        let mut model = EaseModel::new(config);
        for interaction in interactions {
            model.histories.learn(interaction);
            model.item_bound = model.item_bound.max(interaction.item.index() + 1);
        }
        model.refactorise()?;
        Ok(model)
    }

    /// The configuration.
    pub fn config(&self) -> &EaseConfig {
        &self.config
    }

    /// Changes how history items are weighted when scoring (no refactorisation needed).
    pub fn set_history_weighting(
        &mut self,
        history_half_life_days: Option<f64>,
        max_history_items: usize,
    ) {
        self.config.history_half_life_days = history_half_life_days;
        self.config.max_history_items = max_history_items;
    }

    /// Changes how many weights per history item score (0 = all, exact EASE).
    pub fn set_kept_weights(&mut self, kept_weights_per_item: usize) {
        self.config.kept_weights_per_item = kept_weights_per_item;
        // Pruned rows are derived from `P` with the old setting: start them afresh.
        if let Some(solution) = Arc::get_mut(&mut self.solution) {
            solution.reset_weight_rows();
        } else {
            let mut solution = self.solution.copy_of_inverse();
            solution.reset_weight_rows();
            self.solution = Arc::new(solution);
        }
    }

    /// The subjects' histories this model holds.
    pub fn histories(&self) -> &SubjectHistories {
        &self.histories
    }

    /// One past the largest item id known.
    pub fn item_bound(&self) -> usize {
        self.item_bound
    }

    /// True when learned changes are waiting for `refresh`.
    pub fn needs_refresh(&self) -> bool {
        !self.factorised_once || self.needs_factorisation || !self.pending_changes.is_empty()
    }

    /// True when the last refresh may serve scores: it was factorised, and nothing learned
    /// since was removed. Events learned since then are missing from the scores (and items
    /// new since then score 0) until the next refresh; nothing removed is ever served.
    pub fn scorable(&self) -> bool {
        self.factorised_once && self.removals == self.removals_in_solution
    }

    /// Number of slots in `P` (items some row held at the last factorisation or since).
    pub fn dimension(&self) -> usize {
        self.solution.item_of_slot.len()
    }

    /// Entry `(row, column)` of `(G + λI)⁻¹` as of the last refresh, by item: an item
    /// without a slot has a zero Gram row, so its entries are `1/λ` on the diagonal and 0
    /// elsewhere (what comparing a model with a rebuild needs).
    pub fn inverse_entry(&self, row: ItemId, column: ItemId) -> f64 {
        match (self.solution.slot(row), self.solution.slot(column)) {
            (Some(row), Some(column)) => self.solution.gram_inverse[(row, column)],
            _ if row == column => 1.0 / self.config.regularisation,
            _ => 0.0,
        }
    }
}

pub(crate) fn check_config(config: &EaseConfig) -> Result<()> {
    if !(config.regularisation > 0.0 && config.regularisation.is_finite()) {
        return Err(ModelError::BadConfig {
            detail: format!(
                "EASE regularisation must be a positive number, got {}",
                config.regularisation
            ),
        });
    }
    Ok(())
}
