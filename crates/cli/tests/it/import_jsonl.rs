//! `discreet import` of JSON Lines and CSV in the API's own shapes, and `discreet export
//! --all`, which writes them back: the real binary on fresh folders. Every record kind
//! round-trips between two stores (and the models rebuilt there answer the same); a bad
//! line stores nothing and is named by line and field; `--skip-bad` stores the rest;
//! consents are applied before events; a re-import stores nothing twice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Store, now_seconds, rfc3339, run_on};

const WITHIN: Duration = Duration::from_secs(120);

fn days_ago(days: i64) -> String {
    rfc3339(now_seconds() - days * 86_400)
}

pub(crate) fn write_lines(store: &Store, name: &str, lines: &[Value]) -> String {
    let path = store.file(name);
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(&path, text).expect("write the file");
    path.display().to_string()
}

/// A small shop's history with every record kind: items, consents (one withdrawn later),
/// attributes, and every event type with context.
pub(crate) fn shop_history() -> Vec<Value> {
    let mut lines = vec![
        json!({"kind": "item", "item": "85123A", "title": "WHITE HANGING HEART T-LIGHT HOLDER",
               "categories": ["home/lighting"], "price": 2.55, "available": true}),
        json!({"kind": "item", "item": "22423", "title": "REGENCY CAKESTAND 3 TIER",
               "price": 12.75, "available": false}),
        json!({"kind": "attributes", "subject": "c-1",
               "values": {"email": "c1@example.com", "first_name": "Ada"}}),
        json!({"kind": "consent", "subject": "c-2", "purpose": "personalization",
               "granted": true, "source": "checkout-banner-v3", "at": days_ago(60)}),
        json!({"kind": "consent", "subject": "c-2", "purpose": "marketing_email",
               "granted": true, "source": "newsletter-form", "at": days_ago(59)}),
        json!({"kind": "consent", "subject": "c-2", "purpose": "marketing_email",
               "granted": false, "source": "unsubscribe-link", "at": days_ago(20)}),
        json!({"kind": "event", "subject": "c-1", "type": "search", "query": "heart lights",
               "at": days_ago(12)}),
        json!({"kind": "event", "subject": "c-1", "type": "rating", "item": "22423",
               "value": 4.5, "at": days_ago(11)}),
    ];
    // Enough co-purchases that the models have something to say.
    let baskets = [
        ("c-1", ["85123A", "22423", "71053"]),
        ("c-2", ["85123A", "22423", "84406B"]),
        ("c-3", ["85123A", "71053", "84406B"]),
        ("c-4", ["22423", "71053", "84029G"]),
    ];
    for (day, (subject, basket)) in baskets.iter().enumerate() {
        for (line, item) in basket.iter().enumerate() {
            lines.push(
                json!({"kind": "event", "subject": subject, "type": "purchase",
                "item": item, "quantity": line + 1, "at": days_ago(30 - day as i64),
                "context": {"weather": "rain", "country": "United Kingdom"}}),
            );
        }
        lines.push(json!({"kind": "event", "subject": subject, "type": "view",
            "item": "84029G", "at": days_ago(5)}));
    }
    for subject in ["c-1", "c-3", "c-4"] {
        lines.push(json!({"kind": "consent", "subject": subject,
            "purpose": "personalization", "granted": true, "source": "account-page",
            "at": days_ago(90)}));
    }
    lines
}

/// `export --all` of a store, as its lines sorted (subjects come out in the order of their
/// random internal ids, so two stores list them in different orders).
fn export_all(store: &Store) -> Vec<Value> {
    let output = store.file("export.jsonl");
    let output_path = output.display().to_string();
    let run = run_on(
        store,
        &[
            "export",
            "--all",
            "--format",
            "jsonl",
            "--output",
            &output_path,
        ],
        WITHIN,
    );
    assert_eq!(run.code(), Some(0), "{run}");
    let mut lines: Vec<Value> = std::fs::read_to_string(&output)
        .expect("the export")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    lines.sort_by_key(|line| line.to_string());
    lines
}

