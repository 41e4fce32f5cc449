//! What the files hold: no plaintext anywhere, and sealed values bound to their rows.

use std::path::{Path, PathBuf};

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::{Error, NewAttribute, NewConsent};
use rusqlite::Connection;

use super::*;
use crate::conformance::SqliteBackend;

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
            Err(Error::Integrity { .. })
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
