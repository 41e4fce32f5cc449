//! Events as they are sealed, and the one way an event becomes a model interaction — at
//! ingest, at a consent grant, at a forget, at a retention sweep and at a rebuild alike, so
//! that unlearning always subtracts exactly what learning added.

use discreet_model::{
    Context, Interaction, InteractionKind, ModelSet, SubjectId as ModelSubject, Weather,
};
use discreet_vault::{Event, SubjectId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{EventContext, EventInput, EventType};

/// What is sealed for one event (everything but the subject and the time, which the vault
/// keeps as row metadata — the time in clear for retention).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventPayload {
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub item: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quantity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "EventContext::is_empty", default)]
    pub context: EventContext,
}

impl EventPayload {
    /// The sealed part of an event.
    pub fn of(event: &EventInput) -> EventPayload {
        EventPayload {
            event_type: event.event_type,
            item: event.item.clone(),
            quantity: event.quantity,
            query: event.query.clone(),
            value: event.value,
            context: event.context.clone(),
        }
    }

    /// The model's kind for this event, when it names an item the models can learn.
    pub fn interaction_kind(&self) -> Option<InteractionKind> {
        self.item.as_ref()?;
        match self.event_type {
            EventType::View => Some(InteractionKind::View),
            EventType::Cart => Some(InteractionKind::Cart),
            EventType::Purchase => Some(InteractionKind::Purchase),
            EventType::Rating => Some(InteractionKind::Rating),
            EventType::Search => None,
        }
    }

    /// Sealed form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Opens the sealed form.
    pub fn from_bytes(bytes: &[u8]) -> Result<EventPayload> {
        serde_json::from_slice(bytes)
            .map_err(|error| Error::internal(format!("a stored event does not decode: {error}")))
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

/// The models' name of a vault subject.
pub(crate) fn model_name(subject: SubjectId) -> String {
    subject.to_string()
}

/// Unix seconds of unix milliseconds.
pub(crate) fn seconds(millis: i64) -> i64 {
    millis.div_euclid(1_000)
}

/// The hour of the day (UTC) of unix milliseconds.
pub(crate) fn hour_of_day(millis: i64) -> u8 {
    (millis.div_euclid(3_600_000).rem_euclid(24)) as u8
}

/// The model interaction of an event, interning its names; `None` for events the models
/// do not learn (searches).
pub(crate) fn interaction_from(
    set: &mut ModelSet,
    subject: SubjectId,
    at_millis: i64,
    payload: &EventPayload,
) -> Option<Interaction> {
    let kind = payload.interaction_kind()?;
    let item = set.item(payload.item.as_deref()?);
    let model_subject: ModelSubject = set.subject(&model_name(subject));
    let country = payload
        .context
        .country
        .as_deref()
        .map(|name| set.country(name));
    Some(Interaction {
        subject: model_subject,
        item,
        at: seconds(at_millis),
        kind,
        quantity: payload.quantity.unwrap_or(1),
        context: Context {
            weather: weather_of(payload.context.weather.as_deref()),
            country,
            hour_of_day: Some(hour_of_day(at_millis)),
        },
    })
}

/// The model interactions of stored events (opened from the vault), in order.
pub(crate) fn interactions_of<'a>(
    set: &mut ModelSet,
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<Vec<Interaction>> {
    let mut interactions = Vec::new();
    for event in events {
        let payload = EventPayload::from_bytes(&event.payload)?;
        if let Some(interaction) = interaction_from(set, event.subject, event.at, &payload) {
            interactions.push(interaction);
        }
    }
    Ok(interactions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_of_day_wraps_before_1970() {
        assert_eq!(hour_of_day(-1), 23);
        assert_eq!(hour_of_day(3_600_000 * 25), 1);
    }

    /// Guards the sealed format: payloads written before event types were typed still open.
    #[test]
    fn sealed_payloads_keep_their_format() {
        let stored = br#"{"type":"purchase","item":"85123A","quantity":6,"context":{"country":"United Kingdom"}}"#;
        let payload = EventPayload::from_bytes(stored).expect("decodes");
        assert_eq!(payload.event_type, EventType::Purchase);
        assert_eq!(payload.to_bytes(), stored.to_vec());
    }
}
