//! The one path from a request to a [`Principal`]: find the token in the configured
//! sources, verify it (locally, then remotely when configured), refuse it when
//! revoked, and count every refusal by reason. [`Principal`] is an axum extractor
//! built on [`authenticate`], so handlers never parse tokens.

use super::{revocation, AuthError, Principal, Verifier};
use crate::broker::Broker;
use crate::telemetry::Metrics;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::sync::Arc;

/// What authentication needs from the application state.
pub trait AuthState: Send + Sync {
    /// The verifier of client tokens.
    fn verifier(&self) -> &Verifier;
    /// Where auth failures are counted.
    fn metrics(&self) -> &Metrics;
    /// Where revocations are stored.
    fn broker(&self) -> &dyn Broker;
}

/// Authenticates a request from its headers and query string. Every refusal is
/// counted: token problems in `streamgate_auth_failures_total{reason}`, a broker that
/// cannot answer (503) in `streamgate_server_connection_rejections_total{reason="not_ready"}`.
pub async fn authenticate<S>(state: &S, headers: &HeaderMap, query: Option<&str>) -> Result<Principal, AuthError>
where
    S: AuthState + ?Sized,
{
    let result: Result<Principal, AuthError> = async {
        let token = state
            .verifier()
            .token_sources()
            .find(headers, query)
            .ok_or(AuthError::Missing)?;
        let principal = state.verifier().verify(&token).await?;
        revocation::check(state.broker(), &principal).await?;
        Ok(principal)
    }
    .await;
    match &result {
        // The broker, not the token, failed: count it with the other not-ready refusals.
        Err(AuthError::Unavailable) => state.metrics().rejection("not_ready"),
        Err(e) => state.metrics().auth_failure(e.reason()),
        Ok(_) => {}
    }
    result
}

impl<S> FromRequestParts<Arc<S>> for Principal
where
    S: AuthState + 'static,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Self::Rejection> {
        authenticate(state.as_ref(), &parts.headers, parts.uri.query()).await
    }
}
