//! The WebSocket pump shared by the relay (`/ws`) and the session proxy: one task
//! per connection, one `select!` over shutdown, token expiry, outbound frames,
//! inbound frames and keepalive. It owns the transport close codes (1001 shutdown,
//! 1008 expiry / slow consumer / ping timeout, 1009 too big, 1007 invalid UTF-8,
//! 1002 protocol error); what an inbound message *means* is the job's [`Inbound`].

mod event_loop;
mod keepalive;

use crate::auth::AuthLifetime;
use crate::hub::Subscription;
use crate::server::websocket::Socket;
use bytes::Bytes;
use event_loop::Pump;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::frame::{coding::CloseCode, CloseFrame};
use tungstenite::{Message, Utf8Bytes};

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
    /// First (text) frame to send, if any. Text rather than a `Message`: this
    /// field lives as long as the connection.
    pub hello: Option<Utf8Bytes>,
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
///
/// The future this returns is what an idle connection costs, so the steps taken
/// once per connection (hello, closing handshake) run boxed: their state then
/// does not widen the future for the connection's whole life. Not an `async fn`:
/// those copy their arguments into the future's body state, so the socket and the
/// connection would be stored twice; the `async move` block uses them in place.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn run<I: Inbound, G: Send>(mut socket: Socket, mut conn: Connection<I, G>) -> impl Future<Output = ()> + Send {
    async move {
        // Borrow `conn` whole: the block would otherwise capture only the fields it
        // uses (edition 2021 precise captures) and drop `guard` at once.
        let conn = &mut conn;
        let settings = conn.settings;
        if let Some(hello) = conn.hello.take() {
            let greeted = Box::pin(tokio::time::timeout(
                settings.write_timeout,
                socket.send(Message::Text(hello)),
            ))
            .await;
            if !matches!(greeted, Ok(Ok(()))) {
                return;
            }
        }
        let ending = Pump::new(&mut socket, settings, &conn.subscription)
            .run(conn.lifetime.as_mut(), &conn.shutdown, &mut conn.inbound)
            .await;
        Box::pin(finish(&mut socket, ending, settings.write_timeout)).await;
    }
}

/// Ends the connection as `ending` says.
async fn finish(socket: &mut Socket, ending: Ending, write_timeout: Duration) {
    match ending {
        Ending::Drop => {}
        Ending::Answer => {
            let _ = tokio::time::timeout(write_timeout, socket.flush()).await;
        }
        Ending::Close(code, reason) => {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: Utf8Bytes::from_static(reason),
            };
            let sent = tokio::time::timeout(write_timeout, socket.send(Message::Close(Some(frame)))).await;
            if matches!(sent, Ok(Ok(()))) {
                // Read until the client answers the close (or the grace ends), so the
                // close frame is not lost to a TCP reset.
                let drain = async { while let Some(Ok(_)) = socket.next().await {} };
                let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
            }
        }
    }
}
