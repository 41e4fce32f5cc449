//! Attributes: storing sealed attribute values (a new value replaces the old one) and
//! reading one subject's attributes (logged).
//!
//! A value is never stored unsealed or for a subject whose forget has begun; a logged read
//! never returns without its ledger entry.

use crate::error::{Error, Result};
use crate::ledger::{LedgerDraft, by_category_detail};
use crate::storage::*;

use super::sealing::{open_attribute, seal_attribute};
use super::{Access, Vault, now_millis};

/// An attribute value to store.
#[derive(Clone, Debug)]
pub struct NewAttribute {
    pub name: String,
    pub category: String,
    pub value: Vec<u8>,
}

/// A stored attribute, opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub subject: SubjectId,
    pub name: String,
    pub category: String,
    pub updated_at: i64,
    pub value: Vec<u8>,
}

impl Vault {
    /// Seals and stores attribute values (a new value replaces the old one), creating the
    /// subject if new; returns the internal id the customer id resolved to.
    pub fn put_attributes(
        &self,
        external_id: &str,
        actor: &str,
        attributes: &[NewAttribute],
    ) -> Result<SubjectId> {
        if attributes.is_empty() {
            return Err(Error::BadInput {
                detail: "no attribute to store".into(),
            });
        }
        let subject = self.resolve_subject(external_id)?;
        let key = self.data_key(subject)?;
        let now = now_millis();
        let rows = attributes
            .iter()
            .map(|attribute| seal_attribute(&key, subject, attribute, now))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<&str> = attributes
            .iter()
            .map(|attribute| attribute.name.as_str())
            .collect();
        let entry = LedgerDraft::new(now, actor, "attributes.write")
            .subject(&self.subject_token(subject))
            .categories(
                attributes
                    .iter()
                    .map(|attribute| attribute.category.as_str()),
            )
            .detail(format!("names={}", names.join(",")));
        let head = self.storage.write(WriteBatch {
            attributes: rows,
            ledger: vec![entry],
            ..WriteBatch::default()
        })?;
        self.after_write(head);
        Ok(subject)
    }

    /// A subject's attributes by internal id, opened; the read is written to the ledger.
    pub fn attributes_of(&self, subject: SubjectId, access: Access<'_>) -> Result<Vec<Attribute>> {
        let attributes = self.open_rows_of(
            subject,
            |subject| self.storage.attributes_of(subject),
            open_attribute,
        )?;
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "attributes.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .categories(
                    attributes
                        .iter()
                        .map(|attribute| attribute.category.as_str()),
                )
                .detail(format!(
                    "attributes={}{}",
                    attributes.len(),
                    by_category_detail(
                        attributes
                            .iter()
                            .map(|attribute| attribute.category.as_str())
                    )
                )),
        ])?;
        Ok(attributes)
    }
}
