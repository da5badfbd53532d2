//! streamgate in-process on port 0, with tokens signed by the test secret.

use super::Redis;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use streamgate::config::{BrokerKind, Config};
use streamgate::server::RunningServer;

/// HMAC secret of every test server (≥ 32 bytes).
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";
/// Server API key of every test server.
pub const API_KEY: &str = "test-api-key-0123456789";

/// A valid config: HS256 secret, API key, memory broker, port 0 on loopback.
pub fn base_config() -> Config {
    let mut c = Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.server.api_keys = vec![API_KEY.into()];
    c.server.shutdown_timeout_seconds = 5;
    c.auth.jwt_secret = Some(SECRET.into());
    c
}

/// [`base_config`] with the Redis broker at `redis`.
pub fn redis_config(redis: &Redis) -> Config {
    let mut config = base_config();
    config.broker.kind = BrokerKind::Redis;
    config.broker.redis.url = redis.url();
    config
}

/// A running server; shut down on drop.
pub struct TestServer {
    server: Option<RunningServer>,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    /// `ws://127.0.0.1:{port}`.
    pub ws_base: String,
}

impl TestServer {
    /// Validates `config` (panicking on problems) and starts it.
    pub async fn start(config: Config) -> Self {
        let problems = config.validate(false);
        assert!(problems.is_empty(), "test config invalid: {problems:?}");
        let server = streamgate::server::start(config).await.expect("server starts");
        let addr = server.addr();
        Self {
            server: Some(server),
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
        }
    }

    /// The running server (state, metrics, hub).
    pub fn inner(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// Begins a graceful shutdown and waits for it to finish.
    pub async fn shutdown(mut self) {
        let server = self.server.take().unwrap();
        server.shutdown();
        server.stopped().await;
    }

    /// POST /api/publish to an identity with the test API key; returns the status.
    pub async fn publish(&self, identity: &str, data: serde_json::Value) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!("{}/api/publish", self.base))
            .bearer_auth(API_KEY)
            .json(&serde_json::json!({ "identity": identity, "data": data }))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Waits until `/ready` answers `status`.
    pub async fn wait_ready(&self, status: u16) {
        let url = format!("{}/ready", self.base);
        super::eventually(&format!("/ready == {status}"), || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .map(|r| r.status().as_u16() == status)
                    .unwrap_or(false)
            }
        })
        .await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.shutdown();
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// HS256 token for `identity`, valid for `ttl`.
pub fn token(identity: &str, ttl: Duration) -> String {
    token_with(serde_json::json!({ "sub": identity, "iat": now(), "exp": now() + ttl.as_secs() }))
}

/// HS256 token with exactly these claims.
pub fn token_with(claims: serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}
