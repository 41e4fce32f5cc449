//! `discreet records` and `discreet policy check`: the policy file as privacy officers read it.

use std::path::PathBuf;

use discreet_policy::Policy;

/// Arguments of `discreet records`.
#[derive(clap::Args)]
pub struct RecordsArgs {
    /// The policy file; the built-in retail policy when not set.
    #[arg(long, env = "DISCREET_POLICY")]
    pub policy: Option<PathBuf>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `discreet policy`.
#[derive(clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// What to do with a policy file.
#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; every problem is listed with its line and column.
    Check {
        /// The policy file to check.
        file: PathBuf,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Print the built-in retail policy (a starting point for your own discreet.toml).
    Builtin,
}

/// Loads the policy named on the command line, or the built-in one.
pub fn load_policy(path: Option<&PathBuf>) -> Result<Policy, crate::CommandError> {
    match path {
        None => Ok(Policy::builtin_retail()),
        Some(path) => Policy::from_file(path)
            .map_err(|error| crate::CommandError::BadInput(error.to_string())),
    }
}

/// Runs `discreet records`.
pub fn run_records(args: RecordsArgs) -> Result<(), crate::CommandError> {
    let policy = load_policy(args.policy.as_ref())?;
    let records = policy.records_of_processing();
    if args.json {
        let text = serde_json::to_string_pretty(&records)
            .map_err(|error| crate::CommandError::Failed(error.into()))?;
        println!("{text}");
    } else {
        print!("{}", records.to_markdown());
    }
    Ok(())
}

/// Runs `discreet policy`.
pub fn run_policy(args: PolicyArgs) -> Result<(), crate::CommandError> {
    match args.command {
        PolicyCommand::Builtin => {
            print!("{}", discreet_policy::BUILTIN_RETAIL_TOML);
            Ok(())
        }
        PolicyCommand::Check { file, json } => {
            let policy = load_policy(Some(&file))?;
            if json {
                let summary = serde_json::json!({
                    "ok": true,
                    "file": file.display().to_string(),
                    "version": policy.version(),
                    "fingerprint": policy.fingerprint(),
                    "purposes": policy.purposes().len(),
                    "categories": policy.categories().len(),
                    "roles": policy.roles().len(),
                });
                println!("{summary}");
            } else {
                println!(
                    "{}: valid (version {}, fingerprint {}): {} purposes, {} categories, {} roles",
                    file.display(),
                    policy.version(),
                    policy.fingerprint(),
                    policy.purposes().len(),
                    policy.categories().len(),
                    policy.roles().len()
                );
            }
            Ok(())
        }
    }
}
