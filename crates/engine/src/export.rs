//! The subject access export (GDPR Art. 15 and 20): everything discreet holds about a
//! subject, what it derived from it, why, for how long, who received it and who read it —
//! in one typed, machine-readable document. Each read it makes is on the ledger.

use std::collections::BTreeMap;

use discreet_policy::{Controller, Policy, Recipient};
use discreet_vault::{Attribute, ConsentRow, Event, LedgerRecord, rfc3339};
use serde::Serialize;

use crate::answers::{ConsentsView, RecommendedItem};
use crate::consent::CONSENT_CATEGORY;
use crate::error::Result;
use crate::interactions::EventPayload;

/// Everything held and derived about one subject.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubjectExport {
    /// The shop's customer id, as asked for.
    pub subject: String,
    /// The pseudonymous token naming the subject on the ledger and in receipts.
    pub subject_token: String,
    pub generated_at: String,
    pub controller: Controller,
    /// Attribute values by name.
    pub attributes: BTreeMap<String, ExportedAttribute>,
    pub events: Vec<ExportedEvent>,
    pub consents: ConsentsView,
    pub derived: Derived,
    pub purposes: Vec<ExportedPurpose>,
    /// Records held per category, with retention and the purposes that may use them.
    pub categories: Vec<CategoryHeld>,
    pub recipients: Vec<Recipient>,
    /// Retention of every declared category.
    pub retention: BTreeMap<String, String>,
    pub rights: Vec<Right>,
    pub source: &'static str,
    pub automated_decisions: AutomatedDecisions,
    /// Who accessed the subject's data, newest first.
    pub access_log: Vec<AccessEntry>,
}

/// One attribute value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedAttribute {
    pub value: String,
    pub category: String,
    pub updated_at: String,
}

/// One stored event: its sealed fields, when, and its category.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportedEvent {
    #[serde(flatten)]
    pub payload: EventPayload,
    pub at: String,
    pub category: String,
}

/// What the models hold about the subject and answer for them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Derived {
    /// Whether the models learn from the subject (consent for their purpose holds).
    pub learned: bool,
    /// The subject's history as the models see it.
    pub models_hold: Vec<HeldItem>,
    /// The subject's current personal list, with explanations.
    pub recommendations: Vec<RecommendedItem>,
}

/// One item in a subject's history as the models see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldItem {
    pub item: String,
    pub event_times: Vec<String>,
}

/// A purpose of the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedPurpose {
    pub purpose: String,
    pub data_use: String,
    pub legal_basis: &'static str,
    pub description: Option<String>,
    pub categories: Vec<String>,
    pub recipients: Vec<String>,
}

/// Records of one category held about the subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CategoryHeld {
    pub category: String,
    pub records: u64,
    pub retention: Option<String>,
    pub purposes: Vec<String>,
}

/// A right of the subject and how to use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Right {
    pub right: &'static str,
    pub how: &'static str,
}

/// Art. 15(1)(h): automated decision-making and profiling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AutomatedDecisions {
    pub profiling: bool,
    pub purpose: Option<String>,
    pub logic: &'static str,
}

/// One ledger entry about the subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub purpose: Option<String>,
    pub categories: Vec<String>,
    pub outcome: String,
}

const RIGHTS: [Right; 7] = [
    Right {
        right: "access",
        how: "GDPR Art. 15: this document lists everything held about you.",
    },
    Right {
        right: "portability",
        how: "GDPR Art. 20: this document is machine-readable JSON you may take elsewhere.",
    },
    Right {
        right: "rectification",
        how: "GDPR Art. 16: ask the shop to correct an attribute; the new value replaces the old one.",
    },
    Right {
        right: "erasure",
        how: "GDPR Art. 17: ask to be forgotten; your data, its key and what the models learned from it are erased, and you get a signed receipt.",
    },
    Right {
        right: "restriction",
        how: "GDPR Art. 18: ask the shop to restrict processing while a dispute is settled.",
    },
    Right {
        right: "objection",
        how: "GDPR Art. 21: object to processing based on legitimate interests or for direct marketing.",
    },
    Right {
        right: "withdraw_consent",
        how: "GDPR Art. 7(3): withdraw any consent at any time; personalization then stops using your history and the models unlearn it.",
    },
];

