//! Sealing and opening: the associated data that binds each ciphertext to its subject and
//! row (events, attributes, the sealed customer id, consent tags, wrapped keys), and turning
//! stored rows back into opened values.
//!
//! Associated data must never change for rows already stored (every old ciphertext would
//! fail to open), and no ciphertext may be sealed without it: a value copied to another row
//! or subject must fail to open.

use crate::crypto::DataKey;
use crate::error::{Error, Result};
use crate::storage::*;

use super::{Attribute, Event, NewAttribute, NewEvent, Vault};

/// Associated data: every part length-prefixed, so no two records share it.
fn associated_data(parts: &[&[u8]]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    for part in parts {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

fn event_aad(subject: SubjectId, seq: i64, category: &str, at: i64) -> Vec<u8> {
    associated_data(&[
        b"discreet/event/v1",
        &subject.to_be_bytes(),
        &seq.to_be_bytes(),
        category.as_bytes(),
        &at.to_be_bytes(),
    ])
}

fn attribute_aad(subject: SubjectId, name: &str, category: &str, updated_at: i64) -> Vec<u8> {
    associated_data(&[
        b"discreet/attribute/v1",
        &subject.to_be_bytes(),
        name.as_bytes(),
        category.as_bytes(),
        &updated_at.to_be_bytes(),
    ])
}

/// The associated data of a subject's sealed customer id.
pub(super) fn external_id_aad(subject: SubjectId) -> Vec<u8> {
    associated_data(&[b"discreet/subject-id/v1", &subject.to_be_bytes()])
}

/// A consent row's fields (all but its tag) as associated data.
fn consent_aad(consent: &ConsentRow) -> Vec<u8> {
    associated_data(&[
        b"discreet/consent/v1",
        &consent.subject.to_be_bytes(),
        consent.purpose.as_bytes(),
        &[consent.granted as u8],
        &consent.at.to_be_bytes(),
        consent.source.as_bytes(),
        consent.policy_version.as_bytes(),
    ])
}

/// The context a data key or secret is wrapped under by the KEK.
pub(super) fn key_context(key_ref: &KeyRef) -> Vec<u8> {
    match key_ref {
        KeyRef::Subject(subject) => {
            associated_data(&[b"discreet/data-key/v1", &subject.to_be_bytes()])
        }
        KeyRef::Secret(name) => associated_data(&[b"discreet/secret/v1", name.as_bytes()]),
    }
}

/// A new subject's row: its customer id sealed under its own key.
pub(super) fn new_subject_row(
    key: &DataKey,
    id: SubjectId,
    external_id: &str,
    now: i64,
) -> Result<SubjectRow> {
    let sealed_external_id = key.seal(&external_id_aad(id), external_id.as_bytes())?;
    Ok(SubjectRow {
        id,
        sealed_external_id,
        created_at: now,
        state: SubjectState::Active,
    })
}

/// An event sealed as row `seq` of `subject`.
pub(super) fn seal_event(
    key: &DataKey,
    subject: SubjectId,
    seq: i64,
    event: &NewEvent,
) -> Result<EventRow> {
    let sealed = key.seal(
        &event_aad(subject, seq, &event.category, event.at),
        &event.payload,
    )?;
    Ok(EventRow {
        seq,
        subject,
        category: event.category.clone(),
        at: event.at,
        sealed,
    })
}

/// An attribute value of `subject` sealed as updated at `now`.
pub(super) fn seal_attribute(
    key: &DataKey,
    subject: SubjectId,
    attribute: &NewAttribute,
    now: i64,
) -> Result<AttributeRow> {
    let sealed = key.seal(
        &attribute_aad(subject, &attribute.name, &attribute.category, now),
        &attribute.value,
    )?;
    Ok(AttributeRow {
        subject,
        name: attribute.name.clone(),
        category: attribute.category.clone(),
        updated_at: now,
        sealed,
    })
}

/// Sets the tag of a consent row over its fields.
pub(super) fn tag_consent(key: &DataKey, consent: &mut ConsentRow) -> Result<()> {
    consent.tag = key.seal(&consent_aad(consent), &[])?;
    Ok(())
}

/// Checks the tag of every consent row: an altered, moved or invented row fails.
pub(super) fn verify_consents(key: &DataKey, consents: &[ConsentRow]) -> Result<()> {
    for consent in consents {
        key.open(&consent_aad(consent), &consent.tag, "consent")?;
    }
    Ok(())
}

pub(super) fn open_event(key: &DataKey, row: EventRow) -> Result<Event> {
    let payload = key.open(
        &event_aad(row.subject, row.seq, &row.category, row.at),
        &row.sealed,
        "event",
    )?;
    Ok(Event {
        seq: row.seq,
        subject: row.subject,
        category: row.category,
        at: row.at,
        payload: payload.to_vec(),
    })
}

pub(super) fn open_attribute(key: &DataKey, row: AttributeRow) -> Result<Attribute> {
    let value = key.open(
        &attribute_aad(row.subject, &row.name, &row.category, row.updated_at),
        &row.sealed,
        "attribute",
    )?;
    Ok(Attribute {
        subject: row.subject,
        name: row.name,
        category: row.category,
        updated_at: row.updated_at,
        value: value.to_vec(),
    })
}

impl Vault {
    /// Reads rows of one subject with `read` and opens them with its key (fetched first, so
    /// a destroyed key is reported even when no row is left).
    pub(super) fn open_rows_of<R, T>(
        &self,
        subject: SubjectId,
        read: impl FnOnce(SubjectId) -> Result<Vec<R>>,
        open: fn(&DataKey, R) -> Result<T>,
    ) -> Result<Vec<T>> {
        let key = self.data_key(subject)?;
        read(subject)?
            .into_iter()
            .map(|row| open(&key, row))
            .collect()
    }

    /// Opens rows of many subjects, skipping those whose key was destroyed since the rows
    /// were read (forgotten meanwhile).
    pub(super) fn open_rows_of_live_subjects<R, T>(
        &self,
        rows: Vec<R>,
        subject_of: fn(&R) -> SubjectId,
        open: fn(&DataKey, R) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut opened = Vec::with_capacity(rows.len());
        for row in rows {
            match self.data_key(subject_of(&row)) {
                Ok(key) => opened.push(open(&key, row)?),
                Err(Error::KeyDestroyed) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(opened)
    }
}
