//! The `discreet` binary: parses arguments and calls the library crates. Thin by design.

use clap::{Parser, Subcommand};

mod backup;
mod bench;
mod bench_engine;
mod bench_nodes;
mod bench_pages;
mod bench_scale;
mod demo;
mod eval;
mod import;
mod import_records;
mod incident;
mod items;
mod keys;
mod policy_command;
mod receipt;
mod records;
mod serve;
mod store;
mod subject_command;

/// Counts allocations so `discreet eval` can report each model's peak memory.
#[global_allocator]
static ALLOCATOR: discreet_eval::memory::CountingAllocator =
    discreet_eval::memory::CountingAllocator;

/// discreet — personalization customers can trust.
///
/// Start with `discreet demo`. Commands that open a data folder (serve, import, keys,
/// kek, forget, export, audit, incident, backup) take --data-dir and --kek-file (or DISCREET_DATA_DIR
/// and DISCREET_KEK_FILE), and --keys-dir for the key store (the KEK file's folder by
/// default, never inside the data folder); one process holds a folder at a time.
///
/// Exit codes: 0 done, 1 failed, 2 bad input or usage, 3 not found, 4 the ledger check failed.
#[derive(Parser)]
#[command(name = "discreet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on embedded storage.
    Serve(serve::ServeArgs),
    /// Import the bundled Online Retail purchases, give the customers a mix of consents,
    /// serve them, and print a tour of curl commands.
    Demo(demo::DemoArgs),
    /// Import a shop's history (JSON Lines, CSV of events, or a UCI Online Retail file)
    /// through the engine, with a progress bar.
    Import(import::ImportArgs),
    /// Declare catalogue items from a file, or show one.
    Items(items::ItemsArgs),
    /// Issue, list and revoke API keys.
    Keys(keys::KeysArgs),
    /// Rotate the key-encryption key.
    Kek(keys::KekArgs),
    /// Forget a customer everywhere and print the signed receipt.
    Forget(subject_command::ForgetArgs),
    /// Print everything held about a customer (JSON), or every customer's records as JSON
    /// Lines for importing into another store (--all).
    Export(subject_command::ExportArgs),
    /// Check the access ledger.
    Audit(subject_command::AuditArgs),
    /// Open a breach incident (GDPR Art. 33): its impact from the verified ledger, the
    /// 72-hour deadline, the draft notification.
    Incident(incident::IncidentArgs),
    /// Check a downloaded forget receipt against the shop's public key, offline.
    Receipt(receipt::ReceiptArgs),
    /// Write a consistent data-only backup (no key), and a key store copy when asked.
    Backup(backup::BackupArgs),
    /// Measure recommendation quality on a retail transactions file (time-based split).
    Eval(eval::EvalArgs),
    /// Measure speed: the engine in process (bench engine), on a synthetic shop at scale (bench scale), the vault against plain SQLite (bench vault).
    Bench(bench::BenchArgs),
    /// Print the records of processing (GDPR Art. 30) generated from the policy.
    Records(policy_command::RecordsArgs),
    /// Check a policy file, or print the built-in one.
    Policy(policy_command::PolicyArgs),
}

/// How a command failed; the exit code says which kind.
#[derive(Debug)]
pub enum CommandError {
    /// The input (a file, an argument) is wrong: exit code 2.
    BadInput(String),
    /// Something failed while doing the work: exit code 1.
    Failed(anyhow::Error),
    /// The subject, receipt or key named does not exist: exit code 3.
    NotFound(String),
    /// The ledger check found tampering: exit code 4.
    Verification,
}

impl CommandError {
    /// As an `anyhow` error (what the bench programs answer).
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            CommandError::Failed(error) => error,
            CommandError::BadInput(message) | CommandError::NotFound(message) => {
                anyhow::anyhow!(message)
            }
            CommandError::Verification => anyhow::anyhow!("verification failed"),
        }
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> Self {
        CommandError::Failed(error)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Import(args) => import::run(args),
        Command::Items(args) => items::run(args),
        Command::Keys(args) => keys::run_keys(args),
        Command::Kek(args) => keys::run_kek(args),
        Command::Forget(args) => subject_command::run_forget(args),
        Command::Export(args) => subject_command::run_export(args),
        Command::Audit(args) => subject_command::run_audit(args),
        Command::Incident(args) => incident::run(args),
        Command::Receipt(args) => receipt::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Eval(args) => eval::run(args).map_err(CommandError::from),
        Command::Bench(args) => bench::run(args).map_err(CommandError::from),
        Command::Records(args) => policy_command::run_records(args),
        Command::Policy(args) => policy_command::run_policy(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(CommandError::BadInput(message)) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(2)
        }
        Err(CommandError::NotFound(message)) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(3)
        }
        Err(CommandError::Verification) => std::process::ExitCode::from(4),
        Err(CommandError::Failed(error)) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
