//! Someone who can write `vault.sqlite` but holds no key: an API key row inserted, a
//! consent withdrawal deleted, the ledger's tail cut (with or without the key store's anchor
//! rewritten) — each is refused at use where it grants anything, and found by
//! `verify_ledger`. Also: where the key store lives, and a store of an earlier build.

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::{Error, KekRing, NewConsent, SqliteOptions, Vault, api_key_hash};
use rusqlite::Connection;

use super::*;
use crate::conformance::SqliteBackend;

fn consent(granted: bool, at: i64) -> NewConsent {
    NewConsent {
        purpose: "personalization".into(),
        granted,
        at,
        source: "banner".into(),
        policy_version: "1".into(),
    }
}

fn data(backend: &SqliteBackend) -> Connection {
    Connection::open(backend.options().data_file()).expect("open data file")
}

/// Regression guard: an API key row written into the data file with plain SQL (no KEK,
/// no key store) does not authenticate, nor does a real key whose role was raised; both are
/// reported by verification.
#[test]
fn an_api_key_row_inserted_in_the_data_file_does_not_authenticate() {
    let backend = SqliteBackend::new();
    let storefront_id = {
        let vault = backend.open();
        let (row, _secret) = vault
            .create_api_key("storefront", "shop", "test")
            .expect("key");
        row.id
    };
    let connection = data(&backend);
    connection
        .execute(
            "INSERT INTO api_keys(id, role, label, secret_hash, created_at, revoked_at, mac)
             SELECT 'key_forged', 'admin', '', ?1, 1, NULL, mac FROM api_keys LIMIT 1",
            [&api_key_hash("dsk_forged")[..]],
        )
        .expect("insert a key");
    drop(connection);
    {
        let vault = backend.open();
        let keys = vault.api_keys().expect("keys");
        assert_eq!(
            keys.iter().map(|key| key.id.as_str()).collect::<Vec<_>>(),
            [storefront_id.as_str()],
            "only the issued key is handed out"
        );
        let verification = vault.verify_ledger().expect("verify");
        assert!(!verification.ok, "{verification:?}");
        assert!(
            verification
                .tampered
                .iter()
                .any(|problem| problem.contains("key_forged")),
            "{verification:?}"
        );
    }
    let connection = data(&backend);
    connection
        .execute("DELETE FROM api_keys WHERE id = 'key_forged'", [])
        .expect("remove the forged key");
    connection
        .execute("UPDATE api_keys SET role = 'admin'", [])
        .expect("raise the role");
    drop(connection);
    let vault = backend.open();
    assert!(vault.api_keys().expect("keys").is_empty());
    assert!(!vault.verify_ledger().expect("verify").ok);
}

/// A revocation undone in the data file leaves the key revoked.
#[test]
fn a_revocation_undone_in_the_data_file_does_not_revive_the_key() {
    let backend = SqliteBackend::new();
    {
        let vault = backend.open();
        let (row, _secret) = vault.create_api_key("admin", "ops", "test").expect("key");
        vault.revoke_api_key(&row.id, "test").expect("revoke");
    }
    data(&backend)
        .execute("UPDATE api_keys SET revoked_at = NULL", [])
        .expect("undo the revocation");
    let vault = backend.open();
    assert!(vault.api_keys().expect("keys").is_empty());
    assert!(!vault.verify_ledger().expect("verify").ok);
}

