//! Events as the API receives them and as they are sealed: parsing with messages that name
//! the index and field at fault, and the sealed payload format. A batch is checked whole
//! before anything is stored, so one bad event changes nothing.

use discreet_model::{InteractionKind, Weather};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Longest subject (customer) id accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;
/// Longest item code accepted, in bytes.
pub const MAX_ITEM_BYTES: usize = 64;
/// Longest search query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 512;
/// Longest country name accepted, in bytes.
pub const MAX_COUNTRY_BYTES: usize = 64;
/// Largest quantity accepted.
pub const MAX_QUANTITY: u64 = 1_000_000;
/// Events may be dated at most this far in the future (clock skew between shop and us).
pub const MAX_FUTURE_MILLIS: i64 = 24 * 3_600_000;
/// Earliest accepted event time: 1970-01-01.
pub const MIN_EVENT_MILLIS: i64 = 0;

/// The event types the API knows; the policy maps each to a data category.
pub const EVENT_TYPES: [&str; 5] = ["view", "cart", "purchase", "search", "rating"];
/// Weather names accepted in `context.weather`.
pub const WEATHER_NAMES: [&str; 6] = ["clear", "cloudy", "rain", "snow", "hot", "cold"];

/// Non-personal context of an event or a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventContext {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weather: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
}

/// One checked event, ready to be sealed.
#[derive(Clone, Debug, PartialEq)]
pub struct EventInput {
    pub subject: String,
    pub payload: EventPayload,
    /// Unix milliseconds.
    pub at: i64,
}

/// What is sealed for one event (everything but the subject and the time, which the vault
/// keeps as row metadata — the time in clear for retention).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventPayload {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub item: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quantity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "is_empty_context", default)]
    pub context: EventContext,
}

fn is_empty_context(context: &EventContext) -> bool {
    context.weather.is_none() && context.country.is_none()
}

impl EventPayload {
    /// The model's kind for this event, when it names an item the models can learn.
    pub fn interaction_kind(&self) -> Option<InteractionKind> {
        self.item.as_ref()?;
        match self.event_type.as_str() {
            "view" => Some(InteractionKind::View),
            "cart" => Some(InteractionKind::Cart),
            "purchase" => Some(InteractionKind::Purchase),
            "rating" => Some(InteractionKind::Rating),
            _ => None,
        }
    }

    /// Sealed form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Opens the sealed form.
    pub fn from_bytes(bytes: &[u8]) -> Result<EventPayload> {
        serde_json::from_slice(bytes).map_err(|error| Error::Internal {
            detail: format!("a stored event does not decode: {error}"),
        })
    }
}

/// The model's weather bucket of a context name (unknown names were refused at ingest).
pub fn weather_of(name: Option<&str>) -> Weather {
    match name {
        Some("clear") => Weather::Clear,
        Some("cloudy") => Weather::Cloudy,
        Some("rain") => Weather::Rain,
        Some("snow") => Weather::Snow,
        Some("hot") => Weather::Hot,
        Some("cold") => Weather::Cold,
        _ => Weather::Unknown,
    }
}

/// Checks a subject id (path segment or event field).
pub fn check_subject(field: &str, subject: &str) -> Result<()> {
    check_identifier(field, subject, MAX_SUBJECT_BYTES)
}

/// Checks an item code.
pub fn check_item(field: &str, item: &str) -> Result<()> {
    check_identifier(field, item, MAX_ITEM_BYTES)
}

