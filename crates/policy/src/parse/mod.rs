//! Reading `discreet.toml`: TOML syntax, then the shape of a policy (serde with
//! `deny_unknown_fields`), then a validation pass that collects every problem with its
//! line and column.
//!
//! It must never accept a policy the engine could not enforce (a category without a
//! retention, a role naming a purpose that does not exist), and never stop at the first
//! semantic problem: a privacy officer fixes the whole file in one go.
//!
//! [`parse_policy`] is the entry: it reports a syntax or structure error alone, reads the
//! file into the serde shape of [`shape`], hands that to the validation pass of
//! [`validate`], and returns the policy or every problem in file order.

mod shape;
mod validate;

use std::ops::Range;

use crate::error::{Error, Location, Result};
use crate::policy::Policy;

use shape::RawPolicy;
use validate::Validator;

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

/// Names as a list of code spans (`` `a`, `b` ``), for messages and the records.
pub(crate) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
