//! The impact of an incident, computed from the ledger: which subjects (by token), how many
//! records of which categories, under which purposes were exposed.
//!
//! Reads are counted from the read entries (`events.read`, `attributes.read`,
//! `consents.read`, `records.read`, `recommendations.read`); a subject's records in a
//! category count once however often they were read (the largest read of that category).
//! Entries written before read entries carried per-category counts (`by_category=`) are
//! counted as an upper bound: the whole read in each of its categories (`approximate`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use discreet_vault::ledger::{CONSENT_CATEGORY, detail_count, parse_by_category};
use discreet_vault::{LedgerFilter, LedgerRecord, Vault};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Ledger entries read per page while scanning.
const PAGE: usize = 50_000;

/// The ledger actions that disclose personal data to their actor.
pub const READ_ACTIONS: [&str; 5] = [
    "events.read",
    "attributes.read",
    "consents.read",
    "records.read",
    "recommendations.read",
];

/// What one category's exposure amounts to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryImpact {
    pub category: String,
    pub subjects: u64,
    pub records: u64,
}

/// What an incident exposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub subjects: u64,
    pub records: u64,
    pub categories: Vec<CategoryImpact>,
    pub purposes: Vec<String>,
    /// False when the exposed material could not be opened (sealed, keys not exposed).
    pub intelligible: bool,
    /// What was readable without keys, when `intelligible` is false.
    pub in_clear: Vec<String>,
    /// Read entries counted (ledger entries that disclosed personal data).
    pub reads: u64,
    /// Recommendation answers among them (derived suggestions, no stored record).
    pub recommendation_reads: u64,
    /// Some counts are upper bounds (entries without per-category counts).
    pub approximate: bool,
}

/// A subject's exposure while scanning: records per category (by the tally's category
/// index; a subject touches few categories, so a short list beats a map).
#[derive(Default)]
struct Exposure {
    categories: Vec<(u16, u64)>,
}

impl Exposure {
    /// Keeps the largest count seen for `category`.
    fn at_least(&mut self, category: u16, records: u64) {
        match self.categories.iter_mut().find(|(c, _)| *c == category) {
            Some((_, held)) => *held = (*held).max(records),
            None => self.categories.push((category, records)),
        }
    }
}

/// The tally of a scan. Categories are interned: a million subjects share a handful of
/// names.
#[derive(Default)]
pub(crate) struct Tally {
    exposed: HashMap<String, Exposure>,
    category_names: Vec<String>,
    category_index: HashMap<String, u16>,
    purposes: BTreeSet<String>,
    reads: u64,
    recommendation_reads: u64,
    approximate: bool,
}

