//! The records of processing (GDPR Art. 30) of the built-in policy, as JSON and Markdown:
//! snapshots, since these are read by privacy officers and supervisory authorities.

use discreet_policy::{BUILT_IN_TECHNICAL_MEASURES, Policy};

use crate::test_file;

#[test]
fn builtin_records_as_json() {
    let records = Policy::builtin_retail().records_of_processing();
    insta::assert_json_snapshot!(records);
}

#[test]
fn builtin_records_as_markdown() {
    let records = Policy::builtin_retail().records_of_processing();
    insta::assert_snapshot!(records.to_markdown());
}

#[test]
fn records_cover_every_article_30_heading() {
    let policy = Policy::builtin_retail();
    let records = policy.records_of_processing();
    assert_eq!(records.policy_version, policy.version());
    assert_eq!(records.policy_fingerprint, policy.fingerprint());
    assert_eq!(records.processing_activities.len(), policy.purposes().len());
    assert_eq!(
        records.categories_of_personal_data.len(),
        policy.categories().len()
    );
    assert_eq!(records.categories_of_data_subjects[0].name, "customer");
    assert_eq!(
        records.security_measures.technical.len(),
        BUILT_IN_TECHNICAL_MEASURES.len()
    );
    assert!(!records.security_measures.organisational.is_empty());
    let analytics = records
        .processing_activities
        .iter()
        .find(|activity| activity.purpose == "analytics")
        .map(|activity| {
            activity
                .retention
                .iter()
                .map(|record| record.category.as_str())
                .collect::<Vec<_>>()
        });
    // A purpose naming a parent reports the retention of each declared child.
    assert_eq!(
        analytics,
        Some(vec![
            "user.behavior.browsing_history",
            "user.behavior.search_history",
            "user.behavior.purchase_history"
        ])
    );
    let markdown = records.to_markdown();
    for heading in [
        "## Controller",
        "## Processing activities",
        "## Categories of data subjects",
        "## Categories of personal data and retention",
        "## Recipients",
        "## Transfers to third countries",
        "## Security measures",
    ] {
        assert!(markdown.contains(heading), "{heading}");
    }
}

#[test]
fn records_list_transfers_and_sale_or_sharing() {
    let Ok(policy) = Policy::from_file(test_file("valid/minimal.toml")) else {
        panic!("minimal does not load")
    };
    let records = policy.records_of_processing();
    assert_eq!(records.transfers_to_third_countries.len(), 1);
    assert_eq!(records.recipients[0].purposes, ["partner_ads"]);
    let markdown = records.to_markdown();
    assert!(
        markdown.contains(
            "| `ad_partner` | United States | EU standard contractual clauses (2021/914) |"
        ),
        "{markdown}"
    );
    assert!(markdown.contains("| Sale or sharing | yes |"), "{markdown}");
    assert!(
        markdown.contains("- **Data protection officer:** none appointed"),
        "{markdown}"
    );
    assert!(
        markdown.contains("None declared in the policy."),
        "{markdown}"
    );
}
