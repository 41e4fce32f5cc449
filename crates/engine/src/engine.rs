//! The `Engine` type: its settings, its shared state and the lock helpers. Its behaviour is
//! in one `impl Engine` block per responsibility, beside this file: `access` (who may do
//! what), `ingest`, `consent`, `recommend`, `rights` (export, forget), `audit`, `keys`,
//! `retention` and `lifecycle` (rebuild, background work, shutdown).
//!
//! Locks: `gate` orders writes against consent changes, forgets and sweeps (ingests share
//! it while they store and queue a batch for the learner; the others take it alone, through
//! `exclusive`, which also waits until every queued batch is learned), so an event is never
//! learned twice or after its subject's consent was withdrawn. `models` is held for reading
//! while answering and for writing only in short steps: one learner chunk, the two quick
//! steps of an EASE refresh, one subject's forget. Never hold `models` while waiting on the
//! vault. `items` (the catalogue) is taken after `models` when both are held; an upsert
//! stores its items first, then holds `items` alone for the in-memory change.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use discreet_model::{ModelSet, ModelSetConfig};
use discreet_policy::Policy;
use discreet_vault::{ApiKeyRow, SubjectId, Vault, now_millis};

use crate::answers::EngineFigures;
use crate::audit::ReadEntries;
use crate::error::{Error, Result};
use crate::interactions::seconds;
use crate::items::ItemCatalogue;
use crate::learner::{Learner, start_learner};

/// Settings of an engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Model settings; the popularity reference time is re-based to the start time.
    pub models: ModelSetConfig,
    /// Most events in one ingest batch.
    pub max_batch_events: usize,
    /// How often buffered read entries reach the ledger.
    pub access_flush_interval: Duration,
    /// How often pending EASE updates are applied.
    pub model_refresh_interval: Duration,
    /// How often the retention sweep runs.
    pub retention_interval: Duration,
}

/// Model settings chosen by `discreet eval` on the Online Retail validation month (the month
/// before the test cutoff): trending half-life 3 days; item-item and (sparse) EASE scoring
/// each customer's 100 most recent items; sparse EASE (λ = 100, each item regressed on its 64
/// strongest co-occurring items) in the blend's personal place at every catalogue size; each
/// customer contributing its 100 most recent distinct items to the counts; blend sparse
/// EASE 1 + trending 0.5 (item-item still answers "similar items"). What `discreet eval`
/// measures as the chosen blend is exactly what is served (its "served" row).
pub fn tuned_model_config() -> ModelSetConfig {
    let mut config = ModelSetConfig::default().contributing(100);
    config.popularity.trend_half_life_days = 3.0;
    config.item_item.max_history_items = 100;
    config.ease.regularisation = 100.0;
    config.ease.max_history_items = 100;
    config.ease.kept_weights_per_item = 0;
    // Sparse EASE in the personal place at every catalogue size: the blend with it scored
    // best on the validation month.
    config.ease_max_items = 0;
    config.sparse_ease.regularisation = 100.0;
    config.sparse_ease.neighbours_per_item = 64;
    config.blend.item_item_weight = 0.0;
    config.blend.trending_weight = 0.5;
    config
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            models: tuned_model_config(),
            max_batch_events: 10_000,
            access_flush_interval: Duration::from_millis(200),
            model_refresh_interval: Duration::from_secs(2),
            retention_interval: Duration::from_secs(3_600),
        }
    }
}

/// The models and who they may learn from, changed together under one lock.
pub(crate) struct Models {
    pub set: ModelSet,
    /// Subjects whose consent for the models' purpose holds (vault ids).
    pub consented: HashSet<SubjectId>,
}

