//! `discreet backup`: the way to copy a store. It writes a consistent copy of the data file
//! (on PostgreSQL, a dump of the data schema) only — no key — after signing a ledger
//! checkpoint; a copy of the key store is written only when asked for, to its own file,
//! because a forgotten customer's key lives on in it.
//!
//! A plain copy of the data folder is no backup: it may be inconsistent while the server
//! writes; this command never is.

use std::path::PathBuf;

use clap::Args;

use crate::CommandError;
use crate::store::{PostgresArgs, StoreArgs};

/// Arguments of `backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The data backup to write (a new file; it holds no key).
    #[arg(long)]
    pub to: PathBuf,
    /// Also write a copy of the key store to this new file. Keep it short-lived and apart
    /// from the data backups: until it is deleted, it can open what a forget made unreadable.
    #[arg(long)]
    pub keys_to: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BackupArgs) -> Result<(), CommandError> {
    for path in std::iter::once(&args.to).chain(args.keys_to.as_ref()) {
        if path.exists() {
            return Err(CommandError::BadInput(format!(
                "{} already exists; a backup is written to a new file",
                path.display()
            )));
        }
    }
    if let Some(keys_to) = &args.keys_to
        && args.postgres.postgres.is_none()
    {
        discreet_vault::check_key_store_outside(keys_to, &args.store.data_dir).map_err(
            |error| CommandError::BadInput(format!("the key store copy is refused: {error}")),
        )?;
    }
    let engine = args.store.open_engine_on(&args.postgres)?;
    let vault = engine.vault();
    vault
        .backup(&args.to)
        .map_err(|error| CommandError::Failed(error.into()))?;
    if let Some(keys_to) = &args.keys_to {
        vault
            .backup_keys(keys_to)
            .map_err(|error| CommandError::Failed(error.into()))?;
    }
    engine.shutdown();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "data": args.to.display().to_string(),
                "keys": args.keys_to.as_ref().map(|path| path.display().to_string()),
            })
        );
    } else {
        println!(
            "data backup written to {} (it holds no key)",
            args.to.display()
        );
        if let Some(keys_to) = &args.keys_to {
            println!(
                "key store copy written to {}; keep it apart from the data backups and delete it soon",
                keys_to.display()
            );
        }
    }
    Ok(())
}
