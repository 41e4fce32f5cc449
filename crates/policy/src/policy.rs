//! The validated policy: what the engine asks before every use of personal data (which
//! purposes exist, what they may use, how long each category is kept, what each role may
//! do).
//!
//! A `Policy` only exists once validation passed, so its lookups never have to handle an
//! inconsistent policy. It must never decide alone whether a use is allowed: it answers
//! questions, the engine combines them with consent.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::error::{Error, Result};
use crate::fingerprint::fingerprint_of;
use crate::records::RecordsOfProcessing;
use crate::retention::Retention;
use crate::taxonomy::covers;

/// The text of the built-in retail policy, as shipped.
pub const BUILTIN_RETAIL_TOML: &str = include_str!("builtin_retail.toml");

/// The origin that errors and records name for the built-in retail policy.
pub const BUILTIN_RETAIL_ORIGIN: &str = "builtin:retail";

/// The lawful basis of a purpose (GDPR Art. 6(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// Art. 6(1)(a): the subject agreed, and may withdraw at any time.
    Consent,
    /// Art. 6(1)(b): needed to perform a contract with the subject.
    Contract,
    /// Art. 6(1)(c): needed to meet a legal obligation.
    LegalObligation,
    /// Art. 6(1)(d): needed to protect someone's life.
    VitalInterests,
    /// Art. 6(1)(e): a task in the public interest.
    PublicTask,
    /// Art. 6(1)(f): the controller's legitimate interests, balanced against the subject's.
    LegitimateInterests,
}

impl LegalBasis {
    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterests => "vital_interests",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterests => "legitimate_interests",
        }
    }

    /// The article of the GDPR this basis is, e.g. `GDPR Art. 6(1)(a)`.
    pub fn article(self) -> &'static str {
        match self {
            LegalBasis::Consent => "GDPR Art. 6(1)(a)",
            LegalBasis::Contract => "GDPR Art. 6(1)(b)",
            LegalBasis::LegalObligation => "GDPR Art. 6(1)(c)",
            LegalBasis::VitalInterests => "GDPR Art. 6(1)(d)",
            LegalBasis::PublicTask => "GDPR Art. 6(1)(e)",
            LegalBasis::LegitimateInterests => "GDPR Art. 6(1)(f)",
        }
    }
}

impl fmt::Display for LegalBasis {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Who a recipient is to the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    /// Processes data on the controller's behalf, under contract (Art. 28).
    Processor,
    /// Decides its own purposes for the data it receives.
    Controller,
    /// Decides purposes together with the controller (Art. 26).
    JointController,
    /// A public authority receiving data by law.
    PublicAuthority,
}

impl RecipientKind {
    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::Processor => "processor",
            RecipientKind::Controller => "controller",
            RecipientKind::JointController => "joint_controller",
            RecipientKind::PublicAuthority => "public_authority",
        }
    }
}

/// The organisation responsible for the processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Controller {
    /// Legal name.
    pub name: String,
    /// How to reach the controller about privacy (email or postal address).
    pub contact: String,
    /// Postal address, when given.
    pub address: Option<String>,
    /// How to reach the data protection officer, when one is appointed.
    pub data_protection_officer: Option<String>,
}

/// Someone personal data is disclosed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// Name used in the policy, e.g. `email_delivery`.
    pub name: String,
    /// Processor, controller, ...
    pub kind: RecipientKind,
    /// Who they are and what they receive.
    pub description: String,
    /// Where they process the data, when given.
    pub location: Option<String>,
}

/// A transfer of personal data to a country outside the EEA (GDPR Art. 30(1)(e)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// The recipient receiving the data.
    pub recipient: String,
    /// The third country.
    pub country: String,
    /// The safeguard that makes it lawful (adequacy decision, standard contractual clauses).
    pub safeguard: String,
}

/// A declared data category with its retention period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryRule {
    /// The fideslang category; it also covers its children.
    pub name: String,
    /// How long data of this category is kept after it was recorded.
    pub retention: Retention,
    /// Why this period, for the records of processing.
    pub retention_reason: Option<String>,
}

