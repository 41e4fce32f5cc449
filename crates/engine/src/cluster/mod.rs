//! Several nodes on one PostgreSQL store (DESIGN.md, "Several nodes on PostgreSQL"): each
//! node applies the vault's change log to its own models, in order, after the last change
//! it applied — woken by the change bell, and on a timer — and reports what it applied in
//! its heartbeat. A forget (and a consent withdrawal) is answered only once every live
//! node applied it, or after a bounded wait that marks the silent nodes not live; a node
//! marked not live refuses requests (503) until it has rebuilt its models from the store
//! and caught up. Retention runs on one node at a time (a once-only duty) and announces
//! what it will erase, so every node unlearns it while the events can still be read.
//!
//! Learning is exact on every node: a change is applied once (the log is read in order
//! from the last applied sequence); events another path of this node already read — a
//! rebuild or a consent grant, which read the store directly — are skipped when their
//! change arrives (`Overlap`).

//!
//! The rooms: this one (taking part, health, refusing while behind, waiting for the other
//! nodes, overlaps and doomed events), `apply` (reading the log in order and following each
//! change) and `node` (the node's loop: heartbeats, recovery by rebuild, the upkeep duty).

mod apply;
mod node;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discreet_vault::now_millis;
use discreet_vault::storage::{ChangeBell, ChangeKind, ClusterLog};

use crate::engine::{Engine, lock};
use crate::error::{Error, Result};

pub(crate) use node::start_cluster_loop;

/// Changes read from the log at a time.
const CHANGES_PAGE: usize = 1_000;
/// How often a waiting forget looks at the nodes' progress.
const ACK_POLL: Duration = Duration::from_millis(10);

/// How a node takes part.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// This node's name (unique among the nodes sharing the store).
    pub node: String,
    /// How often the node reports (and reads the log when no bell rang).
    pub heartbeat: Duration,
    /// A node whose last report is older than this is not live.
    pub live_within: Duration,
    /// How long a forget or withdrawal waits for the other live nodes before it marks the
    /// silent ones not live and answers.
    pub ack_wait: Duration,
}

impl ClusterOptions {
    pub fn new(node: impl Into<String>) -> ClusterOptions {
        ClusterOptions {
            node: node.into(),
            heartbeat: Duration::from_millis(500),
            live_within: Duration::from_secs(5),
            ack_wait: Duration::from_secs(10),
        }
    }
}

/// Events a path of this node learned straight from the store, whose changes (at most
/// `until`) may still arrive from the log: skipped then.
struct Overlap {
    until: i64,
    seqs: HashSet<i64>,
}

/// This node's part in the cluster.
pub(crate) struct Cluster {
    options: ClusterOptions,
    /// A serving node (heartbeats, applies the log), not a command-line process.
    pub(crate) serving: bool,
    started_at: i64,
    /// The last change applied.
    applied: AtomicI64,
    /// Changes committed and not yet applied, at the last look.
    behind: AtomicI64,
    /// Set while the node has not caught up (at start, after it was marked not live, or
    /// when a change could not be applied): it refuses requests.
    catching_up: AtomicBool,
    /// When the last heartbeat that went through was sent (this process's clock, unix ms;
    /// 0 before).
    last_beat_ok: AtomicI64,
    /// When the last heartbeat was sent, and the applied sequence it reported.
    last_beat_sent: AtomicI64,
    last_reported: AtomicI64,
    turns: AtomicU64,
    /// One catch-up at a time (the node's loop, a local forget that catches up first).
    catching: Mutex<()>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set when a change showed that only a rebuild can make the models exact again.
    rebuild_wanted: AtomicBool,
    /// Rung when another process commits (serving nodes only).
    bell: Option<Arc<dyn ChangeBell>>,
    /// Events learned straight from the store whose changes may still arrive.
    overlaps: Mutex<Vec<Overlap>>,
    /// Events retention announced it will erase: no path of this node learns them again.
    doomed: Mutex<HashSet<i64>>,
}

/// What `/healthz` says of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHealth {
    pub node: String,
    /// Changes committed that this node has not applied yet.
    pub behind: u64,
    /// False while the node catches up after it was marked not live.
    pub live: bool,
}

