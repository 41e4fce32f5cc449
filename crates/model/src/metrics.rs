//! Offline evaluation metrics with binary relevance: NDCG@k, Recall@k, coverage@k.
//! Pure functions of a ranked list and a set of relevant items.

use std::collections::HashSet;

use crate::ids::ItemId;

/// NDCG@k with binary gain; the ideal DCG has `min(k, |relevant|)` hits at the top.
pub fn ndcg_at(k: usize, ranked: &[ItemId], relevant: &HashSet<ItemId>) -> f64 {
    if relevant.is_empty() || k == 0 {
        return 0.0;
    }
    let discount = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    // An item repeated in the list is a hit once, at its first rank: the metric stays ≤ 1.
    let mut seen = HashSet::new();
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, item)| relevant.contains(item) && seen.insert(**item))
        .map(|(rank, _)| discount(rank))
        .sum();
    let ideal: f64 = (0..k.min(relevant.len())).map(discount).sum();
    dcg / ideal
}

/// Recall@k: relevant items in the top `k`, divided by the number of relevant items.
pub fn recall_at(k: usize, ranked: &[ItemId], relevant: &HashSet<ItemId>) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let mut seen = HashSet::new();
    let hits = ranked
        .iter()
        .take(k)
        .filter(|item| relevant.contains(item) && seen.insert(**item))
        .count();
    hits as f64 / relevant.len() as f64
}

/// Coverage@k: distinct items in anyone's top `k`, divided by the catalogue size.
pub fn coverage_at<'a>(
    k: usize,
    ranked_lists: impl IntoIterator<Item = &'a [ItemId]>,
    catalogue_size: usize,
) -> f64 {
    if catalogue_size == 0 {
        return 0.0;
    }
    let distinct: HashSet<ItemId> = ranked_lists
        .into_iter()
        .flat_map(|ranked| ranked.iter().take(k).copied())
        .collect();
    distinct.len() as f64 / catalogue_size as f64
}
