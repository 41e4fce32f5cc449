//! `discreet bench`: benchmark programs that print figures. Nothing here asserts a time;
//! it measures and reports, so that figures in issue notes and the README can be reproduced.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use discreet_engine::{Caller, Engine, EngineOptions, IncidentKind, IncidentRequest};
use discreet_eval::memory::BuildCost;
use discreet_eval::percentile;
use discreet_policy::Policy;
use discreet_vault::{Kek, KekRing, LedgerDraft, NewEvent, SqliteOptions, Vault};
use serde::Serialize;

/// When the bench ledger's first entry was written (one entry a millisecond after it).
const LEDGER_START_MILLIS: i64 = 1_700_000_000_000;

/// Arguments of `discreet bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// What to measure.
#[derive(clap::Subcommand)]
pub enum BenchTarget {
    /// Sealed durable ingest vs plain SQLite inserts, erase latency, ledger verification and
    /// an incident's impact over that ledger.
    Vault(VaultBenchArgs),
    /// The engine in process on the Online Retail purchases: start-up rebuild, recommend,
    /// similar, export and forget latency, resident memory.
    Engine(crate::bench_engine::EngineBenchArgs),
    /// The engine on a synthetic shop (100k items, 1M customers, 10M events by default),
    /// beside the same shop at a tenth of the size: ingest, start-up rebuild, resident
    /// memory, recommend, similar and forget latency.
    Scale(crate::bench_scale::ScaleBenchArgs),
    /// The vault on PostgreSQL beside SQLite (ingest, start-up rebuild) and two nodes on one
    /// database: a change reaching the other node, forget latency with two nodes and one.
    Nodes(crate::bench_nodes::NodesBenchArgs),
}

/// Arguments of `discreet bench vault`.
#[derive(clap::Args)]
pub struct VaultBenchArgs {
    /// Events appended for the ingest figure (in batches of --batch).
    #[arg(long, default_value_t = 300_000)]
    pub events: usize,
    /// Events per durable batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Concurrent callers appending batches (as concurrent HTTP requests do); 1 measures one
    /// caller waiting for each commit before sealing the next batch.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Alternating sealed/plain rounds; the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Subjects forgotten for the erase-latency figure (each with --events-per-subject events).
    #[arg(long, default_value_t = 200)]
    pub erase_subjects: usize,
    /// Events each forgotten subject holds.
    #[arg(long, default_value_t = 1_000)]
    pub events_per_subject: usize,
    /// Ledger entries written before timing `verify`.
    #[arg(long, default_value_t = 1_000_000)]
    pub ledger_entries: usize,
    /// Folder for the benchmark's files (a fresh temporary folder when not set).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The figures `bench vault` prints.
#[derive(Serialize)]
struct VaultFigures {
    events: usize,
    batch: usize,
    producers: usize,
    rounds: usize,
    sealed_events_per_second: f64,
    plain_events_per_second: f64,
    sealed_to_plain_ratio: f64,
    erase_subjects: usize,
    events_per_erased_subject: usize,
    read_subject_ms_p50: f64,
    read_subject_ms_p99: f64,
    erase_ms_p50: f64,
    erase_ms_p99: f64,
    ledger_entries: i64,
    ledger_verify_seconds: f64,
    /// `Engine::create_incident` for a window over that whole ledger: its own verification,
    /// the impact scan, signing and storing the incident with its subjects' tokens.
    incident_seconds: f64,
    incident_to_verify_ratio: f64,
    /// Allocation peak of the incident above the level it started from.
    incident_peak_megabytes: f64,
    /// An incident over an empty window of the same ledger: its verification, no count.
    empty_incident_seconds: f64,
}

/// Runs `discreet bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        BenchTarget::Vault(args) => bench_vault(args),
        BenchTarget::Engine(args) => crate::bench_engine::run(args),
        BenchTarget::Scale(args) => crate::bench_scale::run(args),
        BenchTarget::Nodes(args) => crate::bench_nodes::run(args),
    }
}

