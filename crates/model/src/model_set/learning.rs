//! Learning and unlearning through the facade: every interaction is checked first, then
//! routed to every model so they stay consistent; a failed unlearn puts back what it had
//! already removed. `refresh` applies EASE's pending changes (and drops EASE when the
//! catalogue outgrows it).

use crate::ease::{EaseModel, RefreshOutcome, RefreshPlan, RefreshReport};
use crate::error::{ModelError, Result};
use crate::interaction::Interaction;
use crate::item_item::ItemItemModel;

use super::ModelSet;

/// Interactions must lie within this many seconds of 1970 (about ±2,000 years).
const MAX_ABS_UNIX_SECONDS: u64 = 2_000 * 366 * 86_400;

impl ModelSet {
    /// Learns many interactions at once (ids from this set's interners) and refreshes.
    /// On an empty set this builds each model in one pass.
    pub fn learn_all(&mut self, interactions: &[Interaction]) -> Result<()> {
        self.trending_changed();
        for interaction in interactions {
            self.check_interaction(interaction)?;
        }
        if self.item_item.histories().n_events() == 0 && self.popularity.item_bound() == 0 {
            // The counting models build on one thread while EASE factorises on the others.
            let keep_ease = self.catalogue.len() <= self.config.ease_max_items;
            let (item_item, popularity, ease) =
                (&mut self.item_item, &mut self.popularity, &self.config.ease);
            let item_item_config = self.config.item_item.clone();
            let ease = std::thread::scope(|scope| {
                scope.spawn(|| {
                    *item_item = ItemItemModel::build(item_item_config, interactions);
                    for interaction in interactions {
                        popularity.learn(interaction);
                    }
                });
                keep_ease
                    .then(|| EaseModel::build(ease.clone(), interactions))
                    .transpose()
            })?;
            self.ease = ease;
            return Ok(());
        }
        self.learn_checked_batch(interactions);
        self.refresh().map(|_| ())
    }

    /// Learns a batch of interactions; EASE applies them at the next refresh. All are
    /// checked before any is learned, so a refused batch changes nothing. Each subject's
    /// bounded contribution is compared once per batch, not once per event.
    pub fn learn_batch(&mut self, interactions: &[Interaction]) -> Result<()> {
        self.trending_changed();
        for interaction in interactions {
            self.check_interaction(interaction)?;
        }
        self.learn_checked_batch(interactions);
        Ok(())
    }

    fn learn_checked_batch(&mut self, interactions: &[Interaction]) {
        self.item_item.learn_batch(interactions);
        for interaction in interactions {
            self.popularity.learn(interaction);
            if let Some(ease) = self.ease.as_mut() {
                ease.learn(interaction);
            }
        }
    }

    /// Refuses what the models must never take: a subject whose name was released (forgotten),
    /// an item the catalogue does not know, a time outside ±2,000 years of 1970.
    fn check_interaction(&self, interaction: &Interaction) -> Result<()> {
        if self.subjects.name(interaction.subject).is_none() {
            return Err(ModelError::BadInteraction {
                detail: format!(
                    "subject #{} is not a live subject (never named, or forgotten)",
                    interaction.subject.0
                ),
            });
        }
        if self.catalogue.code(interaction.item).is_none() {
            return Err(ModelError::BadInteraction {
                detail: format!("item #{} is not in the catalogue", interaction.item.0),
            });
        }
        if interaction.at.unsigned_abs() > MAX_ABS_UNIX_SECONDS {
            return Err(ModelError::BadInteraction {
                detail: format!(
                    "time {} is outside the supported range of ±{MAX_ABS_UNIX_SECONDS} s",
                    interaction.at
                ),
            });
        }
        Ok(())
    }

    /// Learns one interaction. EASE applies it at the next `refresh`; until then personal
    /// lists blend the other models only.
    pub fn learn(&mut self, interaction: &Interaction) -> Result<()> {
        self.trending_changed();
        self.check_interaction(interaction)?;
        self.item_item.learn(interaction);
        self.popularity.learn(interaction);
        if let Some(ease) = self.ease.as_mut() {
            ease.learn(interaction);
        }
        Ok(())
    }

    /// Unlearns one previously learned interaction from every model. Checked against the
    /// item-item history first, so an interaction never learned changes nothing.
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        self.trending_changed();
        self.check_interaction(interaction)?;
        let counted = self
            .item_item
            .histories()
            .held_kinds()
            .contains(interaction.kind);
        if counted
            && !self
                .item_item
                .histories()
                .held(interaction.subject)
                .iter()
                .any(|held| {
                    held.item == interaction.item
                        && held.event_times.binary_search(&interaction.at).is_ok()
                })
        {
            return Err(ModelError::NotLearned {
                subject: interaction.subject.0,
                item: interaction.item.0,
                at: interaction.at,
            });
        }
        self.popularity.unlearn(interaction)?;
        if let Err(error) = self.item_item.unlearn(interaction) {
            self.popularity.learn(interaction);
            return Err(error);
        }
        let ease_outcome = self
            .ease
            .as_mut()
            .map_or(Ok(()), |ease| ease.unlearn(interaction));
        if let Err(error) = ease_outcome {
            // Put back what was already removed, so a bad unlearn changes nothing.
            self.popularity.learn(interaction);
            self.item_item.learn(interaction);
            return Err(error);
        }
        Ok(())
    }

    /// Derives what scoring would otherwise derive lazily (EASE's pruned rows of the items
    /// in `items`), so that no request pays for it; returns the number of items to warm.
    /// Takes `&self`: it runs beside recommendations.
    pub fn warm(&self, items: std::ops::Range<usize>) -> usize {
        match self.ease.as_ref().filter(|ease| ease.scorable()) {
            Some(ease) => ease.warm_weight_rows(items),
            None => 0,
        }
    }

    /// Applies learned changes to EASE (rank-1 updates or a refactorisation).
    pub fn refresh(&mut self) -> Result<RefreshReport> {
        self.drop_ease_past_its_limit();
        match self.ease.as_mut() {
            Some(ease) => ease.refresh(),
            None => Ok(RefreshReport::default()),
        }
    }

    /// The first step of a refresh that runs beside readers: takes EASE's noted changes
    /// (quick). Run `RefreshPlan::compute` without holding the set, then `finish_refresh`.
    pub fn begin_refresh(&mut self) -> Option<RefreshPlan> {
        self.drop_ease_past_its_limit();
        self.ease.as_mut()?.begin_refresh()
    }

    /// Installs a refresh computed beside readers (quick).
    pub fn finish_refresh(&mut self, outcome: RefreshOutcome) -> Result<RefreshReport> {
        match self.ease.as_mut() {
            Some(ease) => ease.finish_refresh(outcome),
            None => Ok(RefreshReport::default()),
        }
    }

    fn drop_ease_past_its_limit(&mut self) {
        if self.ease.is_some() && self.catalogue.len() > self.config.ease_max_items {
            self.ease = None;
        }
    }
}
