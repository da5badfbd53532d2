//! Admin API refusals, mapped to the wire contract once.

use crate::auth::ApiKeyRefusal;
use crate::server::error_response;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why an admin request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No server API key was given.
    #[error("missing token")]
    MissingApiKey,
    /// The server API key is not one of `server.api_keys`.
    #[error("invalid token")]
    InvalidApiKey,
    /// The body or a parameter is wrong; the text says which.
    #[error("{0}")]
    BadRequest(String),
    /// The broker could not store or read the revocation list.
    #[error("not ready")]
    Unavailable,
}

impl AdminError {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            AdminError::MissingApiKey | AdminError::InvalidApiKey => "unauthorized",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::Unavailable => "unavailable",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            AdminError::MissingApiKey | AdminError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<ApiKeyRefusal> for AdminError {
    fn from(refusal: ApiKeyRefusal) -> Self {
        match refusal {
            ApiKeyRefusal::Missing => AdminError::MissingApiKey,
            ApiKeyRefusal::Invalid => AdminError::InvalidApiKey,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        error_response(self.status(), &self.to_string())
    }
}
