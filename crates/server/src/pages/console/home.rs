//! Coming in and going out (sign-in with a key, sign-out) and the dashboard.

use axum::extract::State;
use discreet_engine::{Dashboard, LedgerChecked};
use discreet_vault::crypto::constant_time_eq;

use super::*;
use crate::auth::{ClientUnit, count_failure};
use crate::error::ApiError;

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    frame: ConsoleFrame,
    token: String,
    problem: String,
}

/// The sign-in page with a fresh form token (also set as a cookie: the post must carry both).
fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    problem: &str,
) -> ConsoleResult {
    let token = state.console.sign_in_token().ok_or_else(|| {
        ConsoleError::new(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "The system's random source failed.",
        )
    })?;
    let page = SignInPage {
        frame: ConsoleFrame::signed_out(state, "Sign in"),
        token: token.clone(),
        problem: problem.to_owned(),
    };
    let mut response = render(state, page)?;
    *response.status_mut() = status;
    Ok(with_cookie(
        state,
        headers,
        response,
        SIGN_IN_COOKIE,
        &token,
        sessions::SIGN_IN_FOR.as_secs(),
    ))
}

/// `GET /console`: the dashboard is at `/console/`.
pub async fn to_home() -> Response {
    see_other("/console/")
}

/// `GET /console/`: the dashboard when signed in, else the sign-in.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> ConsoleResult {
    match desk(&state, &headers) {
        Ok(desk) => dashboard(&state, &desk).await,
        Err(signed_out) => {
            let mut response = sign_in_page(&state, &headers, StatusCode::OK, "")?;
            if let Some(cookie) = signed_out.clear_cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
    }
}

/// `POST /console/sign-in`: swaps a key of a role with the `console` action for a session
/// cookie. Wrong keys count against the client like any failed authentication.
pub async fn sign_in(
    State(state): State<AppState>,
    ClientUnit(address): ClientUnit,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["sign_in", "key"])?;
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    let sent = field(&form, "sign_in").unwrap_or("");
    if expected.is_empty()
        || !constant_time_eq(expected.as_bytes(), sent.as_bytes())
        || !state.console.sign_in_token_ok(sent)
    {
        return sign_in_page(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            "The sign-in form was out of date; it has been renewed. Enter the key again.",
        );
    }
    let secret = field(&form, "key").unwrap_or("").trim();
    let Some(caller) = (!secret.is_empty())
        .then(|| state.engine.authenticate(secret))
        .flatten()
    else {
        state.metrics.auth_failure();
        return match count_failure(&state, address, secret).await {
            ApiError::AuthBlocked { retry_after_secs } => {
                let mut error = ConsoleError::new(
                    &state,
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed sign-ins from this address; wait and try again.",
                );
                error.retry_after_secs = Some(retry_after_secs);
                Err(error)
            }
            _ => sign_in_page(
                &state,
                &headers,
                StatusCode::UNAUTHORIZED,
                "That is not a live API key.",
            ),
        };
    };
    let (token, officer) = state.console.open(&caller.key_id).map_err(|_| {
        ConsoleError::new(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "The console holds as many sessions as it may; try again later.",
        )
    })?;
    let engine = state.engine.clone();
    let (opening, session_id) = (caller.clone(), officer.id.clone());
    if let Err(error) = run(move || engine.open_console(&opening, &session_id)).await {
        state.console.end(&token);
        return match error {
            EngineError::Forbidden { .. } => sign_in_page(
                &state,
                &headers,
                StatusCode::FORBIDDEN,
                "This key's role has no console access (it needs the `console` action).",
            ),
            other => {
                tracing::error!(error = %other, "a console sign-in could not be written to the ledger");
                Err(ConsoleError::new(
                    &state,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The sign-in could not be recorded on the ledger; try again shortly.",
                ))
            }
        };
    }
    // A session this browser already held ends: one browser, one officer.
    if let Some(previous) = token_of(&headers) {
        state.console.end(previous);
    }
    let response = see_other("/console/");
    let response = with_cookie(&state, &headers, response, SIGN_IN_COOKIE, "", 0);
    Ok(with_cookie(
        &state,
        &headers,
        response,
        CONSOLE_COOKIE,
        &token,
        sessions::SESSION_FOR.as_secs(),
    ))
}

