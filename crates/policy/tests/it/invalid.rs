//! Each kind of invalid policy file gives its own error, naming the file, the line and
//! column, what is wrong and what is expected. One snapshot per kind: the messages are
//! read by privacy officers, so a change of wording is a reviewed change.

use std::collections::HashSet;
use std::mem::discriminant;

use discreet_policy::{Error, Policy, Problem};

use crate::read_test_file;

fn error_of(name: &str) -> Error {
    let origin = format!("invalid/{name}.toml");
    match Policy::from_toml_str(&read_test_file(&origin), &origin) {
        Ok(_) => panic!("{origin} was accepted"),
        Err(error) => error,
    }
}

fn only_problem(error: &Error) -> &Problem {
    assert!(
        matches!(error, Error::Invalid { .. }),
        "not a validation error: {error}"
    );
    assert_eq!(error.problems().len(), 1, "{error}");
    &error.problems()[0]
}

#[test]
fn unreadable_file_names_the_path() {
    let error = match Policy::from_file("no/such/discreet.toml") {
        Ok(_) => panic!("a missing file was accepted"),
        Err(error) => error,
    };
    assert!(matches!(error, Error::Read { .. }), "{error}");
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn toml_syntax_error_names_line_and_column() {
    let error = error_of("syntax");
    assert!(matches!(error, Error::Syntax { .. }), "{error}");
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn unknown_field_is_a_structure_error_listing_the_fields() {
    let error = error_of("unknown_field");
    assert!(matches!(error, Error::Structure { .. }), "{error}");
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn missing_field_is_a_structure_error() {
    let error = error_of("missing_field");
    assert!(matches!(error, Error::Structure { .. }), "{error}");
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn wrong_type_is_a_structure_error() {
    let error = error_of("wrong_type");
    assert!(matches!(error, Error::Structure { .. }), "{error}");
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn unknown_legal_basis_lists_the_six_bases() {
    let error = error_of("unknown_legal_basis");
    assert!(matches!(error, Error::Structure { .. }), "{error}");
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn empty_required_text() {
    let error = error_of("empty_text");
    assert!(
        matches!(only_problem(&error), Problem::EmptyText { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn invalid_name() {
    let error = error_of("invalid_name");
    assert!(
        matches!(only_problem(&error), Problem::InvalidName { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn duplicate_name_points_at_both_declarations() {
    let error = error_of("duplicate_name");
    assert!(
        matches!(only_problem(&error), Problem::DuplicateName { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn unknown_category_suggests_the_closest_name() {
    let error = error_of("unknown_category");
    let problem = only_problem(&error);
    assert!(
        matches!(problem, Problem::UnknownCategory { suggestion: Some(name), .. } if name == "user.contact.email"),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn category_without_retention_is_undeclared() {
    let error = error_of("undeclared_category");
    assert!(
        matches!(only_problem(&error), Problem::UndeclaredCategory { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn unknown_data_use() {
    let error = error_of("unknown_data_use");
    assert!(
        matches!(only_problem(&error), Problem::UnknownDataUse { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn unknown_data_subject() {
    let error = error_of("unknown_data_subject");
    assert!(
        matches!(only_problem(&error), Problem::UnknownDataSubject { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn retention_outside_the_grammar() {
    let error = error_of("bad_retention");
    assert!(
        matches!(only_problem(&error), Problem::BadRetention { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn consent_purpose_without_description() {
    let error = error_of("consent_without_description");
    assert!(
        matches!(
            only_problem(&error),
            Problem::ConsentWithoutDescription { .. }
        ),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn legitimate_interest_unstated() {
    let error = error_of("legitimate_interest_unstated");
    assert!(
        matches!(
            only_problem(&error),
            Problem::LegitimateInterestUnstated { .. }
        ),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn purpose_without_categories() {
    let error = error_of("purpose_without_categories");
    assert!(
        matches!(
            only_problem(&error),
            Problem::PurposeWithoutCategories { .. }
        ),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn purpose_without_data_subjects() {
    let error = error_of("purpose_without_data_subjects");
    assert!(
        matches!(
            only_problem(&error),
            Problem::PurposeWithoutDataSubjects { .. }
        ),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn collected_without_purpose() {
    let error = error_of("collected_without_purpose");
    assert!(
        matches!(
            only_problem(&error),
            Problem::CollectedWithoutPurpose { .. }
        ),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn role_granting_an_unknown_purpose() {
    let error = error_of("unknown_purpose");
    assert!(
        matches!(only_problem(&error), Problem::UnknownPurpose { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn role_granting_an_unknown_action() {
    let error = error_of("unknown_action");
    assert!(
        matches!(only_problem(&error), Problem::UnknownAction { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn unknown_recipient() {
    let error = error_of("unknown_recipient");
    assert!(
        matches!(only_problem(&error), Problem::UnknownRecipient { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn sale_or_sharing_without_recipient() {
    let error = error_of("sale_or_sharing_without_recipient");
    assert!(
        matches!(
            only_problem(&error),
            Problem::SaleOrSharingWithoutRecipient { .. }
        ),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn several_problems_are_all_reported_in_file_order() {
    let error = error_of("several_problems");
    let lines: Vec<usize> = error
        .problems()
        .iter()
        .map(|problem| problem.location().line)
        .collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
    assert!(error.problems().len() >= 8, "{error}");
    insta::assert_snapshot!(error.to_string());
}

/// Guards "no panic reachable from input": every cut of a valid file, and the file with
/// each line removed, gives a result (an error, or a policy), never a panic.
#[test]
fn damaged_files_are_refused_without_panicking() {
    let text = discreet_policy::BUILTIN_RETAIL_TOML;
    let mut refused = 0;
    for cut in (0..text.len())
        .step_by(13)
        .filter(|cut| text.is_char_boundary(*cut))
    {
        if Policy::from_toml_str(&text[..cut], "cut.toml").is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0);
    let lines: Vec<&str> = text.lines().collect();
    for removed in 0..lines.len() {
        let mut damaged = lines.clone();
        damaged.remove(removed);
        let _ = Policy::from_toml_str(&damaged.join("\n"), "damaged.toml");
    }
}

#[test]
fn an_empty_never_entry_is_refused() {
    let error = error_of("bad_item_pattern");
    assert!(
        matches!(only_problem(&error), Problem::BadItemPattern { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn a_per_category_limit_of_zero_is_refused() {
    let error = error_of("bad_per_category_limit");
    assert!(
        matches!(only_problem(&error), Problem::BadPerCategoryLimit { .. }),
        "{error}"
    );
    insta::assert_snapshot!(error.to_string());
}

/// Guards that every kind of problem has an invalid file above: a new `Problem` variant
/// without a file (and so without a reviewed message) fails here.
#[test]
fn every_problem_kind_has_an_invalid_file() {
    let files = [
        "empty_text",
        "invalid_name",
        "duplicate_name",
        "unknown_category",
        "undeclared_category",
        "unknown_data_use",
        "unknown_data_subject",
        "bad_retention",
        "consent_without_description",
        "legitimate_interest_unstated",
        "purpose_without_categories",
        "purpose_without_data_subjects",
        "collected_without_purpose",
        "unknown_purpose",
        "unknown_action",
        "unknown_recipient",
        "sale_or_sharing_without_recipient",
        "bad_item_pattern",
        "bad_per_category_limit",
    ];
    let kinds: HashSet<_> = files
        .iter()
        .flat_map(|name| {
            error_of(name)
                .problems()
                .iter()
                .map(discriminant)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kinds.len(), files.len());
    // Exhaustive match: adding a variant breaks the build here until it is listed above.
    let _ = |problem: &Problem| match problem {
        Problem::EmptyText { .. }
        | Problem::InvalidName { .. }
        | Problem::DuplicateName { .. }
        | Problem::UnknownCategory { .. }
        | Problem::UndeclaredCategory { .. }
        | Problem::UnknownDataUse { .. }
        | Problem::UnknownDataSubject { .. }
        | Problem::BadRetention { .. }
        | Problem::ConsentWithoutDescription { .. }
        | Problem::LegitimateInterestUnstated { .. }
        | Problem::PurposeWithoutCategories { .. }
        | Problem::PurposeWithoutDataSubjects { .. }
        | Problem::CollectedWithoutPurpose { .. }
        | Problem::UnknownPurpose { .. }
        | Problem::UnknownAction { .. }
        | Problem::UnknownRecipient { .. }
        | Problem::SaleOrSharingWithoutRecipient { .. }
        | Problem::BadItemPattern { .. }
        | Problem::BadPerCategoryLimit { .. } => (),
    };
}
