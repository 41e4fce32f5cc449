//! The command line alone on a fresh folder: exit codes say what happened.

use std::time::Duration;

use crate::support::{Store, run_cli, run_on};

const WITHIN: Duration = Duration::from_secs(120);

#[test]
fn exit_codes_mean_something() {
    let store = Store::new();
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&store, &args, WITHIN)
    };

    let bad_role = run_on(
        &store,
        &["keys", "create", "--role", "nope", "--json"],
        WITHIN,
    );
    assert_eq!(bad_role.code(), Some(2), "unknown role: {bad_role}");
    // The error says which value is wrong and what is expected; it does not repeat an
    // unknown name (the engine's errors never echo one, whoever the caller is).
    assert!(
        bad_role
            .stderr
            .contains("role: is not a role of the policy; known: admin"),
        "the error names the flag and the known roles: {bad_role}"
    );
    assert!(bad_role.stdout.is_empty(), "{bad_role}");

    let created = run_on(
        &store,
        &["keys", "create", "--role", "privacy", "--json"],
        WITHIN,
    );
    assert_eq!(created.code(), Some(0), "{created}");
    assert_eq!(created.json()["role"], "privacy", "{created}");

    let forget = run_on(&store, &["forget", "c-404", "--json"], WITHIN);
    assert_eq!(
        forget.code(),
        Some(3),
        "forget of an unknown subject: {forget}"
    );
    let export = run_on(&store, &["export", "c-404"], WITHIN);
    assert_eq!(
        export.code(),
        Some(3),
        "export of an unknown subject: {export}"
    );

    let audit = run_on(&store, &["audit", "verify", "--json"], WITHIN);
    assert_eq!(audit.code(), Some(0), "{audit}");
    assert_eq!(audit.json()["ok"], true, "{audit}");

    let usage = run(vec!["keys".into(), "create".into()]);
    assert_eq!(
        usage.code(),
        Some(2),
        "a missing required flag is a usage error: {usage}"
    );

    let kek_inside = run(vec![
        "audit".into(),
        "verify".into(),
        "--data-dir".into(),
        store.data_dir.display().to_string(),
        "--kek-file".into(),
        store.data_dir.join("inside.kek").display().to_string(),
    ]);
    assert_eq!(
        kek_inside.code(),
        Some(2),
        "a KEK file inside the data folder is refused: {kek_inside}"
    );
}

/// Regression: a KEK file must never end up inside the data folder (a copy of the data would
/// carry its key). `kek rotate --new-kek-file DATA/...` once re-wrapped every key under a
/// KEK it wrote inside the folder, and a refused `--kek-file DATA/...` was still created.
#[test]
fn a_kek_file_is_never_written_inside_the_data_folder() {
    let store = Store::new();
    let created = run_on(&store, &["keys", "create", "--role", "admin"], WITHIN);
    assert_eq!(created.code(), Some(0), "{created}");

    let inside = store.data_dir.join("inside.kek");
    let refused = run_cli(
        &store,
        &[
            "audit",
            "verify",
            "--data-dir",
            &store.data_dir.display().to_string(),
            "--kek-file",
            &inside.display().to_string(),
        ],
        WITHIN,
    );
    assert_eq!(refused.code(), Some(2), "{refused}");
    assert!(
        !inside.exists(),
        "a refused KEK file is not left in the data folder"
    );

    let new_kek = store.data_dir.join("new.kek");
    let rotate = run_on(
        &store,
        &[
            "kek",
            "rotate",
            "--new-kek-file",
            &new_kek.display().to_string(),
        ],
        WITHIN,
    );
    assert_eq!(
        rotate.code(),
        Some(2),
        "rotating to a KEK inside the data folder is refused: {rotate}"
    );
    assert!(!new_kek.exists(), "no KEK written inside the data folder");
    let audit = run_on(&store, &["audit", "verify", "--json"], WITHIN);
    assert_eq!(
        audit.code(),
        Some(0),
        "the old KEK still opens the folder: {audit}"
    );
}

