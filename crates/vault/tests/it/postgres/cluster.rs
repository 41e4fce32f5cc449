//! Several nodes on one schema: the change log every joined process writes with its
//! writes, in commit order; the bell that wakes the others; heartbeats and nodes marked
//! not live; once-only duties.

use std::time::{Duration, Instant};

use discreet_vault::storage::{ChangeKind, ChangeRow};
use discreet_vault::{KekRing, Vault};

use super::*;

fn shared(backend: &PostgresBackend) -> Vault {
    let mut options = backend.options();
    options.shared = true;
    let kek = KekRing::new(discreet_vault::Kek::from_hex(&backend.kek_hex).expect("kek"));
    Vault::open_postgres(&options, kek).expect("open shared")
}

fn changes(vault: &Vault) -> Vec<ChangeRow> {
    vault
        .cluster()
        .expect("a cluster log")
        .changes_after(0, 1_000)
        .expect("changes")
}

#[test]
fn joined_writes_log_their_changes_in_order_and_ring_the_other_nodes() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let a = shared(&backend);
    let b = shared(&backend);
    a.cluster().expect("log").join("node-a").expect("join");
    b.cluster().expect("log").join("node-b").expect("join");
    let bell = b.cluster().expect("log").bell().expect("bell");
    // The bell rings once listening (whatever was missed is in the log).
    let mut heard = bell.wait(0, Duration::from_secs(10));
    assert!(heard >= 1, "the bell rang when it began listening");

    let started = Instant::now();
    let stored = a
        .append_events(
            "test",
            &[purchase("c-1", "A", 1), purchase("c-1", "B", 2)],
            None,
        )
        .expect("append");
    let rung = bell.wait(heard, Duration::from_secs(10));
    assert!(
        rung > heard,
        "a commit on A rings B ({:?})",
        started.elapsed()
    );
    heard = rung;

    let log = changes(&b);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].kind, ChangeKind::Events);
    assert_eq!(log[0].node, "node-a");
    assert_eq!(log[0].events.len(), 2);
    let opened = b.events_by_seq(&log[0].events).expect("open");
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[0].subject, stored.subjects["c-1"]);

    // Writes of both nodes, one order; announcing is a change of its own.
    b.append_events("test", &[purchase("c-2", "A", 3)], None)
        .expect("append");
    let announced = a
        .cluster()
        .expect("log")
        .announce(ChangeKind::Erasing, &[], &log[0].events)
        .expect("announce");
    a.forget("c-1", "test", 0).expect("forget");
    let log = changes(&a);
    let kinds: Vec<(ChangeKind, &str)> = log
        .iter()
        .map(|change| (change.kind, change.node.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::Events, "node-a"),
            (ChangeKind::Events, "node-b"),
            (ChangeKind::Erasing, "node-a"),
            (ChangeKind::Forgetting, "node-a"),
            (ChangeKind::Forgotten, "node-a"),
        ]
    );
    assert!(log.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert_eq!(log[2].seq, announced);
    assert_eq!(
        a.cluster().expect("log").changes_head().expect("head"),
        log[4].seq
    );
    assert!(bell.wait(heard, Duration::from_secs(10)) > heard);
    // Forgotten: its events no longer open anywhere.
    assert!(b.events_by_seq(&log[0].events).expect("open").is_empty());

    // A process that did not join writes no change.
    let c = shared(&backend);
    c.append_events("test", &[purchase("c-3", "A", 4)], None)
        .expect("append");
    assert_eq!(changes(&a).len(), 5);
}

#[test]
fn heartbeats_register_nodes_and_a_node_marked_not_live_rejoins_only_when_it_says_so() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let a = shared(&backend);
    let log = a.cluster().expect("log");
    let first = log.heartbeat("node-a", 1, 0, false).expect("beat");
    assert!(first.live);
    log.heartbeat("node-b", 2, 0, false).expect("beat");
    let beat = log.heartbeat("node-a", 1, 7, false).expect("beat");
    assert_eq!(beat.applied_seq, 7);
    assert!(beat.heartbeat_at >= first.heartbeat_at);
    // Never goes back.
    assert_eq!(
        log.heartbeat("node-a", 1, 3, false)
            .expect("beat")
            .applied_seq,
        7
    );
    log.mark_not_live(&["node-b".to_owned()]).expect("mark");
    assert!(!log.heartbeat("node-b", 2, 5, false).expect("beat").live);
    assert!(log.heartbeat("node-b", 2, 5, true).expect("beat").live);
    let nodes = log.nodes().expect("nodes");
    assert_eq!(
        nodes
            .iter()
            .map(|node| node.id.as_str())
            .collect::<Vec<_>>(),
        vec!["node-a", "node-b"]
    );
    log.leave("node-b").expect("leave");
    assert_eq!(log.nodes().expect("nodes").len(), 1);
}

#[test]
fn a_duty_is_held_by_one_process_at_a_time_and_old_applied_changes_are_trimmed() {
    let Some(backend) = PostgresBackend::new() else {
        return;
    };
    let a = shared(&backend);
    let b = shared(&backend);
    let (la, lb) = (a.cluster().expect("log"), b.cluster().expect("log"));
    assert!(la.try_duty("retention").expect("try"));
    assert!(!lb.try_duty("retention").expect("try"), "held by A");
    assert!(lb.try_duty("checkpoints").expect("try"), "another duty");
    la.release_duty("retention").expect("release");
    assert!(lb.try_duty("retention").expect("try"), "released");
    drop(b);
    // The holder's session ended with it (the server notices within moments).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !la.try_duty("retention").expect("try") {
        assert!(Instant::now() < deadline, "the duty was never released");
        std::thread::sleep(Duration::from_millis(20));
    }

    la.join("node-a").expect("join");
    for at in 0..3 {
        a.append_events("test", &[purchase("c-1", "A", at)], None)
            .expect("append");
    }
    let log = changes(&a);
    la.heartbeat("node-a", 1, log[1].seq, false).expect("beat");
    let trimmed = la.trim_changes(i64::MAX).expect("trim");
    assert_eq!(trimmed, 2, "only what every live node applied");
    assert_eq!(changes(&a).len(), 1);
}