/// Regression guard: deleting a consent withdrawal from the data file does not revive the
/// grant before it — the subject's consent fails closed (no decision, so no consent), a new
/// grant is refused, a withdrawal is still taken, and verification reports the history.
/// With the subject's head replayed from a copy taken before the withdrawal, the history
/// looks whole, and the data file's seal still finds it.
#[test]
fn a_deleted_consent_withdrawal_fails_closed_and_is_reported() {
    let backend = SqliteBackend::new();
    let (subject, head_before_withdrawal) = {
        let vault = backend.open();
        vault
            .append_events("test", &[purchase("alice", "A", 1)], None)
            .expect("append");
        let row = vault
            .record_consent("alice", "test", &consent(true, 10))
            .expect("grant");
        let head: (i64, Vec<u8>, Vec<u8>) = data(&backend)
            .query_row("SELECT rows, last, mac FROM consent_heads", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .expect("head");
        vault
            .record_consent("alice", "test", &consent(false, 20))
            .expect("withdraw");
        assert!(!vault.consent_history(row.subject).expect("history")[1].granted);
        (row.subject, head)
    };
    data(&backend)
        .execute(
            "DELETE FROM consents WHERE id = (SELECT max(id) FROM consents)",
            [],
        )
        .expect("delete the withdrawal");
    {
        let vault = backend.open();
        assert_eq!(vault.consent_history(subject).expect("history"), vec![]);
        assert!(matches!(
            consents_of(&vault, "alice"),
            Err(Error::Integrity { .. })
        ));
        assert!(matches!(
            vault.record_consent("alice", "test", &consent(true, 30)),
            Err(Error::Integrity { .. })
        ));
        let verification = vault.verify_ledger().expect("verify");
        assert!(!verification.ok, "{verification:?}");
        assert!(
            verification
                .tampered
                .iter()
                .any(|problem| problem.contains("consent history")),
            "{verification:?}"
        );
        // The refusal itself is on the ledger.
        let alarms = vault
            .ledger(&discreet_vault::LedgerFilter {
                actor: Some("system:integrity".into()),
                limit: 10,
                ..Default::default()
            })
            .expect("ledger");
        assert!(!alarms.is_empty());
    }
    // The head of before the withdrawal put back: the chain looks whole, the seal does not.
    let connection = data(&backend);
    connection
        .execute(
            "UPDATE consent_heads SET rows = ?1, last = ?2, mac = ?3",
            rusqlite::params![
                head_before_withdrawal.0,
                head_before_withdrawal.1,
                head_before_withdrawal.2
            ],
        )
        .expect("replay the head");
    drop(connection);
    let vault = backend.open();
    let verification = vault.verify_ledger().expect("verify");
    assert!(!verification.ok, "{verification:?}");
    assert!(
        verification
            .tampered
            .iter()
            .any(|problem| problem.contains("consent histories were deleted, or replayed")),
        "{verification:?}"
    );
}

/// The newest ledger entries, written after the last checkpoint, deleted with plain SQL.
fn cut_tail_backend() -> (SqliteBackend, i64) {
    let backend = SqliteBackend::new();
    let entries = {
        let vault = backend.open();
        for i in 0..6 {
            vault
                .append_events("test", &[purchase(&format!("c-{i}"), "X", i)], None)
                .expect("append");
        }
        let verification = vault.verify_ledger().expect("verify");
        assert!(verification.ok, "{verification:?}");
        verification.entries
    };
    data(&backend)
        .execute("DELETE FROM ledger WHERE seq > ?1", [entries - 2])
        .expect("cut the tail");
    (backend, entries)
}

/// Regression guard: a ledger tail cut after the last checkpoint is found by verification,
/// and the vault refuses to start on it (opened to verify, it refuses every write).
#[test]
fn a_cut_ledger_tail_is_found_and_refused_at_open() {
    let (backend, entries) = cut_tail_backend();
    assert!(matches!(
        backend.open_with(KekRing::new(
            discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek")
        )),
        Err(Error::Integrity { .. })
    ));
    let vault = backend.open_to_verify();
    let verification = vault.verify_ledger().expect("verify");
    assert!(!verification.ok, "{verification:?}");
    assert_eq!(
        verification.first_bad_entry,
        Some(entries - 1),
        "{verification:?}"
    );
    assert!(vault.refused_writes().is_some());
    assert!(matches!(
        vault.append_events("test", &[purchase("c-9", "X", 9)], None),
        Err(Error::Integrity { .. })
    ));
    assert!(
        vault.checkpoint_ledger().is_err(),
        "a cut head is never anchored"
    );
    drop(vault);
    // Still found on the next look: nothing re-sealed the cut file.
    assert!(!backend.open_to_verify().verify_ledger().expect("verify").ok);
}

/// Regression guard: a tail cut below a signed checkpoint, with the checkpoints deleted, the
/// data file's seal deleted and the key store's anchor rewritten to the cut head by plain
/// SQL, is still found: the anchor's MAC needs the key store's secret.
#[test]
fn a_cut_tail_with_the_key_stores_anchor_rewritten_is_found() {
    let backend = SqliteBackend::new();
    let entries = {
        let vault = backend.open();
        for i in 0..6 {
            vault
                .append_events("test", &[purchase(&format!("c-{i}"), "X", i)], None)
                .expect("append");
        }
        vault.checkpoint_ledger().expect("checkpoint");
        vault.verify_ledger().expect("verify").entries
    };
    let cut_at = entries - 3;
    let connection = data(&backend);
    let hash: Vec<u8> = connection
        .query_row("SELECT hash FROM ledger WHERE seq = ?1", [cut_at], |row| {
            row.get(0)
        })
        .expect("hash");
    connection
        .execute_batch(&format!(
            "DELETE FROM ledger WHERE seq > {cut_at}; DELETE FROM ledger_checkpoints; DELETE FROM integrity_seal;"
        ))
        .expect("cut");
    drop(connection);
    let key_store = Connection::open(backend.key_store_file()).expect("open key store");
    key_store
        .execute(
            "UPDATE ledger_anchor SET seq = ?1, hash = ?2",
            rusqlite::params![cut_at, hash],
        )
        .expect("rewrite the anchor");
    drop(key_store);
    let verification = backend.open_to_verify().verify_ledger().expect("verify");
    assert!(!verification.ok, "{verification:?}");
    assert!(
        verification
            .tampered
            .iter()
            .any(|problem| problem.contains("anchor was altered")),
        "{verification:?}"
    );
    assert!(
        verification
            .tampered
            .iter()
            .any(|problem| problem.contains("seal is missing")),
        "{verification:?}"
    );
}

/// A store written by an earlier build (no row MACs, no seal, no integrity secret, an
/// anchor without MAC) opens: its rows are MAC'd once, as they are, and it verifies.
#[test]
fn a_store_of_an_earlier_build_is_sealed_once_at_open() {
    let backend = SqliteBackend::new();
    {
        let vault = backend.open();
        vault.create_api_key("admin", "ops", "test").expect("key");
        vault
            .append_events("test", &[purchase("alice", "A", 1)], None)
            .expect("append");
        vault
            .record_consent("alice", "test", &consent(true, 1))
            .expect("grant");
        vault
            .record_consent("alice", "test", &consent(false, 2))
            .expect("withdraw");
        vault.checkpoint_ledger().expect("checkpoint");
    }
    data(&backend)
        .execute_batch(
            "UPDATE consents SET mac = NULL; UPDATE api_keys SET mac = NULL;
             DELETE FROM consent_heads; DELETE FROM integrity_seal;",
        )
        .expect("as an earlier build left it");
    let key_store = Connection::open(backend.key_store_file()).expect("open key store");
    key_store
        .execute_batch(
            "DELETE FROM secrets WHERE name = 'row-integrity-key'; UPDATE ledger_anchor SET mac = NULL;",
        )
        .expect("as an earlier build left it");
    drop(key_store);
    let vault = backend.open();
    let verification = vault.verify_ledger().expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(vault.api_keys().expect("keys").len(), 1);
    let history = consents_of(&vault, "alice").expect("history");
    assert_eq!(
        history.iter().map(|row| row.granted).collect::<Vec<_>>(),
        [true, false]
    );
}

/// Regression guard: the key store is kept beside the KEK file, never in the data folder,
/// and one configured inside the data folder is refused.
#[test]
fn the_key_store_is_not_created_in_the_data_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let kek_file = dir.path().join("secrets").join("discreet.kek");
    std::fs::create_dir_all(kek_file.parent().expect("folder")).expect("mkdir");
    let kek = discreet_vault::Kek::load_or_create_file(&kek_file).expect("kek");
    let options = SqliteOptions::new(&data_dir, Some(kek_file.clone()));
    {
        let vault = Vault::open_sqlite(&options, KekRing::new(kek)).expect("open");
        vault
            .append_events("test", &[purchase("alice", "A", 1)], None)
            .expect("append");
    }
    assert!(dir.path().join("secrets").join("keystore.sqlite").exists());
    let in_data: Vec<String> = std::fs::read_dir(&data_dir)
        .expect("read")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("keystore"))
        .collect();
    assert!(in_data.is_empty(), "{in_data:?}");
    let inside = options.clone().with_key_store(data_dir.join("keys.sqlite"));
    let kek = discreet_vault::Kek::load_or_create_file(&kek_file).expect("kek");
    assert!(matches!(
        Vault::open_sqlite(&inside, KekRing::new(kek)),
        Err(Error::Config { detail }) if detail.contains("inside the data folder")
    ));
}

