//! Shared fixtures: engines over a fresh vault in a temp folder, callers, typed events with
//! times relative to now, a deterministic synthetic shop, and the comparison of every
//! answer two engines give (what "the models are equal" means from outside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use discreet_engine::input::MAX_ANSWER_ITEMS;
use discreet_engine::{
    Caller, Engine, EngineOptions, Error, EventContext, EventInput, EventType, IngestOutcome,
    NotPersonal,
};
use discreet_policy::Policy;
use discreet_vault::{Kek, KekRing, LedgerFilter, SqliteOptions, Vault, now_millis};

pub const DAY_MILLIS: i64 = 86_400_000;
/// Score tolerance when two engines' answers are compared.
pub const TOLERANCE: f32 = 1e-4;

// ------------------------------------------------------------------------------ callers

pub fn storefront() -> Caller {
    Caller::key("storefront-key", "storefront")
}

pub fn privacy() -> Caller {
    Caller::key("privacy-key", "privacy")
}

pub fn analyst() -> Caller {
    Caller::key("analyst-key", "analyst")
}

// ------------------------------------------------------------------------------ engines

/// An engine over its own vault in its own temp folder (data in `data/`, KEK beside it).
pub struct TestEngine {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    policy: Policy,
    options: EngineOptions,
}

impl TestEngine {
    pub fn new() -> TestEngine {
        TestEngine::with_options(EngineOptions::default())
    }

    pub fn with_options(options: EngineOptions) -> TestEngine {
        TestEngine::with_policy(Policy::builtin_retail(), options)
    }

    pub fn with_policy(policy: Policy, options: EngineOptions) -> TestEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = open_engine_with_policy(dir.path(), policy.clone(), options.clone());
        TestEngine {
            engine,
            dir,
            policy,
            options,
        }
    }

    /// Drops the engine (closing its vault), opens the vault again and rebuilds the models
    /// from it, as a node does at start.
    pub fn reopen(self) -> TestEngine {
        let TestEngine {
            engine,
            dir,
            policy,
            options,
        } = self;
        drop(engine);
        let engine = open_engine_with_policy(dir.path(), policy.clone(), options.clone());
        TestEngine {
            engine,
            dir,
            policy,
            options,
        }
    }
}

