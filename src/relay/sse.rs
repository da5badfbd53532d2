//! `GET /events`: the SSE transport. Owns SSE framing, heartbeats, expiry and the
//! shutdown event; message bytes come pre-encoded from the shared [`Frame`].
//!
//! [`Frame`]: crate::hub::Frame

use super::admission::{admit, Admitted};
use super::RelayError;
use crate::auth::{token_source, AuthEvent, Principal};
use crate::hub::encode_sse;
use crate::server::AppState;
use crate::telemetry::Transport;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Interval;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// Most frames joined into one body chunk.
const MAX_BATCH: usize = 64;
/// Stop joining frames once a chunk is this large.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Opens an SSE stream for the caller's identity.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, RelayError> {
    let refresh_token = token_source::refresh_token(&headers);
    let admitted = admit(&state, principal, refresh_token, Transport::Sse).await?;
    let stream = SseStream::new(&state, admitted);
    let body = Body::from_stream(futures_util::stream::unfold(stream, SseStream::next_chunk));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Where the stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The `connected` event has not been sent yet.
    Opening,
    /// Relaying messages and heartbeats.
    Live,
    /// The last event was sent; the stream ends.
    Ended,
}

/// State of one SSE connection, advanced one chunk at a time.
struct SseStream {
    admitted: Admitted,
    phase: Phase,
    heartbeat: Interval,
    shutdown: CancellationToken,
    _tracked: TaskTrackerToken,
}

impl SseStream {
    fn new(state: &Arc<AppState>, admitted: Admitted) -> Self {
        let period = Duration::from_secs(state.config.relay.heartbeat_seconds);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            admitted,
            phase: Phase::Opening,
            heartbeat,
            shutdown: state.shutdown.clone(),
            _tracked: state.tracker.token(),
        }
    }

    /// The next chunk of the response body, or `None` to end it.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        let chunk = match self.phase {
            Phase::Ended => return None,
            Phase::Opening => {
                self.phase = Phase::Live;
                let data = serde_json::json!({ "identity": &*self.admitted.lifetime.principal().identity });
                encode_sse("connected", data.to_string().as_bytes())
            }
            Phase::Live => self.live_chunk().await?,
        };
        Some((Ok(chunk), self))
    }

    async fn live_chunk(&mut self) -> Option<Bytes> {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => {
                self.phase = Phase::Ended;
                Some(encode_sse("shutdown", b"{}"))
            }
            event = self.admitted.lifetime.next() => Some(match event {
                AuthEvent::Expired => {
                    self.phase = Phase::Ended;
                    encode_sse("auth_expired", b"{}")
                }
                AuthEvent::Revoked => {
                    self.phase = Phase::Ended;
                    encode_sse("revoked", b"{}")
                }
                AuthEvent::Refreshed { exp } => encode_sse("token_refreshed", format!("{{\"exp\":{exp}}}").as_bytes()),
            }),
            // `None`: the hub dropped this slow consumer; the stream ends.
            frame = self.admitted.subscription.recv() => frame.map(|f| self.batch(f.sse())),
            _ = self.heartbeat.tick() => Some(encode_sse("heartbeat", b"{}")),
        }
    }

    /// `first` plus the frames already queued behind it, as one chunk: a burst
    /// costs one socket write instead of one per message (copying only when there
    /// is more than one).
    fn batch(&self, first: Bytes) -> Bytes {
        let subscription = &self.admitted.subscription;
        let Some(second) = subscription.try_recv() else {
            return first;
        };
        let mut out = BytesMut::with_capacity(first.len() * 4);
        out.extend_from_slice(&first);
        out.extend_from_slice(&second.sse());
        for _ in 2..MAX_BATCH {
            if out.len() >= MAX_BATCH_BYTES {
                break;
            }
            let Some(frame) = subscription.try_recv() else { break };
            out.extend_from_slice(&frame.sse());
        }
        out.freeze()
    }
}
