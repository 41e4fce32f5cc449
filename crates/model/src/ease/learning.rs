//! Learning and unlearning in EASE: each change only notes what the subject held at the
//! last refresh; `refresh` turns the noted changes into rank-1 downdates and updates of `P`
//! (or a new factorisation). Never changes `P` outside `refresh`.

use crate::error::Result;
use crate::history::HeldItem;
use crate::ids::SubjectId;
use crate::interaction::Interaction;

use super::{EaseModel, RefreshReport};

impl EaseModel {
    fn note_change(&mut self, subject: SubjectId) {
        if !self.pending_changes.contains_key(&subject) {
            let held_at_refresh = self.histories.held_item_ids(subject);
            self.pending_changes.insert(subject, held_at_refresh);
        }
    }

    /// Learns one interaction; takes effect at the next `refresh`.
    pub fn learn(&mut self, interaction: &Interaction) {
        self.item_bound = self.item_bound.max(interaction.item.index() + 1);
        if !self.histories.held_kinds().contains(interaction.kind) {
            return;
        }
        if !self.histories.holds(interaction.subject, interaction.item) {
            self.note_change(interaction.subject);
        }
        self.histories.learn(interaction);
    }

    /// Unlearns one previously learned interaction; takes effect at the next `refresh`.
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        let held = self.histories.held(interaction.subject);
        let becomes_unheld = self.histories.held_kinds().contains(interaction.kind)
            && held
                .binary_search_by_key(&interaction.item, |held_item| held_item.item)
                .is_ok_and(|position| held[position].event_times == [interaction.at]);
        if becomes_unheld {
            self.note_change(interaction.subject);
            self.removal_pending = true;
        }
        self.histories.unlearn(interaction)?;
        Ok(())
    }

    /// Removes everything learned from `subject` (takes effect at the next `refresh`).
    pub fn forget_subject(&mut self, subject: SubjectId) -> Vec<HeldItem> {
        self.note_change(subject);
        self.removal_pending = true;
        self.histories.take_subject(subject)
    }

    /// Applies pending changes to the Gram inverse: rank-1 downdates and updates, or a new
    /// factorisation when there are so many that it is cheaper, or when drift is too large.
    pub fn refresh(&mut self) -> Result<RefreshReport> {
        let outcome = self.try_refresh();
        if outcome.is_ok() {
            self.removal_pending = false;
        } else {
            // The inverse may be half-updated and the pending changes are consumed: the
            // histories still hold the truth, so the next refresh factorises from them, and
            // until then the model reports that it needs one instead of serving a stale P.
            self.factorised_once = false;
            self.pending_changes.clear();
        }
        outcome
    }

    fn try_refresh(&mut self) -> Result<RefreshReport> {
        let mut report = RefreshReport::default();
        if !self.factorised_once {
            self.refactorise()?;
            report.refactorised = true;
            return Ok(report);
        }
        let grew = self.grow_inverse();
        // A factorisation costs about n³/3 flops; one rank-1 update about 2n².
        let updates_worth_a_factorisation = (self.item_bound / 6).max(8);
        let changes = std::mem::take(&mut self.pending_changes);
        if 2 * changes.len() > updates_worth_a_factorisation {
            self.refactorise()?;
            report.refactorised = true;
            return Ok(report);
        }
        for (subject, held_at_refresh) in changes {
            let held_now = self.histories.held_item_ids(subject);
            if held_now == held_at_refresh {
                continue;
            }
            let downdated =
                held_at_refresh.is_empty() || self.rank_one_update(&held_at_refresh, -1.0).is_ok();
            let updated =
                downdated && (held_now.is_empty() || self.rank_one_update(&held_now, 1.0).is_ok());
            if !updated {
                // Rounding made an update ill-conditioned: the exact path is a new factorisation
                // from the histories, which already hold every change.
                self.refactorise()?;
                report.refactorised = true;
                return Ok(report);
            }
            report.rank_one_updates +=
                usize::from(!held_at_refresh.is_empty()) + usize::from(!held_now.is_empty());
        }
        self.updates_since_drift_check += report.rank_one_updates;
        if grew || report.rank_one_updates > 0 {
            self.after_inverse_changed();
        }
        if self.updates_since_drift_check >= self.config.drift_check_every_updates {
            self.updates_since_drift_check = 0;
            let drift = self.measure_drift(4);
            report.measured_drift = Some(drift);
            if drift > self.config.drift_bound {
                self.refactorise()?;
                report.refactorised = true;
            }
        }
        Ok(report)
    }
}
