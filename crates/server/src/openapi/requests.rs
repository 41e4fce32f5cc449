//! The request side of the OpenAPI document: the request-body schemas and the parameter
//! constraints, built from the engine's limits and the policy in force (event types,
//! attributes, purposes, roles), so the document accepts exactly what the server accepts.
//! Must never describe a limit the engine does not apply.

use discreet_engine::input::{
    MAX_ANSWER_ITEMS, MAX_ATTRIBUTE_CHARS, MAX_COUNTRY_CHARS, MAX_ITEM_CHARS, MAX_QUANTITY,
    MAX_QUERY_CHARS, MAX_SOURCE_CHARS, MAX_SUBJECT_CHARS, WEATHER_NAMES,
};
use discreet_engine::items::{
    MAX_CATEGORY_CHARS, MAX_EXCLUDED_ITEMS, MAX_FILTER_CATEGORIES, MAX_ITEM_CATEGORIES,
    MAX_ITEMS_PER_BATCH, MAX_PRICE, MAX_TITLE_CHARS,
};
use discreet_engine::{EventType, MAX_AUDIT_ENTRIES, MAX_KEY_LABEL_CHARS};
use discreet_policy::Policy;
use serde_json::{Map, Value, json};

/// Text without control characters (what the engine refuses in identifiers and names).
const NO_CONTROL: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// A header value of visible ASCII that starts and ends with a non-space (HTTP trims spaces).
const VISIBLE_HEADER: &str = r"^[\x21-\x7E]([\x20-\x7E]{0,253}[\x21-\x7E])?$";
/// A category path: `/`-separated names, none empty, no control characters.
const CATEGORY_PATH: &str = r"^[^/\x00-\x1F\x7F-\x9F]+(/[^/\x00-\x1F\x7F-\x9F]+)*$";
/// A privacy-center `return_url`: https with a host, or http on localhost, of visible ASCII
/// without `"<>\^`{|}`, and no user name or password (`crate::wire::check_return_url`).
const RETURN_URL: &str = r"^(https://[A-Za-z0-9.:\[\]-]{1,255}|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)([/?#][\x21\x23-\x3B\x3D\x3F-\x5B\x5D\x5F\x61-\x7A\x7E]*)?$";
/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A string of 1 to `max_chars` characters without control characters.
fn identifier(max_chars: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": NO_CONTROL})
}

fn nullable(mut schema: Value) -> Value {
    if let Some(kind) = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned)
    {
        schema["type"] = json!([kind, "null"]);
    }
    if let Some(names) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        names.push(Value::Null);
    }
    schema
}

/// RFC 3339 times whose year matches `years`, in the form the document promises (`T`, `Z` or
/// an offset, days 01 to 28 so every month has them, fractions up to nanoseconds).
fn rfc3339(years: &str) -> Value {
    json!({
        "type": "string",
        "pattern": format!(
            r"^({years})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,9}})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
        ),
    })
}

/// Event times the document promises the engine accepts: days 01 to 28 of the month before
/// the current one. An event time must lie between 1970 and a day from now, and within its
/// category's retention (13 months at the shortest in the built-in policy), so a fixed range
/// of years would promise times the retention refuses; the month before now is inside both
/// whatever the offset. (Other times in the window are accepted too; a pattern cannot follow
/// the clock. A policy keeping some events less than two months is not described exactly.)
fn event_time(this_year: i32, this_month: u8) -> Value {
    let (year, month) = if this_month <= 1 {
        (this_year - 1, 12)
    } else {
        (this_year, this_month - 1)
    };
    json!({
        "type": "string",
        "pattern": format!(
            r"^{year:04}-{month:02}-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,9}})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
        ),
        "description": "RFC 3339; between 1970-01-01 and one day from now, and within the retention of the event's data category (the pattern lists the days always in range: those of the month before this one)",
    })
}

fn count(max: usize, description: &str) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": max, "description": description})
}

fn price() -> Value {
    json!({"type": "number", "minimum": 0, "maximum": MAX_PRICE})
}

