//! The subject access export (GDPR Art. 15 and 20): everything discreet holds about a
//! subject, what it derived from it, why, for how long, who received it and who read it —
//! in one machine-readable document. Each read it makes is on the ledger.

use std::collections::BTreeMap;

use discreet_vault::{Access, LedgerFilter, now_millis, rfc3339};
use serde_json::{Value, json};

use crate::engine::{Caller, Engine, RIGHTS_PURPOSE};
use crate::error::{Error, Result};
use crate::event::EventPayload;

/// Most ledger entries listed in `access_log` (newest first).
const ACCESS_LOG_LIMIT: usize = 1_000;

const RIGHTS: [(&str, &str); 7] = [
    (
        "access",
        "GDPR Art. 15: this document lists everything held about you.",
    ),
    (
        "portability",
        "GDPR Art. 20: this document is machine-readable JSON you may take elsewhere.",
    ),
    (
        "rectification",
        "GDPR Art. 16: ask the shop to correct an attribute; the new value replaces the old one.",
    ),
    (
        "erasure",
        "GDPR Art. 17: ask to be forgotten; your data, its key and what the models learned from it are erased, and you get a signed receipt.",
    ),
    (
        "restriction",
        "GDPR Art. 18: ask the shop to restrict processing while a dispute is settled.",
    ),
    (
        "objection",
        "GDPR Art. 21: object to processing based on legitimate interests or for direct marketing.",
    ),
    (
        "withdraw_consent",
        "GDPR Art. 7(3): withdraw any consent at any time; personalization then stops using your history and the models unlearn it.",
    ),
];

pub(crate) fn export(engine: &Engine, caller: &Caller, subject: &str) -> Result<Value> {
    let (policy, vault, model_purpose) = engine.export_parts();
    let id = vault
        .subject_id(subject)?
        .ok_or(Error::NotFound { what: "subject" })?;
    let access = Access {
        actor: &caller.key_id,
        purpose: RIGHTS_PURPOSE,
    };
    let events = vault.events_of_subject(id, access)?;
    let attributes = vault.attributes_of(subject, access)?;
    let consent_rows = vault.consents_of(subject, access)?;
    let token = vault.subject_token(id);

    let mut records_per_category: BTreeMap<String, u64> = BTreeMap::new();
    let events_json: Vec<Value> = events
        .iter()
        .map(|event| {
            *records_per_category
                .entry(event.category.clone())
                .or_default() += 1;
            let payload = EventPayload::from_bytes(&event.payload)?;
            let mut object = serde_json::to_value(&payload).unwrap_or(Value::Null);
            if let Value::Object(fields) = &mut object {
                fields.insert("at".into(), Value::String(rfc3339(event.at)));
                fields.insert("category".into(), Value::String(event.category.clone()));
            }
            Ok(object)
        })
        .collect::<Result<_>>()?;
    let mut attributes_json = serde_json::Map::new();
    for attribute in &attributes {
        *records_per_category
            .entry(attribute.category.clone())
            .or_default() += 1;
        attributes_json.insert(
            attribute.name.clone(),
            json!({
                "value": String::from_utf8_lossy(&attribute.value),
                "category": attribute.category,
                "updated_at": rfc3339(attribute.updated_at),
            }),
        );
    }
    if !consent_rows.is_empty() {
        records_per_category.insert("user.privacy_preferences".into(), consent_rows.len() as u64);
    }
    let categories: Vec<Value> = records_per_category
        .iter()
        .map(|(category, records)| {
            json!({
                "category": category,
                "records": records,
                "retention": policy
                    .category_rule_of(category)
                    .map(|rule| rule.retention.to_string()),
                "purposes": policy
                    .purposes_using_category(category)
                    .iter()
                    .map(|purpose| purpose.name.as_str())
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let purposes: Vec<Value> = policy
        .purposes()
        .iter()
        .map(|purpose| {
            json!({
                "purpose": purpose.name,
                "data_use": purpose.data_use,
                "legal_basis": purpose.legal_basis.as_str(),
                "description": purpose.description,
                "categories": purpose.categories,
                "recipients": purpose.recipients,
            })
        })
        .collect();
    let retention: BTreeMap<&str, String> = policy
        .categories()
        .iter()
        .map(|rule| (rule.name.as_str(), rule.retention.to_string()))
        .collect();

    engine.flush_access_log();
    let access_log: Vec<Value> = vault
        .ledger(&LedgerFilter {
            subject_token: Some(token.clone()),
            limit: ACCESS_LOG_LIMIT,
            ..LedgerFilter::default()
        })?
        .into_iter()
        .map(|record| {
            json!({
                "seq": record.seq,
                "at": rfc3339(record.entry.at),
                "actor": record.entry.actor,
                "action": record.entry.action,
                "purpose": record.entry.purpose,
                "categories": record.entry.categories,
                "outcome": record.entry.outcome,
            })
        })
        .collect();

    Ok(json!({
        "subject": subject,
        "subject_token": token,
        "generated_at": rfc3339(now_millis()),
        "controller": policy.controller(),
        "attributes": attributes_json,
        "events": events_json,
        "consents": engine.consents_view(&consent_rows),
        "derived": engine.derived_of(id),
        "purposes": purposes,
        "categories": categories,
        "recipients": policy.recipients(),
        "retention": retention,
        "rights": RIGHTS.iter().map(|(right, text)| json!({"right": right, "how": text})).collect::<Vec<_>>(),
        "source": "Collected from you by the shop: what you did on its website and apps (events), what you told it (attributes) and the choices you made (consents).",
        "automated_decisions": {
            "profiling": model_purpose.is_some(),
            "purpose": model_purpose,
            "logic": "Product suggestions are ranked from items bought or viewed together by many customers (item-to-item co-occurrence and a linear item model, EASE) and from what is popular in your context. Only while you consent to personalization do your own events shape them. No decision with legal or similarly significant effects is made.",
        },
        "access_log": access_log,
    }))
}
