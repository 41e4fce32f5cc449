//! The console's dashboard: what a privacy officer sees first — subjects held and modelled,
//! consent rates per consent-based purpose over the last days, forgets and access requests
//! per day, erasures pending, the retention sweep, and when the ledger was last verified.
//!
//! The figures over time come from one replay of the ledger (the only record that has them):
//! it is read newest first in pages, each entry kept as a few integers, then replayed oldest
//! first. Subjects come in with `subject.created` and go with `forget.completed`; a consent
//! holds from `consent.granted` until `consent.withdrawn` or the forget. A ledger longer than
//! `MAX_DASHBOARD_ENTRIES` is replayed only in its newest part: then the rates, which need the
//! whole history, are not given (`complete` is false), and the per-day counts still are.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use discreet_policy::Action;
use discreet_vault::{LedgerFilter, now_millis};
use serde::Serialize;

use crate::access::{Caller, RIGHTS_PURPOSE};
use crate::engine::{Engine, lock};
use crate::error::Result;

/// Days the dashboard shows, today included.
pub const DASHBOARD_DAYS: usize = 30;

/// Ledger entries one dashboard replays at most.
pub const MAX_DASHBOARD_ENTRIES: usize = 2_000_000;

/// Entries read from the ledger at a time.
const PAGE: usize = 50_000;

const DAY_MILLIS: i64 = 86_400_000;

/// The last ledger verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerChecked {
    /// Unix milliseconds.
    pub at: i64,
    pub ok: bool,
    pub entries: u64,
}

/// One day's counts (UTC).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DayFigures {
    /// The day's first millisecond.
    pub day: i64,
    pub forgets: u64,
    /// Distinct customers whose data was read for their rights (exports and
    /// privacy-center visits).
    pub rights_requests: u64,
    pub consents_granted: u64,
    pub consents_withdrawn: u64,
}

/// A consent-based purpose's share of the subjects held, at the end of each day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsentSeries {
    pub purpose: String,
    /// Subjects whose consent holds now (from the replay; `None` when it was incomplete).
    pub granted_now: Option<u64>,
    /// One per day of `Dashboard::days`: granted / held, `None` when no subject was held or
    /// the replay was incomplete.
    pub rates: Vec<Option<f64>>,
}

/// What the console's dashboard shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dashboard {
    /// Unix milliseconds.
    pub at: i64,
    pub subjects_held: u64,
    pub modelled_subjects: u64,
    pub modelled_events: u64,
    pub consented_subjects: u64,
    /// Oldest first, `DASHBOARD_DAYS` of them, today last.
    pub days: Vec<DayFigures>,
    pub consents: Vec<ConsentSeries>,
    pub erasures_pending: u64,
    /// When the background sweep last ran and will run next (unix ms), when it runs here.
    pub last_sweep_at: Option<i64>,
    pub next_sweep_at: Option<i64>,
    pub ledger_checked: Option<LedgerChecked>,
    /// Ledger entries replayed.
    pub entries_replayed: u64,
    /// True when the whole ledger was replayed.
    pub complete: bool,
}

/// What the replay keeps of an entry.
#[derive(Clone, Copy)]
struct Step {
    at: i64,
    seq: i64,
    kind: StepKind,
    subject: u32,
    purpose: u16,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    Created,
    Forgotten,
    /// A forget applied again after a restore: the subject goes, no new forget is counted.
    Reapplied,
    Granted,
    Withdrawn,
    RightsRead,
}

/// Interns strings as small integers (subject tokens, purposes).
#[derive(Default)]
struct Names {
    index: HashMap<String, u32>,
}

impl Names {
    fn of(&mut self, name: &str) -> u32 {
        if let Some(index) = self.index.get(name) {
            return *index;
        }
        let index = self.index.len() as u32;
        self.index.insert(name.to_owned(), index);
        index
    }
}