impl Tally {
    /// The tokens of the subjects exposed, in order.
    pub(crate) fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = self.exposed.keys().cloned().collect();
        tokens.sort_unstable();
        tokens
    }

    fn category(&mut self, name: &str) -> u16 {
        if let Some(index) = self.category_index.get(name) {
            return *index;
        }
        let index = u16::try_from(self.category_names.len()).unwrap_or(u16::MAX);
        self.category_names.push(name.to_owned());
        self.category_index.insert(name.to_owned(), index);
        index
    }

    /// Adds `counts` to the exposure of `token` (each category keeps its largest count).
    fn expose(&mut self, token: &str, counts: &[(u16, u64)]) {
        if let Some(exposure) = self.exposed.get_mut(token) {
            for (category, records) in counts {
                exposure.at_least(*category, *records);
            }
            return;
        }
        let mut exposure = Exposure::default();
        for (category, records) in counts {
            exposure.at_least(*category, *records);
        }
        self.exposed.insert(token.to_owned(), exposure);
    }

    /// Counts one read entry.
    fn read(&mut self, record: &LedgerRecord) {
        let entry = &record.entry;
        let Some(token) = &entry.subject_token else {
            return;
        };
        self.reads += 1;
        if let Some(purpose) = &entry.purpose
            && !self.purposes.contains(purpose)
        {
            self.purposes.insert(purpose.clone());
        }
        let counts: Vec<(u16, u64)> = if entry.action == "recommendations.read" {
            // A suggestion list derived from these categories: the subject is exposed in
            // each, no stored record is disclosed.
            self.recommendation_reads += 1;
            entry
                .categories
                .iter()
                .map(|c| (self.category(c), 0))
                .collect()
        } else if entry.action == "consents.read" {
            let n = detail_count(&entry.detail, "consents").unwrap_or(0);
            vec![(self.category(CONSENT_CATEGORY), n)]
        } else if let Some(counts) = parse_by_category(&entry.detail) {
            counts
                .into_iter()
                .map(|(c, n)| (self.category(&c), n))
                .collect()
        } else {
            let total = detail_count(&entry.detail, "events").unwrap_or(0)
                + detail_count(&entry.detail, "attributes").unwrap_or(0);
            if entry.categories.len() > 1 {
                self.approximate = true;
            }
            entry
                .categories
                .iter()
                .map(|c| (self.category(c), total))
                .collect()
        };
        self.expose(token, &counts);
    }

    /// The impact this tally amounts to.
    pub(crate) fn impact(&self, intelligible: bool, in_clear: Vec<String>) -> Impact {
        let mut per_category: Vec<(u64, u64)> = vec![(0, 0); self.category_names.len()];
        let mut records = 0;
        for exposure in self.exposed.values() {
            for (category, count) in &exposure.categories {
                let slot = &mut per_category[usize::from(*category)];
                slot.0 += 1;
                slot.1 += count;
                records += count;
            }
        }
        let mut categories: Vec<CategoryImpact> = per_category
            .into_iter()
            .zip(&self.category_names)
            .filter(|((subjects, _), _)| *subjects > 0)
            .map(|((subjects, records), category)| CategoryImpact {
                category: category.clone(),
                subjects,
                records,
            })
            .collect();
        categories.sort_by(|a, b| a.category.cmp(&b.category));
        Impact {
            subjects: self.exposed.len() as u64,
            records,
            categories,
            purposes: self.purposes.iter().cloned().collect(),
            intelligible,
            in_clear,
            reads: self.reads,
            recommendation_reads: self.recommendation_reads,
            approximate: self.approximate,
        }
    }
}

/// Calls `visit` for every ledger entry matching `filter`, newest first, page by page.
fn scan(
    vault: &Vault,
    mut filter: LedgerFilter,
    visit: &mut dyn FnMut(&LedgerRecord),
) -> Result<u64> {
    filter.limit = PAGE;
    let mut seen = 0;
    loop {
        let page = vault.ledger(&filter)?;
        let Some(last) = page.last() else {
            return Ok(seen);
        };
        filter.before_seq = Some(last.seq);
        seen += page.len() as u64;
        for record in &page {
            visit(record);
        }
        if page.len() < PAGE {
            return Ok(seen);
        }
    }
}

/// How long before a window a privacy-center session opened by a key may still act in it:
/// its start URL's wait and its life together, with room to spare (the server's sessions
/// live at most 40 minutes from minting).
pub const PORTAL_SESSION_REACH_MILLIS: i64 = 60 * 60 * 1000;

/// The action that opens a privacy-center session under a key (detail `session=ps_…`).
const SESSION_OPENED: &str = "portal.session_opened";

/// Whether `record` disclosed personal data to a caller (discreet's own reads — the models
/// learning on a consent change, upkeep — reach no caller: they are no exposure).
fn is_exposing_read(record: &LedgerRecord) -> bool {
    let internal = record.entry.actor == "learner" || record.entry.actor.starts_with("system");
    !internal
        && record.entry.outcome == "ok"
        && READ_ACTIONS.contains(&record.entry.action.as_str())
}

/// Adds the reads by `actor` with `since <= at < until` to `tally`.
fn add_reads(
    tally: &mut Tally,
    vault: &Vault,
    actor: Option<&str>,
    since: i64,
    until: i64,
) -> Result<()> {
    scan(
        vault,
        LedgerFilter {
            actor: actor.map(str::to_owned),
            since: Some(since),
            until: Some(until),
            ..LedgerFilter::default()
        },
        &mut |record| {
            if is_exposing_read(record) {
                tally.read(record);
            }
        },
    )?;
    Ok(())
}

/// Every read with `since <= at < until`, whoever made it.
pub(crate) fn reads(vault: &Vault, since: i64, until: i64) -> Result<Tally> {
    let mut tally = Tally::default();
    add_reads(&mut tally, vault, None, since, until)?;
    Ok(tally)
}

