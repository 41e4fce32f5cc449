//! The privacy center: a customer sees what the shop holds and derived, downloads it,
//! decides their consents, sees who used their data, and forgets it — each page through
//! the engine with `Caller::data_subject`, so every action is on the ledger as
//! `portal:<session id>`, and a session never reaches another customer's data. No customer
//! id is ever in a URL: the session names the subject.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use discreet_engine::{Caller, ConsentsView, Engine, Error as EngineError, SubjectExport};
use discreet_policy::Action;
use discreet_vault::{ForgetReceipt, rfc3339};
use serde_json::json;

use super::locale::{LOCALES, Locale, Texts};
use super::sessions::{FormRefusal, Grant, MintRefusal, Refusal, Session};
use super::view::{
    ActivityRow, EventRow, Frame, PortalPage, category_label, consent_state, legal_basis, paginate,
    when,
};
use super::{PORTAL_COOKIE, cookie, html, request_host, set_cookie};
use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult, bad};
use crate::routes::JsonBody;
use crate::state::AppState;
use crate::wire;

/// Where a consent decision made in the privacy center is recorded as coming from.
pub const PORTAL_SOURCE: &str = "privacy-center";

// ------------------------------------------------------------------------------ minting

/// Send a logged-in customer to the privacy center: a single-use start URL (10 minutes),
/// swapped on its first visit for a cookie session of at most 30 minutes bound to that one
/// customer.
#[utoipa::path(post, path = "/v1/portal/sessions", tag = "privacy center",
    request_body(content = ref("#/components/schemas/PortalSessionIn")),
    responses((status = 201, body = crate::openapi::PortalSessionAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::NotReady)),
    security(("api_key" = [])))]
pub async fn post_portal_session(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    state.engine.check_action(&caller, Action::Portal)?;
    let request = wire::portal_request(&body.value, &LOCALES)?;
    discreet_engine::input::check_subject("subject", &request.subject)?;
    let host = request_host(&headers)
        .ok_or_else(|| bad("Host", "must name the host this API was reached at"))?
        .to_owned();
    let minting = state.clone();
    let answer =
        tokio::task::spawn_blocking(move || open_session(&minting, &caller, request, &host))
            .await
            .map_err(|error| {
                ApiError::Engine(EngineError::Internal {
                    detail: format!("a worker stopped: {error}"),
                })
            })??;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Opens a privacy-center session for a checked request reached at `host` (blocking: the
/// opening is written to the ledger): the answer of `POST /v1/portal/sessions`, whose `url`
/// is `http` on localhost and `https` elsewhere.
pub fn open_session(
    state: &AppState,
    caller: &Caller,
    request: wire::PortalBody,
    host: &str,
) -> ApiResult<serde_json::Value> {
    let scheme = if wire::is_local_host(host) {
        "http"
    } else {
        "https"
    };
    let minted = state
        .portal
        .mint(Grant {
            subject: request.subject.clone(),
            return_url: request.return_url,
            locale: request.locale,
        })
        .map_err(|refusal| match refusal {
            MintRefusal::Full => ApiError::PortalSessionsFull,
            MintRefusal::Random => ApiError::Engine(EngineError::Internal {
                detail: "the random source failed".into(),
            }),
        })?;
    if let Err(error) = state
        .engine
        .open_portal(caller, &request.subject, &minted.id)
    {
        state.portal.discard(&minted.start_token);
        return Err(error.into());
    }
    Ok(json!({
        "id": minted.id,
        "url": format!("{scheme}://{host}/portal/start/{}", minted.start_token),
        "expires_at": rfc3339(minted.expires_at),
    }))
}

// ------------------------------------------------------------------------------ answers

/// A page that could not be shown: an HTML answer with the way back to the shop.
pub struct PageError {
    status: StatusCode,
    locale: Locale,
    title: fn(&Texts) -> &'static str,
    message: fn(&Texts) -> &'static str,
    return_url: String,
}

impl PageError {
    fn new(
        status: StatusCode,
        locale: Locale,
        title: fn(&Texts) -> &'static str,
        message: fn(&Texts) -> &'static str,
    ) -> PageError {
        PageError {
            status,
            locale,
            title,
            message,
            return_url: String::new(),
        }
    }

    fn returning(mut self, return_url: &str) -> PageError {
        self.return_url = return_url.to_owned();
        self
    }

    fn bad_request(locale: Locale) -> PageError {
        PageError::new(
            StatusCode::BAD_REQUEST,
            locale,
            |t| t.error_title,
            |t| t.bad_request,
        )
    }

    /// A refused session: 401, with the way back when the session was known.
    fn refused(locale: Locale, refusal: Refusal) -> PageError {
        match refusal {
            Refusal::Unknown => PageError::new(
                StatusCode::UNAUTHORIZED,
                locale,
                |t| t.ended_title,
                |t| t.link_not_valid,
            ),
            Refusal::Ended { return_url } => PageError::new(
                StatusCode::UNAUTHORIZED,
                locale,
                |t| t.ended_title,
                |t| t.session_ended,
            )
            .returning(&return_url),
        }
    }

    /// An engine refusal or failure, as a page.
    fn engine(locale: Locale, error: &EngineError, return_url: &str) -> PageError {
        let (status, message): (StatusCode, fn(&Texts) -> &'static str) = match error {
            EngineError::NotFound { .. } => (StatusCode::UNAUTHORIZED, |t| t.session_ended),
            EngineError::Forgetting => (StatusCode::CONFLICT, |t| t.being_forgotten),
            EngineError::NotReady | EngineError::LedgerUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, |t| t.unavailable)
            }
            EngineError::BadInput { .. } => (StatusCode::BAD_REQUEST, |t| t.bad_request),
            EngineError::Forbidden { .. } => (StatusCode::FORBIDDEN, |t| t.bad_request),
            EngineError::Internal { detail } => {
                tracing::error!(detail = %detail, "internal error on a privacy-center page");
                (StatusCode::INTERNAL_SERVER_ERROR, |t| t.something_failed)
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, |t| t.something_failed),
        };
        let title: fn(&Texts) -> &'static str = if status == StatusCode::UNAUTHORIZED {
            |t| t.ended_title
        } else {
            |t| t.error_title
        };
        PageError::new(status, locale, title, message).returning(return_url)
    }
}

