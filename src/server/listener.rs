//! The accept loop.
//!
//! Every connection's request head is read here first. A first request for a
//! streaming route (`GET /events`) or a WebSocket upgrade (`/ws`, the session path)
//! is served on the raw socket by [`super::raw_stream`]: the router still decides
//! everything (CORS, auth, limits, the response), but the long-lived body or the
//! WebSocket is written straight to the socket, so an idle connection never holds
//! hyper's per-connection read and header buffers (nor allocates them during the
//! handshake). Everything else (and any later request on a keep-alive connection)
//! goes to hyper with the head replayed ([`super::rewind::Rewind`]).

use super::rewind::Rewind;
use super::websocket::Takeover;
use super::write_deadline::WriteDeadline;
use super::AppState;
use axum::Router;
use bytes::{Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read before handing the connection to hyper (which answers 431).
const HEAD_LIMIT: usize = 16 * 1024;
/// A client that has not sent a complete head by then is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Headers parsed in the head.
const MAX_HEADERS: usize = 64;

/// Accepts until shutdown. Every connection task holds a task-tracker token, so
/// the server's drain waits for in-flight responses (hyper connections shut down
/// gracefully on the token) and for streams (which end on the token themselves).
pub async fn serve(listener: TcpListener, app: Router, state: Arc<AppState>) {
    let streaming: Arc<[&'static str]> = streaming_paths(&state).into();
    loop {
        let stream = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            state: state.clone(),
            streaming: streaming.clone(),
        };
        state.tracker.spawn(connection.run(stream));
    }
}

/// Paths served on the raw socket when they are a connection's first request.
fn streaming_paths(state: &AppState) -> Vec<&'static str> {
    let relay = &state.config.relay;
    let mut paths = Vec::new();
    if relay.enabled && relay.sse {
        paths.push("/events");
    }
    paths
}

struct Connection {
    app: Router,
    state: Arc<AppState>,
    streaming: Arc<[&'static str]>,
}

impl Connection {
    async fn run(self, mut stream: TcpStream) {
        let mut head = BytesMut::with_capacity(1024);
        let complete = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut head)).await {
            Ok(Ok(complete)) => complete,
            _ => return,
        };
        if complete {
            if let Some((request, takeover)) = self.streaming_request(&head) {
                drop(head);
                super::raw_stream::serve(stream, self.app, request, takeover, &self.state).await;
                return;
            }
        }
        self.hyper(stream, head.freeze()).await;
    }

    /// The request, when the head is exactly one `GET` of a streaming path or a
    /// WebSocket upgrade (with the [`Takeover`] slot put in its extensions).
    fn streaming_request(&self, head: &[u8]) -> Option<(axum::extract::Request, Option<Takeover>)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let len = match parsed.parse(head) {
            Ok(httparse::Status::Complete(len)) => len,
            _ => return None,
        };
        let path = parsed.path?;
        let route = path.split('?').next().unwrap_or(path);
        // Pipelined bytes after the head belong to hyper's keep-alive handling.
        if len != head.len() || parsed.method? != "GET" {
            return None;
        }
        let upgrade = is_websocket_upgrade(parsed.headers);
        if !upgrade && !self.streaming.contains(&route) {
            return None;
        }
        let mut builder = axum::http::Request::builder().method("GET").uri(path);
        for header in parsed.headers.iter() {
            builder = builder.header(header.name, header.value);
        }
        let mut request = builder.body(axum::body::Body::empty()).ok()?;
        let takeover = upgrade.then(Takeover::default);
        if let Some(takeover) = &takeover {
            request.extensions_mut().insert(takeover.clone());
        }
        Some((request, takeover))
    }

    async fn hyper(self, stream: TcpStream, head: Bytes) {
        let write_timeout = Duration::from_millis(self.state.config.relay.websocket_write_timeout_ms);
        let io = TokioIo::new(WriteDeadline::new(Rewind::new(head, stream), write_timeout));
        let service = TowerToHyperService::new(self.app);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = self.state.shutdown.cancelled() => {
                // Finish the in-flight response, then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// True for a head asking for `Upgrade: websocket`.
fn is_websocket_upgrade(headers: &[httparse::Header<'_>]) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("upgrade") && h.value.eq_ignore_ascii_case(b"websocket"))
}

/// Reads until the head is complete (`true`), the limit is hit or the head is not
/// HTTP (`false`: hyper answers those), or the client leaves (`Err`).
async fn read_head(stream: &mut TcpStream, head: &mut BytesMut) -> std::io::Result<bool> {
    loop {
        if stream.read_buf(head).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(head) {
            Ok(httparse::Status::Complete(_)) => return Ok(true),
            Ok(httparse::Status::Partial) if head.len() < HEAD_LIMIT => continue,
            _ => return Ok(false),
        }
    }
}
