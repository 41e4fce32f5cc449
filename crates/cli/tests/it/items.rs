//! `discreet items import` and `items show`, and the titles and prices `discreet import`
//! declares from a retail file: the real binary on a fresh folder.

use std::time::Duration;

use crate::support::{Store, run_on};

const WITHIN: Duration = Duration::from_secs(120);

#[test]
fn items_import_declares_a_file_and_items_show_prints_one() {
    let store = Store::new();
    let csv = store.file("items.csv");
    std::fs::write(
        &csv,
        "item,title,categories,price,available\n\
         85123A,WHITE HANGING HEART T-LIGHT HOLDER,home/lighting|gifts,2.55,true\n\
         22423,\"REGENCY CAKESTAND, 3 TIER\",,12.75,false\n",
    )
    .expect("write");
    let csv_path = csv.display().to_string();
    let imported = run_on(&store, &["items", "import", &csv_path], WITHIN);
    assert_eq!(imported.code(), Some(0), "{imported}");
    assert!(imported.stdout.contains("declared 2 items"), "{imported}");
    let shown = run_on(&store, &["items", "show", "22423"], WITHIN);
    assert_eq!(shown.code(), Some(0), "{shown}");
    let item = shown.json();
    assert_eq!(item["title"], "REGENCY CAKESTAND, 3 TIER");
    assert_eq!(item["price"], 12.75);
    assert_eq!(item["available"], false);
    let shown = run_on(&store, &["items", "show", "85123A"], WITHIN).json();
    assert_eq!(
        shown["categories"],
        serde_json::json!(["home/lighting", "gifts"])
    );

    let jsonl = store.file("more.jsonl");
    std::fs::write(
        &jsonl,
        "{\"item\": \"71053\", \"title\": \"WHITE METAL LANTERN\", \"price\": 3.39}\n",
    )
    .expect("write");
    let imported = run_on(
        &store,
        &["items", "import", &jsonl.display().to_string()],
        WITHIN,
    );
    assert_eq!(imported.code(), Some(0), "{imported}");
    assert_eq!(
        run_on(&store, &["items", "show", "71053"], WITHIN).json()["price"],
        3.39
    );

    let missing = run_on(&store, &["items", "show", "NOPE"], WITHIN);
    assert_eq!(missing.code(), Some(3), "{missing}");
}

#[test]
fn a_bad_record_stops_the_import_naming_its_line_and_nothing_is_stored() {
    let store = Store::new();
    let bad = store.file("bad.csv");
    std::fs::write(
        &bad,
        "item,title,price\n21730,GLASS STAR FROSTED T-LIGHT HOLDER,4.25\n22752,SET 7 BABUSHKA NESTING BOXES,cheap\n",
    )
    .expect("write");
    let refused = run_on(
        &store,
        &["items", "import", &bad.display().to_string()],
        WITHIN,
    );
    assert_eq!(refused.code(), Some(2), "{refused}");
    assert!(refused.stderr.contains("bad.csv:3: price"), "{refused}");
    assert!(
        !refused.stderr.contains("cheap"),
        "the value is not echoed: {refused}"
    );
    let missing = run_on(&store, &["items", "show", "21730"], WITHIN);
    assert_eq!(
        missing.code(),
        Some(3),
        "nothing of the file was stored: {missing}"
    );
}

#[test]
fn import_declares_the_most_frequent_title_and_the_median_price() {
    let store = Store::new();
    let retail = store.file("retail.csv");
    std::fs::write(
        &retail,
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
         536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-11-01 08:26:00,2.55,17850,United Kingdom\n\
         536366,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-11-02 08:26:00,2.95,13047,United Kingdom\n\
         536367,85123A,CREAM HANGING HEART T-LIGHT HOLDER,6,2011-11-03 08:26:00,3.25,13047,United Kingdom\n\
         536368,POST,POSTAGE,1,2011-11-03 08:26:00,18.00,13047,United Kingdom\n",
    )
    .expect("write");
    let imported = run_on(
        &store,
        &[
            "import",
            &retail.display().to_string(),
            "--shift-to-now",
            "--json",
        ],
        WITHIN,
    );
    assert_eq!(imported.code(), Some(0), "{imported}");
    let report = imported.json();
    assert_eq!(report["events"], 4, "postage is a sold line too: {report}");
    assert_eq!(report["items"], 2, "{report}");
    let heart = run_on(&store, &["items", "show", "85123A"], WITHIN).json();
    assert_eq!(heart["title"], "WHITE HANGING HEART T-LIGHT HOLDER");
    assert_eq!(heart["price"], 2.95);
    assert_eq!(heart["categories"], serde_json::json!([]));
}
