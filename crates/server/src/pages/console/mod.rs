//! The console, for the shop's privacy and security officers: sign in with an API key of a
//! role that has the `console` action, then the dashboard, the data map (records of
//! processing), subject lookup (the export, forget with confirmation), the audit trail (with
//! a CSV download), API keys and incidents. Every page calls the engine with the officer's
//! key as the caller, so each action is on the ledger under that key and the role's grants
//! decide what it may do; a revoked key ends its sessions at the next request. No customer
//! id is ever in a URL: lookups and forgets are form posts.
//!
//! Here: what every console page shares — the frame, the error page, the `Desk` a request's
//! cookie yields, forms. The pages by job: `home` (sign-in, dashboard, ledger check),
//! `chart` (the dashboard's SVG), `lookup` (data map, subjects), `trail` (audit, keys),
//! `incidents`.

mod chart;
mod home;
mod incidents;
mod lookup;
pub mod sessions;
mod trail;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use discreet_engine::{Caller, Error as EngineError};
use discreet_policy::Action;

use crate::pages::view::NavLink;
use crate::pages::{cookie, html, run, set_cookie};
use crate::state::AppState;

use sessions::Officer;

/// The name of the console's session cookie.
pub(crate) const CONSOLE_COOKIE: &str = "discreet_console";
/// The name of the sign-in form's cookie (its token is also in the form).
pub(crate) const SIGN_IN_COOKIE: &str = "discreet_console_sign_in";

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home::to_home))
        .route("/console/", get(home::home))
        .route("/console/sign-in", post(home::sign_in))
        .route("/console/sign-out", post(home::sign_out))
        .route("/console/ledger/verify", post(home::verify_ledger))
        .route("/console/data-map", get(lookup::data_map))
        .route(
            "/console/subjects",
            get(lookup::subjects).post(lookup::look_up),
        )
        .route("/console/subjects/forget", post(lookup::forget))
        .route("/console/audit", get(trail::audit))
        .route("/console/audit.csv", get(trail::audit_csv))
        .route("/console/keys", get(trail::keys).post(trail::create_key))
        .route("/console/keys/revoke", post(trail::revoke_key))
        .route(
            "/console/incidents",
            get(incidents::list).post(incidents::create),
        )
        .route("/console/incidents/{id}", get(incidents::show))
        .route("/console/incidents/{id}/report.md", get(incidents::report))
        .route(
            "/console/incidents/{id}/subjects.csv",
            post(incidents::subjects),
        )
        .route("/console/incidents/{id}/contain", post(incidents::contain))
        .route("/console/{*rest}", get(not_found))
}

// ------------------------------------------------------------------------------ frame

/// The console's pages, in navigation order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ConsolePage {
    Dashboard,
    DataMap,
    Subjects,
    Audit,
    Keys,
    Incidents,
    None,
}

/// What every console page shows around its content.
pub struct ConsoleFrame {
    pub title: String,
    pub nav: Vec<NavLink>,
    /// The session's form token (empty: signed out).
    pub csrf: String,
    /// The officer's key and role (empty: signed out).
    pub key_id: String,
    pub role: String,
    /// The shop's legal name.
    pub controller: String,
}

impl ConsoleFrame {
    fn signed_out(state: &AppState, title: &str) -> ConsoleFrame {
        ConsoleFrame {
            title: title.to_owned(),
            nav: Vec::new(),
            csrf: String::new(),
            key_id: String::new(),
            role: String::new(),
            controller: state.engine.policy().controller().name.clone(),
        }
    }
}

// ------------------------------------------------------------------------------ errors

/// A console page that could not be shown.
pub struct ConsoleError {
    status: StatusCode,
    message: String,
    /// Signed out (401): the page offers the sign-in.
    signed_out: bool,
    retry_after_secs: Option<u64>,
    controller: String,
    frame: Option<Box<ConsoleFrame>>,
    /// A `Set-Cookie` that clears the browser's ended session.
    clear_cookie: Option<HeaderValue>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    frame: ConsoleFrame,
    message: String,
    signed_out: bool,
}

impl ConsoleError {
    fn new(state: &AppState, status: StatusCode, message: impl Into<String>) -> ConsoleError {
        ConsoleError {
            status,
            message: message.into(),
            signed_out: false,
            retry_after_secs: None,
            controller: state.engine.policy().controller().name.clone(),
            frame: None,
            clear_cookie: None,
        }
    }

    fn bad_request(state: &AppState, message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(state, StatusCode::BAD_REQUEST, message)
    }