/// Regression guard: the key store is kept beside the KEK file, never in the data folder,
/// and `backup` writes a data-only copy; an API key row inserted into the data file with
/// plain SQL makes `audit verify` exit 4 naming it, and a ledger tail cut there makes every
/// other command refuse to open the folder (exit 4) while `audit verify` still reports it.
#[test]
fn an_altered_data_file_is_reported_and_refused() {
    let store = Store::new();
    let created = run_on(
        &store,
        &["keys", "create", "--role", "admin", "--json"],
        WITHIN,
    );
    assert_eq!(created.code(), Some(0), "{created}");
    assert!(store.root.path().join("keystore.sqlite").exists());
    assert!(!store.data_dir.join("keystore.sqlite").exists());

    let backup = store.file("backup.sqlite");
    let backed_up = run_on(
        &store,
        &["backup", "--to", &backup.display().to_string()],
        WITHIN,
    );
    assert_eq!(backed_up.code(), Some(0), "{backed_up}");
    let tables: i64 = rusqlite::Connection::open(&backup)
        .expect("open backup")
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('data_keys', 'secrets')",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(tables, 0, "a data backup holds no key table");

    let data = rusqlite::Connection::open(store.data_dir.join("vault.sqlite")).expect("open");
    data.execute(
        "INSERT INTO api_keys(id, role, label, secret_hash, created_at) VALUES ('key_forged', 'admin', '', zeroblob(32), 1)",
        [],
    )
    .expect("insert a key");
    let audit = run_on(&store, &["audit", "verify", "--json"], WITHIN);
    assert_eq!(audit.code(), Some(4), "{audit}");
    assert_eq!(audit.json()["ok"], false, "{audit}");
    assert!(audit.stdout.contains("key_forged"), "{audit}");

    data.execute(
        "DELETE FROM ledger WHERE seq = (SELECT max(seq) FROM ledger)",
        [],
    )
    .expect("cut the tail");
    drop(data);
    let listed = run_on(&store, &["keys", "list"], WITHIN);
    assert_eq!(listed.code(), Some(4), "refused to open: {listed}");
    assert!(listed.stderr.contains("refusing to start"), "{listed}");
    let audit = run_on(&store, &["audit", "verify", "--json"], WITHIN);
    assert_eq!(audit.code(), Some(4), "{audit}");
    assert!(audit.json()["first_bad_entry"].is_i64(), "{audit}");
}

/// `receipt verify` accepts the receipt `forget --json` printed (with the key in the file,
/// or the key given), and exits 4 for an altered receipt or another key; a file without a
/// receipt is bad input (exit 2).
#[test]
fn receipt_verify_accepts_a_real_receipt_and_refuses_an_altered_one() {
    let store = Store::new();
    let retail = store.file("retail.csv");
    std::fs::write(
        &retail,
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
         536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-11-01 08:26:00,2.55,17850,United Kingdom\n\
         536366,22423,REGENCY CAKESTAND 3 TIER,1,2011-11-02 08:26:00,12.75,17850,United Kingdom\n",
    )
    .expect("write");
    let imported = run_on(
        &store,
        &["import", &retail.display().to_string(), "--shift-to-now"],
        WITHIN,
    );
    assert_eq!(imported.code(), Some(0), "{imported}");
    let forgot = run_on(&store, &["forget", "c-17850", "--json"], WITHIN);
    assert_eq!(forgot.code(), Some(0), "{forgot}");
    let file = store.file("receipt.json");
    std::fs::write(&file, &forgot.stdout).expect("write receipt");
    let path = file.display().to_string();

    let verified = run_cli(&store, &["receipt", "verify", &path], WITHIN);
    assert_eq!(verified.code(), Some(0), "{verified}");
    assert!(verified.stdout.starts_with("VALID"), "{verified}");
    assert!(verified.stdout.contains("2 events"), "{verified}");
    assert!(
        verified.stdout.contains("compare"),
        "the file's own key is named as such"
    );

    let document = forgot.json();
    let key = document["public_key"]["public_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let pinned = run_cli(
        &store,
        &["receipt", "verify", &path, "--public-key", &key],
        WITHIN,
    );
    assert_eq!(pinned.code(), Some(0), "{pinned}");

    let mut altered = document.clone();
    altered["receipt"]["erased"]["events"] = serde_json::json!(1);
    std::fs::write(&file, altered.to_string()).expect("write");
    let refused = run_cli(&store, &["receipt", "verify", &path], WITHIN);
    assert_eq!(refused.code(), Some(4), "{refused}");
    assert!(refused.stdout.starts_with("NOT VALID"), "{refused}");

    std::fs::write(&file, document.to_string()).expect("write");
    let other_key = "11".repeat(32);
    let wrong = run_cli(
        &store,
        &["receipt", "verify", &path, "--public-key", &other_key],
        WITHIN,
    );
    assert_eq!(wrong.code(), Some(4), "{wrong}");

    std::fs::write(&file, "{\"receipt\": {\"id\": 3}}").expect("write");
    let bad = run_cli(&store, &["receipt", "verify", &path], WITHIN);
    assert_eq!(bad.code(), Some(2), "{bad}");
}
