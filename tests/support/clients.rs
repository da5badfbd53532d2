//! Real SSE and WebSocket clients over real sockets.

use super::DEADLINE;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field (`message` when absent).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:` field, if any.
    pub id: Option<String>,
}

/// An SSE connection read event by event.
pub struct SseClient {
    /// Response status.
    pub status: reqwest::StatusCode,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    body: Option<futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    buffer: String,
    /// The error body when the status was not 200.
    pub error_body: Option<serde_json::Value>,
}

impl SseClient {
    /// GET `url` with optional bearer token; does not fail on non-200 (check `status`).
    pub async fn connect(url: &str, bearer: Option<&str>) -> Self {
        Self::connect_with(url, bearer, &[]).await
    }

    /// [`SseClient::connect`] sending these extra headers too (e.g. `X-Refresh-Token`).
    pub async fn connect_with(url: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> Self {
        let mut req = reqwest::Client::new().get(url);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = tokio::time::timeout(DEADLINE, req.send())
            .await
            .expect("SSE connect timed out")
            .expect("SSE connect");
        let status = resp.status();
        let headers = resp.headers().clone();
        if status != reqwest::StatusCode::OK {
            let error_body = resp.json().await.ok();
            return Self {
                status,
                headers,
                body: None,
                buffer: String::new(),
                error_body,
            };
        }
        Self {
            status,
            headers,
            body: Some(resp.bytes_stream().boxed()),
            buffer: String::new(),
            error_body: None,
        }
    }

    /// The next event, or `None` when the stream ended. Panics after [`DEADLINE`].
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(DEADLINE, self.read_event())
            .await
            .expect("timed out waiting for an SSE event")
    }

    /// The next event that is not a heartbeat.
    pub async fn next_non_heartbeat(&mut self) -> Option<SseEvent> {
        loop {
            let ev = self.next_event().await?;
            if ev.event != "heartbeat" {
                return Some(ev);
            }
        }
    }

    async fn read_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(ev) = parse_block(&block) {
                    return Some(ev);
                }
                continue;
            }
            let chunk = self.body.as_mut()?.next().await?.ok()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8"));
        }
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut event, mut data, mut id) = (None, Vec::new(), None);
    for line in block.lines() {
        let (field, value) = line
            .split_once(':')
            .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
            .unwrap_or((line, ""));
        match field {
            "event" => event = Some(value.to_string()),
            "data" => data.push(value.to_string()),
            "id" => id = Some(value.to_string()),
            _ => {}
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    Some(SseEvent {
        event: event.unwrap_or_else(|| "message".into()),
        data: data.join("\n"),
        id,
    })
}

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client.
pub struct WsClient {
    /// The socket, for raw access.
    pub socket: Stream,
}

/// How a WebSocket connect attempt ended.
// Short-lived return value; boxing `Open` would change every caller's pattern.
#[allow(clippy::large_enum_variant)]
pub enum WsConnect {
    /// Upgraded.
    Open(WsClient),
    /// Refused with an HTTP status and JSON body.
    Refused(u16, serde_json::Value),
}

impl WsClient {
    /// Connects to `url`, with an optional bearer header. Panics if refused.
    pub async fn connect(url: &str, bearer: Option<&str>) -> Self {
        match Self::try_connect(url, bearer).await {
            WsConnect::Open(c) => c,
            WsConnect::Refused(status, body) => panic!("WS refused: {status} {body}"),
        }
    }

    /// [`WsClient::connect`] sending these extra headers too (e.g. `X-Refresh-Token`).
    pub async fn connect_with(url: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> Self {
        match Self::try_connect_with(url, bearer, headers).await {
            WsConnect::Open(c) => c,
            WsConnect::Refused(status, body) => panic!("WS refused: {status} {body}"),
        }
    }

    /// Connects, returning the HTTP refusal instead of panicking.
    pub async fn try_connect(url: &str, bearer: Option<&str>) -> WsConnect {
        Self::try_connect_with(url, bearer, &[]).await
    }

    /// [`WsClient::try_connect`] sending these extra headers too.
    pub async fn try_connect_with(url: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> WsConnect {
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::try_from(*name).expect("a header name");
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let result = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
            .await
            .expect("WS connect timed out");
        match result {
            Ok((socket, _)) => WsConnect::Open(Self { socket }),
            Err(tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(serde_json::Value::Null);
                WsConnect::Refused(status, body)
            }
            Err(e) => panic!("WS connect failed: {e}"),
        }
    }

    /// The next data or close message (pings are answered by tungstenite).
    pub async fn next(&mut self) -> Option<Message> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                match self.socket.next().await? {
                    Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                    Ok(m) => return Some(m),
                    Err(_) => return None,
                }
            }
        })
        .await
        .expect("timed out waiting for a WS message")
    }

    /// The next text frame; panics on anything else.
    pub async fn next_text(&mut self) -> String {
        match self.next().await {
            Some(Message::Text(t)) => t.to_string(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Waits for the close frame and returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Some(Message::Close(Some(frame))) => return (u16::from(frame.code), frame.reason.to_string()),
                Some(Message::Close(None)) => panic!("close frame without a code"),
                Some(_) => continue,
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::Text(text.into())).await.unwrap();
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.socket.send(Message::Binary(data.into())).await.unwrap();
    }
}

/// Whether a WebSocket upgrade of `url` with `bearer` is admitted now; a refusal
/// must be 429 (a connection limit), anything else fails the test.
pub async fn ws_admitted(url: String, bearer: String) -> bool {
    match WsClient::try_connect(&url, Some(&bearer)).await {
        WsConnect::Open(_) => true,
        WsConnect::Refused(status, _) => {
            assert_eq!(status, 429);
            false
        }
    }
}