/// An identifier: 1 to `max_bytes` bytes of text without control characters.
fn check_identifier(field: &str, text: &str, max_bytes: usize) -> Result<()> {
    if text.is_empty() || text.len() > max_bytes {
        return Err(Error::bad_input(
            field,
            format!("must be 1 to {max_bytes} bytes, got {}", text.len()),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a request or event context.
pub fn check_context(field: &str, context: &EventContext) -> Result<()> {
    if let Some(weather) = &context.weather
        && !WEATHER_NAMES.contains(&weather.as_str())
    {
        return Err(Error::bad_input(
            format!("{field}.weather"),
            format!("must be one of {}", WEATHER_NAMES.join(", ")),
        ));
    }
    if let Some(country) = &context.country
        && (country.is_empty()
            || country.len() > MAX_COUNTRY_BYTES
            || country.chars().any(char::is_control))
    {
        return Err(Error::bad_input(
            format!("{field}.country"),
            format!("must be 1 to {MAX_COUNTRY_BYTES} bytes of text"),
        ));
    }
    Ok(())
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_time(field: &str, text: &str) -> Result<i64> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            Error::bad_input(
                field,
                format!(
                    "must be an RFC 3339 time such as 2011-11-02T10:00:00Z, got {}",
                    describe(&Value::String(text.to_owned()))
                ),
            )
        })?;
    Ok((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A short description of a JSON value for error messages: its type, and for strings
/// only their length (an event field may hold personal data, which must not echo back
/// into logs).
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(text) => format!("a string of {} bytes", text.len()),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Parses and checks a batch body `{"events": [...]}`: the whole batch or the first problem.
pub fn parse_batch(
    body: &Value,
    max_events: usize,
    now_millis: i64,
    known_type: &dyn Fn(&str) -> bool,
) -> Result<Vec<EventInput>> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            format!(
                "must be an object {{\"events\": [...]}}, got {}",
                describe(body)
            ),
        ));
    };
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "events") {
        return Err(Error::bad_input(
            unknown.clone(),
            "is not a field of a batch; the only field is `events`",
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
    if events.is_empty() {
        return Err(Error::bad_input("events", "must hold at least one event"));
    }
    if events.len() > max_events {
        return Err(Error::bad_input(
            "events",
            format!(
                "holds {} events; a batch holds at most {max_events}",
                events.len()
            ),
        ));
    }
    events
        .iter()
        .enumerate()
        .map(|(index, event)| parse_event(index, event, now_millis, known_type))
        .collect()
}

const EVENT_FIELDS: [&str; 8] = [
    "subject", "type", "item", "at", "quantity", "query", "value", "context",
];

fn parse_event(
    index: usize,
    event: &Value,
    now_millis: i64,
    known_type: &dyn Fn(&str) -> bool,
) -> Result<EventInput> {
    let field = |name: &str| format!("events[{index}].{name}");
    let Some(object) = event.as_object() else {
        return Err(Error::bad_input(
            format!("events[{index}]"),
            format!("must be an object, got {}", describe(event)),
        ));
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !EVENT_FIELDS.contains(&key.as_str()))
    {
        return Err(Error::bad_input(
            field(unknown),
            format!(
                "is not an event field; known fields: {}",
                EVENT_FIELDS.join(", ")
            ),
        ));
    }
    let text = |name: &str, required: bool| -> Result<Option<String>> {
        match object.get(name) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(Error::bad_input(field(name), "is required")),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(Error::bad_input(
                field(name),
                format!("must be a string, got {}", describe(other)),
            )),
        }
    };
    let subject = text("subject", true)?.unwrap_or_default();
    check_subject(&field("subject"), &subject)?;
    let event_type = text("type", true)?.unwrap_or_default();
    if !EVENT_TYPES.contains(&event_type.as_str()) || !known_type(&event_type) {
        return Err(Error::bad_input(
            field("type"),
            format!(
                "must be one of {} (declared in the policy)",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    let at_text = text("at", true)?.unwrap_or_default();
    let at = parse_time(&field("at"), &at_text)?;
    if at < MIN_EVENT_MILLIS || at > now_millis + MAX_FUTURE_MILLIS {
        return Err(Error::bad_input(
            field("at"),
            "must lie between 1970-01-01 and one day from now",
        ));
    }
    let item = text("item", false)?;
    if let Some(item) = &item {
        check_item(&field("item"), item)?;
    } else if event_type != "search" {
        return Err(Error::bad_input(
            field("item"),
            format!("is required for a `{event_type}` event"),
        ));
    }
    let query = text("query", false)?;
    match &query {
        Some(query) if query.is_empty() || query.len() > MAX_QUERY_BYTES => {
            return Err(Error::bad_input(
                field("query"),
                format!("must be 1 to {MAX_QUERY_BYTES} bytes"),
            ));
        }
        None if event_type == "search" => {
            return Err(Error::bad_input(
                field("query"),
                "is required for a `search` event",
            ));
        }
        _ => {}
    }
    let quantity = match object.get("quantity") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(quantity) if (1..=MAX_QUANTITY).contains(&quantity) => Some(quantity as u32),
            _ => {
                return Err(Error::bad_input(
                    field("quantity"),
                    format!(
                        "must be a whole number from 1 to {MAX_QUANTITY}, got {}",
                        describe(value)
                    ),
                ));
            }
        },
    };
    let value = match object.get("value") {
        None | Some(Value::Null) if event_type == "rating" => {
            return Err(Error::bad_input(
                field("value"),
                "is required for a `rating` event",
            ));
        }
        None | Some(Value::Null) => None,
        Some(value) => match value.as_f64() {
            Some(rating) if rating.is_finite() && (0.0..=10.0).contains(&rating) => Some(rating),
            _ => {
                return Err(Error::bad_input(
                    field("value"),
                    "must be a number from 0 to 10",
                ));
            }
        },
    };
    let context = match object.get("context") {
        None | Some(Value::Null) => EventContext::default(),
        Some(Value::Object(context)) => {
            let mut parsed = EventContext::default();
            for (name, value) in context {
                let target = match name.as_str() {
                    "weather" => &mut parsed.weather,
                    "country" => &mut parsed.country,
                    _ => {
                        return Err(Error::bad_input(
                            field(&format!("context.{name}")),
                            "is not a context field; known fields: weather, country",
                        ));
                    }
                };
                match value {
                    Value::Null => {}
                    Value::String(text) => *target = Some(text.clone()),
                    other => {
                        return Err(Error::bad_input(
                            field(&format!("context.{name}")),
                            format!("must be a string, got {}", describe(other)),
                        ));
                    }
                }
            }
            check_context(&field("context"), &parsed)?;
            parsed
        }
        Some(other) => {
            return Err(Error::bad_input(
                field("context"),
                format!("must be an object, got {}", describe(other)),
            ));
        }
    };
    Ok(EventInput {
        subject,
        at,
        payload: EventPayload {
            event_type,
            item,
            quantity,
            query,
            value,
            context,
        },
    })
}
