//! WebSocket upgrades that end on the bare socket.
//!
//! The handshake is answered through the router like any request (so auth, limits
//! and CORS refuse with HTTP statuses before any upgrade), and tungstenite then
//! runs straight on the `TcpStream`, in one of two ways:
//! - A connection whose first request is the upgrade never meets hyper: the
//!   listener serves it on the raw socket ([`super::raw_stream`]) with a
//!   [`Takeover`] slot in the request, where [`WebSocketUpgrade::accept`] leaves
//!   the connection's continuation; after writing the `101`, the listener hands
//!   it the socket. No hyper buffers are allocated for the handshake at all.
//! - An upgrade later on a keep-alive connection goes through hyper; the socket is
//!   taken back out of hyper's `Upgraded` wrapper (whose boxed IO and leftover read
//!   buffer would otherwise live as long as the connection).
//!
//! That is most of an idle WebSocket's memory: see
//! `shared/notes/connection-memory.md` and `docs/performance.md`.

use super::error_response;
use super::rewind::Rewind;
use super::write_deadline::WriteDeadline;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::task::TaskTracker;

/// A server-side WebSocket on the connection's own socket.
pub type Socket = WebSocketStream<TcpStream>;

/// Why a request cannot be upgraded; each maps to the status a client expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeRejection {
    /// Not a `GET`.
    MethodNotGet,
    /// `Connection: upgrade` / `Upgrade: websocket` missing.
    NotAnUpgrade,
    /// `Sec-WebSocket-Version` is not 13.
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key`.
    MissingKey,
    /// The connection cannot be taken over (not served by our HTTP/1.1 listener).
    NotUpgradable,
}

impl UpgradeRejection {
    /// The HTTP status of this refusal.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        error_response(self.status(), "websocket upgrade required")
    }
}

/// What runs a connection once the listener hands over its socket.
type Continuation = Box<dyn FnOnce(TcpStream) + Send>;

/// A slot the raw-socket listener puts in a first request's extensions: an
/// accepted upgrade leaves its continuation here, and the listener calls it with
/// the socket after writing the `101`.
#[derive(Clone, Default)]
pub struct Takeover(Arc<Mutex<Option<Continuation>>>);

impl Takeover {
    /// The continuation an accepted upgrade left, if any.
    pub fn take(&self) -> Option<Continuation> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, continuation: Continuation) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(continuation);
    }
}

/// Who hands the socket over after the `101`.
enum Handover {
    /// Our listener, through the request's [`Takeover`] slot.
    Listener(Takeover),
    /// hyper, through its upgrade future.
    Hyper(OnUpgrade),
}

/// A checked WebSocket handshake request, answered by [`WebSocketUpgrade::accept`].
pub struct WebSocketUpgrade {
    key: HeaderValue,
    handover: Handover,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(UpgradeRejection::MethodNotGet);
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade") || !has_token(headers, header::UPGRADE, "websocket") {
            return Err(UpgradeRejection::NotAnUpgrade);
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            return Err(UpgradeRejection::UnsupportedVersion);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(UpgradeRejection::MissingKey)?;
        let handover = match parts.extensions.remove::<Takeover>() {
            Some(takeover) => Handover::Listener(takeover),
            None => Handover::Hyper(
                parts
                    .extensions
                    .remove::<OnUpgrade>()
                    .ok_or(UpgradeRejection::NotUpgradable)?,
            ),
        };
        Ok(Self { key, handover })
    }
}

impl WebSocketUpgrade {
    /// Answers `101 Switching Protocols` and, once the socket is handed over,
    /// spawns `run` (tracked by `tracker`, so shutdown waits for it) on it.
    ///
    /// `run` gets its own task rather than being awaited inside the upgrade task: a
    /// future that captured `run`'s inputs and then awaited it would keep room for
    /// both for the connection's whole life.
    pub fn accept<F, Fut>(self, tracker: &TaskTracker, config: WebSocketConfig, run: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let runner = tracker.clone();
        match self.handover {
            Handover::Listener(takeover) => takeover.put(Box::new(move |stream| {
                let tracker = runner.clone();
                runner.spawn(async move {
                    let socket = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
                    tracker.spawn(run(socket));
                });
            })),
            Handover::Hyper(on_upgrade) => {
                tracker.spawn(async move {
                    if let Some(socket) = take_socket(on_upgrade, config).await {
                        runner.spawn(run(socket));
                    }
                });
            }
        }
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        response
    }
}

/// Waits for hyper to finish the upgrade and unwraps the socket, keeping any
/// bytes the client sent right after its handshake.
async fn take_socket(on_upgrade: OnUpgrade, config: WebSocketConfig) -> Option<Socket> {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return None;
        }
    };
    // The listener serves every hyper connection on this exact IO type.
    let parts = match upgraded.downcast::<TokioIo<WriteDeadline<Rewind<TcpStream>>>>() {
        Ok(parts) => parts,
        Err(_) => {
            tracing::error!("websocket upgrade on an unexpected transport; connection dropped");
            return None;
        }
    };
    let (unread, stream) = parts.io.into_inner().into_inner().into_parts();
    let socket = if parts.read_buf.is_empty() && unread.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await
    } else {
        let mut early = Vec::with_capacity(parts.read_buf.len() + unread.len());
        early.extend_from_slice(&parts.read_buf);
        early.extend_from_slice(&unread);
        WebSocketStream::from_partially_read(stream, early, Role::Server, Some(config)).await
    };
    Some(socket)
}

/// True when the comma-separated header `name` contains `token` (any case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// tungstenite's settings for one job's sockets: a small read buffer (tungstenite
/// allocates it whole on the first read, so it sets most of an idle connection's
/// memory), a write buffer that lets queued frames go out in one send, and message
/// caps above `max_message_bytes` so an oversized message is read whole and closed
/// by the pump with 1009 rather than failing inside tungstenite.
pub fn socket_config(max_message_bytes: usize) -> WebSocketConfig {
    // Client messages are small; 512 rather than 1024 saved 0.5 KiB per idle
    // connection (streamgate-bench idle N=5000).
    const READ_BUFFER_BYTES: usize = 512;
    // No `max_write_buffer_size`: in tungstenite it is a hard cap that fails any
    // single message larger than it (`WriteBufferFull`), not back-pressure. With a
    // write buffer of 0 every frame was its own syscall (0.54 sends per delivery vs
    // SSE's 0.03, docs/performance.md); the buffer stays unallocated until a
    // connection first receives, and a stuck socket is bounded by the write timeout.
    const WRITE_BATCH_BYTES: usize = 8 * 1024;
    let backstop = max_message_bytes.saturating_mul(2).max(64 * 1024);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_message_size(Some(backstop))
        .max_frame_size(Some(backstop))
}

#[cfg(test)]
mod tests {
    use super::has_token;
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn connection_header_tokens_match_in_any_case_and_position() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!has_token(&headers, header::CONNECTION, "close"));
        assert!(!has_token(&headers, header::UPGRADE, "websocket"));
    }
}
