//! Why a token was refused, and how that looks on the wire.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused request. Maps to 401/403 with the DESIGN.md error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in any accepted source.
    #[error("missing token")]
    Missing,
    /// A token was given but is not acceptable; the reason is counted, never echoed.
    #[error("invalid token ({0:?})")]
    Invalid(InvalidReason),
    /// A valid token that may not do this.
    #[error("forbidden")]
    Forbidden,
}

/// Why a token was invalid: a bounded label for `streamgate_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// Not three base64url parts, bad JSON, or a key/algorithm the library refuses.
    Malformed,
    /// Signature does not verify.
    Signature,
    /// `alg` outside the configured set (including `none`).
    Algorithm,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `exp` is required but absent.
    MissingExpiry,
    /// `iss` is not the expected issuer.
    Issuer,
    /// `aud` does not contain the expected audience.
    Audience,
    /// The identity claim is absent or does not match the identity pattern.
    Identity,
}

impl InvalidReason {
    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "malformed",
            InvalidReason::Signature => "signature",
            InvalidReason::Algorithm => "algorithm",
            InvalidReason::Expired => "expired",
            InvalidReason::NotYetValid => "not_yet_valid",
            InvalidReason::MissingExpiry => "missing_expiry",
            InvalidReason::Issuer => "issuer",
            InvalidReason::Audience => "audience",
            InvalidReason::Identity => "identity",
        }
    }
}

impl AuthError {
    /// Metric label value for `streamgate_auth_failures_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Invalid(reason) => reason.as_str(),
            AuthError::Forbidden => "forbidden",
        }
    }

    /// HTTP status of this refusal.
    pub fn status(self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden => StatusCode::FORBIDDEN,
        }
    }

    /// The `error` text clients see.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "missing token",
            AuthError::Invalid(_) => "invalid token",
            AuthError::Forbidden => "forbidden",
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        crate::server::error_response(self.status(), self.message())
    }
}
