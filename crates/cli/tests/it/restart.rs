//! The whole life of a data folder through the binary: keys from the CLI, consents and
//! event batches over HTTP, answers read, the server killed with SIGKILL mid-life and
//! restarted on the same folder; then every acknowledged event must be there, the answers
//! must be the same, the ledger must verify. A second SIGKILL lands while batches are in
//! flight: acknowledged batches are stored whole, the one cut off whole or not at all.
//! Last, after a graceful SIGTERM, the CLI's audit, forget and export work on the folder
//! with exit codes that mean something.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, Store, encode, now_seconds, rfc3339, run_on};

const CUSTOMERS: usize = 24;
/// c-1 .. c-20 grant personalization; c-21 .. c-24 never answer the banner.
const CONSENTING: usize = 20;
const ITEMS_PER_CLUSTER: usize = 10;
const CLUSTERS: usize = 4;
const BATCHES: usize = 5;
const EVENTS_PER_BATCH: usize = 200;
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);
const CLI_WITHIN: Duration = Duration::from_secs(120);
/// Scores before and after a restart agree to this (relative above 1).
const SCORE_TOLERANCE: f64 = 1e-3;
/// Time the comparison of recommendations may take (kill, restart, reads): the hour of the
/// day is part of the trending context, so the reads must not straddle an hour boundary.
const COMPARISON_BUDGET_SECONDS: i64 = 150;
/// Longest wait for the answers to stop changing after the last ingest.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// Small deterministic generator (xorshift64*), so a failure replays the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Search queries customers type (personal: they must never reach a log line).
const QUERIES: [&str; 4] = [
    "lunch bag",
    "heart t-light holder",
    "vintage doily",
    "jam jar",
];

fn customer(index: usize) -> String {
    format!("c-{}", index + 1)
}

/// Item codes in the style of the Online Retail data: four "departments" of ten.
fn item(cluster: usize, index: usize) -> String {
    let code = 21_000 + cluster * 1_000 + index * 7;
    if index % 4 == 3 {
        format!("{code}A")
    } else {
        code.to_string()
    }
}

/// One stored event as the export prints it: (type, item or query, at, quantity).
type EventKey = (String, String, String, Option<u64>);

fn key_of(event: &Value) -> EventKey {
    let text = |name: &str| event[name].as_str().map(str::to_owned);
    (
        text("type").unwrap_or_default(),
        text("item").or_else(|| text("query")).unwrap_or_default(),
        text("at").unwrap_or_default(),
        event["quantity"].as_u64(),
    )
}

/// Realistic batches: each customer mostly shops one department, buys some items again,
/// views and carts more than they buy, searches now and then; times over the last 60 days.
fn batches(now: i64) -> Vec<Vec<Value>> {
    let mut rng = Rng(0x5EED_D15C_4EE7_0001);
    let countries = ["United Kingdom", "France", "Germany", "EIRE"];
    let weathers = ["rain", "clear", "cloudy", "cold"];
    let queries = QUERIES;
    (0..BATCHES)
        .map(|_| {
            (0..EVENTS_PER_BATCH)
                .map(|_| {
                    let who = rng.below(CUSTOMERS);
                    let cluster = if rng.chance(80) {
                        who % CLUSTERS
                    } else {
                        rng.below(CLUSTERS)
                    };
                    // Lower indices are the department's best sellers.
                    let index = rng
                        .below(ITEMS_PER_CLUSTER)
                        .min(rng.below(ITEMS_PER_CLUSTER));
                    let at = rfc3339(now - 60 - rng.below(60 * 86_400) as i64);
                    let mut event = json!({
                        "subject": customer(who),
                        "at": at,
                        "context": {
                            "country": countries[who % countries.len()],
                            "weather": weathers[rng.below(weathers.len())],
                        },
                    });
                    let roll = rng.below(100);
                    if roll < 5 {
                        event["type"] = json!("search");
                        event["query"] = json!(queries[rng.below(queries.len())]);
                    } else {
                        event["item"] = json!(item(cluster, index));
                        if roll < 60 {
                            event["type"] = json!("purchase");
                            event["quantity"] = json!(1 + rng.below(12));
                        } else if roll < 75 {
                            event["type"] = json!("cart");
                        } else {
                            event["type"] = json!("view");
                        }
                    }
                    event
                })
                .collect()
        })
        .collect()
}

