//! Moving a shop between stores: every active subject with its customer id (opened from
//! its row, sealed under the subject's own key), and all of one subject's records —
//! events, attributes, consent history — in one read that is one ledger entry.
//!
//! Nothing here returns a customer id without its row having been opened with its key, and
//! a read never returns without its ledger entry; a consent history that does not verify
//! fails the read rather than being exported as no decision.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::ledger::{CONSENT_CATEGORY, LedgerDraft, by_category_detail};
use crate::storage::*;

use super::attributes::Attribute;
use super::events::Event;
use super::sealing::{external_id_aad, open_attribute, open_event};
use super::{Access, Vault, now_millis};

/// Everything stored about one subject, opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectRecords {
    pub events: Vec<Event>,
    pub attributes: Vec<Attribute>,
    /// In the order the decisions were recorded.
    pub consents: Vec<ConsentRow>,
}

impl Vault {
    /// Every active subject, by internal id, with the shop's customer id opened from its
    /// row. A subject forgotten between the listing and its opening is left out. Unlogged:
    /// the caller writes a ledger entry for each subject whose records it then reads.
    pub fn subjects(&self) -> Result<Vec<(SubjectId, String)>> {
        let mut subjects = Vec::new();
        for id in self.storage.subject_ids()? {
            let Some(row) = self.storage.subject(id)? else {
                continue;
            };
            if row.state != SubjectState::Active {
                continue;
            }
            let key = match self.data_key(id) {
                Ok(key) => key,
                Err(Error::KeyDestroyed) => continue,
                Err(error) => return Err(error),
            };
            let external_id = key.open(&external_id_aad(id), &row.sealed_external_id, "subject")?;
            let external_id = String::from_utf8(external_id.to_vec())
                .map_err(|_| Error::Tampered { what: "subject" })?;
            subjects.push((id, external_id));
        }
        Ok(subjects)
    }

    /// A subject's events, attributes and consent history by internal id, opened, in one
    /// read that is one ledger entry (`records.read`, with every category read).
    pub fn records_of(&self, subject: SubjectId, access: Access<'_>) -> Result<SubjectRecords> {
        let key = self.data_key(subject)?;
        let events = self
            .storage
            .events_of(subject)?
            .into_iter()
            .map(|row| open_event(&key, row))
            .collect::<Result<Vec<_>>>()?;
        let attributes = self
            .storage
            .attributes_of(subject)?
            .into_iter()
            .map(|row| open_attribute(&key, row))
            .collect::<Result<Vec<_>>>()?;
        let consents = self.verified_history(subject)?;
        let mut categories: BTreeSet<&str> =
            events.iter().map(|event| event.category.as_str()).collect();
        categories.extend(
            attributes
                .iter()
                .map(|attribute| attribute.category.as_str()),
        );
        if !consents.is_empty() {
            categories.insert(CONSENT_CATEGORY);
        }
        self.record_access(vec![
            LedgerDraft::new(now_millis(), access.actor, "records.read")
                .subject(&self.subject_token(subject))
                .purpose(access.purpose)
                .categories(categories)
                .detail(format!(
                    "events={} attributes={} consents={}{}",
                    events.len(),
                    attributes.len(),
                    consents.len(),
                    by_category_detail(
                        events
                            .iter()
                            .map(|event| event.category.as_str())
                            .chain(
                                attributes
                                    .iter()
                                    .map(|attribute| attribute.category.as_str())
                            )
                            .chain(consents.iter().map(|_| CONSENT_CATEGORY))
                    )
                )),
        ])?;
        Ok(SubjectRecords {
            events,
            attributes,
            consents,
        })
    }
}
