//! `discreet eval`: the evaluation protocol of DESIGN.md on the UCI Online Retail files.
//!
//! Purchases are rows with a customer, quantity > 0, price > 0, an invoice not starting
//! with `C` and a stock code starting with a digit. Train is everything before the cutoff;
//! a customer's test set is what they bought on or after it, had not bought before, and
//! that exists in train. Settings are tuned on the month before the cutoff (train before
//! that month, validate on it), never on the test month; then every model is rebuilt on
//! all data before the cutoff and measured once. Also measures build time, peak memory,
//! recommend and forget latency. Reads only the data file; writes only `--write-split`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use discreet_model::ids::Interner;
use discreet_model::metrics::{coverage_at, ndcg_at, recall_at};
use discreet_model::{
    BlendConfig, Catalogue, Context, EaseConfig, EaseModel, Interaction, InteractionKind, ItemId,
    ItemItemConfig, ItemItemModel, KindSet, ModelSet, ModelSetConfig, PopularityConfig,
    PopularityModel, RecommendScratch, SubjectId, Subjects,
};

use crate::alloc_count;
use crate::retail_csv::{RetailRow, parse_shop_time, read_retail_file};

/// Arguments of `discreet eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The transactions file: UCI Online Retail or Online Retail II, CSV, optionally gzipped.
    #[arg(long)]
    pub data: PathBuf,
    /// Train on everything before this date (YYYY-MM-DD); test on what follows.
    #[arg(long, default_value = "2011-11-01")]
    pub cutoff: String,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the train/test split (CSV: DIR/train.csv, DIR/test.csv, and the
    /// validation month's under DIR/validation/) into this folder, for other libraries.
    #[arg(long, value_name = "DIR")]
    pub write_split: Option<PathBuf>,
    /// Skip the latency measurements (recommend, forget).
    #[arg(long)]
    pub skip_latency: bool,
}

/// Recommendation list length needed by the metrics.
const LIST_LENGTH: usize = 20;

/// One protocol purchase, names kept for interning per split.
struct Purchase<'a> {
    customer: &'a str,
    stock_code: &'a str,
    country: &'a str,
    at: i64,
    hour_of_day: u8,
}

/// A time-based split with ids interned from its train part.
struct Split {
    cutoff: i64,
    train: Vec<Interaction>,
    catalogue: Catalogue,
    subjects: Subjects,
    countries: Interner,
    /// Items each subject bought in train, ascending (indexed by subject id).
    held: Vec<Vec<ItemId>>,
    /// Subjects with a non-empty test set, with that set.
    test: Vec<(SubjectId, HashSet<ItemId>)>,
}

impl Split {
    fn new(purchases: &[Purchase], cutoff: i64, test_end: i64) -> Split {
        let mut catalogue = Catalogue::default();
        let mut subjects = Subjects::default();
        let mut countries = Interner::default();
        let mut train = Vec::new();
        for purchase in purchases.iter().filter(|purchase| purchase.at < cutoff) {
            let subject = subjects.intern(purchase.customer);
            let item = catalogue.intern(purchase.stock_code);
            let country = discreet_model::CountryId(
                countries.intern(purchase.country).min(u16::MAX as u32) as u16,
            );
            train.push(Interaction {
                subject,
                item,
                at: purchase.at,
                kind: InteractionKind::Purchase,
                quantity: 1,
                context: Context {
                    country: Some(country),
                    hour_of_day: Some(purchase.hour_of_day),
                    ..Context::default()
                },
            });
        }
        let mut held: Vec<Vec<ItemId>> = vec![Vec::new(); subjects.len()];
        for interaction in &train {
            held[interaction.subject.index()].push(interaction.item);
        }
        for items in &mut held {
            items.sort_unstable();
            items.dedup();
        }
        let mut test_sets: HashMap<SubjectId, HashSet<ItemId>> = HashMap::new();
        for purchase in purchases
            .iter()
            .filter(|purchase| purchase.at >= cutoff && purchase.at < test_end)
        {
            let (Some(subject), Some(item)) = (
                subjects.get(purchase.customer),
                catalogue.get(purchase.stock_code),
            ) else {
                continue;
            };
            if held[subject.index()].binary_search(&item).is_err() {
                test_sets.entry(subject).or_default().insert(item);
            }
        }
        let mut test: Vec<(SubjectId, HashSet<ItemId>)> = test_sets.into_iter().collect();
        test.sort_by_key(|(subject, _)| *subject);
        Split {
            cutoff,
            train,
            catalogue,
            subjects,
            countries,
            held,
            test,
        }
    }

