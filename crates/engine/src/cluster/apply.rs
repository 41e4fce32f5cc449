//! Following the other nodes: the log read in order after the last applied change, and
//! what each kind of change does to this node's models.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use discreet_vault::SubjectId;
use discreet_vault::storage::{ChangeKind, ChangeRow};

use super::CHANGES_PAGE;
use crate::engine::{Engine, lock, read, write};
use crate::error::{Error, Result};
use crate::interactions::{EventPayload, interactions_of};
use crate::items::ItemCatalogue;
use crate::learner::QueuedEvent;

impl Engine {
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
        let purpose = self.inner.model_purpose.clone().unwrap_or_default();
        let events = self.learnable_events(subject, &purpose)?;
        self.drop_from_models(subject, &events)
    }
}
