//! The Worker's one error type and its one HTTP mapping.
//!
//! Client errors carry their status and a stable `error` code and are not
//! logged as failures. Everything else is [`ApiError::Internal`]: it is logged
//! with its context and answers a bare `500 {"error":"internal"}`, so no
//! internal detail (and no secret) reaches a response. Every 5xx is a bug,
//! except the deliberate 507 of a trigger at its storage budget.

use serde_json::{json, Value};
use worker::{console_error, Response};

/// What a 507 asks the sender to wait: retention or the operator may free
/// room by then, and providers retry on their own schedule anyway.
const STORAGE_RETRY_AFTER_SECONDS: u32 = 300;

/// An error that ends a request.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed or invalid.
    BadRequest {
        /// Stable code, e.g. `invalid_request`, `invalid_body`.
        code: &'static str,
        /// A sentence for a person.
        message: String,
        /// The offending field, when there is one.
        field: Option<String>,
    },
    /// 401: no or wrong bearer token.
    Unauthorized,
    /// 404: the named thing does not exist (or is not this trigger's).
    NotFound(&'static str),
    /// 405: the route exists with other methods.
    MethodNotAllowed(&'static str),
    /// 409: the request conflicts with the resource's state.
    Conflict {
        /// Stable code.
        code: &'static str,
        /// A sentence for a person.
        message: String,
    },
    /// 413: the body is larger than allowed.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// 429: a rate limit; retry after this many seconds.
    RateLimited {
        /// `trigger` or `client_ip`.
        scope: &'static str,
        /// Seconds to wait.
        retry_after: u32,
    },
    /// 507: the trigger's ledger is at its storage budget. Deliberate, not a
    /// failure: the provider keeps the delivery and retries, while the
    /// operator raises the budget or shortens retention.
    StorageBudgetExceeded {
        /// Bytes held.
        used: u64,
        /// The budget.
        budget: u64,
    },
    /// 500: a bug or a platform failure; logged, never detailed.
    Internal(String),
}

impl ApiError {
    /// A 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "invalid_request",
            message: message.into(),
            field: None,
        }
    }

    /// An internal error with context, for the log.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        ApiError::Internal(format!("{context}: {err}"))
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized => 401,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::StorageBudgetExceeded { .. } => 507,
            ApiError::Internal(_) => 500,
        }
    }

    fn body(&self) -> Value {
        match self {
            ApiError::BadRequest {
                code,
                message,
                field,
            } => {
                let mut v = json!({"error": code, "message": message});
                if let Some(f) = field {
                    v["field"] = json!(f);
                }
                v
            }
            ApiError::Unauthorized => {
                json!({"error": "unauthorized", "message": "a valid bearer token is required"})
            }
            ApiError::NotFound(what) => {
                json!({"error": "not_found", "message": format!("{what} not found")})
            }
            ApiError::MethodNotAllowed(allow) => {
                json!({"error": "method_not_allowed", "message": format!("allowed: {allow}")})
            }
            ApiError::Conflict { code, message } => json!({"error": code, "message": message}),
            ApiError::PayloadTooLarge { limit } => json!({
                "error": "payload_too_large",
                "message": format!("the body exceeds the limit of {limit} bytes"),
                "limit": limit
            }),
            ApiError::RateLimited { scope, retry_after } => json!({
                "error": "rate_limited",
                "message": format!("too many requests ({scope} limit); retry after {retry_after}s"),
                "scope": scope,
                "retry_after": retry_after
            }),
            ApiError::StorageBudgetExceeded { used, budget } => json!({
                "error": "storage_budget_exceeded",
                "message": format!(
                    "the trigger's ledger holds {used} of its {budget} bytes; raise storage_budget_bytes or shorten retention_days"
                ),
                "used_bytes": used,
                "budget_bytes": budget,
                "retry_after": STORAGE_RETRY_AFTER_SECONDS
            }),
            ApiError::Internal(_) => json!({"error": "internal"}),
        }
    }

    /// The response, logging internal errors on the way.
    pub fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            console_error!("internal error: {detail}");
        }
        let status = self.status();
        let mut resp = crate::http::json(status, &self.body());
        if let ApiError::MethodNotAllowed(allow) = &self {
            let _ = resp.headers_mut().set("allow", allow);
        }
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            ApiError::StorageBudgetExceeded { .. } => Some(STORAGE_RETRY_AFTER_SECONDS),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            let _ = resp.headers_mut().set("retry-after", &seconds.to_string());
        }
        resp
    }
}

impl From<worker::Error> for ApiError {
    fn from(err: worker::Error) -> Self {
        ApiError::Internal(format!("runtime: {err}"))
    }
}

impl From<edgehook_core::ConfigError> for ApiError {
    fn from(err: edgehook_core::ConfigError) -> Self {
        ApiError::BadRequest {
            code: "invalid_request",
            message: err.to_string(),
            field: Some(err.field),
        }
    }
}

impl From<edgehook_core::query::QueryError> for ApiError {
    fn from(err: edgehook_core::query::QueryError) -> Self {
        ApiError::BadRequest {
            code: "invalid_request",
            message: err.message,
            field: Some(err.field.into()),
        }
    }
}

/// A request handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
