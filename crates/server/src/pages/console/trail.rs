//! The audit trail (filters, a CSV download) and API keys (create with the secret shown
//! once, revoke).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use discreet_engine::{AuditQuery, MAX_AUDIT_ENTRIES};
use discreet_vault::{LedgerRecord, rfc3339};

use super::*;
use crate::pages::csv_cell as cell;

/// Entries the audit page lists when no limit is asked for.
const DEFAULT_LIMIT: usize = 200;

/// The audit trail's filters, as the form sent them (kept to fill the form again).
#[derive(Default)]
pub struct AuditFilters {
    pub actor: String,
    pub action: String,
    pub since: String,
    pub until: String,
    pub limit: String,
    /// The same filters as a query string (for the CSV link).
    pub query: String,
}

/// One ledger entry as a row.
pub struct EntryRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject_token: String,
    pub purpose: String,
    pub categories: String,
    pub outcome: String,
    pub detail: String,
}

impl EntryRow {
    fn of(record: &LedgerRecord) -> EntryRow {
        let entry = &record.entry;
        EntryRow {
            seq: record.seq,
            at: rfc3339(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            subject_token: entry.subject_token.clone().unwrap_or_default(),
            purpose: entry.purpose.clone().unwrap_or_default(),
            categories: entry.categories.join(" "),
            outcome: entry.outcome.clone(),
            detail: entry.detail.clone(),
        }
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The query and the action filter of the audit trail's parameters.
fn audit_query(
    state: &AppState,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(AuditQuery, AuditFilters), ConsoleError> {
    let Query(pairs) =
        pairs.map_err(|_| ConsoleError::bad_request(state, "The filters could not be read."))?;
    let form = form_fields(
        state,
        Ok(Form(pairs)),
        &["actor", "action", "since", "until", "limit"],
    )?;
    let text = |name: &str| filled(&form, name).unwrap_or("").to_owned();
    let filters = AuditFilters {
        actor: text("actor"),
        action: text("action"),
        since: text("since"),
        until: text("until"),
        limit: text("limit"),
        query: form
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| format!("{name}={}", percent_encode(value.trim())))
            .collect::<Vec<_>>()
            .join("&"),
    };
    for (name, value) in [("actor", &filters.actor), ("action", &filters.action)] {
        if value.chars().count() > 200 || value.chars().any(char::is_control) {
            return Err(ConsoleError::bad_request(
                state,
                format!("{name}: must be at most 200 characters, without control characters."),
            ));
        }
    }
    let time = |name: &str, value: &str| {
        (!value.is_empty())
            .then(|| form_time(name, value))
            .transpose()
            .map_err(|problem| ConsoleError::bad_request(state, problem))
    };
    let limit = if filters.limit.is_empty() {
        DEFAULT_LIMIT
    } else {
        filters
            .limit
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_AUDIT_ENTRIES).contains(limit))
            .ok_or_else(|| {
                ConsoleError::bad_request(state, "limit: must be a whole number from 1 to 10000.")
            })?
    };
    let query = AuditQuery {
        subject: None,
        actor: (!filters.actor.is_empty()).then(|| filters.actor.clone()),
        since: time("since", &filters.since)?,
        until: time("until", &filters.until)?,
        limit,
    };
    Ok((query, filters))
}

async fn entries(
    state: &AppState,
    desk: &Desk,
    query: AuditQuery,
    action: &str,
) -> Result<Vec<LedgerRecord>, ConsoleError> {
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let records = run(move || engine.audit(&caller, &query))
        .await
        .map_err(|error| desk.engine_error(state, &error))?;
    Ok(records
        .into_iter()
        .filter(|record| {
            action.is_empty()
                || record.entry.action == action
                || record
                    .entry
                    .action
                    .strip_prefix(action)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .collect())
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: ConsoleFrame,
    filters: AuditFilters,
    rows: Vec<EntryRow>,
    limit: usize,
}

/// `GET /console/audit?actor=&action=&since=&until=&limit=`: the newest ledger entries.
pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    let (query, filters) = audit_query(&state, pairs)?;
    let limit = query.limit;
    let records = entries(&state, &desk, query, &filters.action).await?;
    let page = AuditPage {
        frame: desk.frame(&state, ConsolePage::Audit, "Audit trail"),
        rows: records.iter().map(EntryRow::of).collect(),
        filters,
        limit,
    };
    render(&state, page)
}

/// `GET /console/audit.csv?…`: the same entries as a CSV file.
pub async fn audit_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    let (query, filters) = audit_query(&state, pairs)?;
    let records = entries(&state, &desk, query, &filters.action).await?;
    let mut csv =
        String::from("seq,at,actor,action,subject_token,purpose,categories,outcome,detail\r\n");
    for row in records.iter().map(EntryRow::of) {
        let cells = [
            row.seq.to_string(),
            cell(&row.at),
            cell(&row.actor),
            cell(&row.action),
            cell(&row.subject_token),
            cell(&row.purpose),
            cell(&row.categories),
            cell(&row.outcome),
            cell(&row.detail),
        ];
        csv.push_str(&cells.join(","));
        csv.push_str("\r\n");
    }
    Ok(crate::pages::attachment(
        "text/csv; charset=utf-8",
        "audit-trail.csv",
        csv,
    ))
}

// ------------------------------------------------------------------------------ keys

/// A key as a row.
pub struct KeyRow {
    pub id: String,
    pub role: String,
    pub label: String,
    pub created: String,
    pub revoked: String,
    /// The officer's own key (revoking it signs them out).
    pub own: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: ConsoleFrame,
    keys: Vec<KeyRow>,
    roles: Vec<String>,
    /// A key just created: its id and secret, shown this once.
    created: Option<(String, String)>,
    notice: String,
}

async fn keys_page(
    state: &AppState,
    desk: &Desk,
    created: Option<(String, String)>,
    notice: String,
) -> ConsoleResult {
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let keys = run(move || engine.api_keys(&caller))
        .await
        .map_err(|error| desk.engine_error(state, &error))?;
    let page = KeysPage {
        frame: desk.frame(state, ConsolePage::Keys, "API keys"),
        keys: keys
            .iter()
            .rev()
            .map(|key| KeyRow {
                own: key.id == desk.caller.key_id,
                id: key.id.clone(),
                role: key.role.clone(),
                label: key.label.clone(),
                created: when_millis(key.created_at),
                revoked: key.revoked_at.map(when_millis).unwrap_or_default(),
            })
            .collect(),
        roles: state
            .engine
            .policy()
            .roles()
            .iter()
            .map(|role| role.name.clone())
            .collect(),
        created,
        notice,
    };
    render(state, page)
}

/// `GET /console/keys`.
pub async fn keys(State(state): State<AppState>, headers: HeaderMap) -> ConsoleResult {
    let desk = desk(&state, &headers)?;
    keys_page(&state, &desk, None, String::new()).await
}

/// `POST /console/keys`: issues a key; its secret is on this one answer only.
pub async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf", "role", "label"])?;
    let desk = form_desk(&state, &headers, &form)?;
    let role = filled(&form, "role").unwrap_or("").to_owned();
    let label = field(&form, "label").unwrap_or("").trim().to_owned();
    let (engine, caller) = (state.engine.clone(), desk.caller.clone());
    let issued = run(move || engine.create_api_key(&caller, &role, &label))
        .await
        .map_err(|error| desk.engine_error(&state, &error))?;
    let created = Some((issued.id.clone(), issued.secret.to_string()));
    let mut response = keys_page(&state, &desk, created, String::new()).await?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /console/keys/revoke`: revokes a key at once.
pub async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> ConsoleResult {
    let form = form_fields(&state, form, &["csrf", "id"])?;
    let desk = form_desk(&state, &headers, &form)?;
    let id = filled(&form, "id")
        .ok_or_else(|| ConsoleError::bad_request(&state, "id: choose a key to revoke."))?
        .to_owned();
    let (engine, caller, revoked) = (state.engine.clone(), desk.caller.clone(), id.clone());
    run(move || engine.revoke_api_key(&caller, &revoked))
        .await
        .map_err(|error| desk.engine_error(&state, &error))?;
    if id == desk.caller.key_id {
        state.console.end(&desk.token);
        return Err(ConsoleError::signed_out_clearing(&state, &headers));
    }
    keys_page(&state, &desk, None, format!("Key {id} is revoked.")).await
}
