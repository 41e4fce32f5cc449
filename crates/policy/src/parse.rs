//! Reading `discreet.toml`: TOML syntax, then the shape of a policy (serde with
//! `deny_unknown_fields`), then a validation pass that collects every problem with its
//! line and column.
//!
//! It must never accept a policy the engine could not enforce (a category without a
//! retention, a role naming a purpose that does not exist), and never stop at the first
//! semantic problem: a privacy officer fixes the whole file in one go.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::action::Action;
use crate::error::{Error, Location, Problem, Result};
use crate::policy::{
    CategoryRule, Controller, Grant, LegalBasis, Policy, Purpose, Recipient, RecipientKind, Role,
    Transfer,
};
use crate::retention::Retention;
use crate::taxonomy::{self, covers};

/// Marks "everything" in a role's grant lists.
const WILDCARD: &str = "*";

type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Text,
    #[serde(default)]
    security_measures: Vec<Text>,
    controller: RawController,
    categories: Vec<RawCategory>,
    purposes: Vec<RawPurpose>,
    #[serde(default)]
    attributes: BTreeMap<Text, Text>,
    #[serde(default)]
    event_types: BTreeMap<Text, Text>,
    #[serde(default)]
    roles: Vec<RawRole>,
    #[serde(default)]
    recipients: Vec<RawRecipient>,
    #[serde(default)]
    transfers: Vec<RawTransfer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    name: Text,
    contact: Text,
    address: Option<Text>,
    data_protection_officer: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    name: Text,
    retention: Text,
    retention_reason: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    name: Text,
    data_use: Text,
    legal_basis: LegalBasis,
    description: Option<Text>,
    legitimate_interest: Option<Text>,
    categories: Vec<Text>,
    data_subjects: Vec<Text>,
    #[serde(default)]
    recipients: Vec<Text>,
    #[serde(default)]
    sale_or_sharing: bool,
    #[serde(default)]
    aggregated_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Text,
    description: Text,
    actions: Vec<Text>,
    purposes: Vec<Text>,
    categories: Vec<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipient {
    name: Text,
    kind: RecipientKind,
    description: Text,
    location: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    recipient: Text,
    country: Text,
    safeguard: Text,
}

