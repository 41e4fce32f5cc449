//! Several nodes on one PostgreSQL store, in process: two engines joined as two nodes, each
//! with its own loop. A retention sweep on one announces what it erases: the other unlearns
//! it before the events go, without a rebuild, and both then answer as a node rebuilt from
//! what is left. Runs against the database `DISCREET_TEST_POSTGRES` names, in schemas of
//! its own that it drops after; skipped with a printed reason without it.

use std::time::{Duration, Instant};

use discreet_engine::{Caller, ClusterOptions, Engine, EngineOptions};
use discreet_policy::Policy;
use discreet_vault::{Kek, KekRing, PostgresOptions, Vault};

use crate::support::{days_ago, event, grant, ingest_all};

/// Drops the test's schemas, whatever happened.
struct Store {
    options: PostgresOptions,
    kek: String,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = discreet_vault::postgres::drop_store(&self.options);
    }
}

impl Store {
    fn new() -> Option<Store> {
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
        let schema = format!("engine_nodes_{}_{nanos}", std::process::id());
        let mut options =
            PostgresOptions::new(settings).with_schemas(&schema, &format!("{schema}_keys"));
        options.shared = true;
        Some(Store {
            options,
            kek: discreet_vault::crypto::to_hex(
                &discreet_vault::crypto::random_bytes::<32>().expect("random")[..],
            ),
        })
    }

    /// An engine on the store; as a serving node when `node` is given.
    fn engine(&self, node: Option<&str>) -> Engine {
        let kek = KekRing::new(Kek::from_hex(&self.kek).expect("kek"));
        let vault = Vault::open_postgres(&self.options, kek).expect("open");
        let engine =
            Engine::new(Policy::builtin_retail(), vault, EngineOptions::default()).expect("engine");
        if let Some(node) = node {
            let mut options = ClusterOptions::new(node);
            options.heartbeat = Duration::from_millis(100);
            engine.join_cluster(options).expect("join");
        }
        engine.rebuild(&|_| {}).expect("rebuild");
        engine.start_background();
        engine
    }
}

fn similar(engine: &Engine, item: &str) -> Vec<String> {
    engine
        .similar(&Caller::operator(), item, 8)
        .map(|items| items.into_iter().map(|entry| entry.item).collect())
        .unwrap_or_default()
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not within 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_sweep_on_one_node_unlearns_on_the_other_before_the_events_go() {
    let Some(store) = Store::new() else {
        return;
    };
    let a = store.engine(Some("node-a"));
    let b = store.engine(Some("node-b"));
    eventually("both nodes live", || a.is_ready() && b.is_ready());
    // Views 300 days old (kept 13 months) and a recent purchase pair (kept 3 years), on A;
    // the sweep runs as if 120 days from now.
    for subject in ["c-1", "c-2"] {
        grant(&a, subject);
    }
    ingest_all(
        &a,
        &[
            event("c-1", "view", "OLD-1", days_ago(300.0)),
            event("c-1", "view", "OLD-2", days_ago(300.0)),
            event("c-2", "purchase", "NEW-1", days_ago(2.0)),
            event("c-2", "purchase", "NEW-2", days_ago(2.0)),
        ],
    );
    eventually("B learns A's events", || {
        similar(&b, "OLD-1").contains(&"OLD-2".to_owned())
            && similar(&b, "NEW-1").contains(&"NEW-2".to_owned())
    });

    let swept = a
        .sweep_retention(discreet_vault::now_millis() + 120 * 86_400_000)
        .expect("sweep");
    assert_eq!(swept.events, 2, "{swept:?}");
    // Once the sweep returned, B no longer holds the erased views, and kept the purchases —
    // without rebuilding (it stayed ready).
    assert!(b.is_ready());
    assert!(!similar(&b, "OLD-1").contains(&"OLD-2".to_owned()));
    assert!(similar(&b, "NEW-1").contains(&"NEW-2".to_owned()));
    // Both answer as a node rebuilt from what is left.
    let rebuilt = store.engine(None);
    for item in ["OLD-1", "OLD-2", "NEW-1", "NEW-2"] {
        assert_eq!(similar(&a, item), similar(&rebuilt, item), "A on {item}");
        assert_eq!(similar(&b, item), similar(&rebuilt, item), "B on {item}");
    }
    for engine in [&a, &b] {
        assert_eq!(engine.node_health().map(|health| health.live), Some(true));
    }
    b.shutdown();
    a.shutdown();
}
