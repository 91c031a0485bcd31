//! API errors: a stable numeric code, a stable snake_case name, an HTTP status and a message
//! that leaks nothing internal. Refusals of the router ([`Reject`], codes 100–199) pass through
//! with their own code; failures at the API edge use codes 1000 and up.

use crate::model::Seq;
use crate::reject::Reject;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Failures at the API edge, before or around the router. Codes are stable and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiCode {
    /// The body is not JSON, or not the JSON the endpoint takes.
    MalformedJson,
    /// A field, path or query parameter has the wrong form or is out of range.
    InvalidRequest,
    /// The body or message exceeds the size limit.
    PayloadTooLarge,
    /// Too many requests from this address or key.
    RateLimited,
    /// No such resource.
    NotFound,
    /// The resource does not take this method.
    MethodNotAllowed,
    /// The WebSocket authentication, or a proof of ownership, failed or is required.
    Unauthorized,
    /// Too many WebSocket connections from this address or wallet.
    TooManyConnections,
    /// The exchange is shutting down or its sequencer is not running.
    Unavailable,
    /// Something failed inside the server; nothing was changed by this request.
    Internal,
    /// Reconciliation found a difference; withdrawals wait for a clean run.
    WithdrawalsHalted,
    /// The exchange is shedding new orders until its SQL projection catches up; cancels are
    /// still taken. Retry later.
    Overloaded,
}

impl ApiCode {
    /// Stable numeric code.
    pub const fn code(self) -> u16 {
        match self {
            ApiCode::MalformedJson => 1000,
            ApiCode::InvalidRequest => 1001,
            ApiCode::PayloadTooLarge => 1002,
            ApiCode::RateLimited => 1003,
            ApiCode::NotFound => 1004,
            ApiCode::MethodNotAllowed => 1005,
            ApiCode::Unauthorized => 1006,
            ApiCode::TooManyConnections => 1007,
            ApiCode::Unavailable => 1008,
            ApiCode::Internal => 1009,
            ApiCode::WithdrawalsHalted => 1010,
            ApiCode::Overloaded => 1011,
        }
    }

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            ApiCode::MalformedJson => "malformed_json",
            ApiCode::InvalidRequest => "invalid_request",
            ApiCode::PayloadTooLarge => "payload_too_large",
            ApiCode::RateLimited => "rate_limited",
            ApiCode::NotFound => "not_found",
            ApiCode::MethodNotAllowed => "method_not_allowed",
            ApiCode::Unauthorized => "unauthorized",
            ApiCode::TooManyConnections => "too_many_connections",
            ApiCode::Unavailable => "unavailable",
            ApiCode::Internal => "internal",
            ApiCode::WithdrawalsHalted => "withdrawals_halted",
            ApiCode::Overloaded => "overloaded",
        }
    }

    /// HTTP status.
    pub const fn status(self) -> StatusCode {
        match self {
            ApiCode::MalformedJson | ApiCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ApiCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiCode::RateLimited | ApiCode::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            ApiCode::NotFound => StatusCode::NOT_FOUND,
            ApiCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiCode::Unavailable | ApiCode::WithdrawalsHalted | ApiCode::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Every code, for the OpenAPI document.
    pub const ALL: [ApiCode; 12] = [
        ApiCode::MalformedJson,
        ApiCode::InvalidRequest,
        ApiCode::PayloadTooLarge,
        ApiCode::RateLimited,
        ApiCode::NotFound,
        ApiCode::MethodNotAllowed,
        ApiCode::Unauthorized,
        ApiCode::TooManyConnections,
        ApiCode::Unavailable,
        ApiCode::Internal,
        ApiCode::WithdrawalsHalted,
        ApiCode::Overloaded,
    ];
}

/// The stable snake_case name of a refusal (its serde name).
pub fn reject_name(reason: Reject) -> String {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "rejected".to_owned(),
    }
}

/// An error as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// Stable numeric code.
    pub code: u16,
    /// Stable snake_case name.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// Sequence number of the refused command, when the router sequenced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    #[serde(skip)]
    status: u16,
}

impl ApiError {
    /// An edge failure with `message`.
    pub fn new(code: ApiCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.code(),
            error: code.name().to_owned(),
            message: message.into(),
            seq: None,
            status: code.status().as_u16(),
        }
    }

    /// A refusal by the router (`seq` when it was sequenced and journaled).
    pub fn reject(reason: Reject, seq: Option<Seq>) -> ApiError {
        ApiError {
            code: reason.code(),
            error: reject_name(reason),
            message: reason.to_string(),
            seq,
            status: reason.http_status(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The error as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}
