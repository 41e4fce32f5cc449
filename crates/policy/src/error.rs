//! Errors of loading a policy: each names the file, the line and column, what is wrong
//! and what is expected, so a privacy officer can fix the file without reading code.
//!
//! Messages must never quote personal data: a policy holds none, and these errors only
//! quote the policy's own text.

use std::fmt;
use std::path::PathBuf;

/// What loading a policy can fail with.
pub type Result<T> = std::result::Result<T, Error>;

/// Where in a policy file something is: `origin:line:column`, both counted from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name, or whatever the caller named the text (`builtin:retail`).
    pub origin: String,
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` of `text`.
    pub fn of_offset(origin: &str, text: &str, offset: usize) -> Location {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = before[line_start..].chars().count() + 1;
        Location {
            origin: origin.to_owned(),
            line,
            column,
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// A policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read policy file `{}`: {source}", path.display())]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The text is not TOML at all.
    #[error("{at}: this is not valid TOML: {message}")]
    Syntax {
        /// Where the TOML parser stopped.
        at: Location,
        /// The parser's explanation.
        message: String,
    },
    /// The text is TOML but not shaped like a policy (unknown or missing field, wrong type).
    #[error(
        "{at}: this is not how a policy is written: {message} (docs/POLICY.md describes every field)"
    )]
    Structure {
        /// Where the unexpected value is.
        at: Location,
        /// What was unexpected and what was expected.
        message: String,
    },
    /// The policy is well-formed but says something that cannot be enforced.
    #[error("{}", render_problems(origin, problems))]
    Invalid {
        /// The file name.
        origin: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl Error {
    /// The problems of an [`Error::Invalid`], empty for the other kinds.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(origin: &str, problems: &[Problem]) -> String {
    let count = problems.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    let mut text = format!("policy `{origin}` has {count} {noun}:");
    for problem in problems {
        text.push_str("\n  - ");
        text.push_str(&problem.to_string());
    }
    text
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!("; did you mean `{name}`?"),
        None => String::new(),
    }
}

/// One thing a well-formed policy says that cannot be enforced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A required text is empty.
    #[error("{at}: `{field}` is empty; write {expected}")]
    EmptyText {
        /// Where.
        at: Location,
        /// The field, e.g. `controller.name`.
        field: String,
        /// What belongs there.
        expected: String,
    },
    /// A name is not a lower-case identifier.
    #[error(
        "{at}: {kind} name `{name}` is not allowed; expected lower-case letters, digits and `_`, starting with a letter, at most 64 characters"
    )]
    InvalidName {
        /// Where.
        at: Location,
        /// purpose, role, recipient, attribute or event type.
        kind: &'static str,
        /// The name as written.
        name: String,
    },
    /// Two entries of one kind share a name.
    #[error(
        "{at}: {kind} `{name}` is declared twice (first on line {first_line}); each {kind} needs its own name"
    )]
    DuplicateName {
        /// Where the second one is.
        at: Location,
        /// purpose, category, role or recipient.
        kind: &'static str,
        /// The shared name.
        name: String,
        /// Where the first one is.
        first_line: usize,
    },
    /// A name that is not a fideslang data category.
    #[error(
        "{at}: {used_by} names `{name}`, which is not a fideslang data category (docs/POLICY.md lists those discreet knows){}",
        did_you_mean(.suggestion)
    )]
    UnknownCategory {
        /// Where.
        at: Location,
        /// What refers to it, e.g. "attribute `email`".
        used_by: String,
        /// The name as written.
        name: String,
        /// The closest known name, if close.
        suggestion: Option<String>,
    },
    /// A fideslang category that no `[[categories]]` entry covers, so it has no retention.
    #[error(
        "{at}: {used_by} uses `{name}`, but no [[categories]] entry declares it or a parent of it, so it would have no retention period; add a [[categories]] entry for `{name}` (or a parent) with a `retention`"
    )]
    UndeclaredCategory {
        /// Where.
        at: Location,
        /// What refers to it.
        used_by: String,
        /// The category.
        name: String,
    },
    /// A name that is not a fideslang data use.
    #[error(
        "{at}: purpose `{purpose}` has data_use `{name}`, which is not a fideslang data use (docs/POLICY.md lists those discreet knows){}",
        did_you_mean(.suggestion)
    )]
    UnknownDataUse {
        /// Where.
        at: Location,
        /// The purpose.
        purpose: String,
        /// The name as written.
        name: String,
        /// The closest known name, if close.
        suggestion: Option<String>,
    },
    /// A name that is not a fideslang data subject.
    #[error(
        "{at}: purpose `{purpose}` names data subject `{name}`, which is not a fideslang data subject; expected one of {expected}{}",
        did_you_mean(.suggestion)
    )]
    UnknownDataSubject {
        /// Where.
        at: Location,
        /// The purpose.
        purpose: String,
        /// The name as written.
        name: String,
        /// The closest known name, if close.
        suggestion: Option<String>,
        /// The known names.
        expected: String,
    },
    /// A retention period outside the grammar.
    #[error("{at}: retention of category `{category}`: {reason}")]
    BadRetention {
        /// Where.
        at: Location,
        /// The category.
        category: String,
        /// What is wrong, naming the grammar.
        reason: String,
    },
    /// A purpose resting on consent does not tell the customer what they agree to.
    #[error(
        "{at}: purpose `{purpose}` rests on consent but has no `description`; write the sentence customers read before they agree, e.g. description = \"We use what you browse and buy to suggest products.\""
    )]
    ConsentWithoutDescription {
        /// Where the purpose is.
        at: Location,
        /// The purpose.
        purpose: String,
    },
    /// A purpose resting on legitimate interests does not state the interest.
    #[error(
        "{at}: purpose `{purpose}` rests on legitimate interests but has no `legitimate_interest`; state the interest pursued (GDPR Art. 13(1)(d)), e.g. legitimate_interest = \"Knowing which products sell, to plan stock\""
    )]
    LegitimateInterestUnstated {
        /// Where the purpose is.
        at: Location,
        /// The purpose.
        purpose: String,
    },
    /// A purpose that uses no data category.
    #[error(
        "{at}: purpose `{purpose}` lists no `categories`; name the data categories it may use, e.g. categories = [\"user.behavior.purchase_history\"]"
    )]
    PurposeWithoutCategories {
        /// Where the purpose is.
        at: Location,
        /// The purpose.
        purpose: String,
    },
    /// A purpose that names no data subject.
    #[error(
        "{at}: purpose `{purpose}` lists no `data_subjects`; name whose data it uses (GDPR Art. 30(1)(c)), e.g. data_subjects = [\"customer\"]"
    )]
    PurposeWithoutDataSubjects {
        /// Where the purpose is.
        at: Location,
        /// The purpose.
        purpose: String,
    },
    /// An attribute or event type stored under a category that no purpose may use.
    #[error(
        "{at}: {used_by} is stored as `{category}`, but no purpose lists `{category}` or a parent of it, so the data could never be used lawfully (purpose limitation, GDPR Art. 5(1)(b)); add it to a purpose's `categories`, or stop collecting it"
    )]
    CollectedWithoutPurpose {
        /// Where the mapping is.
        at: Location,
        /// The attribute or event type.
        used_by: String,
        /// Its category.
        category: String,
    },
    /// A role grants a purpose the policy does not declare.
    #[error(
        "{at}: role `{role}` grants purpose `{name}`, which no [[purposes]] entry declares; expected a declared purpose or \"*\"{}",
        did_you_mean(.suggestion)
    )]
    UnknownPurpose {
        /// Where.
        at: Location,
        /// The role.
        role: String,
        /// The name as written.
        name: String,
        /// The closest declared purpose, if close.
        suggestion: Option<String>,
    },
    /// A role grants an action discreet does not have.
    #[error(
        "{at}: role `{role}` grants action `{name}`, which discreet does not have; expected one of {expected} or \"*\"{}",
        did_you_mean(.suggestion)
    )]
    UnknownAction {
        /// Where.
        at: Location,
        /// The role.
        role: String,
        /// The name as written.
        name: String,
        /// The closest action name, if close.
        suggestion: Option<String>,
        /// The action names.
        expected: String,
    },
    /// Something names a recipient the policy does not declare.
    #[error(
        "{at}: {used_by} names recipient `{name}`, which no [[recipients]] entry declares{}",
        did_you_mean(.suggestion)
    )]
    UnknownRecipient {
        /// Where.
        at: Location,
        /// What refers to it.
        used_by: String,
        /// The name as written.
        name: String,
        /// The closest declared recipient, if close.
        suggestion: Option<String>,
    },
    /// A sale/sharing purpose that names nobody the data is sold or shared with.
    #[error(
        "{at}: purpose `{purpose}` is marked sale_or_sharing but names no `recipients`; list the [[recipients]] the data is sold to or shared with"
    )]
    SaleOrSharingWithoutRecipient {
        /// Where the purpose is.
        at: Location,
        /// The purpose.
        purpose: String,
    },
    /// An entry of `[recommendations] never` that is not an item id or id pattern.
    #[error(
        "{at}: `recommendations.never` entry `{pattern}` is not an item id or pattern; {reason}"
    )]
    BadItemPattern {
        /// Where.
        at: Location,
        /// The entry as written.
        pattern: String,
        /// What is wrong and what is expected.
        reason: &'static str,
    },
    /// `[recommendations] max_per_category` out of range.
    #[error(
        "{at}: `recommendations.max_per_category` is {value}; expected a whole number from 1 to {largest}"
    )]
    BadPerCategoryLimit {
        /// Where.
        at: Location,
        /// The value as written.
        value: i64,
        /// The largest allowed.
        largest: u32,
    },
}

impl Problem {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            Problem::EmptyText { at, .. }
            | Problem::InvalidName { at, .. }
            | Problem::DuplicateName { at, .. }
            | Problem::UnknownCategory { at, .. }
            | Problem::UndeclaredCategory { at, .. }
            | Problem::UnknownDataUse { at, .. }
            | Problem::UnknownDataSubject { at, .. }
            | Problem::BadRetention { at, .. }
            | Problem::ConsentWithoutDescription { at, .. }
            | Problem::LegitimateInterestUnstated { at, .. }
            | Problem::PurposeWithoutCategories { at, .. }
            | Problem::PurposeWithoutDataSubjects { at, .. }
            | Problem::CollectedWithoutPurpose { at, .. }
            | Problem::UnknownPurpose { at, .. }
            | Problem::UnknownAction { at, .. }
            | Problem::UnknownRecipient { at, .. }
            | Problem::SaleOrSharingWithoutRecipient { at, .. }
            | Problem::BadItemPattern { at, .. }
            | Problem::BadPerCategoryLimit { at, .. } => at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Location::of_offset("p.toml", text, 0).to_string(),
            "p.toml:1:1"
        );
        assert_eq!(
            Location::of_offset("p.toml", text, 6).to_string(),
            "p.toml:2:1"
        );
        // byte 10 is after "bé " (4 bytes, 3 characters)
        assert_eq!(
            Location::of_offset("p.toml", text, 10).to_string(),
            "p.toml:2:4"
        );
        // inside a multi-byte character, and past the end: clamped, never a panic
        assert_eq!(Location::of_offset("p.toml", text, 8).line, 2);
        assert_eq!(Location::of_offset("p.toml", text, 999).line, 3);
    }
}
