//! The learner: acknowledged event batches are learned by the models on one background
//! thread, in the order they were acknowledged, in chunks of at most `LEARN_CHUNK` events
//! per hold of the models' write lock — so an ingest answers once its batch is durable, and
//! a reader never waits for more than one chunk, however large the batch. Consent changes,
//! forgets and sweeps call `settle` while holding the gate alone: every batch acknowledged
//! before them is learned first, so none is learned twice or after a withdrawal. Never
//! reads the vault and never drops a queued batch (a full queue makes ingests wait).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use discreet_vault::SubjectId;

use crate::engine::{Engine, Inner, lock, write};
use crate::interactions::{EventPayload, interaction_from};

/// Most events learned per hold of the models' write lock.
const LEARN_CHUNK: usize = 256;
/// Most events waiting in the queue before ingests wait for the learner (back-pressure).
const MAX_QUEUED_EVENTS: usize = 200_000;

/// One acknowledged event, as the models need it.
pub(crate) struct QueuedEvent {
    pub subject: SubjectId,
    pub at: i64,
    pub payload: EventPayload,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Vec<QueuedEvent>>,
    queued_events: usize,
    /// A batch is being learned (taken off the queue, not yet done).
    busy: bool,
}

/// The queue between ingests and the learner thread.
#[derive(Default)]
pub(crate) struct Learner {
    queue: Mutex<Queue>,
    /// Signalled when a batch is queued (wakes the learner thread).
    queued: Condvar,
    /// Signalled when a batch is learned (wakes `settle` and waiting ingests).
    learned: Condvar,
}

impl Learner {
    /// Queues an acknowledged batch; waits while the queue is full.
    pub(crate) fn push(&self, batch: Vec<QueuedEvent>) {
        if batch.is_empty() {
            return;
        }
        let mut queue = lock(&self.queue);
        while queue.queued_events >= MAX_QUEUED_EVENTS {
            queue = self
                .learned
                .wait_timeout(queue, Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        queue.queued_events += batch.len();
        queue.batches.push_back(batch);
        self.queued.notify_one();
    }

    /// Waits until every queued batch is learned.
    pub(crate) fn settle(&self) {
        let mut queue = lock(&self.queue);
        while queue.busy || !queue.batches.is_empty() {
            queue = self
                .learned
                .wait_timeout(queue, Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Events acknowledged but not yet learned.
    pub(crate) fn pending_events(&self) -> usize {
        lock(&self.queue).queued_events
    }

    /// The next batch to learn (marks the learner busy), or `None` after `wait` passes.
    fn take(&self, wait: Duration) -> Option<Vec<QueuedEvent>> {
        let mut queue = lock(&self.queue);
        if queue.batches.is_empty() {
            queue = self
                .queued
                .wait_timeout(queue, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let batch = queue.batches.pop_front()?;
        queue.busy = true;
        Some(batch)
    }

    /// Marks the batch taken last as learned.
    fn done(&self, n_events: usize) {
        let mut queue = lock(&self.queue);
        queue.queued_events -= n_events;
        queue.busy = false;
        self.learned.notify_all();
    }
}

impl Engine {
    /// Waits until every acknowledged batch has been learned by the models (what consent
    /// changes and forgets do first; tests call it before reading what they ingested).
    pub fn settle(&self) {
        self.inner.learner.settle();
    }

    /// Teaches the models one batch, chunk by chunk, skipping subjects who do not consent.
    pub(crate) fn learn_queued(&self, batch: &[QueuedEvent]) {
        for chunk in batch.chunks(LEARN_CHUNK) {
            let mut models = write(&self.inner.models);
            let models = &mut *models;
            let mut interactions = Vec::with_capacity(chunk.len());
            for event in chunk {
                if !models.consented.contains(&event.subject) {
                    continue;
                }
                if let Some(interaction) =
                    interaction_from(&mut models.set, event.subject, event.at, &event.payload)
                {
                    interactions.push(interaction);
                }
            }
            if let Err(error) = models.set.learn_batch(&interactions) {
                // Checked before storing, so this is a bug: the models lack these events
                // until the next start rebuilds them from the vault.
                self.inner.learn_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "the models could not learn an acknowledged batch");
            }
        }
    }
}

/// Starts the learner thread; it stops when the engine is dropped. It waits on the queue
/// alone, holding the engine only while it learns, so dropping the engine closes the vault
/// at once.
pub(crate) fn start_learner(learner: Arc<Learner>, inner: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("discreet-learner".to_owned())
        .spawn(move || {
            loop {
                let batch = learner.take(Duration::from_millis(100));
                let Some(strong) = inner.upgrade() else {
                    return;
                };
                let engine = Engine { inner: strong };
                if let Some(batch) = batch {
                    // `done` must follow whatever happens, or `settle` would wait forever.
                    let learned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        engine.learn_queued(&batch)
                    }));
                    if learned.is_err() {
                        engine.inner.learn_failures.fetch_add(1, Ordering::Relaxed);
                    }
                    engine.inner.learner.done(batch.len());
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the learner thread");
    }
}
