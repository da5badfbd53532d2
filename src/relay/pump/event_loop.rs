//! The loop of one WebSocket connection: one `select!` over shutdown, credential
//! events, queued frames, client messages and the keepalive timer.
//!
//! Two things shape it, both measured (docs/performance.md):
//! - The futures waited on (shutdown, the frame stream, the timers) are built once
//!   and polled across iterations; building them per frame registered and removed
//!   the shutdown and timer wakers every time (≈6 % of CPU per delivery in the
//!   fan-out profile). flume's stream still renews its hook per delivered item.
//! - This state machine is most of an idle connection's memory, so it holds only
//!   what every iteration needs inline: one timer (keepalive) and the frame batch
//!   write. Rare work (a client message, a credential event, a ping) runs boxed,
//!   allocated only when it happens; a write deadline is armed only when a write
//!   has to wait ([`Within`]).

use super::keepalive::{Due, Keepalive};
use super::{Ending, Inbound, PumpSettings, Reply};
use crate::auth::{AuthEvent, AuthLifetime};
use crate::hub::{Frame, FrameStream, Subscription};
use crate::server::websocket::Socket;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tungstenite::{Message, Utf8Bytes};

/// Sent before the 1008 close when the token expires.
const AUTH_EXPIRED: &str = r#"{"event":"auth_expired"}"#;
/// Frames written before one flush when several are queued.
const MAX_BATCH: usize = 64;

/// The socket side of the loop: writes with a deadline.
pub(super) struct Pump<'a> {
    socket: &'a mut Socket,
    settings: PumpSettings,
    subscription: &'a Subscription,
}

/// What the inner loop asks of the outer one.
enum Step {
    /// The connection is over.
    End(Ending),
    /// The credential future completed without ending the connection: make a new one.
    NextCredentialEvent,
}

/// The loop's timer, pinned inside the loop's own future.
struct Timers<'a> {
    keepalive: Keepalive,
    /// Fires at `keepalive.deadline()`.
    keepalive_at: Pin<&'a mut Sleep>,
}

impl<'a> Pump<'a> {
    pub(super) fn new(socket: &'a mut Socket, settings: PumpSettings, subscription: &'a Subscription) -> Self {
        Self {
            socket,
            settings,
            subscription,
        }
    }

    /// Relays until the connection ends; says how.
    pub(super) async fn run<I: Inbound>(
        &mut self,
        mut lifetime: Option<&mut AuthLifetime>,
        shutdown: &CancellationToken,
        inbound: &mut I,
    ) -> Ending {
        let keepalive = Keepalive::new(Instant::now(), self.settings.ping_interval, self.settings.pong_timeout);
        let keepalive_at = tokio::time::sleep_until(keepalive.deadline());
        let shutdown = shutdown.cancelled();
        tokio::pin!(keepalive_at, shutdown);
        let mut timers = Timers {
            keepalive,
            keepalive_at,
        };
        let mut frames = self.subscription.stream();
        loop {
            // Pinned here and passed by reference: an argument passed by value would
            // be stored twice in the callee's future.
            let credential = credential_event(&mut lifetime);
            tokio::pin!(credential);
            let step = self
                .until_credential_event(credential, &mut shutdown, &mut frames, &mut timers, inbound)
                .await;
            match step {
                Step::End(ending) => return ending,
                Step::NextCredentialEvent => continue,
            }
        }
    }

    async fn until_credential_event<I: Inbound>(
        &mut self,
        mut credential: Pin<&mut impl Future<Output = AuthEvent>>,
        shutdown: &mut Pin<&mut WaitForCancellationFuture<'_>>,
        frames: &mut FrameStream<'_>,
        timers: &mut Timers<'_>,
        inbound: &mut I,
    ) -> Step {
        loop {
            let ending = tokio::select! {
                biased;
                _ = shutdown.as_mut() => Some(Ending::Close(1001, "server shutting down")),
                event = credential.as_mut() => {
                    return match Box::pin(self.credential(event)).await {
                        Some(ending) => Step::End(ending),
                        None => Step::NextCredentialEvent,
                    };
                }
                frame = frames.next() => match frame {
                    Some(frame) => match self.write_batch(frame).await {
                        Ok(count) => {
                            inbound.delivered(count);
                            None
                        }
                        Err(()) => Some(Ending::Drop),
                    },
                    None => Some(Ending::Close(1008, "slow consumer")),
                },
                incoming = self.socket.next() => Box::pin(self.incoming(incoming, timers, inbound)).await,
                () = timers.keepalive_at.as_mut() => Box::pin(self.keepalive(timers)).await,
            };
            if let Some(ending) = ending {
                return Step::End(ending);
            }
        }
    }