/// A retail-shaped stream: invoices of about twenty lines from one of 4,338 customers,
/// payloads encoded as the engine encodes them.
fn retail_shaped_events(count: usize, subject_prefix: &str) -> Vec<NewEvent> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut events = Vec::with_capacity(count);
    let mut at = 1_291_191_960_000i64;
    while events.len() < count {
        let customer = 12_346 + next() % 4_338;
        let lines = 1 + next() % 40;
        at += 60_000 * (1 + (next() % 30) as i64);
        for _ in 0..lines {
            if events.len() == count {
                break;
            }
            let item = 20_000 + next() % 3_665;
            let payload = format!(
                "{{\"type\":\"purchase\",\"item\":\"{item}\",\"quantity\":{},\"context\":{{\"country\":\"United Kingdom\"}}}}",
                1 + next() % 24
            );
            events.push(NewEvent {
                subject: format!("{subject_prefix}{customer}"),
                category: "user.behavior.purchase_history".to_owned(),
                at,
                payload: payload.into_bytes(),
            });
        }
    }
    events
}

fn open_bench_vault(dir: &Path) -> anyhow::Result<Vault> {
    let kek = Kek::generate()?;
    Ok(Vault::open_sqlite(
        &SqliteOptions::new(dir.join("data"), None).with_key_store(dir.join("keystore.sqlite")),
        KekRing::new(kek),
    )?)
}

/// Sealed, logged, durable appends through the vault, in batches, from `producers` threads.
fn sealed_appends(
    dir: &Path,
    events: &[NewEvent],
    batch: usize,
    producers: usize,
) -> anyhow::Result<f64> {
    let vault = open_bench_vault(dir)?;
    // Create the subjects first: the figure is for steady-state appends.
    let mut seen = std::collections::BTreeSet::new();
    let first_events: Vec<NewEvent> = events
        .iter()
        .filter(|event| seen.insert(event.subject.clone()))
        .cloned()
        .collect();
    vault.append_events("bench", &first_events, None)?;
    let chunks: Vec<&[NewEvent]> = events.chunks(batch).collect();
    let next_chunk = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..producers.max(1))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let index = next_chunk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(index) else {
                            return Ok(());
                        };
                        vault.append_events("bench", chunk, None)?;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

/// The same rows, unsealed and unlogged, into one plain table: the cost-of-privacy baseline.
fn plain_inserts(dir: &Path, events: &[NewEvent], batch: usize) -> anyhow::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let mut connection = rusqlite::Connection::open(dir.join("plain.sqlite"))?;
    // The vault's own connection settings: the two runs differ only by what privacy costs.
    connection.execute_batch(discreet_vault::sqlite::DATA_PRAGMAS)?;
    connection.execute_batch(
        "CREATE TABLE events(seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, category TEXT NOT NULL,
                             at INTEGER NOT NULL, payload BLOB NOT NULL);
         CREATE INDEX events_by_subject ON events(subject, seq);
         CREATE INDEX events_by_category ON events(category, at);",
    )?;
    let started = Instant::now();
    for chunk in events.chunks(batch) {
        let transaction = connection.transaction()?;
        {
            let mut statement = transaction.prepare_cached(
                "INSERT INTO events(subject, category, at, payload) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for event in chunk {
                statement.execute(rusqlite::params![
                    event.subject,
                    event.category,
                    event.at,
                    event.payload
                ])?;
            }
        }
        transaction.commit()?;
    }
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

