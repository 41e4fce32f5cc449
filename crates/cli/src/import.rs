//! `discreet import`: loads a shop's history into the store through the engine — the same
//! checks, sealing and ledger as the HTTP API — in batches, with a progress bar. Three
//! formats: JSON Lines and CSV of the API's own shapes (`import_records`), and the UCI
//! Online Retail layout (here), whose items are declared after its purchases (titles and
//! median prices, see `items::item_facts`). In the UCI layout every sold line is a purchase,
//! non-product codes (postage, fees, manual lines) too: the policy's `[recommendations]
//! never` rule keeps those out of answers, not the reader.

use std::path::{Path, PathBuf};

use clap::Args;
use discreet_engine::{Caller, Engine, EventContext, EventInput, EventType, IdempotencyKey};
use discreet_eval::retail_csv::{RetailRow, read_retail_file};

use crate::CommandError;
use crate::store::{PostgresArgs, StoreArgs, engine_error, rebuild_with_progress};

/// The formats `import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// The UCI Online Retail layout (InvoiceNo, StockCode, ...).
    Uci,
    /// JSON Lines: one `event`, `attributes`, `consent` or `item` record a line.
    Jsonl,
    /// CSV of events, with a header naming the event fields.
    Csv,
}

/// Arguments of `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The file: JSON Lines, CSV of events, or the UCI Online Retail layout; `.gz` is read
    /// too.
    pub file: PathBuf,
    /// The file's format; guessed when absent: `.jsonl`, `.ndjson` or `.json` (less `.gz`)
    /// is JSON Lines, anything else CSV — the UCI layout when its header names `InvoiceNo`.
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// Store the good records of a file that has bad ones, and list the bad lines (without
    /// it, one bad record stops the import before anything is stored: exit code 2).
    #[arg(long)]
    pub skip_bad: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// UCI layout only: shift every time forward so the last purchase falls on the day
    /// before today (the data is from 2010-2011; without this its purchases are past the
    /// policy's retention, and the engine refuses them).
    #[arg(long)]
    pub shift_to_now: bool,
    /// UCI layout only: prefix of the subject ids made from customer ids.
    #[arg(long, default_value = "c-")]
    pub subject_prefix: String,
    /// Events per batch (at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What an import did.
#[derive(Debug, serde::Serialize)]
pub struct ImportReport {
    pub events: u64,
    /// Items declared (titles and prices).
    pub items: u64,
    pub duplicates: u64,
    pub customers: usize,
    pub rows_skipped: usize,
    pub shift_seconds: i64,
    pub seconds: f64,
}

