//! The import's record format, read and written: JSON Lines with a `kind` per record
//! (`event`, `attributes`, `consent`, `item`) and CSV of events (a header naming the event
//! fields, `context.weather` for context), gzipped or not.
//!
//! Reading checks each record with exactly the API's checks — the server's `wire` readers
//! for the JSON shape, the engine's own checks for the meaning — and names the line and
//! field of a bad one, never its value. Writing produces what reading accepts, so an export
//! of one store imports into another.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use discreet_engine::items::check_item_input;
use discreet_engine::{
    AttributeInput, ConsentRecord, Engine, Error, EventInput, ItemInput, SubjectRecords,
};
use discreet_server::wire;
use serde_json::{Map, Value, json};

use crate::CommandError;

/// The kinds of JSON Lines record.
pub const RECORD_KINDS: [&str; 4] = ["event", "attributes", "consent", "item"];
/// The fields of an `attributes` record.
const ATTRIBUTES_FIELDS: [&str; 3] = ["kind", "subject", "values"];
/// The fields of a `consent` record.
const CONSENT_FIELDS: [&str; 7] = [
    "kind",
    "subject",
    "purpose",
    "granted",
    "source",
    "at",
    "policy_version",
];
/// The columns an events CSV may have (any order; `subject`, `type` and `at` required).
pub const EVENT_CSV_COLUMNS: [&str; 9] = [
    "subject",
    "type",
    "item",
    "at",
    "quantity",
    "query",
    "value",
    "context.weather",
    "context.country",
];

/// One checked record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Event(EventInput),
    Attributes {
        subject: String,
        values: Vec<AttributeInput>,
    },
    Consent {
        subject: String,
        record: ConsentRecord,
    },
    Item(ItemInput),
}

/// A record that failed its checks: where, and what is wrong (field and rule, no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub field: String,
    pub detail: String,
}

impl BadLine {
    fn of(line: usize, error: Error) -> BadLine {
        match error {
            Error::BadInput { field, detail } => BadLine {
                line,
                field: if field.is_empty() {
                    "record".into()
                } else {
                    field
                },
                detail,
            },
            other => BadLine {
                line,
                field: "record".into(),
                detail: other.to_string(),
            },
        }
    }
}

/// What a file holds: its good records with their line numbers, and its bad lines.
#[derive(Debug, Default)]
pub struct FileRecords {
    pub records: Vec<(usize, Record)>,
    pub bad: Vec<BadLine>,
}

/// Opens `path`, decompressing it when its name ends in `.gz`; also the name less `.gz`.
pub fn open_maybe_gzipped(path: &Path) -> Result<(Box<dyn Read>, String), CommandError> {
    let file = std::fs::File::open(path).map_err(|error| {
        CommandError::BadInput(format!("cannot open {}: {error}", path.display()))
    })?;
    let name = path.to_string_lossy().to_ascii_lowercase();
    Ok(match name.strip_suffix(".gz") {
        Some(inner) => (
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
            inner.to_owned(),
        ),
        None => (Box::new(BufReader::new(file)), name),
    })
}

/// A wire reader's error with the record's own prefix taken off (`record.at` → `at`).
fn unprefixed(error: Error) -> Error {
    match error {
        Error::BadInput { field, detail } => Error::BadInput {
            field: field
                .strip_prefix("record.")
                .map(str::to_owned)
                .unwrap_or(field),
            detail,
        },
        other => other,
    }
}