/// The schema of a parameter, by the operation's path, its place and its name; a category
/// filter names one of `categories` (the declared ones).
pub(super) fn parameter_schema(
    policy: &Policy,
    path: &str,
    place: &str,
    name: &str,
    categories: &[String],
) -> Option<Value> {
    let schema = match (place, name) {
        ("path", "subject") | ("query", "subject") => identifier(MAX_SUBJECT_CHARS),
        ("path", "item") => identifier(MAX_ITEM_CHARS),
        ("path", "purpose") => json!({"type": "string", "enum": consent_purposes(policy)}),
        ("path", "id") if path.starts_with("/v1/receipts/") => {
            json!({"type": "string", "minLength": 1, "maxLength": 128})
        }
        ("path", "id") => json!({"type": "string", "minLength": 1}),
        ("query", "n") => count(MAX_ANSWER_ITEMS, "default 10"),
        ("query", "limit") => count(MAX_AUDIT_ENTRIES, "default 100"),
        ("query", "purpose") => json!({"type": "string", "enum": purposes(policy)}),
        ("query", "context.weather") => json!({"type": "string", "enum": WEATHER_NAMES}),
        ("query", "context.country") => identifier(MAX_COUNTRY_CHARS),
        ("query", "since") | ("query", "until") => rfc3339("[0-9]{4}"),
        ("query", "actor") => json!({"type": "string"}),
        ("query", "category") => json!({
            "type": "array",
            "maxItems": MAX_FILTER_CATEGORIES,
            "items": {"type": "string", "enum": categories},
        }),
        ("query", "exclude") => json!({
            "type": "array",
            "maxItems": MAX_EXCLUDED_ITEMS,
            "items": identifier(MAX_ITEM_CHARS),
        }),
        ("query", "min_price") | ("query", "max_price") => price(),
        ("query", "include_unavailable") => json!({"type": "boolean"}),
        ("header", "Idempotency-Key") => json!({
            "type": "string",
            "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
            "pattern": VISIBLE_HEADER,
        }),
        _ => return None,
    };
    Some(schema)
}

fn purposes(policy: &Policy) -> Vec<&str> {
    policy
        .purposes()
        .iter()
        .map(|purpose| purpose.name.as_str())
        .collect()
}

fn consent_purposes(policy: &Policy) -> Vec<&str> {
    policy
        .purposes()
        .iter()
        .filter(|purpose| purpose.requires_consent())
        .map(|purpose| purpose.name.as_str())
        .collect()
}

