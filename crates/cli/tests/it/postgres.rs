//! The commands that open the store, on PostgreSQL (`--postgres`): keys, forget, audit
//! verify and backup work without a data folder, the backup holds no key, and the store
//! lives in the schemas named. Runs against the database `DISCREET_TEST_POSTGRES` names, in
//! schemas of its own that it drops after; skipped with a printed reason without it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, Store, run_cli};

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

/// How long a node may take to start (rebuild included).
const NODE_STARTS_WITHIN: Duration = Duration::from_secs(120);

/// The `--postgres` flags of a node named `node` on the test's schemas.
fn node_flags(schemas: &Schemas, node: &str) -> Vec<String> {
    vec![
        "--postgres".into(),
        schemas.settings.clone(),
        "--postgres-schema".into(),
        schemas.data.clone(),
        "--node".into(),
        node.into(),
    ]
}

fn start_node(store: &Store, schemas: &Schemas, node: &str) -> Server {
    let flags = node_flags(schemas, node);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_with(store, node, &flags, NODE_STARTS_WITHIN)
}

/// The items similar to `item` on `server`, in order.
fn similar(server: &Server, key: &str, item: &str) -> Vec<String> {
    let response = server.call("GET", &format!("/v1/items/{item}/similar?n=8"), key, None);
    if response.status == 404 {
        // Not an item this node's models know (yet, or any more).
        return Vec::new();
    }
    assert_eq!(response.status, 200, "{}", response.text);
    let answer = response.json();
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {answer}"))
        .iter()
        .map(|entry| entry["item"].as_str().expect("an item").to_owned())
        .collect()
}

/// Waits (at most 30 s) until `check` holds; answers how long it took.
fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// A customer who consents and buys `items` (an hour ago) through `server`.
fn shopper(server: &Server, key: &str, subject: &str, items: &[&str]) {
    server.ok(
        "PUT",
        &format!("/v1/subjects/{subject}/consents/personalization"),
        key,
        Some(&json!({"granted": true, "source": "two-node-test"})),
    );
    let at = discreet_vault::rfc3339(discreet_vault::now_millis() - 3_600_000);
    let events: Vec<Value> = items
        .iter()
        .map(|item| json!({"subject": subject, "type": "purchase", "item": item, "at": at}))
        .collect();
    server.ok(
        "POST",
        "/v1/events",
        key,
        Some(&json!({ "events": events })),
    );
}

/// Sends `signal` (`-STOP`, `-CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill {signal} {pid}");
}

/// Whether `node` is live in the nodes table, as the database says.
fn node_live(schemas: &Schemas, node: &str) -> Option<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&schemas.settings, tokio_postgres::NoTls)
                .await
                .expect("connect");
        let driver = tokio::spawn(connection);
        let row = client
            .query_opt(
                &format!("SELECT live FROM {}.nodes WHERE id = $1", schemas.data),
                &[&node],
            )
            .await
            .expect("query the nodes");
        drop(client);
        let _ = driver.await;
        row.map(|row| row.get::<_, bool>(0))
    })
}