    fn signed_out(state: &AppState) -> ConsoleError {
        let mut error = ConsoleError::new(
            state,
            StatusCode::UNAUTHORIZED,
            "You are signed out (the session ended, or its key was revoked). Sign in again.",
        );
        error.signed_out = true;
        error
    }

    /// Signed out, and the browser's session cookie (if it sent one) cleared.
    fn signed_out_clearing(state: &AppState, headers: &HeaderMap) -> ConsoleError {
        let mut error = ConsoleError::signed_out(state);
        error.clear_cookie = clearing_cookie(state, headers);
        error
    }

    /// An engine refusal or failure, as a page in the officer's frame.
    fn engine(state: &AppState, desk: &Desk, error: &EngineError) -> ConsoleError {
        let (status, message) = match error {
            EngineError::BadInput { .. } => (StatusCode::BAD_REQUEST, error.to_string()),
            EngineError::Forbidden { .. } => (
                StatusCode::FORBIDDEN,
                format!("Your key's role may not do this: {error}."),
            ),
            EngineError::NotFound { what } => {
                (StatusCode::NOT_FOUND, format!("No such {what} is held."))
            }
            EngineError::Forgetting => (
                StatusCode::CONFLICT,
                "This customer is being forgotten.".to_owned(),
            ),
            EngineError::Conflict { detail } => (StatusCode::CONFLICT, detail.clone()),
            EngineError::NotReady | EngineError::LedgerUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, format!("{error}."))
            }
            EngineError::IdempotencyConflict => (StatusCode::CONFLICT, error.to_string()),
            EngineError::Internal { detail } => {
                tracing::error!(detail = %detail, "internal error on a console page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something failed inside discreet; the server's log says what.".to_owned(),
                )
            }
        };
        let mut page = ConsoleError::new(state, status, message);
        page.frame = Some(Box::new(desk.frame(state, ConsolePage::None, "Not done")));
        page
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::UNAUTHORIZED => "Signed out",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            status if status.is_client_error() => "Not done",
            _ => "Something failed",
        };
        let frame = self.frame.map_or_else(
            || ConsoleFrame {
                title: String::new(),
                nav: Vec::new(),
                csrf: String::new(),
                key_id: String::new(),
                role: String::new(),
                controller: self.controller,
            },
            |frame| *frame,
        );
        let page = ErrorPage {
            frame: ConsoleFrame {
                title: title.to_owned(),
                ..frame
            },
            message: self.message.clone(),
            signed_out: self.signed_out,
        };
        let mut response = match page.render() {
            Ok(body) => html(self.status, body),
            Err(_) => (self.status, self.message).into_response(),
        };
        if let Some(seconds) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Some(cookie) = self.clear_cookie {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

pub type ConsoleResult = Result<Response, ConsoleError>;

fn render(state: &AppState, page: impl Template) -> ConsoleResult {
    page.render()
        .map(|body| html(StatusCode::OK, body))
        .map_err(|error| {
            tracing::error!(%error, "a console page did not render");
            ConsoleError::new(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
        })
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Any other path under `/console/`.
async fn not_found(axum::extract::State(state): axum::extract::State<AppState>) -> ConsoleError {
    ConsoleError::new(
        &state,
        StatusCode::NOT_FOUND,
        "There is no such console page.",
    )
}

// ------------------------------------------------------------------------------ sessions

/// A signed-in officer's request: the session, and the caller its key is now.
pub struct Desk {
    token: String,
    officer: Officer,
    caller: Caller,
}

impl Desk {
    fn frame(&self, state: &AppState, page: ConsolePage, title: &str) -> ConsoleFrame {
        let policy = state.engine.policy();
        let allows = |action: Action| {
            policy
                .role(&self.caller.role)
                .is_some_and(|role| role.allows_action(action))
        };
        let links: [(&'static str, &'static str, ConsolePage, Option<Action>); 6] = [
            ("/console/", "Dashboard", ConsolePage::Dashboard, None),
            (
                "/console/data-map",
                "Data map",
                ConsolePage::DataMap,
                Some(Action::RecordsRead),
            ),
            (
                "/console/subjects",
                "Subjects",
                ConsolePage::Subjects,
                Some(Action::Export),
            ),
            (
                "/console/audit",
                "Audit trail",
                ConsolePage::Audit,
                Some(Action::AuditRead),
            ),
            (
                "/console/keys",
                "Keys",
                ConsolePage::Keys,
                Some(Action::KeysManage),
            ),
            (
                "/console/incidents",
                "Incidents",
                ConsolePage::Incidents,
                Some(Action::Incidents),
            ),
        ];
        ConsoleFrame {
            title: title.to_owned(),
            nav: links
                .into_iter()
                .filter(|(_, _, _, action)| action.is_none_or(allows))
                .map(|(href, label, of, _)| NavLink {
                    href,
                    label,
                    current: of == page,
                })
                .collect(),
            csrf: self.officer.csrf.clone(),
            key_id: self.officer.key_id.clone(),
            role: self.caller.role.clone(),
            controller: policy.controller().name.clone(),
        }
    }

    fn engine_error(&self, state: &AppState, error: &EngineError) -> ConsoleError {
        ConsoleError::engine(state, self, error)
    }
}

fn token_of(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, CONSOLE_COOKIE)
        .filter(|token| token.len() == 64 && token.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

/// The `Set-Cookie` that clears the console session cookie, when the request sent one.
fn clearing_cookie(state: &AppState, headers: &HeaderMap) -> Option<HeaderValue> {
    cookie(headers, CONSOLE_COOKIE)?;
    set_cookie(state, headers, CONSOLE_COOKIE, "", "/console", 0)
}

/// The desk of a live session whose key is still live (a revoked key ends the session).
fn desk(state: &AppState, headers: &HeaderMap) -> Result<Desk, ConsoleError> {
    let token =
        token_of(headers).ok_or_else(|| ConsoleError::signed_out_clearing(state, headers))?;
    let officer = state
        .console
        .get(token)
        .ok_or_else(|| ConsoleError::signed_out_clearing(state, headers))?;
    desk_of(state, headers, token, officer)
}

/// The desk of `officer`'s session if its key is still live; else the session ends and
/// the browser's cookie is cleared.
fn desk_of(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    officer: Officer,
) -> Result<Desk, ConsoleError> {
    let Some(caller) = state.engine.live_caller(&officer.key_id) else {
        state.console.end(token);
        return Err(ConsoleError::signed_out_clearing(state, headers));
    };
    Ok(Desk {
        token: token.to_owned(),
        officer,
        caller,
    })
}

/// The desk of a form post: a live session, and the form's CSRF token is its own.
fn form_desk(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Desk, ConsoleError> {
    let token =
        token_of(headers).ok_or_else(|| ConsoleError::signed_out_clearing(state, headers))?;
    let csrf = field(form, "csrf").unwrap_or("");
    if state.console.get(token).is_none() {
        return Err(ConsoleError::signed_out_clearing(state, headers));
    }
    let officer = state.console.get_for_form(token, csrf).ok_or_else(|| {
        ConsoleError::new(
            state,
            StatusCode::FORBIDDEN,
            "The form was out of date; open the page again and resend it.",
        )
    })?;
    desk_of(state, headers, token, officer)
}

/// A form body, or a 400 page; only the names in `known` may appear, each at most once.
fn form_fields(
    state: &AppState,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    known: &[&str],
) -> Result<Vec<(String, String)>, ConsoleError> {
    let Form(pairs) =
        form.map_err(|_| ConsoleError::bad_request(state, "The form could not be read."))?;
    for (index, (name, _)) in pairs.iter().enumerate() {
        if !known.contains(&name.as_str()) {
            return Err(ConsoleError::bad_request(
                state,
                "The form has a field this page does not take.",
            ));
        }
        if pairs[..index].iter().any(|(other, _)| other == name) {
            return Err(ConsoleError::bad_request(
                state,
                format!("The form's `{name}` field appears twice."),
            ));
        }
    }
    Ok(pairs)
}

/// The value of a form field, if sent.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The value of a form field, if sent and not blank.
fn filled<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    field(form, name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// `YYYY-MM-DD HH:MM UTC` of unix milliseconds.
fn when_millis(millis: i64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
    else {
        return String::new();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// Parses a time typed into a form: `YYYY-MM-DDTHH:MM[:SS]` (a browser's
/// `datetime-local`, read as UTC) or RFC 3339. The error names the field, not the value.
fn form_time(name: &str, text: &str) -> Result<i64, String> {
    if let Ok(millis) = crate::wire::parse_time(name, text) {
        return Ok(millis);
    }
    let with_seconds = if text.len() == 16 {
        format!("{text}:00Z")
    } else {
        format!("{text}Z")
    };
    crate::wire::parse_time(name, &with_seconds)
        .map_err(|_| format!("{name}: must be a date and time such as 2026-11-02T10:00 (UTC)"))
}

/// A response with `Set-Cookie` for the console session (`max_age_secs` 0 clears it).
fn with_cookie(
    state: &AppState,
    headers: &HeaderMap,
    mut response: Response,
    name: &str,
    value: &str,
    max_age_secs: u64,
) -> Response {
    if let Some(cookie) = set_cookie(state, headers, name, value, "/console", max_age_secs) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
