//! Which items an answer may hold, told by the caller: a predicate over item ids and, when
//! asked, a cap on how many answered items may share a group. The models know nothing of
//! what the predicate or the groups mean (a shop's catalogue, stock, business rules); they
//! only apply them while taking the top n, so a filter that leaves n items answers n.

use crate::ids::ItemId;
use crate::ranking::{ScoredItem, top_n};

/// The caller's say on which items an answer may hold.
pub trait ItemSelection {
    /// True when `item` may be answered.
    fn allows(&self, item: ItemId) -> bool;
    /// The groups `item` counts against for `per_group_limit` (none by default).
    fn groups(&self, _item: ItemId) -> &[u32] {
        &[]
    }
    /// At most this many answered items per group; `None`: no cap.
    fn per_group_limit(&self) -> Option<usize> {
        None
    }
}

/// Every item may be answered.
pub struct AnyItem;

impl ItemSelection for AnyItem {
    fn allows(&self, _item: ItemId) -> bool {
        true
    }
}

/// The best `n` items of `scores` (indexed by item id) that `selection` allows and
/// `exclude` does not, best first, keeping at most the selection's per-group limit of
/// each group (an item whose group is full is skipped, and the next best taken).
pub fn select_top_n(
    scores: &[f32],
    n: usize,
    mut exclude: impl FnMut(usize) -> bool,
    selection: &dyn ItemSelection,
) -> Vec<ScoredItem> {
    let mut skip = |index: usize| exclude(index) || !selection.allows(ItemId(index as u32));
    let Some(limit) = selection.per_group_limit() else {
        return top_n(scores, n, skip);
    };
    // With a cap, the best n allowed items may not be the answer. Most often a few more
    // candidates than n are enough; when they are not, every allowed item is ranked once
    // (n log n), never by widening `top_n`, whose sorted insertion would cost a hostile
    // request (a filter whose items fill few groups) the square of the catalogue.
    let candidates_wanted = n.saturating_mul(2).max(16);
    let candidates = top_n(scores, candidates_wanted, &mut skip);
    let exhausted = candidates.len() < candidates_wanted;
    let chosen = take_within_limit(candidates, n, limit, selection);
    if chosen.len() == n || exhausted {
        return chosen;
    }
    let mut ranked: Vec<ScoredItem> = scores
        .iter()
        .enumerate()
        .filter(|&(index, score)| !score.is_nan() && !skip(index))
        .map(|(index, &score)| ScoredItem {
            item: ItemId(index as u32),
            score,
        })
        .collect();
    // Best first, equal scores by ascending id: the order `top_n` gives.
    ranked.sort_by(|first, second| {
        second
            .score
            .partial_cmp(&first.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(first.item.0.cmp(&second.item.0))
    });
    take_within_limit(ranked, n, limit, selection)
}

/// The first `n` of `ranked` (best first) whose groups are not yet full.
pub fn take_within_limit(
    ranked: impl IntoIterator<Item = ScoredItem>,
    n: usize,
    limit: usize,
    selection: &dyn ItemSelection,
) -> Vec<ScoredItem> {
    let mut chosen = Vec::with_capacity(n.min(1_024));
    let mut group_counts: Vec<(u32, usize)> = Vec::new();
    for scored in ranked {
        if chosen.len() == n {
            break;
        }
        let groups = selection.groups(scored.item);
        let full = groups.iter().any(|group| {
            group_counts
                .iter()
                .any(|(counted, count)| counted == group && *count >= limit)
        });
        if full {
            continue;
        }
        for group in groups {
            match group_counts
                .iter_mut()
                .find(|(counted, _)| counted == group)
            {
                Some((_, count)) => *count += 1,
                None => group_counts.push((*group, 1)),
            }
        }
        chosen.push(scored);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    struct EvenInGroups {
        limit: Option<usize>,
        groups: Vec<[u32; 1]>,
    }

    impl ItemSelection for EvenInGroups {
        fn allows(&self, item: ItemId) -> bool {
            item.0.is_multiple_of(2)
        }
        fn groups(&self, item: ItemId) -> &[u32] {
            &self.groups[item.index()]
        }
        fn per_group_limit(&self) -> Option<usize> {
            self.limit
        }
    }

    fn items(chosen: &[ScoredItem]) -> Vec<u32> {
        chosen.iter().map(|scored| scored.item.0).collect()
    }

    #[test]
    fn the_predicate_applies_before_the_cut() {
        let scores: Vec<f32> = (0..100).map(|index| index as f32).collect();
        let selection = EvenInGroups {
            limit: None,
            groups: vec![[0]; 100],
        };
        let chosen = select_top_n(&scores, 5, |index| index == 98, &selection);
        assert_eq!(items(&chosen), [96, 94, 92, 90, 88]);
        assert_eq!(
            items(&select_top_n(&scores, 5, |_| false, &AnyItem)),
            [99, 98, 97, 96, 95]
        );
    }

    #[test]
    fn a_full_group_is_skipped_and_the_next_best_taken() {
        let scores: Vec<f32> = (0..100).map(|index| index as f32).collect();
        // Items above 50 are all in group 1; the others each in a group of their own.
        let groups = (0..100)
            .map(|index| [if index > 50 { 1 } else { index + 2 }])
            .collect();
        let selection = EvenInGroups {
            limit: Some(2),
            groups,
        };
        let chosen = select_top_n(&scores, 5, |_| false, &selection);
        assert_eq!(items(&chosen), [98, 96, 50, 48, 46]);
    }

    #[test]
    fn fewer_qualifying_than_n_answers_fewer() {
        let scores = vec![1.0; 10];
        let selection = EvenInGroups {
            limit: Some(1),
            groups: vec![[7]; 10],
        };
        assert_eq!(items(&select_top_n(&scores, 5, |_| false, &selection)), [0]);
    }

    /// Guards the one-pass ranking taken when the first candidates cannot fill the cap (a
    /// filter whose items crowd into one group): the answer is the definition's, the best
    /// allowed items in order with at most `limit` per group, equal scores by id.
    #[test]
    fn a_crowded_group_is_answered_from_one_ranking_of_every_allowed_item() {
        let length = 5_000;
        // Repeating scores, so ties are broken by id; all but every 500th item in group 1.
        let scores: Vec<f32> = (0..length).map(|index| (index % 97) as f32).collect();
        let groups = (0..length as u32)
            .map(|index| [if index % 500 == 0 { index + 2 } else { 1 }])
            .collect();
        let selection = EvenInGroups {
            limit: Some(2),
            groups,
        };
        let chosen = select_top_n(&scores, 10, |_| false, &selection);
        let mut ranked: Vec<u32> = (0..length as u32).filter(|index| index % 2 == 0).collect();
        ranked.sort_by(|first, second| {
            scores[*second as usize]
                .total_cmp(&scores[*first as usize])
                .then(first.cmp(second))
        });
        let mut in_group_one = 0;
        let expected: Vec<u32> = ranked
            .into_iter()
            .filter(|&index| {
                if index % 500 != 0 {
                    in_group_one += 1;
                    in_group_one <= 2
                } else {
                    true
                }
            })
            .take(10)
            .collect();
        assert_eq!(items(&chosen), expected);
        assert_eq!(chosen.len(), 10);
    }
}
