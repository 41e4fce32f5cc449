//! Recommend and forget latency of the measured models, in process: every train customer's
//! recommendation timed once per model (and for the blend with a history cap and with EASE
//! pruned, both reported only, never used to choose settings), then a sample of customers
//! forgotten and relearnt. Also [`percentile`], the one percentile rule every benchmark of
//! the workspace uses. Times and reports; asserts nothing about speed.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use discreet_model::{
    Context, EaseModel, Interaction, ItemItemModel, ModelSet, RecommendScratch, SubjectId,
};

use crate::Progress;
use crate::quality::{MeasuredModels, evaluate_model_set};
use crate::split::Split;

/// Steps `measure_latencies` reports as done (`Progress::StepDone`).
pub const STEPS: u64 = 2;

/// History cap of the latency-bounded blend measured next to the chosen one (reported
/// only; never used to choose settings).
const LATENCY_HISTORY_CAP: usize = 25;

/// Weights per item of the pruned-EASE blend measured next to the chosen one (reported only).
const LATENCY_KEPT_WEIGHTS: usize = 100;

/// The value at `fraction` (0 to 1) of `sorted` (ascending), by the nearest-rank rule: the
/// smallest value with at least `fraction` of the values at or below it, that is the one
/// at rank `ceil(n × fraction)` (counted from 1, at least 1). Always one of the values,
/// never interpolated; the median of an even count is the lower middle one. 0 when empty.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // A NaN or negative rank casts to 0 and is clamped to the first value.
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Latency figures of one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    pub name: String,
    pub n_calls: usize,
    pub p50_micros: f64,
    pub p99_micros: f64,
    pub max_micros: f64,
}

impl Latency {
    /// The figures of `durations` (in any order) under `name`.
    pub fn of(name: impl Into<String>, durations: &[Duration]) -> Latency {
        let mut micros: Vec<f64> = durations
            .iter()
            .map(|duration| duration.as_secs_f64() * 1e6)
            .collect();
        micros.sort_by(f64::total_cmp);
        Latency {
            name: name.into(),
            n_calls: micros.len(),
            p50_micros: percentile(&micros, 0.50),
            p99_micros: percentile(&micros, 0.99),
            max_micros: micros.last().copied().unwrap_or(0.0),
        }
    }
}

/// Customers whose forget is timed: the 10 with most events, then every 25th.
fn forget_sample(events_by_subject: &[Vec<Interaction>]) -> Vec<SubjectId> {
    let mut by_events: Vec<SubjectId> = (0..events_by_subject.len())
        .filter(|&index| !events_by_subject[index].is_empty())
        .map(|index| SubjectId(index as u32))
        .collect();
    by_events.sort_by_key(|subject| std::cmp::Reverse(events_by_subject[subject.index()].len()));
    let mut sample: Vec<SubjectId> = by_events.iter().take(10).copied().collect();
    sample.extend(by_events.iter().skip(10).step_by(25).copied());
    sample
}

/// Times `recommend` for every train customer of `split`.
fn time_blend(
    split: &Split,
    model_set: &ModelSet,
    scratch: &mut RecommendScratch,
) -> Vec<Duration> {
    let context = Context::default();
    let mut durations = Vec::with_capacity(split.subjects.len());
    for index in 0..split.held.len() {
        let subject = SubjectId(index as u32);
        let started = Instant::now();
        let recommendations =
            model_set.recommend_with(scratch, subject, 10, split.cutoff, &context);
        durations.push(started.elapsed());
        std::hint::black_box(recommendations);
    }
    durations
}

/// Recommend and forget latency of `models` on `split`; also the largest EASE drift seen
/// after the forget and relearn cycles. The models hold the same events when it returns.
pub fn measure_latencies(
    split: &Split,
    models: &mut MeasuredModels,
    progress: &dyn Fn(Progress),
) -> anyhow::Result<(Vec<Latency>, f64)> {
    let mut figures = Vec::new();
    progress(Progress::Doing("measuring recommend latency".into()));
    figures.extend(recommend_latencies(split, models)?);
    progress(Progress::StepDone);

    progress(Progress::Doing(
        "measuring forget latency per customer".into(),
    ));
    let (forget_figures, drift) = forget_latencies(
        split,
        &mut models.item_item,
        &mut models.ease,
        &mut models.model_set,
    )?;
    figures.extend(forget_figures);
    progress(Progress::StepDone);
    Ok((figures, drift))
}