/// A purpose personal data may be used for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purpose {
    /// Name used in the API, e.g. `personalization`.
    pub name: String,
    /// The fideslang data use, e.g. `personalize.content.profiling`.
    pub data_use: String,
    /// The lawful basis.
    pub legal_basis: LegalBasis,
    /// What customers read about it (required when the basis is consent).
    pub description: Option<String>,
    /// The interest pursued, when the basis is legitimate interests.
    pub legitimate_interest: Option<String>,
    /// The data categories it may use (each covers its children).
    pub categories: Vec<String>,
    /// Whose data (fideslang data subjects).
    pub data_subjects: Vec<String>,
    /// Who receives data for this purpose.
    pub recipients: Vec<String>,
    /// Whether this is a sale or sharing of data (CCPA/CPRA): `Sec-GPC: 1` withdraws it.
    pub sale_or_sharing: bool,
    /// Whether only aggregated, non-personal results may leave this purpose.
    pub aggregated_only: bool,
}

impl Purpose {
    /// Whether this purpose may use data of `category` (a listed category covers it).
    pub fn uses_category(&self, category: &str) -> bool {
        self.categories
            .iter()
            .any(|granted| covers(granted, category))
    }

    /// Whether personal data may be used for it only after the subject agreed.
    pub fn requires_consent(&self) -> bool {
        self.legal_basis == LegalBasis::Consent
    }
}

/// A grant list of a role: everything (`"*"`), or the listed names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant<T> {
    /// `"*"`: every present and future name.
    All,
    /// Only these.
    Only(Vec<T>),
}

impl<T: Serialize> Serialize for Grant<T> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Grant::All => ["*"].serialize(serializer),
            Grant::Only(names) => names.serialize(serializer),
        }
    }
}

/// What the holder of an API key with this role may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    /// Name used when creating keys, e.g. `storefront`.
    pub name: String,
    /// Who this role is for.
    pub description: String,
    /// The API actions it may call.
    pub actions: Grant<Action>,
    /// The purposes it may name.
    pub purposes: Grant<String>,
    /// The data categories it may read or write (each covers its children).
    pub categories: Grant<String>,
}

impl Role {
    /// Whether this role may call `action`.
    pub fn allows_action(&self, action: Action) -> bool {
        match &self.actions {
            Grant::All => true,
            Grant::Only(actions) => actions.contains(&action),
        }
    }

    /// Whether this role may name `purpose`.
    pub fn allows_purpose(&self, purpose: &str) -> bool {
        match &self.purposes {
            Grant::All => true,
            Grant::Only(purposes) => purposes.iter().any(|granted| granted == purpose),
        }
    }

    /// Whether this role may touch data of `category`: a granted parent covers its children.
    pub fn allows_category(&self, category: &str) -> bool {
        match &self.categories {
            Grant::All => true,
            Grant::Only(categories) => categories.iter().any(|granted| covers(granted, category)),
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    #[serde(skip)]
    pub(crate) origin: String,
    pub(crate) version: String,
    pub(crate) fingerprint: String,
    pub(crate) controller: Controller,
    pub(crate) categories: Vec<CategoryRule>,
    pub(crate) purposes: Vec<Purpose>,
    pub(crate) attributes: BTreeMap<String, String>,
    pub(crate) event_types: BTreeMap<String, String>,
    pub(crate) roles: Vec<Role>,
    pub(crate) recipients: Vec<Recipient>,
    pub(crate) transfers: Vec<Transfer>,
    pub(crate) security_measures: Vec<String>,
    /// Absent from the fingerprint's text when empty, so a policy without the section
    /// keeps the fingerprint it had before the section existed.
    #[serde(skip_serializing_if = "RecommendationRules::is_empty")]
    pub(crate) recommendations: RecommendationRules,
}

/// Most characters of one `[recommendations] never` entry.
pub const MAX_ITEM_PATTERN_CHARS: usize = 128;

/// Largest `[recommendations] max_per_category`.
pub const MAX_PER_CATEGORY_LIMIT: u32 = 1_000;

/// The shop's business rules for every answered list (`[recommendations]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecommendationRules {
    /// Item ids, or patterns where `*` stands for any run of characters, never answered.
    pub never: Vec<String>,
    /// At most this many items of one category in one answer.
    pub max_per_category: Option<u32>,
}

impl RecommendationRules {
    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.never.is_empty() && self.max_per_category.is_none()
    }

