//! `GET /ws`: the relay's WebSocket transport. Authenticates and admits before the
//! upgrade (so refusals are HTTP statuses), then runs the shared [`pump`] with an
//! [`Inbound`] that publishes client frames to `{inbound_prefix}:{identity}`.

use super::admission::{admit, Admitted};
use super::pump::{self, Connection, Inbound, PumpSettings, Reply};
use super::RelayError;
use crate::auth::{token_source, Principal};
use crate::server::websocket::{socket_config, Socket, UpgradeRejection, WebSocketUpgrade};
use crate::server::AppState;
use crate::telemetry::Transport;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Unanswered pings before the connection is closed.
const MAX_MISSED_PONGS: u32 = 2;

/// Authenticates, admits, then upgrades.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, UpgradeRejection>,
) -> Result<Response, RelayError> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let refresh_token = token_source::refresh_token(&headers);
    let admitted = admit(&state, principal, refresh_token, Transport::WebSocket).await?;
    let config = socket_config(state.config.relay.max_message_size_bytes);
    let tracker = state.tracker.clone();
    Ok(upgrade.accept(&tracker, config, move |socket| run(state, admitted, socket)))
}

/// Builds the connection and returns the pump's future directly (no wrapper
/// future, so nothing is stored twice per connection).
fn run(
    state: Arc<AppState>,
    admitted: Admitted,
    socket: Socket,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let relay = &state.config.relay;
    let ping = Duration::from_secs(relay.websocket_ping_seconds);
    let settings = PumpSettings {
        ping_interval: ping,
        // "Two missed pongs": the first unanswered ping plus two more intervals.
        pong_timeout: ping * MAX_MISSED_PONGS,
        write_timeout: Duration::from_millis(relay.websocket_write_timeout_ms),
        max_message_bytes: relay.max_message_size_bytes,
    };
    let (lifetime, subscription, guard) = admitted.into_parts();
    let identity = lifetime.principal().identity.clone();
    let hello = serde_json::json!({ "event": "connected", "identity": &*identity });
    let inbound = RelayInbound {
        topic: relay.inbound_prefix().map(|p| format!("{p}:{identity}")),
        state: state.clone(),
    };
    let conn = Connection {
        hello: Some(hello.to_string().into()),
        subscription,
        lifetime: Some(lifetime),
        shutdown: state.shutdown.clone(),
        settings,
        inbound,
        guard,
    };
    pump::run(socket, conn)
}

/// Publishes client frames verbatim to the inbound topic (or drops and counts them).
struct RelayInbound {
    topic: Option<String>,
    state: Arc<AppState>,
}

impl Inbound for RelayInbound {
    async fn message(&mut self, payload: Bytes, _text: bool) -> Reply {
        let Some(topic) = &self.topic else {
            self.state.metrics.inbound(false);
            return Reply::Continue;
        };
        let published = self.state.broker.publish(topic, payload).await;
        if let Err(e) = &published {
            tracing::warn!(error = %e, "inbound publish failed; message dropped");
        }
        self.state.metrics.inbound(published.is_ok());
        Reply::Continue
    }
}