fn import(store: &Store, file: &str, extra: &[&str]) -> crate::support::Run {
    let mut head = vec!["import", file, "--json"];
    head.extend_from_slice(extra);
    run_on(store, &head, WITHIN)
}

fn kinds(lines: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts
            .entry(line["kind"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    counts
}

/// The derived part of a customer's export: what the models hold and recommend.
fn derived(store: &Store, subject: &str) -> Value {
    let run = run_on(store, &["export", subject], WITHIN);
    assert_eq!(run.code(), Some(0), "{run}");
    run.json()["derived"].clone()
}

/// What the models say of a customer, by item: what they hold, and each recommended item
/// with its explanation and its score to three decimals (trending decays with the clock, so
/// two processes a second apart score a hair apart; ties may list in either order).
fn models_view(store: &Store, subject: &str) -> Value {
    let derived = derived(store, subject);
    let sorted = |values: &Value, key: fn(&Value) -> Value| {
        let mut values: Vec<Value> = values
            .as_array()
            .map(|values| values.iter().map(key).collect())
            .unwrap_or_default();
        values.sort_by_key(|value| value.to_string());
        values
    };
    json!({
        "learned": derived["learned"],
        "models_hold": sorted(&derived["models_hold"], |held| held.clone()),
        "recommended": sorted(&derived["recommendations"], |item| {
            let score = item["score"].as_f64().unwrap_or(f64::NAN);
            // Items that explain equally may come in either order too.
            let mut because: Vec<String> = item["because"]
                .as_array()
                .map(|items| items.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            because.sort();
            json!([item["item"], (score * 1_000.0).round(), because])
        }),
    })
}

/// Every record kind round-trips: import a history, export it, import the export into a
/// second store and export that: the two exports are the same lines, they hold every
/// record of the file, and the models rebuilt in both stores answer the same.
#[test]
fn every_record_kind_round_trips_through_export_all_into_another_store() {
    let first = Store::new();
    let history = shop_history();
    let file = write_lines(&first, "history.jsonl", &history);
    let run = import(&first, &file, &[]);
    assert_eq!(run.code(), Some(0), "{run}");
    let report = run.json();
    assert_eq!(report["records"], history.len());
    assert_eq!(report["consents_recorded"], 6);
    assert_eq!(report["items"], 2);
    let exported = export_all(&first);
    assert_eq!(
        kinds(&exported),
        BTreeMap::from([
            ("attributes".to_owned(), 1),
            ("consent".to_owned(), 6),
            ("event".to_owned(), 18),
            ("item".to_owned(), 2),
        ])
    );
    // Each record of the file is in the export, with its own time to the millisecond.
    let search = exported
        .iter()
        .find(|line| line["type"] == "search")
        .expect("the search");
    assert_eq!(search["query"], "heart lights");
    let withdrawal = exported
        .iter()
        .find(|line| line["source"] == "unsubscribe-link")
        .expect("the withdrawal");
    assert_eq!(withdrawal["granted"], false);
    assert_eq!(withdrawal["at"], history[5]["at"]);
    let purchase = exported
        .iter()
        .find(|line| line["type"] == "purchase" && line["quantity"] == 3)
        .expect("a purchase");
    assert_eq!(purchase["context"]["weather"], "rain");
    assert!(
        exported
            .iter()
            .any(|line| line["kind"] == "item" && line["available"] == false)
    );

    let second = Store::new();
    let moved = second.file("moved.jsonl");
    std::fs::copy(first.file("export.jsonl"), &moved).expect("copy the export");
    let run = import(&second, &moved.display().to_string(), &[]);
    assert_eq!(run.code(), Some(0), "{run}");
    assert_eq!(
        export_all(&second),
        exported,
        "the second store holds the same"
    );
    for subject in ["c-1", "c-2", "c-3", "c-4"] {
        assert_eq!(
            models_view(&first, subject),
            models_view(&second, subject),
            "{subject}: the models rebuilt in both stores answer the same"
        );
    }
}

/// A bad line in the middle stops the import before anything is stored, naming the file,
/// line and field (never the value), with exit code 2; `--skip-bad` stores the others and
/// lists the bad line.
#[test]
fn a_bad_line_stores_nothing_and_skip_bad_stores_the_rest() {
    let store = Store::new();
    let lines = [
        json!({"kind": "event", "subject": "c-1", "type": "purchase", "item": "85123A",
               "at": days_ago(3)}),
        json!({"kind": "event", "subject": "c-2", "type": "purchase", "item": "22423",
               "at": "last tuesday, secret-canary"}),
        json!({"kind": "consent", "subject": "c-3", "purpose": "personalization",
               "granted": true, "source": "banner", "at": days_ago(1)}),
    ];
    let file = write_lines(&store, "orders.jsonl", &lines);
    let refused = import(&store, &file, &[]);
    assert_eq!(refused.code(), Some(2), "{refused}");
    assert!(refused.stderr.contains("orders.jsonl:2: at"), "{refused}");
    assert!(
        !refused.stderr.contains("secret-canary"),
        "the value is not echoed: {refused}"
    );
    assert!(export_all(&store).is_empty(), "nothing was stored");

    let skipped = import(&store, &file, &["--skip-bad"]);
    assert_eq!(skipped.code(), Some(0), "{skipped}");
    assert!(
        skipped.stderr.contains("skipped") && skipped.stderr.contains("orders.jsonl:2: at"),
        "{skipped}"
    );
    let report = skipped.json();
    assert_eq!(
        (report["events"].clone(), report["bad_lines"].clone()),
        (json!(1), json!(1))
    );
    let stored = export_all(&store);
    assert_eq!(
        kinds(&stored),
        BTreeMap::from([("consent".to_owned(), 1), ("event".to_owned(), 1)])
    );

    // A record of an unknown kind, an unknown field and a line that is not JSON are named too.
    let odd = write_lines(
        &store,
        "odd.jsonl",
        &[
            json!({"kind": "refund", "subject": "c-1"}),
            json!({"kind": "item", "item": "1", "title": "A", "colour": "red"}),
        ],
    );
    std::fs::write(
        &odd,
        std::fs::read_to_string(&odd).expect("read") + "{not json\n",
    )
    .expect("append");
    let refused = import(&store, &odd, &[]);
    assert_eq!(refused.code(), Some(2), "{refused}");
    for named in [
        "odd.jsonl:1: kind",
        "odd.jsonl:2: record",
        "odd.jsonl:3: record",
    ] {
        assert!(refused.stderr.contains(named), "{named}: {refused}");
    }
    assert!(!refused.stderr.contains("colour"), "{refused}");
}

/// Invariant 4 through an import: a customer's consent comes after their events in the
/// file, yet is applied first (in time order), so their history is learned; a customer
/// without consent in the same file is not.
#[test]
fn consent_after_the_events_in_the_file_still_teaches_the_models() {
    let store = Store::new();
    let mut lines = Vec::new();
    for subject in ["c-1", "c-2", "c-3"] {
        for (day, item) in ["85123A", "22423", "71053"].iter().enumerate() {
            lines.push(
                json!({"kind": "event", "subject": subject, "type": "purchase",
                "item": item, "at": days_ago(10 - day as i64)}),
            );
        }
    }
    for subject in ["c-1", "c-2"] {
        lines.push(
            json!({"kind": "consent", "subject": subject, "purpose": "personalization",
            "granted": true, "source": "account-page", "at": days_ago(20)}),
        );
    }
    let file = write_lines(&store, "history.jsonl", &lines);
    let run = import(&store, &file, &[]);
    assert_eq!(run.code(), Some(0), "{run}");
    let learned = derived(&store, "c-1");
    assert_eq!(learned["learned"], true, "{learned}");
    assert_eq!(
        learned["models_hold"].as_array().map(Vec::len),
        Some(3),
        "{learned}"
    );
    let not_learned = derived(&store, "c-3");
    assert_eq!(not_learned["learned"], false, "{not_learned}");
    assert_eq!(not_learned["models_hold"].as_array().map(Vec::len), Some(0));
}

/// Re-running the same file stores nothing twice: no event, no consent decision, no item
/// is added, and the store exports the same lines.
#[test]
fn re_importing_the_same_file_stores_nothing_twice() {
    let store = Store::new();
    let history = shop_history();
    let file = write_lines(&store, "history.jsonl.gz", &[]);
    // Gzipped, as shops keep their dumps.
    let text: String = history.iter().map(|line| format!("{line}\n")).collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, text.as_bytes()).expect("gzip");
    std::fs::write(&file, encoder.finish().expect("gzip")).expect("write");
    let first = import(&store, &file, &["--batch", "5"]);
    assert_eq!(first.code(), Some(0), "{first}");
    assert_eq!(first.json()["events"], 18);
    let exported = export_all(&store);
    let again = import(&store, &file, &["--batch", "5"]);
    assert_eq!(again.code(), Some(0), "{again}");
    let report = again.json();
    assert_eq!(report["events"], 0, "{report}");
    assert_eq!(report["duplicates"], 18, "{report}");
    assert_eq!(report["consents_recorded"], 0, "{report}");
    assert_eq!(report["consents_already_recorded"], 6, "{report}");
    assert_eq!(export_all(&store), exported);
}

/// CSV of events with context columns: read through the same checks as JSON Lines, the
/// context kept; a bad cell names its line and column.
#[test]
fn csv_events_with_context_columns_are_imported() {
    let store = Store::new();
    let csv = store.file("orders.csv");
    std::fs::write(
        &csv,
        format!(
            "subject,type,item,at,quantity,context.weather,context.country\n\
             c-1,purchase,85123A,{},6,rain,United Kingdom\n\
             c-1,view,22423,{},,,France\n\
             c-2,search,,{},,clear,\n",
            days_ago(3),
            days_ago(2),
            days_ago(1)
        ),
    )
    .expect("write");
    let csv_path = csv.display().to_string();
    let refused = import(&store, &csv_path, &[]);
    assert_eq!(refused.code(), Some(2), "a search needs a query: {refused}");
    assert!(refused.stderr.contains("orders.csv:4: query"), "{refused}");
    std::fs::write(
        &csv,
        format!(
            "subject,type,item,at,quantity,query,context.weather,context.country\n\
             c-1,purchase,85123A,{},6,,rain,United Kingdom\n\
             c-1,view,22423,{},,,,France\n\
             c-2,search,,{},,\"lights, white\",clear,\n",
            days_ago(3),
            days_ago(2),
            days_ago(1)
        ),
    )
    .expect("write");
    let run = import(&store, &csv_path, &[]);
    assert_eq!(run.code(), Some(0), "{run}");
    assert_eq!(run.json()["events"], 3);
    let stored = export_all(&store);
    let purchase = stored
        .iter()
        .find(|line| line["type"] == "purchase")
        .expect("the purchase");
    assert_eq!(purchase["quantity"], 6);
    assert_eq!(
        purchase["context"],
        json!({"weather": "rain", "country": "United Kingdom"})
    );
    let view = stored
        .iter()
        .find(|line| line["type"] == "view")
        .expect("view");
    assert_eq!(view["context"], json!({"country": "France"}));
    let search = stored
        .iter()
        .find(|line| line["type"] == "search")
        .expect("search");
    assert_eq!(search["query"], "lights, white");

    let bad = store.file("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "subject,type,item,at,quantity\nc-1,purchase,85123A,{},lots\n",
            days_ago(1)
        ),
    )
    .expect("write");
    let refused = import(&store, &bad.display().to_string(), &["--format", "csv"]);
    assert_eq!(refused.code(), Some(2), "{refused}");
    assert!(refused.stderr.contains("bad.csv:2: quantity"), "{refused}");
    assert!(!refused.stderr.contains("lots"), "{refused}");
}
