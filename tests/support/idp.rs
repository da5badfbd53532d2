//! A fake identity provider on a free port: JWKS, OIDC discovery, token
//! verification and a token endpoint, each answer set by the test, each hit counted.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How an endpoint answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with this JSON.
    Json(Value),
    /// 200 with this non-JSON text.
    Garbage(&'static str),
    /// This status with an empty JSON object.
    Status(u16),
    /// Waits this long, then answers `{}`.
    Slow(Duration),
}

/// What one verify or token call carried.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// Form fields of the body.
    pub form: HashMap<String, String>,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// Every header, lower-case names.
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct Inner {
    keys: Mutex<Vec<Value>>,
    jwks: Mutex<Option<Answer>>,
    cache_control: Mutex<Option<String>>,
    discovery_issuer: Mutex<Option<String>>,
    verify: Mutex<Option<Answer>>,
    token: Mutex<Option<Answer>>,
    seen: Mutex<Vec<Seen>>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    verify_hits: AtomicUsize,
    token_hits: AtomicUsize,
    base: Mutex<String>,
}

/// The running provider; stopped on drop.
pub struct Idp {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    inner: Arc<Inner>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Idp {
    /// Starts serving an empty key set.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Inner::default());
        *inner.base.lock().unwrap() = base.clone();
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/verify", get(verify).post(verify))
            .route("/token", post(token))
            .with_state(inner.clone());
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .unwrap();
        });
        Self {
            base,
            inner,
            stop,
            task: Some(task),
        }
    }

    /// Stops listening: the provider is down (connections are refused).
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(super::DEADLINE, task).await;
        }
    }

    /// Serves exactly these JWKs.
    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.inner.keys.lock().unwrap() = keys;
    }

    /// Answers key-set requests this way instead of with the keys (`None` = the keys).
    pub fn set_jwks_answer(&self, answer: Option<Answer>) {
        *self.inner.jwks.lock().unwrap() = answer;
    }

    /// `Cache-Control` of key-set answers.
    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.inner.cache_control.lock().unwrap() = value.map(str::to_string);
    }

    /// The `issuer` the discovery document claims (default: the base URL).
    pub fn set_discovery_issuer(&self, issuer: &str) {
        *self.inner.discovery_issuer.lock().unwrap() = Some(issuer.to_string());
    }

    /// How `/verify` answers.
    pub fn set_verify(&self, answer: Answer) {
        *self.inner.verify.lock().unwrap() = Some(answer);
    }

    /// How `/token` answers.
    pub fn set_token(&self, answer: Answer) {
        *self.inner.token.lock().unwrap() = Some(answer);
    }

    /// Key-set requests so far.
    pub fn jwks_hits(&self) -> usize {
        self.inner.jwks_hits.load(Ordering::SeqCst)
    }

    /// Discovery requests so far.
    pub fn discovery_hits(&self) -> usize {
        self.inner.discovery_hits.load(Ordering::SeqCst)
    }

    /// `/verify` requests so far.
    pub fn verify_hits(&self) -> usize {
        self.inner.verify_hits.load(Ordering::SeqCst)
    }

    /// `/token` (refresh) requests so far.
    pub fn token_hits(&self) -> usize {
        self.inner.token_hits.load(Ordering::SeqCst)
    }

    /// The last verify or token call.
    pub fn last_seen(&self) -> Seen {
        self.inner
            .seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a call was made")
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Response {
    inner.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let answer = inner.jwks.lock().unwrap().clone();
    let mut response = match answer {
        Some(answer) => respond(answer).await,
        None => axum::Json(json!({ "keys": inner.keys.lock().unwrap().clone() })).into_response(),
    };
    if let Some(cc) = inner.cache_control.lock().unwrap().clone() {
        response.headers_mut().insert("cache-control", cc.parse().unwrap());
    }
    response
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Response {
    inner.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let base = inner.base.lock().unwrap().clone();
    let issuer = inner.discovery_issuer.lock().unwrap().clone().unwrap_or(base.clone());
    axum::Json(json!({ "issuer": issuer, "jwks_uri": format!("{base}/jwks") })).into_response()
}

async fn verify(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    inner.verify_hits.fetch_add(1, Ordering::SeqCst);
    record(&inner, &headers, query, &body);
    let answer = inner.verify.lock().unwrap().clone().unwrap_or(Answer::Status(500));
    respond(answer).await
}

async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    inner.token_hits.fetch_add(1, Ordering::SeqCst);
    record(&inner, &headers, query, &body);
    let answer = inner.token.lock().unwrap().clone().unwrap_or(Answer::Status(500));
    respond(answer).await
}

fn record(inner: &Inner, headers: &HeaderMap, query: HashMap<String, String>, body: &[u8]) {
    let seen = Seen {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        form: form_urlencoded::parse(body).into_owned().collect(),
        query,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    inner.seen.lock().unwrap().push(seen);
}

async fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Json(value) => axum::Json(value).into_response(),
        Answer::Garbage(text) => text.into_response(),
        Answer::Status(code) => (StatusCode::from_u16(code).unwrap(), axum::Json(json!({}))).into_response(),
        Answer::Slow(wait) => {
            tokio::time::sleep(wait).await;
            axum::Json(json!({})).into_response()
        }
    }
}
