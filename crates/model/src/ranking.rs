//! Picking the best `n` of a dense score vector, or the strongest `k` of a stream of
//! weights, with a deterministic tie-break (lower item id first), so identical models
//! always give identical lists.

use crate::ids::ItemId;

/// An item with its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredItem {
    pub item: ItemId,
    pub score: f32,
}

/// The `n` best items of `scores` (indexed by item id), best first, skipping NaN and
/// items for which `exclude` is true.
pub fn top_n(scores: &[f32], n: usize, mut exclude: impl FnMut(usize) -> bool) -> Vec<ScoredItem> {
    // `n` comes from callers (an HTTP query, say): never reserve more than can be returned.
    let n = n.min(scores.len());
    let mut best: Vec<ScoredItem> = Vec::with_capacity(n + 1);
    if n == 0 {
        return best;
    }
    for (index, &score) in scores.iter().enumerate() {
        if score.is_nan() {
            continue;
        }
        if best.len() == n && best.last().is_some_and(|worst| score <= worst.score) {
            continue;
        }
        if exclude(index) {
            continue;
        }
        // Equal scores keep ascending ids because the scan is ascending and ties go after.
        let position = best.partition_point(|kept| kept.score >= score);
        best.insert(
            position,
            ScoredItem {
                item: ItemId(index as u32),
                score,
            },
        );
        if best.len() > n {
            best.pop();
        }
    }
    best
}

/// Offers `entry` to `kept`, a list of at most `keep` `(item, weight)` pairs, strongest
/// first: it goes in unless the list is full and it is no stronger than the weakest. Equal
/// weights keep the order they were offered in, so a scan by ascending id breaks ties by id.
#[inline]
pub(crate) fn keep_strongest(kept: &mut Vec<(u32, f32)>, keep: usize, entry: (u32, f32)) {
    if kept.len() == keep && kept.last().is_some_and(|weakest| entry.1 <= weakest.1) {
        return;
    }
    let position = kept.partition_point(|existing| existing.1 >= entry.1);
    kept.insert(position, entry);
    if kept.len() > keep {
        kept.pop();
    }
}

/// Divides every finite score by the largest absolute finite score (no-op when all zero),
/// so scores of different models can be blended.
pub fn normalise_by_max(scores: &mut [f32]) {
    let largest = scores
        .iter()
        .filter(|score| score.is_finite())
        .fold(0.0f32, |largest, score| largest.max(score.abs()));
    if largest > 0.0 {
        let factor = 1.0 / largest;
        for score in scores.iter_mut() {
            *score *= factor;
        }
    }
}

#[cfg(test)]
mod huge_n_tests {
    use super::*;

    #[test]
    fn a_huge_n_returns_at_most_the_catalogue_without_reserving_it() {
        let scores = [0.5f32, 0.25, 1.0];
        let best = top_n(&scores, usize::MAX, |_| false);
        assert_eq!(
            best.iter().map(|scored| scored.item.0).collect::<Vec<_>>(),
            vec![2, 0, 1]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_orders_by_score_then_id_and_excludes() {
        let scores = [0.5, 2.0, f32::NAN, 2.0, 1.0, 3.0];
        let best = top_n(&scores, 3, |index| index == 5);
        let items: Vec<u32> = best.iter().map(|scored| scored.item.0).collect();
        assert_eq!(items, vec![1, 3, 4]);
        assert!(top_n(&scores, 0, |_| false).is_empty());
        assert_eq!(top_n(&scores, 10, |_| false).len(), 5);
    }

    #[test]
    fn keep_strongest_keeps_the_k_strongest_with_earlier_offers_winning_ties() {
        let mut kept = Vec::new();
        for entry in [(0, 0.5), (1, 2.0), (2, 0.5), (3, 1.0), (4, 2.0), (5, 0.1)] {
            keep_strongest(&mut kept, 3, entry);
        }
        assert_eq!(kept, vec![(1, 2.0), (4, 2.0), (3, 1.0)]);
        let mut none = Vec::new();
        keep_strongest(&mut none, 0, (0, 1.0));
        assert!(none.is_empty());
    }
}
