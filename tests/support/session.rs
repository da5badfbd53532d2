//! Session proxy helpers: configs, session tokens, and a backend that talks to a
//! session through Redis the way a wsproxy backend does (SET the auth key,
//! SUBSCRIBE to the up channel, PUBLISH to the down channel).

use super::raw_ws::RawWs;
use super::{metric_by_reason, redis_config, token_with, Redis, TestServer, DEADLINE};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};
use streamgate::config::{Config, SessionAuth};

/// Agent id used in session URLs unless a test needs another.
pub const AGENT: &str = "test-agent";

/// A config with the Redis broker at `redis` and the session proxy on with `auth`.
pub fn session_config(redis: &Redis, auth: SessionAuth) -> Config {
    let mut config = redis_config(redis);
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

/// `streamgate_session_auth_failures_total{reason="{reason}"}` of `server`.
pub async fn session_auth_failures(server: &TestServer, reason: &str) -> f64 {
    metric_by_reason(server, "streamgate_session_auth_failures_total", reason).await
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

/// Opens a hand-written raw WebSocket client (see [`RawWs`]) on `path` at `addr`,
/// upgrading with `Authorization: Bearer token`; it never answers pings, so the
/// server's keepalive can be watched without a client library answering for it.
pub async fn raw_session(addr: std::net::SocketAddr, path: &str, token: &str) -> RawWs {
    RawWs::connect(addr, path, &format!("Authorization: Bearer {token}\r\n"), None).await
}
