//! docs/POLICY.md stays true: its full example is a valid policy, and it names every
//! fideslang name and action the crate knows.

use std::path::PathBuf;

use discreet_policy::{Action, Policy, taxonomy};

fn policy_doc() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/POLICY.md");
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => panic!("cannot read docs/POLICY.md: {error}"),
    }
}

#[test]
fn the_full_example_is_a_valid_policy() {
    let doc = policy_doc();
    let Some(example) = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
    else {
        panic!("docs/POLICY.md has no ```toml example")
    };
    let policy = match Policy::from_toml_str(example, "docs/POLICY.md example") {
        Ok(policy) => policy,
        Err(error) => panic!("{error}"),
    };
    let shared: Vec<&str> = policy
        .purposes_sale_or_sharing()
        .iter()
        .map(|purpose| purpose.name.as_str())
        .collect();
    assert_eq!(shared, ["partner_advertising"]);
    // `user.contact` governs the email attribute: 3 years.
    assert_eq!(
        policy
            .retention_of("user.contact.email")
            .map(|duration| duration.as_secs() / 86_400),
        Some(3 * 365)
    );
    assert_eq!(policy.transfers().len(), 1);
}

#[test]
fn the_vocabulary_and_actions_are_all_documented() {
    let doc = policy_doc();
    let names = taxonomy::DATA_CATEGORIES
        .iter()
        .chain(taxonomy::DATA_USES)
        .chain(taxonomy::DATA_SUBJECTS)
        .map(|entry| entry.name)
        .chain(Action::ALL.iter().map(|action| action.as_str()));
    for name in names {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/POLICY.md does not list `{name}`"
        );
    }
}
