//! The writes of what customers do and declare: event batches (checked whole, sealed by the
//! vault, learned by the models only while the subject consents) and attribute values.

use std::sync::atomic::Ordering;
use std::time::Instant;

use discreet_policy::Action;
use discreet_vault::crypto::sha256_parts;
use discreet_vault::{Idempotency, NewAttribute, NewEvent, now_millis};

use crate::access::Caller;
use crate::answers::IngestOutcome;
use crate::engine::{Engine, read};
use crate::error::{Error, Result};
use crate::input::{
    AttributeInput, EventInput, MAX_ATTRIBUTE_CHARS, check_batch, check_event, check_subject,
    event_type_rule, fits, is_short_text,
};
use crate::interactions::EventPayload;
use crate::learner::QueuedEvent;

/// Longest idempotency key accepted, in characters.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// An idempotency key with the fingerprint of the request it came with: the same key and
/// fingerprint are accepted once, the same key with another fingerprint is a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyKey<'a> {
    pub key: &'a str,
    pub fingerprint: [u8; 32],
}

impl<'a> IdempotencyKey<'a> {
    /// For a request body as received (what the HTTP API promises: "the same key and body").
    pub fn of_body(key: &'a str, raw_body: &[u8]) -> IdempotencyKey<'a> {
        IdempotencyKey {
            key,
            fingerprint: sha256_parts(&[b"discreet/ingest-body/v1", raw_body]),
        }
    }

    /// For callers without a body (imports): over what is stored of each event.
    pub fn of_events(key: &'a str, events: &[EventInput]) -> IdempotencyKey<'a> {
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .map(|event| {
                let payload = EventPayload::of(event).to_bytes();
                let mut encoded = Vec::with_capacity(24 + event.subject.len() + payload.len());
                encoded.extend_from_slice(&(event.subject.len() as u64).to_be_bytes());
                encoded.extend_from_slice(event.subject.as_bytes());
                encoded.extend_from_slice(&event.at.to_be_bytes());
                encoded.extend_from_slice(&(payload.len() as u64).to_be_bytes());
                encoded.extend_from_slice(&payload);
                encoded
            })
            .collect();
        let mut parts: Vec<&[u8]> = vec![b"discreet/ingest-events/v1"];
        parts.extend(encoded.iter().map(Vec::as_slice));
        IdempotencyKey {
            key,
            fingerprint: sha256_parts(&parts),
        }
    }
}

impl Engine {
    /// Ingests a batch of events. With an idempotency key, the same key and fingerprint are
    /// accepted once. One bad event rejects the whole batch; nothing is stored.
    pub fn ingest(
        &self,
        caller: &Caller,
        events: &[EventInput],
        idempotency: Option<IdempotencyKey<'_>>,
    ) -> Result<IngestOutcome> {
        let started = Instant::now();
        let permit = self.authorize(caller, Action::Ingest)?;
        self.check_ready()?;
        let policy = &self.inner.policy;
        self.check_events(events)?;
        let mut payloads = Vec::with_capacity(events.len());
        let mut new_events = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let category = policy
                .category_of_event_type(event.event_type.as_str())
                .unwrap_or_default();
            permit.write(category, Some(&format!("events[{index}].type")))?;
            let payload = EventPayload::of(event);
            new_events.push(NewEvent {
                subject: event.subject.clone(),
                category: category.to_owned(),
                at: event.at,
                payload: payload.to_bytes(),
            });
            payloads.push(payload);
        }
        let idempotency = match idempotency {
            None => None,
            Some(IdempotencyKey { key, .. }) if !is_short_text(key, MAX_IDEMPOTENCY_KEY_CHARS) => {
                return Err(Error::bad_input(
                    "Idempotency-Key",
                    "must be 1 to 255 characters of visible text",
                ));
            }
            // Scoped to the API key: two clients that happen to pick the same key do not
            // swallow each other's batches.
            Some(IdempotencyKey { key, fingerprint }) => Some(Idempotency {
                key: format!("{}/{key}", caller.key_id),
                body_hash: fingerprint,
            }),
        };
        let checked_micros = started.elapsed().as_micros() as u64;
        let _gate = read(&self.inner.gate);
        let outcome =
            self.inner
                .vault
                .append_events(&caller.key_id, &new_events, idempotency.as_ref())?;
        let stored_micros = started.elapsed().as_micros() as u64;
        self.inner
            .events_accepted
            .fetch_add(outcome.accepted, Ordering::Relaxed);
        if outcome.accepted > 0 {
            // Durable now: the learner teaches the models (while the gate is still shared,
            // so a consent change that follows waits for this batch to be learned).
            let queued = events
                .iter()
                .zip(payloads)
                .filter_map(|(event, payload)| {
                    let subject = *outcome.subjects.get(&event.subject)?;
                    Some(QueuedEvent {
                        subject,
                        at: event.at,
                        payload,
                    })
                })
                .collect();
            self.inner.learner.push(queued);
        }
        tracing::debug!(
            events = events.len(),
            checked_micros,
            stored_micros,
            total_micros = started.elapsed().as_micros() as u64,
            "ingest done"
        );
        Ok(IngestOutcome {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
        })
    }

    /// Checks a batch's meaning as `ingest` does (size, every event; one problem refuses the
    /// batch, naming `events[i].field`), storing nothing.
    pub fn check_events(&self, events: &[EventInput]) -> Result<()> {
        let policy = &self.inner.policy;
        check_batch(
            events,
            self.inner.options.max_batch_events,
            now_millis(),
            &|event_type| event_type_rule(policy, event_type),
        )
    }

    /// Checks one event's meaning as `ingest` does, storing nothing; fields are named
    /// relative to the event (`at`, `context.weather`).
    pub fn check_event(&self, event: &EventInput) -> Result<()> {
        let policy = &self.inner.policy;
        check_event(event, now_millis(), &|event_type| {
            event_type_rule(policy, event_type)
        })
    }

    /// Stores attribute values (names declared in the policy). Returns the names stored.
    pub fn put_attributes(
        &self,
        caller: &Caller,
        subject: &str,
        attributes: &[AttributeInput],
    ) -> Result<Vec<String>> {
        let permit = self.authorize(caller, Action::AttributesWrite)?;
        check_subject("subject", subject)?;
        let new_attributes = self.attribute_rows(attributes)?;
        for attribute in &new_attributes {
            permit.write(&attribute.category, Some(&attribute.name))?;
        }
        self.check_ready()?;
        self.inner
            .vault
            .put_attributes(subject, &caller.key_id, &new_attributes)?;
        Ok(new_attributes
            .into_iter()
            .map(|attribute| attribute.name)
            .collect())
    }

    /// Checks attribute values (declared names, lengths) and gives what the vault stores:
    /// the one check of `put_attributes` and of imports alike.
    pub(crate) fn attribute_rows(
        &self,
        attributes: &[AttributeInput],
    ) -> Result<Vec<NewAttribute>> {
        if attributes.is_empty() {
            return Err(Error::bad_input("body", "names no attribute"));
        }
        let policy = &self.inner.policy;
        let mut new_attributes = Vec::with_capacity(attributes.len());
        for (position, attribute) in attributes.iter().enumerate() {
            let name = attribute.name.as_str();
            let Some(category) = policy.category_of_attribute(name) else {
                // The name is not echoed: an unknown name may be anything, an email too.
                let declared: Vec<&str> = policy.attributes().keys().map(String::as_str).collect();
                return Err(Error::bad_input(
                    "body",
                    format!(
                        "names an attribute the policy does not declare (attribute {} of {}); declared: {}",
                        position + 1,
                        attributes.len(),
                        declared.join(", ")
                    ),
                ));
            };
            if !fits(&attribute.value, MAX_ATTRIBUTE_CHARS)
                || attribute.value.chars().any(char::is_control)
            {
                return Err(Error::bad_input(
                    name,
                    format!("must be at most {MAX_ATTRIBUTE_CHARS} characters of text"),
                ));
            }
            new_attributes.push(NewAttribute {
                name: name.to_owned(),
                category: category.to_owned(),
                value: attribute.value.clone().into_bytes(),
            });
        }
        Ok(new_attributes)
    }
}
