//! Sealed, durable ingest on PostgreSQL beside SQLite in the same run: the same retail-shaped
//! events appended through `Vault::append_events` in batches, rounds alternating between the
//! backends (each on a fresh store), medians printed; then the vault's side of a forget
//! (intent, key destroyed — and on PostgreSQL the key table vacuumed —, rows erased,
//! receipt) for customers of that store. It prints figures and asserts none.
//!
//! ```text
//! DISCREET_TEST_POSTGRES="host=127.0.0.1 user=postgres dbname=test" \
//!     cargo run --release -p discreet-vault --example ingest_postgres -- [EVENTS] [BATCH] [PRODUCERS] [ROUNDS]
//! ```
//!
//! The PostgreSQL run makes its own pair of schemas in that database and drops them after.

use std::time::Instant;

use discreet_vault::postgres::PgRuntime;
use discreet_vault::{Kek, KekRing, NewEvent, PostgresOptions, SqliteOptions, Vault};

/// Customers forgotten after each round's ingest.
const FORGETS_PER_ROUND: usize = 100;

/// A retail-shaped stream: invoices of up to forty lines from one of 4,338 customers, payloads
/// shaped as the engine encodes them (the same generator as `discreet bench vault`).
fn retail_shaped_events(count: usize) -> Vec<NewEvent> {
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
                subject: format!("c-{customer}"),
                category: "user.behavior.purchase_history".to_owned(),
                at,
                payload: payload.into_bytes(),
            });
        }
    }
    events
}

/// Appends `events` in batches of `batch` from `producers` threads; events per second.
/// The subjects are created first: the figure is for steady-state appends.
fn appends(vault: &Vault, events: &[NewEvent], batch: usize, producers: usize) -> f64 {
    let mut seen = std::collections::BTreeSet::new();
    let first: Vec<NewEvent> = events
        .iter()
        .filter(|event| seen.insert(event.subject.clone()))
        .cloned()
        .collect();
    for chunk in first.chunks(batch) {
        vault.append_events("bench", chunk, None).expect("subjects");
    }
    let chunks: Vec<&[NewEvent]> = events.chunks(batch).collect();
    let next_chunk = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..producers.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next_chunk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(index) else {
                        return;
                    };
                    vault.append_events("bench", chunk, None).expect("append");
                }
            });
        }
    });
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// Forgets up to `count` of the stream's customers, one at a time; milliseconds each.
fn forgets(vault: &Vault, events: &[NewEvent], count: usize) -> Vec<f64> {
    let mut customers: Vec<&str> = events.iter().map(|event| event.subject.as_str()).collect();
    customers.sort_unstable();
    customers.dedup();
    customers
        .iter()
        .step_by((customers.len() / count.max(1)).max(1))
        .take(count)
        .map(|customer| {
            let started = Instant::now();
            vault.forget(customer, "bench", 0).expect("forget");
            started.elapsed().as_secs_f64() * 1_000.0
        })
        .collect()
}

fn median(values: Vec<f64>) -> f64 {
    quantile(values, 0.5)
}

/// The nearest-rank quantile `q` of `values`.
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Drops the benchmark's schemas.
fn drop_schemas(settings: &str, schemas: &[&str]) {
    let runtime = PgRuntime::new().expect("runtime");
    let settings = settings.to_owned();
    let statements: String = schemas
        .iter()
        .map(|schema| format!("DROP SCHEMA IF EXISTS {schema} CASCADE;"))
        .collect();
    let dropped = runtime.run(async move {
        let (client, connection) = tokio_postgres::connect(&settings, tokio_postgres::NoTls)
            .await
            .map_err(|error| discreet_vault::Error::Storage {
                detail: error.to_string(),
            })?;
        let driver = tokio::spawn(connection);
        let outcome = client.batch_execute(&statements).await;
        drop(client);
        let _ = driver.await;
        outcome.map_err(|error| discreet_vault::Error::Storage {
            detail: error.to_string(),
        })
    });
    if let Err(error) = dropped {
        eprintln!("could not drop the benchmark's schemas: {error}");
    }
}

fn main() {
    let arguments: Vec<usize> = std::env::args()
        .skip(1)
        .map(|argument| argument.parse().expect("arguments are numbers"))
        .collect();
    let events = arguments.first().copied().unwrap_or(200_000);
    let batch = arguments.get(1).copied().unwrap_or(1_000);
    let producers = arguments.get(2).copied().unwrap_or(1);
    let rounds = arguments.get(3).copied().unwrap_or(3).max(1);
    let Ok(settings) = std::env::var("DISCREET_TEST_POSTGRES") else {
        eprintln!(
            "set DISCREET_TEST_POSTGRES to the connection settings of a database to measure in"
        );
        std::process::exit(2);
    };
    let stream = retail_shaped_events(events);
    let folder = tempfile::tempdir().expect("temp dir");
    let kek = || KekRing::new(Kek::generate().expect("kek"));
    println!(
        "sealed durable ingest: {events} events in batches of {batch}, {producers} producer(s), {rounds} round(s)"
    );
    let mut sqlite_rates = Vec::new();
    let mut postgres_rates = Vec::new();
    let mut sqlite_forgets = Vec::new();
    let mut postgres_forgets = Vec::new();
    for round in 0..rounds {
        let dir = folder.path().join(format!("round-{round}"));
        let sqlite = Vault::open_sqlite(
            &SqliteOptions::new(dir.join("data"), None)
                .with_key_store(dir.join("keys").join("keystore.sqlite")),
            kek(),
        )
        .expect("open SQLite");
        sqlite_rates.push(appends(&sqlite, &stream, batch, producers));
        sqlite_forgets.extend(forgets(&sqlite, &stream, FORGETS_PER_ROUND));
        drop(sqlite);
        let data_schema = format!("bench_data_{}_{round}", std::process::id());
        let key_schema = format!("bench_keys_{}_{round}", std::process::id());
        let options =
            PostgresOptions::new(settings.clone()).with_schemas(&data_schema, &key_schema);
        let postgres = Vault::open_postgres(&options, kek()).expect("open PostgreSQL");
        postgres_rates.push(appends(&postgres, &stream, batch, producers));
        postgres_forgets.extend(forgets(&postgres, &stream, FORGETS_PER_ROUND));
        drop(postgres);
        drop_schemas(&settings, &[&data_schema, &key_schema]);
        println!(
            "  round {}: SQLite {:.0} events/s, PostgreSQL {:.0} events/s",
            round + 1,
            sqlite_rates[round],
            postgres_rates[round]
        );
    }
    let sqlite = median(sqlite_rates);
    let postgres = median(postgres_rates);
    println!("median SQLite     {sqlite:>10.0} events/s");
    println!("median PostgreSQL {postgres:>10.0} events/s");
    println!("PostgreSQL / SQLite = {:.2}", postgres / sqlite);
    println!(
        "forget (vault only), {} customers: SQLite p50 {:.2} ms p99 {:.2} ms; PostgreSQL p50 {:.2} ms p99 {:.2} ms",
        sqlite_forgets.len(),
        quantile(sqlite_forgets.clone(), 0.5),
        quantile(sqlite_forgets, 0.99),
        quantile(postgres_forgets.clone(), 0.5),
        quantile(postgres_forgets, 0.99)
    );
}
