//! The commands that open the store, on PostgreSQL (`--postgres`): keys, forget, audit
//! verify and backup work without a data folder, the backup holds no key, and the store
//! lives in the schemas named. Runs against the database `DISCREET_TEST_POSTGRES` names, in
//! schemas of its own that it drops after; skipped with a printed reason without it.

use std::time::Duration;

use crate::support::{Store, run_cli};

const WITHIN: Duration = Duration::from_secs(120);

/// Drops the test's schemas, whatever happened.
struct Schemas {
    settings: String,
    data: String,
}

impl Schemas {
    /// Schemas of this test's own (`PREFIX_pid_nanos`) in the database
    /// `DISCREET_TEST_POSTGRES` names; `None`, with the reason printed, without it.
    fn for_test(prefix: &str) -> Option<Schemas> {
        let Ok(settings) = std::env::var("DISCREET_TEST_POSTGRES") else {
            eprintln!(
                "skipped: DISCREET_TEST_POSTGRES is not set (a PostgreSQL database for the tests)"
            );
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        Some(Schemas {
            settings,
            data: format!("{prefix}_{}_{nanos}", std::process::id()),
        })
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let statements = format!(
            "DROP SCHEMA IF EXISTS {0} CASCADE; DROP SCHEMA IF EXISTS {0}_keys CASCADE;",
            self.data
        );
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&self.settings, tokio_postgres::NoTls).await
            {
                let driver = tokio::spawn(connection);
                let _ = client.batch_execute(&statements).await;
                drop(client);
                let _ = driver.await;
            }
        });
    }
}

#[test]
fn operator_commands_work_on_postgres_without_a_data_folder() {
    let Some(schemas) = Schemas::for_test("cli_test") else {
        return;
    };
    let settings = schemas.settings.clone();
    let store = Store::new();
    let kek = store.kek_file.display().to_string();
    let data_dir = store.data_dir.display().to_string();
    let on_postgres = |head: &[&str]| {
        let mut args: Vec<&str> = head.to_vec();
        args.extend([
            "--postgres",
            settings.as_str(),
            "--postgres-schema",
            schemas.data.as_str(),
            "--kek-file",
            kek.as_str(),
            "--data-dir",
            data_dir.as_str(),
        ]);
        run_cli(&store, &args, WITHIN)
    };
    let created = on_postgres(&["keys", "create", "--role", "privacy", "--json"]);
    assert_eq!(created.code(), Some(0), "{created}");
    let listed = on_postgres(&["keys", "list", "--json"]);
    assert_eq!(listed.code(), Some(0), "{listed}");
    assert_eq!(
        listed.json()["keys"][0]["id"],
        created.json()["id"],
        "{listed}"
    );
    let forget = on_postgres(&["forget", "c-404", "--json"]);
    assert_eq!(
        forget.code(),
        Some(3),
        "forget of an unknown subject: {forget}"
    );
    let verified = on_postgres(&["audit", "verify", "--json"]);
    assert_eq!(verified.code(), Some(0), "{verified}");
    let backup = store.file("data.dump");
    let keys_copy = store.file("keys.dump");
    let backed_up = on_postgres(&[
        "backup",
        "--to",
        &backup.display().to_string(),
        "--keys-to",
        &keys_copy.display().to_string(),
    ]);
    assert_eq!(backed_up.code(), Some(0), "{backed_up}");
    let data = std::fs::read(&backup).expect("the data backup");
    let keys = std::fs::read(&keys_copy).expect("the key store copy");
    assert!(
        data.starts_with(b"discreet-postgres-dump 1\ndata "),
        "a data dump"
    );
    assert!(
        keys.starts_with(b"discreet-postgres-dump 1\nkeys "),
        "a key dump"
    );
    assert!(
        !store.data_dir.exists(),
        "on PostgreSQL no data folder is made"
    );
    // The same commands without --postgres are a different, empty store.
    let local = run_cli(
        &store,
        &[
            "keys",
            "list",
            "--json",
            "--kek-file",
            &kek,
            "--data-dir",
            &data_dir,
        ],
        WITHIN,
    );
    assert_eq!(local.code(), Some(0), "{local}");
    assert_eq!(
        local.json()["keys"].as_array().map(Vec::len),
        Some(0),
        "{local}"
    );
}

/// A shop moves from the embedded store to PostgreSQL: `export --all` from SQLite, then
/// `import` with `--postgres`; the PostgreSQL store's own `export --all` is the same lines,
/// and the models rebuilt there hold and explain the same for a consenting customer.
#[test]
fn a_shop_moves_from_sqlite_to_postgres_by_export_all_and_import() {
    let Some(schemas) = Schemas::for_test("cli_move") else {
        return;
    };
    let settings = schemas.settings.clone();
    let sqlite = Store::new();
    let history = crate::import_jsonl::shop_history();
    let file = crate::import_jsonl::write_lines(&sqlite, "history.jsonl", &history);
    let imported = crate::support::run_on(&sqlite, &["import", &file], WITHIN);
    assert_eq!(imported.code(), Some(0), "{imported}");
    let sqlite_export = sqlite.file("sqlite.jsonl").display().to_string();
    let exported = crate::support::run_on(
        &sqlite,
        &[
            "export",
            "--all",
            "--format",
            "jsonl",
            "--output",
            &sqlite_export,
        ],
        WITHIN,
    );
    assert_eq!(exported.code(), Some(0), "{exported}");

    let postgres = Store::new();
    let kek = postgres.kek_file.display().to_string();
    let on_postgres = |head: &[&str]| {
        let mut args: Vec<&str> = head.to_vec();
        args.extend([
            "--postgres",
            settings.as_str(),
            "--postgres-schema",
            schemas.data.as_str(),
            "--kek-file",
            kek.as_str(),
        ]);
        run_cli(&postgres, &args, WITHIN)
    };
    let moved = on_postgres(&["import", &sqlite_export]);
    assert_eq!(moved.code(), Some(0), "{moved}");
    let postgres_export = postgres.file("postgres.jsonl").display().to_string();
    let back = on_postgres(&[
        "export",
        "--all",
        "--format",
        "jsonl",
        "--output",
        &postgres_export,
    ]);
    assert_eq!(back.code(), Some(0), "{back}");
    let sorted = |path: &str| {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .expect("an export")
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let lines = sorted(&sqlite_export);
    assert!(lines.len() >= history.len() - 1, "{} lines", lines.len());
    assert_eq!(
        sorted(&postgres_export),
        lines,
        "PostgreSQL holds the same records"
    );

    let held = |run: crate::support::Run| {
        assert_eq!(run.code(), Some(0), "{run}");
        let derived = run.json()["derived"].clone();
        let mut items: Vec<String> = derived["models_hold"]
            .as_array()
            .map(|held| held.iter().map(|item| item["item"].to_string()).collect())
            .unwrap_or_default();
        items.sort();
        (derived["learned"].clone(), items)
    };
    let on_sqlite = held(crate::support::run_on(&sqlite, &["export", "c-1"], WITHIN));
    assert_eq!(on_sqlite.0, serde_json::json!(true), "c-1 consented");
    assert!(!on_sqlite.1.is_empty());
    assert_eq!(
        held(on_postgres(&["export", "c-1"])),
        on_sqlite,
        "the models rebuilt on PostgreSQL hold the same for c-1"
    );
}
