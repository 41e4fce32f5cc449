//! `discreet bench scale`: the engine on a synthetic shop far larger than the Online Retail
//! file (by default 100k items, 1M customers, 10M events; `discreet_eval::synthetic`), and
//! on the same shop at a tenth of that size first, so growth is visible. Each size is
//! ingested through the engine's real path (checked, sealed, durable batches) into a fresh
//! temporary folder, and every customer grants consent; then a fresh process opens that
//! folder, as a restart does, and measures the start-up rebuild (which learns every
//! consented event), resident memory, recommend, similar and forget. Prints figures beside
//! the design's targets; asserts nothing. The folder is deleted at the end of each size.

mod table;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;
use discreet_engine::{Caller, Engine, EngineOptions, EventContext, EventInput, EventType};
use discreet_eval::percentile;
use discreet_eval::synthetic::{DEFAULT_SEED, ShopShape, SyntheticKind};
use serde::{Deserialize, Serialize};

use crate::store::StoreArgs;

/// The design's targets for the default shop.
const TARGET_REBUILD_SECONDS: f64 = 120.0;
const TARGET_RSS_MIB: f64 = 8.0 * 1024.0;
const TARGET_RECOMMEND_P99_US: f64 = 1_000.0;
const TARGET_FORGET_P99_MS: f64 = 50.0;
/// The consent source recorded for the synthetic customers.
const CONSENT_SOURCE: &str = "bench-scale";
/// Threads recording consents.
const CONSENT_THREADS: usize = 16;

/// Arguments of `discreet bench scale`.
#[derive(clap::Args)]
pub struct ScaleBenchArgs {
    /// Items in the catalogue (the first run has a tenth).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub items: u32,
    /// Customers (the first run has a tenth).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub customers: u32,
    /// Events over the shop's year (the first run has a tenth).
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Seed of the synthetic shop.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Recommend and similar calls timed at each size.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub requests: u64,
    /// Customers forgotten at each size (those closest to 1,000 events).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub forgets: u64,
    /// Events per ingest batch (1 to 10,000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Internal: measure the store in this folder (the process a restart starts).
    #[arg(long, hide = true)]
    pub reopen: Option<PathBuf>,
    /// Internal: the shop's last event time (Unix seconds) for `--reopen`.
    #[arg(long, hide = true)]
    pub end: Option<i64>,
}

/// What ingesting one size cost.
#[derive(Clone, Debug, Serialize)]
struct IngestFigures {
    consent_seconds: f64,
    ingest_seconds: f64,
    ingest_events_per_second: f64,
    store_mib: f64,
}

/// What the reopened store measured (the child process prints it as JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ReopenFigures {
    events_read: u64,
    events_learned: u64,
    rebuild_seconds: f64,
    rss_after_rebuild_mib: f64,
    recommend_us_p50: f64,
    recommend_us_p99: f64,
    similar_us_p50: f64,
    similar_us_p99: f64,
    requests: usize,
    forgets: usize,
    forget_events_per_customer_mean: f64,
    forget_ms_p50: f64,
    forget_ms_p99: f64,
}

/// Every figure of one size.
#[derive(Clone, Debug, Serialize)]
struct SizeFigures {
    items: u32,
    customers: u32,
    events: u64,
    #[serde(flatten)]
    ingest: IngestFigures,
    #[serde(flatten)]
    reopen: ReopenFigures,
}

#[derive(Serialize)]
struct ScaleFigures {
    tenth: SizeFigures,
    full: SizeFigures,
    targets: Targets,
}

#[derive(Serialize)]
struct Targets {
    rebuild_seconds: f64,
    rss_mib: f64,
    recommend_us_p99: f64,
    forget_ms_p99: f64,
}

