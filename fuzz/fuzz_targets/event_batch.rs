//! The event parser: bytes → JSON → `wire::event_batch` (the HTTP boundary's structure
//! checks) → `check_batch` (the engine's checks of meaning) → the sealed payload form.
//! Properties: nothing panics; an error never echoes a string value of the input; an
//! accepted event's sealed form opens to the same payload.

#![no_main]

use std::sync::OnceLock;

use discreet_engine::input::{
    QUANTITY_RULE, RATING_RULE, WEATHER_NAMES, check_batch, event_type_rule,
};
use discreet_engine::{EventPayload, EventType};
use discreet_policy::Policy;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// 2011-11-02T10:00:00Z, so that times around the example in the API are in range.
const NOW_MILLIS: i64 = 1_320_228_000_000;
const MAX_EVENTS: usize = 10_000;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(Policy::builtin_retail)
}

/// Text the messages themselves contain; an input value equal to a part of it proves nothing.
fn vocabulary() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} {QUANTITY_RULE} {RATING_RULE} {} 2011-11-02T10:00:00Z",
            EventType::rule(),
            WEATHER_NAMES.join(", ")
        )
    })
}

fn string_values<'a>(value: &'a Value, into: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => into.push(text),
        Value::Array(values) => values.iter().for_each(|value| string_values(value, into)),
        Value::Object(map) => map.values().for_each(|value| string_values(value, into)),
        _ => {}
    }
}

/// The detail of a refusal (the field it names is a path of names, not a value) must not
/// repeat a string value of the input.
fn assert_no_echo(error: &discreet_engine::Error, input: &Value) {
    let message = match error {
        discreet_engine::Error::BadInput { detail, .. } => detail.as_str(),
        other => panic!("bad input was refused as something else: {other}"),
    };
    let mut values = Vec::new();
    string_values(input, &mut values);
    for text in values {
        // Messages are ASCII text of their own; an ASCII value can spell a part of them (the
        // fuzzer even learns their words from this very comparison), so only values with a
        // character no message holds are looked for. An echo would repeat those too.
        let telling = !text.is_ascii() && text.chars().count() >= 3;
        if telling && !vocabulary().contains(text) {
            assert!(
                !message.contains(text),
                "an error message echoes an input value: {message}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let events = match discreet_server::wire::event_batch(&body, MAX_EVENTS) {
        Ok(events) => events,
        Err(error) => {
            assert_no_echo(&error, &body);
            return;
        }
    };
    let declared = |event_type: EventType| event_type_rule(policy(), event_type);
    if let Err(error) = check_batch(&events, MAX_EVENTS, NOW_MILLIS, &declared) {
        assert_no_echo(&error, &body);
        return;
    }
    for event in &events {
        let payload = EventPayload::of(event);
        let opened = EventPayload::from_bytes(&payload.to_bytes()).expect("a sealed payload opens");
        assert_eq!(opened, payload, "the sealed form round-trips");
    }
});
