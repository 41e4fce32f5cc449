//! `discreet incident` on a real store: the impact of reads made at the command line and
//! through `serve`, the 72-hour deadline, the Markdown report, clear errors with their exit
//! codes, and a ledger altered in the data file reported as broken, never hidden.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Server, Store, now_seconds, rfc3339, run_on};

const WITHIN: Duration = Duration::from_secs(120);

/// Two customers: c-17850 with two purchases, c-13047 with one.
fn import_two_customers(store: &Store) {
    let retail = store.file("retail.csv");
    std::fs::write(
        &retail,
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
         536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-11-01 08:26:00,2.55,17850,United Kingdom\n\
         536366,22423,REGENCY CAKESTAND 3 TIER,1,2011-11-02 08:26:00,12.75,17850,United Kingdom\n\
         536367,22423,REGENCY CAKESTAND 3 TIER,1,2011-11-02 09:26:00,12.75,13047,United Kingdom\n",
    )
    .expect("write");
    let imported = run_on(
        store,
        &["import", &retail.display().to_string(), "--shift-to-now"],
        WITHIN,
    );
    assert_eq!(imported.code(), Some(0), "{imported}");
}

/// `(category, subjects, records)` of an incident's impact.
fn categories(incident: &Value) -> Vec<(String, u64, u64)> {
    incident["impact"]["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|category| {
            (
                category["category"].as_str().unwrap_or_default().to_owned(),
                category["subjects"].as_u64().unwrap_or_default(),
                category["records"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn an_incident_counts_the_reads_of_its_window_and_of_a_leaked_key() {
    let store = Store::new();
    import_two_customers(&store);
    let since = rfc3339(now_seconds() - 60);
    // The operator's export of one customer: read entries on the ledger.
    let export = run_on(&store, &["export", "c-17850"], WITHIN);
    assert_eq!(export.code(), Some(0), "{export}");

    let aware_seconds = now_seconds() - 3_600;
    let aware_at = rfc3339(aware_seconds);
    let created = run_on(
        &store,
        &[
            "incident",
            "create",
            "--kind",
            "window",
            "--since",
            &since,
            "--aware-at",
            &aware_at,
            "--description",
            "an export file was mailed to the wrong address",
            "--json",
        ],
        WITHIN,
    );
    assert_eq!(created.code(), Some(0), "{created}");
    let window = created.json();
    let window_id = window["id"].as_str().expect("id").to_owned();
    assert!(window_id.starts_with("inc_"), "{window}");
    assert_eq!(window["kind"], "window");
    assert_eq!(window["aware_at"], aware_at.as_str());
    assert_eq!(
        window["notify_by"],
        rfc3339(aware_seconds + 72 * 3_600).as_str(),
        "72 hours after aware_at: {window}"
    );
    assert_eq!(window["ledger"]["ok"], true, "{window}");
    assert_eq!(window["created_by"], "cli");
    assert_eq!(window["impact"]["subjects"], 1, "{window}");
    assert_eq!(window["impact"]["records"], 2, "{window}");
    assert!(
        categories(&window).contains(&("user.behavior.purchase_history".into(), 1, 2)),
        "{window}"
    );

    // The same question, for a person: the deadline, the counts, the ledger's state.
    let human = run_on(
        &store,
        &["incident", "create", "--kind", "window", "--since", &since],
        WITHIN,
    );
    assert_eq!(human.code(), Some(0), "{human}");
    for line in [
        "notify by: ",
        "subjects: 1\n",
        "records: 2\n",
        "  user.behavior.purchase_history: 1 subjects, 2 records\n",
        "ledger: ok (",
    ] {
        assert!(human.stdout.contains(line), "{line:?} in {human}");
    }

    // A storefront key that read two customers' consents through the server.
    let issued = run_on(
        &store,
        &["keys", "create", "--role", "storefront", "--json"],
        WITHIN,
    );
    assert_eq!(issued.code(), Some(0), "{issued}");
    let key = issued.json();
    let key_id = key["id"].as_str().expect("id").to_owned();
    let secret = key["secret"].as_str().expect("secret").to_owned();
    let mut server = Server::start(&store, "incident-reads", WITHIN);
    for subject in ["c-17850", "c-13047"] {
        let path = format!("/v1/subjects/{subject}/consents");
        server.ok("GET", &path, &secret, None);
    }
    assert!(server.terminate(WITHIN).success(), "{}", server.log());
    let leaked = run_on(
        &store,
        &[
            "incident",
            "create",
            "--kind",
            "key_compromised",
            "--key-id",
            &key_id,
            "--json",
        ],
        WITHIN,
    );
    assert_eq!(leaked.code(), Some(0), "{leaked}");
    let leaked = leaked.json();
    assert_eq!(leaked["impact"]["subjects"], 2, "{leaked}");
    assert_eq!(
        categories(&leaked),
        vec![("user.privacy_preferences".to_owned(), 2, 0)],
        "{leaked}"
    );
    assert_eq!(leaked["impact"]["purposes"][0], "consent_management");

    let listed = run_on(&store, &["incident", "list", "--json"], WITHIN);
    assert_eq!(listed.code(), Some(0), "{listed}");
    let listed = listed.json();
    let incidents = listed["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 3, "{listed}");
    assert_eq!(incidents[0]["id"], leaked["id"], "newest first: {listed}");
    assert_eq!(incidents[2]["id"], window_id.as_str());
    let human_list = run_on(&store, &["incident", "list"], WITHIN);
    assert_eq!(human_list.code(), Some(0), "{human_list}");
    assert_eq!(human_list.stdout.lines().count(), 3, "{human_list}");
    assert!(human_list.stdout.contains(&window_id), "{human_list}");

    let report = run_on(&store, &["incident", "report", &window_id], WITHIN);
    assert_eq!(report.code(), Some(0), "{report}");
    let markdown = &report.stdout;
    assert!(
        markdown.starts_with("# Personal data breach: draft notification (GDPR Art. 33)"),
        "{report}"
    );
    assert!(markdown.contains(&window_id), "{report}");
    assert!(
        markdown.contains(&format!(
            "Notify the supervisory authority by: {}",
            rfc3339(aware_seconds + 72 * 3_600)
        )),
        "{report}"
    );
    assert!(
        markdown.contains("| user.behavior.purchase_history | 1 | 2 |"),
        "{report}"
    );
    assert!(
        markdown.contains("> an export file was mailed to the wrong address"),
        "{report}"
    );
    assert!(
        !markdown.contains("c-17850"),
        "the report names no customer"
    );
}

#[test]
fn incident_errors_are_clear_and_exit_non_zero() {
    let store = Store::new();
    import_two_customers(&store);
    let since = rfc3339(now_seconds() - 60);
    let until = rfc3339(now_seconds() - 120);
    // (arguments, exit code, what standard error says)
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["incident", "create", "--kind", "key_compromised"],
            2,
            "error: --key-id is required for a key_compromised incident",
        ),
        (
            &[
                "incident",
                "create",
                "--kind",
                "key_compromised",
                "--key-id",
                "key_0000000000000000",
            ],
            3,
            "error: --key-id names no API key of this store",
        ),
        (
            &["incident", "create", "--kind", "window"],
            2,
            "error: --since is required for this kind of incident",
        ),
        (
            &[
                "incident",
                "create",
                "--kind",
                "window",
                "--since",
                "yesterday",
            ],
            2,
            "error: --since must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got `yesterday`",
        ),
        (
            &[
                "incident", "create", "--kind", "window", "--since", &since, "--until", &until,
            ],
            2,
            "error: --since must be before until",
        ),
        (
            &["incident", "report", "inc_0000000000000000"],
            3,
            "error: incident not found",
        ),
    ];
    for (args, code, message) in cases {
        let run = run_on(&store, args, WITHIN);
        assert_eq!(run.code(), Some(code), "{args:?}: {run}");
        assert!(run.stderr.contains(message), "{args:?}: {run}");
        assert!(run.stdout.is_empty(), "{args:?}: {run}");
    }
    let unknown_kind = run_on(
        &store,
        &["incident", "create", "--kind", "meteor", "--since", &since],
        WITHIN,
    );
    assert_eq!(unknown_kind.code(), Some(2), "{unknown_kind}");
    assert!(
        unknown_kind
            .stderr
            .contains("[possible values: key_compromised, window, data_copy]"),
        "{unknown_kind}"
    );
    let listed = run_on(&store, &["incident", "list"], WITHIN);
    assert_eq!(listed.stdout, "no incidents\n", "nothing stored: {listed}");
}

/// Regression guard: an entry of the ledger edited in the data file with plain SQL (the
/// chain no longer verifies, the data file still opens) must show in the incident — in
/// the human and the JSON output, the stored record and its report — and make the command
/// exit 4, rather than give figures that look verified.
#[test]
fn a_tampered_ledger_is_reported_by_the_incident_not_hidden() {
    let store = Store::new();
    import_two_customers(&store);
    let export = run_on(&store, &["export", "c-17850"], WITHIN);
    assert_eq!(export.code(), Some(0), "{export}");
    let data = rusqlite::Connection::open(store.data_dir.join("vault.sqlite")).expect("open");
    let changed = data
        .execute(
            "UPDATE ledger SET detail = detail || ' ' WHERE seq = (SELECT MIN(seq) FROM ledger WHERE detail IS NOT NULL)",
            [],
        )
        .expect("alter an entry");
    assert_eq!(changed, 1);
    drop(data);

    let since = rfc3339(now_seconds() - 3_600);
    let human = run_on(
        &store,
        &["incident", "create", "--kind", "window", "--since", &since],
        WITHIN,
    );
    assert_eq!(human.code(), Some(4), "{human}");
    assert!(
        human.stdout.contains("ledger: BROKEN (entry 1 was altered"),
        "{human}"
    );
    assert!(
        human.stdout.contains("subjects: 1\n"),
        "the figures are still given: {human}"
    );
    assert!(
        human.stderr.contains("the ledger did not verify"),
        "{human}"
    );

    let json = run_on(
        &store,
        &[
            "incident", "create", "--kind", "window", "--since", &since, "--json",
        ],
        WITHIN,
    );
    assert_eq!(json.code(), Some(4), "{json}");
    let incident = json.json();
    assert_eq!(incident["ledger"]["ok"], false, "{incident}");
    assert!(
        incident["ledger"]["problem"]
            .as_str()
            .is_some_and(|problem| problem.contains("entry 1")),
        "{incident}"
    );
    assert!(
        incident["report"]["nature"]
            .as_str()
            .is_some_and(|nature| nature.contains("WARNING: the ledger did not verify")),
        "{incident}"
    );
    let id = incident["id"].as_str().expect("id");

    let listed = run_on(&store, &["incident", "list"], WITHIN);
    assert_eq!(listed.code(), Some(0), "{listed}");
    assert!(
        listed
            .stdout
            .lines()
            .all(|line| line.ends_with("LEDGER BROKEN")),
        "{listed}"
    );
    let report = run_on(&store, &["incident", "report", id], WITHIN);
    assert_eq!(report.code(), Some(0), "{report}");
    assert!(report.stdout.contains("DID NOT VERIFY"), "{report}");

    // One stored incident edited in the data file: it is named, the other is still listed.
    let data = rusqlite::Connection::open(store.data_dir.join("vault.sqlite")).expect("open");
    let changed = data
        .execute(
            "UPDATE meta SET value = replace(value, 'subjects', 'subjectz') WHERE key = ?1",
            [format!("document:incident:{id}")],
        )
        .expect("alter an incident");
    assert_eq!(changed, 1);
    drop(data);
    let listed = run_on(&store, &["incident", "list"], WITHIN);
    assert_eq!(listed.code(), Some(0), "{listed}");
    assert_eq!(listed.stdout.lines().count(), 1, "{listed}");
    assert!(!listed.stdout.contains(id), "{listed}");
    assert!(
        listed
            .stderr
            .contains(&format!("incident {id} could not be read")),
        "{listed}"
    );
}
