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

use std::collections::BTreeMap;
use std::sync::OnceLock;

use faer::linalg::solvers::DenseSolveCore;
use faer::{Accum, Col, Mat, Par, Side};

use crate::error::{ModelError, Result};
use crate::history::{HeldItem, SubjectHistories};
use crate::ids::{ItemId, SubjectId};
use crate::interaction::{Interaction, KindSet, UnixSeconds};
use crate::ranking::top_n;
use crate::recommendation::{Contribution, Recommendation, strongest_contributions};

/// A rank-1 update whose denominator is below this is ill-conditioned (see `rank_one_update`).
const MIN_UPDATE_DENOMINATOR: f64 = 1e-3;
/// Weights smaller than this fraction of a row's largest are rounding noise (see `weight_row`).
const WEIGHT_NOISE_RELATIVE: f64 = 1e-9;

/// Subjects holding at least this many items have `P x` computed on two threads.
const PARALLEL_PROJECTION_ITEMS: usize = 128;

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

    fn note_change(&mut self, subject: SubjectId) {
        if !self.pending_changes.contains_key(&subject) {
            let held_at_refresh: Vec<u32> = self
                .histories
                .held(subject)
                .iter()
                .map(|held| held.item.0)
                .collect();
            self.pending_changes.insert(subject, held_at_refresh);
        }
    }

    /// Learns one interaction; takes effect at the next `refresh`.
    pub fn learn(&mut self, interaction: &Interaction) {
        self.item_bound = self.item_bound.max(interaction.item.index() + 1);
        if !self.histories.held_kinds().contains(interaction.kind) {
            return;
        }
        if !self.histories.holds(interaction.subject, interaction.item) {
            self.note_change(interaction.subject);
        }
        self.histories.learn(interaction);
    }

    /// Unlearns one previously learned interaction; takes effect at the next `refresh`.
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        let held = self.histories.held(interaction.subject);
        let becomes_unheld = self.histories.held_kinds().contains(interaction.kind)
            && held
                .binary_search_by_key(&interaction.item, |held_item| held_item.item)
                .is_ok_and(|position| held[position].event_times == [interaction.at]);
        if becomes_unheld {
            self.note_change(interaction.subject);
            self.removal_pending = true;
        }
        self.histories.unlearn(interaction)?;
        Ok(())
    }

    /// Removes everything learned from `subject` (takes effect at the next `refresh`).
    pub fn forget_subject(&mut self, subject: SubjectId) -> Vec<HeldItem> {
        self.note_change(subject);
        self.removal_pending = true;
        self.histories.take_subject(subject)
    }

    /// Applies pending changes to the Gram inverse: rank-1 downdates and updates, or a new
    /// factorisation when there are so many that it is cheaper, or when drift is too large.
    pub fn refresh(&mut self) -> Result<RefreshReport> {
        let outcome = self.try_refresh();
        if outcome.is_ok() {
            self.removal_pending = false;
        } else {
            // The inverse may be half-updated and the pending changes are consumed: the
            // histories still hold the truth, so the next refresh factorises from them, and
            // until then the model reports that it needs one instead of serving a stale P.
            self.factorised_once = false;
            self.pending_changes.clear();
        }
        outcome
    }

    fn try_refresh(&mut self) -> Result<RefreshReport> {
        let mut report = RefreshReport::default();
        if !self.factorised_once {
            self.refactorise()?;
            report.refactorised = true;
            return Ok(report);
        }
        let grew = self.grow_inverse();
        // A factorisation costs about n³/3 flops; one rank-1 update about 2n².
        let updates_worth_a_factorisation = (self.item_bound / 6).max(8);
        let changes = std::mem::take(&mut self.pending_changes);
        if 2 * changes.len() > updates_worth_a_factorisation {
            self.refactorise()?;
            report.refactorised = true;
            return Ok(report);
        }
        for (subject, held_at_refresh) in changes {
            let held_now: Vec<u32> = self
                .histories
                .held(subject)
                .iter()
                .map(|held| held.item.0)
                .collect();
            if held_now == held_at_refresh {
                continue;
            }
            let downdated =
                held_at_refresh.is_empty() || self.rank_one_update(&held_at_refresh, -1.0).is_ok();
            let updated =
                downdated && (held_now.is_empty() || self.rank_one_update(&held_now, 1.0).is_ok());
            if !updated {
                // Rounding made an update ill-conditioned: the exact path is a new factorisation
                // from the histories, which already hold every change.
                self.refactorise()?;
                report.refactorised = true;
                return Ok(report);
            }
            report.rank_one_updates +=
                usize::from(!held_at_refresh.is_empty()) + usize::from(!held_now.is_empty());
        }
        self.updates_since_drift_check += report.rank_one_updates;
        if grew || report.rank_one_updates > 0 {
            self.after_inverse_changed();
        }
        if self.updates_since_drift_check >= self.config.drift_check_every_updates {
            self.updates_since_drift_check = 0;
            let drift = self.measure_drift(4);
            report.measured_drift = Some(drift);
            if drift > self.config.drift_bound {
                self.refactorise()?;
                report.refactorised = true;
            }
        }
        Ok(report)
    }

    /// Refreshes what is derived from `P`: its diagonal, and the pruned weight rows (emptied).
    fn after_inverse_changed(&mut self) {
        let dimension = self.gram_inverse.nrows();
        self.inverse_diagonal.clear();
        self.inverse_diagonal
            .extend((0..dimension).map(|index| self.gram_inverse[(index, index)]));
        self.weight_rows.clear();
        self.weight_rows.resize_with(dimension, OnceLock::new);
    }

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
                if kept.len() == keep && kept.last().is_some_and(|weakest| weight <= weakest.1) {
                    continue;
                }
                let position = kept.partition_point(|existing| existing.1 >= weight);
                kept.insert(position, (target as u32, weight));
                if kept.len() > keep {
                    kept.pop();
                }
            }
            // By item id, so explanations find a weight by binary search.
            kept.sort_unstable_by_key(|(target, _)| *target);
            WeightRow {
                weights: kept.into_boxed_slice(),
            }
        }))
    }

    /// Extends the inverse to items first seen since the last refresh: nobody held them
    /// at that refresh, so their Gram rows were zero and their inverse block is `1/λ`.
    fn grow_inverse(&mut self) -> bool {
        let old_dimension = self.gram_inverse.nrows();
        if self.item_bound > old_dimension {
            let diagonal = 1.0 / self.config.regularisation;
            self.gram_inverse
                .resize_with(self.item_bound, self.item_bound, |row, column| {
                    if row == column && row >= old_dimension {
                        diagonal
                    } else {
                        0.0
                    }
                });
            return true;
        }
        false
    }

    /// `P ← P - s·(Px)(Px)ᵀ / (1 + s·xᵀPx)` for binary `x` over `items`: adds (`s = 1`)
    /// or removes (`s = -1`) one subject row of `X`.
    fn rank_one_update(&mut self, items: &[u32], sign: f64) -> Result<()> {
        let dimension = self.gram_inverse.nrows();
        let mut projected = Col::<f64>::zeros(dimension);
        {
            // `P x` is the sum of the subject's columns: split the rows over two threads
            // when there are many columns to read.
            let inverse = &self.gram_inverse;
            let sum_rows = |first_row: usize, sums: &mut [f64]| {
                for &item in items {
                    let column =
                        &inverse.col_as_slice(item as usize)[first_row..first_row + sums.len()];
                    for (sum, value) in sums.iter_mut().zip(column) {
                        *sum += value;
                    }
                }
            };
            let Some(sums) = projected
                .try_as_col_major_mut()
                .map(|column| column.as_slice_mut())
            else {
                return Err(ModelError::Numerical {
                    detail: "a new column vector is not contiguous".to_string(),
                });
            };
            if items.len() >= PARALLEL_PROJECTION_ITEMS {
                let middle = dimension / 2;
                let (low_sums, high_sums) = sums.split_at_mut(middle);
                std::thread::scope(|scope| {
                    scope.spawn(|| sum_rows(0, low_sums));
                    sum_rows(middle, high_sums);
                });
            } else {
                sum_rows(0, sums);
            }
        }
        let quadratic: f64 = items.iter().map(|&item| projected[item as usize]).sum();
        let denominator = 1.0 + sign * quadratic;
        // Sherman–Morrison divides by this: near zero it amplifies rounding into drift far past
        // the bound, so such an update is refused and `refresh` factorises from the histories.
        if denominator < MIN_UPDATE_DENOMINATOR || !denominator.is_finite() {
            return Err(ModelError::Numerical {
                detail: format!("rank-1 update denominator {denominator} is too close to zero"),
            });
        }
        faer::linalg::matmul::matmul(
            self.gram_inverse.as_mut(),
            Accum::Add,
            projected.as_mat(),
            projected.transpose().as_mat(),
            -sign / denominator,
            Par::rayon(0),
        );
        Ok(())
    }

    /// Largest absolute entry of `(G + λI)P - I` over `n_columns` sampled columns.
    pub fn measure_drift(&self, n_columns: usize) -> f64 {
        let dimension = self.gram_inverse.nrows();
        if dimension == 0 {
            return 0.0;
        }
        let mut worst = 0.0f64;
        let mut residual = vec![0.0f64; dimension];
        for sample in 0..n_columns {
            // Spread the sampled columns over the catalogue deterministically.
            let column_index = (sample * 7919 + self.histories.n_events()) % dimension;
            let column = self.gram_inverse.col_as_slice(column_index);
            for (value, inverse_value) in residual.iter_mut().zip(column) {
                *value = self.config.regularisation * inverse_value;
            }
            for (_, held) in self.histories.subjects() {
                let dot: f64 = held
                    .iter()
                    .filter(|h| h.item.index() < dimension)
                    .map(|h| column[h.item.index()])
                    .sum();
                for held_item in held {
                    if let Some(value) = residual.get_mut(held_item.item.index()) {
                        *value += dot;
                    }
                }
            }
            residual[column_index] -= 1.0;
            worst = residual
                .iter()
                .fold(worst, |worst, value| worst.max(value.abs()));
        }
        worst
    }

    /// Recomputes `P = (G + λI)⁻¹` from the histories by a Cholesky factorisation.
    pub fn refactorise(&mut self) -> Result<()> {
        check_config(&self.config)?;
        let dimension = self.item_bound;
        let mut regularised_gram = Mat::<f64>::zeros(dimension, dimension);
        let mut held_items: Vec<usize> = Vec::new();
        for (_, held) in self.histories.subjects() {
            held_items.clear();
            held_items.extend(held.iter().map(|held_item| held_item.item.index()));
            for &column in &held_items {
                let column_values = regularised_gram.col_as_slice_mut(column);
                for &row in &held_items {
                    column_values[row] += 1.0;
                }
            }
        }
        for index in 0..dimension {
            regularised_gram[(index, index)] += self.config.regularisation;
        }
        let factor = regularised_gram
            .as_ref()
            .llt(Side::Lower)
            .map_err(|error| ModelError::Numerical {
                detail: format!(
                    "Cholesky factorisation of the regularised Gram matrix failed: {error:?}"
                ),
            })?;
        // The factor holds its own copy; freeing the Gram first lowers the peak by n² floats.
        drop(regularised_gram);
        self.gram_inverse = Mat::zeros(0, 0);
        self.gram_inverse = factor.inverse();
        self.after_inverse_changed();
        self.pending_changes.clear();
        self.updates_since_drift_check = 0;
        self.factorised_once = true;
        self.removal_pending = false;
        Ok(())
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
