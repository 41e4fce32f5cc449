//! What the customer sees: the overview, their data, the download and the activity.

use super::*;

struct CategoryRow {
    label: String,
    category: String,
    records: u64,
    retention: String,
    purposes: String,
}

struct PurposeCard {
    label: String,
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
                retention: held.retention.as_deref().map_or_else(
                    || t.kept_until_forgotten.to_owned(),
                    |retention| retention_label(locale, retention),
                ),
                purposes: held
                    .purposes
                    .iter()
                    .map(|purpose| purpose_label(locale, purpose))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        purposes: export
            .purposes
            .iter()
            .map(|purpose| PurposeCard {
                label: purpose_label(locale, &purpose.purpose),
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
    pager_path: &'static str,
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
        pager_path: "/portal/data",
        derived,
    };
    render(page, locale)
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
    pager_path: &'static str,
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
        pager_path: "/portal/activity",
    };
    render(page, locale)
}
