//! Forgetting a subject: the durable intent (the subject stops being served and takes no
//! more writes), key destruction (every copy becomes unreadable), the signed receipt, and
//! one transaction that erases the rows, stores the receipt and removes the intent.
//!
//! A forget must never be reported done before every step is, must never shred a subject
//! without a durable intent (the intent is what finishes it after a crash), and the receipt
//! must say exactly what went.

use crate::crypto::{random_bytes, to_hex};
use crate::error::{Error, Missing, Result};
use crate::ledger::LedgerDraft;
use crate::receipt::{ErasedCounts, ForgetReceipt};
use crate::storage::*;

use super::{Vault, now_millis, rfc3339};

/// The steps of a forget, for crash-injection tests: stop right after this step.
/// Public with the `testing` feature only; without it, forgets never stop early.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum ForgetStep {
    IntentWritten,
    KeyDestroyed,
}

impl Vault {
    /// Forgets a subject completely: durable intent, key destroyed, rows erased, signed
    /// receipt, ledger. `model_interactions` is what the caller's models unlearned.
    pub fn forget(
        &self,
        external_id: &str,
        actor: &str,
        model_interactions: u64,
    ) -> Result<ForgetReceipt> {
        let subject = self.forgettable_subject(external_id)?;
        self.write_forget_intent(subject, actor, model_interactions)?;
        self.finish_forget(subject, actor)
    }

    /// Writes the durable intent to forget a subject already resolved; from here the forget
    /// completes even across crashes. The subject leaves the lookup cache.
    pub fn begin_forget(
        &self,
        subject: SubjectId,
        actor: &str,
        model_interactions: u64,
    ) -> Result<()> {
        // Once its key is destroyed, a subject is past the point of no return: its forget
        // finishes on its own, and a lookup by customer id no longer finds it either.
        if !matches!(self.keys.data_key(subject)?, KeyState::Live(_))
            || self.storage.subject(subject)?.is_none()
        {
            return Err(Error::NotFound {
                what: Missing::Subject,
            });
        }
        self.write_forget_intent(subject, actor, model_interactions)
    }

    /// The subject of a customer id in any state (a forget begun may be finished again).
    fn forgettable_subject(&self, external_id: &str) -> Result<SubjectId> {
        self.find_subject(external_id)?
            .map(|row| row.id)
            .ok_or(Error::NotFound {
                what: Missing::Subject,
            })
    }

    /// Stores the intent (or keeps one already stored), then drops the subject from the
    /// lookup cache and moves the forget epoch on.
    fn write_forget_intent(
        &self,
        subject: SubjectId,
        actor: &str,
        model_interactions: u64,
    ) -> Result<()> {
        let token = self.subject_token(subject);
        let intent = ErasureIntent {
            subject,
            subject_token: token.clone(),
            requested_at: now_millis(),
            model_interactions,
        };
        let entry =
            LedgerDraft::new(intent.requested_at, actor, "forget.requested").subject(&token);
        self.storage.begin_erasure(&intent, entry)?;
        self.forget_cached_subject(subject);
        Ok(())
    }

    /// Completes a forget begun with `begin_forget`.
    pub fn finish_forget(&self, subject: SubjectId, actor: &str) -> Result<ForgetReceipt> {
        self.finish_forget_until(subject, actor, None)?
            .ok_or(Error::Storage {
                detail: "forget stopped early".into(),
            })
    }

    /// Crash injection for tests: begins a forget and stops right after `step`.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn forget_until(&self, external_id: &str, actor: &str, step: ForgetStep) -> Result<()> {
        let subject = self.forgettable_subject(external_id)?;
        self.write_forget_intent(subject, actor, 0)?;
        if step != ForgetStep::IntentWritten {
            self.finish_forget_until(subject, actor, Some(step))?;
        }
        Ok(())
    }

    /// Shreds, counts, signs and erases; `None` when stopped after `stop_after`.
    pub(super) fn finish_forget_until(
        &self,
        subject: SubjectId,
        actor: &str,
        stop_after: Option<ForgetStep>,
    ) -> Result<Option<ForgetReceipt>> {
        // Only a subject with a durable intent is shredded: the intent is what makes the
        // forget finish after a crash.
        let intent = self
            .storage
            .erasure_intent(subject)?
            .ok_or(Error::NotFound {
                what: Missing::ErasureIntent,
            })?;
        // Shred first: from this commit on, every copy of the subject's data is unreadable.
        self.destroy_data_key(subject)?;
        if stop_after == Some(ForgetStep::KeyDestroyed) {
            return Ok(None);
        }
        // Count, sign, then erase in one transaction that checks the counts: the receipt says
        // exactly what went. Writes to a forgetting subject are refused, so a recount is rare.
        let mut attempts = 0;
        let receipt = loop {
            attempts += 1;
            let counts = self.storage.count_subject_rows(subject)?;
            let completed_at = now_millis();
            let mut receipt = ForgetReceipt {
                id: format!("rcpt_{}", to_hex(random_bytes::<12>()?.as_ref())),
                subject_token: intent.subject_token.clone(),
                requested_at: rfc3339(intent.requested_at),
                completed_at: rfc3339(completed_at),
                erased: ErasedCounts {
                    events: counts.events,
                    attributes: counts.attributes,
                    consents: counts.consents,
                    model_interactions: intent.model_interactions,
                    key_destroyed: true,
                },
                signature: String::new(),
                key_id: self.signer.key_id().to_owned(),
            };
            receipt.signature = to_hex(&self.signer.sign(&receipt.signed_message()));
            let stored = StoredReceipt {
                id: receipt.id.clone(),
                subject_token: receipt.subject_token.clone(),
                json: serde_json::to_string(&receipt).map_err(|error| Error::Storage {
                    detail: error.to_string(),
                })?,
            };
            let entry = LedgerDraft::new(completed_at, actor, "forget.completed")
                .subject(&intent.subject_token)
                .detail(format!(
                    "receipt={} events={} attributes={} consents={} model_interactions={}",
                    receipt.id,
                    counts.events,
                    counts.attributes,
                    counts.consents,
                    intent.model_interactions
                ));
            match self
                .storage
                .complete_erasure(subject, counts, &stored, entry)
            {
                Ok(()) => {
                    self.forget_cached_subject(subject);
                    break receipt;
                }
                Err(Error::Conflict { .. }) if attempts < 5 => continue,
                Err(error) => return Err(error),
            }
        };
        if let Ok(head) = self.storage.ledger_head() {
            self.after_write(head);
        }
        Ok(Some(receipt))
    }

    /// A stored forget receipt.
    pub fn receipt(&self, id: &str) -> Result<Option<ForgetReceipt>> {
        match self.storage.receipt(id)? {
            None => Ok(None),
            Some(stored) => serde_json::from_str(&stored.json)
                .map(Some)
                .map_err(|error| Error::Storage {
                    detail: format!("stored receipt unreadable: {error}"),
                }),
        }
    }
}