    fn is_held(&self, subject: SubjectId, item: ItemId) -> bool {
        self.held[subject.index()].binary_search(&item).is_ok()
    }

    fn model_set(&self, config: ModelSetConfig) -> anyhow::Result<ModelSet> {
        let mut model_set = ModelSet::with_names(
            config,
            self.catalogue.clone(),
            self.subjects.clone(),
            self.countries.clone(),
        )?;
        model_set.learn_all(&self.train)?;
        Ok(model_set)
    }
}

/// NDCG@10, Recall@20 and coverage@10 of one model on one split.
#[derive(Clone, Copy, Debug, Default)]
struct Quality {
    ndcg_at_10: f64,
    recall_at_20: f64,
    coverage_at_10: f64,
}

/// Runs `recommend` for every test subject (on two threads) and scores the lists.
fn evaluate<F>(split: &Split, recommend: F) -> Quality
where
    F: Fn(SubjectId, &mut Vec<ItemId>) + Sync,
{
    let n_threads = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let chunk_length = split.test.len().div_ceil(n_threads).max(1);
    let per_thread: Vec<(f64, f64, Vec<Vec<ItemId>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = split
            .test
            .chunks(chunk_length)
            .map(|chunk| {
                let recommend = &recommend;
                scope.spawn(move || {
                    let mut ndcg_sum = 0.0;
                    let mut recall_sum = 0.0;
                    let mut lists = Vec::with_capacity(chunk.len());
                    let mut ranked = Vec::with_capacity(LIST_LENGTH);
                    for (subject, relevant) in chunk {
                        ranked.clear();
                        recommend(*subject, &mut ranked);
                        ndcg_sum += ndcg_at(10, &ranked, relevant);
                        recall_sum += recall_at(20, &ranked, relevant);
                        lists.push(ranked.iter().take(10).copied().collect());
                    }
                    (ndcg_sum, recall_sum, lists)
                })
            })
            .collect();
        handles
            .into_iter()
            // A worker that panicked is a bug: propagate it rather than report a metric
            // silently averaged over fewer customers.
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let n_subjects = split.test.len().max(1) as f64;
    let ndcg_sum: f64 = per_thread.iter().map(|(ndcg, _, _)| ndcg).sum();
    let recall_sum: f64 = per_thread.iter().map(|(_, recall, _)| recall).sum();
    let lists: Vec<&[ItemId]> = per_thread
        .iter()
        .flat_map(|(_, _, lists)| lists.iter().map(Vec::as_slice))
        .collect();
    Quality {
        ndcg_at_10: ndcg_sum / n_subjects,
        recall_at_20: recall_sum / n_subjects,
        coverage_at_10: coverage_at(10, lists, split.catalogue.len()),
    }
}

/// A global ranking (all items, best first) served to everyone minus what they hold.
fn evaluate_global_ranking(split: &Split, ranking: &[ItemId]) -> Quality {
    evaluate(split, |subject, ranked| {
        ranked.extend(
            ranking
                .iter()
                .copied()
                .filter(|item| !split.is_held(subject, *item))
                .take(LIST_LENGTH),
        );
    })
}

fn popularity_model(config: &PopularityConfig, split: &Split) -> anyhow::Result<PopularityModel> {
    let mut model = PopularityModel::new(config.clone())?;
    for interaction in &split.train {
        model.learn(interaction);
    }
    Ok(model)
}

fn all_time_ranking(model: &PopularityModel, split: &Split) -> Vec<ItemId> {
    model
        .all_time_popular(split.catalogue.len())
        .into_iter()
        .map(|scored| scored.item)
        .collect()
}

fn trending_ranking(model: &PopularityModel, split: &Split) -> Vec<ItemId> {
    model
        .popular(&Context::default(), split.catalogue.len(), split.cutoff)
        .into_iter()
        .map(|scored| scored.item)
        .collect()
}

fn evaluate_item_item(model: &ItemItemModel, split: &Split) -> Quality {
    evaluate(split, |subject, ranked| {
        ranked.extend(
            model
                .recommend(subject, LIST_LENGTH, split.cutoff)
                .into_iter()
                .map(|recommendation| recommendation.item),
        );
    })
}

fn evaluate_ease(model: &EaseModel, split: &Split) -> Quality {
    evaluate(split, |subject, ranked| {
        // EASE is refreshed right after it is built; an error here is a bug, not an empty list.
        let recommendations = model
            .recommend(subject, LIST_LENGTH, split.cutoff)
            .expect("EASE is refreshed before it is evaluated");
        ranked.extend(
            recommendations
                .into_iter()
                .map(|recommendation| recommendation.item),
        );
    })
}

fn evaluate_model_set(model_set: &ModelSet, split: &Split) -> Quality {
    evaluate(split, |subject, ranked| {
        let mut scratch = RecommendScratch::default();
        let recommendations = model_set.recommend_with(
            &mut scratch,
            subject,
            LIST_LENGTH,
            split.cutoff,
            &Context::default(),
        );
        ranked.extend(
            recommendations
                .into_iter()
                .map(|recommendation| recommendation.item),
        );
    })
}

/// Settings chosen on the validation month.
struct Tuned {
    popularity: PopularityConfig,
    item_item: ItemItemConfig,
    ease: EaseConfig,
    blend: BlendConfig,
    /// Human-readable log of every validation figure.
    log: Vec<(String, f64)>,
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

fn tune(split: &Split, progress: &indicatif::ProgressBar) -> anyhow::Result<Tuned> {
    let mut log = Vec::new();
    let purchases_only = KindSet::purchases();

    progress.set_message("tuning trending half-life on the validation month");
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
        let quality = evaluate_global_ranking(split, &trending_ranking(&model, split));
        log.push((
            format!("trending half-life {half_life_days}d"),
            quality.ndcg_at_10,
        ));
        if quality.ndcg_at_10 > best {
            best = quality.ndcg_at_10;
            popularity = config;
        }
    }
    progress.inc(1);

    progress.set_message("tuning item-item similarity on the validation month");
    let mut item_item = ItemItemConfig {
        held_kinds: purchases_only,
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
                let quality = evaluate_item_item(&model, split);
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
        let quality = evaluate_item_item(&model, split);
        log.push((
            format!("item-item history cap {}", describe_cap(cap)),
            quality.ndcg_at_10,
        ));
        cap_results.push((cap, quality.ndcg_at_10));
    }
    item_item.max_history_items = smallest_cap_within_one_percent(&cap_results);
    drop(model);
    progress.inc(1);

    let mut ease = EaseConfig {
        held_kinds: purchases_only,
        ..EaseConfig::default()
    };
    let mut best = f64::MIN;
    for regularisation in [100.0, 200.0, 400.0, 800.0] {
        progress.set_message(format!("tuning EASE: λ = {regularisation}"));
        let mut model = EaseModel::build(
            EaseConfig {
                regularisation,
                ..ease.clone()
            },
            &split.train,
        )?;
        for half_life_days in [Some(60.0), Some(120.0), Some(240.0), None] {
            model.set_history_weighting(half_life_days, ease.max_history_items);
            let quality = evaluate_ease(&model, split);
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
        let quality = evaluate_ease(&model, split);
        log.push((
            format!("EASE history cap {}", describe_cap(cap)),
            quality.ndcg_at_10,
        ));
        cap_results.push((cap, quality.ndcg_at_10));
    }
    ease.max_history_items = smallest_cap_within_one_percent(&cap_results);
    drop(model);
    progress.inc(1);

    progress.set_message("tuning the blend on the validation month");
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
            let quality = evaluate_model_set(&model_set, split);
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
    progress.inc(1);
    Ok(Tuned {
        popularity,
        item_item,
        ease,
        blend,
        log,
    })
}

/// One row of the result table.
struct ModelRow {
    name: &'static str,
    quality: Quality,
    build_seconds: f64,
    peak_build_bytes: usize,
    held_bytes: usize,
}

/// Builds with `build`, measuring wall time, the allocation peak above the starting level,
/// and the bytes still held afterwards.
fn measured<T>(
    build: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, f64, usize, usize)> {
    let before = alloc_count::current_bytes();
    alloc_count::reset_peak();
    let started = Instant::now();
    let built = build()?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = alloc_count::peak_bytes().saturating_sub(before);
    let held = alloc_count::current_bytes().saturating_sub(before);
    Ok((built, seconds, peak, held))
}

/// p50 and p99 of durations, in microseconds.
fn percentiles(mut durations: Vec<Duration>) -> (f64, f64, f64) {
    if durations.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    durations.sort_unstable();
    let at = |fraction: f64| {
        let index =
            ((durations.len() as f64 * fraction).ceil() as usize).clamp(1, durations.len()) - 1;
        durations[index].as_secs_f64() * 1e6
    };
    (
        at(0.50),
        at(0.99),
        durations[durations.len() - 1].as_secs_f64() * 1e6,
    )
}

/// History cap of the latency-bounded blend measured next to the chosen one (reported
/// only; never used to choose settings).
const LATENCY_HISTORY_CAP: usize = 25;

/// Weights per item of the pruned-EASE blend measured next to the chosen one (reported only).
const LATENCY_KEPT_WEIGHTS: usize = 100;

/// Latency figures of the final models.
struct Latency {
    name: String,
    n_calls: usize,
    p50_micros: f64,
    p99_micros: f64,
    max_micros: f64,
}

fn latency(name: impl Into<String>, durations: Vec<Duration>) -> Latency {
    let n_calls = durations.len();
    let (p50_micros, p99_micros, max_micros) = percentiles(durations);
    Latency {
        name: name.into(),
        n_calls,
        p50_micros,
        p99_micros,
        max_micros,
    }
}

/// Customers whose forget is timed: the 10 with most events, then every 25th.
fn forget_sample(split: &Split, events_by_subject: &[Vec<Interaction>]) -> Vec<SubjectId> {
    let mut by_events: Vec<SubjectId> = (0..events_by_subject.len())
        .filter(|&index| !events_by_subject[index].is_empty())
        .map(|index| SubjectId(index as u32))
        .collect();
    by_events.sort_by_key(|subject| std::cmp::Reverse(events_by_subject[subject.index()].len()));
    let mut sample: Vec<SubjectId> = by_events.iter().take(10).copied().collect();
    sample.extend(by_events.iter().skip(10).step_by(25).copied());
    let _ = split;
    sample
}

fn measure_latencies(
    split: &Split,
    item_item: &mut ItemItemModel,
    ease: &mut EaseModel,
    model_set: &mut ModelSet,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(Vec<Latency>, f64)> {
    let mut figures = Vec::new();
    progress.set_message("measuring recommend latency");
    let context = Context::default();
    let mut scratch = RecommendScratch::default();
    let mut durations = Vec::with_capacity(split.subjects.len());
    let mut durations_item_item = Vec::with_capacity(split.subjects.len());
    let mut durations_ease = Vec::with_capacity(split.subjects.len());
    for index in 0..split.held.len() {
        let subject = SubjectId(index as u32);
        let started = Instant::now();
        let recommendations =
            model_set.recommend_with(&mut scratch, subject, 10, split.cutoff, &context);
        durations.push(started.elapsed());
        std::hint::black_box(recommendations);
        let started = Instant::now();
        std::hint::black_box(item_item.recommend(subject, 10, split.cutoff));
        durations_item_item.push(started.elapsed());
        let started = Instant::now();
        std::hint::black_box(ease.recommend(subject, 10, split.cutoff)?);
        durations_ease.push(started.elapsed());
    }
    figures.push(latency(
        "recommend 10, blend (in process, with explanations)",
        durations,
    ));
    // The same blend scoring only each customer's 25 most recent items.
    let chosen_cap = model_set.config().ease.max_history_items;
    model_set.set_history_cap(LATENCY_HISTORY_CAP);
    let mut durations_capped = Vec::with_capacity(split.subjects.len());
    for index in 0..split.held.len() {
        let subject = SubjectId(index as u32);
        let started = Instant::now();
        let recommendations =
            model_set.recommend_with(&mut scratch, subject, 10, split.cutoff, &context);
        durations_capped.push(started.elapsed());
        std::hint::black_box(recommendations);
    }
    let capped_quality = evaluate_model_set(model_set, split);
    model_set.set_history_cap(chosen_cap);
    figures.push(latency(
        format!(
            "recommend 10, blend, history cap {LATENCY_HISTORY_CAP} (test NDCG@10 {:.4})",
            capped_quality.ndcg_at_10
        ),
        durations_capped,
    ));
    // The same blend with EASE pruned to each item's strongest weights (rows cached lazily;
    // the first use of each row after a change is included in the timings).
    model_set.set_ease_kept_weights(LATENCY_KEPT_WEIGHTS);
    let mut durations_pruned = Vec::with_capacity(split.subjects.len());
    for index in 0..split.held.len() {
        let subject = SubjectId(index as u32);
        let started = Instant::now();
        let recommendations =
            model_set.recommend_with(&mut scratch, subject, 10, split.cutoff, &context);
        durations_pruned.push(started.elapsed());
        std::hint::black_box(recommendations);
    }
    // Second pass: every row cached, the steady state between two changes of `P`.
    let mut durations_pruned_warm = Vec::with_capacity(split.subjects.len());
    for index in 0..split.held.len() {
        let subject = SubjectId(index as u32);
        let started = Instant::now();
        let recommendations =
            model_set.recommend_with(&mut scratch, subject, 10, split.cutoff, &context);
        durations_pruned_warm.push(started.elapsed());
        std::hint::black_box(recommendations);
    }
    let pruned_quality = evaluate_model_set(model_set, split);
    model_set.set_ease_kept_weights(0);
    figures.push(latency(
        format!("recommend 10, blend, EASE {LATENCY_KEPT_WEIGHTS} weights/item, first pass (NDCG@10 {:.4})", pruned_quality.ndcg_at_10),
        durations_pruned,
    ));
    figures.push(latency(
        format!("recommend 10, blend, EASE {LATENCY_KEPT_WEIGHTS} weights/item, rows cached"),
        durations_pruned_warm,
    ));
    figures.push(latency("recommend 10, item-item", durations_item_item));
    figures.push(latency("recommend 10, EASE", durations_ease));
    progress.inc(1);

    progress.set_message("measuring forget latency per customer");
    let mut events_by_subject: Vec<Vec<Interaction>> = vec![Vec::new(); split.held.len()];
    for interaction in &split.train {
        events_by_subject[interaction.subject.index()].push(*interaction);
    }
    let sample = forget_sample(split, &events_by_subject);
    let mut forget_item_item = Vec::new();
    let mut forget_ease = Vec::new();
    let mut forget_all = Vec::new();
    let mut forget_all_large = Vec::new();
    let mut largest_drift = 0.0f64;
    for &subject in &sample {
        let events = &events_by_subject[subject.index()];
        let started = Instant::now();
        std::hint::black_box(item_item.forget_subject(subject));
        forget_item_item.push(started.elapsed());
        item_item.learn_batch(events);

        let started = Instant::now();
        ease.forget_subject(subject);
        ease.refresh()?;
        forget_ease.push(started.elapsed());
        for interaction in events {
            ease.learn(interaction);
        }
        let report = ease.refresh()?;
        if let Some(drift) = report.measured_drift {
            largest_drift = largest_drift.max(drift);
        }

        let name = split
            .subjects
            .name(subject)
            .context("a sampled customer has no name")?
            .to_string();
        let started = Instant::now();
        model_set.forget_subject(&name, events)?;
        let elapsed = started.elapsed();
        forget_all.push(elapsed);
        if events.len() >= 1_000 {
            forget_all_large.push(elapsed);
        }
        let restored = model_set.subject(&name);
        let restored_events: Vec<Interaction> = events
            .iter()
            .map(|interaction| Interaction {
                subject: restored,
                ..*interaction
            })
            .collect();
        model_set.learn_all(&restored_events)?;
    }
    figures.push(latency(
        format!("forget customer, item-item ({} customers)", sample.len()),
        forget_item_item,
    ));
    figures.push(latency(
        format!(
            "forget customer, EASE downdate ({} items)",
            ease.item_bound()
        ),
        forget_ease,
    ));
    figures.push(latency(
        "forget customer, every model (blend set)",
        forget_all,
    ));
    figures.push(latency(
        "forget customer with >= 1,000 events, every model",
        forget_all_large,
    ));
    let final_drift = ease.measure_drift(8);
    progress.inc(1);
    Ok((figures, largest_drift.max(final_drift)))
}

fn write_split(directory: &Path, split: &Split) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    let name_of_subject = |subject: SubjectId| split.subjects.name(subject).unwrap_or_default();
    let name_of_item = |item: ItemId| split.catalogue.code(item).unwrap_or_default();
    let mut train = String::from("customer,item,at\n");
    for interaction in &split.train {
        let _ = writeln!(
            train,
            "{},{},{}",
            name_of_subject(interaction.subject),
            name_of_item(interaction.item),
            interaction.at
        );
    }
    std::fs::write(directory.join("train.csv"), train).context("cannot write train.csv")?;
    let mut test = String::from("customer,item\n");
    for (subject, items) in &split.test {
        let mut items: Vec<&ItemId> = items.iter().collect();
        items.sort();
        for item in items {
            let _ = writeln!(
                test,
                "{},{}",
                name_of_subject(*subject),
                name_of_item(*item)
            );
        }
    }
    std::fs::write(directory.join("test.csv"), test).context("cannot write test.csv")?;
    Ok(())
}

/// The first day of the month before `cutoff` (the validation month starts there).
fn month_before(cutoff_text: &str) -> anyhow::Result<i64> {
    let mut parts = cutoff_text.split('-');
    let (Some(year), Some(month)) = (
        parts.next().and_then(|p| p.parse::<i64>().ok()),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) else {
        bail!("`--cutoff` must be a date YYYY-MM-DD, got `{cutoff_text}`");
    };
    let (year, month) = if month <= 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    };
    crate::retail_csv::unix_seconds(year, month, 1, 0, 0, 0)
        .with_context(|| format!("`--cutoff` month is out of range: `{cutoff_text}`"))
}

fn peak_resident_megabytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}

