//! The storage conformance suite on the embedded SQLite backend.

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::{KekRing, SqliteOptions, Vault};

pub struct SqliteBackend {
    pub dir: tempfile::TempDir,
    pub kek_hex: String,
}

impl SqliteBackend {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let kek_hex = (0..32)
            .map(|i| format!("{:02x}", (i * 7 + 3) as u8))
            .collect();
        SqliteBackend { dir, kek_hex }
    }

    pub fn options(&self) -> SqliteOptions {
        SqliteOptions::new(self.dir.path().join("data"), None)
            .with_key_store(self.dir.path().join("keys").join("keystore.sqlite"))
    }
}

impl SqliteBackend {
    /// Opens the store to verify it: a data file found altered is opened all the same,
    /// every write refused.
    pub fn open_to_verify(&self) -> Vault {
        let mut options = self.options();
        options.verify_only = true;
        let kek = discreet_vault::Kek::from_hex(&self.kek_hex).expect("kek");
        Vault::open_sqlite(&options, KekRing::new(kek)).expect("open to verify")
    }

    /// The key store file.
    pub fn key_store_file(&self) -> std::path::PathBuf {
        self.options().key_store_file().expect("key store path")
    }
}

impl ConformanceBackend for SqliteBackend {
    fn open_with(&self, keks: KekRing) -> discreet_vault::Result<Vault> {
        Vault::open_sqlite(&self.options(), keks)
    }

    fn kek_hex(&self) -> String {
        self.kek_hex.clone()
    }
}

discreet_vault::conformance_tests!(Some(SqliteBackend::new()));
