//! Running on PostgreSQL: migrations and the version table, several writers on one schema,
//! keys vacuumed after a forget, and settings refused without being echoed.

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::{Error, KekRing, PostgresOptions, Vault};

use super::*;

/// A schema written by a newer build stops the vault with a clear error, and nothing is
/// written to it.
#[test]
fn a_schema_newer_than_the_build_is_refused() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    {
        let vault = backend.open();
        vault
            .append_events("test", &[purchase("c-1", "A", 1)], None)
            .expect("append");
    }
    let schema = backend.data_schema.clone();
    let current = backend.query_i64(&format!(
        "SELECT version::bigint FROM {schema}.schema_version"
    ));
    assert_eq!(
        current,
        i64::from(discreet_vault::postgres::DATA_SCHEMA_VERSION)
    );
    backend.execute(&format!(
        "UPDATE {schema}.schema_version SET version = version + 1"
    ));
    let ledger_before = backend.query_i64(&format!("SELECT count(*) FROM {schema}.ledger"));
    let kek = KekRing::new(discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek"));
    let error = backend.open_with(kek).err().expect("refused");
    assert!(
        matches!(&error, Error::Config { detail } if detail.contains("newer than this build")),
        "{error}"
    );
    assert_eq!(
        backend.query_i64(&format!("SELECT count(*) FROM {schema}.ledger")),
        ledger_before
    );
    // Back at the version this build knows, it opens again.
    backend.execute(&format!(
        "UPDATE {schema}.schema_version SET version = version - 1"
    ));
    assert_eq!(events_of(&backend.open(), "c-1").expect("read").len(), 1);
}

/// One vault per data schema unless opened `shared`: a second is refused while the first
/// is open (its forget would leave the first one's models behind), and opens once it closed.
#[test]
fn a_data_schema_is_opened_by_one_vault_at_a_time() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
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

/// Two vaults on the same schemas (two nodes) write in turns: one ledger chain that
/// verifies, every event stored once, each readable from the other.
#[test]
fn two_writers_on_one_schema_chain_one_ledger() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let shared = || {
        let mut options = backend.options();
        options.shared = true;
        let kek = KekRing::new(discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek"));
        Vault::open_postgres(&options, kek).expect("open shared")
    };
    let first = shared();
    let second = shared();
    std::thread::scope(|scope| {
        for (node, vault) in [(0, &first), (1, &second)] {
            scope.spawn(move || {
                for round in 0..20 {
                    let customer = format!("c-{node}-{round}");
                    vault
                        .append_events(
                            "test",
                            &[
                                purchase(&customer, "A", round),
                                purchase(&customer, "B", round),
                            ],
                            None,
                        )
                        .expect("append");
                }
            });
        }
    });
    assert_eq!(
        events_of(&first, "c-1-7").expect("read the other's").len(),
        2
    );
    assert_eq!(
        events_of(&second, "c-0-7").expect("read the other's").len(),
        2
    );
    for vault in [&first, &second] {
        let verification = vault.verify_ledger().expect("verify");
        assert!(verification.ok, "{verification:?}");
        assert!(verification.tampered.is_empty(), "{verification:?}");
    }
    drop((first, second));
    let schema = &backend.data_schema;
    assert_eq!(
        backend.query_i64(&format!("SELECT count(*) FROM {schema}.events")),
        80
    );
    assert_eq!(
        backend.query_i64(&format!("SELECT count(DISTINCT seq) FROM {schema}.events")),
        80,
        "sequence numbers are never handed out twice"
    );
}

/// A ledger tail cut in the database while a vault runs (with the seal row, so no stored
/// seal would contradict it) is never chained after or sealed over: the writer finds the
/// head moved, no seal to reload, and refuses every write from then on.
#[test]
fn a_ledger_cut_while_open_stops_the_writer() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let vault = backend.open();
    for at in 0..3 {
        vault
            .append_events("test", &[purchase("c-1", "A", at)], None)
            .expect("append");
    }
    let schema = &backend.data_schema;
    backend.execute(&format!(
        "DELETE FROM {schema}.ledger WHERE seq = (SELECT max(seq) FROM {schema}.ledger);
         DELETE FROM {schema}.integrity_seal;"
    ));
    let refused = vault.append_events("test", &[purchase("c-1", "B", 9)], None);
    assert!(
        matches!(&refused, Err(Error::Integrity { .. })),
        "{:?}",
        refused.err()
    );
    assert_eq!(
        backend.query_i64(&format!("SELECT count(*) FROM {schema}.integrity_seal")),
        0,
        "the cut ledger was not sealed over"
    );
}

/// A destroyed key's old row version is pruned: the key table's heap is vacuumed before the
/// forget returns, and the whole table (its lookup index too) by the background vacuum soon
/// after.
#[test]
fn the_key_table_is_vacuumed_when_a_key_is_destroyed() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let vault = backend.open();
    vault
        .append_events("test", &[purchase("leaver", "A", 1)], None)
        .expect("append");
    let vacuums = format!(
        "SELECT coalesce(sum(vacuum_count), 0)::bigint FROM pg_stat_user_tables
         WHERE schemaname = '{}' AND relname = 'data_keys'",
        backend.key_schema
    );
    let before = backend.query_i64(&vacuums);
    vault.forget("leaver", "test", 0).expect("forget");
    // The statistics reach other sessions when the vacuum's session flushes them.
    let mut after = backend.query_i64(&vacuums);
    for _ in 0..100 {
        if after >= before + 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = backend.query_i64(&vacuums);
    }
    assert!(
        after >= before + 2,
        "the key table was vacuumed {} time(s) after a forget, not twice (heap, then whole)",
        after - before
    );
}

