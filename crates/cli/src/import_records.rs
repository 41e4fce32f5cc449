//! `discreet import FILE` for JSON Lines and CSV of the API's own shapes, and
//! `discreet export --all`, which writes them back.
//!
//! An import is two passes: the first reads and checks every record (`records`), so a bad
//! one stops the import before anything is stored — unless `--skip-bad`; the second stores
//! through the engine: items, then consent decisions in time order (each at its own time,
//! before any event, so a consenting customer's history is learned), then each subject's
//! attributes, then events in batches under idempotency keys made from the batch's own
//! content, so re-running the same file stores nothing twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use discreet_engine::items::MAX_ITEMS_PER_BATCH;
use discreet_engine::{
    AttributeInput, Caller, ConsentImported, ConsentRecord, Engine, EventInput, IdempotencyKey,
    ItemInput,
};
use serde::Serialize;

use crate::CommandError;
use crate::import::{ImportArgs, ImportFormat};
use crate::records::{
    BadLine, FileRecords, Record, item_json, open_maybe_gzipped, read_events_csv, read_jsonl,
    subject_json, write_line,
};
use crate::store::{engine_error, rebuild_with_progress};

/// Bad lines listed when an import stops on them (the count says how many more).
const BAD_LINES_LISTED: usize = 20;

/// What an import of records did.
#[derive(Debug, Default, Serialize)]
pub struct RecordsReport {
    /// Good records read.
    pub records: u64,
    pub events: u64,
    /// Events of batches stored before (a re-run).
    pub duplicates: u64,
    pub consents_recorded: u64,
    /// Decisions recorded before, with the same purpose, decision, source and time.
    pub consents_already_recorded: u64,
    /// Decisions older than the subject's latest recorded decision for their purpose.
    pub consents_superseded: u64,
    /// Subjects whose attributes were stored.
    pub attribute_subjects: u64,
    pub items: u64,
    /// Lines left out with `--skip-bad`.
    pub bad_lines: u64,
    pub seconds: f64,
    pub records_per_second: f64,
}

fn bad_line_text(file: &Path, bad: &BadLine) -> String {
    format!(
        "{}:{}: {}: {}",
        file.display(),
        bad.line,
        bad.field,
        bad.detail
    )
}