/// Two `serve` processes on one database: what one learns, the other answers; a forget on
/// one is answered only when the other's models dropped the subject (and they equal a
/// rebuild without it); a node stopped during a forget is marked not live and refuses until
/// it rebuilt; a node killed during a forget comes back without the subject; a withdrawal
/// on one unlearns on the other.
#[test]
fn two_nodes_on_one_database_learn_and_forget_together() {
    let Some(schemas) = Schemas::for_test("two_nodes") else {
        return;
    };
    let store = Store::new();
    let mut cli = vec!["keys", "create", "--role", "admin", "--json"];
    let flags = node_flags(&schemas, "unused");
    cli.extend(flags[..4].iter().map(String::as_str));
    cli.extend(["--kek-file", store.kek_file.to_str().expect("a path")]);
    let created = run_cli(&store, &cli, WITHIN);
    assert_eq!(created.code(), Some(0), "{created}");
    let key = created.json()["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();

    let mut a = start_node(&store, &schemas, "node-a");
    let b = start_node(&store, &schemas, "node-b");
    let health = b.ok("GET", "/healthz", &key, None);
    assert_eq!(health["node"], "node-b", "{health}");
    assert_eq!(health["ready"], true, "{health}");

    // Background shoppers, then the canary's pair, ingested on A.
    for (index, items) in [["P1", "P2", "P3"], ["P2", "P3", "P4"], ["P1", "P4", "P5"]]
        .iter()
        .enumerate()
    {
        shopper(&a, &key, &format!("c-shop-{index}"), items);
    }
    shopper(&a, &key, "c-canary", &["CANARY-X", "CANARY-Y"]);
    let reached = eventually("the canary's pair reaches B", || {
        similar(&b, &key, "CANARY-X").contains(&"CANARY-Y".to_owned())
    });
    eprintln!("a change reached the other node in {reached:?}");
    // The node that will be killed during a forget later holds a pair of its own.
    shopper(&b, &key, "c-killed", &["KILL-1", "KILL-2"]);
    eventually("the second pair reaches A", || {
        similar(&a, &key, "KILL-1").contains(&"KILL-2".to_owned())
    });

    // Forget on B: once B answers, A no longer shows the canary.
    let forgotten = b.call("DELETE", "/v1/subjects/c-canary", &key, None);
    assert_eq!(forgotten.status, 200, "{}", forgotten.text);
    assert!(
        !similar(&a, &key, "CANARY-X").contains(&"CANARY-Y".to_owned()),
        "A still shows the forgotten canary"
    );
    // Withdrawn on A: once A answers, B no longer learns from the customer.
    let withdrawn = a.ok(
        "PUT",
        "/v1/subjects/c-shop-2/consents/personalization",
        &key,
        Some(&json!({"granted": false, "source": "two-node-test"})),
    );
    assert_eq!(withdrawn["state"], "withdrawn", "{withdrawn}");
    assert!(
        !similar(&b, &key, "P5").contains(&"P1".to_owned()),
        "B still learns from the withdrawn customer"
    );

    // Both equal a node rebuilt from the store without them.
    let c = start_node(&store, &schemas, "node-c");
    for item in ["P1", "P2", "P3", "P4", "P5", "CANARY-X", "KILL-1"] {
        let rebuilt = similar(&c, &key, item);
        assert_eq!(similar(&a, &key, item), rebuilt, "A on {item}");
        assert_eq!(similar(&b, &key, item), rebuilt, "B on {item}");
    }
    drop(c);

    // A stops (SIGSTOP) during a forget on B: B answers once A is silent, having marked it
    // not live; A, continued, refuses requests until it has rebuilt, then answers without
    // the subject.
    shopper(&b, &key, "c-paused", &["PAUSE-1", "PAUSE-2"]);
    eventually("the paused pair reaches A", || {
        similar(&a, &key, "PAUSE-1").contains(&"PAUSE-2".to_owned())
    });
    signal(a.pid(), "-STOP");
    let forgotten = b.call("DELETE", "/v1/subjects/c-paused", &key, None);
    assert_eq!(forgotten.status, 200, "{}", forgotten.text);
    assert_eq!(
        node_live(&schemas, "node-a"),
        Some(false),
        "B marked A not live"
    );
    signal(a.pid(), "-CONT");
    eventually("A catches up", || {
        let answer = a.call("GET", "/v1/items/PAUSE-1/similar?n=8", &key, None);
        match answer.status {
            503 => false,
            200 | 404 => {
                assert!(
                    !answer.text.contains("PAUSE-2"),
                    "A answered with the forgotten subject: {}",
                    answer.text
                );
                true
            }
            other => panic!("A answered {other}: {}", answer.text),
        }
    });
    assert_eq!(node_live(&schemas, "node-a"), Some(true), "A is live again");

    // A is killed during a forget on B: B does not wait for it past its silence, and A
    // comes back without the subject.
    let forgotten = std::thread::scope(|scope| {
        let forget = scope.spawn(|| b.call("DELETE", "/v1/subjects/c-killed", &key, None));
        a.kill();
        forget.join().expect("the forget's thread")
    });
    assert_eq!(forgotten.status, 200, "{}", forgotten.text);
    let a = start_node(&store, &schemas, "node-a");
    assert!(
        !similar(&a, &key, "KILL-1").contains(&"KILL-2".to_owned()),
        "A came back with the forgotten subject"
    );
    assert!(!similar(&b, &key, "KILL-1").contains(&"KILL-2".to_owned()));
}
