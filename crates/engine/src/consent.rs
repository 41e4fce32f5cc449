//! Consent: recording decisions (proof of consent on the ledger), making the models follow
//! the decision for their purpose — a grant teaches the stored events, a withdrawal makes
//! the models forget the subject exactly — and honouring `Sec-GPC: 1`, authorized here like
//! every other use.

use discreet_policy::Action;
use discreet_vault::{Access, ConsentRow, NewConsent, SubjectId, now_millis, rfc3339};

use crate::access::{Caller, check_bound};
use crate::answers::{ConsentDecision, ConsentState, ConsentsView};
use crate::engine::{Engine, read, write};
use crate::error::{Error, Result};
use crate::input::{MAX_SOURCE_CHARS, check_subject, is_short_text};
use crate::interactions::{interactions_of, model_name};

/// The ledger's name for consent bookkeeping reads.
const CONSENT_PURPOSE: &str = "consent_management";

pub(crate) use discreet_vault::ledger::CONSENT_CATEGORY;

/// Who reads a subject's events when a consent decision teaches or unteaches the models.
pub const LEARNER_ACTOR: &str = "learner";
/// The `source` of withdrawals made for `Sec-GPC: 1`.
const GPC_SOURCE: &str = "gpc-header";
/// The actions whose requests name subjects, and so may carry a `Sec-GPC: 1` signal for them.
pub const GPC_CARRIERS: [Action; 4] = [
    Action::Ingest,
    Action::AttributesWrite,
    Action::ConsentsRead,
    Action::Recommendations,
];

pub(crate) fn state_name(granted: bool) -> &'static str {
    if granted { "granted" } else { "withdrawn" }
}

/// The latest decision for `purpose` in a subject's consent history: the one recorded last
/// (the vault hands the history in store order), never the one with the latest clock time,
/// so a clock stepped back cannot put a withdrawal before the grant it answers.
pub(crate) fn latest_decision<'a>(
    consents: &'a [ConsentRow],
    purpose: &str,
) -> Option<&'a ConsentRow> {
    consents.iter().rev().find(|row| row.purpose == purpose)
}

impl Engine {
    /// Records a consent decision; for the models' purpose, a grant teaches the models the
    /// subject's stored events and a withdrawal unlearns them.
    pub fn set_consent(
        &self,
        caller: &Caller,
        subject: &str,
        purpose: &str,
        granted: bool,
        source: &str,
    ) -> Result<ConsentState> {
        let permit = self.authorize_for(caller, Action::ConsentsWrite, subject)?;
        check_subject("subject", subject)?;
        self.check_decision(purpose, source)?;
        permit.write(CONSENT_CATEGORY, None)?;
        self.check_ready()?;
        if !granted && let Err(error) = self.catch_up() {
            tracing::warn!(%error, "catching up before a withdrawal failed");
        }
        let _gate = self.exclusive();
        // A customer's own caller never brings a subject into being: one forgotten while
        // its session was open stays forgotten.
        if caller.subject.is_some() {
            self.inner.vault.active_subject_id(subject)?;
        }
        let row = self.inner.vault.record_consent(
            subject,
            &caller.key_id,
            &self.new_consent(purpose, granted, source),
        )?;
        self.follow_consent(&row)?;
        drop(_gate);
        // A withdrawal is answered once every node's models follow it.
        if !row.granted {
            self.await_nodes()?;
        }
        Ok(ConsentState {
            purpose: row.purpose,
            state: state_name(row.granted),
            at: Some(rfc3339(row.at)),
        })
    }

    /// Checks a decision's purpose (declared, resting on consent) and source: the one check
    /// of `set_consent` and of imported decisions alike.
    pub(crate) fn check_decision(&self, purpose: &str, source: &str) -> Result<()> {
        let purpose_rule = self.purpose(purpose)?;
        if !purpose_rule.requires_consent() {
            return Err(Error::bad_input(
                "purpose",
                format!(
                    "`{purpose}` rests on {}, not on consent; there is nothing to grant or withdraw",
                    purpose_rule.legal_basis.as_str()
                ),
            ));
        }
        if !is_short_text(source, MAX_SOURCE_CHARS) {
            return Err(Error::bad_input(
                "source",
                format!(
                    "must be 1 to {MAX_SOURCE_CHARS} characters of text naming where the decision was collected"
                ),
            ));
        }
        Ok(())
    }