    /// True when `item` matches an entry of `never`.
    pub fn never_answers(&self, item: &str) -> bool {
        self.never
            .iter()
            .any(|pattern| pattern_matches(pattern, item))
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (even none).
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(found) => rest = &rest[found + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::from_toml_str(&text, &path.display().to_string())
    }

    /// Validates a policy given as TOML text; `origin` names it in errors (a file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Policy> {
        let mut policy = crate::parse::parse_policy(text, origin)?;
        policy.fingerprint = fingerprint_of(&policy);
        Ok(policy)
    }

    /// The built-in retail policy (API.md's purposes and roles).
    pub fn builtin_retail() -> Policy {
        static BUILTIN: OnceLock<Policy> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                match Policy::from_toml_str(BUILTIN_RETAIL_TOML, BUILTIN_RETAIL_ORIGIN) {
                    Ok(policy) => policy,
                    // Not reachable from input: the shipped text is checked by the tests.
                    Err(error) => panic!("the built-in retail policy is invalid: {error}"),
                }
            })
            .clone()
    }

    /// Where the policy came from (a file name, or `builtin:retail`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The version the policy author gave; recorded with each consent as proof of what was
    /// agreed to.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A stable identifier of the policy's content (`fnv1a64:` and 16 hex digits): equal
    /// for policies that say the same thing, whatever their comments and layout. An
    /// identifier, not a security hash: it does not resist deliberate collisions.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The organisation responsible for the processing.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Every purpose, in file order.
    pub fn purposes(&self) -> &[Purpose] {
        &self.purposes
    }

    /// The purpose of this name.
    pub fn purpose(&self, name: &str) -> Option<&Purpose> {
        self.purposes.iter().find(|purpose| purpose.name == name)
    }

    /// The purposes that are a sale or sharing of data: what `Sec-GPC: 1` withdraws.
    pub fn purposes_sale_or_sharing(&self) -> Vec<&Purpose> {
        self.purposes
            .iter()
            .filter(|purpose| purpose.sale_or_sharing)
            .collect()
    }

    /// The purposes that may use data of `category`.
    pub fn purposes_using_category(&self, category: &str) -> Vec<&Purpose> {
        self.purposes
            .iter()
            .filter(|purpose| purpose.uses_category(category))
            .collect()
    }

    /// Every declared data category with its retention, in file order.
    pub fn categories(&self) -> &[CategoryRule] {
        &self.categories
    }

    /// The declared rule that governs `category`: the most specific declared category that
    /// covers it.
    pub fn category_rule_of(&self, category: &str) -> Option<&CategoryRule> {
        self.categories
            .iter()
            .filter(|rule| covers(&rule.name, category))
            .max_by_key(|rule| rule.name.len())
    }

    /// How long data of `category` is kept, from the most specific declared category that
    /// covers it; `None` when none does (the engine must then refuse to store it).
    pub fn retention_of(&self, category: &str) -> Option<Duration> {
        self.category_rule_of(category)
            .map(|rule| rule.retention.as_duration())
    }

    /// The data category of events of this type (`view`, `purchase`, ...).
    pub fn category_of_event_type(&self, event_type: &str) -> Option<&str> {
        self.event_types.get(event_type).map(String::as_str)
    }

    /// The data category of this attribute (`email`, `first_name`, ...).
    pub fn category_of_attribute(&self, attribute: &str) -> Option<&str> {
        self.attributes.get(attribute).map(String::as_str)
    }

    /// Every declared attribute and its category, by name.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// Every declared event type and its category, by name.
    pub fn event_types(&self) -> &BTreeMap<String, String> {
        &self.event_types
    }

    /// Every role, in file order.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The role of this name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|role| role.name == name)
    }

    /// Every recipient, in file order.
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// Every transfer to a third country, in file order.
    pub fn transfers(&self) -> &[Transfer] {
        &self.transfers
    }

    /// The organisational security measures the policy author declares (the technical
    /// ones built into discreet are added by the records of processing).
    pub fn security_measures(&self) -> &[String] {
        &self.security_measures
    }

    /// The business rules for answered lists (`[recommendations]`).
    pub fn recommendation_rules(&self) -> &RecommendationRules {
        &self.recommendations
    }

    /// The records of processing (GDPR Art. 30) this policy describes.
    pub fn records_of_processing(&self) -> RecordsOfProcessing {
        RecordsOfProcessing::of_policy(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(categories: Grant<String>) -> Role {
        Role {
            name: "test".to_owned(),
            description: String::new(),
            actions: Grant::Only(vec![Action::Ingest]),
            purposes: Grant::Only(vec!["personalization".to_owned()]),
            categories,
        }
    }

    #[test]
    fn role_grants_cover_children_not_parents() {
        let contact = role(Grant::Only(vec!["user.contact".to_owned()]));
        assert!(contact.allows_category("user.contact.email"));
        assert!(contact.allows_category("user.contact.address.city"));
        assert!(!contact.allows_category("user"));
        assert!(!contact.allows_category("user.name.first"));
        assert!(contact.allows_action(Action::Ingest));
        assert!(!contact.allows_action(Action::Forget));
        assert!(contact.allows_purpose("personalization"));
        assert!(!contact.allows_purpose("marketing_email"));
        let everything = role(Grant::All);
        assert!(everything.allows_category("user.behavior.search_history"));
        let nothing = role(Grant::Only(Vec::new()));
        assert!(!nothing.allows_category("user.behavior.search_history"));
    }

    #[test]
    fn builtin_retail_policy_is_valid() {
        match Policy::from_toml_str(BUILTIN_RETAIL_TOML, BUILTIN_RETAIL_ORIGIN) {
            Ok(policy) => assert_eq!(policy, Policy::builtin_retail()),
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn retention_comes_from_the_most_specific_declared_category() {
        let policy = Policy::builtin_retail();
        let days = |category: &str| {
            policy
                .retention_of(category)
                .map(|duration| duration.as_secs() / 86_400)
        };
        assert_eq!(days("user.behavior.browsing_history"), Some(390));
        assert_eq!(days("user.contact.address.city"), Some(3 * 365));
        assert_eq!(days("user.privacy_preferences"), Some(5 * 365));
        // `user.behavior` itself is not declared, only its children.
        assert_eq!(days("user.behavior"), None);
        assert_eq!(days("user.financial.credit_card"), None);
    }

    #[test]
    fn grants_serialize_as_lists() {
        assert_eq!(
            serde_json::to_string(&Grant::<String>::All).unwrap(),
            r#"["*"]"#
        );
        assert_eq!(
            serde_json::to_string(&Grant::Only(vec![Action::SimilarItems])).unwrap(),
            r#"["similar_items"]"#
        );
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::pattern_matches;

    #[test]
    fn star_matches_any_run_and_ids_match_whole() {
        assert!(pattern_matches("POST", "POST"));
        assert!(!pattern_matches("POST", "POSTAGE"));
        assert!(!pattern_matches("M", "m"));
        assert!(pattern_matches("gift_*", "gift_0001_20"));
        assert!(pattern_matches("gift_*", "gift_"));
        assert!(!pattern_matches("gift_*", "agift_1"));
        assert!(pattern_matches("*FEE", "AMAZONFEE"));
        assert!(pattern_matches("a*b*c", "aXbYc"));
        assert!(!pattern_matches("a*b*c", "aXcYb"));
        assert!(!pattern_matches("ab*ba", "aba"));
        assert!(pattern_matches("*", ""));
    }
}
