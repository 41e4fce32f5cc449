//! The validation pass: turns the serde shape of `discreet.toml` into a [`Policy`], and
//! collects every problem on the way with its file, line and column.
//!
//! The [`Validator`] lives here with the checks every section shares (required text,
//! names, uniqueness, known categories and recipients) and the pass over the whole file;
//! each section's rules are in their own room: [`parties`] (controller, recipients,
//! transfers), [`categories`] (retention rules, attributes and event types),
//! [`purposes`], [`roles`] and [`recommendations`] (business rules).
//!
//! A check must never return early on a problem: it records it and goes on, so that one
//! run reports the whole file.

mod categories;
mod parties;
mod purposes;
mod recommendations;
mod roles;

use std::collections::HashMap;

use crate::error::{Location, Problem};
use crate::policy::Policy;
use crate::taxonomy;

use super::shape::{RawPolicy, Text};

fn is_valid_name(name: &str) -> bool {
    let mut characters = name.chars();
    name.len() <= 64
        && characters
            .next()
            .is_some_and(|first| first.is_ascii_lowercase())
        && characters.all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
        })
}

pub(super) struct Validator<'a> {
    pub(super) origin: &'a str,
    pub(super) text: &'a str,
    pub(super) problems: Vec<Problem>,
}

impl Validator<'_> {
    fn at(&self, spanned: &Text) -> Location {
        Location::of_offset(self.origin, self.text, spanned.span().start)
    }

    fn line_of(&self, spanned: &Text) -> usize {
        self.at(spanned).line
    }

    fn require_text(&mut self, spanned: &Text, field: &str, expected: &str) -> String {
        let value = spanned.get_ref().trim();
        if value.is_empty() {
            self.problems.push(Problem::EmptyText {
                at: self.at(spanned),
                field: field.to_owned(),
                expected: expected.to_owned(),
            });
        }
        value.to_owned()
    }

    fn optional_text(&self, spanned: Option<&Text>) -> Option<String> {
        spanned
            .map(|text| text.get_ref().trim().to_owned())
            .filter(|text| !text.is_empty())
    }

    fn check_name(&mut self, spanned: &Text, kind: &'static str) {
        if !is_valid_name(spanned.get_ref()) {
            self.problems.push(Problem::InvalidName {
                at: self.at(spanned),
                kind,
                name: spanned.get_ref().clone(),
            });
        }
    }

    /// Reports every name seen before; returns nothing, the first declaration wins.
    fn check_unique<'n>(&mut self, names: impl IntoIterator<Item = &'n Text>, kind: &'static str) {
        let mut first_lines: HashMap<&str, usize> = HashMap::new();
        for name in names {
            match first_lines.get(name.get_ref().as_str()) {
                Some(first_line) => self.problems.push(Problem::DuplicateName {
                    at: self.at(name),
                    kind,
                    name: name.get_ref().clone(),
                    first_line: *first_line,
                }),
                None => {
                    first_lines.insert(name.get_ref(), self.line_of(name));
                }
            }
        }
    }

    /// Checks that `spanned` is a fideslang category; returns whether it is.
    fn check_known_category(&mut self, spanned: &Text, used_by: &str) -> bool {
        let name = spanned.get_ref();
        if taxonomy::data_category(name).is_some() {
            return true;
        }
        self.problems.push(Problem::UnknownCategory {
            at: self.at(spanned),
            used_by: used_by.to_owned(),
            name: name.clone(),
            suggestion: taxonomy::suggest(
                name,
                taxonomy::DATA_CATEGORIES.iter().map(|entry| entry.name),
            ),
        });
        false
    }

    fn check_recipient(&mut self, spanned: &Text, used_by: &str, recipient_names: &[&str]) {
        let name = spanned.get_ref();
        if !recipient_names.contains(&name.as_str()) {
            self.problems.push(Problem::UnknownRecipient {
                at: self.at(spanned),
                used_by: used_by.to_owned(),
                name: name.clone(),
                suggestion: taxonomy::suggest(name, recipient_names.iter().copied()),
            });
        }
    }

    pub(super) fn validate(&mut self, raw: RawPolicy) -> Policy {
        let version = self.require_text(
            &raw.version,
            "version",
            "the version of this policy, e.g. version = \"2026-11-01\"",
        );
        let controller = self.validate_controller(&raw.controller);
        let security_measures = raw
            .security_measures
            .iter()
            .map(|measure| {
                self.require_text(
                    measure,
                    "security_measures",
                    "a measure, or remove the empty entry",
                )
            })
            .filter(|measure| !measure.is_empty())
            .collect();
        let recipients = self.validate_recipients(&raw.recipients);
        let recipient_names =
            declared_names(raw.recipients.iter().map(|recipient| &recipient.name));
        let transfers = self.validate_transfers(&raw.transfers, &recipient_names);
        let categories = self.validate_categories(&raw.categories);
        // Coverage is checked against every declared name, even one whose retention is
        // wrong: that mistake is reported once, not again at every use.
        let declared = declared_names(raw.categories.iter().map(|category| &category.name));
        let purposes = self.validate_purposes(&raw.purposes, &declared, &recipient_names);
        let attributes =
            self.validate_category_map(&raw.attributes, "attribute", &declared, &purposes);
        let event_types =
            self.validate_category_map(&raw.event_types, "event type", &declared, &purposes);
        let purpose_names = declared_names(raw.purposes.iter().map(|purpose| &purpose.name));
        let roles = self.validate_roles(&raw.roles, &purpose_names);
        let recommendations = self.validate_recommendations(raw.recommendations.as_ref());
        Policy {
            origin: self.origin.to_owned(),
            version,
            fingerprint: String::new(),
            controller,
            categories,
            purposes,
            attributes,
            event_types,
            roles,
            recipients,
            transfers,
            security_measures,
            recommendations,
        }
    }
}

/// The names of declared entries, in file order, to check later references against.
fn declared_names<'r>(names: impl IntoIterator<Item = &'r Text>) -> Vec<&'r str> {
    names
        .into_iter()
        .map(|name| name.get_ref().as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_identifiers() {
        assert!(is_valid_name("order_fulfilment"));
        assert!(is_valid_name("v2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("2fa"));
        assert!(!is_valid_name("Marketing"));
        assert!(!is_valid_name("first-name"));
        assert!(!is_valid_name(&"a".repeat(65)));
    }
}
