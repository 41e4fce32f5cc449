//! The shape of `discreet.toml` as serde reads it: every table and field, each value kept
//! with its span so that validation can point at it. `deny_unknown_fields` everywhere, so a
//! misspelt field is a structure error rather than silently ignored.
//!
//! This shape must never be handed to the engine: only the validated [`Policy`] is.
//!
//! [`Policy`]: crate::policy::Policy

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::policy::{LegalBasis, RecipientKind};

pub(super) type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) version: Text,
    #[serde(default)]
    pub(super) security_measures: Vec<Text>,
    pub(super) controller: RawController,
    pub(super) categories: Vec<RawCategory>,
    pub(super) purposes: Vec<RawPurpose>,
    #[serde(default)]
    pub(super) attributes: BTreeMap<Text, Text>,
    #[serde(default)]
    pub(super) event_types: BTreeMap<Text, Text>,
    #[serde(default)]
    pub(super) roles: Vec<RawRole>,
    #[serde(default)]
    pub(super) recipients: Vec<RawRecipient>,
    #[serde(default)]
    pub(super) transfers: Vec<RawTransfer>,
    pub(super) recommendations: Option<RawRecommendations>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecommendations {
    #[serde(default)]
    pub(super) never: Vec<Text>,
    pub(super) max_per_category: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawController {
    pub(super) name: Text,
    pub(super) contact: Text,
    pub(super) address: Option<Text>,
    pub(super) data_protection_officer: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCategory {
    pub(super) name: Text,
    pub(super) retention: Text,
    pub(super) retention_reason: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPurpose {
    pub(super) name: Text,
    pub(super) data_use: Text,
    pub(super) legal_basis: LegalBasis,
    pub(super) description: Option<Text>,
    pub(super) legitimate_interest: Option<Text>,
    pub(super) categories: Vec<Text>,
    pub(super) data_subjects: Vec<Text>,
    #[serde(default)]
    pub(super) recipients: Vec<Text>,
    #[serde(default)]
    pub(super) sale_or_sharing: bool,
    #[serde(default)]
    pub(super) aggregated_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    pub(super) name: Text,
    pub(super) description: Text,
    pub(super) actions: Vec<Text>,
    pub(super) purposes: Vec<Text>,
    pub(super) categories: Vec<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecipient {
    pub(super) name: Text,
    pub(super) kind: RecipientKind,
    pub(super) description: Text,
    pub(super) location: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransfer {
    pub(super) recipient: Text,
    pub(super) country: Text,
    pub(super) safeguard: Text,
}
