//! Retention: finding events and attributes past their category's retention period, opened
//! so that the engine can unlearn them, and erasing exactly those rows.
//!
//! It never decides a retention period (the caller passes the policy's), never offers rows
//! of a subject being forgotten, and never erases a value newer than the one that expired.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::ledger::{LedgerDraft, by_category_detail};
use crate::storage::*;

use super::sealing::{open_attribute, open_event};
use super::{Attribute, Event, Vault, now_millis};

/// Data past its retention, opened so that the engine can unlearn it before erasing it.
#[derive(Clone, Debug, Default)]
pub struct Expired {
    pub events: Vec<Event>,
    pub attributes: Vec<Attribute>,
}

impl Vault {
    /// Events and attributes past their category's retention. `retention_millis(category)`
    /// gives the retention period, `None` for "kept while the subject is".
    pub fn expired(
        &self,
        now: i64,
        retention_millis: &dyn Fn(&str) -> Option<i64>,
    ) -> Result<Expired> {
        let mut expired = Expired::default();
        for category in self.storage.categories_in_use()? {
            let Some(retention) = retention_millis(&category) else {
                continue;
            };
            let before = now.saturating_sub(retention);
            expired.events.extend(self.open_rows_of_live_subjects(
                self.storage.events_before(&category, before)?,
                |row| row.subject,
                open_event,
            )?);
            expired.attributes.extend(self.open_rows_of_live_subjects(
                self.storage.attributes_before(&category, before)?,
                |row| row.subject,
                open_attribute,
            )?);
        }
        Ok(expired)
    }

    /// Erases what `expired` found, one ledger entry per subject; returns the rows erased.
    pub fn erase_expired(&self, expired: &Expired, actor: &str) -> Result<u64> {
        // Per subject: events, attributes, and each row's category (the entry's per-category
        // counts, which the breach-impact report subtracts from what a copy held).
        let mut per_subject: BTreeMap<SubjectId, (u64, u64, Vec<&str>)> = BTreeMap::new();
        for event in &expired.events {
            let tally = per_subject.entry(event.subject).or_default();
            tally.0 += 1;
            tally.2.push(&event.category);
        }
        for attribute in &expired.attributes {
            let tally = per_subject.entry(attribute.subject).or_default();
            tally.1 += 1;
            tally.2.push(&attribute.category);
        }
        if per_subject.is_empty() {
            return Ok(0);
        }
        let now = now_millis();
        let ledger = per_subject
            .iter()
            .map(|(subject, (events, attributes, rows))| {
                let categories: BTreeSet<&str> = rows.iter().copied().collect();
                LedgerDraft::new(now, actor, "retention.erase")
                    .subject(&self.subject_token(*subject))
                    .categories(categories)
                    .detail(format!(
                        "events={events} attributes={attributes}{}",
                        by_category_detail(rows.iter().copied())
                    ))
            })
            .collect();
        let seqs: Vec<i64> = expired.events.iter().map(|event| event.seq).collect();
        let attributes: Vec<(SubjectId, String, i64)> = expired
            .attributes
            .iter()
            .map(|attribute| {
                (
                    attribute.subject,
                    attribute.name.clone(),
                    attribute.updated_at,
                )
            })
            .collect();
        let erased = self.storage.erase_records(&seqs, &attributes, ledger)?;
        if let Ok(head) = self.storage.ledger_head() {
            self.after_write(head);
        }
        Ok(erased)
    }
}