/// Reads of the models kept for comparison across the restart.
#[derive(Debug)]
struct Answers {
    recommendations: BTreeMap<String, Value>,
    similar: BTreeMap<String, Value>,
}

fn recommendation_paths() -> Vec<String> {
    let mut paths: Vec<String> = ["c-1", "c-2", "c-5", "c-8", "c-13", "c-20", "c-22"]
        .iter()
        .map(|subject| {
            format!("/v1/subjects/{subject}/recommendations?n=8&purpose=personalization")
        })
        .collect();
    paths.push(format!(
        "/v1/subjects/c-3/recommendations?n=8&purpose=personalization&context.weather=rain&context.country={}",
        encode("United Kingdom")
    ));
    // An unknown subject: the non-personal answer.
    paths.push("/v1/subjects/c-999/recommendations?n=8".to_owned());
    paths
}

fn similar_paths() -> Vec<String> {
    [(0, 0), (0, 3), (1, 1), (2, 0), (3, 5)]
        .iter()
        .map(|(cluster, index)| {
            format!("/v1/items/{}/similar?n=8", encode(&item(*cluster, *index)))
        })
        .collect()
}

fn read_answers(server: &Server, key: &str) -> Answers {
    Answers {
        recommendations: recommendation_paths()
            .into_iter()
            .map(|path| {
                let answer = server.ok("GET", &path, key, None);
                (path, answer)
            })
            .collect(),
        similar: similar_paths()
            .into_iter()
            .map(|path| {
                let answer = server.ok("GET", &path, key, None);
                (path, answer)
            })
            .collect(),
    }
}

fn ranked(answer: &Value) -> Vec<(String, f64)> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no `items` array in {answer}"))
        .iter()
        .map(|entry| {
            (
                entry["item"].as_str().expect("an item code").to_owned(),
                entry["score"].as_f64().expect("a score"),
            )
        })
        .collect()
}

fn close(left: f64, right: f64) -> bool {
    (left - right).abs() <= SCORE_TOLERANCE * left.abs().max(right.abs()).max(1.0)
}

/// Same ranked list: scores agree position by position, and items agree in order except
/// where two scores tie within the tolerance (then their order is free, and at the end of
/// the list a tied item may give its place to another one).
fn compare_ranking(what: &str, before: &Value, after: &Value) -> Result<(), String> {
    let (left, right) = (ranked(before), ranked(after));
    let explain = || format!("{what}:\n  before {before}\n  after  {after}");
    if left.len() != right.len() {
        return Err(format!("different lengths; {}", explain()));
    }
    for (position, ((left_item, left_score), (right_item, right_score))) in
        left.iter().zip(&right).enumerate()
    {
        if !close(*left_score, *right_score) {
            return Err(format!(
                "score at position {position} differs; {}",
                explain()
            ));
        }
        if left_item == right_item {
            continue;
        }
        let tied_in = |list: &[(String, f64)], item: &str, score: f64| {
            match list.iter().find(|(other, _)| other == item) {
                Some((_, other_score)) => close(*other_score, score),
                // Missing from the other list: only a tie at its last place explains that.
                None => list.last().is_some_and(|(_, last)| close(*last, score)),
            }
        };
        if !tied_in(&left, right_item, *right_score) || !tied_in(&right, left_item, *left_score) {
            return Err(format!(
                "position {position}: {left_item} before, {right_item} after, not a tie; {}",
                explain()
            ));
        }
    }
    Ok(())
}

