//! One error type for every handler, mapped to an RFC 9457 problem document in one place.
//!
//! Every problem carries a stable machine-readable `code` (and a `type` URI built from it), a
//! human `title` and `detail`, and where useful extra members (`field`, `seats`). Internal
//! failures are logged with their full cause and answered with an opaque 500 or 503 whose
//! body names nothing inside the service.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_domain::ValidationError;
use boxoffice_domain::ports::StoreError;
use serde::Serialize;
use serde_json::{Map, Value};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document, as serialised.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:boxoffice:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable identifier of the kind of problem; clients branch on this.
    pub code: String,
    /// Problem-specific members, such as `field` or `seats`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, title: &str) -> Self {
        Self {
            kind: format!("urn:boxoffice:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            code: code.to_owned(),
            extensions: Map::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The problem for a bare status, when nothing more specific is known.
    pub fn from_status(status: StatusCode) -> Self {
        let (code, title) = match status {
            StatusCode::BAD_REQUEST => ("bad-request", "The request is malformed"),
            StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication is required"),
            StatusCode::FORBIDDEN => ("forbidden", "Not allowed"),
            StatusCode::NOT_FOUND => ("not-found", "No such resource"),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("method-not-allowed", "This method is not allowed here")
            }
            StatusCode::NOT_ACCEPTABLE => ("not-acceptable", "Cannot produce that media type"),
            StatusCode::REQUEST_TIMEOUT => ("request-timeout", "The request took too long"),
            StatusCode::CONFLICT => ("conflict", "The request conflicts with the current state"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "The request body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported-media-type",
                "The request body must be application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY => {
                ("unprocessable", "The request cannot be processed")
            }
            StatusCode::TOO_MANY_REQUESTS => ("too-many-requests", "Too many requests"),
            StatusCode::SERVICE_UNAVAILABLE => (
                "unavailable",
                "The service is temporarily unavailable; try again shortly",
            ),
            StatusCode::GATEWAY_TIMEOUT => ("timeout", "The request took too long"),
            s if s.is_server_error() => ("internal", "Something went wrong on our side"),
            _ => ("error", "The request failed"),
        };
        Self::new(status, code, title)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res
    }
}

/// What handlers return on failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client-facing problem, already fully described.
    #[error("{}", .0.title)]
    Problem(Box<Problem>),
    /// Something broke inside; the cause is logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
    /// A dependency (the database) is down or saturated.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn problem(p: Problem) -> Self {
        Self::Problem(Box::new(p))
    }

    pub fn not_found(what: &str) -> Self {
        Self::problem(
            Problem::new(StatusCode::NOT_FOUND, "not-found", "No such resource")
                .detail(format!("no such {what}")),
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::problem(
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed").detail(detail),
        )
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::problem(
            Problem::new(StatusCode::BAD_REQUEST, code, "The request is malformed").detail(detail),
        )
    }

    /// A request that parsed but breaks a rule: names the offending field.
    pub fn invalid(e: ValidationError) -> Self {
        Self::problem(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "validation-failed",
                "The request has an invalid value",
            )
            .detail(e.to_string())
            .with("field", e.field),
        )
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::problem(p)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::invalid(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) | StoreError::Contention(m) => ApiError::Unavailable(m),
            StoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Problem(p) => p.into_response(),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                let mut res = Problem::from_status(StatusCode::SERVICE_UNAVAILABLE).into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
