//! [`KeyStore`]: the cached key set of `auth.jwks_url` / `auth.oidc_issuer`.
//!
//! Verification reads the current set under a short read lock and never waits on the
//! network, except for a token whose `kid` is not in the set: that may trigger one
//! fetch, and fetches (scheduled or not) never happen more often than
//! `jwks_min_refresh_seconds`, so a flood of made-up `kid`s costs the provider at most
//! one request per interval. A background task refetches when the set's time is up
//! (`jwks_cache_seconds`, or a shorter `Cache-Control: max-age`). A failed fetch keeps
//! the cached set in use (the provider being down must not log everyone out) and is
//! retried with backoff.

use super::key_set::KeySet;
use super::{oidc, InvalidReason, ProviderError, PublicKey};
use crate::config::AuthConfig;
use crate::net::HttpClient;
use crate::telemetry::Metrics;
use jsonwebtoken::Algorithm;
use reqwest::header::{HeaderMap, ACCEPT, CACHE_CONTROL};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest key-set document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where the key set comes from.
#[derive(Debug, Clone)]
enum Endpoint {
    /// `auth.jwks_url`.
    Url(String),
    /// `jwks_uri` of the issuer's discovery document.
    Discover(String),
}

/// The cached key set and the rules for refetching it.
pub(super) struct KeyStore {
    endpoint: Endpoint,
    client: HttpClient,
    metrics: Arc<Metrics>,
    allowed: Vec<Algorithm>,
    cache_for: Duration,
    min_refresh: Duration,
    timeout: Duration,
    /// The set verification reads. A std lock: held only to clone the `Arc`, never
    /// across an `.await`.
    current: RwLock<Arc<KeySet>>,
    /// Single flight: whoever fetches holds this; others wait and then read the result.
    fetch: tokio::sync::Mutex<FetchState>,
    /// Stops the background refresher when the store is dropped.
    stop: CancellationToken,
}

