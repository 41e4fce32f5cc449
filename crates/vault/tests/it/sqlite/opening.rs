//! What a vault refuses to open on: a folder in use, a lost key store, a KEK inside
//! the data folder.

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::{Error, KekRing, SqliteOptions, Vault};

use super::*;
use crate::conformance::SqliteBackend;

/// Two processes on one data folder would each believe they own the ledger head: the
/// second is refused while the first is open.
#[test]
fn a_data_folder_is_opened_by_one_vault_at_a_time() {
    let backend = SqliteBackend::new();
    let kek = || KekRing::new(discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek"));
    let first = backend.open();
    let second = backend.open_with(kek());
    assert!(
        matches!(&second, Err(Error::Config { detail }) if detail.contains("in use")),
        "{:?}",
        second.err()
    );
    drop(first);
    assert!(backend.open_with(kek()).is_ok());
}

/// A lost or misplaced key store stops the vault instead of being replaced by fresh keys
/// (which would make the existing data unreadable for good).
#[test]
fn a_missing_key_store_is_refused_when_data_exists() {
    let backend = SqliteBackend::new();
    {
        let vault = backend.open();
        vault
            .append_events("test", &[purchase("c-1", "A", 1)], None)
            .expect("append");
    }
    let moved = backend.dir.path().join("moved-keystore.sqlite");
    std::fs::rename(
        backend.options().key_store_file().expect("key store path"),
        &moved,
    )
    .expect("move");
    let kek = KekRing::new(discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek"));
    let error = backend.open_with(kek).err().expect("refused");
    assert!(
        matches!(&error, Error::Config { detail } if detail.contains("key store")),
        "{error}"
    );
    std::fs::rename(
        &moved,
        backend.options().key_store_file().expect("key store path"),
    )
    .expect("move back");
    assert_eq!(
        events_of(&backend.open(), "c-1")
            .expect("readable again")
            .len(),
        1
    );
}

/// A KEK kept inside the data folder is refused, with a message that says why.
#[test]
fn kek_file_inside_the_data_folder_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let kek_file = data_dir.join("kek");
    let kek = discreet_vault::Kek::load_or_create_file(&kek_file).expect("kek file");
    let error = Vault::open_sqlite(
        &SqliteOptions::new(&data_dir, Some(kek_file.clone())),
        KekRing::new(kek),
    )
    .err()
    .expect("refused");
    assert!(
        matches!(&error, Error::Config { detail } if detail.contains("inside the data folder")),
        "{error}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek_file)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Outside the folder, the same file works and is read back identically.
    let outside = dir.path().join("kek");
    let first = discreet_vault::Kek::load_or_create_file(&outside).expect("create");
    let again = discreet_vault::Kek::load_or_create_file(&outside).expect("read");
    assert_eq!(first.id(), again.id());
    assert!(
        Vault::open_sqlite(
            &SqliteOptions::new(&data_dir, Some(outside)),
            KekRing::new(again)
        )
        .is_ok()
    );
}
