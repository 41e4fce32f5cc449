//! Promises that depend on the files the embedded backend writes: no plaintext in any of
//! them, ciphertexts bound to their rows, backups useless after a forget, forgets that
//! survive a crash at any step, and a ledger whose tampering is found at the entry.

use std::path::{Path, PathBuf};
use std::process::Command;

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::{
    Access, Attribute, ConsentRow, Error, Event, ForgetStep, KekRing, NewAttribute, NewConsent,
    NewEvent, SqliteOptions, Vault,
};
use rusqlite::Connection;

use crate::conformance::SqliteBackend;

const READER: Access<'static> = Access {
    actor: "test",
    purpose: "personalization",
};

/// A customer's events, read through one lookup as the engine does.
fn events_of(vault: &Vault, customer: &str) -> discreet_vault::Result<Vec<Event>> {
    vault.events_of(vault.active_subject_id(customer)?, READER)
}

fn attributes_of(vault: &Vault, customer: &str) -> discreet_vault::Result<Vec<Attribute>> {
    vault.attributes_of(vault.active_subject_id(customer)?, READER)
}

fn consents_of(vault: &Vault, customer: &str) -> discreet_vault::Result<Vec<ConsentRow>> {
    vault.consents_of(vault.active_subject_id(customer)?, READER)
}