impl Engine {
    /// The dashboard's figures (role action `console`).
    pub fn dashboard(&self, caller: &Caller) -> Result<Dashboard> {
        self.authorize(caller, Action::Console)?;
        self.flush_access_log();
        let now = now_millis();
        let today = now - now.rem_euclid(DAY_MILLIS);
        let first_day = today - (DASHBOARD_DAYS as i64 - 1) * DAY_MILLIS;
        let vault = &self.inner.vault;

        let mut subjects = Names::default();
        let mut purposes = Names::default();
        let mut steps: Vec<Step> = Vec::new();
        let mut before_seq = None;
        let mut read = 0usize;
        let complete = loop {
            // One entry more than the cap is asked for: a ledger of exactly the cap is
            // complete.
            let limit = PAGE.min(MAX_DASHBOARD_ENTRIES + 1 - read);
            let page = vault.ledger(&LedgerFilter {
                subject_token: None,
                actor: None,
                since: None,
                until: None,
                before_seq,
                limit,
            })?;
            let keep = page.len().min(MAX_DASHBOARD_ENTRIES - read);
            read += keep;
            before_seq = page.last().map(|record| record.seq);
            for record in &page[..keep] {
                let entry = &record.entry;
                let kind = match entry.action.as_str() {
                    "subject.created" => StepKind::Created,
                    "forget.completed" => StepKind::Forgotten,
                    "forget.reapplied" => StepKind::Reapplied,
                    "consent.granted" => StepKind::Granted,
                    "consent.withdrawn" => StepKind::Withdrawn,
                    "events.read" if entry.purpose.as_deref() == Some(RIGHTS_PURPOSE) => {
                        StepKind::RightsRead
                    }
                    _ => continue,
                };
                let Some(token) = entry.subject_token.as_deref() else {
                    continue;
                };
                if entry.outcome != "ok" {
                    continue;
                }
                steps.push(Step {
                    at: entry.at,
                    seq: record.seq,
                    kind,
                    subject: subjects.of(token),
                    purpose: entry
                        .purpose
                        .as_deref()
                        .map_or(u16::MAX, |purpose| purposes.of(purpose) as u16),
                });
            }
            // A short page is the chain's beginning.
            if page.len() < limit {
                break true;
            }
            if page.len() > keep {
                break false;
            }
        };
        let entries_replayed = read as u64;
        // Days by the entries' times; the chain's order among entries of the same time.
        steps.sort_unstable_by_key(|step| (step.at, step.seq));

        let consent_purposes: Vec<(String, Option<u32>)> = self
            .inner
            .policy
            .purposes()
            .iter()
            .filter(|purpose| purpose.requires_consent())
            .map(|purpose| {
                (
                    purpose.name.clone(),
                    purposes.index.get(&purpose.name).copied(),
                )
            })
            .collect();

        let mut days: Vec<DayFigures> = (0..DASHBOARD_DAYS as i64)
            .map(|offset| DayFigures {
                day: first_day + offset * DAY_MILLIS,
                ..DayFigures::default()
            })
            .collect();
        let mut rates: Vec<Vec<Option<f64>>> = vec![Vec::new(); consent_purposes.len()];
        let mut held: HashSet<u32> = HashSet::new();
        let mut granted: HashMap<u16, HashSet<u32>> = HashMap::new();
        let mut rights_seen: HashSet<u32> = HashSet::new();
        let mut day_index = 0usize;
        let close_day = |held: &HashSet<u32>,
                         granted: &HashMap<u16, HashSet<u32>>,
                         rates: &mut Vec<Vec<Option<f64>>>| {
            for (series, (_, index)) in rates.iter_mut().zip(&consent_purposes) {
                let count = index
                    .and_then(|index| granted.get(&(index as u16)))
                    .map_or(0, HashSet::len);
                series
                    .push((complete && !held.is_empty()).then(|| count as f64 / held.len() as f64));
            }
        };
        for step in &steps {
            // Days that ended before this step are closed with the state they ended in.
            while day_index < DASHBOARD_DAYS && step.at >= days[day_index].day + DAY_MILLIS {
                close_day(&held, &granted, &mut rates);
                day_index += 1;
                rights_seen.clear();
            }
            let day =
                (step.at >= first_day && day_index < DASHBOARD_DAYS).then(|| &mut days[day_index]);
            match step.kind {
                StepKind::Created => {
                    held.insert(step.subject);
                }
                StepKind::Forgotten | StepKind::Reapplied => {
                    held.remove(&step.subject);
                    for set in granted.values_mut() {
                        set.remove(&step.subject);
                    }
                    if step.kind == StepKind::Forgotten
                        && let Some(day) = day
                    {
                        day.forgets += 1;
                    }
                }
                StepKind::Granted => {
                    granted
                        .entry(step.purpose)
                        .or_default()
                        .insert(step.subject);
                    if let Some(day) = day {
                        day.consents_granted += 1;
                    }
                }
                StepKind::Withdrawn => {
                    if let Some(set) = granted.get_mut(&step.purpose) {
                        set.remove(&step.subject);
                    }
                    if let Some(day) = day {
                        day.consents_withdrawn += 1;
                    }
                }
                StepKind::RightsRead => {
                    if let Some(day) = day
                        && rights_seen.insert(step.subject)
                    {
                        day.rights_requests += 1;
                    }
                }
            }
        }
        while day_index < DASHBOARD_DAYS {
            close_day(&held, &granted, &mut rates);
            day_index += 1;
        }
        let consents = consent_purposes
            .iter()
            .zip(rates)
            .map(|((name, index), rates)| ConsentSeries {
                purpose: name.clone(),
                granted_now: complete.then(|| {
                    index
                        .and_then(|index| granted.get(&(index as u16)))
                        .map_or(0, |set| set.len() as u64)
                }),
                rates,
            })
            .collect();

        let figures = self.figures();
        let last_sweep = self.inner.last_sweep_at.load(Ordering::Relaxed);
        let interval = self.inner.options.retention_interval.as_millis() as i64;
        Ok(Dashboard {
            at: now,
            subjects_held: vault.subjects_held()? as u64,
            modelled_subjects: figures.modelled_subjects,
            modelled_events: figures.modelled_events,
            consented_subjects: figures.consented_subjects,
            days,
            consents,
            erasures_pending: vault.pending_erasures()? as u64,
            last_sweep_at: (last_sweep > 0).then_some(last_sweep),
            next_sweep_at: (last_sweep > 0).then(|| last_sweep + interval),
            ledger_checked: *lock(&self.inner.ledger_checked),
            entries_replayed,
            complete,
        })
    }
}

impl Engine {
    /// Lets `caller` into the console (role action `console`) and writes the sign-in, naming
    /// the console session, to the ledger under the caller's key.
    pub fn open_console(&self, caller: &Caller, session_id: &str) -> Result<()> {
        self.authorize(caller, Action::Console)?;
        self.inner.vault.record_access(vec![
            discreet_vault::LedgerDraft::new(now_millis(), &caller.key_id, "console.signed_in")
                .detail(format!("session={session_id}")),
        ])?;
        Ok(())
    }
}
