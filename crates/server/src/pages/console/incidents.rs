//! Incidents: create one (what was exposed, since when), see its impact and the countdown to
//! the 72-hour deadline, download the Art. 33(3) draft report and the affected customers'
//! ids, and contain it (revoke the key, record the KEK rotation).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use discreet_engine::{ContainRequest, Incident, IncidentKind, IncidentRequest};
use discreet_vault::now_millis;

use super::*;

/// An incident as a row of the list.
pub struct IncidentRow {
    pub id: String,
    pub kind: &'static str,
    pub created: String,
    pub notify_by: String,
    pub left: String,
    pub subjects: u64,
    pub contained: bool,
}

fn kind_label(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::KeyCompromised => "API key compromised",
        IncidentKind::Window => "Every access in a time window",
        IncidentKind::DataCopy => "Copy of the data files",
    }
}

/// What is left of the 72 hours, in words.
fn time_left(notify_by: i64, now: i64) -> String {
    let left = notify_by - now;
    if left <= 0 {
        let over = -left / 60_000;
        return format!("overdue by {} h {:02} min", over / 60, over % 60);
    }
    let minutes = left / 60_000;
    format!("{} h {:02} min left", minutes / 60, minutes % 60)
}

fn contained(incident: &Incident) -> bool {
    incident.containment.key_revoked_at.is_some() || incident.containment.kek_rotated_at.is_some()
}

#[derive(Template)]
#[template(path = "console/incidents.html")]
struct IncidentsPage {
    frame: ConsoleFrame,
    incidents: Vec<IncidentRow>,
    keys: Vec<(String, String)>,
    problem: String,
    /// Ids of stored incidents that do not verify (the data store was edited).
    unreadable: Vec<String>,
}

async fn list_page(
    state: &AppState,
    desk: &Desk,
    problem: String,
    status: StatusCode,
) -> ConsoleResult {
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let list = run(move || engine.incidents(&caller))
        .await
        .map_err(|error| desk.engine_error(state, &error))?;
    let incidents = list.incidents;
    let now = now_millis();
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let keys = run(move || engine.incident_keys(&caller))
        .await
        .map_err(|error| desk.engine_error(state, &error))?
        .into_iter()
        .map(|(id, role, revoked)| {
            let label = if revoked {
                format!("{id} ({role}, revoked)")
            } else {
                format!("{id} ({role})")
            };
            (id, label)
        })
        .collect();
    let page = IncidentsPage {
        frame: desk.frame(state, ConsolePage::Incidents, "Incidents"),
        incidents: incidents
            .iter()
            .map(|incident| IncidentRow {
                id: incident.id.clone(),
                kind: kind_label(incident.kind),
                created: when_millis(incident.created_at),
                notify_by: when_millis(incident.notify_by),
                left: time_left(incident.notify_by, now),
                subjects: incident.impact.subjects,
                contained: contained(incident),
            })
            .collect(),
        keys,
        problem,
        unreadable: list.unreadable,
    };
    let mut response = render(state, page)?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /console/incidents`: every incident, and the form to open one.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    list_page(&state, &desk, String::new(), StatusCode::OK).await
}

/// The incident a form describes; the error names the field, never the value.
fn request_of(form: &[(String, String)]) -> Result<IncidentRequest, String> {
    let kind = match filled(form, "kind") {
        Some("key_compromised") => IncidentKind::KeyCompromised,
        Some("window") => IncidentKind::Window,
        Some("data_copy") => IncidentKind::DataCopy,
        Some(_) => return Err("kind: choose one of the listed kinds.".into()),
        None => return Err("kind: choose what happened.".into()),
    };
    let time = |name: &str| {
        filled(form, name)
            .map(|text| form_time(name, text))
            .transpose()
    };
    let key_id = match kind {
        IncidentKind::KeyCompromised => filled(form, "key_id").map(str::to_owned),
        _ => None,
    };
    let kek_exposed = match kind {
        IncidentKind::DataCopy => Some(field(form, "kek_exposed") == Some("yes")),
        _ => None,
    };
    Ok(IncidentRequest {
        kind,
        key_id,
        since: time("since")?,
        until: time("until")?,
        aware_at: time("aware_at")?,
        kek_exposed,
        description: filled(form, "description").map(str::to_owned),
    })
}

/// `POST /console/incidents`: computes the impact from the verified ledger and stores the
/// incident, then shows it.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(
        &state,
        form,
        &[
            "csrf",
            "kind",
            "key_id",
            "since",
            "until",
            "aware_at",
            "kek_exposed",
            "description",
        ],
    )?;
    let desk = form_desk(&state, &headers, &form)?;
    let request = match request_of(&form) {
        Ok(request) => request,
        Err(problem) => {
            return list_page(&state, &desk, problem, StatusCode::BAD_REQUEST).await;
        }
    };
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    match run(move || engine.create_incident(&caller, request)).await {
        Ok(incident) => Ok(see_other(&format!("/console/incidents/{}", incident.id))),
        Err(error @ EngineError::BadInput { .. }) => {
            list_page(&state, &desk, format!("{error}."), StatusCode::BAD_REQUEST).await
        }
        Err(error) => Err(desk.engine_error(&state, &error)),
    }
}

#[derive(Template)]
#[template(path = "console/incident.html")]
struct IncidentPage {
    frame: ConsoleFrame,
    incident: Incident,
    kind: &'static str,
    since: String,
    until: String,
    aware_at: String,
    notify_by: String,
    left: String,
    overdue: bool,
    key_revoked_at: String,
    kek_rotated_at: String,
    notice: String,
}

/// An incident id from the path: `inc_` and hex digits, else 404 (nothing echoed).
fn incident_id(
    state: &AppState,
    id: Result<Path<String>, PathRejection>,
) -> Result<String, ConsoleError> {
    match id {
        Ok(Path(id))
            if id.len() <= 40
                && id.strip_prefix("inc_").is_some_and(|hex| {
                    !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
                }) =>
        {
            Ok(id)
        }
        _ => Err(ConsoleError::new(
            state,
            StatusCode::NOT_FOUND,
            "There is no such incident.",
        )),
    }
}

async fn incident_page(
    state: &AppState,
    desk: &Desk,
    id: String,
    notice: String,
    status: StatusCode,
) -> ConsoleResult {
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let incident = run(move || engine.incident(&caller, &id))
        .await
        .map_err(|error| desk.engine_error(state, &error))?;
    let now = now_millis();
    let page = IncidentPage {
        frame: desk.frame(state, ConsolePage::Incidents, "Incident"),
        kind: kind_label(incident.kind),
        since: incident.since.map(when_millis).unwrap_or_default(),
        until: when_millis(incident.until),
        aware_at: when_millis(incident.aware_at),
        notify_by: when_millis(incident.notify_by),
        left: time_left(incident.notify_by, now),
        overdue: incident.notify_by <= now,
        key_revoked_at: incident
            .containment
            .key_revoked_at
            .map(when_millis)
            .unwrap_or_default(),
        kek_rotated_at: incident
            .containment
            .kek_rotated_at
            .map(when_millis)
            .unwrap_or_default(),
        notice,
        incident,
    };
    let mut response = render(state, page)?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /console/incidents/{id}`: the impact, the countdown, containment.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    let id = incident_id(&state, id)?;
    incident_page(&state, &desk, id, String::new(), StatusCode::OK).await
}

