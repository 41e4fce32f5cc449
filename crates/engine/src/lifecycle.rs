//! The engine's life: the start-up rebuild of the models from the vault (they are derived
//! state, never persisted), the background work (ledger flushes, model refreshes, retention
//! sweeps) and the shutdown that flushes the ledger and signs a checkpoint.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use discreet_model::ModelSet;
use discreet_vault::{LedgerDraft, SubjectId, now_millis};

use crate::answers::{RebuildProgress, RebuildReport};
use crate::engine::{Engine, Inner, lock, read, write};
use crate::error::Result;
use crate::interactions::interactions_of;

/// Pruned EASE rows derived per hold of the models' read lock.
const WARM_SLICE: usize = 64;
/// Events read from the vault per page while rebuilding.
const REBUILD_PAGE: usize = 20_000;

impl Engine {
    /// Rebuilds the models from the vault: reads every stored event once, learns those of
    /// subjects whose consent holds, and marks the engine ready.
    pub fn rebuild(&self, progress: &dyn Fn(RebuildProgress)) -> Result<RebuildReport> {
        let started = Instant::now();
        // No refresh may be computing meanwhile: its outcome, planned on the replaced models,
        // could match the new models' solution generation and be installed into them.
        let _refreshing = lock(&self.inner.refreshing);
        let _gate = self.exclusive();
        let vault = &self.inner.vault;
        let events_total = vault.count_events()?;
        let mut set = ModelSet::new(self.inner.options.models.clone())?;
        let mut consent_of: HashMap<SubjectId, bool> = HashMap::new();
        let mut interactions = Vec::new();
        let mut after_seq = 0;
        let mut events_read = 0u64;
        // With several nodes: what was read here, so that its changes are not learned twice.
        let mut learned_seqs: Vec<i64> = Vec::new();
        let applied = self.applied_seq();
        loop {
            let page = vault.scan_events(after_seq, REBUILD_PAGE)?;
            let Some(last) = page.last() else { break };
            after_seq = last.seq;
            events_read += page.len() as u64;
            let mut learned = Vec::with_capacity(page.len());
            for event in &page {
                if self.is_doomed(event.seq) {
                    continue;
                }
                let consented = match consent_of.get(&event.subject) {
                    Some(&consented) => consented,
                    None => {
                        let consented = self.consent_holds(&vault.consent_history(event.subject)?);
                        consent_of.insert(event.subject, consented);
                        consented
                    }
                };
                if consented {
                    learned.push(event);
                }
            }
            if self.cluster().is_some_and(|cluster| cluster.serving) {
                learned_seqs.extend(learned.iter().map(|event| event.seq));
            }
            interactions.extend(interactions_of(&mut set, learned)?);
            progress(RebuildProgress {
                events_read,
                events_total: events_total.max(events_read),
            });
        }
        // Subjects who consented but have no events yet still count as consented.
        let consented: HashSet<SubjectId> = consent_of
            .iter()
            .filter(|(_, consented)| **consented)
            .map(|(subject, _)| *subject)
            .chain(self.consented_without_events(&consent_of)?)
            .collect();
        set.learn_all(&interactions)?;
        let report = RebuildReport {
            events_read,
            events_learned: interactions.len() as u64,
            subjects: consent_of.len() as u64,
            consented_subjects: consented.len() as u64,
            items: set.catalogue().len() as u64,
            millis: started.elapsed().as_millis() as u64,
        };
        set.warm(0..usize::MAX);
        {
            let mut models = write(&self.inner.models);
            models.set = set;
            models.consented = consented;
            write(&self.inner.items).models_replaced();
        }
        self.learned_from_store(&learned_seqs, applied)?;
        vault.record_access(vec![
            LedgerDraft::new(now_millis(), "system", "models.rebuilt")
                .purpose(self.inner.model_purpose.as_deref().unwrap_or("none"))
                .categories(self.inner.model_categories.iter().map(String::as_str))
                .detail(format!(
                    "events_read={} events_learned={} subjects={}",
                    report.events_read, report.events_learned, report.subjects
                )),
        ])?;
        self.inner.ready.store(true, Ordering::SeqCst);
        tracing::info!(
            events = report.events_read,
            learned = report.events_learned,
            millis = report.millis,
            "models rebuilt"
        );
        Ok(report)
    }