impl Engine {
    fn cluster_log(&self) -> Result<&dyn ClusterLog> {
        self.inner.vault.cluster().ok_or_else(|| Error::Internal {
            detail: "several nodes need the PostgreSQL store".into(),
        })
    }

    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.get()
    }

    /// Joins the other nodes on the store as a serving node: from now on this process's
    /// writes are in the change log, and it reports heartbeats. Call before `rebuild`; then
    /// `start_background` starts applying the others' changes.
    pub fn join_cluster(&self, options: ClusterOptions) -> Result<()> {
        self.join(options, true)
    }

    /// Joins the change log without being a node (a command-line process): its writes reach
    /// the serving nodes, and its forgets wait for them, but nobody waits for it.
    pub fn join_changes(&self, node: &str) -> Result<()> {
        self.join(ClusterOptions::new(node), false)
    }

    fn join(&self, options: ClusterOptions, serving: bool) -> Result<()> {
        let log = self.cluster_log()?;
        log.join(&options.node)?;
        let bell = if serving { Some(log.bell()?) } else { None };
        let head = log.changes_head()?;
        // Announced erasures still open: the start-up rebuild must not learn them.
        let doomed: HashSet<i64> = if serving {
            log.erasures_announced()?.into_iter().collect()
        } else {
            HashSet::new()
        };
        let cluster = Cluster {
            serving,
            options,
            started_at: now_millis(),
            applied: AtomicI64::new(head),
            behind: AtomicI64::new(0),
            // A serving node answers once its loop caught up and reported (after the rebuild).
            catching_up: AtomicBool::new(serving),
            last_beat_ok: AtomicI64::new(0),
            last_beat_sent: AtomicI64::new(0),
            last_reported: AtomicI64::new(-1),
            turns: AtomicU64::new(0),
            catching: Mutex::new(()),
            thread: Mutex::new(None),
            rebuild_wanted: AtomicBool::new(false),
            bell,
            overlaps: Mutex::new(Vec::new()),
            doomed: Mutex::new(doomed),
        };
        self.inner
            .cluster
            .set(cluster)
            .map_err(|_| Error::Internal {
                detail: "this engine already joined".into(),
            })
    }

    /// The node's name and how far behind the log it is, when it is one of several.
    pub fn node_health(&self) -> Option<NodeHealth> {
        let cluster = self.cluster()?;
        Some(NodeHealth {
            node: cluster.options.node.clone(),
            behind: u64::try_from(cluster.behind.load(Ordering::Relaxed)).unwrap_or(0),
            live: !cluster.catching_up.load(Ordering::SeqCst),
        })
    }

    /// Refuses requests while this node has not caught up, and when its last heartbeat
    /// went through too long ago (the others may have stopped waiting for it already).
    pub(crate) fn check_caught_up(&self) -> Result<()> {
        let Some(cluster) = self.cluster().filter(|cluster| cluster.serving) else {
            return Ok(());
        };
        let last = cluster.last_beat_ok.load(Ordering::SeqCst);
        let quiet = now_millis() - last > cluster.options.live_within.as_millis() as i64 / 2;
        if cluster.catching_up.load(Ordering::SeqCst) || (last > 0 && quiet) {
            return Err(Error::NotReady);
        }
        Ok(())
    }

    /// A change could not be followed exactly: in a cluster the node stops answering and
    /// rebuilds from the store (answers `Ok`); alone, the error is the caller's.
    pub(crate) fn out_of_step(&self, error: Error) -> Result<()> {
        match self.cluster().filter(|cluster| cluster.serving) {
            Some(cluster) => {
                tracing::error!(%error, "the models could not follow a change: rebuilding");
                cluster.catching_up.store(true, Ordering::SeqCst);
                cluster.rebuild_wanted.store(true, Ordering::SeqCst);
                Ok(())
            }
            None => Err(error),
        }
    }

    /// Remembers which of events `seqs`, learned straight from the store (by a rebuild or a
    /// consent grant), belong to changes after `since` not applied yet: those are skipped
    /// when their change arrives.
    pub(crate) fn learned_from_store(&self, seqs: &[i64], since: i64) -> Result<()> {
        let Some(cluster) = self.cluster().filter(|cluster| cluster.serving) else {
            return Ok(());
        };
        let log = self.cluster_log()?;
        let until = log.changes_head()?;
        if seqs.is_empty() || until <= since {
            return Ok(());
        }
        let mut pending: HashSet<i64> = HashSet::new();
        let mut after = since;
        loop {
            let changes = log.changes_after(after, CHANGES_PAGE)?;
            for change in changes.iter().filter(|change| change.seq <= until) {
                if change.kind == ChangeKind::Events {
                    pending.extend(change.events.iter().copied());
                }
            }
            match changes.last() {
                Some(last) if last.seq < until && changes.len() == CHANGES_PAGE => after = last.seq,
                _ => break,
            }
        }
        let seqs: HashSet<i64> = seqs
            .iter()
            .copied()
            .filter(|seq| pending.contains(seq))
            .collect();
        if !seqs.is_empty() {
            lock(&cluster.overlaps).push(Overlap { until, seqs });
        }
        Ok(())
    }

    /// The last change this node applied (0 alone).
    pub(crate) fn applied_seq(&self) -> i64 {
        self.cluster()
            .map_or(0, |cluster| cluster.applied.load(Ordering::SeqCst))
    }

    /// True when retention announced it will erase event `seq`: it is not learned again.
    pub(crate) fn is_doomed(&self, seq: i64) -> bool {
        self.cluster()
            .is_some_and(|cluster| lock(&cluster.doomed).contains(&seq))
    }

    /// Waits until every other live node applied the log up to its current head, at most
    /// the bounded wait; the nodes still behind then are marked not live. What a forget or
    /// a withdrawal does before it answers (and a forget before it destroys the key).
    pub(crate) fn await_nodes(&self) -> Result<()> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let log = self.cluster_log()?;
        let target = log.changes_head()?;
        let deadline = Instant::now() + cluster.options.ack_wait;
        let live_within = cluster.options.live_within.as_millis() as i64;
        loop {
            let now = log.db_now()?;
            let mut behind = Vec::new();
            let mut silent = Vec::new();
            for node in log.nodes()? {
                if node.id == cluster.options.node || !node.live {
                    continue;
                }
                if now - node.heartbeat_at > live_within {
                    silent.push(node.id);
                } else if node.applied_seq < target {
                    behind.push(node.id);
                }
            }
            if !silent.is_empty() {
                tracing::warn!(nodes = ?silent, "nodes missed their heartbeats: marked not live");
                log.mark_not_live(&silent)?;
            }
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(nodes = ?behind, "nodes did not apply a change in time: marked not live");
                log.mark_not_live(&behind)?;
                return Ok(());
            }
            std::thread::sleep(ACK_POLL);
        }
    }
}
