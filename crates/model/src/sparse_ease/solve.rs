//! The local regressions of sparse EASE. Item `j`'s column of `B` is EASE's regression of
//! `j` on its `k` strongest co-occurring items `N(j)` only: `B_N,j = (G_NN + λI)⁻¹ G_N,j`,
//! a `k×k` Cholesky solve (with `N(j)` every other item, this is exactly dense EASE's
//! `-P_ij / P_jj`). The columns are then stored by source item, so scoring reads one short
//! row per history item. Each column is a deterministic function of a few Gram entries,
//! which is what makes an incremental refresh equal a rebuild: only the columns whose
//! inputs changed are solved again, and the rows are merged in one fixed order.
//! Never reads anything but the Gram matrix; never keeps a dense n×n array.

use std::sync::Arc;

use crate::error::{ModelError, Result};

use super::gram::{Gram, worker_threads};

/// `B` stored by source item: each row `(target item, weight)`, ascending by target,
/// holding every target whose neighbourhood includes the source (zero weights too, so
/// that a row names every column that read the source's Gram entries).
#[derive(Clone, Debug, Default)]
pub(crate) struct WeightRows {
    rows: Vec<Arc<[(u32, f32)]>>,
}

impl WeightRows {
    /// The row of `source` (empty past the known items).
    pub(crate) fn row(&self, source: u32) -> &[(u32, f32)] {
        self.rows
            .get(source as usize)
            .map(|row| &row[..])
            .unwrap_or(&[])
    }

    /// `B_source,target` (0 when `source` is not in `target`'s neighbourhood).
    pub(crate) fn weight(&self, source: u32, target: u32) -> f32 {
        let row = self.row(source);
        row.binary_search_by_key(&target, |(kept, _)| *kept)
            .map(|position| row[position].1)
            .unwrap_or(0.0)
    }

    /// Number of weights held.
    pub(crate) fn n_weights(&self) -> usize {
        self.rows.iter().map(|row| row.len()).sum()
    }

    /// Bytes held by the rows (their pointers included).
    pub(crate) fn held_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Arc<[(u32, f32)]>>()
            + self
                .rows
                .iter()
                .map(|row| {
                    row.len() * std::mem::size_of::<(u32, f32)>() + 2 * std::mem::size_of::<usize>()
                })
                .sum::<usize>()
    }
}

/// Equal when every row is (items past the shorter one count as empty).
impl PartialEq for WeightRows {
    fn eq(&self, other: &WeightRows) -> bool {
        let length = self.rows.len().max(other.rows.len());
        (0..length as u32).all(|item| self.row(item) == other.row(item))
    }
}

/// One column of `B`: `(source item, weight)`, ascending by source.
type Column = Vec<(u32, f32)>;

/// Reusable buffers of one column solve.
#[derive(Default)]
struct SolveBuffers {
    neighbours: Vec<(u32, u32)>,
    matrix: Vec<f64>,
    solution: Vec<f64>,
    /// Per item id: 1 + its position among the current neighbours (0: not a neighbour).
    position_of_item: Vec<u32>,
}

/// A neighbour's Gram row shorter than this many times the neighbourhood is scanned whole
/// (sequential reads); a longer one is binary-searched for each other neighbour.
const SCAN_ROW_FACTOR: usize = 16;

/// The columns of `targets` (ascending) solved again, the other columns kept from `base`:
/// the new `B` for `gram`. `affected[j]` is true exactly for the targets solved again.
pub(crate) fn solve_and_merge(
    gram: &Gram,
    base: &WeightRows,
    targets: &[u32],
    neighbours_per_item: usize,
    regularisation: f64,
) -> Result<WeightRows> {
    let n_items = gram.n_items();
    let columns = solve_columns(gram, targets, neighbours_per_item, regularisation)?;
    let mut affected = vec![false; n_items];
    for &target in targets {
        if let Some(flag) = affected.get_mut(target as usize) {
            *flag = true;
        }
    }
    // Each source's new entries, ascending by target because the columns come ascending.
    let mut additions: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_items];
    for (&target, column) in targets.iter().zip(&columns) {
        for &(source, weight) in column {
            additions[source as usize].push((target, weight));
        }
    }
    let is_affected = |target: u32| affected.get(target as usize).copied().unwrap_or(false);
    let rows = additions
        .into_iter()
        .enumerate()
        .map(|(source, added)| {
            let old = base.row(source as u32);
            let keeps_all = old.iter().all(|&(target, _)| !is_affected(target));
            if added.is_empty() && keeps_all {
                return match base.rows.get(source) {
                    Some(row) => Arc::clone(row),
                    None => Arc::from(Vec::new()),
                };
            }
            let mut merged: Vec<(u32, f32)> = Vec::with_capacity(old.len() + added.len());
            let mut added = added.into_iter().peekable();
            for &(target, weight) in old.iter().filter(|(target, _)| !is_affected(*target)) {
                while let Some(&next) = added.peek() {
                    if next.0 >= target {
                        break;
                    }
                    merged.push(next);
                    added.next();
                }
                merged.push((target, weight));
            }
            merged.extend(added);
            Arc::from(merged)
        })
        .collect();
    Ok(WeightRows { rows })
}