pub fn run(args: ScaleBenchArgs) -> anyhow::Result<()> {
    crate::serve::init_tracing(false);
    if let Some(folder) = &args.reopen {
        let end = args
            .end
            .context("--reopen needs --end, the shop's last event time")?;
        let figures = reopen_and_measure(folder, &shape_of(&args, end), &args)?;
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    // The shop's year ends yesterday, inside every category's retention.
    let end = discreet_vault::now_millis() / 1_000 - 86_400;
    let full = shape_of(&args, end);
    let tenth = full.tenth();
    let progress = |message: String| {
        if !args.json {
            eprintln!("{message}");
        }
    };
    let mut sizes = Vec::with_capacity(2);
    for (label, shape) in [("a tenth", tenth), ("full size", full)] {
        progress(format!(
            "{label}: {} items, {} customers, {} events",
            shape.items, shape.customers, shape.events
        ));
        let started = Instant::now();
        let figures = measure_size(&shape, &args)?;
        progress(format!(
            "{label} done in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
        sizes.push(figures);
    }
    let (Some(full_figures), Some(tenth_figures)) = (sizes.pop(), sizes.pop()) else {
        anyhow::bail!("a size was not measured");
    };
    let figures = ScaleFigures {
        tenth: tenth_figures,
        full: full_figures,
        targets: Targets {
            rebuild_seconds: TARGET_REBUILD_SECONDS,
            rss_mib: TARGET_RSS_MIB,
            recommend_us_p99: TARGET_RECOMMEND_P99_US,
            forget_ms_p99: TARGET_FORGET_P99_MS,
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        table::print_table(&figures);
    }
    Ok(())
}

fn shape_of(args: &ScaleBenchArgs, end: i64) -> ShopShape {
    ShopShape {
        seed: args.seed,
        ..ShopShape::new(args.items, args.customers, args.events, end)
    }
}

/// Ingests one size into a fresh folder, then measures it from a fresh process.
fn measure_size(shape: &ShopShape, args: &ScaleBenchArgs) -> anyhow::Result<SizeFigures> {
    let folder = tempfile::Builder::new()
        .prefix("discreet-bench-scale-")
        .tempdir()
        .context("creating a temporary folder")?;
    let ingest = ingest_shop(folder.path(), shape, args.batch as usize)?;
    let reopen = reopen_in_child(folder.path(), shape, args)?;
    folder.close().context("deleting the temporary folder")?;
    Ok(SizeFigures {
        items: shape.items,
        customers: shape.customers,
        events: shape.events,
        ingest,
        reopen,
    })
}

fn store_in(folder: &Path) -> StoreArgs {
    StoreArgs {
        data_dir: folder.join("data"),
        kek_file: folder.join("kek"),
        keys_dir: None,
        policy: None,
    }
}

fn open(folder: &Path) -> anyhow::Result<Engine> {
    store_in(folder)
        .open_engine_with(
            discreet_policy::Policy::builtin_retail(),
            EngineOptions::default(),
        )
        .map_err(|error| match error {
            crate::CommandError::Failed(error) => error,
            crate::CommandError::BadInput(message) | crate::CommandError::NotFound(message) => {
                anyhow::anyhow!(message)
            }
            crate::CommandError::Verification => anyhow::anyhow!("the store did not verify"),
        })
}

fn bar(length: u64, what: &str) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(length).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    )
}

/// Ingests the shop's events in batches, as a shop sending them would: the engine checks,
/// seals and stores each batch durably (a batch creates its new customers together, one
/// key-store commit for all). Then every customer grants consent for the models' purpose,
/// so the reopened store's start-up rebuild learns every event.
fn ingest_shop(folder: &Path, shape: &ShopShape, batch: usize) -> anyhow::Result<IngestFigures> {
    let engine = open(folder)?;
    engine.rebuild(&|_| {})?;
    let operator = Caller::operator();

    let ingesting = bar(shape.events, "ingesting");
    let started = Instant::now();
    let mut events = shape.stream().peekable();
    let mut inputs = Vec::with_capacity(batch);
    while events.peek().is_some() {
        inputs.clear();
        inputs.extend(events.by_ref().take(batch).map(|event| EventInput {
            subject: shape.customer_name(event.customer),
            event_type: match event.kind {
                SyntheticKind::View => EventType::View,
                SyntheticKind::Purchase => EventType::Purchase,
            },
            item: Some(shape.item_name(event.item)),
            at: event.at * 1_000,
            quantity: (event.kind == SyntheticKind::Purchase).then_some(event.quantity),
            query: None,
            value: None,
            context: EventContext {
                weather: None,
                country: Some(shape.country_of(event.customer).to_owned()),
            },
        }));
        let outcome = engine.ingest(&operator, &inputs, None)?;
        anyhow::ensure!(
            outcome.accepted == inputs.len() as u64,
            "the engine accepted {} of {} events",
            outcome.accepted,
            inputs.len()
        );
        ingesting.inc(inputs.len() as u64);
    }
    let ingest_seconds = started.elapsed().as_secs_f64();
    ingesting.finish_and_clear();
    let started = Instant::now();
    grant_consents(&engine, shape, &operator.key_id)?;
    let consent_seconds = started.elapsed().as_secs_f64();
    engine.shutdown();
    drop(engine);
    Ok(IngestFigures {
        consent_seconds,
        ingest_seconds,
        ingest_events_per_second: shape.events as f64 / ingest_seconds.max(f64::MIN_POSITIVE),
        store_mib: folder_bytes(folder) as f64 / (1024.0 * 1024.0),
    })
}

/// Records every customer's grant of the models' purpose in the vault (MACed with the
/// customer's key, on the ledger), for the models of the next start-up. From several
/// threads, so the vault's writer commits many grants in one transaction: the engine's own
/// `set_consent` takes its gate alone for each decision and teaches the models the
/// customer's events then, one durable commit after another, which at a million customers
/// takes far longer than the events do. (Granted before a customer's first event, each
/// grant would also create the customer alone: a key-store commit each.)
fn grant_consents(engine: &Engine, shape: &ShopShape, actor: &str) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU32, Ordering};
    let consent = discreet_vault::NewConsent {
        purpose: "personalization".to_owned(),
        granted: true,
        at: discreet_vault::now_millis(),
        source: CONSENT_SOURCE.to_owned(),
        policy_version: engine.policy().version().to_owned(),
    };
    let granting = bar(u64::from(shape.customers), "granting consent");
    let next = AtomicU32::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..CONSENT_THREADS)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let customer = next.fetch_add(1, Ordering::Relaxed);
                        if customer >= shape.customers {
                            return Ok(());
                        }
                        engine.vault().record_consent(
                            &shape.customer_name(customer),
                            actor,
                            &consent,
                        )?;
                        granting.inc(1);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a consent thread panicked"))??;
        }
        Ok(())
    })?;
    granting.finish_and_clear();
    Ok(())
}

