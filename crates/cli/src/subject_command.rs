//! `discreet forget`, `discreet export` and `discreet audit`: the privacy team's work at
//! the command line, through the same engine calls as the HTTP API (and the same ledger).

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

/// Arguments of `export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The shop's customer id.
    pub subject: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
}

pub fn run_export(args: ExportArgs) -> Result<(), CommandError> {
    let engine = args.store.open_engine_on(&args.postgres)?;
    rebuild_with_progress(&engine)?;
    let export = engine
        .export(&Caller::operator(), &args.subject)
        .map_err(engine_error)?;
    engine.shutdown();
    println!(
        "{}",
        serde_json::to_string_pretty(&export).unwrap_or_default()
    );
    Ok(())
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
