//! Choosing settings on the validation split — train before the month preceding the
//! cutoff, validate on that month — never on the test month: the trending half-life, the
//! item-item similarity and history weighting, EASE's λ and history weighting, sparse
//! EASE's λ and neighbourhood size, each model's history cap, and the blend's weights. Every candidate's validation NDCG@10 is
//! logged. Deterministic: a tie keeps the candidate tried first.

use discreet_model::{
    BlendConfig, EaseConfig, EaseModel, ItemItemConfig, ItemItemModel, KindSet, ModelSetConfig,
    PopularityConfig, SparseEaseConfig, SparseEaseModel,
};

use crate::Progress;
use crate::quality::{
    evaluate_ease, evaluate_global_ranking, evaluate_item_item, evaluate_model_set,
    evaluate_sparse_ease, popularity_model, trending_ranking,
};
use crate::split::Split;

/// Steps `tune` reports as done (`Progress::StepDone`).
pub const STEPS: u64 = 5;

/// Bounds on one subject's contribution tried (most recent distinct items; 0 = all).
const CONTRIBUTION_BOUNDS: [usize; 6] = [25, 50, 100, 150, 250, 0];

/// Settings chosen on the validation month.
#[derive(Clone, Debug)]
pub struct Tuned {
    pub popularity: PopularityConfig,
    pub item_item: ItemItemConfig,
    pub ease: EaseConfig,
    /// Sparse EASE (for catalogues past dense EASE's limit), with EASE's history weighting.
    pub sparse_ease: SparseEaseConfig,
    pub blend: BlendConfig,
    /// Every candidate tried, with its validation NDCG@10, in the order tried.
    pub log: Vec<(String, f64)>,
}

impl Tuned {
    /// The chosen settings as one model configuration (every other setting its default).
    pub fn model_set_config(&self) -> ModelSetConfig {
        ModelSetConfig {
            item_item: self.item_item.clone(),
            ease: self.ease.clone(),
            sparse_ease: self.sparse_ease.clone(),
            popularity: self.popularity.clone(),
            blend: self.blend.clone(),
            ..ModelSetConfig::default()
        }
    }

    /// The chosen settings, named and described for people.
    pub fn described(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "trending half-life days",
                format!("{}", self.popularity.trend_half_life_days),
            ),
            (
                "item-item",
                format!(
                    "a={} b={} k={} history half-life {}, history cap {}",
                    self.item_item.source_popularity_exponent,
                    self.item_item.target_popularity_exponent,
                    self.item_item.neighbours_per_item,
                    describe_half_life(self.item_item.history_half_life_days),
                    describe_cap(self.item_item.max_history_items)
                ),
            ),
            (
                "EASE",
                format!(
                    "λ={} history half-life {}, history cap {}",
                    self.ease.regularisation,
                    describe_half_life(self.ease.history_half_life_days),
                    describe_cap(self.ease.max_history_items)
                ),
            ),
            (
                "sparse EASE",
                format!(
                    "λ={} k={} (EASE's history weighting)",
                    self.sparse_ease.regularisation, self.sparse_ease.neighbours_per_item
                ),
            ),
            (
                "contribution bound",
                describe_cap(self.item_item.max_contributed_items),
            ),
            (
                "blend",
                format!(
                    "EASE {} + item-item {} + trending {}",
                    self.blend.ease_weight, self.blend.item_item_weight, self.blend.trending_weight
                ),
            ),
        ]
    }
}

fn describe_half_life(half_life_days: Option<f64>) -> String {
    match half_life_days {
        Some(days) => format!("{days}d"),
        None => "none".to_string(),
    }
}

/// History caps tried (most recent items that score; 0 = all).
const HISTORY_CAPS: [usize; 5] = [25, 50, 100, 200, 0];

fn describe_cap(cap: usize) -> String {
    if cap == 0 {
        "all".to_string()
    } else {
        format!("{cap} most recent")
    }
}

/// The smallest cap (0 = unbounded counts as largest) within 1% of the best NDCG.
fn smallest_cap_within_one_percent(results: &[(usize, f64)]) -> usize {
    let best = results
        .iter()
        .fold(f64::MIN, |best, (_, ndcg)| best.max(*ndcg));
    let mut by_size: Vec<(usize, f64)> = results.to_vec();
    by_size.sort_by_key(|(cap, _)| if *cap == 0 { usize::MAX } else { *cap });
    by_size
        .iter()
        .find(|(_, ndcg)| *ndcg >= 0.99 * best)
        .map(|(cap, _)| *cap)
        .unwrap_or(0)
}

