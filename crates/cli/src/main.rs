//! The `discreet` binary: parses arguments and calls the library crates. Thin by design.

use clap::{Parser, Subcommand};

mod alloc_count;
mod bench;
mod eval;
mod policy_command;
mod retail_csv;

/// Counts allocations so `discreet eval` can report each model's peak memory.
#[global_allocator]
static ALLOCATOR: alloc_count::CountingAllocator = alloc_count::CountingAllocator;

/// discreet — personalization customers can trust.
#[derive(Parser)]
#[command(name = "discreet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure recommendation quality on a retail transactions file (time-based split).
    Eval(eval::EvalArgs),
    /// Measure speed: sealed ingest against plain inserts, erase latency, ledger verification.
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
}

impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> Self {
        CommandError::Failed(error)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
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
        Err(CommandError::Failed(error)) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
