//! Coming in and going out: the start visit, the overview's address, unknown pages, sign-out.

use super::*;

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
    let (cookie_token, session) = state
        .portal
        .start(&token)
        .map_err(|refusal| PageError::refused(browser, refusal))?;
    // A page of our own that moves on to the overview, not a redirect: a visit that began on
    // the shop's site is cross-site all along a redirect chain, and the browser would then
    // leave the new SameSite=Strict cookie off the overview's request.
    let locale = Locale::choose(session.grant.locale.as_deref(), &headers);
    let t = locale.texts();
    let page = ContinuePage {
        frame: Frame::bare(locale, t.continue_title, &session.grant.return_url),
    };
    let mut response = render(page, locale)?;
    let cookie = set_cookie(
        &state,
        &headers,
        PORTAL_COOKIE,
        &cookie_token,
        "/portal",
        crate::pages::sessions::SESSION_FOR.as_secs(),
    );
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "portal/continue.html")]
struct ContinuePage {
    frame: Frame,
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
    if let Some(cookie) = set_cookie(&state, &headers, PORTAL_COOKIE, "", "/portal", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
