//! The Gram inverse `P = (G + λI)⁻¹` and what is derived from it, as a `Solution`: the
//! Cholesky factorisation from the subjects' rows, Sherman–Morrison rank-1 updates, new
//! slots for new items, and the drift measurement that decides when to refactorise. Works
//! on a solution and the rows handed to it, never on the model's histories, so it can run
//! without a lock on the model. Never reads a score.

use std::sync::OnceLock;

use faer::linalg::solvers::DenseSolveCore;
use faer::{Accum, Col, Mat, Par, Side};

use crate::error::{ModelError, Result};
use crate::ids::ItemId;

use super::{EaseModel, NO_SLOT, Solution, check_config};

/// A rank-1 update whose denominator is below this is ill-conditioned (see `rank_one_update`).
const MIN_UPDATE_DENOMINATOR: f64 = 1e-3;

/// Subjects holding at least this many items have `P x` computed on two threads.
const PARALLEL_PROJECTION_ITEMS: usize = 128;

impl Default for Solution {
    fn default() -> Solution {
        Solution {
            gram_inverse: Mat::zeros(0, 0),
            item_of_slot: Vec::new(),
            slot_of_item: Vec::new(),
            inverse_diagonal: Vec::new(),
            weight_rows: Vec::new(),
            dense_weights: Vec::new(),
        }
    }
}

impl Solution {
    /// The slot of `item` in `P`, if it has one.
    pub(super) fn slot(&self, item: ItemId) -> Option<usize> {
        match self.slot_of_item.get(item.index()) {
            Some(&slot) if slot != NO_SLOT => Some(slot as usize),
            _ => None,
        }
    }

    /// A copy of `P` and its slots, to be changed beside this one (no pruned rows).
    pub(super) fn copy_of_inverse(&self) -> Solution {
        let mut copy = Solution {
            gram_inverse: self.gram_inverse.clone(),
            item_of_slot: self.item_of_slot.clone(),
            slot_of_item: self.slot_of_item.clone(),
            inverse_diagonal: Vec::new(),
            weight_rows: Vec::new(),
            dense_weights: Vec::new(),
        };
        copy.reset_weight_rows();
        copy
    }

    /// Refreshes what is derived from `P`: its diagonal, and the weight rows (emptied).
    pub(super) fn reset_weight_rows(&mut self) {
        let dimension = self.gram_inverse.nrows();
        self.inverse_diagonal.clear();
        self.inverse_diagonal
            .extend((0..dimension).map(|index| self.gram_inverse[(index, index)]));
        self.weight_rows.clear();
        self.weight_rows.resize_with(dimension, OnceLock::new);
        self.dense_weights.clear();
        if dimension <= super::DENSE_WEIGHTS_MAX_DIMENSION {
            self.dense_weights.resize_with(dimension, OnceLock::new);
        }
    }

