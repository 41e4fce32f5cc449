//! Sparse EASE beside item-item, the model it replaces past dense EASE's limit: quality on
//! the validation month (where its λ and neighbourhood size `k` are chosen) and the test
//! month, build time and memory, and the refresh after forgetting customers — on the
//! Online Retail file (`--data`) and on a synthetic shop of 100,000 items. Every figure is
//! printed beside item-item's from the same run.
//!
//! cargo run --release -p discreet-eval --example sparse_ease -- \
//!     [--data FILE] [--items 100000] [--customers 200000] [--events 3000000]

use std::time::Instant;

use discreet_eval::Progress;
use discreet_eval::memory::{BuildCost, CountingAllocator, measured};
use discreet_eval::quality::{Quality, evaluate_item_item, evaluate_sparse_ease};
use discreet_eval::retail_csv::{parse_shop_time, read_retail_file};
use discreet_eval::split::{Split, Splits, purchases, validation_start};
use discreet_eval::synthetic::{ShopPurchases, ShopShape};
use discreet_model::{ItemItemConfig, ItemItemModel, KindSet, SparseEaseConfig, SparseEaseModel};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The candidates tried on the synthetic validation month (a first, wider sweep, λ 50–400
/// × k 32–128, rose with both: these are its upper end and one step past it).
const REGULARISATIONS: [f64; 3] = [200.0, 400.0, 800.0];
const NEIGHBOURHOODS: [usize; 2] = [64, 128];

fn megabytes(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_row(name: &str, quality: &Quality, build: &BuildCost) {
    println!(
        "  {name:<34} NDCG@10 {:.4}  Recall@20 {:.4}  coverage@10 {:.4}  build {:>6.2} s  peak {:>7.1} MB  held {:>7.1} MB",
        quality.ndcg_at_10,
        quality.recall_at_20,
        quality.coverage_at_10,
        build.seconds,
        megabytes(build.peak_bytes),
        megabytes(build.held_bytes)
    );
}

fn sparse_config(regularisation: f64, neighbours_per_item: usize) -> SparseEaseConfig {
    SparseEaseConfig {
        held_kinds: KindSet::purchases(),
        regularisation,
        neighbours_per_item,
        ..SparseEaseConfig::default()
    }
}

/// Chooses λ and `k` on `validation` (NDCG@10), printing every candidate.
fn choose_on_validation(validation: &Split) -> anyhow::Result<SparseEaseConfig> {
    let mut best = (f64::MIN, sparse_config(100.0, 64));
    for neighbours_per_item in NEIGHBOURHOODS {
        for regularisation in REGULARISATIONS {
            let config = sparse_config(regularisation, neighbours_per_item);
            let (model, build) =
                measured(|| Ok(SparseEaseModel::build(config.clone(), &validation.train)?))?;
            let quality = evaluate_sparse_ease(&model, validation)?;
            print_row(
                &format!("sparse EASE λ={regularisation} k={neighbours_per_item}"),
                &quality,
                &build,
            );
            if quality.ndcg_at_10 > best.0 {
                best = (quality.ndcg_at_10, config);
            }
        }
    }
    Ok(best.1)
}

/// Item-item's best neighbour count on `validation` (its other settings are the defaults).
fn item_item_on_validation(validation: &Split) -> anyhow::Result<ItemItemConfig> {
    let mut best = (f64::MIN, ItemItemConfig::default());
    for neighbours_per_item in [10, 40, 100] {
        let config = ItemItemConfig {
            held_kinds: KindSet::purchases(),
            neighbours_per_item,
            ..ItemItemConfig::default()
        };
        let (model, build) =
            measured(|| Ok(ItemItemModel::build(config.clone(), &validation.train)))?;
        let quality = evaluate_item_item(&model, validation)?;
        print_row(
            &format!("item-item k={neighbours_per_item}"),
            &quality,
            &build,
        );
        if quality.ndcg_at_10 > best.0 {
            best = (quality.ndcg_at_10, config);
        }
    }
    Ok(best.1)
}

/// Both models on the test split with the chosen settings; then the refresh after
/// forgetting `forgets` customers, beside a rebuild.
fn measure_on_test(
    test: &Split,
    item_item_config: ItemItemConfig,
    sparse_ease_config: SparseEaseConfig,
    forgets: usize,
) -> anyhow::Result<()> {
    println!(
        "test ({} train interactions, {} items, {} test customers):",
        test.train.len(),
        test.catalogue.len(),
        test.test.len()
    );
    let (item_item, build) = measured(|| Ok(ItemItemModel::build(item_item_config, &test.train)))?;
    print_row(
        "item-item (baseline)",
        &evaluate_item_item(&item_item, test)?,
        &build,
    );
    drop(item_item);
    let (mut sparse_ease, build) = measured(|| {
        Ok(SparseEaseModel::build(
            sparse_ease_config.clone(),
            &test.train,
        )?)
    })?;
    print_row(
        &format!(
            "sparse EASE λ={} k={}",
            sparse_ease_config.regularisation, sparse_ease_config.neighbours_per_item
        ),
        &evaluate_sparse_ease(&sparse_ease, test)?,
        &build,
    );
    println!(
        "  sparse EASE holds {} weights; Gram rows and weights {:.1} MB (histories aside)",
        sparse_ease.n_weights(),
        megabytes(sparse_ease.held_bytes())
    );
    // Forget the customer with the most train history (the expensive case), then customers
    // of median history, refreshing after each.
    let mut subjects: Vec<_> = sparse_ease
        .histories()
        .subjects()
        .map(|(subject, held)| (held.len(), subject))
        .collect();
    subjects.sort_unstable_by(|left, right| right.cmp(left));
    let median = subjects.len() / 2;
    let chosen: Vec<_> = subjects
        .iter()
        .take(1)
        .chain(subjects.iter().skip(median).take(forgets))
        .copied()
        .collect();
    for (index, &(held, subject)) in chosen.iter().enumerate() {
        sparse_ease.forget_subject(subject);
        let started = Instant::now();
        let report = sparse_ease.refresh()?;
        let seconds = started.elapsed().as_secs_f64();
        if index == 0 || index == chosen.len() - 1 {
            println!(
                "  forget a customer of {held} items, then refresh: {seconds:.3} s, {} of {} columns re-solved{}",
                report.solved_items,
                test.catalogue.len(),
                if index == 0 {
                    " (the largest history)"
                } else {
                    " (median history, the last of those forgotten)"
                }
            );
        }
    }
    Ok(())
}

fn argument(name: &str) -> Option<String> {
    let arguments: Vec<String> = std::env::args().collect();
    arguments
        .iter()
        .position(|argument| argument == name)
        .and_then(|position| arguments.get(position + 1).cloned())
}

fn number(name: &str, default: u64) -> anyhow::Result<u64> {
    match argument(name) {
        None => Ok(default),
        Some(value) => value
            .parse()
            .map_err(|_| anyhow::anyhow!("`{name}` must be a whole number, got `{value}`")),
    }
}

fn main() -> anyhow::Result<()> {
    let progress = |_: Progress| {};
    if let Some(data) = argument("--data") {
        let file = read_retail_file(std::path::Path::new(&data))?;
        let purchases = purchases(&file.rows);
        let cutoff = parse_shop_time("2011-11-01").ok_or_else(|| anyhow::anyhow!("bad cutoff"))?;
        let start = validation_start("2011-11-01").ok_or_else(|| anyhow::anyhow!("bad cutoff"))?;
        let Splits { validation, test } = Splits::new(&purchases, cutoff, start);
        println!(
            "Online Retail, validation month ({} items):",
            validation.catalogue.len()
        );
        // The settings `discreet eval` chooses on this month, sparse EASE's among them.
        let tuned = discreet_eval::tune::tune(&validation, &progress)?;
        for (candidate, ndcg) in &tuned.log {
            if candidate.starts_with("sparse EASE") {
                println!("  {candidate:<34} NDCG@10 {ndcg:.4}");
            }
        }
        let chosen = discreet_eval::quality::sparse_ease_config(&tuned.model_set_config());
        measure_on_test(&test, tuned.item_item.clone(), chosen, 10)?;
        println!();
    }
    let items = number("--items", 100_000)? as u32;
    let customers = number("--customers", 200_000)? as u32;
    let events = number("--events", 3_000_000)?;
    // The year ends at a fixed time, so the same arguments always give the same shop.
    let shape = ShopShape::new(items, customers, events, 1_767_225_600);
    let started = Instant::now();
    let shop = ShopPurchases::collect(&shape);
    let Splits { validation, test } = shop.splits();
    drop(shop);
    println!(
        "synthetic shop: {items} items, {customers} customers, {events} events (generated and split in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "validation month ({} train interactions, {} test customers):",
        validation.train.len(),
        validation.test.len()
    );
    let item_item_config = item_item_on_validation(&validation)?;
    let chosen = choose_on_validation(&validation)?;
    drop(validation);
    measure_on_test(&test, item_item_config, chosen, 10)?;
    if let Some(resident) = discreet_eval::memory::peak_resident_megabytes() {
        println!("process peak resident memory (VmHWM): {resident:.0} MB");
    }
    Ok(())
}
