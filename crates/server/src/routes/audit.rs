//! The ledger and the policy documents an auditor reads.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use discreet_engine::AuditQuery;
use serde_json::{Value, json};

use super::{blocking, param, query, time_param};
use crate::auth::Authenticated;
use crate::error::{ApiResult, bad};
use crate::state::AppState;

/// Ledger entries, newest first (subjects appear as tokens).
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(("subject" = Option<String>, Query, description = "Customer id or subject token"),
        ("actor" = Option<String>, Query, description = "API key id"),
        ("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("until" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("limit" = Option<usize>, Query, description = "1 to 10,000, default 100")),
    responses((status = 200, body = crate::openapi::AuditAnswer),
        (status = 400, response = crate::openapi::BadInput),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_audit(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let pairs = query(pairs, &["subject", "actor", "since", "until", "limit"])?;
    let limit = match param(&pairs, "limit") {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| bad("limit", "must be a whole number from 1 to 10000"))?,
    };
    let audit_query = AuditQuery {
        subject: param(&pairs, "subject").map(str::to_owned),
        actor: param(&pairs, "actor").map(str::to_owned),
        since: time_param(&pairs, "since")?,
        until: time_param(&pairs, "until")?,
        limit,
    };
    let engine = state.engine.clone();
    let records = blocking(move || engine.audit(&caller, &audit_query)).await?;
    let entries: Vec<Value> = records
        .into_iter()
        .map(|record| {
            json!({
                "seq": record.seq,
                "at": discreet_vault::rfc3339(record.entry.at),
                "actor": record.entry.actor,
                "action": record.entry.action,
                "subject_token": record.entry.subject_token,
                "purpose": record.entry.purpose,
                "categories": record.entry.categories,
                "outcome": record.entry.outcome,
                "detail": record.entry.detail,
                "hash": discreet_vault::crypto::to_hex(&record.hash),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })).into_response())
}

/// Re-walks the ledger chain and its signed checkpoints.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = crate::openapi::VerifyAnswer),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_audit_verify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    let engine = state.engine.clone();
    let verification = blocking(move || engine.verify_ledger(&caller)).await?;
    Ok(Json(verification).into_response())
}

/// The policy in force.
#[utoipa::path(get, path = "/v1/policy", tag = "policy",
    responses((status = 200, body = Object),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    Ok(Json(state.engine.policy_document(&caller)?).into_response())
}

/// Records of processing (GDPR Art. 30).
#[utoipa::path(get, path = "/v1/policy/records", tag = "policy",
    responses((status = 200, body = Object),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests)),
    security(("api_key" = [])))]
pub async fn get_records(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    Ok(Json(state.engine.records(&caller)?).into_response())
}
