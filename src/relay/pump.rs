//! The WebSocket pump shared by the relay (`/ws`) and the session proxy: one task
//! per connection, one `select!` over shutdown, token expiry, outbound frames,
//! inbound frames and keepalive. It owns the transport close codes (1001 shutdown,
//! 1008 expiry / slow consumer / ping timeout, 1009 too big, 1007 invalid UTF-8,
//! 1002 protocol error); what an inbound message *means* is the job's [`Inbound`].

use crate::auth::{AuthEvent, AuthLifetime};
use crate::hub::Subscription;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sent before the 1008 close when the token expires.
const AUTH_EXPIRED: &str = r#"{"event":"auth_expired"}"#;
/// Frames written before one flush when several are queued.
const MAX_BATCH: usize = 64;
/// How long a closing connection waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Timing and size rules of one connection.
#[derive(Debug, Clone, Copy)]
pub struct PumpSettings {
    /// Interval between pings.
    pub ping_interval: Duration,
    /// A ping left unanswered this long closes the connection (1008).
    pub pong_timeout: Duration,
    /// A write slower than this drops the connection.
    pub write_timeout: Duration,
    /// Largest client message (bigger closes with 1009).
    pub max_message_bytes: usize,
}

/// What a job does with one client message.
pub enum Reply {
    /// Nothing to say; keep going.
    Continue,
    /// Send this frame back to the client and keep going.
    Send(Message),
}

/// A job's handling of client messages.
pub trait Inbound: Send {
    /// Handles one text (`text = true`, valid UTF-8) or binary client message.
    fn message(&mut self, payload: Bytes, text: bool) -> impl Future<Output = Reply> + Send;

    /// `count` outbound frames were written to the client.
    fn delivered(&mut self, _count: usize) {}
}

/// How the loop ended, and what the client is told.
enum Ending {
    /// Send this close frame, then wait briefly for the client's reply.
    Close(u16, &'static str),
    /// The client started the close: flush the reply tungstenite queued, then end.
    Answer,
    /// The socket is gone or stuck: just drop it.
    Drop,
}

/// Everything one connection owns while the pump runs it. Passed whole and by
/// value: the connection future then stores each part once (a caller that kept
/// these and awaited the pump would hold them twice; measured ~1 KiB per idle
/// connection).
pub struct Connection<I, G> {
    /// First frame to send, if any.
    pub hello: Option<Message>,
    /// The hub queue of outbound frames.
    pub subscription: Subscription,
    /// Credential timeline (expiry, revocation, refresh); `None` for jobs without one.
    pub lifetime: Option<AuthLifetime>,
    /// Cancelled on server shutdown.
    pub shutdown: CancellationToken,
    /// Timing and size rules.
    pub settings: PumpSettings,
    /// What client messages mean for this job.
    pub inbound: I,
    /// Kept alive until the connection ends (limit lease, gauges, drain token):
    /// only its drop matters.
    #[allow(dead_code)]
    pub guard: G,
}

/// Runs a connection to its end: `hello` first (if any), then relays until shutdown,
/// a credential event of `lifetime` (expiry: `{"event":"auth_expired"}` then 1008;
/// revocation: 1008 `Token revoked`; a refresh sends `{"event":"token_refreshed",...}`
/// and goes on), a slow-consumer drop, the client leaving, or a transport error.
pub async fn run<I: Inbound, G: Send>(mut socket: WebSocket, mut conn: Connection<I, G>) {
    let settings = conn.settings;
    let mut pump = Pump {
        socket: &mut socket,
        settings,
        subscription: &conn.subscription,
    };
    let greeted = match conn.hello.take() {
        Some(hello) => pump.write(hello).await.is_ok(),
        None => true,
    };
    let ending = match greeted {
        true => {
            pump.relay(conn.lifetime.as_mut(), conn.shutdown.clone(), &mut conn.inbound)
                .await
        }
        false => Ending::Drop,
    };
    if let Ending::Answer = ending {
        let _ = tokio::time::timeout(settings.write_timeout, pump.socket.flush()).await;
    }
    if let Ending::Close(code, reason) = ending {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        if pump.write(Message::Close(Some(frame))).await.is_ok() {
            // Read until the client answers the close (or the grace ends), so the
            // close frame is not lost to a TCP reset.
            let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
            let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
        }
    }
}

struct Pump<'a> {
    socket: &'a mut WebSocket,
    settings: PumpSettings,
    subscription: &'a Subscription,
}