/// The reads `key` made with `since <= at < until`, and those of the privacy-center
/// sessions it opened (the ledger names their reads `portal:<session>`): whoever holds the
/// key can mint a session for any customer and read through it.
pub(crate) fn key_reads(vault: &Vault, key: &str, since: i64, until: i64) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut sessions: BTreeSet<String> = BTreeSet::new();
    scan(
        vault,
        LedgerFilter {
            actor: Some(key.to_owned()),
            since: Some(since.saturating_sub(PORTAL_SESSION_REACH_MILLIS)),
            until: Some(until),
            ..LedgerFilter::default()
        },
        &mut |record| {
            let entry = &record.entry;
            if entry.action == SESSION_OPENED && entry.outcome == "ok" {
                if let Some(session) = entry
                    .detail
                    .split(' ')
                    .find_map(|word| word.strip_prefix("session="))
                {
                    sessions.insert(session.to_owned());
                }
            } else if entry.at >= since && is_exposing_read(record) {
                tally.read(record);
            }
        },
    )?;
    for session in sessions {
        add_reads(
            &mut tally,
            vault,
            Some(&format!("portal:{session}")),
            since,
            until,
        )?;
    }
    Ok(tally)
}

/// What a copy of the data files taken at `at` held: the subjects created and not
/// forgotten before then, and their records ingested and not yet erased, per category.
pub(crate) fn held_at(vault: &Vault, at: i64) -> Result<Tally> {
    // Scanning newest first: a subject forgotten before `at` is seen forgotten before any of
    // its older entries.
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut held: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    // Attribute values replace each other: a subject holds one per name.
    let mut names: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut approximate = false;
    scan(
        vault,
        LedgerFilter {
            until: Some(at),
            ..LedgerFilter::default()
        },
        &mut |record| {
            let entry = &record.entry;
            let Some(token) = &entry.subject_token else {
                return;
            };
            match entry.action.as_str() {
                "forget.completed" | "forget.reapplied" => {
                    gone.insert(token.clone());
                }
                "subject.created" if !gone.contains(token) => {
                    held.entry(token.clone()).or_default();
                }
                "attributes.write" if !gone.contains(token) => {
                    held.entry(token.clone()).or_default();
                    let written = entry
                        .detail
                        .strip_prefix("names=")
                        .unwrap_or_default()
                        .split(',')
                        .filter(|name| !name.is_empty());
                    if entry.categories.len() > 1 {
                        approximate = true;
                    }
                    for category in &entry.categories {
                        names
                            .entry((token.clone(), category.clone()))
                            .or_default()
                            .extend(written.clone().map(str::to_owned));
                    }
                }
                "retention.erase" if !gone.contains(token) => {
                    // What retention erased was no longer in the copy. Entries written before
                    // erasures carried per-category counts are not subtracted: the count
                    // stays an upper bound.
                    match parse_by_category(&entry.detail) {
                        Some(counts) => {
                            let subject = held.entry(token.clone()).or_default();
                            for (category, count) in counts {
                                *subject.entry(category).or_default() -=
                                    i64::try_from(count).unwrap_or(i64::MAX);
                            }
                        }
                        None => approximate = true,
                    }
                }
                "events.ingest" if !gone.contains(token) => {
                    let counts = parse_by_category(&entry.detail).unwrap_or_else(|| {
                        let total = detail_count(&entry.detail, "events").unwrap_or(0)
                            + detail_count(&entry.detail, "attributes").unwrap_or(0);
                        if entry.categories.len() > 1 {
                            approximate = true;
                        }
                        entry
                            .categories
                            .iter()
                            .map(|c| (c.clone(), total))
                            .collect()
                    });
                    let subject = held.entry(token.clone()).or_default();
                    for (category, count) in counts {
                        *subject.entry(category).or_default() +=
                            i64::try_from(count).unwrap_or(i64::MAX);
                    }
                }
                _ => {}
            }
        },
    )?;
    for ((token, category), written) in names {
        if let Some(subject) = held.get_mut(&token) {
            *subject.entry(category).or_default() += written.len() as i64;
        }
    }
    let mut tally = Tally {
        approximate,
        ..Tally::default()
    };
    for (token, categories) in held {
        let counts: Vec<(u16, u64)> = categories
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(category, count)| (tally.category(category), u64::try_from(*count).unwrap_or(0)))
            .collect();
        tally.expose(&token, &counts);
    }
    Ok(tally)
}
