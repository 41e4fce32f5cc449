//! Metric functions against hand-computed cases.

use std::collections::HashSet;

use discreet_model::ItemId;
use discreet_model::metrics::{coverage_at, ndcg_at, recall_at};

fn items(ids: &[u32]) -> Vec<ItemId> {
    ids.iter().map(|&id| ItemId(id)).collect()
}

fn set(ids: &[u32]) -> HashSet<ItemId> {
    ids.iter().map(|&id| ItemId(id)).collect()
}

#[test]
fn ndcg_of_hits_at_ranks_one_and_three_with_two_relevant() {
    // DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3) = 1.6309297535714575.
    let value = ndcg_at(10, &items(&[7, 1, 9, 2]), &set(&[7, 9]));
    assert!(
        (value - 1.5 / 1.630_929_753_571_457_5).abs() < 1e-12,
        "{value}"
    );
}

#[test]
fn ndcg_ideal_is_capped_at_k_relevant_items() {
    // 12 relevant, k = 10, one hit at rank 1: DCG = 1; ideal = sum over ranks 1..=10.
    let ideal: f64 = (0..10).map(|rank| 1.0 / ((rank + 2) as f64).log2()).sum();
    let relevant = set(&(100..112).collect::<Vec<u32>>());
    let value = ndcg_at(10, &items(&[100, 1, 2]), &relevant);
    assert!((value - 1.0 / ideal).abs() < 1e-12);
    assert_eq!(ndcg_at(10, &items(&[1, 2]), &relevant), 0.0);
    assert_eq!(ndcg_at(10, &items(&[1]), &set(&[])), 0.0);
}

#[test]
fn ndcg_ignores_hits_beyond_k() {
    let ranked = items(&(0..11).collect::<Vec<u32>>());
    assert_eq!(ndcg_at(10, &ranked, &set(&[10])), 0.0);
}

#[test]
fn recall_counts_hits_in_the_top_k_over_relevant_items() {
    assert_eq!(recall_at(20, &items(&[1, 2, 3]), &set(&[2, 3, 4, 5])), 0.5);
    assert_eq!(recall_at(2, &items(&[1, 2, 3]), &set(&[3])), 0.0);
}

#[test]
fn coverage_counts_distinct_items_in_top_k_over_the_catalogue() {
    let first = items(&[1, 2, 3]);
    let second = items(&[3, 4, 9]);
    // Top 2 of each: {1, 2, 3, 4} of a catalogue of 8.
    assert_eq!(
        coverage_at(2, [first.as_slice(), second.as_slice()], 8),
        0.5
    );
    assert_eq!(coverage_at(2, [first.as_slice()], 0), 0.0);
}

/// Regression: an item repeated in a ranked list counted as several hits, so NDCG and
/// Recall could exceed 1.
#[test]
fn a_repeated_item_is_one_hit() {
    let relevant: std::collections::HashSet<discreet_model::ItemId> =
        [discreet_model::ItemId(1)].into_iter().collect();
    let ranked = [
        discreet_model::ItemId(1),
        discreet_model::ItemId(1),
        discreet_model::ItemId(1),
    ];
    assert_eq!(
        discreet_model::metrics::ndcg_at(10, &ranked, &relevant),
        1.0
    );
    assert_eq!(
        discreet_model::metrics::recall_at(10, &ranked, &relevant),
        1.0
    );
}