/// `POST /console/sign-out`: ends the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf"])?;
    let desk = form_desk(&state, &headers, &form)?;
    state.console.end(&desk.token);
    let response = sign_in_page(&state, &headers, StatusCode::OK, "You are signed out.")?;
    Ok(with_cookie(
        &state,
        &headers,
        response,
        CONSOLE_COOKIE,
        "",
        0,
    ))
}

// ------------------------------------------------------------------------------ dashboard

/// One row of the per-day table.
pub struct DayRow {
    pub day: String,
    pub forgets: u64,
    pub rights_requests: u64,
    pub granted: u64,
    pub withdrawn: u64,
}

/// One consent-based purpose's figures now.
pub struct ConsentRow {
    pub purpose: String,
    pub granted: String,
    pub rate: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    frame: ConsoleFrame,
    dashboard: Dashboard,
    consent_chart: String,
    activity_chart: String,
    days: Vec<DayRow>,
    consents: Vec<ConsentRow>,
    next_sweep: String,
    last_sweep: String,
    ledger: Option<LedgerChecked>,
    ledger_at: String,
    may_verify: bool,
    notice: String,
}

async fn dashboard(state: &AppState, desk: &Desk) -> ConsoleResult {
    dashboard_with(state, desk, String::new()).await
}

async fn dashboard_with(state: &AppState, desk: &Desk, notice: String) -> ConsoleResult {
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let dashboard = run(move || engine.dashboard(&caller))
        .await
        .map_err(|error| desk.engine_error(state, &error))?;
    let days = dashboard
        .days
        .iter()
        .rev()
        .map(|day| DayRow {
            day: when_millis(day.day)
                .get(..10)
                .unwrap_or_default()
                .to_owned(),
            forgets: day.forgets,
            rights_requests: day.rights_requests,
            granted: day.consents_granted,
            withdrawn: day.consents_withdrawn,
        })
        .collect();
    let consents = dashboard
        .consents
        .iter()
        .map(|series| ConsentRow {
            purpose: series.purpose.clone(),
            granted: series
                .granted_now
                .map_or_else(|| "—".to_owned(), |count| count.to_string()),
            rate: series
                .rates
                .last()
                .copied()
                .flatten()
                .map_or_else(|| "—".to_owned(), |rate| format!("{:.1} %", rate * 100.0)),
        })
        .collect();
    let policy = state.engine.policy();
    let may_verify = policy
        .role(&desk.caller.role)
        .is_some_and(|role| role.allows_action(Action::AuditRead));
    let page = DashboardPage {
        frame: desk.frame(state, ConsolePage::Dashboard, "Dashboard"),
        consent_chart: chart::consent_rates(&dashboard),
        activity_chart: chart::activity(&dashboard),
        days,
        consents,
        next_sweep: dashboard.next_sweep_at.map(when_millis).unwrap_or_default(),
        last_sweep: dashboard.last_sweep_at.map(when_millis).unwrap_or_default(),
        ledger: dashboard.ledger_checked,
        ledger_at: dashboard
            .ledger_checked
            .map(|checked| when_millis(checked.at))
            .unwrap_or_default(),
        may_verify,
        notice,
        dashboard,
    };
    render(state, page)
}

/// `POST /console/ledger/verify`: re-walks the ledger chain, then shows the dashboard.
pub async fn verify_ledger(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf"])?;
    let desk = form_desk(&state, &headers, &form)?;
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let verification = run(move || engine.verify_ledger(&caller))
        .await
        .map_err(|error| desk.engine_error(&state, &error))?;
    let notice = if verification.ok {
        format!(
            "The ledger verifies: {} entries, {} signed checkpoints.",
            verification.entries, verification.checkpoints_verified
        )
    } else {
        format!(
            "The ledger does NOT verify: {} (first bad entry {}).",
            verification.problem.as_deref().unwrap_or("altered"),
            verification
                .first_bad_entry
                .map_or_else(|| "unknown".to_owned(), |seq| seq.to_string())
        )
    };
    dashboard_with(&state, &desk, notice).await
}
