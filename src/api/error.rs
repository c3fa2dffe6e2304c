//! `ApiError`: every failure a client can see, mapped to one status and a stable
//! `{"error": "<snake_case>", "message": "..."}` body.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::limits::LimitError;
use crate::routing::DispatchError;
use crate::service::GatewayError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidPhone(String),
    #[error("{0}")]
    InvalidOtp(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("send JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("this token may not use this route (needs the {0} role)")]
    Forbidden(&'static str),
    #[error("this network may not call the send API")]
    CallerNotAllowed,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("no such session")]
    SessionNotFound,
    #[error("the session has expired; request a new code")]
    SessionExpired,
    #[error("the session is already verified")]
    AlreadyVerified,
    #[error("no verification attempts left; request a new code")]
    AttemptsExhausted,
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_seconds: u64,
        reason: &'static str,
    },
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyConflict,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyInFlight,
    #[error("{0}")]
    DestinationBlocked(String),
    #[error("{0}")]
    NoPhone(String),
    /// Well-formed, but no configured provider has the name: 422, as the name may be right on
    /// another deployment (the request's shape is fine; this gateway cannot act on it).
    #[error("{0}")]
    UnknownProvider(String),
    #[error("{provider} rejected the message: {details}")]
    Rejected { provider: String, code: String, details: String },
    #[error("no configured provider can send {kind} messages to +{country}")]
    NoRoute { kind: &'static str, country: String },
    #[error("every provider failed; the message was not sent")]
    AllProvidersFailed {
        reasons: Vec<(String, String)>,
        show_reasons: bool,
        /// A provider timed out after the request left: the message may still arrive.
        maybe_delivered: bool,
    },
    #[error("the provider holding this code could not be reached; try again")]
    VerifyUnavailable,
    #[error("another verification of this session is still in progress; try again")]
    VerifyInProgress,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    #[error("the text needs {parts} SMS parts; at most {max} are allowed")]
    TooManySegments { parts: u32, max: u32, encoding: &'static str },
    #[error("this number has opted out of promotional messages")]
    OptedOut,
}

/// What a client is told to wait when the database is unavailable: long enough for a pool to
/// free up or a lock to clear, short enough for an OTP flow.
const STORE_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    /// An `Internal` error caused by a database that is unreachable, stalled or overloaded: it
    /// answers 503 `store_unavailable` with `Retry-After`, not 500, wherever it was raised.
    fn store_unavailable(&self) -> bool {
        match self {
            Self::Internal(cause) => cause
                .chain()
                .any(|c| c.downcast_ref::<StoreError>().is_some_and(StoreError::is_unavailable)),
            _ => false,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidPhone(_) => "invalid_phone",
            Self::InvalidOtp(_) => "invalid_otp",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RequestTimeout => "request_timeout",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::CallerNotAllowed => "caller_not_allowed",
            Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::SessionNotFound => "session_not_found",
            Self::SessionExpired => "session_expired",
            Self::AlreadyVerified => "already_verified",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::RateLimited { .. } => "rate_limited",
            Self::IdempotencyConflict => "idempotency_key_reused",
            Self::IdempotencyInFlight => "idempotency_key_in_flight",
            Self::DestinationBlocked(_) => "destination_not_allowed",
            Self::NoPhone(_) => "no_phone",
            Self::UnknownProvider(_) => "unknown_provider",
            Self::Rejected { .. } => "message_rejected",
            Self::NoRoute { .. } => "no_route",
            Self::AllProvidersFailed { .. } => "all_providers_failed",
            Self::VerifyUnavailable => "verification_unavailable",
            Self::VerifyInProgress => "verification_in_progress",
            Self::Internal(_) if self.store_unavailable() => "store_unavailable",
            Self::Internal(_) => "internal_error",
            Self::TooManySegments { .. } => "too_many_segments",
            Self::OptedOut => "opted_out",
        }
    }

    /// Turns a gateway failure into what the caller sees; `admin` callers get provider reasons.
    pub fn from_gateway(err: GatewayError, admin: bool) -> Self {
        match err {
            GatewayError::Dispatch(DispatchError::Rejected { provider, code, details }) => Self::Rejected { provider, code, details },
            GatewayError::Dispatch(DispatchError::NoRoute { kind, country }) => Self::NoRoute { kind, country },
            GatewayError::Dispatch(DispatchError::AllFailed { reasons }) => Self::AllProvidersFailed {
                reasons,
                show_reasons: admin,
                maybe_delivered: false,
            },
            GatewayError::MaybeSent(DispatchError::AllFailed { reasons }) => Self::AllProvidersFailed {
                reasons,
                show_reasons: admin,
                maybe_delivered: true,
            },
            GatewayError::Dispatch(DispatchError::Ambiguous { .. }) | GatewayError::MaybeSent(_) => Self::AllProvidersFailed {
                reasons: Vec::new(),
                show_reasons: false,
                maybe_delivered: true,
            },
            GatewayError::Store(e) | GatewayError::Limit(LimitError::Store(e)) => Self::Internal(anyhow::Error::new(e)),
            GatewayError::NoPhone(m) => Self::NoPhone(m),
            e @ GatewayError::UnknownProvider { .. } => Self::UnknownProvider(e.to_string()),
            GatewayError::Invalid(m) => Self::InvalidRequest(m),
            GatewayError::SessionNotFound => Self::SessionNotFound,
            GatewayError::Expired => Self::SessionExpired,
            GatewayError::AlreadyVerified => Self::AlreadyVerified,
            GatewayError::Exhausted => Self::AttemptsExhausted,
            GatewayError::VerifyUnavailable => Self::VerifyUnavailable,
            GatewayError::VerifyInProgress => Self::VerifyInProgress,
            GatewayError::Limit(LimitError::Refused {
                reason,
                retry_after_secs,
                message,
            }) => Self::RateLimited {
                message,
                retry_after_seconds: retry_after_secs,
                reason,
            },
            GatewayError::Limit(LimitError::Blocked { message, .. }) => Self::DestinationBlocked(message),
            // `Idempotency::once` answers from what the claim found; this is never shown.
            GatewayError::Limit(LimitError::KeyHeld) => Self::IdempotencyInFlight,
            GatewayError::TooManySegments { parts, max, encoding } => Self::TooManySegments { parts, max, encoding },
            GatewayError::OptedOut => Self::OptedOut,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) | Self::InvalidRequest(_) | Self::InvalidPhone(_) | Self::InvalidOtp(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::CallerNotAllowed | Self::DestinationBlocked(_) => StatusCode::FORBIDDEN,
            Self::RouteNotFound | Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::SessionExpired => StatusCode::GONE,
            Self::AlreadyVerified | Self::IdempotencyInFlight | Self::VerifyInProgress => StatusCode::CONFLICT,
            Self::AttemptsExhausted | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::IdempotencyConflict | Self::Rejected { .. } | Self::NoRoute { .. } | Self::NoPhone(_) | Self::UnknownProvider(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::TooManySegments { .. } | Self::OptedOut => StatusCode::UNPROCESSABLE_ENTITY,
            Self::AllProvidersFailed { .. } | Self::VerifyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) if self.store_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            if self.store_unavailable() {
                tracing::warn!(error = ?cause, "database unavailable");
            } else {
                tracing::error!(error = ?cause, "internal error");
            }
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::RateLimited { retry_after_seconds, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
            }
            Self::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            // The rest of the body may still come: the connection cannot carry another request.
            Self::RequestTimeout => {
                response.force_close();
            }
            Self::Internal(_) if self.store_unavailable() => {
                response.insert_header((header::RETRY_AFTER, STORE_RETRY_AFTER_SECS.to_string()));
            }
            _ => {}
        }

        response.json(self.body())
    }
}

impl ApiError {
    /// The JSON body: `{error, message}` and the context this error carries.
    pub fn body(&self) -> serde_json::Value {
        // A provider's text (a rejection, a failure reason) may quote the destination.
        let mut body = json!({ "error": self.code(), "message": crate::phone::mask_numbers_in(&self.to_string()) });
        match self {
            Self::Internal(_) if self.store_unavailable() => {
                body["message"] = json!("the database is unavailable or too slow; retry shortly");
                body["retry_after_seconds"] = json!(STORE_RETRY_AFTER_SECS);
            }
            Self::Internal(_) => {
                body["message"] = json!("internal error; the cause is in the gateway's log");
            }
            Self::RateLimited {
                retry_after_seconds,
                reason,
                ..
            } => {
                body["retry_after_seconds"] = json!(retry_after_seconds);
                body["reason"] = json!(reason);
            }
            Self::Rejected { code, .. } => body["provider_code"] = json!(code),
            Self::TooManySegments { parts, max, encoding } => {
                body["parts"] = json!(parts);
                body["max_segments"] = json!(max);
                body["encoding"] = json!(encoding);
            }
            Self::AllProvidersFailed {
                reasons,
                show_reasons,
                maybe_delivered,
            } => {
                if *show_reasons {
                    body["providers"] = reasons
                        .iter()
                        .map(|(p, r)| json!({"provider": p, "reason": crate::phone::mask_numbers_in(r)}))
                        .collect();
                }
                if *maybe_delivered {
                    body["delivery"] = json!("unknown");
                }
            }
            _ => {}
        }
        body
    }
}
