//! The incident routes' bodies: `POST /v1/incidents` and `POST /v1/incidents/{id}/contain`.

use discreet_engine::{ContainRequest, Error, IncidentKind, IncidentRequest, Result};
use serde_json::Value;

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
