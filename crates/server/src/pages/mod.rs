//! The pages of discreet, server-rendered HTML beside the API: the privacy center
//! (`/portal/…`, for the shop's customers), the console (`/console/…`, for its privacy and
//! security officers) and their stylesheet.
//!
//! Pages work without JavaScript and make no third-party request: one stylesheet of our
//! own, no script, no font, no image from anywhere else. Every page answer carries the same
//! security headers (`page_headers`); every form carries its session's CSRF token; cookies
//! are `HttpOnly; SameSite=Strict`, and `Secure` unless the page is served on localhost.
//! Each page calls the same engine methods as the API, with the caller its session yields.
//!
//! - `sessions`: the in-memory privacy-center sessions (start tokens, cookies, CSRF);
//! - `locale`: every visible string, one table per locale (English, German);
//! - `portal`: the privacy center's handlers and what they show;
//! - `console`: the officers' console, its sessions and pages;
//! - `view`: the frame every page shares, and turning engine answers into rows to show.

pub mod console;
pub mod locale;
mod portal;
pub mod sessions;
mod view;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;

pub use portal::{__path_post_portal_session, open_session, post_portal_session};

/// The stylesheet of every page.
const STYLESHEET: &str = include_str!("../../assets/style.css");

/// The name of the privacy-center cookie.
pub(crate) const PORTAL_COOKIE: &str = "discreet_portal";

/// The routes of the pages (the API's `POST /v1/portal/sessions` is in the API router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(portal::to_overview))
        .route("/portal/", get(portal::overview))
        .route("/portal/start/{token}", get(portal::start))
        .route("/portal/data", get(portal::data))
        .route(
            "/portal/consents",
            get(portal::consents).post(portal::post_consents),
        )
        .route("/portal/download", get(portal::download))
        .route("/portal/activity", get(portal::activity))
        .route(
            "/portal/forget",
            get(portal::forget).post(portal::post_forget),
        )
        .route("/portal/receipt", get(portal::receipt))
        .route("/portal/receipt.json", get(portal::receipt_file))
        .route("/portal/sign-out", post(portal::sign_out))
        .route("/portal/{*rest}", get(portal::not_found))
        .route("/assets/style.css", get(stylesheet))
        .merge(console::routes())
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The headers of every answer under `/portal`, `/console` and `/assets/` — pages, their errors, and
/// the router's own 404, 405 and timeout answers there: nothing but our own origin may load
/// into, frame or receive a page; nothing is cached; no address leaks in a referrer. The
/// outermost layer of the router, so that no answer on those paths escapes it.
pub async fn page_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let page = path == "/portal"
        || path.starts_with("/portal/")
        || path == "/console"
        || path.starts_with("/console/")
        || path.starts_with("/assets/");
    let mut response = next.run(request).await;
    if page {
        set_page_headers(response.headers_mut());
    }
    response
}

pub(crate) fn set_page_headers(headers: &mut HeaderMap) {
    let fixed: [(HeaderName, &'static str); 6] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Runs engine work on the blocking pool.
pub(crate) async fn run<T: Send + 'static>(
    work: impl FnOnce() -> discreet_engine::Result<T> + Send + 'static,
) -> discreet_engine::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(discreet_engine::Error::Internal {
                detail: format!("a worker stopped: {error}"),
            })
        })
}

/// A file to download: its type, its name, its body.
pub(crate) fn attachment(content_type: &'static str, file_name: &str, body: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// A CSV cell: quoted, quotes doubled, and a leading `=`, `+`, `-` or `@` defused so that
/// a spreadsheet never runs it as a formula.
pub(crate) fn csv_cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

/// An HTML page answer.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The `Host` the request was sent to, if it may be written into a URL.
pub(crate) fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| crate::wire::is_url_authority(host))
}

/// A `Set-Cookie` for `name` on `path`: `HttpOnly; SameSite=Strict`, and `Secure` when the
/// server's public URL is https (without one: unless the request came to localhost);
/// `max_age_secs` 0 clears it.
pub(crate) fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
) -> Option<HeaderValue> {
    let secure = match &state.public_url {
        Some(url) => url.starts_with("https://"),
        None => !request_host(headers).is_some_and(crate::wire::is_local_host),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}
