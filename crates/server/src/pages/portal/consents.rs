//! One switch per consent-based purpose, its history, and `Sec-GPC`.

use super::*;

struct ConsentSwitch {
    name: String,
    label: String,
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
            .map(|purpose| purpose_label(locale, &purpose.name))
            .collect::<Vec<_>>()
            .join(", "),
        purposes: switches(&state.engine, &view, locale),
        history: view
            .history
            .iter()
            .map(|decision| DecisionRow {
                at: when(locale, &decision.at),
                purpose: purpose_label(locale, &decision.purpose),
                decision: consent_state(t, decision.state),
                source: decision.source.clone(),
            })
            .collect(),
    };
    render(page, locale)
}

/// The consent-based purposes of the policy, with the customer's current decisions.
fn switches(engine: &Engine, view: &ConsentsView, locale: Locale) -> Vec<ConsentSwitch> {
    let t = locale.texts();
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
                label: purpose_label(locale, &purpose.name),
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