    fn new_consent(&self, purpose: &str, granted: bool, source: &str) -> NewConsent {
        NewConsent {
            purpose: purpose.to_owned(),
            granted,
            at: now_millis(),
            source: source.to_owned(),
            policy_version: self.inner.policy.version().to_owned(),
        }
    }

    /// Makes the models follow a recorded decision, if it is for their purpose (the caller
    /// holds the gate alone). The subject's events are read by the models (`LEARNER_ACTOR`
    /// on the ledger), not by whoever recorded the decision: that caller never sees them, so
    /// an incident about its key does not count them.
    pub(crate) fn follow_consent(&self, row: &ConsentRow) -> Result<()> {
        let Some(model_purpose) = self.inner.model_purpose.as_deref() else {
            return Ok(());
        };
        if row.purpose != model_purpose {
            return Ok(());
        }
        let subject = row.subject;
        let was = read(&self.inner.models).consented.contains(&subject);
        if was == row.granted {
            return Ok(());
        }
        // With several nodes: the changes this node has applied when it reads the store.
        let applied = self.applied_seq();
        let events = self.learnable_events(subject, model_purpose)?;
        if row.granted {
            let mut guard = write(&self.inner.models);
            let models = &mut *guard;
            let interactions = interactions_of(&mut models.set, &events)?;
            models.consented.insert(subject);
            models.set.learn_batch(&interactions)?;
            drop(guard);
            // Read straight from the store: their changes, when they arrive, are skipped.
            let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
            self.learned_from_store(&seqs, applied)?;
        } else if let Err(error) = self.drop_from_models(subject, &events) {
            // The store may hold events of the subject whose changes this node has not
            // applied yet: then only a rebuild drops the subject exactly.
            self.out_of_step(error)?;
        }
        Ok(())
    }

    /// A subject's stored events as the models may learn them, read under `LEARNER_ACTOR`
    /// for `purpose`: without those retention announced it will erase (another node
    /// sweeps), which no path learns again.
    pub(crate) fn learnable_events(
        &self,
        subject: SubjectId,
        purpose: &str,
    ) -> Result<Vec<discreet_vault::Event>> {
        let events = self.inner.vault.events_of(
            subject,
            Access {
                actor: LEARNER_ACTOR,
                purpose,
            },
        )?;
        Ok(events
            .into_iter()
            .filter(|event| !self.is_doomed(event.seq))
            .collect())
    }

    /// Makes the models forget `subject`, whose learned events are `events`, and stop
    /// learning from it (the caller holds the gate alone).
    pub(crate) fn drop_from_models(
        &self,
        subject: SubjectId,
        events: &[discreet_vault::Event],
    ) -> Result<()> {
        let mut guard = write(&self.inner.models);
        let models = &mut *guard;
        let interactions = interactions_of(&mut models.set, events)?;
        models.consented.remove(&subject);
        let forgotten = models
            .set
            .forget_subject(&model_name(subject), &interactions);
        drop(guard);
        self.want_refresh();
        forgotten.map(|_| ()).map_err(Into::into)
    }

    /// Honours `Sec-GPC: 1` on a request of kind `request` that names `subjects`: withdraws,
    /// for each known subject, every purpose the policy marks as sale or sharing that it has
    /// not already withdrawn — on the ledger under the caller's key, with source
    /// `gpc-header`. The caller's role must allow `request`, which must be one of
    /// `GPC_CARRIERS`. Returns how many withdrawals were recorded.
    pub fn honour_gpc(&self, caller: &Caller, request: Action, subjects: &[String]) -> Result<u64> {
        if !GPC_CARRIERS.contains(&request) {
            return Err(Error::bad_input(
                "Sec-GPC",
                format!(
                    "applies to requests that name subjects, not to `{}`",
                    request.as_str()
                ),
            ));
        }
        self.authorize(caller, request)?;
        for subject in subjects {
            check_subject("subject", subject)?;
            check_bound(caller, subject)?;
        }
        self.check_ready()?;
        let vault = &self.inner.vault;
        let mut withdrawals = 0;
        for subject in subjects {
            let Some(id) = vault.subject_id(subject)? else {
                continue;
            };
            let consents = vault.consent_history(id)?;
            for purpose in self.inner.policy.purposes_sale_or_sharing() {
                if !purpose.requires_consent()
                    || latest_decision(&consents, &purpose.name).is_some_and(|row| !row.granted)
                {
                    continue;
                }
                let _gate = self.exclusive();
                let row = vault.record_consent_of(
                    id,
                    &caller.key_id,
                    &self.new_consent(&purpose.name, false, GPC_SOURCE),
                )?;
                self.follow_consent(&row)?;
                withdrawals += 1;
            }
        }
        if withdrawals > 0 {
            self.await_nodes()?;
        }
        Ok(withdrawals)
    }

