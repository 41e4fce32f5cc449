//! The discreet policy: what personal data is kept, for which purpose, for how long, and
//! who may use it. Pure parsing and validation; no I/O beyond reading the file it is given.
//!
//! A policy is a TOML file (`discreet.toml`, described in docs/POLICY.md) using the
//! fideslang vocabulary. [`Policy::from_file`] and [`Policy::from_toml_str`] parse and
//! validate it, reporting every problem with its file, line and column;
//! [`Policy::builtin_retail`] is the policy that applies without a file. From a policy
//! the engine learns the purposes and their legal basis, the category and retention of
//! each attribute and event type, and what each API role may do; the records of
//! processing (GDPR Art. 30) are derived from it as JSON or Markdown.
//!
//! ```
//! use discreet_policy::{Action, Policy};
//!
//! let policy = Policy::builtin_retail();
//! let Some(storefront) = policy.role("storefront") else { panic!("built-in role") };
//! assert!(storefront.allows_action(Action::Recommendations));
//! assert!(!storefront.allows_action(Action::Forget));
//! let category = policy.category_of_event_type("purchase");
//! assert_eq!(category, Some("user.behavior.purchase_history"));
//! assert!(policy.retention_of("user.behavior.purchase_history").is_some());
//! ```
//!
//! This crate must never decide alone that a use of personal data is allowed (the engine
//! combines these answers with consent), and never holds personal data.

mod action;
mod error;
mod fingerprint;
mod parse;
mod policy;
mod records;
mod retention;
pub mod taxonomy;

pub use action::{Action, UnknownActionName};
pub use error::{Error, Location, Problem, Result};
pub use fingerprint::fnv1a_64;
pub use policy::{
    BUILTIN_RETAIL_ORIGIN, BUILTIN_RETAIL_TOML, CategoryRule, Controller, Grant, LegalBasis,
    MAX_ITEM_PATTERN_CHARS, MAX_PER_CATEGORY_LIMIT, Policy, Purpose, Recipient, RecipientKind,
    RecommendationRules, Role, Transfer, pattern_matches,
};
pub use records::{
    BUILT_IN_TECHNICAL_MEASURES, DataSubjectRecord, PersonalDataRecord, ProcessingActivity,
    RecipientRecord, RecordsOfProcessing, RetentionRecord, SecurityMeasures,
};
pub use retention::{RETENTION_GRAMMAR, Retention, RetentionUnit};
pub use taxonomy::covers;
