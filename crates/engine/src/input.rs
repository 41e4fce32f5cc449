//! What callers hand the engine, typed: events, attribute values and request contexts, and
//! the checks of their meaning (sizes, ranges, what the policy declares). Parsing a wire
//! format (JSON, CSV) into these types is the caller's job, done once at its boundary; the
//! checks here name the index and field at fault and never echo a value. Lengths are counted
//! in characters (Unicode scalar values), as JSON Schema's `maxLength` counts them, so the
//! OpenAPI document can state every limit exactly.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest subject (customer) id accepted, in characters.
pub const MAX_SUBJECT_CHARS: usize = 128;
/// Longest item code accepted, in characters.
pub const MAX_ITEM_CHARS: usize = 64;
/// Longest search query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 512;
/// Longest country name accepted, in characters.
pub const MAX_COUNTRY_CHARS: usize = 64;
/// Largest quantity accepted.
pub const MAX_QUANTITY: u32 = 1_000_000;
/// Events may be dated at most this far in the future (clock skew between shop and us).
pub const MAX_FUTURE_MILLIS: i64 = 24 * 3_600_000;
/// Earliest accepted event time: 1970-01-01.
pub const MIN_EVENT_MILLIS: i64 = 0;
/// Longest attribute value accepted, in characters.
pub const MAX_ATTRIBUTE_CHARS: usize = 1_024;
/// Longest consent `source` accepted, in characters.
pub const MAX_SOURCE_CHARS: usize = 128;
/// Most items one answer lists.
pub const MAX_ANSWER_ITEMS: usize = 100;

/// Weather names accepted in `context.weather`.
pub const WEATHER_NAMES: [&str; 6] = ["clear", "cloudy", "rain", "snow", "hot", "cold"];
/// What `quantity` must be.
pub const QUANTITY_RULE: &str = "must be a whole number from 1 to 1000000";
/// What `value` (a rating) must be.
pub const RATING_RULE: &str = "must be a number from 0 to 10";

/// The kinds of event the API knows; the policy maps each to a data category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    View,
    Cart,
    Purchase,
    Search,
    Rating,
}

impl EventType {
    /// Every event type, in the API's order.
    pub const ALL: [EventType; 5] = [
        EventType::View,
        EventType::Cart,
        EventType::Purchase,
        EventType::Search,
        EventType::Rating,
    ];

    /// The wire name (`view`, ...), as the policy names it too.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Cart => "cart",
            EventType::Purchase => "purchase",
            EventType::Search => "search",
            EventType::Rating => "rating",
        }
    }

    /// The event type of a wire name.
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|event_type| event_type.as_str() == name)
    }

    /// "must be one of view, cart, … (declared in the policy)".
    pub fn rule() -> String {
        let names: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        format!(
            "must be one of {} (declared in the policy)",
            names.join(", ")
        )
    }
}

/// Non-personal context of an event or a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventContext {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weather: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
}

impl EventContext {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.weather.is_none() && self.country.is_none()
    }
}

/// One event as a caller reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventInput {
    /// The shop's customer id.
    pub subject: String,
    pub event_type: EventType,
    /// Required except for searches.
    pub item: Option<String>,
    /// When it happened, unix milliseconds.
    pub at: i64,
    pub quantity: Option<u32>,
    /// The search text, for searches.
    pub query: Option<String>,
    /// The rating, for ratings.
    pub value: Option<f64>,
    pub context: EventContext,
}

/// One attribute value as a caller reports it (numbers and booleans as their text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeInput {
    /// A name the policy declares.
    pub name: String,
    pub value: String,
}

/// Checks a subject id (path segment or event field).
pub fn check_subject(field: &str, subject: &str) -> Result<()> {
    check_identifier(field, subject, MAX_SUBJECT_CHARS)
}

/// Checks an item code.
pub fn check_item(field: &str, item: &str) -> Result<()> {
    check_identifier(field, item, MAX_ITEM_CHARS)
}