    /// Subjects with a granted consent but no stored event (e.g. consent given at sign-up).
    fn consented_without_events(&self, seen: &HashMap<SubjectId, bool>) -> Result<Vec<SubjectId>> {
        let Some(purpose) = &self.inner.model_purpose else {
            return Ok(Vec::new());
        };
        let vault = &self.inner.vault;
        let mut found = Vec::new();
        for subject in vault.subjects_with_consent(purpose)? {
            if !seen.contains_key(&subject) && self.consent_holds(&vault.consent_history(subject)?)
            {
                found.push(subject);
            }
        }
        Ok(found)
    }

    /// Starts the background work: flushing read entries to the ledger, applying pending
    /// model updates, and the retention sweep. Threads stop at `shutdown`.
    pub fn start_background(&self) {
        let weak = Arc::downgrade(&self.inner);
        let options = &self.inner.options;
        spawn_loop(
            "discreet-access-log",
            weak.clone(),
            options.access_flush_interval,
            false,
            |engine| engine.flush_access_log(),
        );
        // Polls often, refreshes at the interval — or at once when a removal stopped EASE
        // from scoring (a forget, a withdrawal, a sweep), so it answers again soon.
        let refresh_interval = options.model_refresh_interval;
        let last_refresh = std::sync::Mutex::new(Instant::now());
        spawn_loop(
            "discreet-model-refresh",
            weak.clone(),
            Duration::from_millis(20).min(refresh_interval),
            false,
            move |engine| {
                let mut last = crate::engine::lock(&last_refresh);
                if engine.inner.refresh_wanted.swap(false, Ordering::SeqCst)
                    || last.elapsed() >= refresh_interval
                {
                    *last = Instant::now();
                    drop(last);
                    engine.refresh_models();
                }
            },
        );
        if self.cluster().is_some_and(|cluster| cluster.serving) {
            crate::cluster::start_cluster_loop(weak.clone());
        }
        // The first sweep runs at once: data that expired while discreet was stopped must
        // not be served for another interval.
        spawn_loop(
            "discreet-retention",
            weak,
            options.retention_interval,
            true,
            |engine| {
                let now = now_millis();
                if let Err(error) = engine.sweep_retention(now) {
                    tracing::error!(%error, "retention sweep failed");
                }
                engine.inner.last_sweep_at.store(now, Ordering::Relaxed);
            },
        );
    }

    /// Flushes buffered ledger entries and signs a ledger checkpoint; background threads stop.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.leave_cluster();
        self.flush_access_log();
        if let Err(error) = self.inner.vault.checkpoint_ledger() {
            tracing::error!(%error, "ledger checkpoint at shutdown failed");
        }
    }

    /// Applies pending EASE changes (learned events, and removals, which stop EASE from
    /// scoring until then), then derives the pruned rows of the new `P` — the slow parts
    /// beside the requests, so that no request waits for them: the models' write lock is
    /// held only to take the changes and to swap the new `P` in.
    pub fn refresh_models(&self) {
        // One refresh at a time: a second would be refused as overtaken anyway.
        let _refreshing = lock(&self.inner.refreshing);
        let plan = write(&self.inner.models).set.begin_refresh();
        if let Some(plan) = plan {
            let outcome = plan.compute();
            if let Err(error) = write(&self.inner.models).set.finish_refresh(outcome) {
                tracing::error!(%error, "model refresh failed; the next one factorises");
                self.inner.refresh_wanted.store(true, Ordering::SeqCst);
            }
        }
        // In slices, so that a writer (an ingest, a forget) never waits long for the lock.
        let mut start = 0;
        loop {
            let rows = read(&self.inner.models).set.warm(start..start + WARM_SLICE);
            start += WARM_SLICE;
            if start >= rows {
                break;
            }
        }
    }
}

/// Runs `work` every `every` on its own thread until the engine stops or is dropped.
fn spawn_loop(
    name: &str,
    inner: Weak<Inner>,
    every: Duration,
    first_run_now: bool,
    work: impl Fn(&Engine) + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if first_run_now && let Some(inner) = inner.upgrade() {
                work(&Engine { inner });
            }
            let mut last = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(50).min(every));
                let Some(inner) = inner.upgrade() else { return };
                if inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                if last.elapsed() >= every {
                    last = Instant::now();
                    work(&Engine { inner });
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, name, "could not start a background thread");
    }
}
