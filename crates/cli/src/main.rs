//! The `discreet` binary: parses arguments and calls the library crates. Thin by design.

use clap::{Parser, Subcommand};

mod eval;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Eval(args) => eval::run(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
