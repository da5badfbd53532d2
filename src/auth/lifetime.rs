//! [`AuthLifetime`]: auth holds for the whole life of a connection. One value per
//! connection turns the token's `exp`, a revocation notice and the periodic refresh
//! into events the transport loop selects on ([`AuthLifetime::next`]).
//!
//! The refresh call runs in its own task, so a busy connection (whose loop is
//! woken by every message) never cancels it halfway; its result comes back through
//! a oneshot that is safe to poll from `select!`.

use super::{Principal, Refreshed, Watched};
use crate::server::AppState;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// What happened to the connection's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEvent {
    /// `exp` (plus leeway) passed: say `auth_expired`, then close.
    Expired,
    /// The token was revoked: say so, then close.
    Revoked,
    /// A refresh extended the connection to this new `exp`.
    Refreshed {
        /// The new token's `exp` (Unix seconds).
        exp: u64,
    },
}

type RefreshResult = Result<Refreshed, super::ProviderError>;

/// The credential timeline of one connection.
pub struct AuthLifetime {
    state: Arc<AppState>,
    principal: Principal,
    /// `None` for connections whose tokens are not revocable by subject (sessions).
    watched: Option<Watched>,
    expiry: Option<Pin<Box<Sleep>>>,
    /// Boxed: most connections have none, and this struct lives as long as they do.
    refresh: Option<Box<Refresh>>,
}

/// Periodic refresh state, present only with `auth.refresh` and an `X-Refresh-Token`.
struct Refresh {
    token: String,
    lead: Duration,
    /// A refresh succeeded already: the next one waits at least half the new token's
    /// remaining life (see [`AuthLifetime::schedule`]).
    refreshed: bool,
    due: Option<Pin<Box<Sleep>>>,
    pending: Option<oneshot::Receiver<RefreshResult>>,
}

impl AuthLifetime {
    /// Starts watching `principal` for revocation and schedules expiry and refresh.
    pub fn new(state: &Arc<AppState>, principal: Principal, refresh_token: Option<String>) -> Self {
        let principal = principal.without_claims();
        let watched = Some(state.revocations.watch(&principal));
        let refresh = match (state.verifier.refresh_lead(), refresh_token) {
            (Some(lead), Some(token)) => Some(Box::new(Refresh {
                token,
                lead,
                refreshed: false,
                due: None,
                pending: None,
            })),
            _ => None,
        };
        let mut lifetime = Self {
            state: state.clone(),
            principal,
            watched,
            expiry: None,
            refresh,
        };
        lifetime.schedule();
        lifetime
    }

    /// Only the token's expiry: no revocation watch and no refresh. For session-proxy
    /// connections, whose `{session_id, iat}` tokens name no subject.
    pub fn expiry_only(state: &Arc<AppState>, principal: Principal) -> Self {
        let mut lifetime = Self {
            state: state.clone(),
            principal: principal.without_claims(),
            watched: None,
            expiry: None,
            refresh: None,
        };
        lifetime.schedule();
        lifetime
    }

    /// The current principal (replaced after each successful refresh).
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// (Re)arms the expiry and refresh timers from the current principal's `exp`.
    ///
    /// A refresh is due `lead` before `exp`, at once when that has passed. After a
    /// successful refresh it is due no earlier than halfway to the new `exp`: a
    /// provider whose tokens live shorter than `lead` (Keycloak's 300 s under the
    /// default 1800 s) would otherwise be asked again at once, in a loop.
    fn schedule(&mut self) {
        let leeway = self.state.config.auth.leeway_seconds;
        self.expiry = deadline(self.principal.expires_at, leeway).map(|at| Box::pin(tokio::time::sleep_until(at)));
        if let Some(refresh) = &mut self.refresh {
            let now = Instant::now();
            let due = deadline(self.principal.expires_at, 0).map(|exp| {
                let due = exp.checked_sub(refresh.lead).unwrap_or(now);
                match refresh.refreshed {
                    true => due.max(now + exp.saturating_duration_since(now) / 2),
                    false => due,
                }
            });
            refresh.due = due.map(|at| Box::pin(tokio::time::sleep_until(at)));
        }
    }

    /// Waits for the next credential event. Cancel-safe: timers live in `self` and a
    /// refresh in flight keeps running in its own task.
    pub async fn next(&mut self) -> AuthEvent {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next credential event, in this order: revocation, expiry, a
    /// finished refresh, a refresh falling due (which starts it and polls again).
    /// Written as a poll function so the future a connection keeps pending for its
    /// whole life is one reference, not a `select!` of four futures (~200 B each
    /// idle connection).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<AuthEvent> {
        loop {
            if self.watched.as_ref().is_some_and(|w| w.poll_revoked(cx).is_ready()) {
                return Poll::Ready(AuthEvent::Revoked);
            }
            if let Some(expiry) = self.expiry.as_mut() {
                if expiry.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(AuthEvent::Expired);
                }
            }
            let Some(refresh) = self.refresh.as_deref_mut() else {
                return Poll::Pending;
            };
            if let Some(pending) = refresh.pending.as_mut() {
                if let Poll::Ready(result) = Pin::new(pending).poll(cx) {
                    match self.finish_refresh(result.ok()) {
                        Some(exp) => return Poll::Ready(AuthEvent::Refreshed { exp }),
                        None => continue,
                    }
                }
            }
            match refresh.due.as_mut().map(|due| due.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => self.start_refresh(),
                _ => return Poll::Pending,
            }
        }
    }

    fn start_refresh(&mut self) {
        let Some(refresh) = &mut self.refresh else { return };
        refresh.due = None;
        let (tx, rx) = oneshot::channel();
        let (state, token, current) = (self.state.clone(), refresh.token.clone(), self.principal.clone());
        tokio::spawn(async move {
            let _ = tx.send(state.verifier.refresh(&token, &current).await);
        });
        refresh.pending = Some(rx);
    }

    /// Applies a refresh result; returns the new `exp` on success. On failure the old
    /// expiry stands, so `auth_expired` follows at `exp`.
    fn finish_refresh(&mut self, result: Option<RefreshResult>) -> Option<u64> {
        let refresh = self.refresh.as_mut()?;
        refresh.pending = None;
        let refreshed = result?.ok()?;
        refresh.refreshed = true;
        if let Some(rotated) = refreshed.refresh_token {
            refresh.token = rotated;
        }
        let principal = refreshed.principal.without_claims();
        if let Some(watched) = &self.watched {
            watched.replace(&principal);
        }
        self.principal = principal;
        self.schedule();
        Some(self.principal.expires_at.unwrap_or(0))
    }
}

/// The instant `exp + leeway` is reached; `None` for tokens without `exp`.
pub fn deadline(expires_at: Option<u64>, leeway_seconds: u64) -> Option<Instant> {
    let exp_ms = expires_at?.saturating_add(leeway_seconds).saturating_mul(1000);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(exp_ms.saturating_sub(now_ms)))
}