    /// Every consent purpose's state and the history of a subject's decisions.
    pub fn consents(&self, caller: &Caller, subject: &str) -> Result<ConsentsView> {
        let permit = self.authorize_for(caller, Action::ConsentsRead, subject)?;
        check_subject("subject", subject)?;
        permit.read(CONSENT_CATEGORY)?;
        let vault = &self.inner.vault;
        let access = Access {
            actor: &caller.key_id,
            purpose: CONSENT_PURPOSE,
        };
        // An unknown (or forgotten) subject has decided nothing; one being forgotten is a 409.
        // A customer's own caller is told its subject is gone instead.
        let rows = match vault.active_subject_id(subject) {
            Ok(id) => match vault.consents_of(id, access) {
                Err(discreet_vault::Error::KeyDestroyed) if caller.subject.is_none() => Vec::new(),
                rows => rows?,
            },
            Err(discreet_vault::Error::NotFound { .. }) if caller.subject.is_none() => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        Ok(self.consents_view(&rows))
    }

    /// Every consent purpose's state and the history, from stored rows.
    pub(crate) fn consents_view(&self, rows: &[ConsentRow]) -> ConsentsView {
        let consents = self
            .inner
            .policy
            .purposes()
            .iter()
            .filter(|purpose| purpose.requires_consent())
            .map(|purpose| match latest_decision(rows, &purpose.name) {
                Some(row) => ConsentState {
                    purpose: purpose.name.clone(),
                    state: state_name(row.granted),
                    at: Some(rfc3339(row.at)),
                },
                None => ConsentState {
                    purpose: purpose.name.clone(),
                    state: "never",
                    at: None,
                },
            })
            .collect();
        let history = rows
            .iter()
            .map(|row| ConsentDecision {
                purpose: row.purpose.clone(),
                state: state_name(row.granted),
                at: rfc3339(row.at),
                source: row.source.clone(),
                policy_version: row.policy_version.clone(),
            })
            .collect();
        ConsentsView { consents, history }
    }

    /// Whether the latest decision for the models' purpose is a grant.
    pub(crate) fn consent_holds(&self, consents: &[ConsentRow]) -> bool {
        let Some(purpose) = &self.inner.model_purpose else {
            return false;
        };
        latest_decision(consents, purpose).is_some_and(|row| row.granted)
    }

    /// Whether the models may learn from `subject` (the caller holds the gate).
    pub(crate) fn is_consented(&self, subject: SubjectId) -> bool {
        read(&self.inner.models).consented.contains(&subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(purpose: &str, granted: bool, at: i64) -> ConsentRow {
        ConsentRow {
            subject: 1,
            purpose: purpose.into(),
            granted,
            at,
            source: "banner".into(),
            policy_version: "1".into(),
            tag: Vec::new(),
        }
    }

    /// Regression guard: a withdrawal recorded after a grant wins even when the clock had
    /// stepped back between them (its time is earlier than the grant's).
    #[test]
    fn the_decision_recorded_last_wins_whatever_the_clock_said() {
        let history = [
            decision("personalization", true, 2_000),
            decision("marketing_email", true, 2_500),
            decision("personalization", false, 1_000),
        ];
        let latest = latest_decision(&history, "personalization").expect("decided");
        assert!(!latest.granted);
        assert!(
            latest_decision(&history, "marketing_email")
                .expect("decided")
                .granted
        );
        assert!(latest_decision(&history, "analytics").is_none());
    }
}
