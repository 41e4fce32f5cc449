//! The incident routes' bodies (`POST /v1/incidents`, `POST /v1/incidents/{id}/contain`)
//! and the incident's answer shape, which the command line prints too.

use discreet_engine::{ContainRequest, Error, Incident, IncidentKind, IncidentRequest, Result};
use discreet_vault::rfc3339;
use serde_json::{Value, json};

use super::{Fields, describe, known_fields, parse_time};

/// The fields of an incident body.
pub const INCIDENT_FIELDS: [&str; 7] = [
    "kind",
    "key_id",
    "since",
    "until",
    "aware_at",
    "kek_exposed",
    "description",
];

/// The kinds of incident, as named in bodies.
pub const INCIDENT_KINDS: [&str; 3] = ["key_compromised", "window", "data_copy"];

fn flag(fields: &Fields<'_>, name: &str) -> Result<Option<bool>> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(other) => Err(Error::bad_input(
            fields.name(name),
            format!("must be true or false, got {}", describe(other)),
        )),
    }
}

fn time(fields: &Fields<'_>, name: &str) -> Result<Option<i64>> {
    fields
        .text(name)?
        .map(|text| parse_time(name, &text))
        .transpose()
}

/// Reads an incident body.
pub fn incident_request(body: &Value) -> Result<IncidentRequest> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            "must be an object {\"kind\": \"key_compromised\", ...}",
        ));
    };
    let fields = Fields {
        object: known_fields(object, &INCIDENT_FIELDS, "", "an incident field")?,
        prefix: "",
    };
    let kind = match fields.required_text("kind")?.as_str() {
        "key_compromised" => IncidentKind::KeyCompromised,
        "window" => IncidentKind::Window,
        "data_copy" => IncidentKind::DataCopy,
        _ => {
            return Err(Error::bad_input(
                "kind",
                format!("must be one of {}", INCIDENT_KINDS.join(", ")),
            ));
        }
    };
    Ok(IncidentRequest {
        kind,
        key_id: fields.text("key_id")?,
        since: time(&fields, "since")?,
        until: time(&fields, "until")?,
        aware_at: time(&fields, "aware_at")?,
        kek_exposed: flag(&fields, "kek_exposed")?,
        description: fields.text("description")?,
    })
}

/// Reads a containment body `{"revoke_key": true, "rotate_kek": false}`.
pub fn contain_request(body: &Value) -> Result<ContainRequest> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            "must be an object {\"revoke_key\": true, \"rotate_kek\": false}",
        ));
    };
    let fields = Fields {
        object: known_fields(
            object,
            &["revoke_key", "rotate_kek"],
            "",
            "a containment field",
        )?,
        prefix: "",
    };
    Ok(ContainRequest {
        revoke_key: flag(&fields, "revoke_key")?.unwrap_or(false),
        rotate_kek: flag(&fields, "rotate_kek")?.unwrap_or(false),
    })
}

/// An incident in the API's shape (times RFC 3339).
pub fn incident_json(incident: &Incident) -> Value {
    let impact = &incident.impact;
    json!({
        "id": incident.id,
        "kind": incident.kind.as_str(),
        "key_id": incident.key_id,
        "since": incident.since.map(rfc3339),
        "until": rfc3339(incident.until),
        "aware_at": rfc3339(incident.aware_at),
        "notify_by": rfc3339(incident.notify_by),
        "created_at": rfc3339(incident.created_at),
        "created_by": incident.created_by,
        "description": incident.description,
        "kek_exposed": incident.kek_exposed,
        "impact": {
            "subjects": impact.subjects,
            "records": impact.records,
            "categories": impact.categories,
            "purposes": impact.purposes,
            "intelligible": impact.intelligible,
            "in_clear": impact.in_clear,
            "reads": impact.reads,
            "recommendation_reads": impact.recommendation_reads,
            "approximate": impact.approximate,
            "subject_tokens_url": format!("/v1/incidents/{}/subjects", incident.id),
        },
        "containment": {
            "key_revoked_at": incident.containment.key_revoked_at.map(rfc3339),
            "kek_rotated_at": incident.containment.kek_rotated_at.map(rfc3339),
        },
        "report": incident.report,
        "ledger": incident.ledger,
        "signature": incident.signature,
    })
}