/// Chooses every setting on `validation` (a split whose test part is the validation month).
pub fn tune(validation: &Split, progress: &dyn Fn(Progress)) -> anyhow::Result<Tuned> {
    let split = validation;
    let mut log = Vec::new();
    let purchases_only = KindSet::purchases();

    progress(Progress::Doing(
        "tuning trending half-life on the validation month".into(),
    ));
    let mut popularity = PopularityConfig {
        counted_kinds: purchases_only,
        reference_time: split.cutoff,
        ..PopularityConfig::default()
    };
    let mut best = f64::MIN;
    for half_life_days in [3.0, 7.0, 14.0, 30.0] {
        let config = PopularityConfig {
            trend_half_life_days: half_life_days,
            ..popularity.clone()
        };
        let model = popularity_model(&config, split)?;
        let quality = evaluate_global_ranking(split, &trending_ranking(&model, split))?;
        log.push((
            format!("trending half-life {half_life_days}d"),
            quality.ndcg_at_10,
        ));
        if quality.ndcg_at_10 > best {
            best = quality.ndcg_at_10;
            popularity = config;
        }
    }
    progress(Progress::StepDone);

    progress(Progress::Doing(
        "tuning item-item similarity on the validation month".into(),
    ));
    let item_item = tune_item_item(split, purchases_only, &mut log)?;
    progress(Progress::StepDone);

    let ease = tune_ease(split, purchases_only, &mut log, progress)?;
    let sparse_ease = tune_sparse_ease(split, &ease, &mut log, progress)?;
    progress(Progress::StepDone);

    progress(Progress::Doing(
        "tuning the blend on the validation month".into(),
    ));
    let config = ModelSetConfig {
        item_item: item_item.clone(),
        ease: ease.clone(),
        popularity: popularity.clone(),
        blend: BlendConfig::default(),
        ..ModelSetConfig::default()
    };
    let mut model_set = split.model_set(config)?;
    let mut blend = BlendConfig::default();
    let mut best = f64::MIN;
    for item_item_weight in [0.0, 0.1, 0.2, 0.3, 0.5] {
        for trending_weight in [0.0, 0.2, 0.5, 0.75, 1.0] {
            let candidate = BlendConfig {
                ease_weight: 1.0,
                item_item_weight,
                trending_weight,
            };
            model_set.set_blend(candidate.clone());
            let quality = evaluate_model_set(&model_set, split)?;
            log.push((
                format!("blend item-item {item_item_weight} trending {trending_weight}"),
                quality.ndcg_at_10,
            ));
            if quality.ndcg_at_10 > best {
                best = quality.ndcg_at_10;
                blend = candidate;
            }
        }
    }
    progress(Progress::StepDone);

    progress(Progress::Doing(
        "tuning the bounded contribution on the validation month".into(),
    ));
    let bound = tune_contribution_bound(
        split,
        ModelSetConfig {
            item_item: item_item.clone(),
            ease: ease.clone(),
            popularity: popularity.clone(),
            blend: blend.clone(),
            ..ModelSetConfig::default()
        },
        &mut log,
    )?;
    progress(Progress::StepDone);
    Ok(Tuned {
        popularity,
        item_item: ItemItemConfig {
            max_contributed_items: bound,
            ..item_item
        },
        ease: EaseConfig {
            max_contributed_items: bound,
            ..ease
        },
        sparse_ease: SparseEaseConfig {
            max_contributed_items: bound,
            ..sparse_ease
        },
        blend,
        log,
    })
}

/// Sparse EASE: λ and the neighbourhood size `k`, with EASE's kinds and history weighting.
fn tune_sparse_ease(
    split: &Split,
    ease: &EaseConfig,
    log: &mut Vec<(String, f64)>,
    progress: &dyn Fn(Progress),
) -> anyhow::Result<SparseEaseConfig> {
    let base = SparseEaseConfig {
        held_kinds: ease.held_kinds,
        history_half_life_days: ease.history_half_life_days,
        max_history_items: ease.max_history_items,
        max_contributed_items: ease.max_contributed_items,
        ..SparseEaseConfig::default()
    };
    let mut chosen = base.clone();
    let mut best = f64::MIN;
    for neighbours_per_item in [32, 64, 128] {
        for regularisation in [50.0, 100.0, 200.0, 400.0, 800.0] {
            progress(Progress::Doing(format!(
                "tuning sparse EASE: k = {neighbours_per_item}, λ = {regularisation}"
            )));
            let config = SparseEaseConfig {
                regularisation,
                neighbours_per_item,
                ..base.clone()
            };
            let model = SparseEaseModel::build(config.clone(), &split.train)?;
            let quality = evaluate_sparse_ease(&model, split)?;
            log.push((
                format!("sparse EASE λ={regularisation} k={neighbours_per_item}"),
                quality.ndcg_at_10,
            ));
            if quality.ndcg_at_10 > best {
                best = quality.ndcg_at_10;
                chosen = config;
            }
        }
    }
    Ok(chosen)
}

/// The bound on what one subject contributes to item-item's counts and EASE's Gram matrix:
/// the smallest within 1% of the best blend on validation (a smaller bound is cheaper to
/// learn and caps what one hostile customer can add).
fn tune_contribution_bound(
    split: &Split,
    config: ModelSetConfig,
    log: &mut Vec<(String, f64)>,
) -> anyhow::Result<usize> {
    let mut results = Vec::new();
    for bound in CONTRIBUTION_BOUNDS {
        let model_set = split.model_set(config.clone().contributing(bound))?;
        let quality = evaluate_model_set(&model_set, split)?;
        log.push((
            format!("contribution bound {}", describe_cap(bound)),
            quality.ndcg_at_10,
        ));
        results.push((bound, quality.ndcg_at_10));
    }
    Ok(smallest_cap_within_one_percent(&results))
}

