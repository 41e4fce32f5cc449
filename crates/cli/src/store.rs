//! Opening the store (data folder or PostgreSQL, KEK file, policy) the way every command
//! does, and the start-up rebuild with its progress bar.

use std::path::PathBuf;

use clap::Args;
use discreet_engine::{ClusterOptions, Engine, EngineOptions, RebuildReport};
use discreet_policy::Policy;
use discreet_vault::sqlite::KEY_STORE_FILE;
use discreet_vault::{Kek, KekRing, PostgresOptions, SqliteOptions, Vault};

use crate::CommandError;

/// Where the data lives and which policy applies.
#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// Data folder (created when missing).
    #[arg(long, env = "DISCREET_DATA_DIR", default_value = "discreet-data")]
    pub data_dir: PathBuf,
    /// Key-encryption key file: created (mode 0600) when missing; must not lie inside the
    /// data folder.
    #[arg(long, env = "DISCREET_KEK_FILE", default_value = "discreet.kek")]
    pub kek_file: PathBuf,
    /// Folder of the key store (`keystore.sqlite`, the wrapped keys): the KEK file's folder
    /// when absent; refused inside the data folder. A key store left inside the data folder
    /// by an earlier version is moved here once.
    #[arg(long, env = "DISCREET_KEYS_DIR")]
    pub keys_dir: Option<PathBuf>,
    /// Policy file (TOML); the built-in retail policy when absent.
    #[arg(long, env = "DISCREET_POLICY")]
    pub policy: Option<PathBuf>,
}

/// Where the vault lives when it is on PostgreSQL instead of the data folder. Apart from
/// `StoreArgs` so that the commands that may open either take it beside their store.
#[derive(Args, Clone)]
pub struct PostgresArgs {
    /// Keep the vault in PostgreSQL instead of the data folder: connection settings
    /// (`host=... user=... dbname=...` or `postgresql://...`). The data goes to the schema
    /// `discreet`, the key store to the schema `discreet_keys`; --data-dir is then unused,
    /// --kek-file still required.
    #[arg(long, env = "DISCREET_POSTGRES", hide_env_values = true)]
    pub postgres: Option<String>,
    /// Connection settings of a separate database for the key store (with --postgres).
    #[arg(
        long,
        env = "DISCREET_POSTGRES_KEYS",
        hide_env_values = true,
        requires = "postgres"
    )]
    pub postgres_keys: Option<String>,
    /// Schema of the data on PostgreSQL; the key store goes to `SCHEMA_keys` (with
    /// --postgres: several stores may share one database under different names).
    #[arg(
        long,
        env = "DISCREET_POSTGRES_SCHEMA",
        default_value = discreet_vault::postgres::DEFAULT_DATA_SCHEMA,
        requires = "postgres"
    )]
    pub postgres_schema: String,
    /// This node's name among the `serve` processes sharing the database (with --postgres;
    /// default: the host's name and the process id). Each must be unique.
    #[arg(long, env = "DISCREET_NODE", requires = "postgres", value_parser = parse_node)]
    pub node: Option<String>,
}

/// A node name: 1 to 64 letters, digits, `-`, `_` or `.`.
fn parse_node(text: &str) -> Result<String, String> {
    if !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        Ok(text.to_owned())
    } else {
        Err("must be 1 to 64 letters, digits, `-`, `_` or `.`".to_owned())
    }
}

/// This process's default node name: the host's name (its first 40 characters), the
/// process id and a random suffix (in containers every process may be pid 1).
fn default_node(prefix: &str) -> String {
    let host: String = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| {
            name.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .take(40)
                .collect()
        })
        .filter(|name: &String| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let suffix = discreet_vault::crypto::random_bytes::<3>()
        .map(|bytes| discreet_vault::crypto::to_hex(&bytes[..]))
        .unwrap_or_default();
    format!("{prefix}{host}-{}-{suffix}", std::process::id())
}

impl std::fmt::Debug for PostgresArgs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Connection settings may carry a password: never printed.
        formatter
            .debug_struct("PostgresArgs")
            .field("postgres", &self.postgres.is_some())
            .field("postgres_keys", &self.postgres_keys.is_some())
            .field("postgres_schema", &self.postgres_schema)
            .field("node", &self.node)
            .finish()
    }
}