    /// Acts on a credential event; `None` when the connection goes on.
    async fn credential(&mut self, event: AuthEvent) -> Option<Ending> {
        match event {
            AuthEvent::Expired => match self.write(Message::Text(Utf8Bytes::from_static(AUTH_EXPIRED))).await {
                Ok(()) => Some(Ending::Close(1008, "auth expired")),
                Err(()) => Some(Ending::Drop),
            },
            AuthEvent::Revoked => Some(Ending::Close(1008, "Token revoked")),
            AuthEvent::Refreshed { exp } => {
                let notice = format!(r#"{{"event":"token_refreshed","exp":{exp}}}"#);
                self.write(Message::Text(notice.into()))
                    .await
                    .err()
                    .map(|()| Ending::Drop)
            }
        }
    }

    /// Handles one read from the client; `Some` ends the connection.
    async fn incoming<I: Inbound>(
        &mut self,
        incoming: Option<Result<Message, tungstenite::Error>>,
        timers: &mut Timers<'_>,
        inbound: &mut I,
    ) -> Option<Ending> {
        let msg = match incoming {
            None => return Some(Ending::Drop),
            Some(Err(e)) => return Some(ending_for(e)),
            Some(Ok(msg)) => msg,
        };
        let (payload, text) = match msg {
            Message::Text(t) => (Bytes::from(t), true),
            Message::Binary(b) => (b, false),
            Message::Pong(_) => {
                timers.keepalive.pong();
                return None;
            }
            Message::Ping(_) | Message::Frame(_) => return None,
            Message::Close(_) => return Some(Ending::Answer),
        };
        if payload.len() > self.settings.max_message_bytes {
            return Some(Ending::Close(1009, "message too big"));
        }
        let Reply::Send(reply) = inbound.message(payload, text).await else {
            return None;
        };
        self.write(reply).await.err().map(|()| Ending::Drop)
    }

    /// The keepalive timer fired: ping, or close when a ping went unanswered.
    async fn keepalive(&mut self, timers: &mut Timers<'_>) -> Option<Ending> {
        let due = timers.keepalive.fire(Instant::now());
        let deadline = timers.keepalive.deadline();
        timers.keepalive_at.as_mut().reset(deadline);
        match due {
            Due::Nothing => None,
            Due::PongLate => Some(Ending::Close(1008, "ping timeout")),
            Due::Ping => self
                .write(Message::Ping(Bytes::new()))
                .await
                .err()
                .map(|()| Ending::Drop),
        }
    }

    /// Sends one message, failing past the write timeout.
    async fn write(&mut self, msg: Message) -> Result<(), ()> {
        Within::new(self.settings.write_timeout, self.socket.send(msg)).await
    }

    /// Writes `first` and whatever else is already queued (up to [`MAX_BATCH`]),
    /// then flushes once, all within one write timeout. A poll function over
    /// shared frames rather than `feed`/`flush` futures over messages: this future
    /// is part of every connection's state, and it holds two references, one
    /// frame pointer and a count.
    fn write_batch(&mut self, first: Arc<Frame>) -> Within<impl Future<Output = WriteResult<usize>> + Unpin + '_> {
        let (socket, subscription) = (&mut *self.socket, self.subscription);
        let mut next = Some(first);
        let mut count = 0;
        let batch = std::future::poll_fn(move |cx| {
            while let Some(frame) = next.take() {
                if socket.poll_ready_unpin(cx)?.is_pending() {
                    next = Some(frame);
                    return Poll::Pending;
                }
                socket.start_send_unpin(frame.ws())?;
                count += 1;
                if count < MAX_BATCH {
                    next = subscription.try_recv();
                }
            }
            socket.poll_flush_unpin(cx).map_ok(|()| count)
        });
        Within::new(self.settings.write_timeout, batch)
    }
}

type WriteResult<T> = Result<T, tungstenite::Error>;

/// A write that fails past its timeout. The first poll happens without a timer:
/// a socket with room finishes at once (the common case), and only a write that
/// has to wait arms a (boxed) deadline. No timer in the connection's state, and
/// none touched per delivered frame.
pub(super) struct Within<F> {
    io: F,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<F> Within<F> {
    fn new(timeout: Duration, io: F) -> Self {
        Self {
            io,
            timeout,
            deadline: None,
        }
    }
}

impl<T, F: Future<Output = WriteResult<T>> + Unpin> Future for Within<F> {
    type Output = Result<T, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(result) = Pin::new(&mut self.io).poll(cx) {
            return Poll::Ready(result.map_err(drop));
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        deadline.as_mut().poll(cx).map(|()| Err(()))
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
fn ending_for(error: tungstenite::Error) -> Ending {
    match error {
        tungstenite::Error::Capacity(_) => Ending::Close(1009, "message too big"),
        tungstenite::Error::Utf8(_) => Ending::Close(1007, "invalid utf-8"),
        tungstenite::Error::Protocol(_) => Ending::Close(1002, "protocol error"),
        _ => Ending::Drop,
    }
}