/// Regression guard: a key store left inside the data folder by an earlier build is moved
/// beside the KEK file once, and the data stays readable.
#[test]
fn an_in_folder_key_store_is_moved_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let kek_file = dir.path().join("discreet.kek");
    let kek = || discreet_vault::Kek::load_or_create_file(&kek_file).expect("kek");
    let options = SqliteOptions::new(&data_dir, Some(kek_file.clone()));
    let beside = dir.path().join("keystore.sqlite");
    {
        let vault = Vault::open_sqlite(&options, KekRing::new(kek())).expect("open");
        vault
            .append_events("test", &[purchase("alice", "A", 1)], None)
            .expect("append");
    }
    // Where an earlier build kept it.
    let in_folder = data_dir.join("keystore.sqlite");
    std::fs::rename(&beside, &in_folder).expect("as an earlier build left it");
    {
        let vault = Vault::open_sqlite(&options, KekRing::new(kek())).expect("open, moving");
        assert_eq!(events_of(&vault, "alice").expect("readable").len(), 1);
    }
    assert!(beside.exists());
    assert!(!in_folder.exists());
    let vault = Vault::open_sqlite(&options, KekRing::new(kek())).expect("open again");
    assert_eq!(events_of(&vault, "alice").expect("readable").len(), 1);
    assert!(vault.verify_ledger().expect("verify").ok);
    drop(vault);
    // A key store at both places: nothing is moved or removed, and the vault says so.
    std::fs::copy(&beside, &in_folder).expect("copy");
    assert!(matches!(
        Vault::open_sqlite(&options, KekRing::new(kek())),
        Err(Error::Config { detail }) if detail.contains("keep the right one")
    ));
    assert!(beside.exists() && in_folder.exists());
}