#[derive(Template)]
#[template(path = "portal/ended.html")]
struct EndedPage {
    frame: Frame,
    message: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let t = self.locale.texts();
        let page = EndedPage {
            frame: Frame::bare(self.locale, (self.title)(t), &self.return_url),
            message: (self.message)(t),
        };
        match page.render() {
            Ok(body) => html(self.status, body),
            Err(_) => (self.status, (self.message)(t)).into_response(),
        }
    }
}

pub type PageResult = Result<Response, PageError>;

fn render(page: impl Template, locale: Locale) -> PageResult {
    page.render()
        .map(|body| html(StatusCode::OK, body))
        .map_err(|error| {
            tracing::error!(%error, "a privacy-center page did not render");
            PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                locale,
                |t| t.error_title,
                |t| t.something_failed,
            )
        })
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

// ------------------------------------------------------------------------------ sessions

/// The live session a request's cookie names, with the page's language.
struct Visit {
    token: String,
    session: Session,
    locale: Locale,
}

impl Visit {
    fn caller(&self) -> Caller {
        Caller::data_subject(&self.session.id, &self.session.grant.subject)
    }

    fn subject(&self) -> String {
        self.session.grant.subject.clone()
    }

    fn frame(&self, engine: &Engine, page: PortalPage, title: &'static str) -> Frame {
        Frame::portal(
            self.locale,
            page,
            title,
            &engine.policy().controller().name,
            &self.session.grant.return_url,
            &self.session.csrf,
        )
    }

    fn engine_error(&self, error: &EngineError) -> PageError {
        PageError::engine(self.locale, error, &self.session.grant.return_url)
    }
}

