//! The data map (the records of processing) and subject lookup: a customer's export as an
//! officer answering an access request sees it, and forget with confirmation. Customer ids
//! travel only in form posts, never in a URL; each lookup and forget is on the ledger under
//! the officer's key.

use axum::extract::State;
use discreet_engine::SubjectExport;
use discreet_policy::RecordsOfProcessing;
use discreet_vault::ForgetReceipt;

use super::*;

/// Events a lookup lists at most (the export file has them all).
const EVENTS_SHOWN: usize = 200;
/// Ledger entries a lookup lists at most.
const ACCESS_SHOWN: usize = 50;

#[derive(Template)]
#[template(path = "console/data_map.html")]
struct DataMapPage {
    frame: ConsoleFrame,
    records: RecordsOfProcessing,
}

/// `GET /console/data-map`: the records of processing (GDPR Art. 30).
pub async fn data_map(State(state): State<AppState>, headers: HeaderMap) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let records = run(move || engine.records(&caller))
        .await
        .map_err(|error| desk.engine_error(&state, &error))?;
    let page = DataMapPage {
        frame: desk.frame(&state, ConsolePage::DataMap, "Data map"),
        records,
    };
    render(&state, page)
}

/// An event as a row.
pub struct EventLine {
    pub at: String,
    pub kind: String,
    pub item: String,
    pub category: String,
}

#[derive(Template)]
#[template(path = "console/subjects.html")]
struct SubjectsPage {
    frame: ConsoleFrame,
    /// The customer shown (empty: only the lookup form).
    customer: String,
    export: Option<SubjectExport>,
    events: Vec<EventLine>,
    events_hidden: usize,
    access_hidden: usize,
    problem: String,
    receipt: Option<ForgetReceipt>,
}

impl SubjectsPage {
    fn empty(frame: ConsoleFrame) -> SubjectsPage {
        SubjectsPage {
            frame,
            customer: String::new(),
            export: None,
            events: Vec::new(),
            events_hidden: 0,
            access_hidden: 0,
            problem: String::new(),
            receipt: None,
        }
    }
}

/// `GET /console/subjects`: the lookup form.
pub async fn subjects(State(state): State<AppState>, headers: HeaderMap) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    let page = SubjectsPage::empty(desk.frame(&state, ConsolePage::Subjects, "Subjects"));
    render(&state, page)
}

/// The customer id of a lookup or forget form, checked like the API's.
fn customer_of(state: &AppState, form: &[(String, String)]) -> Result<String, ConsoleError> {
    let customer = filled(form, "customer")
        .ok_or_else(|| ConsoleError::bad_request(state, "customer: enter a customer id."))?;
    discreet_engine::input::check_subject("customer", customer)
        .map_err(|error| ConsoleError::bad_request(state, format!("{error}.")))?;
    Ok(customer.to_owned())
}

async fn export_page(state: &AppState, desk: &Desk, customer: String) -> ConsoleResult {
    let (engine, caller, subject) = (state.engine.clone(), desk.caller.clone(), customer.clone());
    let export = match run(move || engine.export(&caller, &subject)).await {
        Ok(export) => export,
        Err(EngineError::NotFound { .. }) => {
            let mut page =
                SubjectsPage::empty(desk.frame(state, ConsolePage::Subjects, "Subjects"));
            page.problem = "No customer with that id is held (never seen, or forgotten).".into();
            let mut response = render(state, page)?;
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
        Err(error) => return Err(desk.engine_error(state, &error)),
    };
    let titles = state.engine.item_titles(
        export
            .events
            .iter()
            .filter_map(|event| event.payload.item.as_deref()),
    );
    let events = export
        .events
        .iter()
        .take(EVENTS_SHOWN)
        .map(|event| {
            let item = event.payload.item.clone().unwrap_or_default();
            EventLine {
                at: crate::pages::view::when(crate::pages::locale::Locale::En, &event.at),
                kind: event.payload.event_type.as_str().to_owned(),
                item: match titles.get(&item) {
                    Some(title) => format!("{title} ({item})"),
                    None => item,
                },
                category: event.category.clone(),
            }
        })
        .collect();
    let page = SubjectsPage {
        frame: desk.frame(state, ConsolePage::Subjects, "Subjects"),
        customer,
        events_hidden: export.events.len().saturating_sub(EVENTS_SHOWN),
        access_hidden: export.access_log.len().saturating_sub(ACCESS_SHOWN),
        events,
        export: Some(export),
        problem: String::new(),
        receipt: None,
    };
    render(state, page)
}

/// `POST /console/subjects`: one customer's export (on the ledger under the officer's key).
pub async fn look_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf", "customer"])?;
    let desk = form_desk(&state, &headers, &form)?;
    let customer = customer_of(&state, &form)?;
    export_page(&state, &desk, customer).await
}

/// `POST /console/subjects/forget`: with the box ticked, forgets the customer everywhere
/// and shows the receipt; without it, shows the customer again and changes nothing.
pub async fn forget(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf", "customer", "confirm"])?;
    let desk = form_desk(&state, &headers, &form)?;
    let customer = customer_of(&state, &form)?;
    if field(&form, "confirm") != Some("yes") {
        // Nothing is read or changed: the lookup form comes back with the problem.
        let mut page = SubjectsPage::empty(desk.frame(&state, ConsolePage::Subjects, "Subjects"));
        page.customer = customer;
        page.problem =
            "confirm: tick the box to confirm the forget; nothing was changed. Look the customer up again to forget them.".into();
        let mut response = render(&state, page)?;
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    let (engine, caller, subject) = (state.engine.clone(), desk.caller.clone(), customer);
    let receipt = run(move || engine.forget(&caller, &subject))
        .await
        .map_err(|error| desk.engine_error(&state, &error))?;
    let mut page = SubjectsPage::empty(desk.frame(&state, ConsolePage::Subjects, "Subjects"));
    page.receipt = Some(receipt);
    render(&state, page)
}
