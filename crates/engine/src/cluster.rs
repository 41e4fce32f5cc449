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
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
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
    /// Set while the node rebuilds after it was marked not live: it refuses requests.
    catching_up: AtomicBool,
    /// Set when a change showed that only a rebuild can make the models exact again.
    rebuild_wanted: AtomicBool,
    bell: Arc<dyn ChangeBell>,
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
        let bell = log.bell()?;
        let head = log.changes_head()?;
        let started_at = now_millis();
        if serving {
            log.heartbeat(&options.node, started_at, head, true)?;
        }
        let cluster = Cluster {
            serving,
            options,
            started_at,
            applied: AtomicI64::new(head),
            behind: AtomicI64::new(0),
            catching_up: AtomicBool::new(false),
            rebuild_wanted: AtomicBool::new(false),
            bell,
            overlaps: Mutex::new(Vec::new()),
            doomed: Mutex::new(HashSet::new()),
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

    /// Refuses requests while this node catches up after it was marked not live.
    pub(crate) fn check_caught_up(&self) -> Result<()> {
        match self.cluster() {
            Some(cluster) if cluster.catching_up.load(Ordering::SeqCst) => Err(Error::NotReady),
            _ => Ok(()),
        }
    }

    /// Remembers that events `seqs` were learned straight from the store when the log's
    /// head was at most `until` (what a rebuild or a consent grant read).
    pub(crate) fn learned_from_store(&self, seqs: impl IntoIterator<Item = i64>) -> Result<()> {
        let Some(cluster) = self.cluster().filter(|cluster| cluster.serving) else {
            return Ok(());
        };
        let until = self.cluster_log()?.changes_head()?;
        let seqs: HashSet<i64> = seqs.into_iter().collect();
        if !seqs.is_empty() && until > cluster.applied.load(Ordering::SeqCst) {
            lock(&cluster.overlaps).push(Overlap { until, seqs });
        }
        Ok(())
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
            let now = now_millis();
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
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let log = self.cluster_log()?;
        loop {
            let after = cluster.applied.load(Ordering::SeqCst);
            let changes = log.changes_after(after, CHANGES_PAGE)?;
            let Some(last) = changes.last().map(|change| change.seq) else {
                break;
            };
            for change in &changes {
                if change.node != cluster.options.node {
                    self.apply_change(change)?;
                }
                cluster.applied.store(change.seq, Ordering::SeqCst);
            }
            lock(&cluster.overlaps).retain(|overlap| overlap.until > last);
            if changes.len() < CHANGES_PAGE {
                break;
            }
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
                let _gate = self.exclusive();
                self.learn_queued(&batch);
            }
            ChangeKind::Consents => {
                for subject in &change.subjects {
                    self.follow_stored_consent(*subject)?;
                }
            }
            ChangeKind::Forgetting | ChangeKind::Forgotten => {
                for subject in &change.subjects {
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
            tracing::warn!("a forgotten subject was still learned here: rebuilding");
            if let Some(cluster) = self.cluster() {
                cluster.catching_up.store(true, Ordering::SeqCst);
                cluster.rebuild_wanted.store(true, Ordering::SeqCst);
            }
            return Ok(());
        }
        let events = self.inner.vault.events_of(
            subject,
            Access {
                actor: LEARNER_ACTOR,
                purpose: self.inner.model_purpose.as_deref().unwrap_or("none"),
            },
        )?;
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
        cluster.rebuild_wanted.store(false, Ordering::SeqCst);
        let log = self.cluster_log()?;
        let head = log.changes_head()?;
        lock(&cluster.overlaps).clear();
        cluster.applied.store(head, Ordering::SeqCst);
        self.rebuild(&|_| {})?;
        self.catch_up()?;
        log.heartbeat(
            &cluster.options.node,
            cluster.started_at,
            cluster.applied.load(Ordering::SeqCst),
            true,
        )?;
        cluster.catching_up.store(false, Ordering::SeqCst);
        tracing::info!("caught up with the other nodes");
        Ok(())
    }

    /// One turn of the node's loop: apply what was committed, report, and recover when
    /// another node marked this one not live.
    fn cluster_turn(&self) -> Result<()> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        self.catch_up()?;
        let row = self.cluster_log()?.heartbeat(
            &cluster.options.node,
            cluster.started_at,
            cluster.applied.load(Ordering::SeqCst),
            false,
        )?;
        if !row.live || cluster.rebuild_wanted.load(Ordering::SeqCst) {
            tracing::warn!("this node must rebuild before it answers again");
            self.recover()?;
        }
        Ok(())
    }

    /// Leaves the other nodes (a clean shutdown).
    pub(crate) fn leave_cluster(&self) {
        if let Some(cluster) = self.cluster()
            && cluster.serving
            && let Ok(log) = self.cluster_log()
            && let Err(error) = log.leave(&cluster.options.node)
        {
            tracing::warn!(%error, "could not leave the other nodes");
        }
    }
}

/// Starts the node's loop: it waits for the bell (or the heartbeat interval), applies the
/// log and reports; it stops when the engine stops or is dropped.
pub(crate) fn start_cluster_loop(inner: Weak<Inner>) {
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
                let (bell, every) = (Arc::clone(&cluster.bell), cluster.options.heartbeat);
                if let Err(error) = engine.cluster_turn() {
                    tracing::error!(%error, "applying the other nodes' changes failed; retrying");
                }
                drop(engine);
                heard = bell.wait(heard, every);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the cluster thread");
    }
}