fn token_of(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, PORTAL_COOKIE)
        .filter(|token| token.len() == 64 && token.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

/// The visit of a live session whose subject is still held (a forgotten subject's session
/// shows only its receipt).
fn visit(state: &AppState, headers: &HeaderMap) -> Result<Visit, PageError> {
    let visit = any_visit(state, headers)?;
    if visit.session.receipt.is_some() {
        return Err(PageError::refused(
            visit.locale,
            Refusal::Ended {
                return_url: visit.session.grant.return_url.clone(),
            },
        ));
    }
    Ok(visit)
}

fn any_visit(state: &AppState, headers: &HeaderMap) -> Result<Visit, PageError> {
    let browser = Locale::choose(None, headers);
    let token = token_of(headers).ok_or(PageError::refused(browser, Refusal::Unknown))?;
    let session = state
        .portal
        .get(token)
        .map_err(|refusal| PageError::refused(browser, refusal))?;
    let locale = Locale::choose(session.grant.locale.as_deref(), headers);
    Ok(Visit {
        token: token.to_owned(),
        session,
        locale,
    })
}

/// The visit of a form post: a live session, and the form's CSRF token is its own.
fn form_visit(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Visit, PageError> {
    let browser = Locale::choose(None, headers);
    let token = token_of(headers).ok_or(PageError::refused(browser, Refusal::Unknown))?;
    let csrf = form
        .iter()
        .find(|(name, _)| name == "csrf")
        .map_or("", |(_, value)| value.as_str());
    let session = state
        .portal
        .get_for_form(token, csrf)
        .map_err(|refusal| match refusal {
            FormRefusal::Session(refusal) => PageError::refused(browser, refusal),
            FormRefusal::Csrf => PageError::new(
                StatusCode::FORBIDDEN,
                browser,
                |t| t.error_title,
                |t| t.form_expired,
            ),
        })?;
    let locale = Locale::choose(session.grant.locale.as_deref(), headers);
    Ok(Visit {
        token: token.to_owned(),
        session,
        locale,
    })
}

/// A form body, or a 400 page; only the names in `known` may appear.
fn form_fields(
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    headers: &HeaderMap,
    known: &[&str],
) -> Result<Vec<(String, String)>, PageError> {
    let locale = Locale::choose(None, headers);
    let Form(pairs) = form.map_err(|_| PageError::bad_request(locale))?;
    if pairs
        .iter()
        .any(|(name, _)| !known.contains(&name.as_str()))
    {
        return Err(PageError::bad_request(locale));
    }
    Ok(pairs)
}

/// Runs engine work on the blocking pool.
async fn run<T: Send + 'static>(
    work: impl FnOnce() -> discreet_engine::Result<T> + Send + 'static,
) -> discreet_engine::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(EngineError::Internal {
                detail: format!("a worker stopped: {error}"),
            })
        })
}

async fn export_of(state: &AppState, visit: &Visit) -> Result<SubjectExport, PageError> {
    let (engine, caller, subject) = (state.engine.clone(), visit.caller(), visit.subject());
    run(move || engine.export(&caller, &subject))
        .await
        .map_err(|error| visit.engine_error(&error))
}

/// The `page` parameter of a list (1 when absent).
fn page_param(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    locale: Locale,
) -> Result<usize, PageError> {
    let Query(pairs) = query.map_err(|_| PageError::bad_request(locale))?;
    let mut page = 1;
    for (name, value) in pairs {
        match (name.as_str(), value.parse::<usize>()) {
            ("page", Ok(number)) if number >= 1 => page = number,
            _ => return Err(PageError::bad_request(locale)),
        }
    }
    Ok(page)
}

// ------------------------------------------------------------------------------ pages