/// Bytes of the files under `folder`.
fn folder_bytes(folder: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => folder_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs this binary on `folder` with `--reopen`: a fresh process, as after a restart, so
/// its resident memory holds what the rebuilt engine needs and nothing of the ingest.
fn reopen_in_child(
    folder: &Path,
    shape: &ShopShape,
    args: &ScaleBenchArgs,
) -> anyhow::Result<ReopenFigures> {
    let binary = std::env::current_exe().context("finding this program to reopen the store")?;
    let output = Command::new(binary)
        .args(["bench", "scale"])
        .args(["--items", &shape.items.to_string()])
        .args(["--customers", &shape.customers.to_string()])
        .args(["--events", &shape.events.to_string()])
        .args(["--seed", &shape.seed.to_string()])
        .args(["--requests", &args.requests.to_string()])
        .args(["--forgets", &args.forgets.to_string()])
        .args(["--end", &shape.end.to_string()])
        .arg("--reopen")
        .arg(folder)
        .stdin(Stdio::null())
        .stderr(if args.json {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .output()
        .context("running the reopened store")?;
    anyhow::ensure!(
        output.status.success(),
        "measuring the reopened store failed ({})",
        output.status
    );
    serde_json::from_slice(&output.stdout).context("reading the reopened store's figures")
}

/// Opens the store, rebuilds the models (the start-up a restart does), then times
/// recommend and similar over a sample of customers and items, and forget of the customers
/// closest to 1,000 events.
fn reopen_and_measure(
    folder: &Path,
    shape: &ShopShape,
    args: &ScaleBenchArgs,
) -> anyhow::Result<ReopenFigures> {
    let engine = open(folder)?;
    let rebuilding = bar(0, "rebuilding models");
    let started = Instant::now();
    let report = engine.rebuild(&|progress| {
        rebuilding.set_length(progress.events_total);
        rebuilding.set_position(progress.events_read);
    })?;
    let rebuild_seconds = started.elapsed().as_secs_f64();
    rebuilding.finish_and_clear();
    let rss_after_rebuild_mib = crate::bench_engine::rss_mib();

    // Items as pages are visited: drawn from the event stream, so popular items come up as
    // often as they are seen. Customers uniformly: every one of them visits.
    let requests = args.requests as usize;
    let stride = (shape.events / args.requests).max(1) as usize;
    let mut events_of = vec![0u32; shape.customers as usize];
    let mut items = Vec::with_capacity(requests);
    for (index, event) in shape.stream().enumerate() {
        if let Some(count) = events_of.get_mut(event.customer as usize) {
            *count = count.saturating_add(1);
        }
        if index % stride == 0 && items.len() < requests {
            items.push(shape.item_name(event.item));
        }
    }
    let caller = Caller::key("bench", "storefront");
    let context = EventContext::default();
    let mut recommend_us = Vec::with_capacity(requests);
    let mut similar_us = Vec::with_capacity(requests);
    let timing = bar(args.requests, "recommend and similar");
    for index in 0..requests {
        let customer = ((index as u64 * 7_919) % u64::from(shape.customers)) as u32;
        let subject = shape.customer_name(customer);
        let started = Instant::now();
        let answer = engine.recommend(&caller, &subject, "personalization", 10, &context)?;
        recommend_us.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(answer);
        let item = &items[index % items.len()];
        let started = Instant::now();
        let answer = engine.similar(&caller, item, 10);
        similar_us.push(started.elapsed().as_secs_f64() * 1e6);
        let _ = std::hint::black_box(answer);
        timing.inc(1);
    }
    timing.finish_and_clear();
    recommend_us.sort_by(f64::total_cmp);
    similar_us.sort_by(f64::total_cmp);

    // The design's forget target is for a customer with about 1,000 events.
    let mut by_closeness: Vec<u32> = (0..shape.customers).collect();
    by_closeness.sort_by_key(|customer| (events_of[*customer as usize].abs_diff(1_000), *customer));
    by_closeness.truncate(args.forgets as usize);
    engine.flush_access_log();
    engine.refresh_models();
    let operator = Caller::operator();
    let mut forget_ms = Vec::with_capacity(by_closeness.len());
    let mut forgotten_events = 0u64;
    let forgetting = bar(by_closeness.len() as u64, "forgetting");
    for customer in &by_closeness {
        let started = Instant::now();
        engine.forget(&operator, &shape.customer_name(*customer))?;
        forget_ms.push(started.elapsed().as_secs_f64() * 1e3);
        forgotten_events += u64::from(events_of[*customer as usize]);
        forgetting.inc(1);
    }
    forgetting.finish_and_clear();
    forget_ms.sort_by(f64::total_cmp);
    engine.shutdown();
    Ok(ReopenFigures {
        events_read: report.events_read,
        events_learned: report.events_learned,
        rebuild_seconds,
        rss_after_rebuild_mib,
        recommend_us_p50: percentile(&recommend_us, 0.5),
        recommend_us_p99: percentile(&recommend_us, 0.99),
        similar_us_p50: percentile(&similar_us, 0.5),
        similar_us_p99: percentile(&similar_us, 0.99),
        requests,
        forgets: forget_ms.len(),
        forget_events_per_customer_mean: forgotten_events as f64 / forget_ms.len().max(1) as f64,
        forget_ms_p50: percentile(&forget_ms, 0.5),
        forget_ms_p99: percentile(&forget_ms, 0.99),
    })
}
