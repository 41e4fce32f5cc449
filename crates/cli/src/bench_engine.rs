//! `discreet bench engine`: the engine in process on the Online Retail purchases (bundled,
//! or a UCI file): start-up rebuild time, recommend / similar / export / forget latency and
//! resident memory; recommend with a category filter and availability beside without, in
//! the same run, the catalogue's memory and its upsert rate. Prints figures; asserts nothing.
//!
//! The retail data has no categories: for the filtered timing only, each item is put in one
//! of 16 synthetic categories (`bench/c00` .. `bench/c15`, by a hash of its code), and one
//! item in 40 (by another hash) is out of stock.

use std::path::PathBuf;
use std::time::Instant;

use discreet_engine::{Caller, EngineOptions, EventContext, ItemFilter, ItemInput};
use discreet_eval::percentile;
use discreet_eval::retail_csv::{RetailRow, read_retail_file};
use serde::Serialize;

use crate::demo::{bundled_items, bundled_purchases, demo_consents, record_consents};
use crate::store::StoreArgs;

/// Arguments of `discreet bench engine`.
#[derive(clap::Args)]
pub struct EngineBenchArgs {
    /// A UCI Online Retail file; the bundled purchases when absent.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Recommend and similar calls timed.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Import the purchases this many times, each copy under its own customer ids
    /// (`c-`, `c1-`, `c2-`, ...): 3 copies make about 1.2 million events.
    #[arg(long, default_value_t = 1)]
    pub copies: usize,
    /// Customers forgotten (those with closest to 1,000 events).
    #[arg(long, default_value_t = 20)]
    pub forgets: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EngineFigures {
    events: u64,
    import_seconds: f64,
    rebuild_seconds: f64,
    rss_after_rebuild_mib: f64,
    recommend_us_p50: f64,
    recommend_us_p99: f64,
    /// On-CPU time of the calling thread per recommend call: the wall-clock figure with the
    /// time the thread waited for a core taken out (these machines are shared).
    recommend_cpu_us_p50: f64,
    recommend_cpu_us_p99: f64,
    /// The same calls with `category=bench/c03` (1 item in 16) and unavailable items left out.
    recommend_filtered_us_p50: f64,
    recommend_filtered_us_p99: f64,
    recommend_filtered_cpu_us_p50: f64,
    recommend_filtered_cpu_us_p99: f64,
    declared_items: usize,
    /// Approximate bytes of the in-memory catalogue (records, maps, the dense table).
    catalogue_memory_kib: f64,
    /// `upsert_items` of new items in batches of 1,000.
    catalogue_upsert_items_per_second: f64,
    similar_us_p50: f64,
    similar_us_p99: f64,
    export_events_per_customer: usize,
    export_ms_p50: f64,
    export_ms_p99: f64,
    /// The privacy center's pages for the export's customer, beside its JSON export over the
    /// same router.
    pages: crate::bench_pages::PageFigures,
    forget_events_per_customer_mean: f64,
    forget_ms_p50: f64,
    forget_ms_p99: f64,
    /// The recommend latencies above, but taken while a 10,000-event batch is learned.
    recommend_while_learning_us_p50: f64,
    recommend_while_learning_us_p99: f64,
    recommend_while_learning_calls: usize,
    /// One consenting customer sends 10,000 distinct new items in one batch.
    hostile_ingest_ms: f64,
    hostile_learned_ms: f64,
    hostile_rss_growth_mib: f64,
}

pub(crate) fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

pub fn run(args: EngineBenchArgs) -> anyhow::Result<()> {
    crate::serve::init_tracing(false);
    let retail = match &args.file {
        Some(file) => read_retail_file(file)?,
        None => bundled_purchases()?,
    };
    let purchases: Vec<&RetailRow> = retail
        .rows
        .iter()
        .filter(|row| row.is_protocol_purchase())
        .collect();
    let mut per_customer: std::collections::BTreeMap<&str, usize> = Default::default();
    for row in &purchases {
        *per_customer
            .entry(row.customer.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let folder = tempfile::tempdir()?;
    let store = StoreArgs {
        data_dir: folder.path().join("data"),
        kek_file: folder.path().join("kek"),
        keys_dir: None,
        policy: None,
    };
    let started = Instant::now();
    {
        let engine = store
            .open_engine()
            .map_err(crate::CommandError::into_anyhow)?;
        engine.rebuild(&|_| {})?;
        let last = purchases.iter().map(|row| row.at).max().unwrap_or(0);
        let shift = (discreet_vault::now_millis() / 1_000 - 86_400 - last).max(0);
        for copy in 0..args.copies.max(1) {
            let prefix = if copy == 0 {
                "c-".to_owned()
            } else {
                format!("c{copy}-")
            };
            record_consents(&engine, &prefix, per_customer.keys().copied())
                .map_err(crate::CommandError::into_anyhow)?;
            crate::import::ingest_rows(&engine, &purchases, shift, &prefix, 10_000, 0)
                .map_err(crate::CommandError::into_anyhow)?;
        }
        let items = match &args.file {
            Some(_) => crate::items::item_facts(&retail.rows),
            None => bundled_items().map_err(crate::CommandError::into_anyhow)?,
        };
        crate::items::store_items(&engine, with_bench_categories(items))
            .map_err(crate::CommandError::into_anyhow)?;
        engine.shutdown();
    }
    let import_seconds = started.elapsed().as_secs_f64();

    let engine = store
        .open_engine_with(
            discreet_policy::Policy::builtin_retail(),
            EngineOptions::default(),
        )
        .map_err(crate::CommandError::into_anyhow)?;
    let started = Instant::now();
    let report = engine.rebuild(&|_| {})?;
    let rebuild_seconds = started.elapsed().as_secs_f64();
    let rss_after_rebuild_mib = rss_mib();

    let caller = Caller::key("bench", "storefront");
    let consenting: Vec<String> = per_customer
        .keys()
        .filter(|customer| demo_consents(customer)[0].1 == Some(true))
        .map(|customer| format!("c-{customer}"))
        .collect();
    let items: Vec<&str> = {
        let mut items: Vec<&str> = purchases
            .iter()
            .map(|row| row.stock_code.as_str())
            .collect();
        items.sort_unstable();
        items.dedup();
        items
    };
    let context = EventContext::default();
    let filter = ItemFilter {
        categories: vec!["bench/c03".into()],
        ..ItemFilter::default()
    };
    let mut recommend_us = Vec::with_capacity(args.requests);
    let mut recommend_filtered_us = Vec::with_capacity(args.requests);
    let mut recommend_cpu_us = Vec::with_capacity(args.requests);
    let mut recommend_filtered_cpu_us = Vec::with_capacity(args.requests);
    let mut similar_us = Vec::with_capacity(args.requests);
    for index in 0..args.requests {
        let subject = &consenting[(index * 7919) % consenting.len()];
        // The same customer with and without the filter, in alternating order, so neither
        // always finds the caches warmed by the other.
        for filtered in [index % 2 == 1, index % 2 == 0] {
            let cpu_started = thread_cpu_seconds();
            let started = Instant::now();
            let answer = if filtered {
                engine.recommend_filtered(
                    &caller,
                    subject,
                    "personalization",
                    10,
                    &context,
                    &filter,
                )?
            } else {
                engine.recommend(&caller, subject, "personalization", 10, &context)?
            };
            let elapsed_us = started.elapsed().as_secs_f64() * 1e6;
            if filtered {
                recommend_filtered_us.push(elapsed_us);
                recommend_filtered_cpu_us.push((thread_cpu_seconds() - cpu_started) * 1e6);
            } else {
                recommend_us.push(elapsed_us);
                recommend_cpu_us.push((thread_cpu_seconds() - cpu_started) * 1e6);
            }
            std::hint::black_box(answer);
        }
        let item = items[(index * 104_729) % items.len()];
        let started = Instant::now();
        let answer = engine.similar(&caller, item, 10);
        similar_us.push(started.elapsed().as_secs_f64() * 1e6);
        let _ = std::hint::black_box(answer);
    }
    recommend_us.sort_by(f64::total_cmp);
    recommend_filtered_us.sort_by(f64::total_cmp);
    recommend_filtered_cpu_us.sort_by(f64::total_cmp);
    recommend_cpu_us.sort_by(f64::total_cmp);
    similar_us.sort_by(f64::total_cmp);
    let declared_items = engine.figures().declared_items as usize;
    let catalogue_memory_kib = engine.catalogue_memory_bytes() as f64 / 1024.0;
    let catalogue_upsert_items_per_second = upsert_rate(&engine, &caller)?;

    // Export and forget: the consenting customers with the most events (about 1,000 and up).
    let mut heavy: Vec<(&str, usize)> = per_customer
        .iter()
        .filter(|(customer, _)| demo_consents(customer)[0].1 == Some(true))
        .map(|(customer, count)| (*customer, *count))
        .collect();
    // Closest to 1,000 events first: the design's forget and export targets are for them.
    heavy.sort_by_key(|(_, count)| count.abs_diff(1_000));
    let near_thousand = heavy
        .iter()
        .min_by_key(|(_, count)| count.abs_diff(1_000))
        .copied()
        .unwrap_or(("", 0));
    let operator = Caller::operator();
    // The read entries of the recommend calls above reach the ledger now, not inside the
    // first timed export.
    engine.flush_access_log();
    let mut export_ms = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let export = engine.export(&operator, &format!("c-{}", near_thousand.0))?;
        export_ms.push(started.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(export);
    }
    export_ms.sort_by(f64::total_cmp);
    let pages = crate::bench_pages::time_pages(&engine, &format!("c-{}", near_thousand.0))?;
    engine.refresh_models();
    let mut forget_ms = Vec::new();
    let mut forgotten_events = 0usize;
    for (customer, count) in heavy.iter().take(args.forgets) {
        let started = Instant::now();
        engine.forget(&operator, &format!("c-{customer}"))?;
        forget_ms.push(started.elapsed().as_secs_f64() * 1e3);
        forgotten_events += count;
    }
    forget_ms.sort_by(f64::total_cmp);
    engine.settle();
    engine.refresh_models();
    let hostile = hostile_customer(&engine, &caller, &consenting)?;
    engine.shutdown();

    let figures = EngineFigures {
        events: report.events_read,
        import_seconds,
        rebuild_seconds,
        rss_after_rebuild_mib,
        recommend_us_p50: percentile(&recommend_us, 0.5),
        recommend_us_p99: percentile(&recommend_us, 0.99),
        recommend_cpu_us_p50: percentile(&recommend_cpu_us, 0.5),
        recommend_cpu_us_p99: percentile(&recommend_cpu_us, 0.99),
        recommend_filtered_us_p50: percentile(&recommend_filtered_us, 0.5),
        recommend_filtered_us_p99: percentile(&recommend_filtered_us, 0.99),
        recommend_filtered_cpu_us_p50: percentile(&recommend_filtered_cpu_us, 0.5),
        recommend_filtered_cpu_us_p99: percentile(&recommend_filtered_cpu_us, 0.99),
        declared_items,
        catalogue_memory_kib,
        catalogue_upsert_items_per_second,
        similar_us_p50: percentile(&similar_us, 0.5),
        similar_us_p99: percentile(&similar_us, 0.99),
        export_events_per_customer: near_thousand.1,
        export_ms_p50: percentile(&export_ms, 0.5),
        export_ms_p99: percentile(&export_ms, 0.99),
        pages,
        forget_events_per_customer_mean: forgotten_events as f64 / forget_ms.len().max(1) as f64,
        forget_ms_p50: percentile(&forget_ms, 0.5),
        forget_ms_p99: percentile(&forget_ms, 0.99),
        recommend_while_learning_us_p50: percentile(&hostile.recommend_us, 0.5),
        recommend_while_learning_us_p99: percentile(&hostile.recommend_us, 0.99),
        recommend_while_learning_calls: hostile.recommend_us.len(),
        hostile_ingest_ms: hostile.ingest_ms,
        hostile_learned_ms: hostile.learned_ms,
        hostile_rss_growth_mib: hostile.rss_growth_mib,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        println!(
            "engine on {} events ({} learned): import {:.1} s, start-up rebuild {:.2} s, RSS after rebuild {:.0} MiB",
            figures.events,
            report.events_learned,
            figures.import_seconds,
            figures.rebuild_seconds,
            figures.rss_after_rebuild_mib
        );
        println!(
            "recommend p50 {:.0} µs p99 {:.0} µs (on-CPU p50 {:.0} µs p99 {:.0} µs); similar p50 {:.1} µs p99 {:.1} µs ({} calls each)",
            figures.recommend_us_p50,
            figures.recommend_us_p99,
            figures.recommend_cpu_us_p50,
            figures.recommend_cpu_us_p99,
            figures.similar_us_p50,
            figures.similar_us_p99,
            args.requests
        );
        println!(
            "recommend with category=bench/c03 (1 item in 16) and out-of-stock items left out: p50 {:.0} µs p99 {:.0} µs, on-CPU p50 {:.0} µs p99 {:.0} µs (the same customers, each call beside its unfiltered one, in alternating order)",
            figures.recommend_filtered_us_p50,
            figures.recommend_filtered_us_p99,
            figures.recommend_filtered_cpu_us_p50,
            figures.recommend_filtered_cpu_us_p99
        );
        println!(
            "catalogue of {} declared items: about {:.0} KiB in memory; upserts of new items in batches of 1,000: {:.0} items/s",
            figures.declared_items,
            figures.catalogue_memory_kib,
            figures.catalogue_upsert_items_per_second
        );
        println!(
            "export of a {}-event customer p50 {:.1} ms p99 {:.1} ms; forget of the {} customers closest to 1,000 events (mean {:.0}) p50 {:.1} ms p99 {:.1} ms",
            figures.export_events_per_customer,
            figures.export_ms_p50,
            figures.export_ms_p99,
            forget_ms.len(),
            figures.forget_events_per_customer_mean,
            figures.forget_ms_p50,
            figures.forget_ms_p99
        );
        let pages = figures.pages;
        println!(
            "privacy center for that customer, server side through the router: overview p50 {:.1} ms p99 {:.1} ms, data page p50 {:.1} ms p99 {:.1} ms; the JSON export over HTTP p50 {:.1} ms p99 {:.1} ms (overview/export p50 {:.2}x, data/export {:.2}x)",
            pages.overview_ms_p50,
            pages.overview_ms_p99,
            pages.data_ms_p50,
            pages.data_ms_p99,
            pages.export_http_ms_p50,
            pages.export_http_ms_p99,
            pages.overview_ms_p50 / pages.export_http_ms_p50,
            pages.data_ms_p50 / pages.export_http_ms_p50
        );
        println!(
            "console dashboard (replays all {} ledger entries) p50 {:.1} ms p99 {:.1} ms through the router ({:.2}x the privacy-center overview p50)",
            pages.dashboard_ledger_entries,
            pages.dashboard_ms_p50,
            pages.dashboard_ms_p99,
            pages.dashboard_ms_p50 / pages.overview_ms_p50
        );
        println!(
            "one customer sending 10,000 distinct new items in one batch: stored in {:.0} ms, learned {:.0} ms after the request began, RSS +{:.1} MiB; recommend meanwhile p50 {:.0} µs p99 {:.0} µs ({} calls)",
            figures.hostile_ingest_ms,
            figures.hostile_learned_ms,
            figures.hostile_rss_growth_mib,
            figures.recommend_while_learning_us_p50,
            figures.recommend_while_learning_us_p99,
            figures.recommend_while_learning_calls
        );
    }
    Ok(())
}

/// `items` in the synthetic bench categories, one in 40 out of stock.
fn with_bench_categories(mut items: Vec<ItemInput>) -> Vec<ItemInput> {
    for item in &mut items {
        let group = discreet_policy::fnv1a_64(item.item.as_bytes()) % 16;
        item.categories = vec![format!("bench/c{group:02}")];
        item.available = !discreet_policy::fnv1a_64(format!("{}/stock", item.item).as_bytes())
            .is_multiple_of(40);
    }
    items
}

/// Items per second of `upsert_items` with 20 batches of 1,000 new items each.
fn upsert_rate(engine: &discreet_engine::Engine, caller: &Caller) -> anyhow::Result<f64> {
    let batches: Vec<Vec<ItemInput>> = (0..20)
        .map(|batch| {
            (0..1_000)
                .map(|index| ItemInput {
                    item: format!("bench-catalogue-{batch}-{index}"),
                    title: format!("BENCH ITEM {batch} {index}"),
                    categories: vec![format!("bench/c{:02}", index % 16)],
                    price: Some(1.0 + index as f64 / 100.0),
                    available: true,
                })
                .collect()
        })
        .collect();
    let n_items: usize = batches.iter().map(Vec::len).sum();
    let started = Instant::now();
    for batch in batches {
        engine.upsert_items(caller, batch)?;
    }
    Ok(n_items as f64 / started.elapsed().as_secs_f64())
}

/// What the hostile customer's batch cost, and the recommend latencies measured meanwhile.
struct HostileFigures {
    ingest_ms: f64,
    learned_ms: f64,
    rss_growth_mib: f64,
    recommend_us: Vec<f64>,
}

/// One consenting customer sends 10,000 distinct items nobody else has, in one batch, while
/// another thread asks for recommendations of other customers until it is learned.
fn hostile_customer(
    engine: &discreet_engine::Engine,
    caller: &Caller,
    consenting: &[String],
) -> anyhow::Result<HostileFigures> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let subject = "hostile-bench-customer";
    engine.set_consent(caller, subject, "personalization", true, "bench")?;
    let now = discreet_vault::now_millis();
    let events: Vec<discreet_engine::EventInput> = (0..10_000)
        .map(|item| discreet_engine::EventInput {
            subject: subject.to_owned(),
            event_type: discreet_engine::EventType::View,
            item: Some(format!("hostile-item-{item}")),
            at: now - 60_000 + item,
            quantity: None,
            query: None,
            value: None,
            context: EventContext::default(),
        })
        .collect();
    let rss_before = rss_mib();
    let learning = AtomicBool::new(true);
    let context = EventContext::default();
    let (ingest_ms, learned_ms, recommend_us) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut latencies = Vec::new();
            let mut index = 0;
            while learning.load(Ordering::SeqCst) {
                let subject = &consenting[(index * 7919) % consenting.len()];
                index += 1;
                let started = Instant::now();
                let answer = engine.recommend(caller, subject, "personalization", 10, &context);
                latencies.push(started.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(answer).ok();
            }
            latencies
        });
        let started = Instant::now();
        let stored = engine.ingest(caller, &events, None);
        let ingest_ms = started.elapsed().as_secs_f64() * 1e3;
        engine.settle();
        let learned_ms = started.elapsed().as_secs_f64() * 1e3;
        learning.store(false, Ordering::SeqCst);
        let mut latencies = reader.join().unwrap_or_default();
        latencies.sort_by(f64::total_cmp);
        stored.map(|_| (ingest_ms, learned_ms, latencies))
    })?;
    engine.refresh_models();
    Ok(HostileFigures {
        ingest_ms,
        learned_ms,
        rss_growth_mib: rss_mib() - rss_before,
        recommend_us,
    })
}

/// Seconds the calling thread has spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`; 0 if the clock
/// cannot be read, which Linux never refuses).
fn thread_cpu_seconds() -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through a valid, exclusive pointer and
    // keeps no reference to it.
    let outcome = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if outcome != 0 {
        return 0.0;
    }
    time.tv_sec as f64 + time.tv_nsec as f64 * 1e-9
}