impl Default for PostgresArgs {
    /// The vault in the data folder.
    fn default() -> Self {
        PostgresArgs {
            postgres: None,
            postgres_keys: None,
            postgres_schema: discreet_vault::postgres::DEFAULT_DATA_SCHEMA.to_owned(),
            node: None,
        }
    }
}

impl PostgresArgs {
    /// The vault's PostgreSQL options, when the vault is on PostgreSQL.
    pub fn options(&self) -> Option<PostgresOptions> {
        let settings = self.postgres.as_ref()?;
        let key_schema = format!("{}_keys", self.postgres_schema);
        // Several processes may share the schema: each applies the others' changes.
        let mut options =
            PostgresOptions::new(settings.clone()).with_schemas(&self.postgres_schema, &key_schema);
        options.shared = true;
        Some(match &self.postgres_keys {
            Some(keys) => options.with_key_database(keys.clone()),
            None => options,
        })
    }
}

impl StoreArgs {
    /// Loads the policy and opens the vault (finishing any interrupted forget).
    pub fn open_engine(&self) -> Result<Engine, CommandError> {
        self.open_engine_on(&PostgresArgs::default())
    }

    /// As `open_engine`, on PostgreSQL when `postgres` says so.
    pub fn open_engine_on(&self, postgres: &PostgresArgs) -> Result<Engine, CommandError> {
        let policy = crate::policy_command::load_policy(self.policy.as_ref())?;
        let engine = self.open(policy, EngineOptions::default(), false, postgres)?;
        if postgres.postgres.is_some() {
            // A command's writes reach the serving nodes through the change log; it is no
            // node itself (no heartbeat), and its forget waits for the live ones.
            join(&engine, ClusterOptions::new(default_node("cli-")), false)?;
        }
        Ok(engine)
    }

    /// As `open_engine_on`, for `serve`: on PostgreSQL the process is one of the nodes.
    pub fn open_engine_serving(&self, postgres: &PostgresArgs) -> Result<Engine, CommandError> {
        let policy = crate::policy_command::load_policy(self.policy.as_ref())?;
        let engine = self.open(policy, EngineOptions::default(), false, postgres)?;
        if postgres.postgres.is_some() {
            let node = postgres.node.clone().unwrap_or_else(|| default_node(""));
            join(&engine, ClusterOptions::new(node), true)?;
        }
        Ok(engine)
    }

    /// The key store file these arguments name.
    pub fn key_store_file(&self) -> PathBuf {
        match &self.keys_dir {
            Some(folder) => folder.join(KEY_STORE_FILE),
            None => self
                .kek_file
                .parent()
                .map(|folder| folder.join(KEY_STORE_FILE))
                .unwrap_or_else(|| PathBuf::from(KEY_STORE_FILE)),
        }
    }

    /// Opens the store to verify it: a data file found altered is opened all the same, with
    /// every write refused, so that `audit verify` can say what is wrong.
    pub fn open_engine_to_verify(&self, postgres: &PostgresArgs) -> Result<Engine, CommandError> {
        let policy = crate::policy_command::load_policy(self.policy.as_ref())?;
        self.open(policy, EngineOptions::default(), true, postgres)
    }

    /// As `open_engine`, with a given policy and options.
    pub fn open_engine_with(
        &self,
        policy: Policy,
        options: EngineOptions,
    ) -> Result<Engine, CommandError> {
        self.open(policy, options, false, &PostgresArgs::default())
    }

    fn open(
        &self,
        policy: Policy,
        options: EngineOptions,
        verify_only: bool,
        postgres: &PostgresArgs,
    ) -> Result<Engine, CommandError> {
        let vault = match postgres.options() {
            Some(mut postgres_options) => {
                postgres_options.verify_only = verify_only;
                self.open_postgres(&postgres_options)?
            }
            None => self.open_sqlite(verify_only)?,
        };
        if let Some(problem) = vault.refused_writes() {
            eprintln!(
                "warning: the data was altered outside discreet ({problem}); opened to verify only"
            );
        }
        for receipt in vault.recovered_forgets() {
            eprintln!(
                "finished an interrupted forget: receipt {} (subject token {})",
                receipt.id, receipt.subject_token
            );
        }
        Engine::new(policy, vault, options).map_err(|error| CommandError::Failed(error.into()))
    }

