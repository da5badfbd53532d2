//! Writes a router response straight to a raw socket: the streaming fast path of
//! [`super::listener`]. A `text/event-stream` 200 is sent close-delimited and
//! pumped chunk by chunk with a write deadline, watching the socket for the client
//! leaving; a `101` hands the socket to the WebSocket upgrade that asked for it
//! ([`Takeover`]); any other response (an error) is sent whole and the connection
//! closed.

use super::websocket::Takeover;
use super::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Router;
use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt;

/// Largest non-streaming body (error JSON) written on this path.
const MAX_PLAIN_BODY: usize = 64 * 1024;

/// Runs `request` through the router and writes the response to `stream`.
/// `takeover` is the slot put in the request's extensions when it is a WebSocket
/// upgrade.
pub async fn serve(
    mut stream: TcpStream,
    app: Router,
    request: Request,
    takeover: Option<Takeover>,
    state: &Arc<AppState>,
) {
    let Ok(response) = app.oneshot(request).await;
    let (parts, body) = response.into_parts();
    let write_timeout = Duration::from_millis(state.config.relay.websocket_write_timeout_ms);
    let continuation = takeover.and_then(|t| t.take());
    if let (StatusCode::SWITCHING_PROTOCOLS, Some(run)) = (parts.status, continuation) {
        let head = encode_upgrade_head(&parts.headers);
        if let Ok(Ok(())) = tokio::time::timeout(write_timeout, stream.write_all(&head)).await {
            run(stream);
        }
        return;
    }
    let streaming = parts.status == StatusCode::OK
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_PLAIN_BODY).await else {
            return;
        };
        let head = encode_head(parts.status, &parts.headers, Some(bytes.len()));
        let _ = tokio::time::timeout(write_timeout, async {
            stream.write_all(&head).await?;
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        })
        .await;
        return;
    }
    let head = encode_head(parts.status, &parts.headers, None);
    drop(parts);
    if tokio::time::timeout(write_timeout, stream.write_all(&head))
        .await
        .is_err()
    {
        return;
    }
    drop(head);
    pump(stream, body, write_timeout).await;
}

/// Copies body chunks to the socket until the body ends, the client leaves, or a
/// write stalls past `write_timeout`.
async fn pump(mut stream: TcpStream, body: Body, write_timeout: Duration) {
    let mut chunks = body.into_data_stream();
    loop {
        tokio::select! {
            chunk = chunks.next() => match chunk {
                Some(Ok(bytes)) => match tokio::time::timeout(write_timeout, stream.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    _ => return,
                },
                _ => break,
            },
            // A readable socket on a stream the client never writes to means EOF
            // or an error: the client left.
            ready = stream.readable() => {
                if ready.is_err() || client_left(&stream) {
                    return;
                }
            }
        }
    }
    let _ = tokio::time::timeout(write_timeout, stream.shutdown()).await;
}

/// Drains what the client sent; true on EOF or a socket error.
fn client_left(stream: &TcpStream) -> bool {
    let mut sink = [0u8; 64];
    loop {
        match stream.try_read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// The `101 Switching Protocols` head, with the upgrade's headers as they are.
fn encode_upgrade_head(headers: &HeaderMap) -> BytesMut {
    let mut out = BytesMut::with_capacity(160);
    out.put_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    put_headers(&mut out, headers, |_| true);
    out.put_slice(b"\r\n");
    out
}

fn put_headers(out: &mut BytesMut, headers: &HeaderMap, keep: impl Fn(&header::HeaderName) -> bool) {
    for (name, value) in headers.iter().filter(|(name, _)| keep(name)) {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
}

/// `HTTP/1.1` status line and headers; close-delimited when `content_length` is `None`.
fn encode_head(status: StatusCode, headers: &HeaderMap, content_length: Option<usize>) -> BytesMut {
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    put_headers(&mut out, headers, |name| {
        name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING && name != header::CONNECTION
    });
    if let Some(len) = content_length {
        out.put_slice(format!("content-length: {len}\r\n").as_bytes());
    }
    out.put_slice(b"connection: close\r\n\r\n");
    out
}
