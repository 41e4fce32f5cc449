//! The Gram inverse `P = (G + λI)⁻¹` and what is derived from it: the Cholesky
//! factorisation from the histories, Sherman–Morrison rank-1 updates, growth to new items,
//! and the drift measurement that decides when to refactorise. Never reads a score.

use std::sync::OnceLock;

use faer::linalg::solvers::DenseSolveCore;
use faer::{Accum, Col, Mat, Par, Side};

use crate::error::{ModelError, Result};

use super::{EaseModel, check_config};

/// A rank-1 update whose denominator is below this is ill-conditioned (see `rank_one_update`).
const MIN_UPDATE_DENOMINATOR: f64 = 1e-3;

/// Subjects holding at least this many items have `P x` computed on two threads.
const PARALLEL_PROJECTION_ITEMS: usize = 128;

impl EaseModel {
    /// Refreshes what is derived from `P`: its diagonal, and the pruned weight rows (emptied).
    pub(super) fn after_inverse_changed(&mut self) {
        let dimension = self.gram_inverse.nrows();
        self.inverse_diagonal.clear();
        self.inverse_diagonal
            .extend((0..dimension).map(|index| self.gram_inverse[(index, index)]));
        self.weight_rows.clear();
        self.weight_rows.resize_with(dimension, OnceLock::new);
    }

    /// Extends the inverse to items first seen since the last refresh: nobody held them
    /// at that refresh, so their Gram rows were zero and their inverse block is `1/λ`.
    pub(super) fn grow_inverse(&mut self) -> bool {
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
    pub(super) fn rank_one_update(&mut self, items: &[u32], sign: f64) -> Result<()> {
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
}
