//! What the database and its dumps hold: no plaintext anywhere, no key in a data dump,
//! sealed values bound to their rows, and a dump restored after a forget that cannot bring
//! the subject back.

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::postgres::{PostgresKeyStore, PostgresStorage};
use discreet_vault::storage::{KeyState, KeyStorage};
use discreet_vault::{Error, NewAttribute, NewConsent};

use super::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Invariant 2 on PostgreSQL: no canary value appears in any byte of a data dump or a key
/// dump (every table, binary COPY), nor in a text copy of every data table; and a data
/// dump holds none of the wrapped keys.
#[test]
fn no_plaintext_in_any_table_or_dump_and_no_key_in_a_data_dump() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let folder = tempfile::tempdir().expect("temp dir");
    let canaries = [
        "canary-customer-7f3a9",
        "zebulon.canaryfield.7f3a9@example.com",
        "Zebulon",
        "Canaryfield",
        "CANARY-ITEM-7F3A9-A",
        "Flat 7f3a9 Canary Wharf",
    ];
    let data_dump = folder.path().join("data.dump");
    let key_dump = folder.path().join("keys.dump");
    {
        let vault = backend.open();
        let mut events = Vec::new();
        for i in 0..200 {
            events.push(purchase("canary-customer-7f3a9", "CANARY-ITEM-7F3A9-A", i));
            events.push(purchase(&format!("other-{i}"), "85123A", i));
        }
        vault.append_events("test", &events, None).expect("append");
        let attribute = |name: &str, category: &str, value: &str| NewAttribute {
            name: name.into(),
            category: category.into(),
            value: value.as_bytes().to_vec(),
        };
        vault
            .put_attributes(
                "canary-customer-7f3a9",
                "test",
                &[
                    attribute(
                        "email",
                        "user.contact.email",
                        "zebulon.canaryfield.7f3a9@example.com",
                    ),
                    attribute("first_name", "user.name.first", "Zebulon"),
                    attribute("last_name", "user.name.last", "Canaryfield"),
                    attribute(
                        "street",
                        "user.contact.address.street",
                        "Flat 7f3a9 Canary Wharf",
                    ),
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
        assert_eq!(
            events_of(&vault, "canary-customer-7f3a9")
                .expect("read")
                .len(),
            200
        );
        vault.forget("other-3", "test", 1).expect("forget");
        vault.backup(&data_dump).expect("data backup");
        vault.backup_keys(&key_dump).expect("key backup");
    }
    let data = std::fs::read(&data_dump).expect("read data dump");
    let keys = std::fs::read(&key_dump).expect("read key dump");
    assert!(data.len() > 10_000, "the data dump holds the sealed rows");
    // Every data table as text too, as an operator's `COPY ... TO STDOUT` would show it.
    let schema = backend.data_schema.clone();
    let text: String = backend.sql(move |client| async move {
        let mut all = String::new();
        for row in client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                &[&schema],
            )
            .await?
        {
            let table: String = row.try_get(0)?;
            for row in client
                .query(&format!("SELECT t::text FROM {schema}.{table} t"), &[])
                .await?
            {
                all.push_str(&row.try_get::<_, String>(0)?);
                all.push('\n');
            }
        }
        Ok(all)
    });
    assert!(
        text.contains("user.behavior.purchase_history"),
        "the text copy read the tables"
    );
    for canary in canaries {
        for form in [canary.to_owned(), canary.to_lowercase()] {
            assert!(
                !contains(&data, form.as_bytes()),
                "`{canary}` in the data dump"
            );
            assert!(
                !contains(&keys, form.as_bytes()),
                "`{canary}` in the key dump"
            );
            assert!(!text.contains(&form), "`{canary}` in a data table");
        }
    }
    // The data dump holds no wrapped key (nor any secret) of the key store.
    let key_schema = backend.key_schema.clone();
    let wrapped = backend.query_pairs(&format!(
        "SELECT subject, wrapped FROM {key_schema}.data_keys WHERE wrapped IS NOT NULL
         UNION ALL SELECT 0, wrapped FROM {key_schema}.secrets"
    ));
    assert!(wrapped.len() >= 200);
    for (_, key) in &wrapped {
        assert!(contains(&keys, key), "the key dump holds the keys");
        assert!(
            !contains(&data, key),
            "a wrapped key found in the data dump"
        );
    }
}

/// Invariant 2: a ciphertext moved to another row or another subject fails to open.
#[test]
fn swapped_ciphertexts_fail_to_open() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
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
    }
    let schema = backend.data_schema.clone();
    let swap = |first: &str, second: &str| {
        backend.execute(&format!(
            "CREATE TEMP TABLE picked AS
                 SELECT (SELECT seq FROM {schema}.events ORDER BY seq {first} LIMIT 1) AS a,
                        (SELECT seq FROM {schema}.events ORDER BY seq {second} LIMIT 1) AS b;
             UPDATE {schema}.events e SET sealed = o.sealed
               FROM {schema}.events o, picked p
              WHERE (e.seq = p.a AND o.seq = p.b) OR (e.seq = p.b AND o.seq = p.a);"
        ));
    };
    // Two rows of the same subject.
    swap("", "OFFSET 1");
    {
        let vault = backend.open();
        assert!(matches!(
            events_of(&vault, "alice"),
            Err(Error::Tampered { what: "event" })
        ));
        assert!(events_of(&vault, "bob").is_ok());
    }
    // Swap back: readable again; then across subjects.
    swap("", "OFFSET 1");
    {
        let vault = backend.open();
        assert_eq!(events_of(&vault, "alice").expect("restored").len(), 2);
    }
    swap("", "DESC");
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

