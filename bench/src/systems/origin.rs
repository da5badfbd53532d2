//! The GRIP origin behind Pushpin, playing the part streamgate plays itself: it
//! verifies the client's HS256 token and subscribes the connection to
//! `streams:{identity}`.
//! - SSE: `GET /events?token=…` → `Grip-Hold: stream`, `Grip-Channel: streams:{id}`,
//!   body `event: connected`.
//! - WebSocket, through WebSocket-over-HTTP: `OPEN` → `OPEN`, a `c:` subscribe
//!   control message and the `{"event":"connected",…}` text; `CLOSE` → `CLOSE`.

use crate::tokens;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::DecodingKey;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The running origin; stops accepting on drop.
pub struct Origin {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Origin {
    pub async fn start(secret: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let key = Arc::new(DecodingKey::from_secret(secret.as_bytes()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let key = key.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, key.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Reply = Response<Full<Bytes>>;

async fn handle(req: Request<Incoming>, key: Arc<DecodingKey>) -> Result<Reply, Infallible> {
    let identity = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .and_then(|t| tokens::verify(&key, t));
    let ws_over_http = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/websocket-events"));
    if ws_over_http {
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
        };
        return Ok(ws_events(&body, identity.as_deref()));
    }
    let Some(identity) = identity else {
        return Ok(status(StatusCode::UNAUTHORIZED));
    };
    let body = format!("event: connected\ndata: {{\"identity\":\"{identity}\"}}\n\n");
    Ok(Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("grip-hold", "stream")
        .header("grip-channel", format!("streams:{identity}"))
        .body(Full::new(Bytes::from(body)))
        .expect("valid response"))
}

/// Answers one WebSocket-over-HTTP request.
fn ws_events(body: &[u8], identity: Option<&str>) -> Reply {
    let kinds = event_kinds(body);
    let mut out = String::new();
    if kinds.first().map(String::as_str) == Some("OPEN") {
        let Some(identity) = identity else {
            return status(StatusCode::UNAUTHORIZED);
        };
        out.push_str("OPEN\r\n");
        let control = format!("c:{{\"type\":\"subscribe\",\"channel\":\"streams:{identity}\"}}");
        push_text(&mut out, &control);
        push_text(
            &mut out,
            &format!("{{\"event\":\"connected\",\"identity\":\"{identity}\"}}"),
        );
    } else if kinds.iter().any(|k| k == "CLOSE") {
        out.push_str("CLOSE\r\n");
    }
    Response::builder()
        .header("content-type", "application/websocket-events")
        .header("sec-websocket-extensions", "grip; message-prefix=\"\"")
        .body(Full::new(Bytes::from(out)))
        .expect("valid response")
}

fn push_text(out: &mut String, content: &str) {
    out.push_str(&format!("TEXT {:x}\r\n{content}\r\n", content.len()));
}

/// The event types (`OPEN`, `TEXT`, `CLOSE`, …) of a WebSocket-over-HTTP body.
fn event_kinds(body: &[u8]) -> Vec<String> {
    let mut kinds = Vec::new();
    let mut rest = body;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&rest[..eol]).into_owned();
        rest = &rest[eol + 2..];
        let mut parts = line.splitn(2, ' ');
        let kind = parts.next().unwrap_or("").to_string();
        if let Some(len) = parts.next().and_then(|l| usize::from_str_radix(l, 16).ok()) {
            rest = rest.get(len + 2..).unwrap_or(&[]);
        }
        kinds.push(kind);
    }
    kinds
}

fn status(code: StatusCode) -> Reply {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::event_kinds;

    #[test]
    fn websocket_events_are_split_by_their_lengths() {
        let body = b"OPEN\r\nTEXT 5\r\nCLOSE\r\nCLOSE 2\r\n\x03\xe8\r\n";
        assert_eq!(event_kinds(body), ["OPEN", "TEXT", "CLOSE"]);
    }
}