/// Item-item: the similarity exponents, neighbours and history half-life, then the cap.
fn tune_item_item(
    split: &Split,
    held_kinds: KindSet,
    log: &mut Vec<(String, f64)>,
) -> anyhow::Result<ItemItemConfig> {
    let mut item_item = ItemItemConfig {
        held_kinds,
        ..ItemItemConfig::default()
    };
    let mut model = ItemItemModel::build(item_item.clone(), &split.train);
    let mut best = f64::MIN;
    // (a, b) = (0.5, 0.5) is cosine; a = 1 is RP3beta-style P(j|i) with popularity penalty b.
    for (source_exponent, target_exponent, name) in [
        (0.5, 0.5, "cosine"),
        (0.3, 0.5, "asymmetric"),
        (0.2, 0.4, "asymmetric"),
        (0.3, 0.35, "asymmetric"),
        (1.0, 0.5, "rp3beta"),
        (1.0, 0.3, "rp3beta"),
    ] {
        for neighbours in [5, 10, 20] {
            for half_life_days in [Some(30.0), Some(120.0), None] {
                let config = ItemItemConfig {
                    source_popularity_exponent: source_exponent,
                    target_popularity_exponent: target_exponent,
                    neighbours_per_item: neighbours,
                    history_half_life_days: half_life_days,
                    ..item_item.clone()
                };
                model.set_scoring(config.clone());
                let quality = evaluate_item_item(&model, split)?;
                log.push((
                    format!(
                        "item-item {name} a={source_exponent} b={target_exponent} k={neighbours} half-life {}",
                        describe_half_life(half_life_days)
                    ),
                    quality.ndcg_at_10,
                ));
                if quality.ndcg_at_10 > best {
                    best = quality.ndcg_at_10;
                    item_item = config;
                }
            }
        }
    }
    // The history cap bounds recommend latency: take the smallest cap whose validation
    // NDCG is within 1% of the best cap's.
    let mut cap_results = Vec::new();
    for cap in HISTORY_CAPS {
        let config = ItemItemConfig {
            max_history_items: cap,
            ..item_item.clone()
        };
        model.set_scoring(config);
        let quality = evaluate_item_item(&model, split)?;
        log.push((
            format!("item-item history cap {}", describe_cap(cap)),
            quality.ndcg_at_10,
        ));
        cap_results.push((cap, quality.ndcg_at_10));
    }
    item_item.max_history_items = smallest_cap_within_one_percent(&cap_results);
    Ok(item_item)
}

/// EASE: λ and the history half-life, then the cap.
fn tune_ease(
    split: &Split,
    held_kinds: KindSet,
    log: &mut Vec<(String, f64)>,
    progress: &dyn Fn(Progress),
) -> anyhow::Result<EaseConfig> {
    let mut ease = EaseConfig {
        held_kinds,
        ..EaseConfig::default()
    };
    let mut best = f64::MIN;
    for regularisation in [100.0, 200.0, 400.0, 800.0] {
        progress(Progress::Doing(format!(
            "tuning EASE: λ = {regularisation}"
        )));
        let mut model = EaseModel::build(
            EaseConfig {
                regularisation,
                ..ease.clone()
            },
            &split.train,
        )?;
        for half_life_days in [Some(60.0), Some(120.0), Some(240.0), None] {
            model.set_history_weighting(half_life_days, ease.max_history_items);
            let quality = evaluate_ease(&model, split)?;
            log.push((
                format!(
                    "EASE λ={regularisation} half-life {}",
                    describe_half_life(half_life_days)
                ),
                quality.ndcg_at_10,
            ));
            if quality.ndcg_at_10 > best {
                best = quality.ndcg_at_10;
                ease = EaseConfig {
                    regularisation,
                    history_half_life_days: half_life_days,
                    ..ease.clone()
                };
            }
        }
    }
    let mut model = EaseModel::build(ease.clone(), &split.train)?;
    let mut cap_results = Vec::new();
    for cap in HISTORY_CAPS {
        model.set_history_weighting(ease.history_half_life_days, cap);
        let quality = evaluate_ease(&model, split)?;
        log.push((
            format!("EASE history cap {}", describe_cap(cap)),
            quality.ndcg_at_10,
        ));
        cap_results.push((cap, quality.ndcg_at_10));
    }
    ease.max_history_items = smallest_cap_within_one_percent(&cap_results);
    Ok(ease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_cap_within_one_percent_of_the_best_is_chosen_and_all_counts_as_largest() {
        let results = [
            (25, 0.090),
            (50, 0.0995),
            (100, 0.1),
            (200, 0.1),
            (0, 0.1005),
        ];
        assert_eq!(smallest_cap_within_one_percent(&results), 50);
        let only_all = [(25, 0.05), (0, 0.1)];
        assert_eq!(smallest_cap_within_one_percent(&only_all), 0);
        assert_eq!(smallest_cap_within_one_percent(&[]), 0);
    }
}
