//! The sparse Gram matrix `G = XᵀX` of the bounded contributions: for each item its
//! co-occurrence row `(other item, subjects contributing both)`, ascending, no zeros, no
//! self entry, and its diagonal (subjects contributing it). Rows are shared copy-on-write,
//! so a refresh plan takes a snapshot by cloning pointers and the model goes on changing
//! only the rows it touches. Never holds a dense n×n array.

use std::sync::Arc;

use crate::item_item::rows::{add_sorted, difference, subtract_sorted};

/// `G` as sparse rows plus its diagonal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gram {
    rows: Vec<Arc<Vec<(u32, u32)>>>,
    diagonal: Vec<u32>,
}

impl Gram {
    /// The Gram matrix of `contributions` (each ascending item ids below `n_items`), built
    /// source row by source row from an inverted index: work Σ |row|², as many increments
    /// as the counts hold, and the same rows as learning the contributions one by one.
    pub(crate) fn build(contributions: &[Vec<u32>], n_items: usize) -> Gram {
        let mut holders_of_item: Vec<Vec<u32>> = vec![Vec::new(); n_items];
        let mut diagonal = vec![0u32; n_items];
        for (index, items) in contributions.iter().enumerate() {
            for &item in items {
                holders_of_item[item as usize].push(index as u32);
                diagonal[item as usize] += 1;
            }
        }
        let n_threads = worker_threads(n_items);
        let chunk = n_items.div_ceil(n_threads).max(1);
        let holders_of_item = &holders_of_item;
        let rows: Vec<Arc<Vec<(u32, u32)>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..n_items)
                .step_by(chunk)
                .map(|start| {
                    let end = (start + chunk).min(n_items);
                    scope.spawn(move || {
                        let mut counter = vec![0u32; n_items];
                        let mut touched: Vec<u32> = Vec::new();
                        (start..end)
                            .map(|source| {
                                for &holder in &holders_of_item[source] {
                                    for &target in &contributions[holder as usize] {
                                        if target as usize != source {
                                            if counter[target as usize] == 0 {
                                                touched.push(target);
                                            }
                                            counter[target as usize] += 1;
                                        }
                                    }
                                }
                                touched.sort_unstable();
                                let row: Vec<(u32, u32)> = touched
                                    .iter()
                                    .map(|&target| {
                                        let count = counter[target as usize];
                                        counter[target as usize] = 0;
                                        (target, count)
                                    })
                                    .collect();
                                touched.clear();
                                Arc::new(row)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        Gram { rows, diagonal }
    }

    /// One past the largest item id with a row.
    pub(crate) fn n_items(&self) -> usize {
        self.rows.len()
    }

    /// Gives every item below `n_items` a row (empty for new items).
    pub(crate) fn ensure_items(&mut self, n_items: usize) {
        if n_items > self.rows.len() {
            self.rows.resize_with(n_items, Default::default);
            self.diagonal.resize(n_items, 0);
        }
    }

    /// Item `item`'s co-occurrence row (empty past the known items).
    pub(crate) fn row(&self, item: u32) -> &[(u32, u32)] {
        self.rows
            .get(item as usize)
            .map(|row| row.as_slice())
            .unwrap_or(&[])
    }

    /// `G_ii`: how many subjects contribute `item`.
    pub(crate) fn diagonal(&self, item: u32) -> u32 {
        self.diagonal.get(item as usize).copied().unwrap_or(0)
    }

    /// Replaces one subject's contribution `before` by `after` (both ascending, items
    /// already known): every row and diagonal entry that changes is updated, and each item
    /// whose row or diagonal entry changed is passed to `changed` (once, ascending).
    pub(crate) fn change_contribution(
        &mut self,
        before: &[u32],
        after: &[u32],
        mut changed: impl FnMut(u32),
    ) {
        if before == after {
            return;
        }
        let left = difference(before, after);
        let joined = difference(after, before);
        let stayed = difference(before, &left);
        let mut merged = Vec::new();
        for &item in &left {
            self.diagonal[item as usize] -= 1;
            subtract_sorted(Arc::make_mut(&mut self.rows[item as usize]), before, item);
        }
        for &item in &joined {
            self.diagonal[item as usize] += 1;
            add_sorted(
                Arc::make_mut(&mut self.rows[item as usize]),
                after,
                item,
                &mut merged,
            );
        }
        for &item in &stayed {
            let row = Arc::make_mut(&mut self.rows[item as usize]);
            if !left.is_empty() {
                subtract_sorted(row, &left, item);
            }
            if !joined.is_empty() {
                add_sorted(row, &joined, item, &mut merged);
            }
        }
        // Every item of `before` or `after` changed: left and joined ones on the diagonal,
        // the ones that stayed in their pairs with those.
        let mut all: Vec<u32> = before.iter().chain(after).copied().collect();
        all.sort_unstable();
        all.dedup();
        for item in all {
            changed(item);
        }
    }

    /// Bytes held by the rows and the diagonal (capacity, not length; pointers included).
    pub(crate) fn held_bytes(&self) -> usize {
        let pointers = self.rows.capacity() * std::mem::size_of::<Arc<Vec<(u32, u32)>>>();
        let rows: usize = self
            .rows
            .iter()
            .map(|row| {
                row.capacity() * std::mem::size_of::<(u32, u32)>()
                    + std::mem::size_of::<Vec<(u32, u32)>>()
                    + 2 * std::mem::size_of::<usize>()
            })
            .sum();
        pointers + rows + self.diagonal.capacity() * std::mem::size_of::<u32>()
    }
}

/// Equal when every row and diagonal entry is (items past the shorter one count as empty).
impl PartialEq for Gram {
    fn eq(&self, other: &Gram) -> bool {
        let length = self.n_items().max(other.n_items());
        (0..length as u32).all(|item| {
            self.row(item) == other.row(item) && self.diagonal(item) == other.diagonal(item)
        })
    }
}

/// Threads for work over `n_items` independent items: one for small jobs, else up to 4.
pub(crate) fn worker_threads(n_items: usize) -> usize {
    if n_items < 2_048 {
        return 1;
    }
    std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_equals_learning_the_contributions_one_by_one_and_reports_what_changed() {
        let contributions = vec![vec![0, 2, 3], vec![2, 3], vec![1]];
        let built = Gram::build(&contributions, 4);
        assert_eq!(built.row(2), &[(0, 1), (3, 2)]);
        assert_eq!(built.diagonal(3), 2);
        let mut learned = Gram::default();
        learned.ensure_items(4);
        let mut changed = Vec::new();
        for items in &contributions {
            learned.change_contribution(&[], items, |item| changed.push(item));
        }
        assert_eq!(learned, built);
        assert_eq!(changed, vec![0, 2, 3, 2, 3, 1]);
        // Sliding a window: 0 leaves, 1 joins; 2 and 3 stay but their pairs change.
        let snapshot = learned.clone();
        learned.change_contribution(&[0, 2, 3], &[1, 2, 3], |_| {});
        assert_eq!(
            learned,
            Gram::build(&[vec![1, 2, 3], vec![2, 3], vec![1]], 4)
        );
        // The snapshot kept its rows: copy-on-write.
        assert_eq!(snapshot, built);
    }
}
