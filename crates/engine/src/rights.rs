//! The subject's rights: the export of everything held and derived (Art. 15 and 20), and
//! the forget (Art. 17) that reaches the stores, the keys and the models before it answers.
//! Both read under the `subject_rights` purpose, on the ledger under the caller's key.

use std::sync::atomic::Ordering;
use std::time::Instant;

use discreet_model::Context;
use discreet_policy::Action;
use discreet_vault::{
    Access, ForgetReceipt, LedgerFilter, PublicKeyInfo, SubjectId, now_millis, rfc3339,
};

use crate::access::{Caller, RIGHTS_PURPOSE};
use crate::engine::{Engine, read, write};
use crate::error::{Error, Missing, Result};
use crate::export::{Derived, HeldItem, Holdings, SubjectExport, document};
use crate::input::check_subject;
use crate::interactions::{hour_of_day, interactions_of, model_name};
use crate::items::ItemFilter;
use crate::recommend::personal_items;

/// Most ledger entries listed in an export's `access_log` (newest first).
const ACCESS_LOG_LIMIT: usize = 1_000;
/// Length of the personal list an export shows.
const EXPORT_RECOMMENDATIONS: usize = 10;

impl Engine {
    /// Everything discreet holds or derived about a subject (GDPR Art. 15 and 20).
    pub fn export(&self, caller: &Caller, subject: &str) -> Result<SubjectExport> {
        self.authorize_rights(caller, Action::Export, subject)?;
        check_subject("subject", subject)?;
        self.check_ready()?;
        let vault = &self.inner.vault;
        // Read from storage, not the lookup cache: a subject whose forget has begun answers
        // 409 rather than an export of what is being erased.
        let id = vault.active_subject_id(subject)?;
        let access = Access {
            actor: &caller.key_id,
            purpose: RIGHTS_PURPOSE,
        };
        let events = vault.events_of(id, access)?;
        let attributes = vault.attributes_of(id, access)?;
        let consent_rows = vault.consents_of(id, access)?;
        let subject_token = vault.subject_token(id);
        self.flush_access_log();
        let ledger = vault.ledger(&LedgerFilter {
            subject_token: Some(subject_token.clone()),
            limit: ACCESS_LOG_LIMIT,
            ..LedgerFilter::default()
        })?;
        let holdings = Holdings {
            subject: subject.to_owned(),
            subject_token,
            consents: self.consents_view(&consent_rows),
            derived: self.derived_of(id),
            events,
            attributes,
            consent_rows,
            ledger,
        };
        document(
            &self.inner.policy,
            self.inner.model_purpose.as_deref(),
            holdings,
            now_millis(),
        )
    }

    /// What the models hold about a vault subject, and their personal list if consented.
    fn derived_of(&self, subject: SubjectId) -> Derived {
        let now = now_millis();
        let models = read(&self.inner.models);
        let learned = models.consented.contains(&subject);
        let Some(model_subject) = models.set.subjects().get(&model_name(subject)) else {
            return Derived {
                learned,
                ..Derived::default()
            };
        };
        let models_hold = models
            .set
            .view_of(model_subject)
            .held_items
            .iter()
            .map(|held| HeldItem {
                item: held.item_code.clone(),
                event_times: held
                    .event_times
                    .iter()
                    .map(|at| rfc3339(at * 1_000))
                    .collect(),
            })
            .collect();
        let context = Context {
            hour_of_day: Some(hour_of_day(now)),
            ..Context::default()
        };
        // What the subject would be offered: under the policy's rules, with no filter.
        let items = self.items_for(&models.set);
        let no_filter = ItemFilter::default();
        let recommendations = match items.selection(
            &models.set,
            &no_filter,
            self.inner.policy.recommendation_rules(),
        ) {
            Ok(selection) => personal_items(
                &models.set,
                model_subject,
                EXPORT_RECOMMENDATIONS,
                now,
                &context,
                &selection,
                &items,
            ),
            // An empty filter names no category, so it always resolves.
            Err(_) => Vec::new(),
        };
        Derived {
            learned,
            models_hold,
            recommendations,
        }
    }