/// Bookkeeping of fetches, guarded by the single-flight lock.
#[derive(Debug, Default)]
struct FetchState {
    /// Start of the last fetch, successful or not (the min-refresh floor counts from here).
    last_attempt: Option<Instant>,
    /// When the current set is due for refetching.
    fresh_until: Option<Instant>,
    /// Failed fetches in a row (for the retry backoff).
    failures: u32,
    /// A set was fetched at least once.
    loaded: bool,
    /// `jwks_uri` found by discovery, kept until a fetch from it fails.
    discovered: Option<String>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("endpoint", &self.endpoint)
            .field("cache_for", &self.cache_for)
            .field("min_refresh", &self.min_refresh)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// A store for the configured key set. Starts the background refresher (which
    /// fetches at once) when called inside a Tokio runtime; without one, the set is
    /// fetched on the first token instead.
    pub(super) fn start(
        cfg: &AuthConfig,
        client: HttpClient,
        metrics: Arc<Metrics>,
        allowed: Vec<Algorithm>,
    ) -> Arc<Self> {
        let endpoint = match cfg.jwks_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => Endpoint::Url(url.to_string()),
            None => Endpoint::Discover(cfg.oidc_issuer.clone().unwrap_or_default()),
        };
        let store = Arc::new(Self {
            endpoint,
            client,
            metrics,
            allowed,
            cache_for: Duration::from_secs(cfg.jwks_cache_seconds),
            min_refresh: Duration::from_secs(cfg.jwks_min_refresh_seconds),
            timeout: Duration::from_millis(cfg.jwks_timeout_ms),
            current: RwLock::new(Arc::new(KeySet::default())),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            stop: CancellationToken::new(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(refresher(Arc::downgrade(&store), store.stop.clone()));
        }
        store
    }

    /// The key for a token's `kid`. Only an unknown `kid` waits on the network.
    pub(super) async fn key(&self, kid: Option<&str>) -> Result<Arc<PublicKey>, InvalidReason> {
        if let Some(key) = self.snapshot().find(kid) {
            return Ok(key);
        }
        let mut state = self.fetch.lock().await;
        // A fetch may have finished while this task waited for the lock.
        if let Some(key) = self.snapshot().find(kid) {
            return Ok(key);
        }
        if self.floor_passed(&state) {
            // A failure is logged and counted inside; the old set stays.
            let _ = self.fetch_locked(&mut state).await;
        }
        match self.snapshot().find(kid) {
            Some(key) => Ok(key),
            None if state.loaded => Err(InvalidReason::UnknownKey),
            None => Err(InvalidReason::KeysUnavailable),
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        // Lock held to clone one Arc; a poisoned lock still holds a consistent Arc.
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn floor_passed(&self, state: &FetchState) -> bool {
        state.last_attempt.is_none_or(|at| at.elapsed() >= self.min_refresh)
    }

    /// One scheduled refresh; returns how long to wait before the next.
    async fn tick(&self) -> Duration {
        let mut state = self.fetch.lock().await;
        let now = Instant::now();
        if let Some(until) = state.fresh_until.filter(|until| *until > now) {
            // Someone refetched for an unknown kid in the meantime.
            return until - now;
        }
        if let Some(floor) = state.last_attempt.map(|at| at + self.min_refresh).filter(|f| *f > now) {
            return floor - now;
        }
        match self.fetch_locked(&mut state).await {
            Ok(ttl) => ttl,
            Err(_) => {
                let doublings = state.failures.saturating_sub(1).min(16);
                (self.min_refresh * 2u32.pow(doublings)).min(self.cache_for.max(self.min_refresh))
            }
        }
    }

    /// Fetches the set (discovering its URL first when needed) and installs it.
    /// Returns how long the new set is fresh.
    async fn fetch_locked(&self, state: &mut FetchState) -> Result<Duration, ProviderError> {
        state.last_attempt = Some(Instant::now());
        let result = self.download(state).await;
        match &result {
            Ok((set, ttl)) => {
                tracing::debug!(keys = set.len(), ttl_s = ttl.as_secs(), "key set fetched");
                state.fresh_until = Some(Instant::now() + *ttl);
                state.failures = 0;
                state.loaded = true;
                self.metrics.auth_provider_call("jwks", "ok");
            }
            Err(e) => {
                state.failures += 1;
                if matches!(self.endpoint, Endpoint::Discover(_)) {
                    state.discovered = None;
                }
                tracing::warn!(error = %e, cached = state.loaded, "key set fetch failed; keeping the cached set");
                self.metrics.auth_provider_call("jwks", e.label());
            }
        }
        result.map(|(set, ttl)| {
            // Lock held for one pointer swap; no await inside.
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = set;
            ttl
        })
    }

    async fn download(&self, state: &mut FetchState) -> Result<(Arc<KeySet>, Duration), ProviderError> {
        let url = match (&self.endpoint, &state.discovered) {
            (Endpoint::Url(url), _) => url.clone(),
            (Endpoint::Discover(_), Some(url)) => url.clone(),
            (Endpoint::Discover(issuer), None) => {
                let found = oidc::discover(&self.client, issuer, self.timeout).await;
                self.metrics
                    .auth_provider_call("discovery", found.as_ref().map_or_else(|e| e.label(), |_| "ok"));
                let url = found?;
                state.discovered = Some(url.clone());
                url
            }
        };
        let request = self
            .client
            .request(reqwest::Method::GET, &url)?
            .header(ACCEPT, "application/json");
        let fetched = self.client.fetch(request, self.timeout, MAX_JWKS_BYTES).await?;
        if !fetched.status.is_success() {
            return Err(ProviderError::Status(fetched.status.as_u16()));
        }
        let (set, skipped) = KeySet::parse(&fetched.body, &self.allowed).map_err(ProviderError::Malformed)?;
        for why in &skipped {
            tracing::debug!(key = %why, "key set entry skipped");
        }
        Ok((Arc::new(set), self.fresh_for(&fetched.headers)))
    }

    /// `jwks_cache_seconds`, or the provider's shorter `max-age`, never below the
    /// min-refresh floor.
    fn fresh_for(&self, headers: &HeaderMap) -> Duration {
        let max_age = headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        max_age
            .map_or(self.cache_for, |age| age.min(self.cache_for))
            .max(self.min_refresh)
    }
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `max-age=N` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().trim_matches('"').parse().ok().map(Duration::from_secs))?
    })
}

/// Background refetching; holds only a weak reference while it sleeps.
async fn refresher(store: Weak<KeyStore>, stop: CancellationToken) {
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(store) = store.upgrade() else { return };
        wait = store.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::max_age;
    use std::time::Duration;

    #[test]
    fn max_age_is_read_from_cache_control() {
        const CASES: &[(&str, &str, Option<u64>)] = &[
            ("plain", "max-age=60", Some(60)),
            ("among others", "public, max-age=120, must-revalidate", Some(120)),
            ("upper case", "Max-Age=5", Some(5)),
            ("quoted", "max-age=\"7\"", Some(7)),
            ("no-cache ignored", "no-cache", None),
            ("s-maxage is for shared caches", "s-maxage=9", None),
            ("garbage", "max-age=soon", None),
        ];
        for (name, header, expected) in CASES {
            assert_eq!(max_age(header), expected.map(Duration::from_secs), "case {name}");
        }
    }
}
