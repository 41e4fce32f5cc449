//! One table maps every error to its HTTP status, a stable snake_case code and a title;
//! every error leaves as RFC 9457 `application/problem+json`. Internal errors are logged
//! with their detail and answered without it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use discreet_engine::Error as EngineError;
use serde::Serialize;

/// Where the codes are documented; each problem's `type` is this with `#code`.
pub const PROBLEM_TYPE_BASE: &str = "https://discreet.invalid/docs/errors";

/// An error answered over HTTP.
#[derive(Debug)]
pub enum ApiError {
    Engine(EngineError),
    Unauthorized,
    AuthBlocked { retry_after_secs: u64 },
    PayloadTooLarge { limit_bytes: usize },
    RouteNotFound,
    MethodNotAllowed,
    BadRequest { field: String, detail: String },
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        ApiError::Engine(error)
    }
}

/// RFC 9457 problem details plus our stable `code` (and `field` for bad input).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The error table: status, code, title.
pub const ERROR_CODES: &[(u16, &str, &str)] = &[
    (400, "bad_input", "The request is not valid"),
    (401, "unauthorized", "A valid API key is required"),
    (403, "forbidden", "The API key's role does not allow this"),
    (404, "subject_not_found", "No such subject"),
    (404, "item_not_found", "No such item"),
    (404, "receipt_not_found", "No such receipt"),
    (404, "api_key_not_found", "No such API key"),
    (404, "not_found", "Not found"),
    (404, "route_not_found", "No such route"),
    (
        405,
        "method_not_allowed",
        "Method not allowed on this route",
    ),
    (
        409,
        "subject_being_forgotten",
        "The subject is being forgotten",
    ),
    (
        409,
        "idempotency_conflict",
        "Idempotency key reused with another body",
    ),
    (409, "conflict", "Conflicting write"),
    (413, "payload_too_large", "The request body is too large"),
    (
        429,
        "auth_blocked",
        "Too many failed authentications from this address",
    ),
    (500, "internal", "Internal error"),
    (503, "not_ready", "The models are still being rebuilt"),
];

fn row(code: &str) -> (StatusCode, &'static str, &'static str) {
    let (status, code, title) = ERROR_CODES
        .iter()
        .find(|(_, known, _)| *known == code)
        .copied()
        .unwrap_or((500, "internal", "Internal error"));
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        code,
        title,
    )
}

impl ApiError {
    /// The code, detail and field of this error.
    fn parts(&self) -> (&'static str, String, Option<String>) {
        match self {
            ApiError::Engine(error) => match error {
                EngineError::BadInput { field, detail } => (
                    "bad_input",
                    if field.is_empty() {
                        detail.clone()
                    } else {
                        format!("`{field}` {detail}")
                    },
                    (!field.is_empty()).then(|| field.clone()),
                ),
                EngineError::Forbidden { detail } => ("forbidden", detail.clone(), None),
                EngineError::NotFound { what } => {
                    let code = match *what {
                        "subject" => "subject_not_found",
                        "item" => "item_not_found",
                        "receipt" => "receipt_not_found",
                        "API key" => "api_key_not_found",
                        _ => "not_found",
                    };
                    (code, format!("{what} not found"), None)
                }
                EngineError::Forgetting => ("subject_being_forgotten", error.to_string(), None),
                EngineError::IdempotencyConflict => {
                    ("idempotency_conflict", error.to_string(), None)
                }
                EngineError::Conflict { detail } => ("conflict", detail.clone(), None),
                EngineError::NotReady => ("not_ready", error.to_string(), None),
                EngineError::Internal { .. } => (
                    "internal",
                    "an internal error occurred; it was logged for the operators".into(),
                    None,
                ),
            },
            ApiError::Unauthorized => (
                "unauthorized",
                "send `Authorization: Bearer <secret>` with a live API key".into(),
                None,
            ),
            ApiError::AuthBlocked { retry_after_secs } => (
                "auth_blocked",
                format!(
                    "too many failed authentications from this address; retry in {retry_after_secs} s"
                ),
                None,
            ),
            ApiError::PayloadTooLarge { limit_bytes } => (
                "payload_too_large",
                format!("the body is larger than {limit_bytes} bytes"),
                None,
            ),
            ApiError::RouteNotFound => {
                ("route_not_found", "no route matches this path".into(), None)
            }
            ApiError::MethodNotAllowed => (
                "method_not_allowed",
                "this route does not answer this method".into(),
                None,
            ),
            ApiError::BadRequest { field, detail } => (
                "bad_input",
                format!("`{field}` {detail}"),
                Some(field.clone()),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Engine(EngineError::Internal { detail }) = &self {
            tracing::error!(detail = %detail, "internal error");
        }
        let (code, detail, field) = self.parts();
        let (status, code, title) = row(code);
        let problem = Problem {
            problem_type: format!("{PROBLEM_TYPE_BASE}#{code}"),
            title,
            status: status.as_u16(),
            detail,
            code,
            field,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::AuthBlocked { retry_after_secs } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if code == "unauthorized" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::ERROR_CODES;

    /// Guards that the published error table (docs/ERRORS.md) lists every code with its status.
    #[test]
    fn every_code_is_documented() {
        let documented = include_str!("../../../docs/ERRORS.md");
        for (status, code, _) in ERROR_CODES {
            assert!(
                documented.contains(&format!("| {status} | `{code}` |")),
                "docs/ERRORS.md lacks {status} {code}"
            );
        }
    }
}
