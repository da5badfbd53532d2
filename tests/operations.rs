//! Issue 4 item 7 (operations): health and readiness, Prometheus metrics that move,
//! CORS, graceful shutdown of the real binary on SIGTERM/SIGINT, redacted logs, and
//! the CLI (`validate`, `token`, `healthcheck`, `version`, the no-config `serve` demo).

mod support;

use base64::Engine;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use streamgate::config::LogFormat;
use support::clients::WsConnect;
use support::process::write_file;
use support::*;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TTL: Duration = Duration::from_secs(600);
const EVIL: &str = "https://evil.example";
const APP: &str = "https://app.example";

async fn get_json(url: &str) -> (StatusCode, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET /events` with a valid token and, when given, an `Origin` header. The stream
/// (if any) is dropped; status and headers are what CORS decides.
async fn events_with_origin(base: &str, origin: Option<&str>) -> (StatusCode, HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/events"))
        .bearer_auth(token("42", TTL));
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = if status == StatusCode::OK {
        Value::Null
    } else {
        resp.json().await.unwrap_or(Value::Null)
    };
    (status, headers, body)
}

/// A WebSocket upgrade of identity 42 with an `Origin` header.
async fn ws_with_origin(ws_base: &str, origin: &str) -> WsConnect {
    let mut request = format!("{ws_base}/ws").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", origin.parse().unwrap());
    let bearer = format!("Bearer {}", token("42", TTL));
    headers.insert("authorization", bearer.parse().unwrap());
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(DEADLINE, connect).await.unwrap() {
        Ok((socket, _)) => WsConnect::Open(WsClient { socket }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            WsConnect::Refused(resp.status().as_u16(), body)
        }
        Err(e) => panic!("WS connect failed: {e}"),
    }
}

fn assert_refused(attempt: WsConnect, status: u16, body: Value) {
    match attempt {
        WsConnect::Refused(s, b) => assert_eq!((s, b), (status, body)),
        WsConnect::Open(_) => panic!("WS upgrade admitted, expected {status} {body}"),
    }
}

fn assert_open(attempt: WsConnect) {
    if let WsConnect::Refused(status, body) = attempt {
        panic!("WS upgrade refused: {status} {body}");
    }
}

fn origin_not_allowed() -> Value {
    json!({"error": "origin not allowed"})
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

async fn start_with_origins(origins: &[&str]) -> TestServer {
    let mut config = base_config();
    config.server.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    TestServer::start(config).await
}

async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

// ---------------------------------------------------------------- health

#[tokio::test]
async fn health_and_healthz_answer_200_ok() {
    let server = TestServer::start(base_config()).await;
    for path in ["/health", "/healthz"] {
        let (status, body) = get_json(&format!("{}{path}", server.base)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, json!({"status": "ok"}), "{path}");
    }
}

#[tokio::test]
async fn ready_answers_200_with_the_broker_connected() {
    let server = TestServer::start(base_config()).await;
    let (status, body) = get_json(&format!("{}/ready", server.base)).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["broker"], "connected", "{body}");

    let redis = Redis::start().await;
    let server = TestServer::start(redis_config(&redis)).await;
    server.wait_ready(200).await;
    let (_, body) = get_json(&format!("{}/ready", server.base)).await;
    assert_eq!(body["broker"], "connected", "{body}");
}

// ---------------------------------------------------------------- metrics

/// Every family issue 4 item 7 names, with its Prometheus type.
const FAMILIES: &[(&str, &str)] = &[
    ("streamgate_relay_connections", "gauge"),
    ("streamgate_relay_broker_messages", "counter"),
    ("streamgate_relay_deliveries", "counter"),
    ("streamgate_relay_dropped_messages", "counter"),
    ("streamgate_auth_failures", "counter"),
    ("streamgate_relay_publish_requests", "counter"),
    ("streamgate_broker_reconnects", "counter"),
    ("streamgate_broker_connected", "gauge"),
    ("streamgate_server_connection_rejections", "counter"),
];

#[tokio::test]
async fn metrics_expose_every_family_from_the_first_scrape() {
    let server = TestServer::start(base_config()).await;
    let text = scrape(&server.base).await;
    for (family, kind) in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "family {family} ({kind}) missing from a fresh /metrics:\n{text}"
        );
    }
    for transport in ["sse", "websocket"] {
        assert!(
            text.contains(&format!("streamgate_relay_connections{{transport=\"{transport}\"}} 0")),
            "connections by transport start at 0:\n{text}"
        );
    }
}

#[tokio::test]
async fn connection_gauges_follow_open_and_closed_connections_by_transport() {
    let server = TestServer::start(base_config()).await;
    let gauge = |transport: &'static str| {
        let base = server.base.clone();
        async move {
            let label = format!("transport=\"{transport}\"");
            metric(&base, "streamgate_relay_connections", &label).await
        }
    };
    let t = token("42", TTL);
    let sse = SseClient::connect(&format!("{}/events", server.base), Some(&t)).await;
    let ws = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&t)).await;
    let ws2 = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&t)).await;
    assert_eq!(gauge("sse").await, 1.0);
    assert_eq!(gauge("websocket").await, 2.0);
    drop((sse, ws, ws2));
    eventually("gauges back to 0 after the clients left", || async {
        gauge("sse").await == 0.0 && gauge("websocket").await == 0.0
    })
    .await;
}

#[tokio::test]
async fn broker_message_and_delivery_counters_move_on_publish() {
    let server = TestServer::start(base_config()).await;
    let t = token("42", TTL);
    let mut a = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&t)).await;
    let mut b = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&t)).await;
    a.next_text().await;
    b.next_text().await;
    let base = &server.base;
    let messages = metric(base, "streamgate_relay_broker_messages_total", "").await;
    let deliveries = metric(base, "streamgate_relay_deliveries_total", "").await;
    assert_eq!(server.publish("42", json!("hi")).await, 202);
    assert_eq!(a.next_text().await, r#""hi""#);
    assert_eq!(b.next_text().await, r#""hi""#);
    assert_eq!(
        metric(base, "streamgate_relay_broker_messages_total", "").await,
        messages + 1.0
    );
    assert_eq!(
        metric(base, "streamgate_relay_deliveries_total", "").await,
        deliveries + 2.0,
        "one delivery per recipient"
    );
}

#[tokio::test]
async fn dropped_messages_counter_moves_when_a_client_does_not_read() {
    let mut config = base_config();
    config.relay.client_buffer_size = 1;
    let server = TestServer::start(config).await;
    let t = token("slow", TTL);
    // Connected but never read: the socket buffers fill, then the queue of one.
    let _slow = SseClient::connect(&format!("{}/events", server.base), Some(&t)).await;
    let big = "x".repeat(900 * 1024);
    let deadline = Instant::now() + DEADLINE;
    while metric(&server.base, "streamgate_relay_dropped_messages_total", "").await == 0.0 {
        assert!(Instant::now() < deadline, "no message was ever dropped");
        for _ in 0..4 {
            assert_eq!(server.publish("slow", json!(big)).await, 202);
        }
    }
    let open = metric(&server.base, "streamgate_relay_connections", "sse").await;
    assert_eq!(open, 1.0, "drop_newest_message keeps the client");
}

#[tokio::test]
async fn auth_failures_are_counted_by_reason() {
    let server = TestServer::start(base_config()).await;
    let base = &server.base;
    let count = |reason: &'static str| async move {
        let label = format!("reason=\"{reason}\"");
        metric(base, "streamgate_auth_failures_total", &label).await
    };
    let expired = token_with(json!({"sub": "42", "exp": 1_000_000_000u64}));
    let other_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "42", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-0123456789abcdef0123"),
    )
    .unwrap();
    let cases = [
        ("missing", String::new()),
        ("malformed", "?token=not-a-jwt".to_string()),
        ("expired", format!("?token={expired}")),
        ("signature", format!("?token={other_key}")),
    ];
    for (reason, query) in cases {
        let before = count(reason).await;
        let (status, body) = get_json(&format!("{base}/events{query}")).await;
        assert_eq!(status, 401, "{reason}: {body}");
        assert_eq!(count(reason).await, before + 1.0, "reason {reason}");
    }
}

#[tokio::test]
async fn publish_requests_are_counted_by_result() {
    let server = TestServer::start(base_config()).await;
    let base = &server.base;
    let count = |result: &'static str| async move {
        let label = format!("result=\"{result}\"");
        metric(base, "streamgate_relay_publish_requests_total", &label).await
    };
    let post = |key: &'static str, body: Value| async move {
        reqwest::Client::new()
            .post(format!("{base}/api/publish"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(post(API_KEY, json!({"identity": "42", "data": 1})).await, 202);
    assert_eq!(count("ok").await, 1.0);
    let wrong_key = "not-the-api-key-0000";
    assert_eq!(post(wrong_key, json!({"identity": "42", "data": 1})).await, 401);
    assert_eq!(count("unauthorized").await, 1.0);
    assert_eq!(post(API_KEY, json!({"identity": "a b", "data": 1})).await, 400);
    assert_eq!(count("bad_request").await, 1.0);
}

#[tokio::test]
async fn connection_rejections_are_counted_by_reason() {
    let mut config = base_config();
    config.server.max_connections_per_identity = 1;
    let server = TestServer::start(config).await;
    let base = &server.base;
    let count = |reason: &'static str| async move {
        let label = format!("reason=\"{reason}\"");
        metric(base, "streamgate_server_connection_rejections_total", &label).await
    };
    let t = token("42", TTL);
    let _first = SseClient::connect(&format!("{base}/events"), Some(&t)).await;
    let second = SseClient::connect(&format!("{base}/events"), Some(&t)).await;
    assert_eq!(second.status, 429);
    assert_eq!(count("limit").await, 1.0);
    let (status, _, _) = events_with_origin(base, Some(EVIL)).await;
    assert_eq!(status, 403);
    assert_eq!(count("origin").await, 1.0);
}

// ---------------------------------------------------------------- CORS

#[tokio::test]
async fn with_no_allowed_origins_cross_origin_requests_get_403() {
    let server = start_with_origins(&[]).await;
    let (status, _, body) = events_with_origin(&server.base, Some(EVIL)).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, origin_not_allowed()));
    assert_refused(ws_with_origin(&server.ws_base, EVIL).await, 403, origin_not_allowed());
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/events", server.base))
        .header("origin", EVIL)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 403);
    assert!(preflight.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn with_no_allowed_origins_requests_without_origin_or_from_the_same_origin_pass() {
    let server = start_with_origins(&[]).await;
    let (status, headers, _) = events_with_origin(&server.base, None).await;
    assert_eq!(status, 200);
    assert!(headers.get("access-control-allow-origin").is_none());
    let same = server.base.clone();
    let (status, _, body) = events_with_origin(&server.base, Some(&same)).await;
    assert_eq!(status, 200, "same origin {same}: {body}");
    assert_open(ws_with_origin(&server.ws_base, &same).await);
}

#[tokio::test]
async fn a_listed_origin_gets_preflight_and_actual_cors_headers_and_others_get_403() {
    let server = start_with_origins(&[APP]).await;
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/events", server.base))
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(header(h, "access-control-allow-origin"), APP);
    assert!(header(h, "access-control-allow-methods").contains("GET"));
    assert!(header(h, "access-control-allow-methods").contains("POST"));
    let allow_headers = header(h, "access-control-allow-headers").to_ascii_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(allow_headers.contains("content-type"), "{allow_headers}");

    let (status, headers, _) = events_with_origin(&server.base, Some(APP)).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), APP);
    assert_open(ws_with_origin(&server.ws_base, APP).await);

    let publish = reqwest::Client::new()
        .post(format!("{}/api/publish", server.base))
        .header("origin", APP)
        .bearer_auth(API_KEY)
        .json(&json!({"identity": "42", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status(), 202);
    assert_eq!(header(publish.headers(), "access-control-allow-origin"), APP);

    let (status, _, body) = events_with_origin(&server.base, Some(EVIL)).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, origin_not_allowed()));
    assert_refused(ws_with_origin(&server.ws_base, EVIL).await, 403, origin_not_allowed());
}

#[tokio::test]
async fn a_wildcard_allows_every_origin() {
    let server = start_with_origins(&["*"]).await;
    let (status, headers, _) = events_with_origin(&server.base, Some(EVIL)).await;
    assert_eq!(status, 200);
    let allowed = header(&headers, "access-control-allow-origin");
    assert!(allowed == EVIL || allowed == "*", "{allowed}");
    assert_open(ws_with_origin(&server.ws_base, EVIL).await);
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/events", server.base))
        .header("origin", EVIL)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
}

// ---------------------------------------------------------------- shutdown

const SHUTDOWN_TIMEOUT: u64 = 5;

/// Opens a WS and an SSE client on the real binary, sends `signal`, and checks the
/// close 1001, the `shutdown` event, the end of the stream and a clean, timely exit.
async fn graceful_shutdown_on(signal: &str) {
    let mut config = base_config();
    config.server.shutdown_timeout_seconds = SHUTDOWN_TIMEOUT;
    let mut server = BinaryServer::start(&config).await;
    let t = token("42", TTL);
    let mut ws = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&t)).await;
    assert!(ws.next_text().await.contains("connected"));
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&t)).await;
    assert_eq!(sse.next_event().await.unwrap().event, "connected");

    let signalled = Instant::now();
    server.signal(signal);
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 1001, "WS close code on {signal} ({reason})");
    let last = sse.next_non_heartbeat().await.expect("shutdown event");
    assert_eq!(last.event, "shutdown");
    assert_eq!(sse.next_event().await, None, "SSE stream ends after shutdown");
    let status = server.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT + 5)).await;
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status after {signal}");
    assert!(
        took < Duration::from_secs(SHUTDOWN_TIMEOUT),
        "exit took {took:?}, over shutdown_timeout_seconds"
    );
}

#[tokio::test]
async fn sigterm_closes_ws_1001_ends_sse_with_shutdown_and_exits_0() {
    graceful_shutdown_on("TERM").await;
}

#[tokio::test]
async fn sigint_closes_ws_1001_ends_sse_with_shutdown_and_exits_0() {
    graceful_shutdown_on("INT").await;
}

#[tokio::test]
async fn a_client_that_never_reads_cannot_hold_shutdown_past_the_timeout() {
    let timeout = 2;
    let mut config = base_config();
    config.server.shutdown_timeout_seconds = timeout;
    config.relay.client_buffer_size = 1;
    let mut server = BinaryServer::start(&config).await;
    let t = token("stuck", TTL);
    // Never read: once a message is dropped, the socket is full and the stream's
    // writes (including the final `shutdown` event) cannot complete.
    let _stuck = SseClient::connect(&format!("{}/events", server.base), Some(&t)).await;
    let big = "x".repeat(900 * 1024);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    while metric(&server.base, "streamgate_relay_dropped_messages_total", "").await == 0.0 {
        assert!(Instant::now() < deadline, "the client's socket never filled");
        let status = client
            .post(format!("{}/api/publish", server.base))
            .bearer_auth(API_KEY)
            .json(&json!({"identity": "stuck", "data": big}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
    }
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(timeout + 8)).await;
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took >= Duration::from_millis(timeout * 1000 - 200),
        "the stuck stream should hold the drain until the timeout; exit took {took:?}"
    );
    assert!(
        took < Duration::from_secs(timeout) + Duration::from_millis(1500),
        "exit took {took:?} with shutdown_timeout_seconds {timeout}"
    );
}

// ---------------------------------------------------------------- logs

#[tokio::test]
async fn json_debug_logs_never_contain_tokens_or_secrets() {
    let mut config = base_config();
    config.logging.level = "debug".into();
    config.logging.format = LogFormat::Json;
    let server = BinaryServer::start(&config).await;
    let valid = token("42", TTL);

    let (status, _) = get_json(&format!("{}/events?token=SECRETVALUE", server.base)).await;
    assert_eq!(status, 401);
    let mut ws = WsClient::connect(&format!("{}/ws?token={valid}", server.ws_base), None).await;
    assert!(ws.next_text().await.contains("connected"));
    let url = format!("{}/events?a=1&token={valid}", server.base);
    let sse = SseClient::connect(&url, None).await;
    assert_eq!(sse.status, 200);
    let publish = reqwest::Client::new()
        .post(format!("{}/api/publish", server.base))
        .bearer_auth(API_KEY)
        .json(&json!({"identity": "42", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status(), 202);
    ws.next_text().await;
    drop((ws, sse));

    eventually("request logs for /events, /ws and /api/publish", || {
        let logs = server.stderr.text();
        async move {
            ["\"/events\"", "\"/ws\"", "\"/api/publish\""]
                .iter()
                .all(|p| logs.contains(p))
        }
    })
    .await;
    let logs = server.stderr.text();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 4, "too few log lines:\n{logs}");
    for line in &lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok_and(|v| v.is_object()), "not a JSON log line: {line}");
    }
    assert!(logs.contains("token=[redacted]"), "query logged redacted:\n{logs}");
    for secret in ["SECRETVALUE", SECRET, valid.as_str(), API_KEY] {
        assert!(!logs.contains(secret), "logs contain {secret}:\n{logs}");
    }
}

#[tokio::test]
async fn text_logs_never_contain_tokens_or_secrets() {
    let mut config = base_config();
    config.logging.level = "debug".into();
    let server = BinaryServer::start(&config).await;
    let (status, _) = get_json(&format!("{}/events?token=SECRETVALUE", server.base)).await;
    assert_eq!(status, 401);
    eventually("a request log line", || {
        let logs = server.stderr.text();
        async move { logs.contains("/events") }
    })
    .await;
    let logs = server.stderr.text();
    assert!(
        serde_json::from_str::<Value>(logs.lines().next().unwrap()).is_err(),
        "text format"
    );
    for secret in ["SECRETVALUE", SECRET] {
        assert!(!logs.contains(secret), "logs contain {secret}:\n{logs}");
    }
}

// ---------------------------------------------------------------- CLI

const GOOD_YAML: &str = "auth:\n  jwt_secret: test-secret-0123456789abcdef0123456789\n";

#[tokio::test]
async fn validate_lists_every_problem_with_its_key_path_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_file(
        dir.path(),
        "bad.yaml",
        "server:\n  prot: 9\nauth:\n  jwt_secret: short\n  jwt_public_key: /nonexistent/key.pem\n\
         relay:\n  client_buffer_size: 0\n",
    );
    let out = run_cli(&["validate", "--config", bad.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let report = format!("{}{}", out.stdout, out.stderr);
    let expected = [
        ("unknown key", "server.prot"),
        ("short secret", "auth.jwt_secret"),
        ("unreadable PEM", "auth.jwt_public_key"),
        ("zero buffer", "relay.client_buffer_size"),
        ("both secret and key", "not both"),
    ];
    for (problem, text) in expected {
        assert!(report.contains(text), "{problem}: no {text:?} in\n{report}");
    }
}

#[tokio::test]
async fn validate_exits_0_on_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_file(dir.path(), "good.yaml", GOOD_YAML);
    let out = run_cli(&["validate", "--config", good.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[tokio::test]
async fn an_env_override_supplies_the_missing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "nosecret.yaml", "server:\n  port: 9000\n");
    let args = ["validate", "--config", file.to_str().unwrap()];
    let without = run_cli(&args, &[]).await;
    assert_eq!(without.code, Some(1), "{without:?}");
    assert!(without.stderr.contains("auth"), "{without:?}");
    let with = run_cli(&args, &[("STREAMGATE__AUTH__JWT_SECRET", SECRET)]).await;
    assert_eq!(with.code, Some(0), "{with:?}");
}

#[tokio::test]
async fn token_prints_a_jwt_the_server_accepts_with_the_extra_claims() {
    let out = run_cli(
        &[
            "token",
            "--identity",
            "42",
            "--secret",
            SECRET,
            "--ttl",
            "1h",
            "--claim",
            "role=admin",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let jwt = out.stdout.trim();
    let payload = jwt.split('.').nth(1).expect("three JWT parts");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "42", "{claims}");
    assert_eq!(claims["role"], "admin", "{claims}");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 3600, "{claims}");

    let server = TestServer::start(base_config()).await;
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(jwt)).await;
    assert_eq!(sse.status, 200, "{:?}", sse.error_body);
    assert_eq!(sse.next_event().await.unwrap().data, r#"{"identity":"42"}"#);
}

#[tokio::test]
async fn healthcheck_exits_0_on_200_and_1_otherwise() {
    let server = TestServer::start(base_config()).await;
    let ok = run_cli(&["healthcheck", "--url", &format!("{}/health", server.base)], &[]).await;
    assert_eq!(ok.code, Some(0), "{ok:?}");
    let not_found = format!("{}/no-such-path", server.base);
    let out = run_cli(&["healthcheck", "--url", &not_found], &[]).await;
    assert_eq!(out.code, Some(1), "404: {out:?}");
    let closed = format!("http://127.0.0.1:{}/health", free_port());
    let out = run_cli(&["healthcheck", "--url", &closed], &[]).await;
    assert_eq!(out.code, Some(1), "closed port: {out:?}");
}

#[tokio::test]
async fn version_prints_the_version() {
    let out = run_cli(&["version"], &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), format!("streamgate {}", env!("CARGO_PKG_VERSION")));
}

/// A shell line run with `sh -c`, killed on drop, whose stdout is read as it comes.
struct ShellLine {
    child: tokio::process::Child,
    stdout: String,
}

impl ShellLine {
    fn spawn(line: &str) -> Self {
        let child = tokio::process::Command::new("sh")
            .args(["-c", &format!("exec {line}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("sh");
        Self {
            child,
            stdout: String::new(),
        }
    }

    async fn wait_for(&mut self, what: &str) {
        let out = self.child.stdout.as_mut().unwrap();
        let found = tokio::time::timeout(DEADLINE, async {
            let mut buf = [0u8; 4096];
            while !self.stdout.contains(what) {
                let n = out.read(&mut buf).await.unwrap();
                if n == 0 {
                    return false;
                }
                self.stdout.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            true
        })
        .await;
        assert_eq!(found, Ok(true), "{what:?} not in {:?}", self.stdout);
    }
}

/// The first printed line that starts with `prefix`, trimmed.
fn printed_line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

/// The text between the first `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect(start) + start.len();
    let to = text[from..].find(end).expect(end) + from;
    &text[from..to]
}