/// An identifier: 1 to `max_chars` characters without control characters.
fn check_identifier(field: &str, text: &str, max_chars: usize) -> Result<()> {
    let n_chars = text.chars().count();
    if n_chars == 0 || n_chars > max_chars {
        return Err(Error::bad_input(
            field,
            format!("must be 1 to {max_chars} characters, got {n_chars}"),
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

/// True for 1 to `max_chars` characters of text without control characters.
pub(crate) fn is_short_text(text: &str, max_chars: usize) -> bool {
    (1..=max_chars).contains(&text.chars().count()) && !text.chars().any(char::is_control)
}

/// True for at most `max_chars` characters.
pub(crate) fn fits(text: &str, max_chars: usize) -> bool {
    text.chars().count() <= max_chars
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
        && !is_short_text(country, MAX_COUNTRY_CHARS)
    {
        return Err(Error::bad_input(
            format!("{field}.country"),
            format!("must be 1 to {MAX_COUNTRY_CHARS} characters of text"),
        ));
    }
    Ok(())
}

/// Checks `n`, the length of an answer.
pub(crate) fn check_count(n: usize) -> Result<()> {
    if (1..=MAX_ANSWER_ITEMS).contains(&n) {
        Ok(())
    } else {
        Err(Error::bad_input(
            "n",
            format!("must be from 1 to {MAX_ANSWER_ITEMS}"),
        ))
    }
}

/// Checks that a batch holds 1 to `max_events` events (callers that read a wire format check
/// it before reading the events).
pub fn check_batch_size(n_events: usize, max_events: usize) -> Result<()> {
    if n_events == 0 {
        return Err(Error::bad_input("events", "must hold at least one event"));
    }
    if n_events > max_events {
        return Err(Error::bad_input(
            "events",
            format!("holds {n_events} events; a batch holds at most {max_events}"),
        ));
    }
    Ok(())
}

/// What the policy says of one declared event type, for the batch checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTypeRule {
    /// The data category its events belong to.
    pub category: String,
    /// How long that category is kept, in milliseconds, and the policy's words for it
    /// (`13 months`); `None` when it is kept as long as the subject.
    pub retention: Option<(i64, String)>,
}

/// What the policy declares of an event type: its category and that category's retention.
pub fn event_type_rule(
    policy: &discreet_policy::Policy,
    event_type: EventType,
) -> Option<EventTypeRule> {
    let category = policy.category_of_event_type(event_type.as_str())?;
    let retention = policy.category_rule_of(category).map(|rule| {
        let millis = rule
            .retention
            .as_duration()
            .as_millis()
            .min(i64::MAX as u128) as i64;
        (millis, rule.retention.to_string())
    });
    Some(EventTypeRule {
        category: category.to_owned(),
        retention,
    })
}

/// Checks a whole batch: one problem rejects it, naming `events[i].field`. `rule_of` says
/// what the policy declares of an event type (`None`: not declared).
pub fn check_batch(
    events: &[EventInput],
    max_events: usize,
    now_millis: i64,
    rule_of: &dyn Fn(EventType) -> Option<EventTypeRule>,
) -> Result<()> {
    check_batch_size(events.len(), max_events)?;
    for (index, event) in events.iter().enumerate() {
        check_event(event, now_millis, rule_of)
            .map_err(|error| error.within(&format!("events[{index}]")))?;
    }
    Ok(())
}

/// Checks one event's meaning; fields are named relative to the event.
pub fn check_event(
    event: &EventInput,
    now_millis: i64,
    rule_of: &dyn Fn(EventType) -> Option<EventTypeRule>,
) -> Result<()> {
    check_subject("subject", &event.subject)?;
    let Some(rule) = rule_of(event.event_type) else {
        return Err(Error::bad_input("type", EventType::rule()));
    };
    if event.at < MIN_EVENT_MILLIS || event.at > now_millis.saturating_add(MAX_FUTURE_MILLIS) {
        return Err(Error::bad_input(
            "at",
            "must lie between 1970-01-01 and one day from now",
        ));
    }
    // The retention sweep erases what is older than this (`at < now - retention`): such an
    // event would be stored only to be erased, and served until the next sweep.
    if let Some((retention_millis, retention)) = &rule.retention
        && event.at < now_millis.saturating_sub(*retention_millis)
    {
        return Err(Error::bad_input(
            "at",
            format!(
                "is past the retention of its data category `{}` ({retention}): the policy does not keep events this old",
                rule.category
            ),
        ));
    }
    match &event.item {
        Some(item) => check_item("item", item)?,
        None if event.event_type != EventType::Search => {
            return Err(Error::bad_input(
                "item",
                format!("is required for a `{}` event", event.event_type.as_str()),
            ));
        }
        None => {}
    }
    match &event.query {
        Some(query) if query.is_empty() || !fits(query, MAX_QUERY_CHARS) => {
            return Err(Error::bad_input(
                "query",
                format!("must be 1 to {MAX_QUERY_CHARS} characters"),
            ));
        }
        None if event.event_type == EventType::Search => {
            return Err(Error::bad_input(
                "query",
                "is required for a `search` event",
            ));
        }
        _ => {}
    }
    if let Some(quantity) = event.quantity
        && !(1..=MAX_QUANTITY).contains(&quantity)
    {
        return Err(Error::bad_input("quantity", QUANTITY_RULE));
    }
    match event.value {
        None if event.event_type == EventType::Rating => {
            return Err(Error::bad_input(
                "value",
                "is required for a `rating` event",
            ));
        }
        Some(rating) if !(rating.is_finite() && (0.0..=10.0).contains(&rating)) => {
            return Err(Error::bad_input("value", RATING_RULE));
        }
        _ => {}
    }
    check_context("context", &event.context)
}