/// The request bodies, from the engine's limits and the policy.
pub(super) fn request_schemas(policy: &Policy, max_batch_events: usize) -> Map<String, Value> {
    let now = time::OffsetDateTime::now_utc();
    let (this_year, this_month) = (now.year(), u8::from(now.month()));
    let declared: Vec<EventType> = EventType::ALL
        .into_iter()
        .filter(|event_type| policy.category_of_event_type(event_type.as_str()).is_some())
        .collect();
    let mut schemas = Map::new();
    schemas.insert(
        "EventBatch".into(),
        json!({
            "type": "object",
            "description": "One bad event rejects the whole batch, naming `events[i].field`; nothing of it is stored.",
            "required": ["events"],
            "additionalProperties": false,
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_batch_events,
                    "items": {"$ref": "#/components/schemas/EventIn"},
                },
            },
        }),
    );
    schemas.insert(
        "EventIn".into(),
        json!({
            "description": "One event; which fields it needs depends on its `type` (event types of the policy).",
            "oneOf": declared
                .iter()
                .map(|event_type| event_schema(*event_type, this_year, this_month))
                .collect::<Vec<_>>(),
        }),
    );
    schemas.insert(
        "ContextIn".into(),
        json!({
            "type": ["object", "null"],
            "description": "Non-personal context.",
            "additionalProperties": false,
            "properties": {
                "weather": nullable(json!({"type": "string", "enum": WEATHER_NAMES})),
                "country": nullable(identifier(MAX_COUNTRY_CHARS)),
            },
        }),
    );
    let attribute_value = json!({
        "type": ["string", "number", "boolean"],
        "maxLength": MAX_ATTRIBUTE_CHARS,
        "pattern": NO_CONTROL,
    });
    let attributes: Map<String, Value> = policy
        .attributes()
        .keys()
        .map(|name| (name.clone(), attribute_value.clone()))
        .collect();
    schemas.insert(
        "AttributesIn".into(),
        json!({
            "type": "object",
            "description": "Attribute names declared in the policy, to values (numbers and booleans are stored as text).",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": attributes,
        }),
    );
    schemas.insert(
        "ConsentIn".into(),
        json!({
            "type": "object",
            "required": ["granted"],
            "additionalProperties": false,
            "properties": {
                "granted": {"type": "boolean"},
                "source": nullable(json!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_SOURCE_CHARS,
                    "pattern": NO_CONTROL,
                    "description": "Where the decision was collected, e.g. `checkout-banner-v3`; `api` when absent.",
                })),
            },
        }),
    );
    let item_fields = |with_id: bool| {
        let mut properties = json!({
            "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS, "pattern": NO_CONTROL},
            "categories": nullable(json!({
                "type": "array",
                "maxItems": MAX_ITEM_CATEGORIES,
                "items": {"type": "string", "maxLength": MAX_CATEGORY_CHARS, "pattern": CATEGORY_PATH},
            })),
            "price": nullable(price()),
            "available": nullable(json!({"type": "boolean"})),
        });
        let mut required = vec!["title"];
        if with_id {
            properties["item"] = identifier(MAX_ITEM_CHARS);
            required.push("item");
        }
        json!({
            "type": "object",
            "required": required,
            "additionalProperties": false,
            "properties": properties,
        })
    };
    schemas.insert("ItemIn".into(), item_fields(false));
    schemas.insert("ItemWithId".into(), item_fields(true));
    schemas.insert(
        "ItemBatch".into(),
        json!({
            "type": "object",
            "description": "One bad item rejects the whole batch, naming `items[i].field`; nothing of it is stored.",
            "required": ["items"],
            "additionalProperties": false,
            "properties": {
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_ITEMS_PER_BATCH,
                    "items": {"$ref": "#/components/schemas/ItemWithId"},
                },
            },
        }),
    );
    let roles: Vec<&str> = policy
        .roles()
        .iter()
        .map(|role| role.name.as_str())
        .collect();
    schemas.insert(
        "KeyIn".into(),
        json!({
            "type": "object",
            "required": ["role"],
            "additionalProperties": false,
            "properties": {
                "role": {"type": "string", "enum": roles},
                "label": nullable(json!({"type": "string", "maxLength": MAX_KEY_LABEL_CHARS})),
            },
        }),
    );
    let time = json!({"type": "string", "format": "date-time", "description": "RFC 3339"});
    // One shape per kind (the fields each kind takes); what no schema can say — `since`
    // before `until`, no time in the future, a `key_id` this store issued — is checked by
    // the engine and answered 400 (404 for the key) naming the field.
    let description =
        nullable(json!({"type": "string", "maxLength": discreet_engine::MAX_DESCRIPTION_CHARS}));
    let incident = |kind: &str, required: &[&str], extra: Value| {
        let mut properties = json!({
            "kind": {"type": "string", "enum": [kind]},
            "since": nullable(time.clone()),
            "until": nullable(time.clone()),
            "aware_at": nullable(time.clone()),
            "description": description.clone(),
        });
        if let (Some(properties), Some(extra)) = (properties.as_object_mut(), extra.as_object()) {
            properties.extend(extra.clone());
        }
        if required.contains(&"since") {
            properties["since"] = time.clone();
        }
        let mut required: Vec<&str> = required.to_vec();
        required.insert(0, "kind");
        json!({
            "type": "object",
            "required": required,
            "additionalProperties": false,
            "properties": properties,
        })
    };
    schemas.insert(
        "IncidentIn".into(),
        json!({
            "oneOf": [
                incident(
                    "key_compromised",
                    &["key_id"],
                    json!({"key_id": {"type": "string", "minLength": 1, "maxLength": 64, "description": "The compromised key; `since` defaults to when it was issued"}}),
                ),
                incident("window", &["since"], json!({})),
                incident(
                    "data_copy",
                    &["since"],
                    json!({"kek_exposed": nullable(json!({"type": "boolean", "description": "Whether the KEK was taken too"}))}),
                ),
            ],
            "discriminator": {"propertyName": "kind"},
        }),
    );
    schemas.insert(
        "ContainIn".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "At least one action set to true",
            "properties": {
                "revoke_key": nullable(json!({"type": "boolean"})),
                "rotate_kek": nullable(json!({"type": "boolean"})),
            },
            "anyOf": [
                {"required": ["revoke_key"], "properties": {"revoke_key": {"const": true}}},
                {"required": ["rotate_kek"], "properties": {"rotate_kek": {"const": true}}},
            ],
        }),
    );
    schemas.insert(
        "PortalSessionIn".into(),
        json!({
            "type": "object",
            "required": ["subject", "return_url"],
            "additionalProperties": false,
            "properties": {
                "subject": identifier(MAX_SUBJECT_CHARS),
                "return_url": {
                    "type": "string",
                    "maxLength": crate::wire::MAX_RETURN_URL_CHARS,
                    "pattern": RETURN_URL,
                    "description": "Where the pages link back to: https, or http on localhost; no user name or password",
                },
                "locale": nullable(json!({"type": "string", "enum": crate::pages::locale::LOCALES})),
            },
        }),
    );
    schemas
}

/// One event of `event_type`: the fields it requires and the ones it may carry.
fn event_schema(event_type: EventType, this_year: i32, this_month: u8) -> Value {
    let item = identifier(MAX_ITEM_CHARS);
    let query = json!({"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS});
    let rating = json!({"type": "number", "minimum": 0, "maximum": 10});
    let mut required = vec!["subject", "type", "at"];
    let (item, query, rating) = match event_type {
        EventType::Search => {
            required.push("query");
            (nullable(item), query, nullable(rating))
        }
        EventType::Rating => {
            required.extend(["item", "value"]);
            (item, nullable(query), rating)
        }
        EventType::View | EventType::Cart | EventType::Purchase => {
            required.push("item");
            (item, nullable(query), nullable(rating))
        }
    };
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": {
            "subject": identifier(MAX_SUBJECT_CHARS),
            "type": {"type": "string", "enum": [event_type.as_str()]},
            "item": item,
            "at": event_time(this_year, this_month),
            "quantity": nullable(json!({"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY})),
            "query": query,
            "value": rating,
            "context": {"$ref": "#/components/schemas/ContextIn"},
        },
    })
}
