//! Session proxy helpers: configs, session tokens, and a backend that talks to a
//! session through Redis the way a wsproxy backend does (SET the auth key,
//! SUBSCRIBE to the up channel, PUBLISH to the down channel).

use super::{base_config, token_with, Redis, DEADLINE};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};
use streamgate::config::{BrokerKind, Config, SessionAuth};

/// Agent id used in session URLs unless a test needs another.
pub const AGENT: &str = "test-agent";

/// A config with the Redis broker at `redis` and the session proxy on with `auth`.
pub fn session_config(redis: &Redis, auth: SessionAuth) -> Config {
    let mut config = base_config();
    config.broker.kind = BrokerKind::Redis;
    config.broker.redis.url = redis.url();
    config.session.enabled = true;
    config.session.auth = auth;
    config
}

/// `ws://…/{agent}/ws/{session}` on `ws_base`.
pub fn session_url(ws_base: &str, session: &str) -> String {
    format!("{ws_base}/{AGENT}/ws/{session}")
}

/// An HS256 session token with exactly `{session_id, iat}` (no `exp`), as a wsproxy
/// deployment with JWT auth mints them.
pub fn session_jwt(session: &str) -> String {
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    token_with(serde_json::json!({ "session_id": session, "iat": iat }))
}

/// `session:{id}:down`.
pub fn down(session: &str) -> String {
    format!("session:{session}:down")
}

/// `session:{id}:up`.
pub fn up(session: &str) -> String {
    format!("session:{session}:up")
}

/// `session:{id}:auth`.
pub fn auth_key(session: &str) -> String {
    format!("session:{session}:auth")
}

/// A backend's command connection: SET, PUBLISH, pipelines, and Redis's own
/// connection counters.
pub struct Backend {
    conn: ::redis::aio::MultiplexedConnection,
}

impl Backend {
    /// Opens one connection to `redis` (kept for the backend's life).
    pub async fn connect(redis: &Redis) -> Self {
        Self {
            conn: redis.conn().await,
        }
    }

    /// `SET session:{id}:auth token` (what a wsproxy backend does before handing out
    /// the token).
    pub async fn set_token(&mut self, session: &str, token: &str) {
        ::redis::cmd("SET")
            .arg(auth_key(session))
            .arg(token)
            .query_async::<()>(&mut self.conn)
            .await
            .expect("SET auth token");
    }

    /// `PUBLISH session:{id}:down payload`, returning the number of receivers.
    pub async fn publish_down(&mut self, session: &str, payload: &str) -> i64 {
        ::redis::cmd("PUBLISH")
            .arg(down(session))
            .arg(payload)
            .query_async(&mut self.conn)
            .await
            .expect("PUBLISH")
    }

    /// Sends every `(channel, payload)` as `PUBLISH` in ONE pipeline: one write,
    /// so Redis forwards them to subscribers back to back.
    pub async fn publish_pipeline(&mut self, messages: &[(String, String)]) {
        let mut pipe = ::redis::pipe();
        for (channel, payload) in messages {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        pipe.query_async::<()>(&mut self.conn).await.expect("pipelined PUBLISH");
    }

    /// Lines of `CLIENT LIST`: connections open on the server right now.
    pub async fn client_count(&mut self) -> usize {
        let list: String = ::redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut self.conn)
            .await
            .expect("CLIENT LIST");
        list.lines().filter(|l| !l.trim().is_empty()).count()
    }

    /// `total_connections_received` from `INFO stats`: connections ever accepted.
    pub async fn connections_received(&mut self) -> u64 {
        let info: String = ::redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut self.conn)
            .await
            .expect("INFO stats");
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO stats has total_connections_received")
    }
}

type Messages = Pin<Box<dyn Stream<Item = ::redis::Msg> + Send>>;

/// A backend's subscription to channels (e.g. a session's up channel).
pub struct Listener {
    messages: Messages,
}

impl Listener {
    /// SUBSCRIBEs to `channels` on a fresh connection; returns once Redis confirmed.
    pub async fn subscribe(redis: &Redis, channels: &[String]) -> Self {
        let client = ::redis::Client::open(redis.url()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
        for channel in channels {
            pubsub.subscribe(channel).await.expect("SUBSCRIBE");
        }
        Self {
            messages: Box::pin(pubsub.into_on_message()),
        }
    }

    /// The next message as `(channel, payload)`; panics after [`DEADLINE`].
    pub async fn next(&mut self) -> (String, String) {
        let msg = tokio::time::timeout(DEADLINE, self.messages.next())
            .await
            .expect("timed out waiting for a Redis message")
            .expect("Redis subscription ended");
        let payload: String = msg.get_payload().expect("UTF-8 payload");
        (msg.get_channel_name().to_string(), payload)
    }

    /// The next payload.
    pub async fn next_payload(&mut self) -> String {
        self.next().await.1
    }

    /// The next `n` payloads, in arrival order.
    pub async fn take(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_payload().await);
        }
        out
    }
}

/// A WebSocket client written by hand on a raw socket: it upgrades with a bearer
/// header and then only reads (it never answers pings), so the server's keepalive
/// can be watched without a client library answering for it.
pub struct RawSession {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

/// One unmasked server frame.
#[derive(Debug)]
pub struct RawFrame {
    /// 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong.
    pub opcode: u8,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawSession {
    /// Connects to `addr`, upgrades `path` with `Authorization: Bearer token`.
    pub async fn connect(addr: std::net::SocketAddr, path: &str, token: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::time::timeout(DEADLINE, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Self {
            stream,
            buffer: Vec::new(),
        };
        let head = tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(end) = raw.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = raw.buffer.drain(..end + 4).collect();
                    return String::from_utf8(head).unwrap();
                }
                assert!(raw.fill().await, "connection closed during the handshake");
            }
        })
        .await
        .expect("handshake timed out");
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        raw
    }

    async fn fill(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next frame, or `None` once the server closed the TCP connection.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some((frame, used)) = parse_frame(&self.buffer) {
                    self.buffer.drain(..used);
                    return Some(frame);
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
        .expect("timed out waiting for a frame or EOF")
    }
}

fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < header + len {
        return None;
    }
    let frame = RawFrame {
        opcode: buf[0] & 0x0f,
        payload: buf[header..header + len].to_vec(),
    };
    Some((frame, header + len))
}