/// `GET /portal/start/{token}`: swaps the single-use start token for a session cookie.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
) -> PageResult {
    let browser = Locale::choose(None, &headers);
    let Ok(Path(token)) = token else {
        return Err(PageError::refused(browser, Refusal::Unknown));
    };
    let (cookie_token, _) = state
        .portal
        .start(&token)
        .map_err(|refusal| PageError::refused(browser, refusal))?;
    let mut response = see_other("/portal/");
    let cookie = set_cookie(
        &headers,
        PORTAL_COOKIE,
        &cookie_token,
        "/portal",
        super::sessions::SESSION_FOR.as_secs(),
    );
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `GET /portal`: the overview is at `/portal/`.
pub async fn to_overview() -> Response {
    see_other("/portal/")
}

/// Any other path under `/portal/`.
pub async fn not_found(headers: HeaderMap) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        Locale::choose(None, &headers),
        |t| t.error_title,
        |t| t.page_not_found,
    )
}

struct CategoryRow {
    label: String,
    category: String,
    records: u64,
    retention: String,
    purposes: String,
}

struct PurposeCard {
    name: String,
    description: String,
    basis: &'static str,
    /// The customer's decision, for purposes that rest on consent (else empty).
    state: &'static str,
}

struct RecipientRow {
    name: String,
    description: String,
}

#[derive(Template)]
#[template(path = "portal/overview.html")]
struct OverviewPage {
    frame: Frame,
    events: usize,
    attributes: usize,
    decisions: usize,
    learned: bool,
    categories: Vec<CategoryRow>,
    purposes: Vec<PurposeCard>,
    recipients: Vec<RecipientRow>,
}

/// `GET /portal/`: what the shop holds by category, why, for how long, who receives it.
pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    let visit = visit(&state, &headers)?;
    let export = export_of(&state, &visit).await?;
    let locale = visit.locale;
    let t = locale.texts();
    let states: HashMap<&str, &'static str> = export
        .consents
        .consents
        .iter()
        .map(|consent| (consent.purpose.as_str(), consent.state))
        .collect();
    let page = OverviewPage {
        frame: visit.frame(&state.engine, PortalPage::Overview, t.overview_title),
        events: export.events.len(),
        attributes: export.attributes.len(),
        decisions: export.consents.history.len(),
        learned: export.derived.learned,
        categories: export
            .categories
            .iter()
            .map(|held| CategoryRow {
                label: category_label(locale, &held.category),
                category: held.category.clone(),
                records: held.records,
                retention: held
                    .retention
                    .clone()
                    .unwrap_or_else(|| t.kept_until_forgotten.to_owned()),
                purposes: held.purposes.join(", "),
            })
            .collect(),
        purposes: export
            .purposes
            .iter()
            .map(|purpose| PurposeCard {
                name: purpose.purpose.clone(),
                description: purpose.description.clone().unwrap_or_default(),
                basis: legal_basis(t, purpose.legal_basis),
                state: states
                    .get(purpose.purpose.as_str())
                    .map_or("", |state| consent_state(t, state)),
            })
            .collect(),
        recipients: export
            .recipients
            .iter()
            .map(|recipient| RecipientRow {
                name: recipient.name.clone(),
                description: recipient.description.clone(),
            })
            .collect(),
    };
    render(page, locale)
}

struct AttributeRow {
    name: String,
    value: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "portal/data.html")]
struct DataPage {
    frame: Frame,
    attributes: Vec<AttributeRow>,
    events: Vec<EventRow>,
    total: usize,
    first: usize,
    last: usize,
    page: usize,
    pages: usize,
    derived: Vec<String>,
}

