//! The synthetic shop's promises: determinism, shape, learnable signal.

use std::collections::{HashMap, HashSet};

use super::*;

const END: i64 = 1_790_000_000;

fn small() -> ShopShape {
    ShopShape::new(2_000, 2_000, 40_000, END)
}

#[test]
fn the_same_shape_gives_the_same_events_and_another_seed_others() {
    let first: Vec<SyntheticEvent> = small().stream().collect();
    let second: Vec<SyntheticEvent> = small().stream().collect();
    assert_eq!(first, second);
    let other: Vec<SyntheticEvent> = ShopShape { seed: 7, ..small() }.stream().collect();
    assert_ne!(first, other);
}

#[test]
fn the_stream_has_exactly_the_events_asked_for_inside_the_year_and_the_catalogue() {
    let shape = small();
    let mut count = 0u64;
    let mut customers = HashSet::new();
    for event in shape.stream() {
        count += 1;
        assert!(event.at >= shape.start() && event.at <= shape.end);
        assert!(event.item < shape.items && event.customer < shape.customers);
        assert!(event.quantity >= 1);
        customers.insert(event.customer);
    }
    assert_eq!(count, shape.events);
    // Enough events for every customer: every one of them shows up.
    assert_eq!(customers.len(), shape.customers as usize);
    assert_eq!(ShopShape::new(10, 10, 0, END).stream().count(), 0);
    let single = ShopShape::new(1, 1, 17, END);
    assert_eq!(single.heavy_customers(), 0);
    assert_eq!(single.stream().count(), 17);
    assert!(
        single
            .stream()
            .all(|event| event.customer == 0 && event.item == 0)
    );
    let unsized_shop = ShopShape {
        items: 0,
        customers: 0,
        ..single
    };
    assert!(
        unsized_shop
            .stream()
            .all(|event| event.customer == 0 && event.item == 0)
    );
}

#[test]
fn popularity_is_long_tailed_and_baskets_per_customer_heavy_tailed() {
    let shape = ShopShape::new(20_000, 20_000, 400_000, END);
    let mut per_item: HashMap<u32, u64> = HashMap::new();
    let mut per_customer: HashMap<u32, u64> = HashMap::new();
    for event in shape.stream() {
        if event.kind == SyntheticKind::Purchase {
            *per_item.entry(event.item).or_default() += 1;
        }
        *per_customer.entry(event.customer).or_default() += 1;
    }
    let mut counts: Vec<u64> = per_item.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = counts.iter().sum();
    let top_percent: u64 = counts.iter().take(shape.items as usize / 100).sum();
    // The top 1% of items sell far more than 1% of the units.
    assert!(
        top_percent * 100 / total >= 15,
        "top 1% hold {top_percent}/{total}"
    );
    let mut customers: Vec<u64> = per_customer.values().copied().collect();
    customers.sort_unstable();
    let median = customers[customers.len() / 2];
    let p999 = customers[customers.len() * 999 / 1000];
    assert!(p999 >= 20 * median, "median {median}, p99.9 {p999}");
}

#[test]
fn heavy_customers_buy_thousands_of_distinct_items() {
    let shape = ShopShape::new(20_000, 200_000, 400_000, END);
    assert_eq!(shape.heavy_customers(), 2);
    let mut distinct: HashMap<u32, HashSet<u32>> = HashMap::new();
    for event in shape.stream().filter(|event| event.customer < 2) {
        distinct
            .entry(event.customer)
            .or_default()
            .insert(event.item);
    }
    for customer in 0..2 {
        let n_items = distinct.get(&customer).map_or(0, HashSet::len);
        assert!(n_items >= 3_000, "heavy customer {customer}: {n_items}");
    }
}

#[test]
fn a_basket_mostly_stays_in_one_cluster() {
    let shape = small();
    let events: Vec<SyntheticEvent> = shape.stream().collect();
    let (mut same, mut pairs) = (0u64, 0u64);
    for pair in events.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // Consecutive events of one basket: same customer and time within a basket.
        if a.customer == b.customer && b.at - a.at <= 45 && a.customer >= shape.heavy_customers() {
            pairs += 1;
            same += u64::from(shape.cluster_of(a.item) == shape.cluster_of(b.item));
        }
    }
    // By chance, one pair in ten clusters would match.
    assert!(same * 2 > pairs, "{same} of {pairs} pairs share a cluster");
}

#[test]
fn the_splits_train_before_the_cutoff_and_test_after_it() {
    let shape = small();
    let shop = ShopPurchases::collect(&shape);
    let splits = shop.splits();
    assert!(!splits.test.test.is_empty());
    assert!(!splits.validation.test.is_empty());
    assert!(
        splits
            .test
            .train
            .iter()
            .all(|interaction| interaction.at < shape.test_cutoff())
    );
    assert!(
        splits
            .validation
            .train
            .iter()
            .all(|interaction| interaction.at < shape.validation_start())
    );
    assert!(splits.validation.train.len() < splits.test.train.len());
}

#[test]
fn co_occurrence_carries_signal_item_item_learns() {
    use discreet_model::{ItemItemConfig, ItemItemModel, PopularityConfig};

    use crate::quality::{
        all_time_ranking, evaluate_global_ranking, evaluate_item_item, popularity_model,
    };
    let shop = ShopPurchases::collect(&ShopShape::new(5_000, 5_000, 100_000, END));
    let split = shop.splits().test;
    let popularity = popularity_model(&PopularityConfig::default(), &split).unwrap();
    let popular = evaluate_global_ranking(&split, &all_time_ranking(&popularity, &split)).unwrap();
    let item_item = ItemItemModel::build(ItemItemConfig::default(), &split.train);
    let personal = evaluate_item_item(&item_item, &split).unwrap();
    // Tastes make a customer's next items predictable from their past ones.
    assert!(
        personal.ndcg_at_10 > 1.5 * popular.ndcg_at_10,
        "item-item {personal:?}, popularity {popular:?}"
    );
}

#[test]
fn zipf_ranks_stay_in_range_and_favour_the_head() {
    let mut rng = SplitMix::new(1);
    let mut head = 0;
    for _ in 0..10_000 {
        let rank = zipf_rank(&mut rng, 1_000, 1.1);
        assert!(rank < 1_000);
        head += u32::from(rank < 10);
    }
    assert!(head > 3_000, "{head} of 10,000 draws in the top 10");
    assert_eq!(zipf_rank(&mut rng, 1, 1.1), 0);
    assert!(zipf_rank(&mut rng, 5, 1.0) < 5);
}
