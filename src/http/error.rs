//! The one error type of the HTTP edge, answered as
//! `{"error": {"code", "message", "requestId"}}`.
//!
//! Client mistakes carry a message meant for the caller. Anything internal is logged in full
//! where it happens and answered with an opaque message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::caller::AuthError;
use crate::grants::GrantError;
use crate::telemetry::request_id;
use crate::zoom::ZoomError;

/// What went wrong, as the caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code for a bare status produced outside our handlers (a layer, the router).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 => Self::RequestTimeout,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            429 => Self::RateLimited,
            502 => Self::UpstreamError,
            503 | 504 => Self::UpstreamUnavailable,
            400..=499 => Self::InvalidRequest,
            _ => Self::Internal,
        }
    }
}

/// An error answered to the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A bad request naming the field at fault.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidRequest, format!("{field}: {problem}"))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// Logs the cause in full and answers opaquely.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The default message for a bare status.
    pub fn for_status(status: StatusCode) -> Self {
        let code = ErrorCode::for_status(status);
        let message = match code {
            ErrorCode::NotFound => "no such route".to_string(),
            ErrorCode::MethodNotAllowed => "method not allowed on this route".to_string(),
            ErrorCode::PayloadTooLarge => "request body is larger than 64 KiB".to_string(),
            ErrorCode::RequestTimeout => "the request took too long".to_string(),
            ErrorCode::Internal => "internal error".to_string(),
            _ => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_ascii_lowercase(),
        };
        Self::new(code, message)
    }
}

/// Every error answer: `{"error": {"code", "message", "requestId"}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorResponse)]
pub(crate) struct Envelope<'a> {
    error: Body<'a>,
}

/// What went wrong, for the caller.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Body<'a> {
    /// Stable and machine-readable; the HTTP status follows from it.
    #[schema(schema_with = crate::http::openapi::error_code_schema)]
    code: &'a str,
    /// For a person: names the field at fault for `invalid_request`, and keeps Zoom's own
    /// code and message for `upstream_error`. Never a secret or a token.
    #[schema(example = "meetingNumber: must be 9 to 12 digits")]
    message: &'a str,
    /// The request's id, also in the `x-request-id` response header; quote it in reports.
    #[schema(example = "3f2b9c1e-7d4a-4e0b-9a51-0c2d8e6f4b7a")]
    request_id: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with_id(request_id::current().as_deref())
    }
}

impl ApiError {
    /// The answer, naming `request_id` (that of the request being served, for
    /// [`IntoResponse`]).
    pub(crate) fn into_response_with_id(self, request_id: Option<&str>) -> Response {
        let body = Envelope {
            error: Body {
                code: self.code.as_str(),
                message: &self.message,
                request_id: request_id.unwrap_or_default(),
            },
        };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code == ErrorCode::Unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// How each Zoom failure is answered: Zoom unreachable or throttling is `upstream_unavailable`
/// with `Retry-After`, an unknown user `not_found`, a spent caller budget `rate_limited`, any
/// other refusal `upstream_error` with Zoom's own code and message.
impl From<ZoomError> for ApiError {
    fn from(error: ZoomError) -> Self {
        match error {
            ZoomError::Unavailable {
                reason,
                retry_after,
            } => ApiError {
                code: ErrorCode::UpstreamUnavailable,
                message: format!("Zoom is unavailable ({reason}); try again later"),
                retry_after: Some(retry_after.unwrap_or(1).max(1)),
            },
            ZoomError::CallerBudgetSpent { retry_after, .. } => ApiError {
                code: ErrorCode::RateLimited,
                message: error.to_string(),
                retry_after: Some(retry_after),
            },
            ZoomError::UserNotFound(message) => {
                ApiError::new(ErrorCode::NotFound, format!("Zoom: {message}"))
            }
            ZoomError::NoS2sCredentials(_) | ZoomError::NotInstalled(_) => {
                ApiError::new(ErrorCode::NotFound, error.to_string())
            }
            ZoomError::Internal(detail) => ApiError::internal(detail),
            other => ApiError::new(ErrorCode::UpstreamError, other.to_string()),
        }
    }
}

/// How a grant's failures are answered: Zoom's refusals as Zoom errors, a different user at
/// Zoom `forbidden`, an account without the app `not_found`, the store's own trouble `internal`.
impl From<GrantError> for ApiError {
    fn from(error: GrantError) -> Self {
        match error {
            GrantError::ReauthorizationRequired | GrantError::Zoom(_) => {
                ZoomError::from(error).into()
            }
            GrantError::NoApp => ApiError::not_found(error.to_string()),
            GrantError::OtherUser => ApiError::forbidden(error.to_string()),
            GrantError::CodeRefused(_) | GrantError::ZoomIdentity => {
                ApiError::new(ErrorCode::UpstreamError, error.to_string())
            }
            GrantError::Store(_) | GrantError::Sealed | GrantError::Busy => {
                ApiError::internal(error)
            }
        }
    }
}

/// How a refused caller is answered.
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthenticated(message) => ApiError::unauthenticated(message),
            AuthError::NotYourself | AuthError::MissingScope(_) | AuthError::BoundElsewhere(_) => {
                ApiError::forbidden(error.to_string())
            }
            AuthError::NoAccounts | AuthError::UnknownAccount(_) => {
                ApiError::not_found(error.to_string())
            }
            AuthError::AccountRequired(_) => ApiError::invalid("account", error),
        }
    }
}
