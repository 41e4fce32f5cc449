//! Opening the store (data folder, KEK file, policy) the way every command does, and the
//! start-up rebuild with its progress bar.

use std::path::PathBuf;

use clap::Args;
use discreet_engine::{Engine, EngineOptions, RebuildReport};
use discreet_policy::Policy;
use discreet_vault::sqlite::KEY_STORE_FILE;
use discreet_vault::{Kek, KekRing, SqliteOptions, Vault};

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

impl StoreArgs {
    /// Loads the policy and opens the vault (finishing any interrupted forget).
    pub fn open_engine(&self) -> Result<Engine, CommandError> {
        let policy = crate::policy_command::load_policy(self.policy.as_ref())?;
        self.open_engine_with(policy, EngineOptions::default())
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
    pub fn open_engine_to_verify(&self) -> Result<Engine, CommandError> {
        let policy = crate::policy_command::load_policy(self.policy.as_ref())?;
        self.open(policy, EngineOptions::default(), true)
    }

    /// As `open_engine`, with a given policy and options.
    pub fn open_engine_with(
        &self,
        policy: Policy,
        options: EngineOptions,
    ) -> Result<Engine, CommandError> {
        self.open(policy, options, false)
    }

    fn open(
        &self,
        policy: Policy,
        options: EngineOptions,
        verify_only: bool,
    ) -> Result<Engine, CommandError> {
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
        let kek = Kek::load_or_create_file(&self.kek_file).map_err(|error| {
            CommandError::BadInput(format!(
                "cannot use the KEK file {}: {error}",
                self.kek_file.display()
            ))
        })?;
        let mut options_sqlite = SqliteOptions::new(&self.data_dir, Some(self.kek_file.clone()))
            .with_key_store(key_store);
        options_sqlite.verify_only = verify_only;
        let vault =
            Vault::open_sqlite(&options_sqlite, KekRing::new(kek)).map_err(
                |error| match error {
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
                },
            )?;
        if let Some(problem) = vault.refused_writes() {
            eprintln!(
                "warning: the data file was altered outside discreet ({problem}); opened to verify only"
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
