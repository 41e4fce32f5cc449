//! The shop's side: `POST /v1/portal/sessions` and the session it opens.

use super::*;

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
    // The answer holds the start token: no cache keeps it.
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(answer),
    )
        .into_response())
}

/// Opens a privacy-center session for a checked request reached at `host` (blocking: the
/// opening is written to the ledger): the answer of `POST /v1/portal/sessions`, whose `url`
/// is on the server's public URL, or else on `host` (`http` on localhost, `https` elsewhere).
pub fn open_session(
    state: &AppState,
    caller: &Caller,
    request: wire::PortalBody,
    host: &str,
) -> ApiResult<serde_json::Value> {
    let base = match &state.public_url {
        Some(url) => url.clone(),
        None if wire::is_local_host(host) => format!("http://{host}"),
        None => format!("https://{host}"),
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
    state.portal.trim(&request.subject);
    Ok(json!({
        "id": minted.id,
        "url": format!("{base}/portal/start/{}", minted.start_token),
        "expires_at": rfc3339(minted.expires_at),
    }))
}