fn bench_vault(args: VaultBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batch > 0 && args.events > 0,
        "--events and --batch must be positive"
    );
    let temporary = tempfile::tempdir().context("creating a temporary folder")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_owned());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let progress = |message: &str| {
        if !args.json {
            eprintln!("{message}");
        }
    };

    progress(&format!(
        "ingest: {} events in batches of {} from {} producer(s) (sealed, durable)…",
        args.events, args.batch, args.producers
    ));
    let events = retail_shaped_events(args.events, "c-");
    // Sealed and plain runs alternate, each on fresh files, and the medians are reported,
    // so that a change of load on the machine weighs on both sides alike.
    let mut sealed_rates = Vec::with_capacity(args.rounds);
    let mut plain_rates = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds.max(1) {
        sealed_rates.push(sealed_appends(
            &dir.join(format!("sealed-{round}")),
            &events,
            args.batch,
            args.producers,
        )?);
        progress(&format!(
            "  round {}: sealed {:.0} events/s",
            round + 1,
            sealed_rates[round]
        ));
        plain_rates.push(plain_inserts(
            &dir.join(format!("plain-{round}")),
            &events,
            args.batch,
        )?);
        progress(&format!(
            "  round {}: plain  {:.0} events/s",
            round + 1,
            plain_rates[round]
        ));
    }
    sealed_rates.sort_by(f64::total_cmp);
    plain_rates.sort_by(f64::total_cmp);
    let sealed_per_second = percentile(&sealed_rates, 0.5);
    let plain_per_second = percentile(&plain_rates, 0.5);
    drop(events);

    progress(&format!(
        "erase: {} subjects with {} events each…",
        args.erase_subjects, args.events_per_subject
    ));
    let mut erase_ms = Vec::with_capacity(args.erase_subjects);
    let mut read_ms = Vec::with_capacity(args.erase_subjects);
    {
        let vault = open_bench_vault(&dir.join("erase"))?;
        vault.append_events("bench", &retail_shaped_events(50_000, "background-"), None)?;
        for subject in 0..args.erase_subjects {
            let customer = format!("leaver-{subject}");
            let events: Vec<NewEvent> = retail_shaped_events(args.events_per_subject, "x-")
                .into_iter()
                .map(|mut event| {
                    event.subject = customer.clone();
                    event
                })
                .collect();
            vault.append_events("bench", &events, None)?;
            // Reading everything the vault holds of one customer (what an export starts with).
            let started = Instant::now();
            let access = discreet_vault::Access {
                actor: "bench",
                purpose: "subject_rights",
            };
            let subject = vault.active_subject_id(&customer)?;
            let read = vault.events_of(subject, access)?.len()
                + vault.attributes_of(subject, access)?.len();
            read_ms.push(started.elapsed().as_secs_f64() * 1_000.0);
            anyhow::ensure!(read == args.events_per_subject, "read {read} values back");
            let started = Instant::now();
            let receipt = vault.forget(&customer, "bench", 0)?;
            erase_ms.push(started.elapsed().as_secs_f64() * 1_000.0);
            anyhow::ensure!(
                receipt.erased.events == args.events_per_subject as u64,
                "forget erased {} events",
                receipt.erased.events
            );
        }
    }
    erase_ms.sort_by(f64::total_cmp);
    read_ms.sort_by(f64::total_cmp);

    progress(&format!(
        "ledger: writing {} entries, then verifying…",
        args.ledger_entries
    ));
    let (ledger_entries, verify_seconds, incident) = {
        let vault = open_bench_vault(&dir.join("ledger"))?;
        let mut written = 0;
        while written < args.ledger_entries {
            let count = (args.ledger_entries - written).min(10_000);
            let entries = (0..count)
                .map(|i| {
                    LedgerDraft::new(
                        LEDGER_START_MILLIS + (written + i) as i64,
                        "bench",
                        "recommendations.read",
                    )
                    .subject(&format!("{:032x}", written + i))
                    .purpose("personalization")
                    .categories(["user.behavior.purchase_history"])
                })
                .collect();
            vault.record_access(entries)?;
            written += count;
        }
        let started = Instant::now();
        let verification = vault.verify_ledger()?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            verification.ok,
            "the ledger did not verify: {:?}",
            verification.problem
        );
        progress("incident: a window over the whole ledger…");
        let incident = incident_over_ledger(vault, args.ledger_entries)?;
        (verification.entries, seconds, incident)
    };

    let figures = VaultFigures {
        events: args.events,
        batch: args.batch,
        producers: args.producers,
        rounds: args.rounds.max(1),
        sealed_events_per_second: sealed_per_second,
        plain_events_per_second: plain_per_second,
        sealed_to_plain_ratio: sealed_per_second / plain_per_second,
        erase_subjects: args.erase_subjects,
        events_per_erased_subject: args.events_per_subject,
        read_subject_ms_p50: percentile(&read_ms, 0.50),
        read_subject_ms_p99: percentile(&read_ms, 0.99),
        erase_ms_p50: percentile(&erase_ms, 0.50),
        erase_ms_p99: percentile(&erase_ms, 0.99),
        ledger_entries,
        ledger_verify_seconds: verify_seconds,
        incident_seconds: incident.whole.seconds,
        incident_to_verify_ratio: incident.whole.seconds / verify_seconds,
        incident_peak_megabytes: incident.whole.peak_bytes as f64 / 1_048_576.0,
        empty_incident_seconds: incident.empty_seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        println!("figure                                   value");
        println!(
            "sealed durable appends (batch {:>5}, {} producer{})  {:>10.0} events/s",
            figures.batch,
            figures.producers,
            if figures.producers == 1 { "" } else { "s" },
            figures.sealed_events_per_second
        );
        println!(
            "plain rusqlite inserts (batch {:>5})    {:>10.0} events/s",
            figures.batch, figures.plain_events_per_second
        );
        println!(
            "sealed / plain (medians of {} rounds)    {:>10.2}",
            figures.rounds, figures.sealed_to_plain_ratio
        );
        println!(
            "read a subject, {} events (n={})      p50 {:.2} ms  p99 {:.2} ms",
            figures.events_per_erased_subject,
            figures.erase_subjects,
            figures.read_subject_ms_p50,
            figures.read_subject_ms_p99
        );
        println!(
            "erase, {} events/subject (n={})       p50 {:.2} ms  p99 {:.2} ms",
            figures.events_per_erased_subject,
            figures.erase_subjects,
            figures.erase_ms_p50,
            figures.erase_ms_p99
        );
        println!(
            "ledger verify, {} entries          {:>10.3} s",
            figures.ledger_entries, figures.ledger_verify_seconds
        );
        println!(
            "incident over that ledger (window)       {:>10.3} s  ({:.2} × verify, peak {:.0} MiB)",
            figures.incident_seconds,
            figures.incident_to_verify_ratio,
            figures.incident_peak_megabytes
        );
        println!(
            "incident over an empty window of it      {:>10.3} s  (the verification inside)",
            figures.empty_incident_seconds
        );
    }
    Ok(())
}

