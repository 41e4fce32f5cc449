//! What a personal recommendation says: the item, its score, and the subject's own items
//! that contributed most ("because you bought …"). Explanations only ever name items from
//! the subject's own history.

use crate::ids::ItemId;

/// One history item's share of a recommendation's score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contribution {
    /// An item from the subject's own history.
    pub item: ItemId,
    /// Its contribution to the score (recency weight × similarity).
    pub weight: f32,
}

/// A recommended item with its explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    pub item: ItemId,
    pub score: f32,
    /// The subject's own items that contributed most, strongest first.
    pub because: Vec<Contribution>,
}

/// The `limit` strongest positive contributions, strongest first (ties by item id).
pub fn strongest_contributions(
    contributions: impl Iterator<Item = Contribution>,
    limit: usize,
) -> Vec<Contribution> {
    let strongest_first = |left: &Contribution, right: &Contribution| {
        right
            .weight
            .total_cmp(&left.weight)
            .then(left.item.cmp(&right.item))
    };
    let mut kept: Vec<Contribution> = contributions
        .filter(|contribution| contribution.weight > 0.0)
        .collect();
    if limit == 0 {
        kept.clear();
    } else if kept.len() > limit {
        // Select, then sort only what is kept: explanations run per recommended item.
        kept.select_nth_unstable_by(limit - 1, strongest_first);
        kept.truncate(limit);
    }
    kept.sort_by(strongest_first);
    kept
}

/// Adds two contribution lists that are each ascending by item (one entry per item).
pub fn sum_ascending(
    first: impl Iterator<Item = Contribution>,
    second: impl Iterator<Item = Contribution>,
) -> impl Iterator<Item = Contribution> {
    let mut first = first.peekable();
    let mut second = second.peekable();
    std::iter::from_fn(
        move || match (first.peek().copied(), second.peek().copied()) {
            (Some(left), Some(right)) if left.item == right.item => {
                first.next();
                second.next();
                Some(Contribution {
                    item: left.item,
                    weight: left.weight + right.weight,
                })
            }
            (Some(left), Some(right)) if left.item < right.item => first.next(),
            (Some(_), Some(_)) => second.next(),
            (Some(_), None) => first.next(),
            (None, _) => second.next(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contribution(item: u32, weight: f32) -> Contribution {
        Contribution {
            item: ItemId(item),
            weight,
        }
    }

    #[test]
    fn strongest_keeps_positive_weights_strongest_first() {
        let kept = strongest_contributions(
            [
                contribution(1, 0.5),
                contribution(2, -1.0),
                contribution(3, 2.0),
                contribution(4, 0.5),
                contribution(5, 1.0),
            ]
            .into_iter(),
            3,
        );
        assert_eq!(
            kept,
            vec![
                contribution(3, 2.0),
                contribution(5, 1.0),
                contribution(1, 0.5)
            ]
        );
        assert!(strongest_contributions([contribution(1, 1.0)].into_iter(), 0).is_empty());
    }

    #[test]
    fn sum_ascending_adds_shared_items_and_keeps_the_rest() {
        let summed: Vec<Contribution> = sum_ascending(
            [contribution(1, 1.0), contribution(4, 2.0)].into_iter(),
            [
                contribution(2, 0.5),
                contribution(4, 0.25),
                contribution(9, 3.0),
            ]
            .into_iter(),
        )
        .collect();
        assert_eq!(
            summed,
            vec![
                contribution(1, 1.0),
                contribution(2, 0.5),
                contribution(4, 2.25),
                contribution(9, 3.0)
            ]
        );
    }
}