fn purchase(subject: &str, item: &str, at: i64) -> NewEvent {
    NewEvent {
        subject: subject.into(),
        category: "user.behavior.purchase_history".into(),
        at,
        payload: format!("{{\"type\":\"purchase\",\"item\":\"{item}\",\"quantity\":6}}")
            .into_bytes(),
    }
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Regression guard for invariant 2: no canary value appears in any byte of any file the
/// vault wrote (data file, WAL, shared memory, key store, backup), open or closed.
#[test]
fn no_plaintext_personal_value_in_any_file() {
    let backend = SqliteBackend::new();
    let canaries = [
        "canary-customer-7f3a9",
        "zebulon.canaryfield.7f3a9@example.com",
        "Zebulon",
        "Canaryfield",
        "CANARY-ITEM-7F3A9-A",
        "CANARY-ITEM-7F3A9-B",
        "Flat 7f3a9 Canary Wharf",
    ];
    let backup = backend.dir.path().join("backup.sqlite");
    let scan = |phase: &str| {
        let mut files = Vec::new();
        files_under(backend.dir.path(), &mut files);
        assert!(files.iter().any(|file| file.ends_with("vault.sqlite")));
        assert!(files.iter().any(|file| file.ends_with("keystore.sqlite")));
        for file in &files {
            let bytes = std::fs::read(file).expect("read file");
            for canary in canaries {
                assert!(
                    !contains(&bytes, canary.as_bytes()),
                    "{phase}: `{canary}` found in {}",
                    file.display()
                );
                assert!(
                    !contains(&bytes, canary.to_lowercase().as_bytes()),
                    "{phase}: `{canary}` found in {}",
                    file.display()
                );
            }
        }
        files.len()
    };
    {
        let vault = backend.open();
        let mut events = Vec::new();
        for i in 0..200 {
            events.push(purchase(
                "canary-customer-7f3a9",
                if i % 2 == 0 {
                    "CANARY-ITEM-7F3A9-A"
                } else {
                    "CANARY-ITEM-7F3A9-B"
                },
                i,
            ));
            events.push(purchase(&format!("other-{i}"), "85123A", i));
        }
        vault.append_events("test", &events, None).expect("append");
        vault
            .put_attributes(
                "canary-customer-7f3a9",
                "test",
                &[
                    NewAttribute {
                        name: "email".into(),
                        category: "user.contact.email".into(),
                        value: b"zebulon.canaryfield.7f3a9@example.com".to_vec(),
                    },
                    NewAttribute {
                        name: "first_name".into(),
                        category: "user.name.first".into(),
                        value: b"Zebulon".to_vec(),
                    },
                    NewAttribute {
                        name: "last_name".into(),
                        category: "user.name.last".into(),
                        value: b"Canaryfield".to_vec(),
                    },
                    NewAttribute {
                        name: "street".into(),
                        category: "user.contact.address.street".into(),
                        value: b"Flat 7f3a9 Canary Wharf".to_vec(),
                    },
                ],
            )
            .expect("attributes");
        let consent = NewConsent {
            purpose: "personalization".into(),
            granted: true,
            at: 1,
            source: "banner".into(),
            policy_version: "1".into(),
        };
        vault
            .record_consent("canary-customer-7f3a9", "test", &consent)
            .expect("consent");
        // Reads go through the ledger: they must not leak either.
        assert_eq!(
            events_of(&vault, "canary-customer-7f3a9")
                .expect("read")
                .len(),
            200
        );
        attributes_of(&vault, "canary-customer-7f3a9").expect("read");
        vault.backup(&backup).expect("backup");
        scan("while open");
        vault.forget("other-3", "test", 1).expect("forget");
    }
    assert!(scan("after close") >= 3);
}

/// Invariant 2: a ciphertext moved to another row or another subject fails to open.
#[test]
fn swapped_ciphertexts_fail_to_open() {
    let backend = SqliteBackend::new();
    let data_file = backend.options().data_file();
    {
        let vault = backend.open();
        vault
            .append_events(
                "test",
                &[
                    purchase("alice", "A1", 1),
                    purchase("alice", "A2", 2),
                    purchase("bob", "B1", 3),
                ],
                None,
            )
            .expect("append");
        for subject in ["alice", "bob"] {
            let attribute = NewAttribute {
                name: "email".into(),
                category: "user.contact.email".into(),
                value: format!("{subject}@example.com").into_bytes(),
            };
            let name = NewAttribute {
                name: "first_name".into(),
                category: "user.name.first".into(),
                value: subject.as_bytes().to_vec(),
            };
            vault
                .put_attributes(subject, "test", &[attribute, name])
                .expect("attributes");
        }
    }
    let swap = |sql_a: &str, sql_b: &str, table: &str, key: &str| {
        let connection = Connection::open(&data_file).expect("open");
        let a: (i64, Vec<u8>) = connection
            .query_row(sql_a, [], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("a");
        let b: (i64, Vec<u8>) = connection
            .query_row(sql_b, [], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("b");
        connection
            .execute(
                &format!("UPDATE {table} SET sealed = ?1 WHERE {key} = ?2"),
                rusqlite::params![b.1, a.0],
            )
            .expect("swap a");
        connection
            .execute(
                &format!("UPDATE {table} SET sealed = ?1 WHERE {key} = ?2"),
                rusqlite::params![a.1, b.0],
            )
            .expect("swap b");
    };
    // Two rows of the same subject.
    swap(
        "SELECT seq, sealed FROM events ORDER BY seq LIMIT 1",
        "SELECT seq, sealed FROM events ORDER BY seq LIMIT 1 OFFSET 1",
        "events",
        "seq",
    );
    {
        let vault = backend.open();
        assert!(matches!(
            events_of(&vault, "alice"),
            Err(Error::Tampered { what: "event" })
        ));
        assert!(events_of(&vault, "bob").is_ok());
    }
    // Swap back, then swap across subjects.
    swap(
        "SELECT seq, sealed FROM events ORDER BY seq LIMIT 1",
        "SELECT seq, sealed FROM events ORDER BY seq LIMIT 1 OFFSET 1",
        "events",
        "seq",
    );
    {
        let vault = backend.open();
        assert_eq!(events_of(&vault, "alice").expect("restored").len(), 2);
    }
    swap(
        "SELECT seq, sealed FROM events ORDER BY seq LIMIT 1",
        "SELECT seq, sealed FROM events ORDER BY seq DESC LIMIT 1",
        "events",
        "seq",
    );
    {
        let vault = backend.open();
        assert!(matches!(
            events_of(&vault, "alice"),
            Err(Error::Tampered { .. })
        ));
        assert!(matches!(
            events_of(&vault, "bob"),
            Err(Error::Tampered { .. })
        ));
    }
    // Attributes: the same subject's email and name swapped.
    let connection = Connection::open(&data_file).expect("open");
    let subject: i64 = connection
        .query_row("SELECT subject FROM attributes LIMIT 1", [], |row| {
            row.get(0)
        })
        .expect("subject");
    connection
        .execute_batch(&format!(
            "UPDATE attributes SET sealed = (SELECT sealed FROM attributes WHERE subject = {subject} AND name = 'first_name')
               WHERE subject = {subject} AND name = 'email'"
        ))
        .expect("move attribute");
    drop(connection);
    let vault = backend.open();
    let results: Vec<bool> = ["alice", "bob"]
        .iter()
        .map(|subject| attributes_of(&vault, subject).is_ok())
        .collect();
    assert_eq!(
        results.iter().filter(|ok| !**ok).count(),
        1,
        "exactly the tampered subject fails: {results:?}"
    );
}

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
    let keys =
        discreet_vault::sqlite::SqliteKeyStore::open(&options.key_store_file()).expect("key store");
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
    let key_store = Connection::open(options.key_store_file()).expect("open key store");
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
                "sqlite::crash_child",
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
    let options = SqliteOptions::new(PathBuf::from(dir).join("data"), None);
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

fn tamper_and_verify(
    tamper: impl FnOnce(&Connection, i64),
) -> (i64, discreet_vault::LedgerVerification) {
    let backend = SqliteBackend::new();
    let target = {
        let vault = backend.open();
        for i in 0..12 {
            vault
                .append_events("test", &[purchase(&format!("c-{}", i % 3), "X", i)], None)
                .expect("append");
        }
        vault.checkpoint_ledger().expect("checkpoint");
        let verification = vault.verify_ledger().expect("verify");
        assert!(verification.ok, "{verification:?}");
        verification.entries
    };
    let connection = Connection::open(backend.options().data_file()).expect("open");
    tamper(&connection, target);
    drop(connection);
    let vault = backend.open();
    (target, vault.verify_ledger().expect("verify"))
}

/// Invariant 7: altering, removing or reordering any single ledger entry is found at that entry.
#[test]
fn ledger_tampering_is_found_at_the_entry() {
    let (entries, _) = tamper_and_verify(|_, _| {});
    for seq in 1..=entries {
        let (_, altered) = tamper_and_verify(|connection, _| {
            connection
                .execute(
                    "UPDATE ledger SET detail = detail || ' ' WHERE seq = ?1",
                    [seq],
                )
                .expect("alter");
        });
        assert_eq!(
            altered.first_bad_entry,
            Some(seq),
            "altered {seq}: {altered:?}"
        );

        let (_, removed) = tamper_and_verify(|connection, _| {
            connection
                .execute("DELETE FROM ledger WHERE seq = ?1", [seq])
                .expect("remove");
        });
        assert_eq!(
            removed.first_bad_entry,
            Some(seq),
            "removed {seq}: {removed:?}"
        );

        if seq < entries {
            let (_, reordered) = tamper_and_verify(|connection, _| {
                connection
                    .execute_batch(&format!(
                        "UPDATE ledger SET seq = -1 WHERE seq = {seq};
                         UPDATE ledger SET seq = {seq} WHERE seq = {next};
                         UPDATE ledger SET seq = {next} WHERE seq = -1;",
                        next = seq + 1
                    ))
                    .expect("reorder");
            });
            assert_eq!(
                reordered.first_bad_entry,
                Some(seq),
                "reordered {seq}: {reordered:?}"
            );
        }
    }
    // Cutting the chain short and deleting the signed checkpoints that cover it is caught by
    // the anchor kept in the key store.
    let (_, truncated) = tamper_and_verify(|connection, _| {
        connection
            .execute_batch("DELETE FROM ledger WHERE seq > 3; DELETE FROM ledger_checkpoints;")
            .expect("truncate");
    });
    assert_eq!(truncated.first_bad_entry, Some(4), "{truncated:?}");
    // Altering an entry and recomputing every later hash needs the chain key, which only the
    // key store holds: a chain recomputed without it is found at the altered entry.
    let (_, rechained) = tamper_and_verify(|connection, _| {
        connection
            .execute("UPDATE ledger SET actor = 'mallory' WHERE seq = 2", [])
            .expect("alter");
        let mut previous: Vec<u8> = connection
            .query_row("SELECT hash FROM ledger WHERE seq = 1", [], |row| {
                row.get(0)
            })
            .expect("hash");
        // The vault's own algorithm, with every field as stored, under a guessed key.
        let guessed = discreet_vault::ledger::LedgerKey::new(b"a guessed chain key");
        let rows: Vec<(i64, discreet_vault::LedgerDraft)> = connection
            .prepare(
                "SELECT seq, at, actor, action, subject_token, purpose, categories, outcome, detail
                 FROM ledger WHERE seq >= 2 ORDER BY seq",
            )
            .expect("prepare")
            .query_map([], |row| {
                let categories: String = row.get(6)?;
                Ok((
                    row.get(0)?,
                    discreet_vault::LedgerDraft {
                        at: row.get(1)?,
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        subject_token: row.get(4)?,
                        purpose: row.get(5)?,
                        categories: serde_json::from_str(&categories).expect("categories"),
                        outcome: row.get(7)?,
                        detail: row.get(8)?,
                    },
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        for (seq, entry) in rows {
            let previous_hash: [u8; 32] = previous.as_slice().try_into().expect("32 bytes");
            let forged = guessed.entry_hash(seq, &previous_hash, &entry).to_vec();
            connection
                .execute(
                    "UPDATE ledger SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
                    rusqlite::params![previous, forged, seq],
                )
                .expect("rechain");
            previous = forged;
        }
        connection
            .execute("DELETE FROM ledger_checkpoints", [])
            .expect("drop checkpoints");
    });
    assert_eq!(rechained.first_bad_entry, Some(2), "{rechained:?}");
}

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
    std::fs::rename(backend.options().key_store_file(), &moved).expect("move");
    let kek = KekRing::new(discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek"));
    let error = backend.open_with(kek).err().expect("refused");
    assert!(
        matches!(&error, Error::Config { detail } if detail.contains("key store")),
        "{error}"
    );
    std::fs::rename(&moved, backend.options().key_store_file()).expect("move back");
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

/// Consent is proof: a consent row altered in the data file (a withdrawal turned into a
/// grant) or a subject row moved to another customer fails to verify instead of being served.
#[test]
fn altered_consents_and_swapped_subject_rows_are_refused() {
    let backend = SqliteBackend::new();
    {
        let vault = backend.open();
        let withdrawal = NewConsent {
            purpose: "personalization".into(),
            granted: false,
            at: 5,
            source: "settings".into(),
            policy_version: "1".into(),
        };
        vault
            .record_consent("alice", "test", &withdrawal)
            .expect("consent");
        vault
            .append_events(
                "test",
                &[purchase("alice", "A", 1), purchase("bob", "B", 2)],
                None,
            )
            .expect("append");
        assert!(!consents_of(&vault, "alice").expect("read")[0].granted);
    }
    let connection = Connection::open(backend.options().data_file()).expect("open");
    connection
        .execute("UPDATE consents SET granted = 1", [])
        .expect("forge a grant");
    drop(connection);
    {
        let vault = backend.open();
        assert!(matches!(
            consents_of(&vault, "alice"),
            Err(Error::Tampered { what: "consent" })
        ));
    }
    let connection = Connection::open(backend.options().data_file()).expect("open");
    connection
        .execute_batch(
            "CREATE TEMP TABLE original AS SELECT id, sealed_external_id FROM subjects;
             UPDATE subjects SET sealed_external_id =
                 (SELECT original.sealed_external_id FROM original WHERE original.id <> subjects.id);",
        )
        .expect("swap subject rows");
    let ids: i64 = connection
        .query_row("SELECT count(*) FROM subjects", [], |row| row.get(0))
        .expect("count");
    assert_eq!(ids, 2);
    drop(connection);
    let vault = backend.open();
    assert!(events_of(&vault, "alice").is_err() && events_of(&vault, "bob").is_err());
}