pub fn run(args: ImportArgs) -> Result<(), CommandError> {
    if !(1..=10_000).contains(&args.batch) {
        return Err(CommandError::BadInput(
            "--batch must be from 1 to 10000".into(),
        ));
    }
    let format = match args.format {
        Some(format) => format,
        None => guess_format(&args.file)?,
    };
    if format != ImportFormat::Uci {
        return crate::import_records::run(&args, format);
    }
    let engine = args.store.open_engine_on(&args.postgres)?;
    rebuild_with_progress(&engine)?;
    let report = import_file(
        &engine,
        &args.file,
        args.shift_to_now,
        &args.subject_prefix,
        args.batch,
    )?;
    engine.shutdown();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "imported {} events of {} customers and {} items in {:.1} s ({} rows skipped{})",
            report.events,
            report.customers,
            report.items,
            report.seconds,
            report.rows_skipped,
            if report.duplicates > 0 {
                format!(", {} already stored", report.duplicates)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// The format of `file` from its name, and for CSV from its header.
pub fn guess_format(file: &Path) -> Result<ImportFormat, CommandError> {
    let (input, name) = crate::records::open_maybe_gzipped(file)?;
    if [".jsonl", ".ndjson", ".json"]
        .iter()
        .any(|extension| name.ends_with(extension))
    {
        return Ok(ImportFormat::Jsonl);
    }
    let mut header = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(input), &mut header).map_err(
        |error| CommandError::BadInput(format!("cannot read {}: {error}", file.display())),
    )?;
    Ok(if header.contains("InvoiceNo") {
        ImportFormat::Uci
    } else {
        ImportFormat::Csv
    })
}

/// Reads `file` and ingests its purchases.
pub fn import_file(
    engine: &Engine,
    file: &Path,
    shift_to_now: bool,
    subject_prefix: &str,
    batch: usize,
) -> Result<ImportReport, CommandError> {
    let retail =
        read_retail_file(file).map_err(|error| CommandError::BadInput(format!("{error:#}")))?;
    let purchases: Vec<&RetailRow> = retail.rows.iter().filter(|row| is_sale(row)).collect();
    let rows_skipped = retail.skipped.total() + (retail.rows.len() - purchases.len());
    let shift_seconds = if shift_to_now {
        let last = purchases.iter().map(|row| row.at).max().unwrap_or(0);
        let yesterday = discreet_vault::now_millis() / 1_000 - 86_400;
        (yesterday - last).max(0)
    } else {
        0
    };
    let mut report = ingest_rows(
        engine,
        &purchases,
        shift_seconds,
        subject_prefix,
        batch,
        rows_skipped,
    )?;
    report.items = crate::items::store_items(engine, crate::items::item_facts(&retail.rows))?;
    Ok(report)
}

/// A sold line of a known customer: quantity and price above 0, not a cancellation. The
/// evaluation's protocol (`RetailRow::is_protocol_purchase`) also drops non-product codes;
/// an import keeps them, and the policy decides whether they are ever recommended.
fn is_sale(row: &RetailRow) -> bool {
    row.customer.is_some()
        && row.quantity > 0
        && row.unit_price > 0.0
        && !row.invoice.starts_with('C')
}

/// Ingests purchase rows in batches with a progress bar.
pub fn ingest_rows(
    engine: &Engine,
    purchases: &[&RetailRow],
    shift_seconds: i64,
    subject_prefix: &str,
    batch: usize,
    rows_skipped: usize,
) -> Result<ImportReport, CommandError> {
    let started = std::time::Instant::now();
    let caller = Caller::operator();
    let bar = indicatif::ProgressBar::new(purchases.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "importing {bar:30} {pos}/{len} events ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut events = 0;
    let mut duplicates = 0;
    let mut customers = std::collections::HashSet::new();
    for (index, chunk) in purchases.chunks(batch).enumerate() {
        let batch: Vec<EventInput> = chunk
            .iter()
            .map(|row| {
                let customer = row.customer.as_deref().unwrap_or_default();
                customers.insert(customer);
                EventInput {
                    subject: format!("{subject_prefix}{customer}"),
                    event_type: EventType::Purchase,
                    item: Some(row.stock_code.clone()),
                    at: (row.at + shift_seconds) * 1_000,
                    // Out-of-range quantities reach the engine's check, which refuses the batch.
                    quantity: Some(u32::try_from(row.quantity).unwrap_or(u32::MAX)),
                    query: None,
                    value: None,
                    context: EventContext {
                        weather: None,
                        country: Some(row.country.clone()),
                    },
                }
            })
            .collect();
        // The batch's place in the file makes re-running an interrupted import safe.
        let key = format!(
            "import/{subject_prefix}/{shift_seconds}/{}/{index}",
            chunk.len()
        );
        let outcome = engine
            .ingest(
                &caller,
                &batch,
                Some(IdempotencyKey::of_events(&key, &batch)),
            )
            .map_err(engine_error)?;
        events += outcome.accepted;
        duplicates += outcome.duplicates;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(ImportReport {
        events,
        items: 0,
        duplicates,
        customers: customers.len(),
        rows_skipped,
        shift_seconds,
        seconds: started.elapsed().as_secs_f64(),
    })
}