    /// Gives a slot to each of `items` that has none: nobody's row held them when this
    /// solution was made, so their Gram rows were zero and their inverse block is `1/λ`.
    pub(super) fn grow<'a>(&mut self, items: impl Iterator<Item = &'a u32>, regularisation: f64) {
        let old_dimension = self.item_of_slot.len();
        for &item in items {
            if self.slot(ItemId(item)).is_none() {
                if self.slot_of_item.len() <= item as usize {
                    self.slot_of_item.resize(item as usize + 1, NO_SLOT);
                }
                self.slot_of_item[item as usize] = self.item_of_slot.len() as u32;
                self.item_of_slot.push(item);
            }
        }
        let dimension = self.item_of_slot.len();
        if dimension > old_dimension {
            let diagonal = 1.0 / regularisation;
            self.gram_inverse
                .resize_with(dimension, dimension, |row, column| {
                    if row == column && row >= old_dimension {
                        diagonal
                    } else {
                        0.0
                    }
                });
        }
    }

    /// The slots of `items` (each has one: it was in a row when `P` was made, or grown).
    fn slots_of(&self, items: &[u32]) -> Result<Vec<usize>> {
        items
            .iter()
            .map(|&item| {
                self.slot(ItemId(item)).ok_or_else(|| ModelError::Internal {
                    detail: format!("item #{item} has no slot in the Gram inverse"),
                })
            })
            .collect()
    }

    /// `P ← P - s·(Px)(Px)ᵀ / (1 + s·xᵀPx)` for binary `x` over `items`: adds (`s = 1`)
    /// or removes (`s = -1`) one subject row of `X`.
    pub(super) fn rank_one_update(&mut self, items: &[u32], sign: f64) -> Result<()> {
        let slots = self.slots_of(items)?;
        let dimension = self.gram_inverse.nrows();
        let mut projected = Col::<f64>::zeros(dimension);
        {
            // `P x` is the sum of the subject's columns: split the rows over two threads
            // when there are many columns to read.
            let inverse = &self.gram_inverse;
            let sum_rows = |first_row: usize, sums: &mut [f64]| {
                for &slot in &slots {
                    let column = &inverse.col_as_slice(slot)[first_row..first_row + sums.len()];
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
            if slots.len() >= PARALLEL_PROJECTION_ITEMS {
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
        let quadratic: f64 = slots.iter().map(|&slot| projected[slot]).sum();
        let denominator = 1.0 + sign * quadratic;
        // Sherman–Morrison divides by this: near zero it amplifies rounding into drift far past
        // the bound, so such an update is refused and the refresh factorises from the rows.
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

    /// Largest absolute entry of `(G + λI)P - I` over `n_columns` sampled columns, with
    /// `G` made of `rows` (item ids); `spread` varies which columns are sampled.
    pub(super) fn measure_drift(
        &self,
        rows: &[Vec<u32>],
        regularisation: f64,
        n_columns: usize,
        spread: usize,
    ) -> f64 {
        let dimension = self.gram_inverse.nrows();
        if dimension == 0 {
            return 0.0;
        }
        let row_slots: Vec<Vec<usize>> = rows
            .iter()
            .map(|row| {
                row.iter()
                    .filter_map(|&item| self.slot(ItemId(item)))
                    .collect()
            })
            .collect();
        let mut worst = 0.0f64;
        let mut residual = vec![0.0f64; dimension];
        for sample in 0..n_columns {
            // Spread the sampled columns over the slots deterministically.
            let column_index = (sample * 7919 + spread) % dimension;
            let column = self.gram_inverse.col_as_slice(column_index);
            for (value, inverse_value) in residual.iter_mut().zip(column) {
                *value = regularisation * inverse_value;
            }
            for slots in &row_slots {
                let dot: f64 = slots.iter().map(|&slot| column[slot]).sum();
                for &slot in slots {
                    residual[slot] += dot;
                }
            }
            residual[column_index] -= 1.0;
            worst = residual
                .iter()
                .fold(worst, |worst, value| worst.max(value.abs()));
        }
        worst
    }

    /// `P = (G + λI)⁻¹` for `G` made of `rows` (item ids below `item_bound`) by a Cholesky
    /// factorisation, with one slot per item some row holds (ascending by item id).
    pub(super) fn factorise(
        rows: &[Vec<u32>],
        item_bound: usize,
        regularisation: f64,
    ) -> Result<Solution> {
        let mut slot_of_item = vec![NO_SLOT; item_bound];
        for &item in rows.iter().flatten() {
            if let Some(slot) = slot_of_item.get_mut(item as usize) {
                *slot = 0;
            }
        }
        let mut item_of_slot = Vec::new();
        for (item, slot) in slot_of_item.iter_mut().enumerate() {
            if *slot != NO_SLOT {
                *slot = item_of_slot.len() as u32;
                item_of_slot.push(item as u32);
            }
        }
        let dimension = item_of_slot.len();
        let mut regularised_gram = Mat::<f64>::zeros(dimension, dimension);
        let mut row_slots: Vec<usize> = Vec::new();
        for row in rows {
            row_slots.clear();
            row_slots.extend(
                row.iter()
                    .filter_map(|&item| slot_of_item.get(item as usize))
                    .map(|&slot| slot as usize),
            );
            for &column in &row_slots {
                let column_values = regularised_gram.col_as_slice_mut(column);
                for &row in &row_slots {
                    column_values[row] += 1.0;
                }
            }
        }
        for index in 0..dimension {
            regularised_gram[(index, index)] += regularisation;
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
        let mut solution = Solution {
            gram_inverse: factor.inverse(),
            item_of_slot,
            slot_of_item,
            inverse_diagonal: Vec::new(),
            weight_rows: Vec::new(),
            dense_weights: Vec::new(),
        };
        solution.reset_weight_rows();
        Ok(solution)
    }
}

impl EaseModel {
    /// Every subject's row of `X`: the item ids it contributes, ascending.
    pub(super) fn contributed_rows(&self) -> Vec<Vec<u32>> {
        self.histories
            .subjects()
            .map(|(subject, _)| self.histories.contributed_item_ids(subject))
            .collect()
    }

    /// Largest absolute entry of `(G + λI)P - I` over `n_columns` sampled columns.
    pub fn measure_drift(&self, n_columns: usize) -> f64 {
        self.solution.measure_drift(
            &self.contributed_rows(),
            self.config.regularisation,
            n_columns,
            self.histories.n_events(),
        )
    }

    /// Recomputes `P = (G + λI)⁻¹` from the histories now (the model is not shared).
    pub fn refactorise(&mut self) -> Result<()> {
        check_config(&self.config)?;
        // The old solution is freed first when nobody else reads it: a lower peak.
        self.solution = std::sync::Arc::new(Solution::default());
        let solution = match Solution::factorise(
            &self.contributed_rows(),
            self.item_bound,
            self.config.regularisation,
        ) {
            Ok(solution) => solution,
            Err(error) => {
                // The histories still hold the truth: the next refresh factorises again.
                self.factorised_once = false;
                return Err(error);
            }
        };
        self.install(solution, self.removals);
        self.pending_changes.clear();
        Ok(())
    }
}