/// Reads a JSON Lines file (blank lines are skipped), checking every record.
pub fn read_jsonl(engine: &Engine, input: impl Read) -> FileRecords {
    let mut records = FileRecords::default();
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let line_number = index + 1;
        let line = match line {
            Ok(line) => line,
            Err(_) => {
                records.bad.push(BadLine {
                    line: line_number,
                    field: "record".into(),
                    detail: "cannot be read as UTF-8 text".into(),
                });
                // The reader cannot go on past bytes it cannot read.
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match json_record(engine, &line) {
            Ok(record) => records.records.push((line_number, record)),
            Err(error) => records.bad.push(BadLine::of(line_number, error)),
        }
    }
    records
}

/// One JSON Lines record, read and checked.
pub fn json_record(engine: &Engine, line: &str) -> discreet_engine::Result<Record> {
    let value: Value = serde_json::from_str(line).map_err(|error| {
        Error::bad_input(
            "record",
            format!(
                "is not JSON (column {}): one JSON object a line",
                error.column()
            ),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err(Error::bad_input(
            "record",
            format!("must be a JSON object, got {}", wire::describe(&value)),
        ));
    };
    let kind = match object.remove("kind") {
        Some(Value::String(kind)) if RECORD_KINDS.contains(&kind.as_str()) => kind,
        None => {
            return Err(Error::bad_input(
                "kind",
                format!("is required: one of {}", RECORD_KINDS.join(", ")),
            ));
        }
        Some(_) => {
            return Err(Error::bad_input(
                "kind",
                format!("must be one of {}", RECORD_KINDS.join(", ")),
            ));
        }
    };
    match kind.as_str() {
        "event" => {
            let event = wire::event("record", &Value::Object(object)).map_err(unprefixed)?;
            engine.check_event(&event)?;
            Ok(Record::Event(event))
        }
        "attributes" => attributes_record(engine, object),
        "consent" => consent_record(engine, object),
        _ => {
            let item = wire::item("record.", None, &Value::Object(object)).map_err(unprefixed)?;
            check_item_input(&item)?;
            Ok(Record::Item(item))
        }
    }
}

/// Refuses a field not in `known`, naming its position (a name may be anything typed).
fn known_fields(
    object: &Map<String, Value>,
    known: &[&str],
    what: &str,
) -> discreet_engine::Result<()> {
    match object
        .keys()
        .position(|key| key != "kind" && !known.contains(&key.as_str()))
    {
        Some(position) => Err(Error::bad_input(
            "record",
            format!(
                "has a field that is not a field of {what} (field {} in name order); known fields: {}",
                position + 1,
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn required_text(object: &Map<String, Value>, field: &str) -> discreet_engine::Result<String> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        None | Some(Value::Null) => Err(Error::bad_input(field, "is required")),
        Some(other) => Err(Error::bad_input(
            field,
            format!("must be a string, got {}", wire::describe(other)),
        )),
    }
}

fn attributes_record(
    engine: &Engine,
    object: Map<String, Value>,
) -> discreet_engine::Result<Record> {
    known_fields(&object, &ATTRIBUTES_FIELDS, "an attributes record")?;
    let subject = required_text(&object, "subject")?;
    let Some(values) = object.get("values") else {
        return Err(Error::bad_input("values", "is required"));
    };
    let in_values = |error: Error| match error {
        Error::BadInput { field, detail } if field == "body" || field.is_empty() => {
            Error::bad_input("values", detail)
        }
        Error::BadInput { field, detail } if field != "subject" => {
            Error::bad_input(format!("values.{field}"), detail)
        }
        other => other,
    };
    let values = wire::attributes(values).map_err(in_values)?;
    engine
        .check_attributes(&subject, &values)
        .map_err(in_values)?;
    Ok(Record::Attributes { subject, values })
}

fn consent_record(engine: &Engine, object: Map<String, Value>) -> discreet_engine::Result<Record> {
    known_fields(&object, &CONSENT_FIELDS, "a consent record")?;
    let subject = required_text(&object, "subject")?;
    let purpose = required_text(&object, "purpose")?;
    let source = required_text(&object, "source")?;
    // The decision's own fields, read as `PUT .../consents/{purpose}` reads its body.
    let mut body = Map::new();
    for field in ["granted", "source"] {
        if let Some(value) = object.get(field) {
            body.insert(field.to_owned(), value.clone());
        }
    }
    let decision = wire::consent(&Value::Object(body))?;
    let at = wire::parse_time("at", &required_text(&object, "at")?)?;
    let policy_version = match object.get("policy_version") {
        None | Some(Value::Null) => None,
        Some(_) => Some(required_text(&object, "policy_version")?),
    };
    let record = ConsentRecord {
        purpose,
        granted: decision.granted,
        source,
        at,
        policy_version,
    };
    engine.check_consent_record(&subject, &record)?;
    Ok(Record::Consent { subject, record })
}

/// Reads an events CSV file: each row becomes the JSON object of an event and is read by
/// the same `wire` reader and engine check as a JSON Lines event.
pub fn read_events_csv(engine: &Engine, input: impl Read) -> Result<FileRecords, CommandError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(input);
    let headers = reader
        .headers()
        .map_err(|error| CommandError::BadInput(format!("line 1: no header line ({error})")))?
        .clone();
    let columns: Vec<&str> = headers.iter().map(str::trim).collect();
    if let Some(position) = columns
        .iter()
        .position(|column| !EVENT_CSV_COLUMNS.contains(column))
    {
        return Err(CommandError::BadInput(format!(
            "line 1: column {} of the header is not an event field; known columns: {}",
            position + 1,
            EVENT_CSV_COLUMNS.join(",")
        )));
    }
    for required in ["subject", "type", "at"] {
        if !columns.contains(&required) {
            return Err(CommandError::BadInput(format!(
                "line 1: the header must name `{required}` (columns: {})",
                EVENT_CSV_COLUMNS.join(",")
            )));
        }
    }
    let mut records = FileRecords::default();
    for (index, row) in reader.records().enumerate() {
        let fallback_line = index + 2;
        let row = match row {
            Ok(row) => row,
            Err(error) => {
                let line = error
                    .position()
                    .map_or(fallback_line, |position| position.line() as usize);
                records.bad.push(BadLine {
                    line,
                    field: "record".into(),
                    detail: "is not a CSV row of the header's columns".into(),
                });
                continue;
            }
        };
        let line = row
            .position()
            .map_or(fallback_line, |position| position.line() as usize);
        let mut event = Map::new();
        let mut context = Map::new();
        for (column, cell) in columns.iter().zip(row.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let value = match *column {
                // Numbers where the API takes numbers; anything else is left as text for
                // the reader to name.
                "quantity" | "value" => serde_json::from_str::<serde_json::Number>(cell)
                    .map(Value::Number)
                    .unwrap_or_else(|_| Value::String(cell.to_owned())),
                _ => Value::String(cell.to_owned()),
            };
            match column.strip_prefix("context.") {
                Some(name) => context.insert(name.to_owned(), value),
                None => event.insert((*column).to_owned(), value),
            };
        }
        if !context.is_empty() {
            event.insert("context".into(), Value::Object(context));
        }
        let checked = wire::event("record", &Value::Object(event))
            .map_err(unprefixed)
            .and_then(|event| engine.check_event(&event).map(|()| event));
        match checked {
            Ok(event) => records.records.push((line, Record::Event(event))),
            Err(error) => records.bad.push(BadLine::of(line, error)),
        }
    }
    Ok(records)
}

// ---------------------------------------------------------------------------- writing

/// The JSON of an event record, in `POST /v1/events`'s shape plus `kind`.
pub fn event_json(event: &EventInput) -> Value {
    let mut object = Map::new();
    object.insert("kind".into(), json!("event"));
    object.insert("subject".into(), json!(event.subject));
    object.insert("type".into(), json!(event.event_type.as_str()));
    if let Some(item) = &event.item {
        object.insert("item".into(), json!(item));
    }
    object.insert("at".into(), json!(discreet_vault::rfc3339(event.at)));
    if let Some(quantity) = event.quantity {
        object.insert("quantity".into(), json!(quantity));
    }
    if let Some(query) = &event.query {
        object.insert("query".into(), json!(query));
    }
    if let Some(value) = event.value {
        object.insert("value".into(), json!(value));
    }
    if !event.context.is_empty() {
        object.insert("context".into(), json!(event.context));
    }
    Value::Object(object)
}

/// The JSON of an item record, in `PUT /v1/items/{item}`'s shape plus `kind` and `item`.
pub fn item_json(item: &ItemInput) -> Value {
    let mut object = Map::new();
    object.insert("kind".into(), json!("item"));
    object.insert("item".into(), json!(item.item));
    object.insert("title".into(), json!(item.title));
    if !item.categories.is_empty() {
        object.insert("categories".into(), json!(item.categories));
    }
    if let Some(price) = item.price {
        object.insert("price".into(), json!(price));
    }
    object.insert("available".into(), json!(item.available));
    Value::Object(object)
}

/// The record lines of one subject: consents in recorded order, its attributes, its events.
pub fn subject_json(records: &SubjectRecords) -> Vec<Value> {
    let mut lines = Vec::with_capacity(records.events.len() + records.consents.len() + 1);
    for consent in &records.consents {
        let mut object = Map::new();
        object.insert("kind".into(), json!("consent"));
        object.insert("subject".into(), json!(records.subject));
        object.insert("purpose".into(), json!(consent.purpose));
        object.insert("granted".into(), json!(consent.granted));
        object.insert("source".into(), json!(consent.source));
        object.insert("at".into(), json!(discreet_vault::rfc3339(consent.at)));
        if let Some(version) = &consent.policy_version {
            object.insert("policy_version".into(), json!(version));
        }
        lines.push(Value::Object(object));
    }
    if !records.attributes.is_empty() {
        let values: BTreeMap<&str, &str> = records
            .attributes
            .iter()
            .map(|attribute| (attribute.name.as_str(), attribute.value.as_str()))
            .collect();
        lines.push(json!({"kind": "attributes", "subject": records.subject, "values": values}));
    }
    lines.extend(records.events.iter().map(event_json));
    lines
}

/// Writes one JSON value a line.
pub fn write_line(output: &mut dyn Write, value: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *output, value)?;
    output.write_all(b"\n")
}
