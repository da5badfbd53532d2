//! Relay failures before a stream starts, mapped to the wire contract once.

use crate::server::error_response;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a relay request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The broker subscription is down: new connections would miss messages.
    #[error("not ready")]
    NotReady,
    /// `max_connections_total` or `max_connections_per_identity` reached.
    #[error("too many connections")]
    TooManyConnections,
    /// Authenticated, but not allowed here.
    #[error("forbidden")]
    Forbidden,
    /// No server API key was given to `/api/publish`.
    #[error("missing token")]
    MissingApiKey,
    /// The server API key is not one of `server.api_keys`.
    #[error("invalid token")]
    InvalidApiKey,
    /// The request body or a parameter is wrong; the text says which.
    #[error("{0}")]
    BadRequest(String),
    /// The broker refused the publish.
    #[error("publish failed")]
    PublishFailed,
}

impl RelayError {
    fn status(&self) -> StatusCode {
        match self {
            RelayError::NotReady | RelayError::PublishFailed => StatusCode::SERVICE_UNAVAILABLE,
            RelayError::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            RelayError::Forbidden => StatusCode::FORBIDDEN,
            RelayError::MissingApiKey | RelayError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            RelayError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for RelayError {
    fn into_response(self) -> Response {
        error_response(self.status(), &self.to_string())
    }
}