/// What an incident over the bench's ledger cost.
struct IncidentCost {
    /// A window over every entry (each a recommendation read of its own subject).
    whole: BuildCost,
    /// A window after the last entry: the same verification, nothing to count.
    empty_seconds: f64,
}

/// Times `Engine::create_incident` for a window over every entry of the bench's ledger,
/// checking that it counts them all, then for an empty window after them.
fn incident_over_ledger(vault: Vault, entries: usize) -> anyhow::Result<IncidentCost> {
    let engine = Engine::new(Policy::builtin_retail(), vault, EngineOptions::default())?;
    let window = |since: i64| IncidentRequest {
        kind: IncidentKind::Window,
        key_id: None,
        since: Some(since),
        until: None,
        aware_at: None,
        kek_exposed: None,
        description: None,
    };
    let (incident, whole) = discreet_eval::memory::measured(|| {
        Ok(engine.create_incident(&Caller::operator(), window(LEDGER_START_MILLIS))?)
    })?;
    anyhow::ensure!(
        incident.ledger.ok && incident.impact.subjects == entries as u64,
        "the incident counted {} subjects of {entries} (ledger ok: {})",
        incident.impact.subjects,
        incident.ledger.ok
    );
    let started = Instant::now();
    let empty = engine.create_incident(
        &Caller::operator(),
        window(LEDGER_START_MILLIS + entries as i64),
    )?;
    let empty_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        empty.impact.subjects == 0,
        "the empty window counted subjects"
    );
    engine.shutdown();
    Ok(IncidentCost {
        whole,
        empty_seconds,
    })
}
