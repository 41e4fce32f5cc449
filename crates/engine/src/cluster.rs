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

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use discreet_vault::storage::{ChangeBell, ChangeKind, ChangeRow, ClusterLog};
use discreet_vault::{Access, SubjectId, now_millis};

use crate::consent::LEARNER_ACTOR;
use crate::engine::{Engine, Inner, lock, read, write};
use crate::error::{Error, Result};
use crate::interactions::{EventPayload, interactions_of, model_name};
use crate::items::ItemCatalogue;
use crate::learner::QueuedEvent;

/// Changes read from the log at a time.
const CHANGES_PAGE: usize = 1_000;
/// The node's loop runs the upkeep duty (finishing forgets whose process stopped, trimming
/// the log, dropping long-gone nodes) every this many turns, on one node at a time.
const UPKEEP_EVERY_TURNS: u64 = 120;
/// Changes older than this that every live node applied are trimmed.
const KEEP_CHANGES_MILLIS: i64 = 10 * 60 * 1000;
/// Nodes not live and silent this long are dropped from the nodes table.
const FORGET_NODES_AFTER_MILLIS: i64 = 60 * 60 * 1000;
/// The once-only duty of upkeep.
const UPKEEP_DUTY: &str = "upkeep";
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

    /// Applies every committed change after the last one applied (only the node's own
    /// loop calls it, so changes are applied one at a time, in order).
    pub(crate) fn catch_up(&self) -> Result<()> {
        let Some(cluster) = self.cluster().filter(|cluster| cluster.serving) else {
            return Ok(());
        };
        let _one = lock(&cluster.catching);
        let log = self.cluster_log()?;
        loop {
            if cluster.rebuild_wanted.load(Ordering::SeqCst) {
                // Only a rebuild makes the models exact again: applying more is pointless.
                break;
            }
            let after = cluster.applied.load(Ordering::SeqCst);
            let changes = log.changes_after(after, CHANGES_PAGE)?;
            let Some(last) = changes.last().map(|change| change.seq) else {
                break;
            };
            for change in &changes {
                if change.node != cluster.options.node
                    && let Err(error) = self.apply_change(change)
                {
                    // Never stuck on one change: the node stops answering and rebuilds.
                    return self.out_of_step(error);
                }
                cluster.applied.store(change.seq, Ordering::SeqCst);
            }
            lock(&cluster.overlaps).retain(|overlap| overlap.until > last);
            if changes.len() < CHANGES_PAGE {
                break;
            }
            // A long backlog is not silence.
            self.beat(false)?;
        }
        let head = log.changes_head()?;
        cluster.behind.store(
            (head - cluster.applied.load(Ordering::SeqCst)).max(0),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Makes this node's models follow one change another node committed.
    fn apply_change(&self, change: &ChangeRow) -> Result<()> {
        let vault = &self.inner.vault;
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        match change.kind {
            ChangeKind::Events => {
                // The gate first: a grant or a rebuild holding it may read these events
                // straight from the store and say so before this looks.
                let _gate = self.exclusive();
                let skipped: HashSet<i64> = {
                    let overlaps = lock(&cluster.overlaps);
                    change
                        .events
                        .iter()
                        .copied()
                        .filter(|seq| {
                            overlaps.iter().any(|overlap| {
                                change.seq <= overlap.until && overlap.seqs.contains(seq)
                            })
                        })
                        .collect()
                };
                let mut batch = Vec::with_capacity(change.events.len());
                for event in vault.events_by_seq(&change.events)? {
                    if skipped.contains(&event.seq) || self.is_doomed(event.seq) {
                        continue;
                    }
                    batch.push(QueuedEvent {
                        subject: event.subject,
                        at: event.at,
                        payload: EventPayload::from_bytes(&event.payload)?,
                    });
                }
                self.learn_queued(&batch);
            }
            ChangeKind::Consents => {
                for subject in &change.subjects {
                    self.follow_stored_consent(*subject)?;
                }
            }
            ChangeKind::Forgetting | ChangeKind::Forgotten => {
                for subject in &change.subjects {
                    // The key and the lookup leave this process's memory too.
                    vault.evict_subject(*subject);
                    self.unlearn_subject(*subject, change.kind)?;
                }
            }
            ChangeKind::Erasing => {
                let _gate = self.exclusive();
                lock(&cluster.doomed).extend(change.events.iter().copied());
                let events = vault.events_by_seq(&change.events)?;
                let mut guard = write(&self.inner.models);
                let models = &mut *guard;
                let learned = events
                    .iter()
                    .filter(|event| models.consented.contains(&event.subject));
                let interactions = interactions_of(&mut models.set, learned)?;
                for interaction in &interactions {
                    // Learned here unless this node rebuilt after the events were erased
                    // elsewhere: then there is nothing to unlearn.
                    if let Err(error) = models.set.unlearn(interaction) {
                        tracing::debug!(%error, "an erased event was not learned here");
                    }
                }
                drop(guard);
                self.want_refresh();
            }
            ChangeKind::Erased => {
                let mut doomed = lock(&cluster.doomed);
                for seq in &change.events {
                    doomed.remove(seq);
                }
            }
            ChangeKind::Keys => {
                *write(&self.inner.api_keys) = vault.api_keys()?;
            }
            ChangeKind::Items => {
                let _one_at_a_time = lock(&self.inner.item_writes);
                let mut catalogue = ItemCatalogue::from_rows(vault.items()?);
                catalogue.models_replaced();
                *write(&self.inner.items) = catalogue;
            }
        }
        Ok(())
    }

    /// Follows the subject's latest decision for the models' purpose, as stored.
    fn follow_stored_consent(&self, subject: SubjectId) -> Result<()> {
        let Some(purpose) = self.inner.model_purpose.clone() else {
            return Ok(());
        };
        let _gate = self.exclusive();
        // A subject being forgotten is never learned again, whatever its last decision.
        if !self.inner.vault.is_active(subject)? {
            return Ok(());
        }
        let history = self.inner.vault.consent_history(subject)?;
        if let Some(latest) = history.iter().rev().find(|row| row.purpose == purpose) {
            self.follow_consent(latest)?;
        }
        Ok(())
    }

    /// Drops a subject another node is forgetting (its events still readable) or forgot.
    fn unlearn_subject(&self, subject: SubjectId, kind: ChangeKind) -> Result<()> {
        let _gate = self.exclusive();
        if !read(&self.inner.models).consented.contains(&subject) {
            return Ok(());
        }
        if kind == ChangeKind::Forgotten {
            // Its Forgetting change was applied before, unless this node missed it: then
            // the events are gone and only a rebuild can drop the subject exactly.
            return self.out_of_step(Error::Internal {
                detail: "a forgotten subject was still learned here".into(),
            });
        }
        let events = self.inner.vault.events_of(
            subject,
            Access {
                actor: LEARNER_ACTOR,
                purpose: self.inner.model_purpose.as_deref().unwrap_or("none"),
            },
        )?;
        let events: Vec<_> = events
            .into_iter()
            .filter(|event| !self.is_doomed(event.seq))
            .collect();
        let mut guard = write(&self.inner.models);
        let models = &mut *guard;
        let interactions = interactions_of(&mut models.set, &events)?;
        models.consented.remove(&subject);
        models
            .set
            .forget_subject(&model_name(subject), &interactions)?;
        drop(guard);
        self.want_refresh();
        Ok(())
    }

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
    fn beat(&self, rejoin: bool) -> Result<bool> {
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
