//! `GET /ws`: the WebSocket transport. One task per connection runs one `select!`
//! over shutdown, expiry, outbound frames, inbound frames and pings, and owns every
//! close code (1001 shutdown, 1008 expiry/slow consumer/ping timeout, 1009 too big,
//! 1007 invalid UTF-8, 1002 protocol error).

use super::admission::{admit, Admitted};
use super::{expiry, RelayError};
use crate::auth::Principal;
use crate::server::{error_response, AppState};
use crate::telemetry::Transport;
use axum::extract::ws::{
    rejection::WebSocketUpgradeRejection, CloseFrame, Message, Utf8Bytes, WebSocket,
    WebSocketUpgrade,
};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// Bytes tungstenite reads per syscall; it allocates this on the first read, so it
/// sets most of an idle connection's memory (see shared/notes/connection-memory.md).
const READ_BUFFER_BYTES: usize = 1024;
/// Outgoing bytes tungstenite may hold for a slow socket before a send waits.
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Frames written before one flush when several are queued.
const MAX_BATCH: usize = 64;
/// How long a closing connection waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Unanswered pings before the connection is closed.
const MAX_MISSED_PONGS: u32 = 2;

/// Authenticates, admits, then upgrades.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, RelayError> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return Ok(error_response(
                rejection.status(),
                "websocket upgrade required",
            ))
        }
    };
    let admitted = admit(&state, principal, Transport::WebSocket).await?;
    let max = state.config.relay.max_message_size_bytes;
    let tracked = state.tracker.token();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        // Tungstenite's own cap is a backstop; the configured limit is checked on
        // whole messages so the client always gets a clean 1009.
        .max_message_size(max.saturating_mul(2).max(64 * 1024))
        .max_frame_size(max.saturating_mul(2).max(64 * 1024))
        .on_upgrade(move |socket| Connection::new(state, admitted, tracked).run(socket))
        .into_response())
}

/// Why the loop ended, and what the client is told.
enum Ending {
    /// Send this close frame, then wait briefly for the client's reply.
    Close(u16, &'static str),
    /// The socket is gone or stuck: just drop it.
    Drop,
}

/// One WebSocket connection's state.
struct Connection {
    state: Arc<AppState>,
    admitted: Admitted,
    inbound_topic: Option<String>,
    write_timeout: Duration,
    _tracked: TaskTrackerToken,
}

impl Connection {
    fn new(state: Arc<AppState>, admitted: Admitted, tracked: TaskTrackerToken) -> Self {
        let relay = &state.config.relay;
        let inbound_topic = relay
            .inbound_prefix()
            .map(|p| format!("{p}:{}", admitted.principal.identity));
        let write_timeout = Duration::from_millis(relay.websocket_write_timeout_ms);
        Self {
            state,
            admitted,
            inbound_topic,
            write_timeout,
            _tracked: tracked,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let ending = self.relay(&mut socket).await;
        if let Ending::Close(code, reason) = ending {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let sent =
                tokio::time::timeout(self.write_timeout, socket.send(Message::Close(Some(frame))))
                    .await;
            if matches!(sent, Ok(Ok(()))) {
                // Read until the client answers the close (or the grace ends), so
                // the close frame is not lost to a TCP reset.
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    while let Some(Ok(_)) = socket.recv().await {}
                })
                .await;
            }
        }
    }

    /// The connection's one loop; returns how it must end.
    async fn relay(&mut self, socket: &mut WebSocket) -> Ending {
        let hello = serde_json::json!({ "event": "connected", "identity": &*self.admitted.principal.identity });
        if self
            .write(socket, Message::Text(hello.to_string().into()))
            .await
            .is_err()
        {
            return Ending::Drop;
        }
        let relay = &self.state.config.relay;
        let period = Duration::from_secs(relay.websocket_ping_seconds);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut missed_pongs = 0u32;
        let deadline = expiry::deadline(
            self.admitted.principal.expires_at,
            self.state.config.auth.leeway_seconds,
        );
        let expiry = expiry::wait(deadline);
        tokio::pin!(expiry);
        let shutdown = self.state.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ending::Close(1001, "server shutting down"),
                _ = &mut expiry => {
                    let notice = Message::Text(Utf8Bytes::from_static(r#"{"event":"auth_expired"}"#));
                    if self.write(socket, notice).await.is_err() {
                        return Ending::Drop;
                    }
                    return Ending::Close(1008, "auth expired");
                }
                frame = self.admitted.subscription.recv() => match frame {
                    Some(frame) => if self.write_batch(socket, frame.ws()).await.is_err() {
                        return Ending::Drop;
                    },
                    None => return Ending::Close(1008, "slow consumer"),
                },
                incoming = socket.recv() => match incoming {
                    None => return Ending::Drop,
                    Some(Err(e)) => return ending_for(e),
                    Some(Ok(msg)) => match msg {
                        Message::Text(text) => if let Some(end) = self.inbound(Bytes::from(text)).await {
                            return end;
                        },
                        Message::Binary(data) => if let Some(end) = self.inbound(data).await {
                            return end;
                        },
                        Message::Pong(_) => missed_pongs = 0,
                        Message::Ping(_) => {}
                        Message::Close(_) => return Ending::Drop,
                    },
                },
                _ = ping.tick() => {
                    if missed_pongs >= MAX_MISSED_PONGS {
                        return Ending::Close(1008, "ping timeout");
                    }
                    missed_pongs += 1;
                    if self.write(socket, Message::Ping(Bytes::new())).await.is_err() {
                        return Ending::Drop;
                    }
                }
            }
        }
    }

    /// Publishes a client message to the inbound topic, or ends the connection.
    async fn inbound(&self, payload: Bytes) -> Option<Ending> {
        if payload.len() > self.state.config.relay.max_message_size_bytes {
            return Some(Ending::Close(1009, "message too big"));
        }
        let Some(topic) = &self.inbound_topic else {
            self.state.metrics.inbound(false);
            return None;
        };
        let published = self.state.broker.publish(topic, payload).await;
        if let Err(e) = &published {
            tracing::warn!(error = %e, "inbound publish failed; message dropped");
        }
        self.state.metrics.inbound(published.is_ok());
        None
    }

    async fn write(&self, socket: &mut WebSocket, msg: Message) -> Result<(), ()> {
        match tokio::time::timeout(self.write_timeout, socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    async fn write_batch(&self, socket: &mut WebSocket, first: Message) -> Result<(), ()> {
        let subscription = &self.admitted.subscription;
        let batch = async {
            socket.feed(first).await?;
            for _ in 1..MAX_BATCH {
                match subscription.try_recv() {
                    Some(frame) => socket.feed(frame.ws()).await?,
                    None => break,
                }
            }
            socket.flush().await
        };
        match tokio::time::timeout(self.write_timeout, batch).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}

/// Maps a read error to the close the client should see.
fn ending_for(error: axum::Error) -> Ending {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Ending::Close(1009, "message too big"),
        Some(tungstenite::Error::Utf8(_)) => Ending::Close(1007, "invalid utf-8"),
        Some(tungstenite::Error::Protocol(_)) => Ending::Close(1002, "protocol error"),
        _ => Ending::Drop,
    }
}
