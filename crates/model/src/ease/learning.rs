//! Learning and unlearning in EASE, and the refresh that turns them into a new `P`. Each
//! change only notes what the subject contributed at the last refresh plan. A refresh is
//! three steps so that the slow one needs no lock on the model: `begin_refresh` (takes the
//! noted changes and what `P` must become: quick, needs `&mut`), `RefreshPlan::compute`
//! (rank-1 updates on a copy of `P`, or a new factorisation: slow, owns its inputs) and
//! `finish_refresh` (swaps the new `P` in: quick). Never changes the installed `P` in place.

use std::sync::Arc;

use crate::error::{ModelError, Result};
use crate::history::HeldItem;
use crate::ids::SubjectId;
use crate::interaction::Interaction;

use super::{EaseModel, RefreshReport, Solution};

/// What a refresh must compute, taken from the model by `begin_refresh`.
pub struct RefreshPlan {
    work: PlannedWork,
    /// The solution the work starts from.
    base: Arc<Solution>,
    base_generation: u64,
    /// Removals the histories held when the plan was made (the new `P` reflects them).
    removals: u64,
    regularisation: f64,
    drift_bound: f64,
    spread: usize,
}

enum PlannedWork {
    /// A new factorisation of these rows.
    Factorise {
        rows: Vec<Vec<u32>>,
        item_bound: usize,
    },
    /// Rank-1 downdates by each change's old row and updates by its new one; then, when
    /// `drift_rows` are given (every row of `X`), a drift measurement.
    Update {
        changes: Vec<(Vec<u32>, Vec<u32>)>,
        drift_rows: Option<Vec<Vec<u32>>>,
    },
}

/// What `RefreshPlan::compute` made, for `finish_refresh`.
pub struct RefreshOutcome {
    solution: Result<Solution>,
    report: RefreshReport,
    base_generation: u64,
    removals: u64,
}

impl RefreshPlan {
    /// Computes the new `P` (the slow part: run it without holding the model).
    pub fn compute(self) -> RefreshOutcome {
        let mut report = RefreshReport::default();
        let solution = match self.work {
            PlannedWork::Factorise { rows, item_bound } => {
                report.refactorised = true;
                Solution::factorise(&rows, item_bound, self.regularisation)
            }
            PlannedWork::Update {
                changes,
                drift_rows,
            } => {
                let mut solution = self.base.copy_of_inverse();
                drop(self.base);
                solution.grow(
                    changes.iter().flat_map(|(_, held_now)| held_now),
                    self.regularisation,
                );
                let mut outcome = Ok(());
                for (held_before, held_now) in &changes {
                    if !held_before.is_empty() {
                        outcome =
                            outcome.and_then(|()| solution.rank_one_update(held_before, -1.0));
                    }
                    if !held_now.is_empty() {
                        outcome = outcome.and_then(|()| solution.rank_one_update(held_now, 1.0));
                    }
                    if outcome.is_err() {
                        break;
                    }
                    report.rank_one_updates +=
                        usize::from(!held_before.is_empty()) + usize::from(!held_now.is_empty());
                }
                solution.reset_weight_rows();
                match (outcome, drift_rows) {
                    (Ok(()), None) => Ok(solution),
                    (Ok(()), Some(rows)) => {
                        let drift =
                            solution.measure_drift(&rows, self.regularisation, 4, self.spread);
                        report.measured_drift = Some(drift);
                        if drift > self.drift_bound {
                            report.refactorised = true;
                            Solution::factorise(
                                &rows,
                                solution.slot_of_item.len(),
                                self.regularisation,
                            )
                        } else {
                            Ok(solution)
                        }
                    }
                    // Rounding made an update ill-conditioned: the exact path is a new
                    // factorisation, which the next plan asks for.
                    (Err(error), _) => Err(error),
                }
            }
        };
        RefreshOutcome {
            solution,
            report,
            base_generation: self.base_generation,
            removals: self.removals,
        }
    }
}

impl EaseModel {
    /// Notes that `subject`'s row may change, keeping what it contributed at the last plan.
    fn note_change(&mut self, subject: SubjectId) {
        if !self.pending_changes.contains_key(&subject) {
            let contributed_at_refresh = self.histories.contributed_item_ids(subject);
            self.pending_changes.insert(subject, contributed_at_refresh);
        }
    }

    /// Learns one interaction; takes effect at the next refresh.
    pub fn learn(&mut self, interaction: &Interaction) {
        self.item_bound = self.item_bound.max(interaction.item.index() + 1);
        if !self.histories.held_kinds().contains(interaction.kind) {
            return;
        }
        // Any counted event may change the row: a new item joins, or an old one's newer
        // event brings it back into the bounded window.
        self.note_change(interaction.subject);
        self.histories.learn(interaction);
    }

