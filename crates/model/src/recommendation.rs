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
pub fn strongest_contributions(contributions: impl Iterator<Item = Contribution>, limit: usize) -> Vec<Contribution> {
    let mut kept: Vec<Contribution> = contributions.filter(|contribution| contribution.weight > 0.0).collect();
    kept.sort_by(|left, right| right.weight.total_cmp(&left.weight).then(left.item.cmp(&right.item)));
    kept.truncate(limit);
    kept
}