/// Solves the columns of `targets`, split over a few threads; in the order of `targets`.
fn solve_columns(
    gram: &Gram,
    targets: &[u32],
    neighbours_per_item: usize,
    regularisation: f64,
) -> Result<Vec<Column>> {
    let n_threads = worker_threads(targets.len());
    let chunk = targets.len().div_ceil(n_threads).max(1);
    let parts: Vec<Result<Vec<Column>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = targets
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut buffers = SolveBuffers::default();
                    part.iter()
                        .map(|&target| {
                            solve_column(
                                gram,
                                target,
                                neighbours_per_item,
                                regularisation,
                                &mut buffers,
                            )
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut columns = Vec::with_capacity(targets.len());
    for part in parts {
        columns.extend(part?);
    }
    Ok(columns)
}

/// Column `target` of `B`: `(source, weight)` for each of its neighbours, ascending.
fn solve_column(
    gram: &Gram,
    target: u32,
    neighbours_per_item: usize,
    regularisation: f64,
    buffers: &mut SolveBuffers,
) -> Result<Column> {
    let SolveBuffers {
        neighbours,
        matrix,
        solution,
        position_of_item,
    } = buffers;
    // The neighbourhood: the strongest co-occurrence counts, ties to the lower item id.
    neighbours.clear();
    neighbours.extend_from_slice(gram.row(target));
    if neighbours.len() > neighbours_per_item {
        neighbours.select_nth_unstable_by(neighbours_per_item - 1, |left, right| {
            right.1.cmp(&left.1).then(left.0.cmp(&right.0))
        });
        neighbours.truncate(neighbours_per_item);
        neighbours.sort_unstable_by_key(|(item, _)| *item);
    }
    let size = neighbours.len();
    if size == 0 {
        return Ok(Vec::new());
    }
    fill_block(
        gram,
        neighbours,
        regularisation,
        matrix,
        position_of_item,
        SCAN_ROW_FACTOR,
    );
    solution.clear();
    solution.extend(neighbours.iter().map(|&(_, count)| count as f64));
    cholesky_solve(matrix, size, solution)?;
    Ok(neighbours
        .iter()
        .zip(solution.iter())
        .map(|(&(source, _), &weight)| (source, weight as f32))
        .collect())
}

/// Writes `G_NN + λI` (row-major, `size×size`) into `matrix`, each row from that
/// neighbour's own Gram row: scanned whole when shorter than `scan_row_factor` times the
/// neighbourhood, else binary-searched. The counts are integers, so how they are read
/// changes nothing.
fn fill_block(
    gram: &Gram,
    neighbours: &[(u32, u32)],
    regularisation: f64,
    matrix: &mut Vec<f64>,
    position_of_item: &mut Vec<u32>,
    scan_row_factor: usize,
) {
    let size = neighbours.len();
    matrix.clear();
    matrix.resize(size * size, 0.0);
    if position_of_item.len() < gram.n_items() {
        position_of_item.resize(gram.n_items(), 0);
    }
    for (position, &(item, _)) in neighbours.iter().enumerate() {
        position_of_item[item as usize] = position as u32 + 1;
    }
    for (first, &(first_item, _)) in neighbours.iter().enumerate() {
        let values = &mut matrix[first * size..(first + 1) * size];
        values[first] = gram.diagonal(first_item) as f64 + regularisation;
        let row = gram.row(first_item);
        if row.len() <= scan_row_factor.saturating_mul(size) {
            for &(other, count) in row {
                if let Some(&position) = position_of_item.get(other as usize)
                    && position > 0
                {
                    values[position as usize - 1] = count as f64;
                }
            }
        } else {
            let mut cursor = 0;
            for (second, &(second_item, _)) in neighbours.iter().enumerate() {
                if second == first {
                    continue;
                }
                cursor += row[cursor..].partition_point(|(other, _)| *other < second_item);
                if let Some(&(other, count)) = row.get(cursor)
                    && other == second_item
                {
                    values[second] = count as f64;
                }
            }
        }
    }
    for &(item, _) in neighbours.iter() {
        position_of_item[item as usize] = 0;
    }
}

/// Solves `A x = b` in place for a symmetric positive definite `A` (`size×size`,
/// row-major; overwritten by its Cholesky factor in the lower triangle); `b` becomes `x`.
fn cholesky_solve(matrix: &mut [f64], size: usize, rhs: &mut [f64]) -> Result<()> {
    for column in 0..size {
        // The pivot row is finished up to the diagonal; the rows below are updated with it.
        let (head, tail) = matrix.split_at_mut((column + 1) * size);
        let pivot_row = &mut head[column * size..];
        let pivot_square = dot(&pivot_row[..column], &pivot_row[..column]);
        let pivot = pivot_row[column] - pivot_square;
        if !(pivot > 0.0 && pivot.is_finite()) {
            return Err(ModelError::Numerical {
                detail: format!(
                    "a local regression's Gram block is not positive definite (pivot {pivot})"
                ),
            });
        }
        let pivot = pivot.sqrt();
        pivot_row[column] = pivot;
        let pivot_prefix = &pivot_row[..column];
        for values in tail.chunks_exact_mut(size) {
            values[column] = (values[column] - dot(&values[..column], pivot_prefix)) / pivot;
        }
    }
    for row in 0..size {
        let values = &matrix[row * size..row * size + row];
        let dot: f64 = values
            .iter()
            .zip(&rhs[..row])
            .map(|(left, right)| left * right)
            .sum();
        rhs[row] = (rhs[row] - dot) / matrix[row * size + row];
    }
    for row in (0..size).rev() {
        let dot: f64 = (row + 1..size)
            .map(|later| matrix[later * size + row] * rhs[later])
            .sum();
        rhs[row] = (rhs[row] - dot) / matrix[row * size + row];
    }
    Ok(())
}

/// `Σ left_i right_i` in four interleaved sums (a fixed order, so the same inputs always
/// give the same bits, and the compiler can keep the lanes in vector registers).
fn dot(left: &[f64], right: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let mut left_chunks = left.chunks_exact(4);
    let mut right_chunks = right.chunks_exact(4);
    for (left_chunk, right_chunk) in (&mut left_chunks).zip(&mut right_chunks) {
        for lane in 0..4 {
            lanes[lane] += left_chunk[lane] * right_chunk[lane];
        }
    }
    let tail: f64 = left_chunks
        .remainder()
        .iter()
        .zip(right_chunks.remainder())
        .map(|(left, right)| left * right)
        .sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanning_and_searching_the_neighbours_rows_fill_the_same_block() {
        let contributions: Vec<Vec<u32>> = (0..30u32)
            .map(|subject| {
                (0..40)
                    .filter(|item| (item * 7 + subject) % 3 != 0)
                    .collect()
            })
            .collect();
        let gram = Gram::build(&contributions, 40);
        let neighbours: Vec<(u32, u32)> =
            [1u32, 5, 8, 13, 39].iter().map(|&item| (item, 0)).collect();
        let mut positions = Vec::new();
        let (mut scanned, mut searched) = (Vec::new(), Vec::new());
        fill_block(
            &gram,
            &neighbours,
            2.0,
            &mut scanned,
            &mut positions,
            usize::MAX,
        );
        fill_block(&gram, &neighbours, 2.0, &mut searched, &mut positions, 0);
        assert_eq!(scanned, searched);
        assert!(positions.iter().all(|&position| position == 0));
        assert_eq!(
            scanned[1],
            f64::from(gram.row(1).iter().find(|(other, _)| *other == 5).unwrap().1)
        );
        assert_eq!(scanned[0], f64::from(gram.diagonal(1)) + 2.0);
    }

    #[test]
    fn cholesky_solve_solves_a_small_system() {
        // A = [[4, 2], [2, 3]], b = [2, 1]: x = [0.5, 0].
        let mut matrix = vec![4.0, 2.0, 2.0, 3.0];
        let mut rhs = vec![2.0, 1.0];
        cholesky_solve(&mut matrix, 2, &mut rhs).unwrap();
        assert!((rhs[0] - 0.5).abs() < 1e-12 && rhs[1].abs() < 1e-12);
        let mut singular = vec![1.0, 1.0, 1.0, 1.0];
        assert!(cholesky_solve(&mut singular, 2, &mut [1.0, 1.0]).is_err());
    }

    #[test]
    fn a_partial_solve_merged_into_the_old_rows_equals_a_full_solve() {
        let contributions = vec![vec![0, 1, 2], vec![1, 2, 3], vec![0, 3], vec![2, 4]];
        let gram = Gram::build(&contributions, 5);
        let all: Vec<u32> = (0..5).collect();
        let full = solve_and_merge(&gram, &WeightRows::default(), &all, 2, 1.0).unwrap();
        // Re-solving some columns over the full solution changes nothing.
        let partial = solve_and_merge(&gram, &full, &[1, 4], 2, 1.0).unwrap();
        assert_eq!(partial, full);
        assert!(full.n_weights() > 0 && full.n_weights() <= 2 * 5);
    }
}