impl std::ops::Deref for TestEngine {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// An engine over the vault in `dir` under `policy`, rebuilt and ready.
pub fn open_engine_with_policy(dir: &Path, policy: Policy, options: EngineOptions) -> Engine {
    let kek_file = dir.join("kek");
    let kek = Kek::load_or_create_file(&kek_file).expect("KEK file");
    let vault = Vault::open_sqlite(
        &SqliteOptions::new(dir.join("data"), Some(kek_file)),
        KekRing::new(kek),
    )
    .expect("open vault");
    let engine = Engine::new(policy, vault, options).expect("engine");
    engine.rebuild(&|_| {}).expect("rebuild");
    assert!(engine.is_ready());
    engine
}

// ------------------------------------------------------------------------------ events

/// Unix milliseconds `days` days before now.
pub fn days_ago(days: f64) -> i64 {
    now_millis() - (days * DAY_MILLIS as f64) as i64
}

/// An event of `event_type` (a wire name: `view`, `purchase`, ...) naming `item`, at
/// `at_millis`; no quantity, value, query or context.
pub fn event(subject: &str, event_type: &str, item: &str, at_millis: i64) -> EventInput {
    EventInput {
        subject: subject.to_owned(),
        event_type: EventType::from_name(event_type)
            .unwrap_or_else(|| panic!("`{event_type}` is not an event type")),
        item: Some(item.to_owned()),
        at: at_millis,
        quantity: None,
        query: None,
        value: None,
        context: EventContext::default(),
    }
}

/// A rating of `item` (0 to 10).
pub fn rating(subject: &str, item: &str, value: f64, at_millis: i64) -> EventInput {
    EventInput {
        value: Some(value),
        ..event(subject, "rating", item, at_millis)
    }
}

/// A search for `query` (no item).
pub fn search(subject: &str, query: &str, at_millis: i64) -> EventInput {
    EventInput {
        item: None,
        query: Some(query.to_owned()),
        ..event(subject, "search", "", at_millis)
    }
}

/// A context of `weather` in `country`.
pub fn context(weather: &str, country: &str) -> EventContext {
    EventContext {
        weather: Some(weather.to_owned()),
        country: Some(country.to_owned()),
    }
}

/// Ingests `events` as one batch from the storefront, and waits until the learner has
/// taught the models (an ingest answers once the batch is durable, before it is learned).
pub fn ingest(engine: &Engine, events: &[EventInput]) -> Result<IngestOutcome, Error> {
    let outcome = engine.ingest(&storefront(), events, None);
    engine.settle();
    outcome
}

/// Ingests `events` in batches of at most 200, and says how many were accepted.
pub fn ingest_all(engine: &Engine, events: &[EventInput]) -> u64 {
    events
        .chunks(200)
        .map(|chunk| ingest(engine, chunk).expect("ingest").accepted)
        .sum()
}

pub fn grant(engine: &Engine, subject: &str) {
    engine
        .set_consent(
            &storefront(),
            subject,
            "personalization",
            true,
            "test-banner",
        )
        .expect("grant");
}

pub fn withdraw(engine: &Engine, subject: &str) {
    engine
        .set_consent(
            &storefront(),
            subject,
            "personalization",
            false,
            "test-banner",
        )
        .expect("withdraw");
}

/// Every ledger entry (newest first).
pub fn ledger_len(engine: &Engine) -> usize {
    engine.flush_access_log();
    engine
        .vault()
        .ledger(&LedgerFilter {
            limit: 1_000_000,
            ..LedgerFilter::default()
        })
        .expect("ledger")
        .len()
}

// ------------------------------------------------------------------------------ a shop

/// A deterministic xorshift generator (no dependency, same data on every run).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len() as u64) as usize]
    }
}

/// A small synthetic shop: customers with favourite product groups, who view, cart, buy
/// and rate mostly within them and search now and then, over the last eleven months.
pub struct Shop {
    pub items: Vec<String>,
    pub customers: Vec<String>,
    /// Events in the order they are sent.
    pub events: Vec<EventInput>,
}

const GROUPS: usize = 5;
const WEATHERS: [&str; 4] = ["clear", "rain", "cloudy", "cold"];
const COUNTRIES: [&str; 3] = ["United Kingdom", "France", "Germany"];

/// Item codes in the style of the Online Retail stock codes.
pub fn item_codes(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let suffix = ["", "A", "B", "C"][i % 4];
            format!("{}{suffix}", 20_700 + i * 1_137)
        })
        .collect()
}