/// Parses and validates; the fingerprint is left empty for the caller to fill.
pub(crate) fn parse_policy(text: &str, origin: &str) -> Result<Policy> {
    // Syntax first, on its own: a TOML mistake is reported as such, not as a
    // confusing "missing field" further on.
    if let Err(error) = toml::from_str::<toml::Table>(text) {
        return Err(Error::Syntax {
            at: location_of_error(origin, text, error.span()),
            message: error.message().trim_end().to_owned(),
        });
    }
    let raw: RawPolicy = toml::from_str(text).map_err(|error| Error::Structure {
        at: location_of_error(origin, text, error.span()),
        message: error.message().trim_end().to_owned(),
    })?;
    let mut validator = Validator {
        origin,
        text,
        problems: Vec::new(),
    };
    let policy = validator.validate(raw);
    if validator.problems.is_empty() {
        Ok(policy)
    } else {
        let mut problems = validator.problems;
        problems.sort_by_key(|problem| (problem.location().line, problem.location().column));
        Err(Error::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }
}

fn location_of_error(origin: &str, text: &str, span: Option<Range<usize>>) -> Location {
    Location::of_offset(origin, text, span.map_or(0, |span| span.start))
}

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

struct Validator<'a> {
    origin: &'a str,
    text: &'a str,
    problems: Vec<Problem>,
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

    fn validate(&mut self, raw: RawPolicy) -> Policy {
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
        let recipient_names: Vec<&str> = raw
            .recipients
            .iter()
            .map(|recipient| recipient.name.get_ref().as_str())
            .collect();
        let transfers = self.validate_transfers(&raw.transfers, &recipient_names);
        let categories = self.validate_categories(&raw.categories);
        // Coverage is checked against every declared name, even one whose retention is
        // wrong: that mistake is reported once, not again at every use.
        let declared: Vec<&str> = raw
            .categories
            .iter()
            .map(|category| category.name.get_ref().as_str())
            .collect();
        let purposes = self.validate_purposes(&raw.purposes, &declared, &recipient_names);
        let attributes =
            self.validate_category_map(&raw.attributes, "attribute", &declared, &purposes);
        let event_types =
            self.validate_category_map(&raw.event_types, "event type", &declared, &purposes);
        let purpose_names: Vec<&str> = raw
            .purposes
            .iter()
            .map(|purpose| purpose.name.get_ref().as_str())
            .collect();
        let roles = self.validate_roles(&raw.roles, &purpose_names);
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
        }
    }

    fn validate_controller(&mut self, raw: &RawController) -> Controller {
        Controller {
            name: self.require_text(
                &raw.name,
                "controller.name",
                "the legal name of the organisation responsible",
            ),
            contact: self.require_text(
                &raw.contact,
                "controller.contact",
                "how to reach the controller about privacy, e.g. \"privacy@example.com\"",
            ),
            address: self.optional_text(raw.address.as_ref()),
            data_protection_officer: self.optional_text(raw.data_protection_officer.as_ref()),
        }
    }

    fn validate_recipients(&mut self, raw: &[RawRecipient]) -> Vec<Recipient> {
        self.check_unique(raw.iter().map(|recipient| &recipient.name), "recipient");
        raw.iter()
            .map(|recipient| {
                self.check_name(&recipient.name, "recipient");
                Recipient {
                    name: recipient.name.get_ref().clone(),
                    kind: recipient.kind,
                    description: self.require_text(
                        &recipient.description,
                        "recipients.description",
                        "who the recipient is and what they receive",
                    ),
                    location: self.optional_text(recipient.location.as_ref()),
                }
            })
            .collect()
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

    fn validate_transfers(
        &mut self,
        raw: &[RawTransfer],
        recipient_names: &[&str],
    ) -> Vec<Transfer> {
        raw.iter()
            .map(|transfer| {
                self.check_recipient(&transfer.recipient, "a [[transfers]] entry", recipient_names);
                Transfer {
                    recipient: transfer.recipient.get_ref().clone(),
                    country: self.require_text(&transfer.country, "transfers.country", "the third country the data goes to"),
                    safeguard: self.require_text(
                        &transfer.safeguard,
                        "transfers.safeguard",
                        "what makes the transfer lawful, e.g. \"EU standard contractual clauses (2021/914)\"",
                    ),
                }
            })
            .collect()
    }

    fn validate_categories(&mut self, raw: &[RawCategory]) -> Vec<CategoryRule> {
        self.check_unique(raw.iter().map(|category| &category.name), "category");
        let mut rules = Vec::new();
        for category in raw {
            let known = self.check_known_category(&category.name, "a [[categories]] entry");
            let retention = match Retention::parse(category.retention.get_ref()) {
                Ok(retention) => Some(retention),
                Err(reason) => {
                    self.problems.push(Problem::BadRetention {
                        at: self.at(&category.retention),
                        category: category.name.get_ref().clone(),
                        reason,
                    });
                    None
                }
            };
            if let (true, Some(retention)) = (known, retention) {
                rules.push(CategoryRule {
                    name: category.name.get_ref().clone(),
                    retention,
                    retention_reason: self.optional_text(category.retention_reason.as_ref()),
                });
            }
        }
        rules
    }

    fn validate_purposes(
        &mut self,
        raw: &[RawPurpose],
        declared: &[&str],
        recipient_names: &[&str],
    ) -> Vec<Purpose> {
        self.check_unique(raw.iter().map(|purpose| &purpose.name), "purpose");
        raw.iter()
            .map(|purpose| self.validate_purpose(purpose, declared, recipient_names))
            .collect()
    }

    fn validate_purpose(
        &mut self,
        raw: &RawPurpose,
        declared: &[&str],
        recipient_names: &[&str],
    ) -> Purpose {
        self.check_name(&raw.name, "purpose");
        let name = raw.name.get_ref().clone();
        let used_by = format!("purpose `{name}`");

        let data_use = raw.data_use.get_ref();
        if taxonomy::data_use(data_use).is_none() {
            self.problems.push(Problem::UnknownDataUse {
                at: self.at(&raw.data_use),
                purpose: name.clone(),
                name: data_use.clone(),
                suggestion: taxonomy::suggest(
                    data_use,
                    taxonomy::DATA_USES.iter().map(|entry| entry.name),
                ),
            });
        }

        let description = self.optional_text(raw.description.as_ref());
        if raw.legal_basis == LegalBasis::Consent && description.is_none() {
            self.problems.push(Problem::ConsentWithoutDescription {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }
        let legitimate_interest = self.optional_text(raw.legitimate_interest.as_ref());
        if raw.legal_basis == LegalBasis::LegitimateInterests && legitimate_interest.is_none() {
            self.problems.push(Problem::LegitimateInterestUnstated {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }

        if raw.categories.is_empty() {
            self.problems.push(Problem::PurposeWithoutCategories {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }
        for category in &raw.categories {
            // A purpose may name a parent (`user.behavior`): it then uses the declared
            // children. It must overlap some declared category, or it names data the
            // policy keeps no rule for.
            if self.check_known_category(category, &used_by)
                && !declared.iter().any(|name| {
                    covers(name, category.get_ref()) || covers(category.get_ref(), name)
                })
            {
                self.problems.push(Problem::UndeclaredCategory {
                    at: self.at(category),
                    used_by: used_by.clone(),
                    name: category.get_ref().clone(),
                });
            }
        }

        if raw.data_subjects.is_empty() {
            self.problems.push(Problem::PurposeWithoutDataSubjects {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }
        let subject_names = taxonomy::DATA_SUBJECTS.iter().map(|entry| entry.name);
        for subject in &raw.data_subjects {
            if taxonomy::data_subject(subject.get_ref()).is_none() {
                self.problems.push(Problem::UnknownDataSubject {
                    at: self.at(subject),
                    purpose: name.clone(),
                    name: subject.get_ref().clone(),
                    suggestion: taxonomy::suggest(subject.get_ref(), subject_names.clone()),
                    expected: quoted_list(subject_names.clone()),
                });
            }
        }

        for recipient in &raw.recipients {
            self.check_recipient(recipient, &used_by, recipient_names);
        }
        if raw.sale_or_sharing && raw.recipients.is_empty() {
            self.problems.push(Problem::SaleOrSharingWithoutRecipient {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }

        Purpose {
            name,
            data_use: data_use.clone(),
            legal_basis: raw.legal_basis,
            description,
            legitimate_interest,
            categories: texts(&raw.categories),
            data_subjects: texts(&raw.data_subjects),
            recipients: texts(&raw.recipients),
            sale_or_sharing: raw.sale_or_sharing,
            aggregated_only: raw.aggregated_only,
        }
    }

    /// Attributes and event types: each name maps to a category that a declared category
    /// covers, since stored data needs a retention period.
    fn validate_category_map(
        &mut self,
        raw: &BTreeMap<Text, Text>,
        kind: &'static str,
        declared: &[&str],
        purposes: &[Purpose],
    ) -> BTreeMap<String, String> {
        // Check in file order so problems come out in the order the author reads them.
        let mut entries: Vec<(&Text, &Text)> = raw.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, category) in entries {
            self.check_name(name, kind);
            let used_by = format!("{kind} `{}`", name.get_ref());
            if !self.check_known_category(category, &used_by) {
                continue;
            }
            if !declared.iter().any(|name| covers(name, category.get_ref())) {
                self.problems.push(Problem::UndeclaredCategory {
                    at: self.at(category),
                    used_by,
                    name: category.get_ref().clone(),
                });
            } else if !purposes
                .iter()
                .any(|purpose| purpose.uses_category(category.get_ref()))
            {
                self.problems.push(Problem::CollectedWithoutPurpose {
                    at: self.at(category),
                    used_by,
                    category: category.get_ref().clone(),
                });
            }
        }
        raw.iter()
            .map(|(name, category)| (name.get_ref().clone(), category.get_ref().clone()))
            .collect()
    }

    fn validate_roles(&mut self, raw: &[RawRole], purpose_names: &[&str]) -> Vec<Role> {
        self.check_unique(raw.iter().map(|role| &role.name), "role");
        raw.iter()
            .map(|role| self.validate_role(role, purpose_names))
            .collect()
    }

    fn validate_role(&mut self, raw: &RawRole, purpose_names: &[&str]) -> Role {
        self.check_name(&raw.name, "role");
        let role_name = raw.name.get_ref().clone();
        let used_by = format!("role `{role_name}`");

        let actions = grant(&raw.actions, |spanned| {
            let parsed = spanned.get_ref().parse::<Action>().ok();
            if parsed.is_none() {
                let action_names = Action::ALL.iter().map(|action| action.as_str());
                self.problems.push(Problem::UnknownAction {
                    at: self.at(spanned),
                    role: role_name.clone(),
                    name: spanned.get_ref().clone(),
                    suggestion: taxonomy::suggest(spanned.get_ref(), action_names.clone()),
                    expected: quoted_list(action_names),
                });
            }
            parsed
        });
        let purposes = grant(&raw.purposes, |spanned| {
            let name = spanned.get_ref();
            if purpose_names.contains(&name.as_str()) {
                Some(name.clone())
            } else {
                self.problems.push(Problem::UnknownPurpose {
                    at: self.at(spanned),
                    role: role_name.clone(),
                    name: name.clone(),
                    suggestion: taxonomy::suggest(name, purpose_names.iter().copied()),
                });
                None
            }
        });
        let categories = grant(&raw.categories, |spanned| {
            self.check_known_category(spanned, &used_by)
                .then(|| spanned.get_ref().clone())
        });
        Role {
            name: role_name.clone(),
            description: self.require_text(
                &raw.description,
                "roles.description",
                "who holds keys of this role",
            ),
            actions,
            purposes,
            categories,
        }
    }
}

/// A grant list: `"*"` anywhere grants everything; otherwise each entry is checked.
fn grant<T>(raw: &[Text], mut check: impl FnMut(&Text) -> Option<T>) -> Grant<T> {
    if raw.iter().any(|entry| entry.get_ref() == WILDCARD) {
        return Grant::All;
    }
    Grant::Only(raw.iter().filter_map(&mut check).collect())
}

fn texts(raw: &[Text]) -> Vec<String> {
    raw.iter().map(|text| text.get_ref().clone()).collect()
}

pub(crate) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
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