fn recommend_latencies(split: &Split, models: &mut MeasuredModels) -> anyhow::Result<Vec<Latency>> {
    let MeasuredModels {
        item_item,
        ease,
        model_set,
    } = models;
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
    let mut figures = vec![Latency::of(
        "recommend 10, blend (in process, with explanations)",
        &durations,
    )];
    // The same blend scoring only each customer's 25 most recent items.
    let chosen_cap = model_set.config().ease.max_history_items;
    model_set.set_history_cap(LATENCY_HISTORY_CAP);
    let durations_capped = time_blend(split, model_set, &mut scratch);
    let capped_quality = evaluate_model_set(model_set, split)?;
    model_set.set_history_cap(chosen_cap);
    figures.push(Latency::of(
        format!(
            "recommend 10, blend, history cap {LATENCY_HISTORY_CAP} (test NDCG@10 {:.4})",
            capped_quality.ndcg_at_10
        ),
        &durations_capped,
    ));
    // The same blend with dense EASE pruned to each item's strongest weights, when dense
    // EASE is the blend's personal model (sparse EASE keeps few weights per item already).
    if model_set.ease().is_some() {
        // Rows are cached lazily; the first use of each after a change is in the timings.
        model_set.set_ease_kept_weights(LATENCY_KEPT_WEIGHTS);
        let durations_pruned = time_blend(split, model_set, &mut scratch);
        // Second pass: every row cached, the steady state between two changes of `P`.
        let durations_pruned_warm = time_blend(split, model_set, &mut scratch);
        let pruned_quality = evaluate_model_set(model_set, split)?;
        model_set.set_ease_kept_weights(0);
        figures.push(Latency::of(
            format!(
                "recommend 10, blend, EASE {LATENCY_KEPT_WEIGHTS} weights/item, first pass (NDCG@10 {:.4})",
                pruned_quality.ndcg_at_10
            ),
            &durations_pruned,
        ));
        figures.push(Latency::of(
            format!("recommend 10, blend, EASE {LATENCY_KEPT_WEIGHTS} weights/item, rows cached"),
            &durations_pruned_warm,
        ));
    }
    figures.push(Latency::of("recommend 10, item-item", &durations_item_item));
    figures.push(Latency::of(
        "recommend 10, dense EASE alone",
        &durations_ease,
    ));
    Ok(figures)
}

fn forget_latencies(
    split: &Split,
    item_item: &mut ItemItemModel,
    ease: &mut EaseModel,
    model_set: &mut ModelSet,
) -> anyhow::Result<(Vec<Latency>, f64)> {
    let mut events_by_subject: Vec<Vec<Interaction>> = vec![Vec::new(); split.held.len()];
    for interaction in &split.train {
        events_by_subject[interaction.subject.index()].push(*interaction);
    }
    let sample = forget_sample(&events_by_subject);
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
    let figures = vec![
        Latency::of(
            format!("forget customer, item-item ({} customers)", sample.len()),
            &forget_item_item,
        ),
        Latency::of(
            format!(
                "forget customer, EASE downdate ({} items)",
                ease.item_bound()
            ),
            &forget_ease,
        ),
        Latency::of("forget customer, every model (blend set)", &forget_all),
        Latency::of(
            "forget customer with >= 1,000 events, every model",
            &forget_all_large,
        ),
    ];
    let final_drift = ease.measure_drift(8);
    Ok((figures, largest_drift.max(final_drift)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_nearest_rank_rule() {
        let five = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&five, 0.5), 3.0);
        assert_eq!(percentile(&five, 0.99), 5.0);
        assert_eq!(percentile(&five, 0.2), 1.0);
        assert_eq!(percentile(&five, 0.21), 2.0);
        assert_eq!(percentile(&five, 0.0), 1.0);
        assert_eq!(percentile(&five, 1.0), 5.0);
        // The median of an even count is the lower middle value, not an interpolation.
        assert_eq!(percentile(&[10.0, 20.0, 30.0, 40.0], 0.5), 20.0);
        // p99 of 100 values is the 99th, of 1,000 values the 990th.
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.99), 99.0);
        let thousand: Vec<f64> = (1..=1_000).map(f64::from).collect();
        assert_eq!(percentile(&thousand, 0.99), 990.0);
        assert_eq!(percentile(&thousand, 0.5), 500.0);
    }

    #[test]
    fn percentiles_of_edge_inputs_do_not_panic() {
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[1.0, 2.0], f64::NAN), 1.0);
        assert_eq!(percentile(&[1.0, 2.0], -1.0), 1.0);
        assert_eq!(percentile(&[1.0, 2.0], 2.0), 2.0);
    }

    #[test]
    fn latency_figures_sort_their_durations() {
        let durations = [3, 1, 2, 4].map(Duration::from_secs);
        let latency = Latency::of("x", &durations);
        assert_eq!(latency.n_calls, 4);
        assert_eq!(latency.p50_micros, 2e6);
        assert_eq!(latency.p99_micros, 4e6);
        assert_eq!(latency.max_micros, 4e6);
        assert_eq!(Latency::of("none", &[]).max_micros, 0.0);
    }
}