impl Shop {
    pub fn generate(seed: u64, n_customers: usize, n_items: usize, prefix: &str) -> Shop {
        let mut rng = Rng::new(seed);
        let items = item_codes(n_items);
        let group_of = |index: usize| index * GROUPS / n_items;
        let groups: Vec<Vec<&String>> = (0..GROUPS)
            .map(|group| {
                items
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| group_of(*index) == group)
                    .map(|(_, item)| item)
                    .collect()
            })
            .collect();
        let mut customers = Vec::new();
        let mut events = Vec::new();
        for c in 0..n_customers {
            let customer = format!("{prefix}-{c:04}");
            let favourite = c % GROUPS;
            let second = (c * 3 + 1) % GROUPS;
            let mut own = Vec::new();
            let mut add = |rng: &mut Rng, event_type: &str, item: &str| {
                let mut event = event(
                    &customer,
                    event_type,
                    item,
                    days_ago(2.0 + rng.below(330) as f64 + rng.below(1_000) as f64 / 1_000.0),
                );
                if event_type == "purchase" {
                    event.quantity = Some(1 + rng.below(12) as u32);
                }
                if event_type == "rating" {
                    event.value = Some((1 + rng.below(5)) as f64);
                }
                if rng.chance(40) {
                    let weather = *rng.pick(&WEATHERS);
                    let country = *rng.pick(&COUNTRIES);
                    event.context = context(weather, country);
                }
                own.push(event);
            };
            for _ in 0..3 + rng.below(4) {
                let group = if rng.chance(75) { favourite } else { second };
                let item = (*rng.pick(&groups[group])).clone();
                add(&mut rng, "purchase", &item);
                if rng.chance(30) {
                    add(&mut rng, "view", &item);
                }
            }
            for _ in 0..1 + rng.below(3) {
                let item = (*rng.pick(&items)).clone();
                let kind = if rng.chance(25) { "cart" } else { "view" };
                add(&mut rng, kind, &item);
            }
            if rng.chance(20) {
                let item = (*rng.pick(&groups[favourite])).clone();
                add(&mut rng, "rating", &item);
            }
            if rng.chance(30) {
                own.push(search(
                    &customer,
                    &format!("gift for group {favourite}"),
                    days_ago(1.0 + rng.below(300) as f64),
                ));
            }
            customers.push(customer);
            events.extend(own);
        }
        Shop {
            items,
            customers,
            events,
        }
    }

    /// Drops every event of `subject` that names `item`.
    pub fn drop_item_of(&mut self, subject: &str, item: &str) {
        self.events
            .retain(|event| !(event.subject == subject && event.item.as_deref() == Some(item)));
    }

    /// The items each customer holds (any event kind).
    pub fn holdings(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for event in &self.events {
            if let Some(item) = &event.item {
                held.entry(event.subject.clone())
                    .or_default()
                    .insert(item.clone());
            }
        }
        held
    }
}

// ------------------------------------------------------------------------------ answers

/// One recommendation answer, reduced to what comparing needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub personalized: bool,
    pub reason: Option<NotPersonal>,
    pub items: Vec<(String, f32)>,
}

/// Everything two engines are compared on: each customer's recommendations and each
/// item's similar items (an item the engine does not know has none).
#[derive(Clone, Debug)]
pub struct Answers {
    pub recommendations: BTreeMap<String, Answer>,
    pub similar: BTreeMap<String, Vec<(String, f32)>>,
}

fn hour_now() -> i64 {
    now_millis() / 3_600_000
}

/// All answers of `engine` for `customers` and `items` (personalization purpose, the
/// largest `n`, so that no tie at the cut decides what is listed), once what was
/// acknowledged is learned and EASE is refreshed (a removal stops EASE from scoring until
/// its refresh, which the background would run).
pub fn answers(engine: &Engine, customers: &[String], items: &[String]) -> Answers {
    engine.settle();
    engine.refresh_models();
    let recommendations = customers
        .iter()
        .map(|customer| {
            let answer = engine
                .recommend(
                    &storefront(),
                    customer,
                    "personalization",
                    MAX_ANSWER_ITEMS,
                    &EventContext::default(),
                )
                .expect("recommend");
            (
                customer.clone(),
                Answer {
                    personalized: answer.personalized,
                    reason: answer.reason,
                    items: answer
                        .items
                        .into_iter()
                        .map(|item| (item.item, item.score))
                        .collect(),
                },
            )
        })
        .collect();
    let similar = items
        .iter()
        .map(|item| {
            let list = match engine.similar(&storefront(), item, MAX_ANSWER_ITEMS) {
                Ok(list) => list
                    .into_iter()
                    .map(|similar| (similar.item, similar.score))
                    .collect(),
                Err(Error::NotFound { .. }) => Vec::new(),
                Err(error) => panic!("similar({item}): {error}"),
            };
            (item.clone(), list)
        })
        .collect();
    Answers {
        recommendations,
        similar,
    }
}

/// Runs `take` until one run starts and ends within the same clock hour: the request's hour
/// of day is part of the context the trending lists use, so answers compared across
/// engines must share it.
pub fn within_one_hour<T>(mut take: impl FnMut() -> T) -> T {
    loop {
        let hour = hour_now();
        let taken = take();
        if hour_now() == hour {
            return taken;
        }
    }
}