/// `GET /console/incidents/{id}/report.md`: the Art. 33(3) draft as a Markdown file.
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    let id = incident_id(&state, id)?;
    let (engine, caller, wanted) = (state.engine.clone(), desk.caller.clone(), id.clone());
    let markdown = run(move || engine.incident_report(&caller, &wanted))
        .await
        .map_err(|error| desk.engine_error(&state, &error))?;
    Ok(crate::pages::attachment(
        "text/markdown; charset=utf-8",
        &format!("{id}-report.md"),
        markdown,
    ))
}

/// `POST /console/incidents/{id}/subjects.csv`: the affected customers' ids, for Art. 34
/// notices (the read is itself on the ledger).
pub async fn subjects(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf"])?;
    let desk = form_desk(&state, &headers, &form)?;
    let id = incident_id(&state, id)?;
    let (engine, caller, wanted) = (state.engine.clone(), desk.caller.clone(), id.clone());
    let affected = run(move || engine.incident_subjects(&caller, &wanted))
        .await
        .map_err(|error| desk.engine_error(&state, &error))?;
    let mut csv = String::from("customer\r\n");
    for subject in &affected.subjects {
        // Customer ids are the shop's values: quoted, and never a spreadsheet formula.
        csv.push_str(&crate::pages::csv_cell(subject));
        csv.push_str("\r\n");
    }
    let mut response = crate::pages::attachment(
        "text/csv; charset=utf-8",
        &format!("{id}-customers.csv"),
        csv,
    );
    // Affected customers forgotten since are counted, their ids no longer retrievable.
    response.headers_mut().insert(
        axum::http::HeaderName::from_static("x-forgotten-subjects"),
        HeaderValue::from(affected.forgotten),
    );
    Ok(response)
}

/// `POST /console/incidents/{id}/contain`: revokes the key and/or records the KEK rotation.
pub async fn contain(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf", "revoke_key", "rotate_kek"])?;
    let desk = form_desk(&state, &headers, &form)?;
    let id = incident_id(&state, id)?;
    let request = ContainRequest {
        revoke_key: field(&form, "revoke_key") == Some("yes"),
        rotate_kek: field(&form, "rotate_kek") == Some("yes"),
    };
    let (engine, caller, wanted) = (state.engine.clone(), desk.caller.clone(), id.clone());
    match run(move || engine.contain_incident(&caller, &wanted, request)).await {
        Ok(_) => {
            // The officer may have revoked their own key.
            let desk = desk_of(&state, &headers, &desk.token, desk.officer.clone())?;
            incident_page(
                &state,
                &desk,
                id,
                "The containment is recorded on the ledger.".into(),
                StatusCode::OK,
            )
            .await
        }
        Err(error @ (EngineError::BadInput { .. } | EngineError::Conflict { .. })) => {
            let status = if matches!(error, EngineError::Conflict { .. }) {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            incident_page(&state, &desk, id, format!("Not done: {error}."), status).await
        }
        Err(error) => Err(desk.engine_error(&state, &error)),
    }
}
