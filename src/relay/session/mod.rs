//! The session proxy (wsproxy-compatible): `GET /{agent_id}/ws/{session_id}`
//! bridged to the broker topics `session:{id}:down` (backend → client) and
//! `session:{id}:up` (client → backend).
//!
//! Flow: path check (400) → [`auth`] (401 missing / 403 refused) → broker ready
//! (503) → per-session limit (429) → hub subscription on the down topic (the node's
//! one broker subscription carries `session:*:down`) → the shared WebSocket pump
//! with [`inbound::SessionInbound`] forwarding client JSON up.

mod auth;
mod error;
mod inbound;

pub use error::SessionError;

use super::pump::{self, Connection, PumpSettings};
use crate::auth::{is_valid_identity, token_source, AuthLifetime};
use crate::config::SessionConfig;
use crate::hub::Subscription;
use crate::limits::{Lease, LimitError};
use crate::server::websocket::{socket_config, Socket, UpgradeRejection, WebSocketUpgrade};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The session route at `session.path`.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route(&state.config.session.path, get(handle))
        .with_state(state)
}

/// Checks the path and token, admits, then upgrades.
async fn handle(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, UpgradeRejection>,
) -> Result<Response, SessionError> {
    let result = admit(&state, &params, &headers).await;
    if let Err(e) = &result {
        state.metrics.session_auth_failure(e.reason());
    }
    let session = result?;
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let config = socket_config(state.config.session.max_message_size_bytes);
    let tracker = state.tracker.clone();
    Ok(upgrade.accept(&tracker, config, move |socket| session.run(state, socket)))
}

/// An admitted session connection; dropping it undoes the admission.
struct Session {
    id: String,
    subscription: Subscription,
    /// Expiry of a JWT-authenticated session (none for opaque tokens).
    lifetime: Option<AuthLifetime>,
    _lease: Lease,
    _gauge: SessionGauge,
}

async fn admit(
    state: &Arc<AppState>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Session, SessionError> {
    let cfg = &state.config.session;
    let path_ok = params.values().all(|v| is_valid_identity(v));
    let session_id = params
        .get("session_id")
        .filter(|_| path_ok)
        .ok_or(SessionError::BadPath)?;
    let token = token_source::bearer(headers).ok_or(SessionError::MissingToken)?;
    if !state.broker.is_ready() || state.shutdown.is_cancelled() {
        return Err(SessionError::NotReady);
    }
    let principal = auth::check(state, cfg, session_id, &token).await?;
    let lease = match state
        .limiter
        .acquire_session(session_id, cfg.max_connections_per_session)
        .await
    {
        Ok(lease) => lease,
        Err(LimitError::TooManyConnections) => return Err(SessionError::TooManyConnections),
    };
    let topic = SessionConfig::render(&cfg.down_channel, session_id);
    let subscription = state
        .hub
        .subscribe(&topic, cfg.client_buffer_size, cfg.slow_consumer_policy);
    Ok(Session {
        id: session_id.clone(),
        subscription,
        lifetime: principal.map(|p| AuthLifetime::expiry_only(state, p)),
        _lease: lease,
        _gauge: SessionGauge::open(state),
    })
}

impl Session {
    /// Builds the connection and returns the pump's future directly (no wrapper
    /// future, so nothing is stored twice per connection).
    fn run(self, state: Arc<AppState>, socket: Socket) -> impl std::future::Future<Output = ()> + Send + 'static {
        let cfg = &state.config.session;
        let settings = PumpSettings {
            ping_interval: Duration::from_secs(cfg.ping_seconds),
            pong_timeout: Duration::from_secs(cfg.ping_timeout_seconds),
            write_timeout: Duration::from_millis(state.config.relay.websocket_write_timeout_ms),
            max_message_bytes: cfg.max_message_size_bytes,
        };
        let inbound = inbound::SessionInbound::new(state.clone(), SessionConfig::render(&cfg.up_channel, &self.id));
        let conn = Connection {
            hello: None,
            subscription: self.subscription,
            lifetime: self.lifetime,
            shutdown: state.shutdown.clone(),
            settings,
            inbound,
            guard: (self._lease, self._gauge),
        };
        pump::run(socket, conn)
    }
}

/// Keeps `streamgate_session_connections` true for the connection's life.
struct SessionGauge(Arc<AppState>);

impl SessionGauge {
    fn open(state: &Arc<AppState>) -> Self {
        state.metrics.session_connection_delta(1);
        Self(state.clone())
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.metrics.session_connection_delta(-1);
    }
}