    /// The KEK from its file (created when missing).
    fn load_kek(&self) -> Result<Kek, CommandError> {
        Kek::load_or_create_file(&self.kek_file).map_err(|error| {
            CommandError::BadInput(format!(
                "cannot use the KEK file {}: {error}",
                self.kek_file.display()
            ))
        })
    }

    /// The vault on PostgreSQL; the KEK still comes from its file.
    fn open_postgres(&self, options: &PostgresOptions) -> Result<Vault, CommandError> {
        let kek = self.load_kek()?;
        Vault::open_postgres(options, KekRing::new(kek)).map_err(|error| match error {
            discreet_vault::Error::Config { .. } | discreet_vault::Error::BadInput { .. } => {
                CommandError::BadInput(format!("cannot open the vault on PostgreSQL: {error}"))
            }
            discreet_vault::Error::Integrity { .. } => {
                eprintln!("error: cannot open the vault on PostgreSQL: {error}");
                CommandError::Verification
            }
            other => CommandError::Failed(anyhow::anyhow!(
                "cannot open the vault on PostgreSQL: {other}"
            )),
        })
    }

    /// The vault in the data folder.
    fn open_sqlite(&self, verify_only: bool) -> Result<Vault, CommandError> {
        // Checked before any file is created, so a refused path leaves nothing behind.
        let key_store = self.key_store_file();
        discreet_vault::check_kek_outside(&self.kek_file, &self.data_dir)
            .and_then(|()| discreet_vault::check_key_store_outside(&key_store, &self.data_dir))
            .map_err(|error| {
                CommandError::BadInput(format!(
                    "cannot open the data folder {}: {error}",
                    self.data_dir.display()
                ))
            })?;
        let kek = self.load_kek()?;
        let mut options_sqlite = SqliteOptions::new(&self.data_dir, Some(self.kek_file.clone()))
            .with_key_store(key_store);
        options_sqlite.verify_only = verify_only;
        Vault::open_sqlite(&options_sqlite, KekRing::new(kek)).map_err(|error| match error {
            discreet_vault::Error::Config { .. } => CommandError::BadInput(format!(
                "cannot open the data folder {}: {error}",
                self.data_dir.display()
            )),
            // Altered outside discreet: refuse to start, as the ledger check does.
            discreet_vault::Error::Integrity { .. } => {
                eprintln!(
                    "error: cannot open the data folder {}: {error}",
                    self.data_dir.display()
                );
                CommandError::Verification
            }
            other => CommandError::Failed(anyhow::anyhow!(
                "cannot open the data folder {}: {other}",
                self.data_dir.display()
            )),
        })
    }
}

/// Rebuilds the models with a progress bar on standard error.
pub fn rebuild_with_progress(engine: &Engine) -> anyhow::Result<RebuildReport> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "rebuilding models {bar:30} {pos}/{len} events ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = engine.rebuild(&|progress| {
        bar.set_length(progress.events_total);
        bar.set_position(progress.events_read);
    })?;
    bar.finish_and_clear();
    eprintln!(
        "models rebuilt in {:.2} s: {} events read, {} learned from {} consenting of {} subjects, {} items",
        report.millis as f64 / 1_000.0,
        report.events_read,
        report.events_learned,
        report.consented_subjects,
        report.subjects,
        report.items
    );
    Ok(report)
}

/// Maps engine errors to exit codes: bad input 2, not found 3, the rest 1.
pub fn engine_error(error: discreet_engine::Error) -> CommandError {
    match error {
        discreet_engine::Error::BadInput { .. } | discreet_engine::Error::Forbidden { .. } => {
            CommandError::BadInput(error.to_string())
        }
        discreet_engine::Error::NotFound { .. } => CommandError::NotFound(error.to_string()),
        other => CommandError::Failed(other.into()),
    }
}

/// Joins the change log of the other processes on the store.
fn join(engine: &Engine, options: ClusterOptions, serving: bool) -> Result<(), CommandError> {
    let joined = if serving {
        engine.join_cluster(options)
    } else {
        engine.join_changes(&options.node)
    };
    joined.map_err(|error| {
        CommandError::Failed(anyhow::anyhow!("cannot join the other nodes: {error}"))
    })
}