/// Answers of both engines (pending model updates applied), taken within one clock hour.
pub fn answers_of_both(
    left: &Engine,
    right: &Engine,
    customers: &[String],
    items: &[String],
) -> (Answers, Answers) {
    left.refresh_models();
    right.refresh_models();
    let pair = within_one_hour(|| {
        (
            answers(left, customers, items),
            answers(right, customers, items),
        )
    });
    assert!(
        pair.0
            .recommendations
            .values()
            .any(|answer| answer.personalized && !answer.items.is_empty())
            && pair.0.similar.values().any(|list| !list.is_empty()),
        "the answers compared are not trivial"
    );
    pair
}

/// Differences between two scored lists, compared as sets of items with scores. With the
/// largest `n` every candidate is listed, and which items are candidates depends on counts
/// only, so the lists must name the same items; their order may differ only among ties.
fn list_differences(left: &[(String, f32)], right: &[(String, f32)]) -> Vec<String> {
    let left_map: BTreeMap<&str, f32> = left.iter().map(|(i, s)| (i.as_str(), *s)).collect();
    let right_map: BTreeMap<&str, f32> = right.iter().map(|(i, s)| (i.as_str(), *s)).collect();
    let codes: BTreeSet<&str> = left_map.keys().chain(right_map.keys()).copied().collect();
    let mut differences = Vec::new();
    for code in codes {
        match (left_map.get(code), right_map.get(code)) {
            (Some(l), Some(r)) if (l - r).abs() <= TOLERANCE * l.abs().max(r.abs()).max(1.0) => {}
            (l, r) => differences.push(format!("{code}: {l:?} vs {r:?}")),
        }
    }
    differences
}

/// Panics with every difference when the two engines' answers differ beyond tolerance.
pub fn assert_same_answers(what: &str, left: &Answers, right: &Answers) {
    let mut problems = Vec::new();
    let customers: BTreeSet<&String> = left
        .recommendations
        .keys()
        .chain(right.recommendations.keys())
        .collect();
    for customer in customers {
        match (
            left.recommendations.get(customer),
            right.recommendations.get(customer),
        ) {
            (Some(l), Some(r)) => {
                if l.personalized != r.personalized || l.reason != r.reason {
                    problems.push(format!(
                        "recommend({customer}): personalized/reason {:?}/{:?} vs {:?}/{:?}",
                        l.personalized, l.reason, r.personalized, r.reason
                    ));
                }
                for difference in list_differences(&l.items, &r.items) {
                    problems.push(format!("recommend({customer}): {difference}"));
                }
            }
            _ => problems.push(format!("recommend({customer}) asked of one engine only")),
        }
    }
    let items: BTreeSet<&String> = left.similar.keys().chain(right.similar.keys()).collect();
    for item in items {
        let empty = Vec::new();
        let l = left.similar.get(item).unwrap_or(&empty);
        let r = right.similar.get(item).unwrap_or(&empty);
        for difference in list_differences(l, r) {
            problems.push(format!("similar({item}): {difference}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Builds an engine from `events` with `consenting` subjects' consent given first.
pub fn engine_with(consenting: &[String], events: &[EventInput]) -> TestEngine {
    let engine = TestEngine::new();
    for subject in consenting {
        grant(&engine, subject);
    }
    ingest_all(&engine, events);
    engine.refresh_models();
    engine
}

// ------------------------------------------------------------------------------ files

pub fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// True when the EASE model that serves (dense, or sparse past `ease_max_items`) has learned
/// changes that its next refresh has yet to apply.
pub fn personal_model_has_pending_changes(engine: &Engine) -> bool {
    engine.with_models(|models| {
        models.ease().is_some_and(|ease| ease.needs_refresh())
            || models
                .sparse_ease()
                .is_some_and(|sparse_ease| sparse_ease.needs_refresh())
    })
}
