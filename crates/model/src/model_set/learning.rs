//! Learning and unlearning through the facade: every interaction is checked first, then
//! routed to every model so they stay consistent; a failed unlearn puts back what it had
//! already removed. `refresh` applies (sparse) EASE's pending changes, and when the
//! catalogue outgrows dense EASE hands its histories to sparse EASE.

use crate::ease::{EaseModel, RefreshOutcome, RefreshPlan, RefreshReport};
use crate::error::{ModelError, Result};
use crate::interaction::Interaction;
use crate::item_item::ItemItemModel;
use crate::sparse_ease::{SparseEaseModel, SparseRefreshOutcome, SparseRefreshPlan};

use super::ModelSet;

/// What a refresh of the set must compute: dense EASE's or sparse EASE's plan.
pub enum ModelRefreshPlan {
    Ease(RefreshPlan),
    SparseEase(SparseRefreshPlan),
}

/// What `ModelRefreshPlan::compute` made, for `ModelSet::finish_refresh`.
pub enum ModelRefreshOutcome {
    Ease(RefreshOutcome),
    SparseEase(SparseRefreshOutcome),
}

impl ModelRefreshPlan {
    /// Computes the new solution (the slow part: run it without holding the set).
    pub fn compute(self) -> ModelRefreshOutcome {
        match self {
            ModelRefreshPlan::Ease(plan) => ModelRefreshOutcome::Ease(plan.compute()),
            ModelRefreshPlan::SparseEase(plan) => ModelRefreshOutcome::SparseEase(plan.compute()),
        }
    }
}

/// A sparse refresh as the set reports it: a full solve counts as a refactorisation.
fn sparse_report(report: crate::sparse_ease::SparseRefreshReport) -> RefreshReport {
    RefreshReport {
        refactorised: report.full,
        ..RefreshReport::default()
    }
}

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
            let sparse_ease_config = self.sparse_ease_config();
            let (item_item, popularity, ease) =
                (&mut self.item_item, &mut self.popularity, &self.config.ease);
            let item_item_config = self.config.item_item.clone();
            let (ease, sparse_ease) = std::thread::scope(|scope| -> Result<_> {
                scope.spawn(|| {
                    *item_item = ItemItemModel::build(item_item_config, interactions);
                    for interaction in interactions {
                        popularity.learn(interaction);
                    }
                });
                if keep_ease {
                    Ok((Some(EaseModel::build(ease.clone(), interactions)?), None))
                } else {
                    let sparse_ease = SparseEaseModel::build(sparse_ease_config, interactions)?;
                    Ok((None, Some(sparse_ease)))
                }
            })?;
            self.ease = ease;
            self.sparse_ease = sparse_ease;
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
        if let Some(sparse_ease) = self.sparse_ease.as_mut() {
            sparse_ease.learn_batch(interactions);
        }
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
        if let Some(sparse_ease) = self.sparse_ease.as_mut() {
            sparse_ease.learn(interaction);
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
        let ease_outcome = match (self.ease.as_mut(), self.sparse_ease.as_mut()) {
            (Some(ease), _) => ease.unlearn(interaction),
            (None, Some(sparse_ease)) => sparse_ease.unlearn(interaction),
            (None, None) => Ok(()),
        };
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

    /// Applies learned changes to EASE (rank-1 updates or a refactorisation), or to sparse
    /// EASE (the columns whose inputs changed are solved again).
    pub fn refresh(&mut self) -> Result<RefreshReport> {
        self.hand_ease_over_past_its_limit();
        if let Some(sparse_ease) = self.sparse_ease.as_mut() {
            return sparse_ease.refresh().map(sparse_report);
        }
        match self.ease.as_mut() {
            Some(ease) => ease.refresh(),
            None => Ok(RefreshReport::default()),
        }
    }

    /// The first step of a refresh that runs beside readers: takes (sparse) EASE's noted
    /// changes (quick). Run `ModelRefreshPlan::compute` without holding the set, then
    /// `finish_refresh`.
    pub fn begin_refresh(&mut self) -> Option<ModelRefreshPlan> {
        self.hand_ease_over_past_its_limit();
        if let Some(sparse_ease) = self.sparse_ease.as_mut() {
            return sparse_ease
                .begin_refresh()
                .map(ModelRefreshPlan::SparseEase);
        }
        self.ease
            .as_mut()?
            .begin_refresh()
            .map(ModelRefreshPlan::Ease)
    }

    /// Installs a refresh computed beside readers (quick).
    pub fn finish_refresh(&mut self, outcome: ModelRefreshOutcome) -> Result<RefreshReport> {
        match (outcome, self.ease.as_mut(), self.sparse_ease.as_mut()) {
            (ModelRefreshOutcome::Ease(outcome), Some(ease), _) => ease.finish_refresh(outcome),
            (ModelRefreshOutcome::SparseEase(outcome), _, Some(sparse_ease)) => {
                sparse_ease.finish_refresh(outcome).map(sparse_report)
            }
            // Planned on dense EASE, which sparse EASE has since replaced: nothing to install
            // (sparse EASE was built from the histories and plans its own refresh).
            _ => Err(ModelError::Internal {
                detail: "a refresh was planned on a model the set no longer keeps".to_string(),
            }),
        }
    }

    /// Past `ease_max_items`, dense EASE (n² memory) gives its histories to sparse EASE,
    /// which solves from them at the refresh under way.
    fn hand_ease_over_past_its_limit(&mut self) {
        if self.catalogue.len() <= self.config.ease_max_items || self.sparse_ease.is_some() {
            return;
        }
        let config = self.sparse_ease_config();
        let (histories, item_bound) = match self.ease.take() {
            Some(ease) => (ease.histories().clone(), ease.item_bound()),
            None => (crate::history::SubjectHistories::new(config.held_kinds), 0),
        };
        self.sparse_ease = Some(SparseEaseModel::unsolved_from_histories(
            config, histories, item_bound,
        ));
    }
}
