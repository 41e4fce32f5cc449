//! The printed table of `bench scale`: each figure at a tenth and at full size, their ratio
//! and the design's target, with a verdict.

use super::{
    ScaleFigures, TARGET_FORGET_P99_MS, TARGET_REBUILD_SECONDS, TARGET_RECOMMEND_P99_US,
    TARGET_RSS_MIB,
};

/// One row: the figure at a tenth, at full size, their ratio, and the target if any.
fn row(name: &str, unit: &str, tenth: f64, full: f64, target: Option<String>) {
    let ratio = if tenth > 0.0 { full / tenth } else { f64::NAN };
    let format = |value: f64| {
        if value >= 100.0 {
            format!("{value:.0}")
        } else if value >= 10.0 {
            format!("{value:.1}")
        } else {
            format!("{value:.2}")
        }
    };
    println!(
        "{name:<28} {:>12} {:>12} {:>7.2}x  {}",
        format!("{} {unit}", format(tenth)),
        format!("{} {unit}", format(full)),
        ratio,
        target.unwrap_or_default()
    );
}

fn verdict(value: f64, target: f64, unit: &str) -> String {
    let mark = if value <= target { "met" } else { "missed" };
    format!("≤ {target} {unit} ({mark})")
}

pub(super) fn print_table(figures: &ScaleFigures) {
    let (tenth, full) = (&figures.tenth, &figures.full);
    println!(
        "synthetic shop: a tenth = {} items, {} customers, {} events; full = {} items, {} customers, {} events",
        tenth.items, tenth.customers, tenth.events, full.items, full.customers, full.events
    );
    println!(
        "{:<28} {:>12} {:>12} {:>8}  target (full size)",
        "figure", "a tenth", "full", "ratio"
    );
    row(
        "consent grants",
        "s",
        tenth.ingest.consent_seconds,
        full.ingest.consent_seconds,
        None,
    );
    row(
        "ingest (sealed, durable)",
        "ev/s",
        tenth.ingest.ingest_events_per_second,
        full.ingest.ingest_events_per_second,
        None,
    );
    row(
        "sealed store on disk",
        "MiB",
        tenth.ingest.store_mib,
        full.ingest.store_mib,
        None,
    );
    row(
        "start-up rebuild",
        "s",
        tenth.reopen.rebuild_seconds,
        full.reopen.rebuild_seconds,
        Some(verdict(
            full.reopen.rebuild_seconds,
            TARGET_REBUILD_SECONDS,
            "s",
        )),
    );
    row(
        "RSS after rebuild",
        "MiB",
        tenth.reopen.rss_after_rebuild_mib,
        full.reopen.rss_after_rebuild_mib,
        Some(verdict(
            full.reopen.rss_after_rebuild_mib,
            TARGET_RSS_MIB,
            "MiB",
        )),
    );
    row(
        "recommend p50",
        "µs",
        tenth.reopen.recommend_us_p50,
        full.reopen.recommend_us_p50,
        None,
    );
    row(
        "recommend p99",
        "µs",
        tenth.reopen.recommend_us_p99,
        full.reopen.recommend_us_p99,
        Some(verdict(
            full.reopen.recommend_us_p99,
            TARGET_RECOMMEND_P99_US,
            "µs",
        )),
    );
    row(
        "similar p50",
        "µs",
        tenth.reopen.similar_us_p50,
        full.reopen.similar_us_p50,
        None,
    );
    row(
        "similar p99",
        "µs",
        tenth.reopen.similar_us_p99,
        full.reopen.similar_us_p99,
        None,
    );
    row(
        "forget p50",
        "ms",
        tenth.reopen.forget_ms_p50,
        full.reopen.forget_ms_p50,
        None,
    );
    row(
        "forget p99",
        "ms",
        tenth.reopen.forget_ms_p99,
        full.reopen.forget_ms_p99,
        Some(verdict(
            full.reopen.forget_ms_p99,
            TARGET_FORGET_P99_MS,
            "ms",
        )),
    );
    println!(
        "events learned at rebuild: {} of {} (a tenth), {} of {} (full); {} recommend and similar calls per size; forget of the {} customers closest to 1,000 events (mean {:.0} and {:.0} events)",
        tenth.reopen.events_learned,
        tenth.reopen.events_read,
        full.reopen.events_learned,
        full.reopen.events_read,
        full.reopen.requests,
        full.reopen.forgets,
        tenth.reopen.forget_events_per_customer_mean,
        full.reopen.forget_events_per_customer_mean,
    );
}