fn compare_answers(label: &str, before: &Answers, after: &Answers) -> Result<(), String> {
    let mut problems = Vec::new();
    for (path, answer) in &before.recommendations {
        let other = &after.recommendations[path];
        for field in ["personalized", "reason"] {
            if answer[field] != other[field] {
                problems.push(format!(
                    "{label} {path}: `{field}` {} before, {} after",
                    answer[field], other[field]
                ));
            }
        }
        if let Err(problem) = compare_ranking(&format!("{label} {path}"), answer, other) {
            problems.push(problem);
        }
    }
    for (path, answer) in &before.similar {
        if let Err(problem) =
            compare_ranking(&format!("{label} {path}"), answer, &after.similar[path])
        {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Customer ids (`c-<n>`, `w-<n>`), search queries and item codes must not appear in a log.
fn assert_no_personal_values(log: &str) {
    assert!(!log.is_empty(), "the server wrote no log at all");
    let bytes = log.as_bytes();
    for (index, window) in bytes.windows(3).enumerate() {
        let customer_id = (window[0] == b'c' || window[0] == b'w')
            && window[1] == b'-'
            && window[2].is_ascii_digit()
            && (index == 0 || !bytes[index - 1].is_ascii_alphanumeric());
        assert!(
            !customer_id,
            "a customer id in the log: {}",
            &log[index.saturating_sub(60)..(index + 20).min(log.len())]
        );
    }
    for query in QUERIES {
        assert!(!log.contains(query), "a search query in the log: {query}");
    }
    for cluster in 0..CLUSTERS {
        for index in (3..ITEMS_PER_CLUSTER).step_by(4) {
            let code = item(cluster, index);
            assert!(!log.contains(&code), "an item code in the log: {code}");
        }
    }
}

fn utc_hour(seconds: i64) -> i64 {
    seconds.div_euclid(3_600).rem_euclid(24)
}

/// Waits past the next hour boundary when it is too close for the comparison to finish.
fn clear_of_hour_boundary() {
    let into_hour = now_seconds().rem_euclid(3_600);
    let left = 3_600 - into_hour;
    if left < COMPARISON_BUDGET_SECONDS {
        eprintln!("waiting {left} s for the hour to turn (the hour is part of the context)");
        std::thread::sleep(Duration::from_secs(left as u64 + 2));
    }
}

/// Subjects of the batches written while the server is killed (no consent: stored only).
const WRITER_SUBJECTS: usize = 6;
const WRITER_BATCH_EVENTS: usize = 60;
/// The second kill comes once this many batches of the writer were acknowledged.
const KILL_AFTER_BATCHES: usize = 8;

/// Batch `number` of the writer: every event has its own time, so each stored event names
/// the batch it came from (`at` = base - number × 10,000 s - index s).
fn writer_batch(base: i64, number: usize) -> Vec<Value> {
    (0..WRITER_BATCH_EVENTS)
        .map(|index| {
            json!({
                "subject": format!("w-{}", 1 + (number + index) % WRITER_SUBJECTS),
                "type": "view",
                "item": item(index % CLUSTERS, index % ITEMS_PER_CLUSTER),
                "at": rfc3339(base - number as i64 * 10_000 - index as i64),
            })
        })
        .collect()
}

/// What the writer saw before the server died.
#[derive(Debug)]
struct WriterOutcome {
    base: i64,
    acknowledged: Vec<usize>,
    /// Sent, not acknowledged (the kill cut it off): stored whole or not at all.
    cut_off: Option<usize>,
    failure: Option<String>,
}

struct Writer {
    progress: std::sync::Arc<std::sync::Mutex<WriterOutcome>>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    fn acknowledged(&self) -> usize {
        self.progress.lock().unwrap().acknowledged.len()
    }

    fn stopped(&self) -> bool {
        self.thread.is_finished()
    }

    fn failure(&self) -> Option<String> {
        self.progress.lock().unwrap().failure.clone()
    }

    fn join(self) -> WriterOutcome {
        // The writer stops at its first failed request (the kill); its HTTP reads time out.
        self.thread.join().expect("the writer thread panicked");
        std::sync::Arc::try_unwrap(self.progress)
            .expect("the writer is done")
            .into_inner()
            .unwrap()
    }
}

/// Posts writer batches back to back until a request fails.
fn spawn_writer(port: u16, key: String) -> Writer {
    let base = now_seconds() - 86_400;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(WriterOutcome {
        base,
        acknowledged: Vec::new(),
        cut_off: None,
        failure: None,
    }));
    let shared = progress.clone();
    let thread = std::thread::spawn(move || {
        for number in 0..10_000 {
            let body = json!({ "events": writer_batch(base, number) });
            let answer = crate::support::http(port, "POST", "/v1/events", Some(&key), Some(&body));
            let mut progress = shared.lock().unwrap();
            match answer {
                Ok(response)
                    if response.status == 200
                        && response.json()["accepted"].as_u64()
                            == Some(WRITER_BATCH_EVENTS as u64) =>
                {
                    progress.acknowledged.push(number);
                }
                Ok(response) => {
                    progress.cut_off = Some(number);
                    progress.failure = Some(format!("{} {}", response.status, response.text));
                    return;
                }
                Err(error) => {
                    progress.cut_off = Some(number);
                    progress.failure = Some(error);
                    return;
                }
            }
        }
    });
    Writer { progress, thread }
}

/// Every acknowledged writer batch is stored whole; the cut-off one whole or not at all;
/// nothing else.
fn check_writer_batches(server: &Server, key: &str, outcome: &WriterOutcome) {
    let sent = outcome
        .acknowledged
        .iter()
        .chain(&outcome.cut_off)
        .max()
        .map_or(0, |last| last + 1);
    let batch_of: std::collections::HashMap<String, usize> = (0..sent)
        .flat_map(|number| {
            (0..WRITER_BATCH_EVENTS).map(move |index| {
                (
                    rfc3339(outcome.base - number as i64 * 10_000 - index as i64),
                    number,
                )
            })
        })
        .collect();
    let mut stored: BTreeMap<usize, usize> = BTreeMap::new();
    for number in 0..WRITER_SUBJECTS {
        let subject = format!("w-{}", number + 1);
        let response = server.call("GET", &format!("/v1/subjects/{subject}/export"), key, None);
        if response.status == 404 {
            continue;
        }
        assert_eq!(response.status, 200, "{subject}: {}", response.text);
        for event in response.json()["events"].as_array().into_iter().flatten() {
            let at = event["at"].as_str().unwrap_or_default();
            let number = *batch_of
                .get(at)
                .unwrap_or_else(|| panic!("{subject}: an event no batch sent: {event}"));
            *stored.entry(number).or_default() += 1;
        }
    }
    for number in &outcome.acknowledged {
        assert_eq!(
            stored.get(number).copied().unwrap_or(0),
            WRITER_BATCH_EVENTS,
            "acknowledged batch {number} is stored whole ({outcome:?})"
        );
    }
    for (number, count) in &stored {
        let acknowledged = outcome.acknowledged.contains(number);
        let cut_off = outcome.cut_off == Some(*number);
        assert!(
            acknowledged || cut_off,
            "batch {number} was never sent, yet {count} of its events are stored"
        );
        assert_eq!(
            *count, WRITER_BATCH_EVENTS,
            "batch {number} is stored whole or not at all (cut off: {cut_off})"
        );
    }
    eprintln!(
        "kill during ingest: {} batches acknowledged, batch {:?} cut off ({}), stored: {}",
        outcome.acknowledged.len(),
        outcome.cut_off,
        outcome
            .cut_off
            .map(|number| if stored.contains_key(&number) {
                "stored whole"
            } else {
                "not stored"
            })
            .unwrap_or("none"),
        stored.values().sum::<usize>()
    );
}

#[test]
fn acknowledged_events_survive_sigkill_and_answers_stay_the_same() {
    let started = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let mut phase = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<(&str, Duration)>| {
        timings.push((name, phase.elapsed()));
        phase = Instant::now();
    };
    let store = Store::new();

    // 1. An admin key from the CLI.
    let created = run_on(
        &store,
        &["keys", "create", "--role", "admin", "--json"],
        CLI_WITHIN,
    );
    assert_eq!(created.code(), Some(0), "keys create: {created}");
    let created = created.json();
    assert_eq!(created["role"], "admin", "{created}");
    assert!(
        created["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{created}"
    );
    let key = created["secret"]
        .as_str()
        .filter(|secret| !secret.is_empty())
        .unwrap_or_else(|| panic!("no secret in {created}"))
        .to_owned();
    assert!(
        store.kek_file.exists() && !store.kek_file.starts_with(&store.data_dir),
        "the KEK file is created outside the data folder"
    );
    lap("keys create", &mut timings);

    // 2. The server.
    let mut first = Server::start(&store, "first", HEALTHY_WITHIN);
    lap("first start", &mut timings);
    assert_eq!(
        first
            .call("GET", "/v1/audit/verify", "not-a-key", None)
            .status,
        401,
        "an unknown key is refused"
    );

    // 3. Consents, batches, answers.
    for index in 0..CONSENTING {
        let subject = customer(index);
        let answer = first.ok(
            "PUT",
            &format!("/v1/subjects/{subject}/consents/personalization"),
            &key,
            Some(&json!({"granted": true, "source": "checkout-banner-v3"})),
        );
        assert_eq!(answer["purpose"], "personalization", "{answer}");
        assert_eq!(answer["state"], "granted", "{answer}");
    }
    let now = now_seconds();
    let batches = batches(now);
    let mut acknowledged: BTreeMap<String, Vec<EventKey>> = BTreeMap::new();
    for (number, batch) in batches.iter().enumerate() {
        let body = json!({ "events": batch });
        let answer = first.ok("POST", "/v1/events", &key, Some(&body));
        assert_eq!(
            answer["accepted"].as_u64(),
            Some(batch.len() as u64),
            "batch {number}: {answer}"
        );
        for event in batch {
            let subject = event["subject"].as_str().expect("a subject").to_owned();
            acknowledged.entry(subject).or_default().push(key_of(event));
        }
    }
    let total: usize = acknowledged.values().map(Vec::len).sum();
    assert_eq!(total, BATCHES * EVENTS_PER_BATCH);
    assert_eq!(acknowledged.len(), CUSTOMERS, "every customer has events");
    // A bad batch is refused whole and stores nothing.
    let mut bad = batches[0][..3].to_vec();
    bad[2]["type"] = json!("teleport");
    let refused = first.call("POST", "/v1/events", &key, Some(&json!({ "events": bad })));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.text.contains("events[2]"), "{}", refused.text);
    lap("consents and ingest", &mut timings);

    // EASE takes learned events at its background refresh (every 2 s): let it run, then
    // keep the answers once two reads 2.5 s apart agree (at most SETTLE_WITHIN).
    std::thread::sleep(Duration::from_secs(3));
    clear_of_hour_boundary();
    let hour = utc_hour(now_seconds());
    let settling = Instant::now();
    let mut before = read_answers(&first, &key);
    loop {
        std::thread::sleep(Duration::from_millis(2_500));
        let again = read_answers(&first, &key);
        match compare_answers("settled", &before, &again) {
            Ok(()) => break,
            Err(problem) if settling.elapsed() > SETTLE_WITHIN => {
                panic!(
                    "the answers still change {SETTLE_WITHIN:?} after the last ingest:\n{problem}"
                )
            }
            Err(_) => before = again,
        }
    }
    let personalized = before
        .recommendations
        .values()
        .filter(|answer| answer["personalized"] == true)
        .count();
    assert_eq!(
        personalized, 7,
        "consenting customers get personal lists: {:?}",
        before.recommendations
    );
    for (path, answer) in &before.recommendations {
        let subject = path.split('/').nth(3).unwrap_or_default();
        assert!(!ranked(answer).is_empty(), "{path}: no items: {answer}");
        let held: Vec<&str> = acknowledged
            .get(subject)
            .map(|events| events.iter().map(|event| event.1.as_str()).collect())
            .unwrap_or_default();
        for entry in answer["items"].as_array().into_iter().flatten() {
            for because in entry["because"].as_array().into_iter().flatten() {
                assert!(
                    held.contains(&because.as_str().unwrap_or_default()),
                    "{path}: `because` {because} is not in the customer's history: {answer}"
                );
            }
        }
    }
    let unconsented =
        &before.recommendations["/v1/subjects/c-22/recommendations?n=8&purpose=personalization"];
    assert_eq!(unconsented["personalized"], false, "{unconsented}");
    assert_eq!(unconsented["reason"], "no_consent", "{unconsented}");
    for answer in before.similar.values() {
        assert!(!ranked(answer).is_empty(), "no similar items: {answer}");
    }
    let verified = first.ok("GET", "/v1/audit/verify", &key, None);
    assert_eq!(verified["ok"], true, "{verified}");
    lap("answers before the kill", &mut timings);

    // 4. SIGKILL, restart on the same folder.
    first.kill();
    let killed = first.exit.expect("the first server was reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed),
        Some(9),
        "killed by SIGKILL: {killed}"
    );
    lap("kill", &mut timings);
    let mut second = Server::start(&store, "second", HEALTHY_WITHIN);
    lap("restart until healthy", &mut timings);

    // 5. Nothing acknowledged is lost; same answers; the ledger verifies.
    let after = read_answers(&second, &key);
    let hour_after = utc_hour(now_seconds());
    assert_eq!(
        hour, hour_after,
        "the comparison straddled an hour boundary (took longer than {COMPARISON_BUDGET_SECONDS} s)"
    );
    if let Err(problem) = compare_answers("restart", &before, &after) {
        panic!("answers differ after the SIGKILL and restart:\n{problem}");
    }
    for (subject, expected) in &acknowledged {
        let export = second.ok("GET", &format!("/v1/subjects/{subject}/export"), &key, None);
        assert_eq!(export["subject"], subject.as_str(), "{export}");
        let events = export["events"]
            .as_array()
            .unwrap_or_else(|| panic!("{subject}: no events array in the export: {export}"));
        assert_eq!(
            events.len(),
            expected.len(),
            "{subject}: events held after the restart, against events acknowledged"
        );
        let mut held: Vec<EventKey> = events.iter().map(key_of).collect();
        let mut expected = expected.clone();
        held.sort();
        expected.sort();
        assert_eq!(held, expected, "{subject}: the events themselves");
    }
    let unknown = second.call("GET", "/v1/subjects/c-999/export", &key, None);
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let verified = second.ok("GET", "/v1/audit/verify", &key, None);
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(
        verified["entries"]
            .as_u64()
            .is_some_and(|entries| entries > 0),
        "{verified}"
    );
    lap("checks after the restart", &mut timings);

    // 5b. SIGKILL again, this time while batches are in flight: every acknowledged batch
    // is there in full, and a batch cut off by the kill is there in full or not at all.
    let writer = spawn_writer(second.port, key.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.acknowledged() < KILL_AFTER_BATCHES {
        assert!(
            Instant::now() < deadline && !writer.stopped(),
            "the writer acknowledged only {} batches: {:?}",
            writer.acknowledged(),
            writer.failure()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    second.kill();
    let outcome = writer.join();
    assert!(
        outcome.acknowledged.len() >= KILL_AFTER_BATCHES,
        "{outcome:?}"
    );
    lap("kill during ingest", &mut timings);
    let mut third = Server::start(&store, "third", HEALTHY_WITHIN);
    lap("restart until healthy", &mut timings);
    check_writer_batches(&third, &key, &outcome);
    for (subject, expected) in [
        ("c-2", &acknowledged["c-2"]),
        ("c-24", &acknowledged["c-24"]),
    ] {
        let export = third.ok("GET", &format!("/v1/subjects/{subject}/export"), &key, None);
        assert_eq!(
            export["events"].as_array().map(Vec::len),
            Some(expected.len()),
            "{subject} after the second kill"
        );
    }
    let verified = third.ok("GET", "/v1/audit/verify", &key, None);
    assert_eq!(verified["ok"], true, "{verified}");
    lap("checks after the second kill", &mut timings);

    // 6. One process holds a folder: the CLI is refused while the server runs. Then stop
    // the server gracefully (SIGTERM) and use the CLI on the folder.
    let busy = run_on(&store, &["audit", "verify", "--json"], CLI_WITHIN);
    assert_eq!(busy.code(), Some(2), "the folder is in use: {busy}");
    assert!(busy.stderr.contains("in use"), "{busy}");
    let stopped = third.terminate(Duration::from_secs(60));
    assert!(
        stopped.success(),
        "SIGTERM stops the server cleanly: {stopped}\n{}",
        third.log()
    );
    lap("SIGTERM", &mut timings);
    // Invariant 2: nothing personal in a log line, even at debug level.
    for server in [&first, &second, &third] {
        assert_no_personal_values(&server.log());
    }

    let audit = run_on(&store, &["audit", "verify", "--json"], CLI_WITHIN);
    assert_eq!(audit.code(), Some(0), "audit verify: {audit}");
    assert_eq!(audit.json()["ok"], true, "{audit}");

    let c1 = &acknowledged["c-1"];
    let forget = run_on(&store, &["forget", "c-1", "--json"], CLI_WITHIN);
    assert_eq!(forget.code(), Some(0), "forget c-1: {forget}");
    let receipt = &forget.json()["receipt"];
    for field in [
        "id",
        "subject_token",
        "requested_at",
        "completed_at",
        "signature",
        "key_id",
    ] {
        assert!(
            receipt[field].as_str().is_some_and(|text| !text.is_empty()),
            "receipt.{field}: {receipt}"
        );
    }
    assert_eq!(
        receipt["erased"]["events"].as_u64(),
        Some(c1.len() as u64),
        "the receipt counts every event of c-1: {receipt}"
    );
    let learnable = c1.iter().filter(|event| event.0 != "search").count();
    assert_eq!(
        receipt["erased"]["model_interactions"].as_u64(),
        Some(learnable as u64),
        "c-1 consented: every event with an item was in the models: {receipt}"
    );
    assert_eq!(receipt["erased"]["key_destroyed"], true, "{receipt}");

    let again = run_on(&store, &["forget", "c-1", "--json"], CLI_WITHIN);
    assert_eq!(
        again.code(),
        Some(3),
        "a second forget is not found: {again}"
    );
    let export = run_on(&store, &["export", "c-1"], CLI_WITHIN);
    assert_eq!(
        export.code(),
        Some(3),
        "export of a forgotten subject: {export}"
    );
    let export = run_on(&store, &["export", "c-2"], CLI_WITHIN);
    assert_eq!(export.code(), Some(0), "export c-2: {export}");
    assert_eq!(
        export.json()["events"].as_array().map(Vec::len),
        Some(acknowledged["c-2"].len()),
        "the CLI export holds every event of c-2"
    );
    let audit = run_on(&store, &["audit", "verify", "--json"], CLI_WITHIN);
    assert_eq!(
        audit.code(),
        Some(0),
        "audit verify after the forget: {audit}"
    );
    assert_eq!(audit.json()["ok"], true, "{audit}");
    let bad_role = run_on(
        &store,
        &["keys", "create", "--role", "nope", "--json"],
        CLI_WITHIN,
    );
    assert_eq!(
        bad_role.code(),
        Some(2),
        "an unknown role is bad input: {bad_role}"
    );
    assert!(bad_role.stdout.is_empty(), "no key printed: {bad_role}");
    lap("CLI checks", &mut timings);

    let summary: Vec<String> = timings
        .iter()
        .map(|(name, took)| format!("{name} {:.2} s", took.as_secs_f64()))
        .collect();
    eprintln!(
        "end-to-end: {} events over HTTP, SIGKILL, restart; {} ({:.1} s in all)",
        total,
        summary.join(", "),
        started.elapsed().as_secs_f64()
    );
}