/// Invariant 5 on PostgreSQL: restore a data dump taken before a forget, with the current
/// key store — the forgotten subject's data cannot be opened (and is dropped); the others
/// can, and nothing links the shop's customer id to the restored rows.
#[test]
fn backup_restored_after_forget_cannot_resurrect_the_subject() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let folder = tempfile::tempdir().expect("temp dir");
    let dump = folder.path().join("before-forget.dump");
    let forgotten = {
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
        vault.backup(&dump).expect("backup");
        assert!(
            matches!(vault.backup(&dump), Err(Error::BadInput { .. })),
            "a backup never overwrites a file"
        );
        let id = vault.subject_id("leaver").expect("lookup").expect("known");
        let receipt = vault.forget("leaver", "test", 2).expect("forget");
        assert_eq!(receipt.erased.events, 2);
        id
    };
    let options = backend.options();
    assert!(
        matches!(
            PostgresStorage::restore(&options, &dump),
            Err(Error::BadInput { .. })
        ),
        "a restore never writes over a live schema"
    );
    backend.execute(&format!("DROP SCHEMA {} CASCADE", backend.data_schema));
    PostgresStorage::restore(&options, &dump).expect("restore");
    let schema = &backend.data_schema;
    assert_eq!(
        backend.query_i64(&format!(
            "SELECT count(*) FROM {schema}.events WHERE subject = {forgotten}"
        )),
        2,
        "the old dump holds the subject's sealed events"
    );
    {
        let runtime =
            std::sync::Arc::new(discreet_vault::postgres::PgRuntime::new().expect("runtime"));
        let keys = PostgresKeyStore::open(&options, runtime).expect("key store");
        assert!(matches!(
            keys.data_key(forgotten).expect("key state"),
            KeyState::Destroyed { .. }
        ));
    }
    let vault = backend.open();
    assert!(matches!(
        vault.open_events_of_subject(forgotten),
        Err(Error::KeyDestroyed)
    ));
    assert!(vault.subject_id("leaver").expect("lookup").is_none());
    assert_eq!(events_of(&vault, "stayer").expect("others open").len(), 1);
    assert_eq!(
        backend.query_i64(&format!(
            "SELECT count(*) FROM {schema}.events WHERE subject = {forgotten}"
        )),
        0,
        "opening drops the forgotten subject's restored rows"
    );
    let verification = vault.verify_ledger().expect("verify");
    assert!(verification.tampered.is_empty(), "{verification:?}");
    drop(vault);
    assert_eq!(
        backend.query_i64(&format!(
            "SELECT count(*) FROM {}.data_keys WHERE subject = {forgotten} AND lookup IS NOT NULL",
            backend.key_schema
        )),
        0,
        "the lookup went with the key"
    );
}

/// A key dump restores into a new key schema and opens the data it belongs to.
#[test]
fn a_key_dump_restores_and_opens_its_data() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let folder = tempfile::tempdir().expect("temp dir");
    let dump = folder.path().join("keys.dump");
    {
        let vault = backend.open();
        vault
            .append_events("test", &[purchase("kept", "K1", 1)], None)
            .expect("append");
        vault.backup_keys(&dump).expect("key backup");
    }
    backend.execute(&format!("DROP SCHEMA {} CASCADE", backend.key_schema));
    PostgresKeyStore::restore(&backend.options(), &dump).expect("restore keys");
    let vault = backend.open();
    assert_eq!(events_of(&vault, "kept").expect("readable").len(), 1);
    assert!(
        matches!(
            PostgresStorage::restore(&backend.options(), &dump),
            Err(Error::BadInput { .. })
        ),
        "a key dump is never restored as data"
    );
}

/// A damaged dump (cut short) is refused as bad input, and leaves no schema behind.
#[test]
fn a_damaged_dump_is_refused_and_leaves_nothing() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let folder = tempfile::tempdir().expect("temp dir");
    let dump = folder.path().join("data.dump");
    {
        let vault = backend.open();
        vault
            .append_events("test", &[purchase("c-1", "A", 1)], None)
            .expect("append");
        vault.backup(&dump).expect("backup");
    }
    let bytes = std::fs::read(&dump).expect("read");
    let cut = folder.path().join("cut.dump");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("write");
    backend.execute(&format!("DROP SCHEMA {} CASCADE", backend.data_schema));
    let refused = PostgresStorage::restore(&backend.options(), &cut);
    assert!(
        matches!(refused, Err(Error::BadInput { .. })),
        "{refused:?}"
    );
    assert_eq!(
        backend.query_i64(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{}'",
            backend.data_schema
        )),
        0
    );
    PostgresStorage::restore(&backend.options(), &dump).expect("the whole dump restores");
    assert_eq!(events_of(&backend.open(), "c-1").expect("read").len(), 1);
}
