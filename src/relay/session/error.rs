//! Session refusals before the upgrade, mapped to the wire contract once.

use crate::server::error_response;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a session connection was refused. The client sees only the status and a
/// short text; the reason goes to `streamgate_session_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A path segment is outside `^[A-Za-z0-9._-]{1,128}$`.
    #[error("invalid path")]
    BadPath,
    /// No `Authorization: Bearer` header.
    #[error("missing token")]
    MissingToken,
    /// Bad signature, malformed, expired, wrong token, or a session mismatch.
    #[error("forbidden")]
    Forbidden(&'static str),
    /// The broker subscription is down.
    #[error("not ready")]
    NotReady,
    /// `max_connections_per_session` or `max_connections_total` reached.
    #[error("too many connections")]
    TooManyConnections,
}

impl SessionError {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::BadPath => "bad_path",
            SessionError::MissingToken => "missing",
            SessionError::Forbidden(reason) => reason,
            SessionError::NotReady => "not_ready",
            SessionError::TooManyConnections => "limit",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            SessionError::BadPath => StatusCode::BAD_REQUEST,
            SessionError::MissingToken => StatusCode::UNAUTHORIZED,
            SessionError::Forbidden(_) => StatusCode::FORBIDDEN,
            SessionError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        error_response(self.status(), &self.to_string())
    }
}