impl Pump<'_> {
    async fn relay<I: Inbound>(
        &mut self,
        mut lifetime: Option<&mut AuthLifetime>,
        shutdown: CancellationToken,
        inbound: &mut I,
    ) -> Ending {
        let period = self.settings.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set when a ping goes unanswered; cleared by any pong.
        let mut pong_due: Option<Instant> = None;
        loop {
            let pong_late = async {
                match pong_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ending::Close(1001, "server shutting down"),
                event = credential_event(&mut lifetime) => match event {
                    AuthEvent::Expired => {
                        if self.write(Message::Text(Utf8Bytes::from_static(AUTH_EXPIRED))).await.is_err() {
                            return Ending::Drop;
                        }
                        return Ending::Close(1008, "auth expired");
                    }
                    AuthEvent::Revoked => return Ending::Close(1008, "Token revoked"),
                    AuthEvent::Refreshed { exp } => {
                        let notice = format!(r#"{{"event":"token_refreshed","exp":{exp}}}"#);
                        if self.write(Message::Text(notice.into())).await.is_err() {
                            return Ending::Drop;
                        }
                    }
                },
                frame = self.subscription.recv() => match frame {
                    Some(frame) => match self.write_batch(frame.ws()).await {
                        Ok(count) => inbound.delivered(count),
                        Err(()) => return Ending::Drop,
                    },
                    None => return Ending::Close(1008, "slow consumer"),
                },
                incoming = self.socket.recv() => {
                    let msg = match incoming {
                        None => return Ending::Drop,
                        Some(Err(e)) => return ending_for(e),
                        Some(Ok(msg)) => msg,
                    };
                    let (payload, text) = match msg {
                        Message::Text(t) => (Bytes::from(t), true),
                        Message::Binary(b) => (b, false),
                        Message::Pong(_) => {
                            pong_due = None;
                            continue;
                        }
                        Message::Ping(_) => continue,
                        Message::Close(_) => return Ending::Answer,
                    };
                    if payload.len() > self.settings.max_message_bytes {
                        return Ending::Close(1009, "message too big");
                    }
                    if let Reply::Send(reply) = inbound.message(payload, text).await {
                        if self.write(reply).await.is_err() {
                            return Ending::Drop;
                        }
                    }
                }
                _ = pong_late => return Ending::Close(1008, "ping timeout"),
                _ = ping.tick() => {
                    pong_due.get_or_insert(Instant::now() + self.settings.pong_timeout);
                    if self.write(Message::Ping(Bytes::new())).await.is_err() {
                        return Ending::Drop;
                    }
                }
            }
        }
    }

    async fn write(&mut self, msg: Message) -> Result<(), ()> {
        match tokio::time::timeout(self.settings.write_timeout, self.socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    async fn write_batch(&mut self, first: Message) -> Result<usize, ()> {
        let (socket, subscription) = (&mut *self.socket, self.subscription);
        let batch = async {
            socket.feed(first).await?;
            let mut count = 1;
            while count < MAX_BATCH {
                let Some(frame) = subscription.try_recv() else { break };
                socket.feed(frame.ws()).await?;
                count += 1;
            }
            socket.flush().await.map(|()| count)
        };
        match tokio::time::timeout(self.settings.write_timeout, batch).await {
            Ok(Ok(count)) => Ok(count),
            _ => Err(()),
        }
    }
}

/// The next credential event, or never for connections without a lifetime.
async fn credential_event(lifetime: &mut Option<&mut AuthLifetime>) -> AuthEvent {
    match lifetime {
        Some(lifetime) => lifetime.next().await,
        None => std::future::pending().await,
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

/// Applies the socket sizes every job uses: a small read buffer (tungstenite
/// allocates it whole on the first read, so it sets most of an idle connection's
/// memory; see shared/notes/connection-memory.md), a write buffer that batches
/// queued frames into one send, and a
/// tungstenite cap above `max_message_bytes` so oversized messages are read whole
/// and closed cleanly with 1009 by the pump.
pub fn configure(
    upgrade: axum::extract::ws::WebSocketUpgrade,
    max_message_bytes: usize,
) -> axum::extract::ws::WebSocketUpgrade {
    // Client messages are small; 512 rather than 1024 saves 0.5 KiB per idle
    // connection (8.5 -> 8.0 KiB, streamgate-bench idle N=5000).
    const READ_BUFFER_BYTES: usize = 512;
    let backstop = max_message_bytes.saturating_mul(2).max(64 * 1024);
    // No `max_write_buffer_size`: in tungstenite it is a hard cap that fails any
    // single message larger than it (`WriteBufferFull`, and the connection is
    // dropped), not back-pressure. `WRITE_BATCH_BYTES` lets `write_batch` gather
    // queued frames into one send (with 0 every frame was its own syscall: 0.54
    // sends per delivery vs SSE's 0.03, docs/performance.md); the buffer is empty
    // until a connection first receives, and a stuck socket is bounded by the
    // write timeout.
    const WRITE_BATCH_BYTES: usize = 8 * 1024;
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_message_size(backstop)
        .max_frame_size(backstop)
}
