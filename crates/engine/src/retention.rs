//! Retention (invariant 6): what is past its category's retention is unlearned by the models
//! and erased by the vault, with one ledger entry per subject.

use std::sync::atomic::Ordering;

use discreet_vault::Expired;
use discreet_vault::storage::ChangeKind;

use crate::answers::SweepReport;
use crate::engine::{Engine, write};
use crate::error::Result;
use crate::interactions::interactions_of;

/// The once-only duty of the retention sweep.
const RETENTION_DUTY: &str = "retention";

impl Engine {
    /// Erases (and unlearns) everything past its category's retention at `now`.
    pub fn sweep_retention(&self, now: i64) -> Result<SweepReport> {
        if !self.is_ready() {
            return Ok(SweepReport::default());
        }
        if let Some(log) = self.inner.vault.cluster()
            && self.cluster().is_some()
        {
            // One node sweeps at a time; the others unlearn what it announces.
            if !log.try_duty(RETENTION_DUTY)? {
                return Ok(SweepReport::default());
            }
            let swept = self.sweep_announced(now, log);
            log.release_duty(RETENTION_DUTY)?;
            return swept;
        }
        self.sweep(now, None)
    }

    /// With several nodes: announces the events it will erase, waits until every live node
    /// unlearned them (while they can still be read), then sweeps here.
    fn sweep_announced(
        &self,
        now: i64,
        log: &dyn discreet_vault::storage::ClusterLog,
    ) -> Result<SweepReport> {
        let expired = self.expired_at(now)?;
        if expired.events.is_empty() && expired.attributes.is_empty() {
            return Ok(SweepReport::default());
        }
        let seqs: Vec<i64> = expired.events.iter().map(|event| event.seq).collect();
        if !seqs.is_empty() {
            log.announce(ChangeKind::Erasing, &[], &seqs)?;
            self.await_nodes()?;
        }
        // Still this node's duty (its connection may have been made again meanwhile, and
        // another node taken it): taking it again says so; it is given back twice.
        if !log.try_duty(RETENTION_DUTY)? {
            return Ok(SweepReport::default());
        }
        let swept = self.sweep(now, Some(expired));
        log.release_duty(RETENTION_DUTY)?;
        swept
    }

    fn expired_at(&self, now: i64) -> Result<Expired> {
        let policy = &self.inner.policy;
        Ok(self.inner.vault.expired(now, &|category| {
            policy
                .retention_of(category)
                .map(|retention| retention.as_millis().min(i64::MAX as u128) as i64)
        })?)
    }

    /// Unlearns and erases what is expired at `now` (or `found`, found before).
    fn sweep(&self, now: i64, found: Option<Expired>) -> Result<SweepReport> {
        let _gate = self.exclusive();
        let expired = match found {
            Some(expired) => expired,
            None => self.expired_at(now)?,
        };
        if expired.events.is_empty() && expired.attributes.is_empty() {
            return Ok(SweepReport::default());
        }
        let model_interactions = {
            let mut models = write(&self.inner.models);
            let models = &mut *models;
            let learned = expired
                .events
                .iter()
                .filter(|event| models.consented.contains(&event.subject));
            let interactions = interactions_of(&mut models.set, learned)?;
            let among_nodes = self.cluster().is_some();
            for interaction in &interactions {
                match models.set.unlearn(interaction) {
                    Ok(()) => {}
                    // Announced before and unlearned when this node applied the announcement
                    // (an earlier sweep that stopped): nothing left to unlearn.
                    Err(error) if among_nodes => {
                        tracing::debug!(%error, "an expired event was not learned here")
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            interactions.len() as u64
        };
        self.want_refresh();
        let erased = self.inner.vault.erase_expired(&expired, "retention")?;
        self.inner
            .retention_erased_rows
            .fetch_add(erased, Ordering::Relaxed);
        Ok(SweepReport {
            events: expired.events.len() as u64,
            attributes: expired.attributes.len() as u64,
            model_interactions,
        })
    }
}
