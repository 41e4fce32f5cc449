//! The API's JSON shapes read into the engine's typed inputs: the one place where a body's
//! structure is checked (objects, known fields only, JSON types, RFC 3339 times). What the
//! values mean (sizes, ranges, what the policy declares) is checked by the engine. Every
//! failure names the field at fault, with its index in a batch, and describes a bad value
//! by its type and size only: a value may be personal data and must not echo back.

use discreet_engine::input::{QUANTITY_RULE, RATING_RULE, check_batch_size};
use discreet_engine::items::MAX_ITEMS_PER_BATCH;
use discreet_engine::{
    AttributeInput, Error, EventContext, EventInput, EventType, ItemInput, Result,
};
use serde_json::{Map, Value};

/// The fields an event may have.
pub const EVENT_FIELDS: [&str; 8] = [
    "subject", "type", "item", "at", "quantity", "query", "value", "context",
];
/// The fields of an event's `context`.
pub const CONTEXT_FIELDS: [&str; 2] = ["weather", "country"];

/// A short description of a JSON value for error messages: its type, and for strings
/// only their length.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(text) => format!("a string of {} bytes", text.len()),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A JSON number with no fraction, as a whole number: `6` and `6.0` are the same number in
/// JSON (and to JSON Schema's `integer`).
fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|number| number.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(number))
            .map(|number| number as u64)
    })
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_time(field: &str, text: &str) -> Result<i64> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            Error::bad_input(
                field,
                format!(
                    "must be an RFC 3339 time such as 2011-11-02T10:00:00Z, got a string of {} bytes",
                    text.len()
                ),
            )
        })?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| Error::bad_input(field, "is too far from today"))
}

/// An object's fields, refusing any name not in `known`. The refusal names the object
/// (`prefix` without its dot, or `body`) and the field's position, never the unknown name:
/// a name may be anything a caller typed, an email too. Positions count in name order
/// (the order in which the object's fields are read).
fn known_fields<'a>(
    object: &'a Map<String, Value>,
    known: &[&str],
    prefix: &str,
    what: &str,
) -> Result<&'a Map<String, Value>> {
    if let Some(position) = object.keys().position(|key| !known.contains(&key.as_str())) {
        let owner = prefix.strip_suffix('.').unwrap_or(prefix);
        return Err(Error::bad_input(
            if owner.is_empty() { "body" } else { owner },
            format!(
                "has a field that is not {what} (field {} of {}, in name order); known fields: {}",
                position + 1,
                object.len(),
                known.join(", ")
            ),
        ));
    }
    Ok(object)
}

/// Reads one JSON object's fields, naming each as `prefix` + name.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: &'a str,
}

impl Fields<'_> {
    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.object.get(name).filter(|value| !value.is_null())
    }

    fn text(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(Error::bad_input(
                self.name(name),
                format!("must be a string, got {}", describe(other)),
            )),
        }
    }

    fn required_text(&self, name: &str) -> Result<String> {
        self.text(name)?
            .ok_or_else(|| Error::bad_input(self.name(name), "is required"))
    }
}

/// Reads a batch body `{"events": [...]}` of at most `max_events` events (structure only;
/// the engine checks the rest). The count is checked before any event is read.
pub fn event_batch(body: &Value, max_events: usize) -> Result<Vec<EventInput>> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            format!(
                "must be an object {{\"events\": [...]}}, got {}",
                describe(body)
            ),
        ));
    };
    if object.keys().any(|key| key.as_str() != "events") {
        return Err(Error::bad_input(
            "body",
            "has a field that is not a field of a batch; the only field is `events`",
        ));
    }
    let Some(events) = object.get("events") else {
        return Err(Error::bad_input("events", "is required"));
    };
    let Some(events) = events.as_array() else {
        return Err(Error::bad_input(
            "events",
            format!("must be an array, got {}", describe(events)),
        ));
    };
    check_batch_size(events.len(), max_events)?;
    events
        .iter()
        .enumerate()
        .map(|(index, event)| self::event(&format!("events[{index}]"), event))
        .collect()
}

