//! `discreet keys` and `discreet kek`: API keys (shown once, stored hashed) and rotation of
//! the key-encryption key. They open the data folder, so run them while the server is
//! stopped (or issue keys over `POST /v1/keys` with an admin key while it runs).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use discreet_engine::Caller;
use discreet_vault::Kek;
use serde_json::json;

use crate::CommandError;
use crate::store::{PostgresArgs, StoreArgs, engine_error};

/// Arguments of `keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Issue a key for a role of the policy; the secret is printed once.
    Create {
        /// Role from the policy: admin, storefront, privacy or analyst in the built-in one.
        #[arg(long)]
        role: String,
        /// What the key is for (e.g. "web shop").
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
        /// Print `{"id", "role", "secret"}`.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
    },
}

pub fn run_keys(args: KeysArgs) -> Result<(), CommandError> {
    let caller = Caller::operator();
    match args.command {
        KeysCommand::Create {
            role,
            label,
            store,
            postgres,
            json,
        } => {
            let engine = store.open_engine_on(&postgres)?;
            let issued = engine
                .create_api_key(&caller, &role, &label)
                .map_err(engine_error)?;
            if json {
                println!(
                    "{}",
                    json!({"id": issued.id, "role": issued.role, "secret": issued.secret.as_str()})
                );
            } else {
                println!("key {} (role {})", issued.id, issued.role);
                println!("secret: {}", issued.secret.as_str());
                println!("The secret is shown only now; discreet keeps only its hash.");
            }
        }
        KeysCommand::List {
            store,
            postgres,
            json,
        } => {
            let engine = store.open_engine_on(&postgres)?;
            let keys = engine.api_keys(&caller).map_err(engine_error)?;
            if json {
                let keys: Vec<_> = keys
                    .iter()
                    .map(|key| {
                        json!({
                            "id": key.id, "role": key.role, "label": key.label,
                            "created_at": discreet_vault::rfc3339(key.created_at),
                            "revoked_at": key.revoked_at.map(discreet_vault::rfc3339),
                        })
                    })
                    .collect();
                println!("{}", json!({ "keys": keys }));
            } else {
                for key in keys {
                    println!(
                        "{}  {:<10}  created {}{}  {}",
                        key.id,
                        key.role,
                        discreet_vault::rfc3339(key.created_at),
                        key.revoked_at
                            .map(|at| format!(", revoked {}", discreet_vault::rfc3339(at)))
                            .unwrap_or_default(),
                        key.label
                    );
                }
            }
        }
        KeysCommand::Revoke {
            id,
            store,
            postgres,
        } => {
            let engine = store.open_engine_on(&postgres)?;
            engine.revoke_api_key(&caller, &id).map_err(engine_error)?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// Arguments of `kek`.
#[derive(Args, Debug)]
pub struct KekArgs {
    #[command(subcommand)]
    pub command: KekCommand,
}

#[derive(Subcommand, Debug)]
pub enum KekCommand {
    /// Re-wrap every data key with a new KEK (created when the file is missing); then
    /// start discreet with `--kek-file NEW` and destroy the old file.
    Rotate {
        /// The new KEK file.
        #[arg(long)]
        new_kek_file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
        #[arg(long)]
        json: bool,
    },
}

pub fn run_kek(args: KekArgs) -> Result<(), CommandError> {
    match args.command {
        KekCommand::Rotate {
            new_kek_file,
            store,
            postgres,
            json,
        } => {
            discreet_vault::check_kek_outside(&new_kek_file, &store.data_dir).map_err(|error| {
                CommandError::BadInput(format!("the new KEK file is refused: {error}"))
            })?;
            let engine = store.open_engine_on(&postgres)?;
            // Serving nodes hold the old KEK only: they could not open what is re-wrapped.
            if let Some(log) = engine.vault().cluster() {
                let now = log
                    .db_now()
                    .map_err(|error| CommandError::Failed(error.into()))?;
                let serving = log
                    .nodes()
                    .map_err(|error| CommandError::Failed(error.into()))?
                    .into_iter()
                    .filter(|node| node.live && now - node.heartbeat_at < 60_000)
                    .count();
                if serving > 0 {
                    return Err(CommandError::BadInput(format!(
                        "{serving} node(s) serve this store: stop every `discreet serve` before rotating the KEK, then start them with the new KEK file"
                    )));
                }
            }
            let next = Kek::load_or_create_file(&new_kek_file).map_err(|error| {
                CommandError::BadInput(format!(
                    "cannot use the new KEK file {}: {error}",
                    new_kek_file.display()
                ))
            })?;
            let report = engine
                .vault()
                .rotate_kek(next, "cli")
                .map_err(|error| CommandError::Failed(error.into()))?;
            if json {
                println!(
                    "{}",
                    json!({"from_kek": report.from_kek, "to_kek": report.to_kek, "rewrapped": report.rewrapped})
                );
            } else {
                println!(
                    "re-wrapped {} keys from KEK {} to KEK {}; start discreet with --kek-file {} and destroy the old file",
                    report.rewrapped,
                    report.from_kek,
                    report.to_kek,
                    new_kek_file.display()
                );
                // The key store does not follow the KEK file: say where it stays.
                let beside_new = StoreArgs {
                    kek_file: new_kek_file.clone(),
                    ..store.clone()
                }
                .key_store_file();
                let key_store = store.key_store_file();
                if postgres.postgres.is_none() && beside_new != key_store {
                    println!(
                        "the key store stays at {}: add --keys-dir {} (or move it beside the new KEK file)",
                        key_store.display(),
                        key_store
                            .parent()
                            .filter(|folder| !folder.as_os_str().is_empty())
                            .map(|folder| folder.display().to_string())
                            .unwrap_or_else(|| ".".into())
                    );
                }
            }
        }
    }
    Ok(())
}
