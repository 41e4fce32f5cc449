//! `discreet bench nodes --postgres SETTINGS`: the vault on PostgreSQL beside SQLite, and two
//! nodes on one database, in one run. Imports the Online Retail purchases into both backends
//! (batches of 1,000; events/s), rebuilds the models from each (start-up rebuild), then runs
//! two engines on the PostgreSQL store as two nodes (each with its change loop, as two
//! `serve` processes would): how long a change on one takes to show in the other's answers,
//! and forget latency with two nodes and then with one. Works in schemas of its own, dropped
//! at the end. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use discreet_engine::{Caller, Engine, EventContext, EventInput, EventType};
use discreet_eval::percentile;
use discreet_eval::retail_csv::RetailRow;
use serde::Serialize;

use crate::demo::{bundled_purchases, record_consents};
use crate::store::{PostgresArgs, StoreArgs};

/// Arguments of `discreet bench nodes`.
#[derive(clap::Args)]
pub struct NodesBenchArgs {
    /// The PostgreSQL database to measure on (`host=... user=... dbname=...`).
    #[arg(long, env = "DISCREET_POSTGRES", hide_env_values = true)]
    pub postgres: String,
    /// Changes propagated, and forgets timed, per figure.
    #[arg(long, default_value_t = 100)]
    pub rounds: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct NodeFigures {
    events: usize,
    sqlite_ingest_events_per_second: f64,
    postgres_ingest_events_per_second: f64,
    sqlite_rebuild_seconds: f64,
    postgres_rebuild_seconds: f64,
    propagation_ms_p50: f64,
    propagation_ms_p99: f64,
    forget_two_nodes_ms_p50: f64,
    forget_two_nodes_ms_p99: f64,
    forget_one_node_ms_p50: f64,
    forget_one_node_ms_p99: f64,
}

/// Drops the bench's schemas when it ends, however it ends.
struct Schemas {
    options: discreet_vault::PostgresOptions,
}

impl Drop for Schemas {
    fn drop(&mut self) {
        if let Err(error) = discreet_vault::postgres::drop_store(&self.options) {
            eprintln!("warning: the bench's schemas could not be dropped: {error}");
        }
    }
}

/// Imports the purchases (consents first) in batches of 1,000; answers events/s.
fn import(engine: &Engine, purchases: &[&RetailRow], customers: &[&str]) -> anyhow::Result<f64> {
    engine.rebuild(&|_| {})?;
    let last = purchases.iter().map(|row| row.at).max().unwrap_or(0);
    let shift = (discreet_vault::now_millis() / 1_000 - 86_400 - last).max(0);
    record_consents(engine, "c-", customers.iter().copied())
        .map_err(crate::CommandError::into_anyhow)?;
    let started = Instant::now();
    crate::import::ingest_rows(engine, purchases, shift, "c-", 1_000, 0)
        .map_err(crate::CommandError::into_anyhow)?;
    Ok(purchases.len() as f64 / started.elapsed().as_secs_f64())
}

/// A purchase of `item` by `subject` a minute ago.
fn purchase(subject: &str, item: &str) -> EventInput {
    EventInput {
        subject: subject.to_owned(),
        event_type: EventType::Purchase,
        item: Some(item.to_owned()),
        at: discreet_vault::now_millis() - 60_000,
        quantity: None,
        query: None,
        value: None,
        context: EventContext::default(),
    }
}

/// A new consenting customer buys a pair of new items on `on`.
fn buy_pair(on: &Engine, subject: &str, pair: [&str; 2]) -> anyhow::Result<()> {
    let caller = Caller::operator();
    on.set_consent(&caller, subject, "personalization", true, "bench")?;
    on.ingest(
        &caller,
        &[purchase(subject, pair[0]), purchase(subject, pair[1])],
        None,
    )?;
    Ok(())
}

fn shows(engine: &Engine, item: &str, other: &str) -> bool {
    engine
        .similar(&Caller::operator(), item, 8)
        .is_ok_and(|similar| similar.iter().any(|entry| entry.item == other))
}

pub fn run(args: NodesBenchArgs) -> anyhow::Result<()> {
    crate::serve::init_tracing(false);
    let retail = bundled_purchases()?;
    let purchases: Vec<&RetailRow> = retail
        .rows
        .iter()
        .filter(|row| row.is_protocol_purchase())
        .collect();
    let mut customers: Vec<&str> = purchases
        .iter()
        .map(|row| row.customer.as_deref().unwrap_or_default())
        .collect();
    customers.sort_unstable();
    customers.dedup();
    let folder = tempfile::tempdir()?;
    let store = StoreArgs {
        data_dir: folder.path().join("data"),
        kek_file: folder.path().join("kek"),
        keys_dir: None,
        policy: None,
    };
    let postgres = PostgresArgs {
        postgres: Some(args.postgres.clone()),
        postgres_keys: None,
        postgres_schema: format!("bench_nodes_{}", std::process::id()),
        node: None,
    };
    let schemas = Schemas {
        options: postgres
            .options()
            .ok_or_else(|| anyhow::anyhow!("no PostgreSQL settings"))?,
    };
    let node = |name: &str| PostgresArgs {
        node: Some(name.to_owned()),
        ..postgres.clone()
    };

    eprintln!("importing {} purchases into SQLite…", purchases.len());
    let sqlite_ingest = {
        let engine = store
            .open_engine()
            .map_err(crate::CommandError::into_anyhow)?;
        let rate = import(&engine, &purchases, &customers)?;
        engine.shutdown();
        rate
    };
    eprintln!("importing them into PostgreSQL…");
    let postgres_ingest = {
        let engine = store
            .open_engine_on(&postgres)
            .map_err(crate::CommandError::into_anyhow)?;
        let rate = import(&engine, &purchases, &customers)?;
        engine.shutdown();
        rate
    };
    let rebuild_seconds = |engine: Engine| -> anyhow::Result<(Engine, f64)> {
        let started = Instant::now();
        engine.rebuild(&|_| {})?;
        Ok((engine, started.elapsed().as_secs_f64()))
    };
    eprintln!("rebuilding from each…");
    let (sqlite, sqlite_rebuild) = rebuild_seconds(
        store
            .open_engine()
            .map_err(crate::CommandError::into_anyhow)?,
    )?;
    drop(sqlite);
    let (a, postgres_rebuild) = rebuild_seconds(
        store
            .open_engine_serving(&node("bench-a"))
            .map_err(crate::CommandError::into_anyhow)?,
    )?;
    a.start_background();
    let (b, _) = rebuild_seconds(
        store
            .open_engine_serving(&node("bench-b"))
            .map_err(crate::CommandError::into_anyhow)?,
    )?;
    b.start_background();

    eprintln!(
        "two nodes: {} changes from A to B, forgets on B…",
        args.rounds
    );
    let mut propagation = Vec::with_capacity(args.rounds);
    let mut forget_two = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let subject = format!("bench-pair-{round}");
        let (x, y) = (format!("BENCH-{round}-X"), format!("BENCH-{round}-Y"));
        buy_pair(&a, &subject, [&x, &y])?;
        let started = Instant::now();
        while !shows(&b, &x, &y) {
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("a change did not reach the other node within 30 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        propagation.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        b.forget(&Caller::operator(), &subject)?;
        forget_two.push(started.elapsed().as_secs_f64() * 1e3);
    }
    b.shutdown();
    drop(b);
    eprintln!("one node: forgets on A…");
    let mut forget_one = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let subject = format!("bench-alone-{round}");
        buy_pair(
            &a,
            &subject,
            [&format!("ALONE-{round}-X"), &format!("ALONE-{round}-Y")],
        )?;
        let started = Instant::now();
        a.forget(&Caller::operator(), &subject)?;
        forget_one.push(started.elapsed().as_secs_f64() * 1e3);
    }
    a.shutdown();
    drop(a);
    for samples in [&mut propagation, &mut forget_two, &mut forget_one] {
        samples.sort_by(f64::total_cmp);
    }
    let figures = NodeFigures {
        events: purchases.len(),
        sqlite_ingest_events_per_second: sqlite_ingest,
        postgres_ingest_events_per_second: postgres_ingest,
        sqlite_rebuild_seconds: sqlite_rebuild,
        postgres_rebuild_seconds: postgres_rebuild,
        propagation_ms_p50: percentile(&propagation, 0.5),
        propagation_ms_p99: percentile(&propagation, 0.99),
        forget_two_nodes_ms_p50: percentile(&forget_two, 0.5),
        forget_two_nodes_ms_p99: percentile(&forget_two, 0.99),
        forget_one_node_ms_p50: percentile(&forget_one, 0.5),
        forget_one_node_ms_p99: percentile(&forget_one, 0.99),
    };
    drop(schemas);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }
    println!("figure                                   value");
    println!(
        "ingest, batches of 1000 ({} events)     SQLite {:.0} events/s, PostgreSQL {:.0} events/s ({:.2}x)",
        figures.events,
        figures.sqlite_ingest_events_per_second,
        figures.postgres_ingest_events_per_second,
        figures.postgres_ingest_events_per_second / figures.sqlite_ingest_events_per_second
    );
    println!(
        "start-up rebuild                         SQLite {:.2} s, PostgreSQL {:.2} s ({:.2}x)",
        figures.sqlite_rebuild_seconds,
        figures.postgres_rebuild_seconds,
        figures.postgres_rebuild_seconds / figures.sqlite_rebuild_seconds
    );
    println!(
        "a change reaching the other node         p50 {:.1} ms  p99 {:.1} ms  (n={})",
        figures.propagation_ms_p50, figures.propagation_ms_p99, args.rounds
    );
    println!(
        "forget, two nodes                        p50 {:.1} ms  p99 {:.1} ms",
        figures.forget_two_nodes_ms_p50, figures.forget_two_nodes_ms_p99
    );
    println!(
        "forget, one node                         p50 {:.1} ms  p99 {:.1} ms  ({:.2}x of two)",
        figures.forget_one_node_ms_p50,
        figures.forget_one_node_ms_p99,
        figures.forget_one_node_ms_p50 / figures.forget_two_nodes_ms_p50
    );
    Ok(())
}