    /// Unlearns one previously learned interaction; takes effect at the next refresh, and
    /// until then the model does not score if the subject's row changed.
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        let subject = interaction.subject;
        let contributed_before = self.histories.contributed_item_ids(subject);
        self.histories.unlearn(interaction)?;
        if self.histories.contributed_item_ids(subject) != contributed_before {
            self.pending_changes
                .entry(subject)
                .or_insert(contributed_before);
            self.removals += 1;
        }
        Ok(())
    }

    /// Removes everything learned from `subject`: the model does not score until the next
    /// refresh has removed the subject's row from `P`.
    pub fn forget_subject(&mut self, subject: SubjectId) -> Vec<HeldItem> {
        if !self.histories.held(subject).is_empty() {
            self.note_change(subject);
            self.removals += 1;
        }
        self.histories.take_subject(subject)
    }

    /// Takes the noted changes and says what the new `P` needs (`None`: nothing to do).
    pub fn begin_refresh(&mut self) -> Option<RefreshPlan> {
        if !self.needs_refresh() {
            return None;
        }
        let changes: Vec<(Vec<u32>, Vec<u32>)> = std::mem::take(&mut self.pending_changes)
            .into_iter()
            .map(|(subject, held_at_refresh)| {
                let held_now = self.histories.contributed_item_ids(subject);
                (held_at_refresh, held_now)
            })
            .filter(|(held_at_refresh, held_now)| held_at_refresh != held_now)
            .collect();
        // A factorisation costs about n³/3 flops; one rank-1 update about 2n².
        let updates_worth_a_factorisation = (self.dimension() / 6).max(8);
        let work = if !self.factorised_once
            || self.needs_factorisation
            || self.plans_outstanding > 0
            || 2 * changes.len() > updates_worth_a_factorisation
        {
            PlannedWork::Factorise {
                rows: self.contributed_rows(),
                item_bound: self.item_bound,
            }
        } else {
            let planned_updates = 2 * changes.len();
            let drift_due = self.updates_since_drift_check + planned_updates
                >= self.config.drift_check_every_updates;
            PlannedWork::Update {
                changes,
                drift_rows: drift_due.then(|| self.contributed_rows()),
            }
        };
        self.needs_factorisation = false;
        self.plans_outstanding += 1;
        Some(RefreshPlan {
            work,
            base: Arc::clone(&self.solution),
            base_generation: self.solution_generation,
            removals: self.removals,
            regularisation: self.config.regularisation,
            drift_bound: self.config.drift_bound,
            spread: self.histories.n_events(),
        })
    }

    /// Installs what `compute` made. An outcome that failed, or that was planned on a
    /// solution since replaced, is refused: the changes it took are then covered by a
    /// factorisation at the next refresh, and the installed `P` stays as it was.
    pub fn finish_refresh(&mut self, outcome: RefreshOutcome) -> Result<RefreshReport> {
        self.plans_outstanding = self.plans_outstanding.saturating_sub(1);
        if outcome.base_generation != self.solution_generation {
            self.needs_factorisation = true;
            return Err(ModelError::Internal {
                detail: "an EASE refresh was overtaken by another; the next one factorises"
                    .to_string(),
            });
        }
        match outcome.solution {
            Ok(solution) => {
                let report = outcome.report;
                if report.refactorised || report.measured_drift.is_some() {
                    self.updates_since_drift_check = 0;
                } else {
                    self.updates_since_drift_check += report.rank_one_updates;
                }
                self.install(solution, outcome.removals);
                Ok(report)
            }
            Err(error) => {
                self.needs_factorisation = true;
                Err(error)
            }
        }
    }

    /// Applies noted changes now: `begin_refresh`, `compute` and `finish_refresh` in one
    /// call (for callers that own the model; shared models run `compute` without a lock).
    pub fn refresh(&mut self) -> Result<RefreshReport> {
        let Some(plan) = self.begin_refresh() else {
            return Ok(RefreshReport::default());
        };
        let needed_factorisation = matches!(plan.work, PlannedWork::Factorise { .. });
        let report = self.finish_refresh(plan.compute());
        match report {
            // An ill-conditioned update: factorise from the histories right away.
            Err(ModelError::Numerical { .. }) if !needed_factorisation => {
                self.refactorise()?;
                Ok(RefreshReport {
                    refactorised: true,
                    ..RefreshReport::default()
                })
            }
            other => other,
        }
    }

    /// Makes `solution` the served `P`, reflecting `removals` removals.
    pub(super) fn install(&mut self, solution: Solution, removals: u64) {
        self.solution = Arc::new(solution);
        self.solution_generation += 1;
        self.removals_in_solution = removals;
        self.factorised_once = true;
        self.needs_factorisation = false;
    }
}