/// Runs `import` for JSON Lines or CSV.
pub fn run(args: &ImportArgs, format: ImportFormat) -> Result<(), CommandError> {
    if !(1..=10_000).contains(&args.batch) {
        return Err(CommandError::BadInput(
            "--batch must be from 1 to 10000".into(),
        ));
    }
    let engine = args.store.open_engine_on(&args.postgres)?;
    let started = Instant::now();
    let (input, _) = open_maybe_gzipped(&args.file)?;
    let file_records = match format {
        ImportFormat::Csv => read_events_csv(&engine, input).map_err(|error| match error {
            CommandError::BadInput(message) => {
                CommandError::BadInput(format!("{}: {message}", args.file.display()))
            }
            other => other,
        }),
        _ => Ok(read_jsonl(&engine, input)),
    };
    let file_records = match file_records {
        Ok(records) => records,
        Err(error) => {
            engine.shutdown();
            return Err(error);
        }
    };
    if !file_records.bad.is_empty() && !args.skip_bad {
        engine.shutdown();
        for bad in file_records.bad.iter().take(BAD_LINES_LISTED) {
            eprintln!("{}", bad_line_text(&args.file, bad));
        }
        let more = file_records.bad.len().saturating_sub(BAD_LINES_LISTED);
        return Err(CommandError::BadInput(format!(
            "{} bad record(s){}; nothing was stored (fix them, or --skip-bad to store the rest)",
            file_records.bad.len(),
            if more > 0 {
                format!(", {more} more not listed")
            } else {
                String::new()
            }
        )));
    }
    // The rebuild is the store's, not the import's: left out of the import's time.
    let reading = started.elapsed();
    rebuild_with_progress(&engine)?;
    let bad = file_records.bad.clone();
    let outcome = store_records(&engine, file_records, args.batch, reading);
    engine.shutdown();
    let report = outcome?;
    for bad in &bad {
        eprintln!("skipped {}", bad_line_text(&args.file, bad));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "imported {} records in {:.1} s ({:.0} records/s): {} events ({} already stored), {} consent decisions ({} already recorded, {} superseded by newer ones), attributes of {} subjects, {} items{}",
            report.records,
            report.seconds,
            report.records_per_second,
            report.events,
            report.duplicates,
            report.consents_recorded,
            report.consents_already_recorded,
            report.consents_superseded,
            report.attribute_subjects,
            report.items,
            if report.bad_lines > 0 {
                format!("; {} bad lines skipped", report.bad_lines)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Stores checked records through the engine, in the order the module's doc gives;
/// `reading` is how long reading and checking them took (counted in the report's time).
pub fn store_records(
    engine: &Engine,
    file_records: FileRecords,
    batch: usize,
    reading: std::time::Duration,
) -> Result<RecordsReport, CommandError> {
    let started = Instant::now();
    let caller = Caller::operator();
    let mut report = RecordsReport {
        records: file_records.records.len() as u64,
        bad_lines: file_records.bad.len() as u64,
        ..RecordsReport::default()
    };
    let mut items: Vec<ItemInput> = Vec::new();
    let mut consents: Vec<(String, ConsentRecord)> = Vec::new();
    let mut attributes: BTreeMap<String, (u64, BTreeMap<String, String>)> = BTreeMap::new();
    let mut events: Vec<EventInput> = Vec::new();
    for (_, record) in file_records.records {
        match record {
            Record::Item(item) => items.push(item),
            Record::Consent { subject, record } => consents.push((subject, record)),
            // A later line's value for a name replaces an earlier one's, as a later PUT does.
            Record::Attributes { subject, values } => {
                let entry = attributes.entry(subject).or_default();
                entry.0 += 1;
                entry.1.extend(
                    values
                        .into_iter()
                        .map(|attribute| (attribute.name, attribute.value)),
                );
            }
            Record::Event(event) => events.push(event),
        }
    }
    let bar = indicatif::ProgressBar::new(report.records).with_style(
        indicatif::ProgressStyle::with_template(
            "importing {bar:30} {pos}/{len} records ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for chunk in items.chunks(MAX_ITEMS_PER_BATCH) {
        report.items += engine
            .upsert_items(&caller, chunk.to_vec())
            .map_err(engine_error)?;
        bar.inc(chunk.len() as u64);
    }
    // Stable: decisions with the same time keep the file's order.
    consents.sort_by_key(|(_, record)| record.at);
    for (subject, record) in &consents {
        match engine
            .import_consent(&caller, subject, record)
            .map_err(engine_error)?
        {
            ConsentImported::Recorded => report.consents_recorded += 1,
            ConsentImported::AlreadyRecorded => report.consents_already_recorded += 1,
            ConsentImported::Superseded => report.consents_superseded += 1,
        }
        bar.inc(1);
    }
    for (subject, (records, values)) in attributes {
        let values: Vec<AttributeInput> = values
            .into_iter()
            .map(|(name, value)| AttributeInput { name, value })
            .collect();
        engine
            .put_attributes(&caller, &subject, &values)
            .map_err(engine_error)?;
        report.attribute_subjects += 1;
        bar.inc(records);
    }
    for chunk in events.chunks(batch) {
        // The key is the batch's own fingerprint: the same batch (the same file, read the
        // same way) is stored once, whatever else was imported meanwhile.
        let fingerprint = IdempotencyKey::of_events("", chunk).fingerprint;
        let key = format!("import/{}", discreet_vault::crypto::to_hex(&fingerprint));
        let outcome = engine
            .ingest(
                &caller,
                chunk,
                Some(IdempotencyKey {
                    key: &key,
                    fingerprint,
                }),
            )
            .map_err(engine_error)?;
        report.events += outcome.accepted;
        report.duplicates += outcome.duplicates;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    report.seconds = (reading + started.elapsed()).as_secs_f64();
    report.records_per_second = report.records as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// What `export --all` wrote.
#[derive(Debug, Default, Serialize)]
pub struct ExportAllReport {
    pub subjects: u64,
    pub events: u64,
    pub consents: u64,
    pub attribute_subjects: u64,
    pub items: u64,
    pub lines: u64,
    pub seconds: f64,
}

/// Writes every declared item, then every active subject's records, one JSON object a
/// line; each subject's read is one ledger entry.
pub fn export_all(
    engine: &Engine,
    output: &mut dyn Write,
) -> Result<ExportAllReport, CommandError> {
    let started = Instant::now();
    let caller = Caller::operator();
    let mut report = ExportAllReport::default();
    let failed = |error: std::io::Error| {
        CommandError::Failed(anyhow::anyhow!("cannot write the export: {error}"))
    };
    for item in engine.declared_items(&caller).map_err(engine_error)? {
        write_line(output, &item_json(&item)).map_err(failed)?;
        report.items += 1;
        report.lines += 1;
    }
    let subjects = engine.export_subjects(&caller).map_err(engine_error)?;
    let bar = indicatif::ProgressBar::new(subjects.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "exporting {bar:30} {pos}/{len} subjects ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for subject in &subjects {
        let records = match engine.export_records(&caller, subject) {
            Ok(records) => records,
            // Forgotten (or being forgotten) since the listing: nothing to move.
            Err(discreet_engine::Error::NotFound { .. } | discreet_engine::Error::Forgetting) => {
                bar.inc(1);
                continue;
            }
            Err(error) => return Err(engine_error(error)),
        };
        for line in subject_json(&records) {
            write_line(output, &line).map_err(failed)?;
            report.lines += 1;
        }
        report.subjects += 1;
        report.events += records.events.len() as u64;
        report.consents += records.consents.len() as u64;
        report.attribute_subjects += u64::from(!records.attributes.is_empty());
        bar.inc(1);
    }
    output.flush().map_err(failed)?;
    bar.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