    /// Forgets a subject everywhere: durable intent, then the vault (key destroyed, rows
    /// erased, signed receipt) and the models (exact unlearning) in parallel. Answers only
    /// when both are done.
    pub fn forget(&self, caller: &Caller, subject: &str) -> Result<ForgetReceipt> {
        self.authorize_rights(caller, Action::Forget, subject)?;
        check_subject("subject", subject)?;
        self.check_ready()?;
        let vault = &self.inner.vault;
        let started = Instant::now();
        // With several nodes: apply what the others committed first, so that the models
        // hold every stored event of the subject when they unlearn it.
        if let Err(error) = self.catch_up() {
            tracing::warn!(%error, "catching up before a forget failed");
        }
        let _gate = self.exclusive();
        let id = vault.subject_id(subject)?.ok_or(Error::NotFound {
            what: Missing::Subject,
        })?;
        let consented = self.is_consented(id);
        let interactions = if consented {
            let events = vault.events_of(
                id,
                Access {
                    actor: &caller.key_id,
                    purpose: RIGHTS_PURPOSE,
                },
            )?;
            // Events retention announced (elsewhere) were unlearned already.
            let events: Vec<_> = events
                .into_iter()
                .filter(|event| !self.is_doomed(event.seq))
                .collect();
            interactions_of(&mut write(&self.inner.models).set, &events)?
        } else {
            Vec::new()
        };
        let read_micros = started.elapsed().as_micros() as u64;
        vault.begin_forget(id, &caller.key_id, interactions.len() as u64)?;
        let intent_micros = started.elapsed().as_micros() as u64;
        if self.cluster().is_some() {
            // With several nodes: this node's models drop the subject, then — without the
            // gate, so that this node applies the others' changes meanwhile — every live
            // node unlearns it while its events can still be read, and only then is the
            // key destroyed and the rows erased.
            // From the intent on, the forget always finishes: the models' part and the waits
            // are best effort (a node that cannot follow rebuilds; one that does not answer
            // is marked not live).
            let unlearned = {
                let mut models = write(&self.inner.models);
                models.consented.remove(&id);
                if consented {
                    models
                        .set
                        .forget_subject(&model_name(id), &interactions)
                        .map(|_| ())
                } else {
                    Ok(())
                }
            };
            if consented {
                self.want_refresh();
            }
            if let Err(error) = unlearned
                && let Err(error) = self.out_of_step(error.into())
            {
                tracing::warn!(%error, "the models of this command could not unlearn the subject");
            }
            drop(_gate);
            let await_nodes = || {
                if let Err(error) = self.await_nodes() {
                    tracing::warn!(%error, "waiting for the other nodes failed");
                }
            };
            await_nodes();
            let receipt = vault.finish_forget(id, &caller.key_id)?;
            await_nodes();
            self.inner.forgets_completed.fetch_add(1, Ordering::Relaxed);
            return Ok(receipt);
        }
        // From the intent on, the vault and the models forget independently: the vault
        // destroys the key and erases the rows while the models unlearn, and the answer
        // waits for both. (A crash in between finishes the vault part on the next open, and
        // the models are rebuilt from the vault then.)
        let (models_outcome, receipt, models_only_micros) = std::thread::scope(|scope| {
            let vault_part = scope.spawn(|| vault.finish_forget(id, &caller.key_id));
            let models_started = Instant::now();
            let models_outcome = {
                let mut models = write(&self.inner.models);
                models.consented.remove(&id);
                if consented {
                    models
                        .set
                        .forget_subject(&model_name(id), &interactions)
                        .map(|_| ())
                } else {
                    Ok(())
                }
            };
            let models_only_micros = models_started.elapsed().as_micros() as u64;
            let receipt = vault_part.join().unwrap_or_else(|_| {
                Err(discreet_vault::Error::Storage {
                    detail: "the forget's storage thread stopped".into(),
                })
            });
            (models_outcome, receipt, models_only_micros)
        });
        let models_micros = started.elapsed().as_micros() as u64;
        models_outcome?;
        if consented {
            self.want_refresh();
        }
        let receipt = receipt?;
        self.inner.forgets_completed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            interactions = interactions.len(),
            read_micros,
            intent_micros,
            models_only_micros,
            models_micros,
            total_micros = started.elapsed().as_micros() as u64,
            "forget done"
        );
        Ok(receipt)
    }

    /// A stored forget receipt.
    pub fn receipt(&self, caller: &Caller, id: &str) -> Result<ForgetReceipt> {
        self.authorize(caller, Action::ReceiptsRead)?;
        if !(1..=128).contains(&id.chars().count()) {
            return Err(Error::bad_input("id", "must be 1 to 128 characters"));
        }
        self.inner.vault.receipt(id)?.ok_or(Error::NotFound {
            what: Missing::Receipt,
        })
    }

    /// The key that verifies receipts (public).
    pub fn public_key(&self) -> PublicKeyInfo {
        self.inner.vault.public_key()
    }
}
