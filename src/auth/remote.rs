//! [`RemoteVerifier`]: `auth.verify`, asking the provider about a token after local
//! verification passed. Positive answers are cached (bounded, never past `exp`), so
//! a reconnecting client costs the provider one call per `cache_seconds`; a negative
//! answer or any failure refuses the token (fail closed) and is counted.

use super::cache::ExpiringSet;
use super::claims::lookup;
use super::identity::identity_from_claim;
use super::provider::{truthy, ProviderCall};
use super::{InvalidReason, Principal, ProviderError};
use crate::config::AuthConfig;
use crate::net::HttpClient;
use crate::telemetry::Metrics;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The remote check and its answer cache.
#[derive(Debug)]
pub(super) struct RemoteVerifier {
    call: ProviderCall,
    active_field: String,
    identity_field: String,
    cache_for: Duration,
    /// SHA-256 of tokens the provider called active. A std lock: held for one lookup
    /// or insert, never across an `.await`.
    cache: Mutex<ExpiringSet<[u8; 32]>>,
    metrics: Arc<Metrics>,
}

impl RemoteVerifier {
    pub(super) fn new(cfg: &AuthConfig, client: HttpClient, metrics: Arc<Metrics>) -> Self {
        let v = &cfg.verify;
        Self {
            call: ProviderCall {
                client,
                url: v.url.clone().unwrap_or_default(),
                method: v.method,
                param: v.token_param.clone(),
                location: v.token_location,
                extra: v.extra_params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                bearer: cfg.service_token.clone().filter(|t| !t.is_empty()),
                timeout: Duration::from_millis(v.timeout_ms),
            },
            active_field: v.active_field.clone(),
            identity_field: v.identity_field.clone(),
            cache_for: Duration::from_secs(v.cache_seconds),
            cache: Mutex::new(ExpiringSet::new(v.cache_max_entries)),
            metrics,
        }
    }

    /// Accepts `token` (already verified locally as `principal`) only when the
    /// provider says it is active and names the same identity.
    pub(super) async fn check(&self, token: &str, principal: &Principal) -> Result<(), InvalidReason> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if self.cache_for > Duration::ZERO && self.cache().contains(&digest, Instant::now()) {
            self.metrics.auth_provider_call("verify", "cached");
            return Ok(());
        }
        let verdict = self.ask(token, principal).await;
        self.metrics
            .auth_provider_call("verify", verdict.as_ref().map_or_else(|e| e.label(), |_| "ok"));
        match verdict {
            Ok(()) => {
                if let Some(until) = self.cache_deadline(principal.expires_at) {
                    self.cache().insert(digest, until);
                }
                Ok(())
            }
            Err(ProviderError::Inactive) => Err(InvalidReason::Inactive),
            Err(ProviderError::IdentityMismatch) => Err(InvalidReason::IdentityMismatch),
            Err(e) => {
                tracing::warn!(error = %e, "remote verification failed; refusing the token");
                Err(InvalidReason::ProviderError)
            }
        }
    }

    async fn ask(&self, token: &str, principal: &Principal) -> Result<(), ProviderError> {
        let answer = self.call.send(token).await?;
        if !truthy(lookup(&answer, &self.active_field)) {
            return Err(ProviderError::Inactive);
        }
        if !self.identity_field.is_empty() {
            let named = lookup(&answer, &self.identity_field).and_then(identity_from_claim);
            if named.as_deref() != Some(&*principal.identity) {
                return Err(ProviderError::IdentityMismatch);
            }
        }
        Ok(())
    }

    /// `cache_seconds` from now, but never past the token's own expiry.
    fn cache_deadline(&self, expires_at: Option<u64>) -> Option<Instant> {
        let mut ttl = self.cache_for;
        if let Some(exp) = expires_at {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            ttl = ttl.min(Duration::from_secs(exp.saturating_sub(now)));
        }
        (ttl > Duration::ZERO).then(|| Instant::now() + ttl)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ExpiringSet<[u8; 32]>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