#[tokio::test]
async fn serve_without_config_prints_a_token_a_key_and_lines_that_work() {
    let port = free_port();
    let port_text = port.to_string();
    let server = BinaryServer::spawn(
        &["serve".to_string()],
        &[("STREAMGATE__SERVER__PORT", &port_text)],
        port,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let stdout = server
        .wait_stdout("the publish line", |s| s.contains(r#"{"hello":"world"}}'"#))
        .await;
    let token = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Token for identity"))
        .nth(1)
        .expect("token line")
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(stdout.contains("API key"), "{stdout}");

    // 1. The terminal listener, run as printed.
    let mut listener = ShellLine::spawn(printed_line(&stdout, "curl -N"));
    listener.wait_for("event: connected").await;
    // 2. and 3. The browser lines' URLs, opened by real clients.
    let es_url = between(&stdout, "new EventSource(\"", "\")");
    let mut sse = SseClient::connect(es_url, None).await;
    assert_eq!(sse.status, 200, "{es_url}: {:?}", sse.error_body);
    sse.next_event().await.unwrap();
    let ws_url = between(&stdout, "new WebSocket(\"", "\")");
    let mut ws = WsClient::connect(ws_url, None).await;
    assert_eq!(ws.next_text().await, r#"{"event":"connected","identity":"demo"}"#);
    assert!(es_url.contains(&token) && ws_url.contains(&token));

    // 4. The publish line, run as printed.
    let mut publisher = ShellLine::spawn(printed_line(&stdout, "curl -X POST"));
    publisher.wait_for(r#"{"published":true}"#).await;
    listener.wait_for(r#"data: {"hello":"world"}"#).await;
    assert_eq!(ws.next_text().await, r#"{"hello":"world"}"#);
    let event = sse.next_non_heartbeat().await.unwrap();
    assert_eq!(event.data, r#"{"hello":"world"}"#);
}

#[tokio::test]
async fn serve_refuses_an_invalid_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "bad.yaml", "auth:\n  jwt_secret: short\n");
    let out = run_cli(&["serve", "--config", file.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("auth.jwt_secret"), "{out:?}");
}
