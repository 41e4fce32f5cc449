//! The privacy center: a customer sees what the shop holds and derived, downloads it,
//! decides their consents, sees who used their data, and forgets it — each page through
//! the engine with `Caller::data_subject`, so every action is on the ledger as
//! `portal:<session id>`, and a session never reaches another customer's data. No customer
//! id is ever in a URL: the session names the subject.
//!
//! Here: what every page shares — the error page (`PageError`), rendering, and the `Visit`
//! a request's cookie yields. The pages by job: `mint` (the shop's `POST
//! /v1/portal/sessions`), `entry` (the start visit, sign-out, unknown pages), `seeing`
//! (overview, data, download, activity), `consents`, `forget` (and the receipt).

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

use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult, bad};
use crate::pages::locale::{LOCALES, Locale, Texts};
use crate::pages::sessions::{FormRefusal, Grant, MintRefusal, Refusal, Session};
use crate::pages::view::{
    ActivityRow, EventRow, Frame, PortalPage, category_label, consent_state, legal_basis, paginate,
    purpose_label, retention_label, when,
};
use crate::pages::{PORTAL_COOKIE, cookie, html, request_host, run, set_cookie};
use crate::routes::JsonBody;
use crate::state::AppState;
use crate::wire;

/// Where a consent decision made in the privacy center is recorded as coming from.
pub const PORTAL_SOURCE: &str = "privacy-center";

mod consents;
mod entry;
mod forget;
mod mint;
mod seeing;

pub use consents::{consents, post_consents};
pub use entry::{not_found, sign_out, start, to_overview};
pub use forget::{forget, post_forget, receipt, receipt_file};
pub use mint::{__path_post_portal_session, open_session, post_portal_session};
pub use seeing::{activity, data, download, overview};

// ------------------------------------------------------------------------------ answers

/// A page that could not be shown: an HTML answer with the way back to the shop.
pub struct PageError {
    status: StatusCode,
    locale: Locale,
    title: fn(&Texts) -> &'static str,
    message: fn(&Texts) -> &'static str,
    return_url: String,
    retry_after_secs: Option<u64>,
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
            retry_after_secs: None,
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
            Refusal::Busy { retry_after_secs } => {
                let mut error = PageError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    locale,
                    |t| t.error_title,
                    |t| t.too_many_requests,
                );
                error.retry_after_secs = Some(retry_after_secs);
                error
            }
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
        let mut response = match page.render() {
            Ok(body) => html(self.status, body),
            Err(_) => (self.status, (self.message)(t)).into_response(),
        };
        if let Some(seconds) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
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
