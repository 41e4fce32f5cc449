//! Forgets that hold on disk: an old backup cannot bring a subject back, and a forget
//! killed at any step completes when the vault opens again.

use std::path::PathBuf;
use std::process::Command;

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::{Error, ForgetStep, KekRing, NewAttribute, NewConsent, SqliteOptions, Vault};
use rusqlite::Connection;

use super::*;
use crate::conformance::SqliteBackend;

/// Invariant 5: restore a backup taken before a forget, with the current key store —
/// the forgotten subject's data cannot be opened (and is dropped); the others can.
#[test]
fn backup_restored_after_forget_cannot_resurrect_the_subject() {
    let backend = SqliteBackend::new();
    let options = backend.options();
    let backup = backend.dir.path().join("before-forget.sqlite");
    let (forgotten_id, receipt_events) = {
        let vault = backend.open();
        vault
            .append_events(
                "test",
                &[
                    purchase("leaver", "L1", 1),
                    purchase("leaver", "L2", 2),
                    purchase("stayer", "S1", 3),
                ],
                None,
            )
            .expect("append");
        vault.backup(&backup).expect("backup");
        let id = vault.subject_id("leaver").expect("lookup").expect("known");
        let receipt = vault.forget("leaver", "test", 2).expect("forget");
        (id, receipt.erased.events)
    };
    assert_eq!(receipt_events, 2);
    // Restore: the backup replaces the data file; the key store is the current one.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(PathBuf::from(format!(
            "{}{suffix}",
            options.data_file().display()
        )));
    }
    std::fs::copy(&backup, options.data_file()).expect("restore");
    // Before the vault reconciles, the restored ciphertext is there but its key is gone.
    let connection = Connection::open(options.data_file()).expect("open restored");
    let restored_rows: i64 = connection
        .query_row(
            "SELECT count(*) FROM events WHERE subject = ?1",
            [forgotten_id],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(
        restored_rows, 2,
        "the old backup holds the subject's sealed events"
    );
    drop(connection);
    let keys = discreet_vault::sqlite::SqliteKeyStore::open(
        &options.key_store_file().expect("key store path"),
    )
    .expect("key store");
    use discreet_vault::storage::{KeyState, KeyStorage};
    assert!(matches!(
        keys.data_key(forgotten_id).expect("key state"),
        KeyState::Destroyed { .. }
    ));
    drop(keys);

    let vault = backend.open();
    assert!(matches!(
        vault.open_events_of_subject(forgotten_id),
        Err(Error::KeyDestroyed)
    ));
    assert!(
        vault.subject_id("leaver").expect("lookup").is_none(),
        "the forgotten subject is not resurrected"
    );
    assert_eq!(events_of(&vault, "stayer").expect("others open").len(), 1);
    assert!(
        vault
            .scan_events(0, 100)
            .expect("scan")
            .iter()
            .all(|event| event.subject != forgotten_id)
    );
    drop(vault);
    // Nothing links the shop's customer id to the restored rows any more: the lookup hash
    // lived in the key store, beside the destroyed key, and went with it.
    let key_store = Connection::open(options.key_store_file().expect("key store path"))
        .expect("open key store");
    let linked: i64 = key_store
        .query_row(
            "SELECT count(*) FROM data_keys WHERE subject = ?1 AND lookup IS NOT NULL",
            [forgotten_id],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(linked, 0);
    let data = Connection::open(&backup).expect("open backup");
    let columns: String = data
        .query_row(
            "SELECT group_concat(name) FROM pragma_table_info('subjects')",
            [],
            |row| row.get(0),
        )
        .expect("columns");
    assert!(
        !columns.contains("lookup"),
        "the data file holds no lookup hash: {columns}"
    );
}

/// Invariant 8: a forget killed (SIGABRT, no clean-up) after each of its steps completes
/// when the vault opens again, and nothing of the subject remains.
#[test]
fn forget_killed_at_every_step_completes_on_next_open() {
    for step in ["intent", "key"] {
        let backend = SqliteBackend::new();
        {
            let vault = backend.open();
            let events: Vec<NewEvent> = (0..1_000)
                .map(|i| purchase("doomed", &format!("I{i}"), i))
                .chain([purchase("survivor", "S", 1)])
                .collect();
            vault.append_events("test", &events, None).expect("append");
            let email = NewAttribute {
                name: "email".into(),
                category: "user.contact.email".into(),
                value: b"d@example.com".to_vec(),
            };
            vault
                .put_attributes("doomed", "test", &[email])
                .expect("attribute");
            let consent = NewConsent {
                purpose: "personalization".into(),
                granted: true,
                at: 1,
                source: "banner".into(),
                policy_version: "1".into(),
            };
            vault
                .record_consent("doomed", "test", &consent)
                .expect("consent");
        }
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "sqlite::forget::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DISCREET_TEST_CRASH_DIR", backend.dir.path())
            .env("DISCREET_TEST_CRASH_KEK", &backend.kek_hex)
            .env("DISCREET_TEST_CRASH_STEP", step)
            .status()
            .expect("run child");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(6),
                "the child must die by SIGABRT at step {step}, got {status:?}"
            );
        }
        #[cfg(not(unix))]
        assert!(
            !status.success(),
            "the child must die at step {step}, got {status:?}"
        );
        let vault = backend.open();
        assert_eq!(vault.recovered_forgets().len(), 1, "step {step}");
        let erased = &vault.recovered_forgets()[0].erased;
        assert_eq!(
            (erased.events, erased.attributes, erased.consents),
            (1_000, 1, 1),
            "step {step}"
        );
        assert!(vault.subject_id("doomed").expect("lookup").is_none());
        assert_eq!(events_of(&vault, "survivor").expect("survivor").len(), 1);
        let connection = Connection::open(backend.options().data_file()).expect("open");
        let left: (i64, i64, i64, i64, i64) = connection
            .query_row(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM attributes),
                        (SELECT count(*) FROM consents), (SELECT count(*) FROM erasures),
                        (SELECT count(*) FROM subjects)",
                [],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .expect("count");
        assert_eq!(
            left,
            (1, 0, 0, 0, 1),
            "only the survivor remains after step {step}"
        );
        assert!(vault.verify_ledger().expect("verify").ok);
    }
}

/// Not a test on its own: the child process of `forget_killed_at_every_step_completes_on_next_open`.
#[test]
#[ignore = "run as a child process by the crash test"]
fn crash_child() {
    let (Ok(dir), Ok(kek), Ok(step)) = (
        std::env::var("DISCREET_TEST_CRASH_DIR"),
        std::env::var("DISCREET_TEST_CRASH_KEK"),
        std::env::var("DISCREET_TEST_CRASH_STEP"),
    ) else {
        return;
    };
    let step = if step == "intent" {
        ForgetStep::IntentWritten
    } else {
        ForgetStep::KeyDestroyed
    };
    let dir = PathBuf::from(dir);
    let options = SqliteOptions::new(dir.join("data"), None)
        .with_key_store(dir.join("keys").join("keystore.sqlite"));
    let vault = Vault::open_sqlite(
        &options,
        KekRing::new(discreet_vault::Kek::from_hex(&kek).expect("kek")),
    )
    .expect("open");
    vault
        .forget_until("doomed", "test", step)
        .expect("partial forget");
    // Die without dropping anything: no destructor, no clean-up, like a power cut after fsync.
    std::process::abort();
}
