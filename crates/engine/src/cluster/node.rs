//! The node's loop: heartbeats (throttled, counted from when they were sent), recovery by a
//! rebuild when the others gave up on this node or a change could not be followed, the
//! once-only upkeep, and leaving at shutdown.

use std::sync::Weak;
use std::sync::atomic::Ordering;

use discreet_vault::now_millis;

use crate::engine::{Engine, Inner, lock};
use crate::error::Result;

/// The node's loop runs the upkeep duty (finishing forgets whose process stopped, trimming
/// the log, dropping long-gone nodes) every this many turns, on one node at a time.
const UPKEEP_EVERY_TURNS: u64 = 120;
/// Changes older than this that every live node applied are trimmed.
const KEEP_CHANGES_MILLIS: i64 = 10 * 60 * 1000;
/// Nodes not live and silent this long are dropped from the nodes table.
const FORGET_NODES_AFTER_MILLIS: i64 = 60 * 60 * 1000;
/// The once-only duty of upkeep.
const UPKEEP_DUTY: &str = "upkeep";

impl Engine {
    /// Rebuilds this node's models from the store and catches up with the log, refusing
    /// requests meanwhile; then reports itself live again.
    pub(crate) fn recover(&self) -> Result<()> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        cluster.catching_up.store(true, Ordering::SeqCst);
        let log = self.cluster_log()?;
        {
            let _one = lock(&cluster.catching);
            let head = log.changes_head()?;
            let doomed = log.erasures_announced()?;
            *lock(&cluster.doomed) = doomed.into_iter().collect();
            lock(&cluster.overlaps).clear();
            // The rebuild reads the store as of at least `head`: the log is applied after it.
            let before = cluster.applied.swap(head, Ordering::SeqCst);
            cluster.rebuild_wanted.store(false, Ordering::SeqCst);
            if let Err(error) = self.rebuild(&|_| {}) {
                cluster.applied.store(before, Ordering::SeqCst);
                cluster.rebuild_wanted.store(true, Ordering::SeqCst);
                return Err(error);
            }
        }
        self.catch_up()?;
        if cluster.rebuild_wanted.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.beat(true)?;
        cluster.catching_up.store(false, Ordering::SeqCst);
        tracing::info!("caught up with the other nodes");
        Ok(())
    }

    /// Reports this node alive with what it applied: at the heartbeat interval, or at once
    /// when it applied more (someone may be waiting for it), or `rejoin` after it caught up.
    /// Answers whether the others still count it live.
    pub(super) fn beat(&self, rejoin: bool) -> Result<bool> {
        let Some(cluster) = self.cluster().filter(|cluster| cluster.serving) else {
            return Ok(true);
        };
        let applied = cluster.applied.load(Ordering::SeqCst);
        let now = now_millis();
        let due = now - cluster.last_beat_sent.load(Ordering::SeqCst)
            >= cluster.options.heartbeat.as_millis() as i64;
        if !rejoin && !due && applied == cluster.last_reported.load(Ordering::SeqCst) {
            return Ok(true);
        }
        cluster.last_beat_sent.store(now, Ordering::SeqCst);
        let row = self.cluster_log()?.heartbeat(
            &cluster.options.node,
            cluster.started_at,
            applied,
            rejoin,
        )?;
        cluster.last_reported.store(applied, Ordering::SeqCst);
        // A heartbeat proves the node alive as of when it was sent, not when its answer came
        // back (a process paused in between must not count itself fresh).
        cluster.last_beat_ok.store(now, Ordering::SeqCst);
        Ok(row.live)
    }

    /// One turn of the node's loop: apply what was committed, report, recover when another
    /// node marked this one not live or a change could not be followed; now and then, the
    /// upkeep duty.
    fn cluster_turn(&self) -> Result<()> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        if let Err(error) = self.catch_up() {
            tracing::warn!(%error, "reading the other nodes' changes failed; retrying");
        }
        let first = cluster.last_reported.load(Ordering::SeqCst) < 0;
        if first && !cluster.rebuild_wanted.load(Ordering::SeqCst) {
            // Rebuilt at start and caught up: live from here.
            self.beat(true)?;
            cluster.catching_up.store(false, Ordering::SeqCst);
        } else if !self.beat(false)? || cluster.rebuild_wanted.load(Ordering::SeqCst) {
            tracing::warn!("this node must rebuild before it answers again");
            self.recover()?;
        }
        if cluster.turns.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY_TURNS == 0 {
            self.upkeep()?;
        }
        Ok(())
    }

    /// The once-only upkeep: finishes forgets whose process stopped long ago, trims the
    /// log of what every live node applied, drops nodes long gone.
    fn upkeep(&self) -> Result<()> {
        let log = self.cluster_log()?;
        if !log.try_duty(UPKEEP_DUTY)? {
            return Ok(());
        }
        let done = (|| -> Result<()> {
            let now = log.db_now()?;
            for receipt in self
                .inner
                .vault
                .recover(now - discreet_vault::STALE_FORGET_MILLIS)?
            {
                tracing::info!(receipt = %receipt.id, "finished a forget whose node stopped");
            }
            log.trim_changes(now - KEEP_CHANGES_MILLIS)?;
            log.prune_nodes(now - FORGET_NODES_AFTER_MILLIS)?;
            Ok(())
        })();
        log.release_duty(UPKEEP_DUTY)?;
        done
    }

    /// Leaves the other nodes (a clean shutdown).
    pub(crate) fn leave_cluster(&self) {
        let Some(cluster) = self.cluster().filter(|cluster| cluster.serving) else {
            return;
        };
        // The loop first stops, so that no heartbeat brings the node back after it left.
        if let Some(thread) = lock(&cluster.thread).take() {
            let _ = thread.join();
        }
        if let Ok(log) = self.cluster_log()
            && let Err(error) = log.leave(&cluster.options.node)
        {
            tracing::warn!(%error, "could not leave the other nodes");
        }
    }
}

/// Starts the node's loop: it waits for the bell (or the heartbeat interval), applies the
/// log and reports; it stops when the engine stops or is dropped.
pub(crate) fn start_cluster_loop(inner: Weak<Inner>) {
    let keep = inner.clone();
    let spawned = std::thread::Builder::new()
        .name("discreet-cluster".to_owned())
        .spawn(move || {
            let mut heard = 0;
            loop {
                let Some(strong) = inner.upgrade() else {
                    return;
                };
                let engine = Engine { inner: strong };
                if engine.inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Some(cluster) = engine.cluster() else {
                    return;
                };
                let (bell, every) = (cluster.bell.clone(), cluster.options.heartbeat);
                if let Err(error) = engine.cluster_turn() {
                    tracing::error!(%error, "the node's turn failed; retrying");
                }
                drop(engine);
                match bell {
                    Some(bell) => heard = bell.wait(heard, every),
                    None => std::thread::sleep(every),
                }
            }
        });
    match spawned {
        Ok(thread) => {
            if let Some(strong) = keep.upgrade()
                && let Some(cluster) = strong.cluster.get()
            {
                *lock(&cluster.thread) = Some(thread);
            }
        }
        Err(error) => tracing::error!(%error, "could not start the cluster thread"),
    }
}