/// What every clone of an engine shares.
pub(crate) struct Inner {
    pub policy: Policy,
    pub vault: Vault,
    pub options: EngineOptions,
    /// The purpose the models serve (consent-gated), if the policy declares one.
    pub model_purpose: Option<String>,
    /// Data categories of events the models learn from.
    pub model_categories: Vec<String>,
    pub models: RwLock<Models>,
    /// The declared items (not personal data). Lock order: `models` before `items`;
    /// upserts take `items` alone.
    pub items: RwLock<ItemCatalogue>,
    /// One item upsert at a time, so the in-memory catalogue changes in the vault's order.
    pub item_writes: Mutex<()>,
    pub gate: RwLock<()>,
    pub api_keys: RwLock<Vec<ApiKeyRow>>,
    /// One incident write at a time.
    pub incident_writes: crate::incidents::IncidentWrites,
    /// When the ledger was last verified, and what was found (for the console).
    pub ledger_checked: Mutex<Option<crate::dashboard::LedgerChecked>>,
    /// When the background retention sweep last ran (unix ms; 0 before it first did).
    pub last_sweep_at: std::sync::atomic::AtomicI64,
    pub access_log: Mutex<ReadEntries>,
    pub learner: Arc<Learner>,
    pub ready: AtomicBool,
    pub stopping: AtomicBool,
    /// A removal left EASE unable to score: refresh it now rather than at the interval.
    pub refresh_wanted: AtomicBool,
    /// Held while an EASE refresh runs.
    pub refreshing: Mutex<()>,
    pub learn_failures: AtomicU64,
    pub events_accepted: AtomicU64,
    pub forgets_completed: AtomicU64,
    pub retention_erased_rows: AtomicU64,
    /// This node's part when several share the store (set by `join_cluster`).
    pub cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

/// The engine; cheap to clone (threads share one).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// A read guard that survives a panicked writer (the models stay consistent per call).
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// A write guard that survives a panicked writer.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// A mutex guard that survives a panicked holder.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// An engine over an open vault. The models are empty until `rebuild`.
    pub fn new(policy: Policy, vault: Vault, mut options: EngineOptions) -> Result<Engine> {
        options.models.popularity.reference_time = seconds(now_millis());
        let set = ModelSet::new(options.models.clone())?;
        let model_purpose = policy
            .purposes()
            .iter()
            .find(|purpose| purpose.data_use.starts_with("personalize"))
            .map(|purpose| purpose.name.clone());
        let model_categories = policy
            .event_types()
            .iter()
            .filter(|(event_type, _)| event_type.as_str() != "search")
            .map(|(_, category)| category.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let api_keys = vault.api_keys()?;
        let items = ItemCatalogue::from_rows(vault.items()?);
        let engine = Engine {
            inner: Arc::new(Inner {
                policy,
                vault,
                options,
                model_purpose,
                model_categories,
                models: RwLock::new(Models {
                    set,
                    consented: HashSet::new(),
                }),
                items: RwLock::new(items),
                item_writes: Mutex::new(()),
                gate: RwLock::new(()),
                api_keys: RwLock::new(api_keys),
                incident_writes: Default::default(),
                ledger_checked: Mutex::new(None),
                last_sweep_at: std::sync::atomic::AtomicI64::new(0),
                access_log: Mutex::new(ReadEntries::default()),
                learner: Arc::new(Learner::default()),
                ready: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                refresh_wanted: AtomicBool::new(false),
                refreshing: Mutex::new(()),
                learn_failures: AtomicU64::new(0),
                events_accepted: AtomicU64::new(0),
                forgets_completed: AtomicU64::new(0),
                retention_erased_rows: AtomicU64::new(0),
                cluster: std::sync::OnceLock::new(),
            }),
        };
        start_learner(
            Arc::clone(&engine.inner.learner),
            Arc::downgrade(&engine.inner),
        );
        Ok(engine)
    }

    /// Takes the gate alone (no ingest runs) once every acknowledged batch is learned: what
    /// consent changes, forgets, sweeps and rebuilds hold while they change the models.
    pub(crate) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        let gate = write(&self.inner.gate);
        self.inner.learner.settle();
        gate
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The vault (for operator commands: backups, KEK rotation).
    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    /// Most events one ingest batch may hold.
    pub fn max_batch_events(&self) -> usize {
        self.inner.options.max_batch_events
    }

    /// True once the models are rebuilt.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst) && self.check_caught_up().is_ok()
    }

    pub(crate) fn check_ready(&self) -> Result<()> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(Error::NotReady)
        }
    }

    /// Counts for metrics.
    pub fn figures(&self) -> EngineFigures {
        let models = read(&self.inner.models);
        EngineFigures {
            ready: self.is_ready(),
            items: models.set.catalogue().len() as u64,
            declared_items: read(&self.inner.items).len() as u64,
            modelled_subjects: models.set.subjects().len() as u64,
            modelled_events: models.set.item_item().histories().n_events() as u64,
            consented_subjects: models.consented.len() as u64,
            events_accepted: self.inner.events_accepted.load(Ordering::Relaxed),
            forgets_completed: self.inner.forgets_completed.load(Ordering::Relaxed),
            retention_erased_rows: self.inner.retention_erased_rows.load(Ordering::Relaxed),
            access_entries_pending: lock(&self.inner.access_log).len() as u64,
            events_waiting_to_be_learned: self.inner.learner.pending_events() as u64,
            learn_failures: self.inner.learn_failures.load(Ordering::Relaxed),
        }
    }

    /// Asks the background refresh to run now (a removal stopped EASE from scoring).
    pub(crate) fn want_refresh(&self) {
        self.inner.refresh_wanted.store(true, Ordering::SeqCst);
    }

    /// Runs `visit` with read access to the models (tests compare them with a rebuild).
    pub fn with_models<T>(&self, visit: impl FnOnce(&ModelSet) -> T) -> T {
        visit(&read(&self.inner.models).set)
    }
}