/// Reads one event object; fields are named `{prefix}.name`.
pub fn event(prefix: &str, event: &Value) -> Result<EventInput> {
    let Some(object) = event.as_object() else {
        return Err(Error::bad_input(
            prefix,
            format!("must be an object, got {}", describe(event)),
        ));
    };
    let dotted = format!("{prefix}.");
    let fields = Fields {
        object: known_fields(object, &EVENT_FIELDS, &dotted, "an event field")?,
        prefix: &dotted,
    };
    let subject = fields.required_text("subject")?;
    let event_type = fields.required_text("type")?;
    let event_type = EventType::from_name(&event_type)
        .ok_or_else(|| Error::bad_input(fields.name("type"), EventType::rule()))?;
    let at = parse_time(&fields.name("at"), &fields.required_text("at")?)?;
    let item = fields.text("item")?;
    let query = fields.text("query")?;
    let quantity = match fields.get("quantity") {
        None => None,
        Some(value) => Some(
            whole_number(value)
                .and_then(|quantity| u32::try_from(quantity).ok())
                .ok_or_else(|| {
                    Error::bad_input(
                        fields.name("quantity"),
                        format!("{QUANTITY_RULE}, got {}", describe(value)),
                    )
                })?,
        ),
    };
    let value = match fields.get("value") {
        None => None,
        Some(value) => Some(
            value
                .as_f64()
                .ok_or_else(|| Error::bad_input(fields.name("value"), RATING_RULE))?,
        ),
    };
    let context = match fields.get("context") {
        None => EventContext::default(),
        Some(value) => self::context(&fields.name("context"), value)?,
    };
    Ok(EventInput {
        subject,
        event_type,
        item,
        at,
        quantity,
        query,
        value,
        context,
    })
}

/// Reads an event's `context` object; fields are named `{field}.name`.
fn context(field: &str, value: &Value) -> Result<EventContext> {
    let Some(object) = value.as_object() else {
        return Err(Error::bad_input(
            field,
            format!("must be an object, got {}", describe(value)),
        ));
    };
    let dotted = format!("{field}.");
    let fields = Fields {
        object: known_fields(object, &CONTEXT_FIELDS, &dotted, "a context field")?,
        prefix: &dotted,
    };
    Ok(EventContext {
        weather: fields.text("weather")?,
        country: fields.text("country")?,
    })
}

/// Reads an attributes body `{"name": value, ...}`; numbers and booleans become text. The
/// attributes come out in name order (the engine names an undeclared one by its position).
pub fn attributes(body: &Value) -> Result<Vec<AttributeInput>> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            "must be an object of attribute names to values",
        ));
    };
    if object.is_empty() {
        return Err(Error::bad_input("body", "names no attribute"));
    }
    object
        .iter()
        .enumerate()
        .map(|(position, (name, value))| {
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                // Named by position: the name is not known to be declared yet.
                _ => {
                    return Err(Error::bad_input(
                        "body",
                        format!(
                            "has an attribute whose value is not a string, a number or a boolean (attribute {} of {}, in name order): got {}",
                            position + 1,
                            object.len(),
                            describe(value)
                        ),
                    ));
                }
            };
            Ok(AttributeInput {
                name: name.clone(),
                value,
            })
        })
        .collect()
}

/// A consent decision as a body gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentBody {
    pub granted: bool,
    /// Where the decision was collected; `api` when the body does not say.
    pub source: String,
}

/// Reads a consent body `{"granted": true, "source": "..."}`.
pub fn consent(body: &Value) -> Result<ConsentBody> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            "must be an object {\"granted\": true, \"source\": \"...\"}",
        ));
    };
    let fields = Fields {
        object: known_fields(object, &["granted", "source"], "", "a consent field")?,
        prefix: "",
    };
    let granted = match object.get("granted") {
        Some(Value::Bool(granted)) => *granted,
        None => return Err(Error::bad_input("granted", "is required (true or false)")),
        Some(_) => return Err(Error::bad_input("granted", "must be true or false")),
    };
    let source = fields.text("source")?.unwrap_or_else(|| "api".to_owned());
    Ok(ConsentBody { granted, source })
}

/// An API key request as a body gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBody {
    pub role: String,
    pub label: String,
}

