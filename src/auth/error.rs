//! Why a token was refused, and how that looks on the wire.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused request. Maps to 401/403/503 with the DESIGN.md error texts.
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
    /// A valid token that was revoked (`POST /admin/revoke`).
    #[error("token revoked")]
    Revoked,
    /// The revocation list could not be read: refusing is safer than admitting a
    /// revoked token, and the broker being down refuses connections anyway.
    #[error("not ready")]
    Unavailable,
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
    /// `azp` is absent or not in `auth.allowed_azp`.
    Azp,
    /// The token's `kid` is not in the key set, even after a permitted refetch.
    UnknownKey,
    /// No key set has been fetched yet (provider down since start).
    KeysUnavailable,
    /// Remote verification answered that the token is not active.
    Inactive,
    /// Remote verification answered for another identity.
    IdentityMismatch,
    /// Remote verification failed (unreachable, timeout, bad answer): fail closed.
    ProviderError,
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
            InvalidReason::Azp => "azp",
            InvalidReason::UnknownKey => "unknown_key",
            InvalidReason::KeysUnavailable => "keys_unavailable",
            InvalidReason::Inactive => "inactive",
            InvalidReason::IdentityMismatch => "identity_mismatch",
            InvalidReason::ProviderError => "provider_error",
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
            AuthError::Revoked => "revoked",
            AuthError::Unavailable => "unavailable",
        }
    }

    /// HTTP status of this refusal.
    pub fn status(self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid(_) | AuthError::Revoked => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden => StatusCode::FORBIDDEN,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` text clients see.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "missing token",
            AuthError::Invalid(_) => "invalid token",
            AuthError::Forbidden => "forbidden",
            AuthError::Revoked => "token revoked",
            AuthError::Unavailable => "not ready",
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        crate::server::error_response(self.status(), self.message())
    }
}

/// Why a call to the identity provider (key set, discovery, remote verification,
/// refresh) failed. Logged and counted by [`ProviderError::label`]; a client only
/// ever sees the [`AuthError`] it leads to.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The call did not complete (SSRF refusal, DNS, connect, timeout, size).
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// The provider answered with a non-2xx status.
    #[error("provider answered HTTP {0}")]
    Status(u16),
    /// The answer is not the expected JSON document.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The token is not active.
    #[error("token not active")]
    Inactive,
    /// The answer (or the refreshed token) names another identity.
    #[error("answer names another identity")]
    IdentityMismatch,
    /// The refreshed token failed local verification.
    #[error("refreshed token refused: {0}")]
    Refused(AuthError),
}

impl ProviderError {
    /// Bounded metric label (`streamgate_auth_provider_calls_total{result}`).
    pub fn label(&self) -> &'static str {
        match self {
            ProviderError::Net(e) => e.label(),
            ProviderError::Status(_) => "status",
            ProviderError::Malformed(_) => "malformed",
            ProviderError::Inactive => "inactive",
            ProviderError::IdentityMismatch => "identity_mismatch",
            ProviderError::Refused(_) => "refused",
        }
    }
}
