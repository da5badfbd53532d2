//! `Principal` as an axum extractor: handlers never parse tokens.

use super::{token_source, AuthError, Principal, Verifier};
use crate::telemetry::Metrics;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;

/// What the extractor needs from the application state.
pub trait AuthState: Send + Sync {
    /// The verifier of client tokens.
    fn verifier(&self) -> &Verifier;
    /// Where auth failures are counted.
    fn metrics(&self) -> &Metrics;
}

impl<S> FromRequestParts<Arc<S>> for Principal
where
    S: AuthState + 'static,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Self::Rejection> {
        let result = match token_source::from_parts(parts) {
            None => Err(AuthError::Missing),
            Some(token) => state.verifier().verify(&token),
        };
        if let Err(e) = &result {
            state.metrics().auth_failure(e.reason());
        }
        result
    }
}