const SOURCE: &str = "Collected from you by the shop: what you did on its website and apps (events), what you told it (attributes) and the choices you made (consents).";

const LOGIC: &str = "Product suggestions are ranked from items bought or viewed together by many customers (item-to-item co-occurrence and a linear item model, EASE) and from what is popular in your context. Only while you consent to personalization do your own events shape them. No decision with legal or similarly significant effects is made.";

/// What the vault and the models gave for one subject, read under the rights purpose.
pub(crate) struct Holdings {
    pub subject: String,
    pub subject_token: String,
    pub events: Vec<Event>,
    pub attributes: Vec<Attribute>,
    pub consent_rows: Vec<ConsentRow>,
    pub consents: ConsentsView,
    pub derived: Derived,
    pub ledger: Vec<LedgerRecord>,
}

/// Assembles the document from what was read and what the policy says.
pub(crate) fn document(
    policy: &Policy,
    model_purpose: Option<&str>,
    holdings: Holdings,
    generated_at: i64,
) -> Result<SubjectExport> {
    let mut records_per_category: BTreeMap<String, u64> = BTreeMap::new();
    let mut events = Vec::with_capacity(holdings.events.len());
    for event in &holdings.events {
        *records_per_category
            .entry(event.category.clone())
            .or_default() += 1;
        events.push(ExportedEvent {
            payload: EventPayload::from_bytes(&event.payload)?,
            at: rfc3339(event.at),
            category: event.category.clone(),
        });
    }
    let mut attributes = BTreeMap::new();
    for attribute in &holdings.attributes {
        *records_per_category
            .entry(attribute.category.clone())
            .or_default() += 1;
        attributes.insert(
            attribute.name.clone(),
            ExportedAttribute {
                value: String::from_utf8_lossy(&attribute.value).into_owned(),
                category: attribute.category.clone(),
                updated_at: rfc3339(attribute.updated_at),
            },
        );
    }
    if !holdings.consent_rows.is_empty() {
        records_per_category.insert(CONSENT_CATEGORY.into(), holdings.consent_rows.len() as u64);
    }
    let categories = records_per_category
        .into_iter()
        .map(|(category, records)| CategoryHeld {
            retention: policy
                .category_rule_of(&category)
                .map(|rule| rule.retention.to_string()),
            purposes: policy
                .purposes_using_category(&category)
                .iter()
                .map(|purpose| purpose.name.clone())
                .collect(),
            category,
            records,
        })
        .collect();
    let purposes = policy
        .purposes()
        .iter()
        .map(|purpose| ExportedPurpose {
            purpose: purpose.name.clone(),
            data_use: purpose.data_use.clone(),
            legal_basis: purpose.legal_basis.as_str(),
            description: purpose.description.clone(),
            categories: purpose.categories.clone(),
            recipients: purpose.recipients.clone(),
        })
        .collect();
    let retention = policy
        .categories()
        .iter()
        .map(|rule| (rule.name.clone(), rule.retention.to_string()))
        .collect();
    let access_log = holdings
        .ledger
        .into_iter()
        .map(|record| AccessEntry {
            seq: record.seq,
            at: rfc3339(record.entry.at),
            actor: record.entry.actor,
            action: record.entry.action,
            purpose: record.entry.purpose,
            categories: record.entry.categories,
            outcome: record.entry.outcome,
        })
        .collect();
    Ok(SubjectExport {
        subject: holdings.subject,
        subject_token: holdings.subject_token,
        generated_at: rfc3339(generated_at),
        controller: policy.controller().clone(),
        attributes,
        events,
        consents: holdings.consents,
        derived: holdings.derived,
        purposes,
        categories,
        recipients: policy.recipients().to_vec(),
        retention,
        rights: RIGHTS.to_vec(),
        source: SOURCE,
        automated_decisions: AutomatedDecisions {
            profiling: model_purpose.is_some(),
            purpose: model_purpose.map(str::to_owned),
            logic: LOGIC,
        },
        access_log,
    })
}