/// `GET /portal/data?page=N`: attributes, events (newest first, items by title), and what
/// the models derived.
pub async fn data(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> PageResult {
    let visit = visit(&state, &headers)?;
    let requested = page_param(query, visit.locale)?;
    let export = export_of(&state, &visit).await?;
    let locale = visit.locale;
    let t = locale.texts();
    let total = export.events.len();
    let (page, pages, first, end) = paginate(requested, total);
    let shown: Vec<_> = export
        .events
        .iter()
        .rev()
        .skip(first)
        .take(end - first)
        .collect();
    let mut codes: BTreeSet<&str> = shown
        .iter()
        .filter_map(|event| event.payload.item.as_deref())
        .collect();
    for held in &export.derived.models_hold {
        codes.insert(&held.item);
    }
    for item in &export.derived.recommendations {
        codes.insert(&item.item);
        codes.extend(item.because.iter().map(String::as_str));
    }
    let titles = state.engine.item_titles(codes);
    let named = |code: &str| match titles.get(code) {
        Some(title) => format!("{title} ({code})"),
        None => code.to_owned(),
    };
    let mut derived: Vec<String> = export
        .derived
        .models_hold
        .iter()
        .map(|held| {
            format!(
                "{} — {} {} {}",
                named(&held.item),
                t.derived_item_times,
                held.event_times.len(),
                t.events_word
            )
        })
        .collect();
    derived.extend(export.derived.recommendations.iter().map(|item| {
        let because: Vec<String> = item.because.iter().map(|code| named(code)).collect();
        if because.is_empty() {
            format!("{}: {}", t.derived_suggested, named(&item.item))
        } else {
            format!(
                "{}: {} — {} {}",
                t.derived_suggested,
                named(&item.item),
                t.because_of,
                because.join(", ")
            )
        }
    }));
    let page = DataPage {
        frame: visit.frame(&state.engine, PortalPage::Data, t.data_title),
        attributes: export
            .attributes
            .iter()
            .map(|(name, attribute)| AttributeRow {
                name: name.clone(),
                value: attribute.value.clone(),
                updated: when(locale, &attribute.updated_at),
            })
            .collect(),
        events: shown
            .iter()
            .map(|event| EventRow::of(locale, event, &titles))
            .collect(),
        total,
        first: first + 1,
        last: end,
        page,
        pages,
        derived,
    };
    render(page, locale)
}

struct ConsentSwitch {
    name: String,
    description: String,
    granted: bool,
    state: &'static str,
}

struct DecisionRow {
    at: String,
    purpose: String,
    decision: &'static str,
    source: String,
}

#[derive(Template)]
#[template(path = "portal/consents.html")]
struct ConsentsPage {
    frame: Frame,
    saved: bool,
    gpc_recorded: u64,
    gpc_sent: bool,
    gpc_purposes: String,
    purposes: Vec<ConsentSwitch>,
    history: Vec<DecisionRow>,
}

/// `GET /portal/consents`: one switch per consent-based purpose, the history, and what
/// `Sec-GPC` did (a browser sending it has it honoured here too).
pub async fn consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> PageResult {
    let visit = visit(&state, &headers)?;
    let Ok(Query(pairs)) = query else {
        return Err(PageError::bad_request(visit.locale));
    };
    let mut saved = false;
    for (name, value) in pairs {
        match (name.as_str(), value.as_str()) {
            ("saved", "1") => saved = true,
            _ => return Err(PageError::bad_request(visit.locale)),
        }
    }
    let gpc_sent = crate::routes::gpc_requested(&headers);
    let (engine, caller, subject) = (state.engine.clone(), visit.caller(), visit.subject());
    let (gpc_recorded, view) = run(move || {
        let recorded = if gpc_sent {
            engine.honour_gpc(
                &caller,
                Action::ConsentsRead,
                std::slice::from_ref(&subject),
            )?
        } else {
            0
        };
        Ok((recorded, engine.consents(&caller, &subject)?))
    })
    .await
    .map_err(|error| visit.engine_error(&error))?;
    let locale = visit.locale;
    let t = locale.texts();
    let policy = state.engine.policy();
    let page = ConsentsPage {
        frame: visit.frame(&state.engine, PortalPage::Consents, t.consents_title),
        saved,
        gpc_recorded,
        gpc_sent,
        gpc_purposes: policy
            .purposes_sale_or_sharing()
            .iter()
            .map(|purpose| purpose.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        purposes: switches(&state.engine, &view, t),
        history: view
            .history
            .iter()
            .map(|decision| DecisionRow {
                at: when(locale, &decision.at),
                purpose: decision.purpose.clone(),
                decision: consent_state(t, decision.state),
                source: decision.source.clone(),
            })
            .collect(),
    };
    render(page, locale)
}

/// The consent-based purposes of the policy, with the customer's current decisions.
fn switches(engine: &Engine, view: &ConsentsView, t: &Texts) -> Vec<ConsentSwitch> {
    engine
        .policy()
        .purposes()
        .iter()
        .filter(|purpose| purpose.requires_consent())
        .map(|purpose| {
            let state = view
                .consents
                .iter()
                .find(|consent| consent.purpose == purpose.name)
                .map_or("never", |consent| consent.state);
            ConsentSwitch {
                name: purpose.name.clone(),
                description: purpose.description.clone().unwrap_or_default(),
                granted: state == "granted",
                state: consent_state(t, state),
            }
        })
        .collect()
}

/// `POST /portal/consents`: the purposes ticked are granted, the others withdrawn; only
/// the decisions that change are recorded.
pub async fn post_consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> PageResult {
    let form = form_fields(form, &headers, &["csrf", "granted"])?;
    let visit = visit_checked(&state, &headers, &form)?;
    let consent_purposes: Vec<String> = state
        .engine
        .policy()
        .purposes()
        .iter()
        .filter(|purpose| purpose.requires_consent())
        .map(|purpose| purpose.name.clone())
        .collect();
    let mut wanted = BTreeSet::new();
    for (name, value) in &form {
        if name == "granted" {
            if !consent_purposes.contains(value) {
                return Err(PageError::bad_request(visit.locale));
            }
            wanted.insert(value.clone());
        }
    }
    let (engine, caller, subject) = (state.engine.clone(), visit.caller(), visit.subject());
    run(move || {
        let view = engine.consents(&caller, &subject)?;
        for purpose in consent_purposes {
            let granted_now = view
                .consents
                .iter()
                .any(|consent| consent.purpose == purpose && consent.state == "granted");
            let granted = wanted.contains(&purpose);
            if granted != granted_now {
                engine.set_consent(&caller, &subject, &purpose, granted, PORTAL_SOURCE)?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|error| visit.engine_error(&error))?;
    Ok(see_other("/portal/consents?saved=1"))
}

/// A form visit whose session's subject is still held.
fn visit_checked(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Visit, PageError> {
    let visit = form_visit(state, headers, form)?;
    if visit.session.receipt.is_some() {
        return Err(PageError::refused(
            visit.locale,
            Refusal::Ended {
                return_url: visit.session.grant.return_url.clone(),
            },
        ));
    }
    Ok(visit)
}

/// `GET /portal/download`: the Art. 20 export as a JSON file.
pub async fn download(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    let visit = visit(&state, &headers)?;
    let export = export_of(&state, &visit).await?;
    let body = serde_json::to_vec_pretty(&export).map_err(|_| {
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            visit.locale,
            |t| t.error_title,
            |t| t.something_failed,
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"my-data.json\"",
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "portal/activity.html")]
struct ActivityPage {
    frame: Frame,
    entries: Vec<ActivityRow>,
    total: usize,
    first: usize,
    last: usize,
    page: usize,
    pages: usize,
}

/// `GET /portal/activity?page=N`: who used the customer's data, when, for what.
pub async fn activity(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> PageResult {
    let visit = visit(&state, &headers)?;
    let requested = page_param(query, visit.locale)?;
    let export = export_of(&state, &visit).await?;
    let locale = visit.locale;
    let total = export.access_log.len();
    let (page, pages, first, end) = paginate(requested, total);
    let page = ActivityPage {
        frame: visit.frame(
            &state.engine,
            PortalPage::Activity,
            locale.texts().activity_title,
        ),
        entries: export.access_log[first..end]
            .iter()
            .map(|entry| ActivityRow::of(locale, entry, &visit.session.id))
            .collect(),
        total,
        first: first + 1,
        last: end,
        page,
        pages,
    };
    render(page, locale)
}

#[derive(Template)]
#[template(path = "portal/forget.html")]
struct ForgetPage {
    frame: Frame,
    events: usize,
    attributes: usize,
    decisions: usize,
    learned: bool,
    problem: &'static str,
}

async fn forget_page(
    state: &AppState,
    visit: &Visit,
    problem: &'static str,
) -> Result<ForgetPage, PageError> {
    let export = export_of(state, visit).await?;
    Ok(ForgetPage {
        frame: visit.frame(
            &state.engine,
            PortalPage::Forget,
            visit.locale.texts().forget_title,
        ),
        events: export.events.len(),
        attributes: export.attributes.len(),
        decisions: export.consents.history.len(),
        learned: export.derived.learned,
        problem,
    })
}

/// `GET /portal/forget`: what will be erased, and the confirmation.
pub async fn forget(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    let visit = visit(&state, &headers)?;
    let page = forget_page(&state, &visit, "").await?;
    render(page, visit.locale)
}

/// `POST /portal/forget`: with the box ticked, forgets the customer everywhere and shows
/// the signed receipt; without it, asks again and changes nothing.
pub async fn post_forget(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> PageResult {
    let form = form_fields(form, &headers, &["csrf", "confirm"])?;
    let visit = visit_checked(&state, &headers, &form)?;
    let confirmed = form
        .iter()
        .any(|(name, value)| name == "confirm" && value == "yes");
    if !confirmed {
        let page = forget_page(&state, &visit, visit.locale.texts().forget_needs_confirm).await?;
        let mut response = render(page, visit.locale)?;
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    let (engine, caller, subject) = (state.engine.clone(), visit.caller(), visit.subject());
    let receipt = run(move || engine.forget(&caller, &subject))
        .await
        .map_err(|error| visit.engine_error(&error))?;
    state.portal.forgotten(&visit.token, receipt);
    Ok(see_other("/portal/receipt"))
}

#[derive(Template)]
#[template(path = "portal/receipt.html")]
struct ReceiptPage {
    frame: Frame,
    receipt: ForgetReceipt,
    requested_at: String,
    completed_at: String,
    public_key: String,
}

/// The receipt of a session whose customer was forgotten.
fn receipt_of(state: &AppState, headers: &HeaderMap) -> Result<(Visit, ForgetReceipt), PageError> {
    let visit = any_visit(state, headers)?;
    match visit.session.receipt.clone() {
        Some(receipt) => Ok((visit, receipt)),
        None => Err(PageError::new(
            StatusCode::NOT_FOUND,
            visit.locale,
            |t| t.error_title,
            |t| t.page_not_found,
        )
        .returning(&visit.session.grant.return_url)),
    }
}

/// `GET /portal/receipt`: the signed receipt, how to download and verify it.
pub async fn receipt(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    let (visit, receipt) = receipt_of(&state, &headers)?;
    let locale = visit.locale;
    let t = locale.texts();
    let mut frame = Frame::bare(locale, t.receipt_title, &visit.session.grant.return_url);
    frame.controller = state.engine.policy().controller().name.clone();
    frame.csrf = visit.session.csrf.clone();
    let page = ReceiptPage {
        frame,
        requested_at: when(locale, &receipt.requested_at),
        completed_at: when(locale, &receipt.completed_at),
        public_key: state.engine.public_key().public_key,
        receipt,
    };
    render(page, locale)
}

/// `GET /portal/receipt.json`: the receipt with the public key that verifies it.
pub async fn receipt_file(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    let (_, receipt) = receipt_of(&state, &headers)?;
    let body = json!({
        "receipt": receipt,
        "public_key": state.engine.public_key(),
        "verify": "discreet receipt verify FILE [--public-key HEX]: checks the signature offline; compare the key with the shop's GET /v1/receipts/public-key",
    });
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"forget-receipt.json\""),
        )],
        Json(body),
    )
        .into_response())
}

/// `POST /portal/sign-out`: ends the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> PageResult {
    let form = form_fields(form, &headers, &["csrf"])?;
    let visit = form_visit(&state, &headers, &form)?;
    state.portal.end(&visit.token);
    let mut response = PageError::refused(
        visit.locale,
        Refusal::Ended {
            return_url: visit.session.grant.return_url.clone(),
        },
    )
    .into_response();
    *response.status_mut() = StatusCode::OK;
    if let Some(cookie) = set_cookie(&headers, PORTAL_COOKIE, "", "/portal", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