/// Reads a key body `{"role": "...", "label": "..."}`.
pub fn key_request(body: &Value) -> Result<KeyBody> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            "must be an object {\"role\": \"...\", \"label\": \"...\"}",
        ));
    };
    let fields = Fields {
        object: known_fields(object, &["role", "label"], "", "a key request field")?,
        prefix: "",
    };
    let role = match object.get("role") {
        Some(Value::String(role)) => role.clone(),
        _ => {
            return Err(Error::bad_input(
                "role",
                "is required (a role of the policy)",
            ));
        }
    };
    let label = fields.text("label")?.unwrap_or_default();
    Ok(KeyBody { role, label })
}

/// The fields of an item in `PUT /v1/items/{item}` (the path names the item).
pub const ITEM_FIELDS: [&str; 4] = ["title", "categories", "price", "available"];
/// The fields of an item in a `POST /v1/items` batch.
pub const BATCH_ITEM_FIELDS: [&str; 5] = ["item", "title", "categories", "price", "available"];

/// Reads an item body; `item` is the path's item id, or `None` in a batch (where the body
/// names it). Fields are named `{prefix}name`.
pub fn item(prefix: &str, item: Option<&str>, body: &Value) -> Result<ItemInput> {
    let owner = prefix.strip_suffix('.').unwrap_or("body");
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            owner,
            format!(
                "must be an object {{\"title\": \"...\", ...}}, got {}",
                describe(body)
            ),
        ));
    };
    let known: &[&str] = if item.is_some() {
        &ITEM_FIELDS
    } else {
        &BATCH_ITEM_FIELDS
    };
    let fields = Fields {
        object: known_fields(object, known, prefix, "an item field")?,
        prefix,
    };
    let item = match item {
        Some(item) => item.to_owned(),
        None => fields.required_text("item")?,
    };
    let title = fields.required_text("title")?;
    let categories = match fields.get("categories") {
        None => Vec::new(),
        Some(Value::Array(categories)) => categories
            .iter()
            .enumerate()
            .map(|(index, category)| match category {
                Value::String(text) => Ok(text.clone()),
                other => Err(Error::bad_input(
                    fields.name(&format!("categories[{index}]")),
                    format!("must be a string, got {}", describe(other)),
                )),
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(Error::bad_input(
                fields.name("categories"),
                format!("must be an array of strings, got {}", describe(other)),
            ));
        }
    };
    let price = match fields.get("price") {
        None => None,
        Some(value) => Some(value.as_f64().ok_or_else(|| {
            Error::bad_input(
                fields.name("price"),
                format!("must be a number, got {}", describe(value)),
            )
        })?),
    };
    let available = match fields.get("available") {
        None => true,
        Some(Value::Bool(available)) => *available,
        Some(other) => {
            return Err(Error::bad_input(
                fields.name("available"),
                format!("must be true or false, got {}", describe(other)),
            ));
        }
    };
    Ok(ItemInput {
        item,
        title,
        categories,
        price,
        available,
    })
}

/// Reads an item batch `{"items": [...]}` of at most `MAX_ITEMS_PER_BATCH` items (the
/// count is checked before any item is read).
pub fn item_batch(body: &Value) -> Result<Vec<ItemInput>> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            format!(
                "must be an object {{\"items\": [...]}}, got {}",
                describe(body)
            ),
        ));
    };
    if object.keys().any(|key| key.as_str() != "items") {
        return Err(Error::bad_input(
            "body",
            "has a field that is not a field of an item batch; the only field is `items`",
        ));
    }
    let Some(items) = object.get("items") else {
        return Err(Error::bad_input("items", "is required"));
    };
    let Some(items) = items.as_array() else {
        return Err(Error::bad_input(
            "items",
            format!("must be an array, got {}", describe(items)),
        ));
    };
    if items.is_empty() {
        return Err(Error::bad_input("items", "must hold at least one item"));
    }
    if items.len() > MAX_ITEMS_PER_BATCH {
        return Err(Error::bad_input(
            "items",
            format!("must hold at most {MAX_ITEMS_PER_BATCH} items"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| self::item(&format!("items[{index}]."), None, item))
        .collect()
}

mod incidents;
mod portal;

pub use incidents::{
    INCIDENT_FIELDS, INCIDENT_KINDS, contain_request, incident_json, incident_request,
};

pub use portal::{
    MAX_RETURN_URL_CHARS, PortalBody, check_return_url, is_local_host, is_url_authority,
    portal_request, public_url,
};
