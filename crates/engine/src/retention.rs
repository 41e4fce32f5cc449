//! Retention (invariant 6): what is past its category's retention is unlearned by the models
//! and erased by the vault, with one ledger entry per subject.

use std::sync::atomic::Ordering;

use crate::answers::SweepReport;
use crate::engine::{Engine, write};
use crate::error::Result;
use crate::interactions::interactions_of;

impl Engine {
    /// Erases (and unlearns) everything past its category's retention at `now`.
    pub fn sweep_retention(&self, now: i64) -> Result<SweepReport> {
        if !self.is_ready() {
            return Ok(SweepReport::default());
        }
        let policy = &self.inner.policy;
        let _gate = self.exclusive();
        let expired = self.inner.vault.expired(now, &|category| {
            policy
                .retention_of(category)
                .map(|retention| retention.as_millis().min(i64::MAX as u128) as i64)
        })?;
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
            for interaction in &interactions {
                models.set.unlearn(interaction)?;
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