fn megabytes(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let Some(cutoff) = parse_shop_time(&args.cutoff) else {
        bail!(
            "`--cutoff` must be a date YYYY-MM-DD, got `{}`",
            args.cutoff
        );
    };
    let validation_start = month_before(&args.cutoff)?;
    let progress = indicatif::ProgressBar::new(if args.skip_latency { 7 } else { 9 });
    progress.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.set_message(format!("reading {}", args.data.display()));
    let file = read_retail_file(&args.data)?;
    let rows: Vec<&RetailRow> = file
        .rows
        .iter()
        .filter(|row| row.is_protocol_purchase())
        .collect();
    let purchases: Vec<Purchase> = rows
        .iter()
        .filter_map(|row| {
            Some(Purchase {
                customer: row.customer.as_deref()?,
                stock_code: &row.stock_code,
                country: &row.country,
                at: row.at,
                hour_of_day: row.hour_of_day(),
            })
        })
        .collect();
    if purchases.is_empty() {
        bail!(
            "{} has no purchase rows under the protocol",
            args.data.display()
        );
    }
    progress.inc(1);

    progress.set_message("splitting");
    let validation = Split::new(&purchases, validation_start, cutoff);
    let split = Split::new(&purchases, cutoff, i64::MAX);
    if split.test.is_empty() || validation.test.is_empty() {
        bail!(
            "the cutoff {} leaves no test customers (or no validation month before it)",
            args.cutoff
        );
    }
    if let Some(directory) = &args.write_split {
        write_split(directory, &split)?;
        // The validation month too, so other libraries can be tuned the same way.
        write_split(&directory.join("validation"), &validation)?;
    }
    progress.inc(1);

    let tuned = tune(&validation, &progress)?;

    progress.set_message("building and measuring every model on all data before the cutoff");
    let popularity_config = PopularityConfig {
        reference_time: cutoff,
        ..tuned.popularity.clone()
    };
    let mut rows_out = Vec::new();
    let (popularity, seconds, peak, held) =
        measured(|| popularity_model(&popularity_config, &split))?;
    rows_out.push(ModelRow {
        name: "popularity",
        quality: evaluate_global_ranking(&split, &all_time_ranking(&popularity, &split)),
        build_seconds: seconds,
        peak_build_bytes: peak,
        held_bytes: held,
    });
    rows_out.push(ModelRow {
        name: "trending",
        quality: evaluate_global_ranking(&split, &trending_ranking(&popularity, &split)),
        build_seconds: seconds,
        peak_build_bytes: peak,
        held_bytes: held,
    });
    drop(popularity);
    let (mut item_item, seconds, peak, held) =
        measured(|| Ok(ItemItemModel::build(tuned.item_item.clone(), &split.train)))?;
    rows_out.push(ModelRow {
        name: "item-item",
        quality: evaluate_item_item(&item_item, &split),
        build_seconds: seconds,
        peak_build_bytes: peak,
        held_bytes: held,
    });
    let (mut ease, seconds, peak, held) =
        measured(|| Ok(EaseModel::build(tuned.ease.clone(), &split.train)?))?;
    rows_out.push(ModelRow {
        name: "EASE",
        quality: evaluate_ease(&ease, &split),
        build_seconds: seconds,
        peak_build_bytes: peak,
        held_bytes: held,
    });
    let set_config = ModelSetConfig {
        item_item: tuned.item_item.clone(),
        ease: tuned.ease.clone(),
        popularity: popularity_config.clone(),
        blend: tuned.blend.clone(),
        ..ModelSetConfig::default()
    };
    let (mut model_set, seconds, peak, held) = measured(|| split.model_set(set_config))?;
    rows_out.push(ModelRow {
        name: "blend",
        quality: evaluate_model_set(&model_set, &split),
        build_seconds: seconds,
        peak_build_bytes: peak,
        held_bytes: held,
    });
    progress.inc(1);

    let (latencies, ease_drift) = if args.skip_latency {
        (Vec::new(), 0.0)
    } else {
        measure_latencies(&split, &mut item_item, &mut ease, &mut model_set, &progress)?
    };
    progress.finish_and_clear();

    let settings = vec![
        (
            "trending half-life days",
            format!("{}", tuned.popularity.trend_half_life_days),
        ),
        (
            "item-item",
            format!(
                "a={} b={} k={} history half-life {}, history cap {}",
                tuned.item_item.source_popularity_exponent,
                tuned.item_item.target_popularity_exponent,
                tuned.item_item.neighbours_per_item,
                describe_half_life(tuned.item_item.history_half_life_days),
                describe_cap(tuned.item_item.max_history_items)
            ),
        ),
        (
            "EASE",
            format!(
                "λ={} history half-life {}, history cap {}",
                tuned.ease.regularisation,
                describe_half_life(tuned.ease.history_half_life_days),
                describe_cap(tuned.ease.max_history_items)
            ),
        ),
        (
            "blend",
            format!(
                "EASE {} + item-item {} + trending {}",
                tuned.blend.ease_weight, tuned.blend.item_item_weight, tuned.blend.trending_weight
            ),
        ),
    ];

    let mut output = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "data": args.data.display().to_string(),
            "cutoff": args.cutoff,
            "rows_read": file.rows.len(),
            "rows_skipped": file.skipped.total(),
            "purchases": purchases.len(),
            "train_interactions": split.train.len(),
            "catalogue_items": split.catalogue.len(),
            "test_customers": split.test.len(),
            "validation_customers": validation.test.len(),
            "chosen": settings.iter().map(|(name, value)| serde_json::json!({"setting": name, "value": value})).collect::<Vec<_>>(),
            "models": rows_out.iter().map(|row| serde_json::json!({
                "model": row.name,
                "ndcg_at_10": row.quality.ndcg_at_10,
                "recall_at_20": row.quality.recall_at_20,
                "coverage_at_10": row.quality.coverage_at_10,
                "build_seconds": row.build_seconds,
                "peak_build_megabytes": megabytes(row.peak_build_bytes),
                "held_megabytes": megabytes(row.held_bytes),
            })).collect::<Vec<_>>(),
            "latency": latencies.iter().map(|figure| serde_json::json!({
                "figure": figure.name, "calls": figure.n_calls,
                "p50_micros": figure.p50_micros, "p99_micros": figure.p99_micros, "max_micros": figure.max_micros,
            })).collect::<Vec<_>>(),
            "validation": tuned.log.iter().map(|(name, ndcg)| serde_json::json!({"candidate": name, "ndcg_at_10": ndcg})).collect::<Vec<_>>(),
            "ease_drift_after_forget_cycles": ease_drift,
            "process_peak_resident_megabytes": peak_resident_megabytes(),
        });
        writeln!(output, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(
        output,
        "{}: {} rows read, {} skipped; {} purchases; train {} interactions, {} items; {} test customers (validation {})",
        args.data.display(),
        file.rows.len(),
        file.skipped.total(),
        purchases.len(),
        split.train.len(),
        split.catalogue.len(),
        split.test.len(),
        validation.test.len()
    )?;
    writeln!(
        output,
        "chosen on the validation month (train before it, validate on it):"
    )?;
    for (name, value) in &settings {
        writeln!(output, "  {name}: {value}")?;
    }
    writeln!(output)?;
    writeln!(
        output,
        "model        NDCG@10  Recall@20  coverage@10  build s  peak MB  held MB"
    )?;
    for row in &rows_out {
        writeln!(
            output,
            "{:<12} {:>7.4}  {:>9.4}  {:>11.4}  {:>7.2}  {:>7.1}  {:>7.1}",
            row.name,
            row.quality.ndcg_at_10,
            row.quality.recall_at_20,
            row.quality.coverage_at_10,
            row.build_seconds,
            megabytes(row.peak_build_bytes),
            megabytes(row.held_bytes)
        )?;
    }
    if !latencies.is_empty() {
        writeln!(output)?;
        writeln!(
            output,
            "{:<70} {:>6} {:>10} {:>10} {:>10}",
            "latency", "calls", "p50 µs", "p99 µs", "max µs"
        )?;
        for figure in &latencies {
            writeln!(
                output,
                "{:<70} {:>6} {:>10.1} {:>10.1} {:>10.1}",
                figure.name,
                figure.n_calls,
                figure.p50_micros,
                figure.p99_micros,
                figure.max_micros
            )?;
        }
    }
    if !args.skip_latency {
        writeln!(
            output,
            "EASE drift: largest |(G+λI)P - I| entry measured after the forget/relearn cycles: {ease_drift:.2e}"
        )?;
    }
    if let Some(resident) = peak_resident_megabytes() {
        writeln!(
            output,
            "\nprocess peak resident memory (VmHWM): {resident:.0} MB"
        )?;
    }
    Ok(())
}
