//! `discreet forget`, `discreet export` and `discreet audit`: the privacy team's work at
//! the command line, through the same engine calls as the HTTP API (and the same ledger).

use std::io::Write;

use clap::{Args, Subcommand};
use discreet_engine::Caller;

use crate::CommandError;
use crate::store::{PostgresArgs, StoreArgs, engine_error, rebuild_with_progress};

/// Arguments of `forget`.
#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// The shop's customer id.
    pub subject: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// Print the receipt as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_forget(args: ForgetArgs) -> Result<(), CommandError> {
    let engine = args.store.open_engine_on(&args.postgres)?;
    rebuild_with_progress(&engine)?;
    let receipt = engine
        .forget(&Caller::operator(), &args.subject)
        .map_err(engine_error)?;
    let public_key = engine.public_key();
    engine.shutdown();
    if args.json {
        // With the key that verifies it, so `discreet receipt verify` can check the output.
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "receipt": receipt, "public_key": public_key })
            )
            .unwrap_or_default()
        );
    } else {
        println!(
            "forgotten: {} events, {} attributes, {} consents, {} model interactions erased; key destroyed: {}",
            receipt.erased.events,
            receipt.erased.attributes,
            receipt.erased.consents,
            receipt.erased.model_interactions,
            receipt.erased.key_destroyed
        );
        println!(
            "receipt {} (subject token {}), signed by key {}",
            receipt.id, receipt.subject_token, receipt.key_id
        );
    }
    Ok(())
}

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One customer's Art. 15/20 document (pretty JSON).
    Json,
    /// Every customer's records and every item as JSON Lines, the format `import` reads
    /// (with --all).
    Jsonl,
}

/// Arguments of `export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The shop's customer id (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub subject: Option<String>,
    /// Every active customer's events, attributes and consent history, and every declared
    /// item, in the JSON Lines records `import` reads: to move a shop to another store.
    /// Each customer's read is one ledger entry.
    #[arg(long, requires = "format")]
    pub all: bool,
    /// `jsonl` with --all; `json` (the default) for one customer.
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Write to this file instead of standard output (gzipped when it ends in `.gz`).
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
}

pub fn run_export(args: ExportArgs) -> Result<(), CommandError> {
    let format = args.format.unwrap_or(ExportFormat::Json);
    match (&args.subject, format) {
        (None, ExportFormat::Json) => {
            return Err(CommandError::BadInput(
                "export --all writes JSON Lines: give --format jsonl".into(),
            ));
        }
        (Some(_), ExportFormat::Jsonl) => {
            return Err(CommandError::BadInput(
                "--format jsonl exports every customer: give --all instead of a customer id".into(),
            ));
        }
        _ => {}
    }
    let mut output = match &args.output {
        None => Output::Stdout(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|error| {
                CommandError::BadInput(format!("cannot create {}: {error}", path.display()))
            })?;
            let file = std::io::BufWriter::new(file);
            if path.to_string_lossy().to_ascii_lowercase().ends_with(".gz") {
                Output::Gzip(flate2::write::GzEncoder::new(
                    file,
                    flate2::Compression::default(),
                ))
            } else {
                Output::File(file)
            }
        }
    };
    let engine = args.store.open_engine_on(&args.postgres)?;
    rebuild_with_progress(&engine)?;
    let outcome = match &args.subject {
        Some(subject) => engine
            .export(&Caller::operator(), subject)
            .map_err(engine_error)
            .and_then(|export| {
                writeln!(
                    output,
                    "{}",
                    serde_json::to_string_pretty(&export).unwrap_or_default()
                )
                .and_then(|()| output.flush())
                .map_err(|error| {
                    CommandError::Failed(anyhow::anyhow!("cannot write the export: {error}"))
                })
            }),
        None => crate::import_records::export_all(&engine, &mut output).map(|report| {
            eprintln!(
                "exported {} subjects ({} events, {} consent decisions, attributes of {}) and {} items: {} lines in {:.2} s",
                report.subjects,
                report.events,
                report.consents,
                report.attribute_subjects,
                report.items,
                report.lines,
                report.seconds
            );
        }),
    };
    engine.shutdown();
    outcome?;
    output
        .finish()
        .map_err(|error| CommandError::Failed(anyhow::anyhow!("cannot write the export: {error}")))
}

/// Where `export` writes: standard output, a file, or a gzipped file (finished explicitly,
/// so a failed last write is an error, not a silently cut stream).
enum Output<'a> {
    Stdout(std::io::BufWriter<std::io::StdoutLock<'a>>),
    File(std::io::BufWriter<std::fs::File>),
    Gzip(flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>),
}

impl Output<'_> {
    fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Stdout(mut output) => output.flush(),
            Output::File(mut output) => output.flush(),
            Output::Gzip(output) => output.finish()?.flush(),
        }
    }
}

impl Write for Output<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(output) => output.write(bytes),
            Output::File(output) => output.write(bytes),
            Output::Gzip(output) => output.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(output) => output.flush(),
            Output::File(output) => output.flush(),
            Output::Gzip(output) => output.flush(),
        }
    }
}

/// Arguments of `audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Re-walk the ledger chain and its signed checkpoints, and check the data file's seal,
    /// API key rows and consent histories against the key store; exit code 4 when anything
    /// was altered.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
        #[arg(long)]
        json: bool,
    },
}

pub fn run_audit(args: AuditArgs) -> Result<(), CommandError> {
    match args.command {
        AuditCommand::Verify {
            store,
            postgres,
            json,
        } => {
            let engine = store.open_engine_to_verify(&postgres)?;
            let verification = engine
                .verify_ledger(&Caller::operator())
                .map_err(engine_error)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&verification).unwrap_or_default()
                );
            } else if verification.ok {
                println!(
                    "ledger intact: {} entries, {} signed checkpoints verified, head {}",
                    verification.entries, verification.checkpoints_verified, verification.head
                );
            } else {
                match verification.first_bad_entry {
                    Some(entry) => println!(
                        "ledger BROKEN at entry {entry}: {}",
                        verification.problem.as_deref().unwrap_or("unknown problem")
                    ),
                    None => println!(
                        "ledger chain intact ({} entries), but the data file was ALTERED:",
                        verification.entries
                    ),
                }
                for problem in &verification.tampered {
                    println!("  tampered: {problem}");
                }
            }
            if !verification.ok {
                return Err(CommandError::Verification);
            }
        }
    }
    Ok(())
}
