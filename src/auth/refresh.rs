//! Token refresh (`auth.refresh`): trading a client's refresh token for a new access
//! token before the current one expires.
//!
//! Only the call lives here; the connection loops decide when to call it
//! ([`Verifier::refresh_lead`] before `exp`) and tell the client (`token_refreshed`).
//! The refresh token comes from the `X-Refresh-Token` header only
//! ([`super::token_source::refresh_token`]): never from the query, where it would
//! end up in logs and browser history.

use super::claims::lookup;
use super::provider::ProviderCall;
use super::{Principal, ProviderError, Verifier};
use crate::config::AuthConfig;
use crate::net::HttpClient;
use serde_json::Value;
use std::time::Duration;

/// The configured refresh call.
#[derive(Debug)]
pub(super) struct Refresher {
    call: ProviderCall,
    new_token_field: String,
    new_refresh_token_field: String,
    lead: Duration,
}

/// A successful refresh.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The caller as the new token describes it (same identity, later `exp`).
    pub principal: Principal,
    /// The new access token.
    pub token: String,
    /// A rotated refresh token to use next time, when the provider sent one.
    pub refresh_token: Option<String>,
}

impl Refresher {
    pub(super) fn new(cfg: &AuthConfig, client: HttpClient) -> Self {
        let r = &cfg.refresh;
        Self {
            call: ProviderCall {
                client,
                url: r.url.clone().unwrap_or_default(),
                method: r.method,
                param: r.token_param.clone(),
                location: r.token_location,
                extra: r.extra_params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                bearer: None,
                timeout: Duration::from_millis(r.timeout_ms),
            },
            new_token_field: r.new_token_field.clone(),
            new_refresh_token_field: r.new_refresh_token_field.clone(),
            lead: Duration::from_secs(r.interval_seconds),
        }
    }
}

// === impl Verifier: refresh ===

impl Verifier {
    /// How long before `exp` a connection should refresh; `None` when refresh is off.
    pub fn refresh_lead(&self) -> Option<Duration> {
        self.refresher.as_ref().map(|r| r.lead)
    }

    /// Calls `auth.refresh.url` with `refresh_token`, verifies the new access token
    /// locally and requires the identity of `current`. On any error the caller keeps
    /// the old expiry (so `auth_expired` follows at `exp`). Counted as
    /// `streamgate_auth_provider_calls_total{call="refresh"}`.
    pub async fn refresh(&self, refresh_token: &str, current: &Principal) -> Result<Refreshed, ProviderError> {
        let result = self.refresh_inner(refresh_token, current).await;
        self.metrics
            .auth_provider_call("refresh", result.as_ref().map_or_else(|e| e.label(), |_| "ok"));
        if let Err(e) = &result {
            tracing::info!(error = %e, "token refresh failed");
        }
        result
    }

    async fn refresh_inner(&self, refresh_token: &str, current: &Principal) -> Result<Refreshed, ProviderError> {
        let Some(refresher) = &self.refresher else {
            return Err(ProviderError::Malformed("auth.refresh.url is not configured".into()));
        };
        let answer = refresher.call.send(refresh_token).await?;
        let token = lookup(&answer, &refresher.new_token_field)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProviderError::Malformed(format!("no {:?} in the answer", refresher.new_token_field)))?
            .to_string();
        let principal = self.verify_local(&token).await.map_err(ProviderError::Refused)?;
        if principal.identity != current.identity {
            return Err(ProviderError::IdentityMismatch);
        }
        let refresh_token = lookup(&answer, &refresher.new_refresh_token_field)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(Refreshed {
            principal,
            token,
            refresh_token,
        })
    }
}
