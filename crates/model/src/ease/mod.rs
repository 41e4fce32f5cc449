//! EASE: closed-form item-item regression (Steck, 2019). With `X` the binary subject×item
//! matrix, `G = XᵀX`, and `P = (G + λI)⁻¹`, the weights are `B_ij = -P_ij / P_jj` and a
//! subject's score for item `j` is `Σ_i w_i B_ij` over their history. Only `P` is kept;
//! scores read the history's columns of `P`, so `B` is never materialised.
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

use std::collections::BTreeMap;
use std::sync::OnceLock;

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
        }
    }
}

/// Reusable buffers for scoring.
#[derive(Default)]
pub struct EaseScratch {
    history_weights: Vec<(ItemId, f32)>,
    accumulated: Vec<f64>,
}

/// One item's kept weights `(target, weight)`, ascending by target.
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

/// The EASE model.
#[derive(Clone, Debug)]
pub struct EaseModel {
    config: EaseConfig,
    histories: SubjectHistories,
    /// `(G + λI)⁻¹` as of the last refresh; dimension = items known at that refresh.
    gram_inverse: Mat<f64>,
    /// Copy of the diagonal of `gram_inverse`, refreshed with it: scoring divides by it,
    /// and reading it from the matrix is one cache miss per item.
    inverse_diagonal: Vec<f64>,
    /// Derived, lazily, when `kept_weights_per_item > 0`: each item's strongest weights
    /// `B_i·`; emptied whenever `P` changes.
    weight_rows: Vec<OnceLock<WeightRow>>,
    /// Subjects changed since the last refresh, with what they held at that refresh.
    pending_changes: BTreeMap<SubjectId, Vec<u32>>,
    item_bound: usize,
    updates_since_drift_check: usize,
    factorised_once: bool,
    /// A removal (unlearn, forget) is waiting for `refresh`: the last `P` still holds what
    /// was removed, so it must not score until then.
    removal_pending: bool,
}

impl EaseModel {
    /// An empty model.
    pub fn new(config: EaseConfig) -> EaseModel {
        let histories = SubjectHistories::new(config.held_kinds);
        EaseModel {
            config,
            histories,
            gram_inverse: Mat::zeros(0, 0),
            inverse_diagonal: Vec::new(),
            weight_rows: Vec::new(),
            pending_changes: BTreeMap::new(),
            item_bound: 0,
            updates_since_drift_check: 0,
            factorised_once: false,
            removal_pending: false,
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
        self.after_inverse_changed();
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
        !self.factorised_once
            || !self.pending_changes.is_empty()
            || self.gram_inverse.nrows() != self.item_bound
    }

    /// True when the last refresh may serve scores: it was factorised, and nothing learned
    /// since was removed. Events learned since then are missing from the scores (and items
    /// new since then score 0) until the next refresh; nothing removed is ever served.
    pub fn scorable(&self) -> bool {
        self.factorised_once && !self.removal_pending
    }

    /// The Gram inverse `(G + λI)⁻¹` as of the last refresh.
    pub fn gram_inverse(&self) -> &Mat<f64> {
        &self.gram_inverse
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
