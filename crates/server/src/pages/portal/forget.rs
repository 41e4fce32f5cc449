//! Forget with confirmation, then the signed receipt and its file.

use super::*;

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
