//! `ApiError`: every way a request can fail, and the status and JSON body each one gets:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`. Internal errors are logged once,
//! here, and hidden from the client: no SQL, no stack trace in a body.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use shared::{db, domain::ValidationError};

use crate::credentials::Refused;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `malformed_json`: the body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 400 `validation_failed`: a field is missing, has the wrong type, or is out of range.
    #[error("{message}")]
    Validation {
        /// The field at fault, if one can be named.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// 400 `invalid_parameter`: a path segment, query parameter or header is malformed.
    #[error("{message}")]
    InvalidParameter {
        /// The parameter at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// 401: missing, malformed, forged or expired token, or wrong credentials.
    #[error("{message}")]
    Unauthorized {
        /// `missing_token`, `invalid_token`, `token_expired` or `invalid_credentials`.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 403 `forbidden`: authenticated, but not allowed (e.g. not an admin).
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with an earlier one (e.g. a reused idempotency key).
    #[error("{message}")]
    Conflict {
        /// Machine-readable reason.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 413 `payload_too_large`.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415 `unsupported_media_type`.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// 422 `unknown_reference`: a well-formed id that names nothing (an unknown user or product).
    #[error("{message}")]
    UnknownReference {
        /// The field holding the id.
        field: &'static str,
        /// What was not found.
        message: String,
    },
    /// 429 `too_many_requests`, with `Retry-After`: every password check is taken, or the account
    /// or the client address has too many failed logins; retrying after the wait works.
    #[error("{message}")]
    TooManyRequests {
        /// Seconds to wait, sent as `Retry-After`.
        retry_after_secs: u64,
        /// What is wrong.
        message: String,
    },
    /// 503 `service_unavailable`, with `Retry-After`: a dependency is down; retrying later works.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    /// 503 `request_timeout`, with `Retry-After`: the response did not start within
    /// `HTTP_REQUEST_TIMEOUT_SECS`; the work was abandoned (a write that had not committed was
    /// rolled back).
    #[error("the request took longer than {} s; it was abandoned", .0.as_secs())]
    RequestTimeout(std::time::Duration),
    /// 503 `overloaded`, with `Retry-After`: the listener is at `HTTP_MAX_CONNECTIONS` or
    /// `HTTP_MAX_IN_FLIGHT`; retrying after the wait works.
    #[error("the server is at its limit of connections or requests in flight; retry shortly")]
    Overloaded,
    /// 500 `internal_error`: a bug or an unexpected failure. Logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Every error's body: `{"error": {"code", "message", "field"?}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `validation_failed`, `invalid_token`, `unknown_reference`, …
    #[schema(example = "validation_failed")]
    code: &'static str,
    /// For people.
    #[schema(example = "must be between 1 and 10000")]
    message: String,
    /// The field, parameter or header at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "quantity")]
    field: Option<String>,
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::Validation { .. } | ApiError::InvalidParameter { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnknownReference { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::RequestTimeout(_) | ApiError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::Unauthorized { code, .. } | ApiError::Conflict { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::UnknownReference { .. } => "unknown_reference",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Overloaded => "overloaded",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::Validation { field, .. } => field.as_deref(),
            ApiError::InvalidParameter { field, .. } => Some(field),
            ApiError::UnknownReference { field, .. } => Some(field),
            _ => None,
        }
    }

    /// How long a client should wait before retrying, for the errors that say so.
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            ApiError::Unavailable(_) => Some(5),
            ApiError::RequestTimeout(_) | ApiError::Overloaded => Some(1),
            _ => None,
        }
    }

    /// A 401 for a request without usable credentials.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized { code, message: message.into() }
    }

    /// A 400 for a malformed path segment, query parameter or header.
    pub fn invalid_parameter(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidParameter { field: field.into(), message: message.into() }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Validation { field: Some(e.field.to_owned()), message: e.message }
    }
}

/// A login refused before its password was checked.
impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        let retry_after_secs = refused.retry_after_secs();
        let message = match refused {
            Refused::Busy => format!("too many logins at once; retry in {retry_after_secs} s"),
            Refused::Throttled(_) => format!("too many failed logins; retry in {retry_after_secs} s"),
        };
        ApiError::TooManyRequests { retry_after_secs, message }
    }
}

/// A database error that reached a handler: transient ones (server down, pool exhausted) are a
/// 503 the client may retry; anything else is a 500.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if db::is_transient(&e) {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable("the database is unavailable".into())
        } else {
            ApiError::Internal(anyhow::Error::new(e).context("Database query failed"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                "internal error; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let body =
            ErrorBody { error: ErrorDetail { code: self.code(), message, field: self.field().map(str::to_owned) } };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