/// Connection settings that do not parse are refused without echoing them (they may hold
/// a password), and so is a key schema that is the data schema.
#[test]
fn bad_settings_are_refused_without_echo() {
    let options = PostgresOptions::new("host=localhost password=hunter2-secret port=not-a-port");
    let error = Vault::open_postgres(
        &options,
        KekRing::new(discreet_vault::Kek::from_hex(&"ab".repeat(32)).expect("kek")),
    )
    .err()
    .expect("refused");
    assert!(matches!(error, Error::Config { .. }), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!format!("{options:?}").contains("hunter2"));
    let same = PostgresOptions::new("host=localhost").with_schemas("discreet", "discreet");
    assert!(matches!(same.check(), Err(Error::Config { .. })));
    let injected = PostgresOptions::new("host=localhost").with_schemas("x; DROP TABLE y", "k");
    assert!(matches!(injected.check(), Err(Error::BadInput { .. })));
}

/// The backend's synchronous calls may be made from inside an async task of another
/// runtime (a caller that forgot `spawn_blocking`): they block that task, never panic.
#[test]
fn calls_from_inside_an_async_task_do_not_panic() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let vault = backend.open();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let read = runtime.block_on(async {
        vault
            .append_events("test", &[purchase("c-async", "A", 1)], None)
            .expect("append inside a task");
        events_of(&vault, "c-async").expect("read inside a task")
    });
    assert_eq!(read.len(), 1);
    // Dropped inside a task too: the runtime it owns shuts down in the background.
    runtime.block_on(async move { drop(vault) });
}

/// The writer and the pools come back after their connections are cut (a server restart,
/// an operator's `pg_terminate_backend`): a write after the cut may fail, never one
/// acknowledged before it, and the ledger still verifies.
#[test]
fn connections_cut_by_the_server_are_made_again() {
    let Some(mut backend) = PostgresBackend::new() else {
        return;
    };
    // Named, so that only this test's connections are cut.
    let name = format!("cut_{}", backend.data_schema);
    backend.settings = format!("{} application_name={name}", backend.settings);
    let vault = backend.open();
    vault
        .append_events("test", &[purchase("c-before", "A", 1)], None)
        .expect("append");
    let terminated = backend.query_i64(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
    ));
    assert!(
        terminated >= 2,
        "the writer's and a pool's connections were cut"
    );
    let mut stored = false;
    for attempt in 0..5 {
        if vault
            .append_events("test", &[purchase("c-after", "B", attempt)], None)
            .is_ok()
        {
            stored = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(stored, "no write succeeded after the connections were cut");
    let mut read = events_of(&vault, "c-before");
    for _ in 0..5 {
        if read.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        read = events_of(&vault, "c-before");
    }
    assert_eq!(read.expect("read after the cut").len(), 1);
    let verification = vault.verify_ledger().expect("verify");
    assert!(
        verification.ok && verification.tampered.is_empty(),
        "{verification:?}"
    );
}

/// With the key store in a database of its own (`--postgres-keys`), the data's database
/// holds no key schema at all, and forget still destroys the key there.
#[test]
fn the_key_store_may_live_in_its_own_database() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let database = format!("{}_db", backend.key_schema);
    backend.execute(&format!("CREATE DATABASE {database}"));
    let key_settings = format!("{} dbname={database}", backend.settings);
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let options = backend.options().with_key_database(key_settings.clone());
        let kek = || KekRing::new(discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek"));
        let leaver = {
            let vault = Vault::open_postgres(&options, kek()).expect("open");
            vault
                .append_events(
                    "test",
                    &[purchase("leaver", "A", 1), purchase("stayer", "B", 2)],
                    None,
                )
                .expect("append");
            let leaver = vault.subject_id("leaver").expect("lookup").expect("known");
            vault.forget("leaver", "test", 0).expect("forget");
            leaver
        };
        assert_eq!(
            backend.query_i64(&format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = '{}'",
                backend.key_schema
            )),
            0,
            "no key schema in the data's database"
        );
        let key_schema = backend.key_schema.clone();
        let destroyed: i64 = backend.sql(move |client| async move {
            // A second connection, to the key database.
            drop(client);
            let (keys, connection) = tokio_postgres::connect(&key_settings, tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(connection);
            let count = keys
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {key_schema}.data_keys WHERE subject = $1 AND wrapped IS NULL AND destroyed_at IS NOT NULL"
                    ),
                    &[&leaver],
                )
                .await?
                .try_get(0);
            drop(keys);
            let _ = driver.await;
            count
        });
        assert_eq!(destroyed, 1, "the key was destroyed in the key database");
        let vault = Vault::open_postgres(&options, kek()).expect("reopen");
        assert_eq!(events_of(&vault, "stayer").expect("read").len(), 1);
    }));
    backend.execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
    if let Err(panic) = opened {
        std::panic::resume_unwind(panic);
    }
}
