//! The handlers of every route in the API contract, by area, and what they share. Each one
//! authenticates, reads its input with `wire` (naming the field at fault), and hands the
//! call to the engine, which decides whether it is allowed. Calls that may touch storage
//! run on the blocking pool.

mod answers;
mod audit;
mod data;
mod incidents;
mod items;
mod keys;
mod operations;
mod rights;

pub use answers::*;
pub use audit::*;
pub use data::*;
pub use incidents::*;
pub use items::*;
pub use keys::*;
pub use operations::*;
pub use rights::*;

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request};
use axum::http::{HeaderMap, StatusCode};
use discreet_engine::{Caller, Engine};
use discreet_policy::Action;
use serde_json::Value;

use crate::error::{ApiError, ApiResult, bad};
use crate::state::AppState;
use crate::wire;

/// A JSON body, parsed by us so that every failure is a problem+json naming the body.
pub struct JsonBody {
    pub value: Value,
    /// The bytes as received (idempotency keys remember their hash).
    pub raw: Bytes,
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let raw =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge {
                            limit_bytes: state.limits.max_body_bytes,
                        }
                    } else {
                        bad("body", "could not be read")
                    }
                })?;
        let value = serde_json::from_slice(&raw)
            .map_err(|error| bad("body", format!("is not valid JSON ({error})")))?;
        Ok(JsonBody { value, raw })
    }
}

pub(crate) fn path<T>(extracted: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    extracted
        .map(|Path(value)| value)
        .map_err(|_| bad("path", "has a segment that is not valid UTF-8 text"))
}

pub(crate) fn query(
    extracted: Result<Query<Vec<(String, String)>>, QueryRejection>,
    known: &[&str],
) -> ApiResult<Vec<(String, String)>> {
    query_repeating(extracted, known, &[])
}

/// `query`, where the names in `repeatable` may be given more than once.
pub(crate) fn query_repeating(
    extracted: Result<Query<Vec<(String, String)>>, QueryRejection>,
    known: &[&str],
    repeatable: &[&str],
) -> ApiResult<Vec<(String, String)>> {
    let Query(pairs) = extracted.map_err(|_| bad("query", "is not a valid query string"))?;
    let mut seen = BTreeSet::new();
    for (position, (name, _)) in pairs.iter().enumerate() {
        // An unknown name is not echoed (it may be anything a caller typed).
        if !known.contains(&name.as_str()) {
            return Err(bad(
                "query",
                format!(
                    "has a parameter that is not one of this route's (parameter {}); known: {}",
                    position + 1,
                    known.join(", ")
                ),
            ));
        }
        if !repeatable.contains(&name.as_str()) && !seen.insert(name.clone()) {
            return Err(bad(name, "is given more than once"));
        }
    }
    Ok(pairs)
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Every value of a repeatable parameter, in order.
pub(crate) fn params(pairs: &[(String, String)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .collect()
}

pub(crate) fn count_param(pairs: &[(String, String)], default: usize) -> ApiResult<usize> {
    match param(pairs, "n") {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| bad("n", "must be a whole number from 1 to 100")),
    }
}

pub(crate) fn time_param(pairs: &[(String, String)], name: &str) -> ApiResult<Option<i64>> {
    param(pairs, name)
        .map(|text| wire::parse_time(name, text).map_err(ApiError::from))
        .transpose()
}

/// Runs engine work that touches storage on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> discreet_engine::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| {
            ApiError::Engine(discreet_engine::Error::Internal {
                detail: format!("a worker stopped: {error}"),
            })
        })?
        .map_err(ApiError::from)
}

pub(crate) fn gpc_requested(headers: &HeaderMap) -> bool {
    headers
        .get("sec-gpc")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim() == "1")
}

/// Honours `Sec-GPC: 1` for the subjects a request of kind `request` names. The engine
/// refuses it for a role that may not make the request (a request answered 403 changes
/// nothing). True when a withdrawal was recorded.
pub(crate) async fn honour_gpc(
    engine: &Engine,
    caller: &Caller,
    request: Action,
    headers: &HeaderMap,
    subjects: Vec<String>,
) -> ApiResult<bool> {
    if !gpc_requested(headers) || subjects.is_empty() {
        return Ok(false);
    }
    let (engine, caller) = (engine.clone(), caller.clone());
    blocking(move || Ok(engine.honour_gpc(&caller, request, &subjects)? > 0)).await
}
