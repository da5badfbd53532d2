//! `GET /events`: the SSE side of the event relay contract (DESIGN.md "Event relay"),
//! over real sockets against an in-process server.

mod support;

use bytes::Bytes;
use futures_util::StreamExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use streamgate::config::SlowConsumerPolicy;
use support::raw_ws::keep_alive_connection;
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

fn events_url(server: &TestServer) -> String {
    format!("{}/events", server.base)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Publishes raw bytes through the server's own broker (no JSON re-encoding).
async fn broker_publish(server: &TestServer, topic: &str, payload: &'static [u8]) {
    server
        .inner()
        .state()
        .broker
        .publish(topic, Bytes::from_static(payload))
        .await
        .expect("broker publish");
}

/// Opens `/events` and consumes the `connected` event.
async fn connect_sse(server: &TestServer, identity: &str) -> SseClient {
    let mut sse = SseClient::connect(&events_url(server), Some(&token(identity, HOUR))).await;
    assert_eq!(sse.status, 200, "SSE for {identity}: {:?}", sse.error_body);
    let hello = sse.next_event().await.expect("connected event");
    assert_eq!(hello.event, "connected", "first event for {identity}");
    sse
}

async fn next_message(sse: &mut SseClient) -> String {
    let ev = sse.next_non_heartbeat().await.expect("stream ended");
    assert_eq!(ev.event, "message", "unexpected event {ev:?}");
    ev.data
}

#[tokio::test]
async fn sse_opens_with_connected_event_naming_the_identity() {
    let server = TestServer::start(base_config()).await;
    let mut sse = SseClient::connect(&events_url(&server), Some(&token("42", HOUR))).await;
    assert_eq!(sse.status, 200);
    let hello = sse.next_event().await.expect("connected event");
    assert_eq!(hello.event, "connected");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&hello.data).unwrap(),
        serde_json::json!({ "identity": "42" })
    );
}

#[tokio::test]
async fn sse_responds_with_event_stream_headers() {
    let server = TestServer::start(base_config()).await;
    let sse = SseClient::connect(&events_url(&server), Some(&token("42", HOUR))).await;
    assert_eq!(sse.status, 200);
    let header = |name: &str| {
        sse.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        header("content-type").starts_with("text/event-stream"),
        "content-type was {:?}",
        header("content-type")
    );
    assert_eq!(header("cache-control"), "no-cache");
}

#[tokio::test]
async fn sse_relays_published_payloads_verbatim() {
    const CASES: &[(&str, &[u8])] = &[
        ("json with odd spacing", br#"{ "n" :  1,"list":[1, 2 ,3] }"#),
        ("plain text", b"hello world"),
        ("unicode", "h\u{e9}llo \u{1f30d} \u{65e5}\u{672c}".as_bytes()),
        ("leading and trailing spaces", b"  padded  "),
        ("colons and data-like text", b"data: not a field: really"),
    ];
    let server = TestServer::start(base_config()).await;
    let mut sse = connect_sse(&server, "42").await;
    for (name, payload) in CASES {
        broker_publish(&server, "streams:42", payload).await;
        let data = next_message(&mut sse).await;
        assert_eq!(
            data.as_bytes(),
            *payload,
            "case {name}: SSE data differs from the published payload"
        );
    }
}

#[tokio::test]
async fn sse_api_publish_arrives_as_message_event() {
    let server = TestServer::start(base_config()).await;
    let mut sse = connect_sse(&server, "42").await;
    assert_eq!(server.publish("42", serde_json::json!({"n": 1})).await, 202);
    assert_eq!(next_message(&mut sse).await, r#"{"n":1}"#);
}

/// Reads the raw response body until `marker` appears; returns everything read.
async fn read_raw_until(body: &mut (impl StreamExt<Item = reqwest::Result<Bytes>> + Unpin), marker: &str) -> String {
    let mut text = String::new();
    tokio::time::timeout(DEADLINE, async {
        while !text.contains(marker) {
            let chunk = body.next().await.expect("stream ended early").expect("body chunk");
            text.push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {marker:?}; got {text:?}"));
    text
}

#[tokio::test]
async fn sse_splits_multi_line_payload_into_data_lines() {
    const PAYLOAD: &[u8] = b"first line\nsecond line\n\nfourth: line\nlast";
    let server = TestServer::start(base_config()).await;
    let response = reqwest::Client::new()
        .get(events_url(&server))
        .bearer_auth(token("42", HOUR))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    read_raw_until(&mut body, "event: connected").await;
    broker_publish(&server, "streams:42", PAYLOAD).await;
    let raw = read_raw_until(&mut body, "data: last\n\n").await;

    let block = raw
        .split("\n\n")
        .find(|b| b.starts_with("event: message"))
        .unwrap_or_else(|| panic!("no message event in {raw:?}"));
    assert_eq!(
        block, "event: message\ndata: first line\ndata: second line\ndata: \ndata: fourth: line\ndata: last",
        "each payload line must be its own data: line (an empty line must not end the event)"
    );
    let reconstructed: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(
        reconstructed.join("\n").as_bytes(),
        PAYLOAD,
        "joining the data: lines with \\n must give the payload back"
    );
}

#[tokio::test]
async fn sse_sends_heartbeat_every_heartbeat_seconds() {
    let mut config = base_config();
    config.relay.heartbeat_seconds = 1;
    let server = TestServer::start(config).await;
    let mut sse = connect_sse(&server, "42").await;
    let connected_at = Instant::now();
    let mut beats = Vec::new();
    for _ in 0..2 {
        let ev = sse.next_event().await.expect("stream ended");
        assert_eq!((ev.event.as_str(), ev.data.as_str()), ("heartbeat", "{}"));
        beats.push(connected_at.elapsed());
    }
    let gap = beats[1] - beats[0];
    assert!(
        beats[0] >= Duration::from_millis(500) && beats[0] <= Duration::from_secs(3),
        "first heartbeat after {:?}, expected about 1 s",
        beats[0]
    );
    assert!(
        gap >= Duration::from_millis(500) && gap <= Duration::from_secs(3),
        "heartbeats {gap:?} apart, expected about 1 s"
    );
}

#[tokio::test]
async fn sse_sends_auth_expired_then_ends_when_token_expires() {
    let server = TestServer::start(base_config()).await;
    let exp = unix_now() + 2;
    let token = token_with(serde_json::json!({ "sub": "42", "exp": exp }));
    let mut sse = SseClient::connect(&events_url(&server), Some(&token)).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.next_event().await.unwrap().event, "connected");
    let ev = sse.next_non_heartbeat().await.expect("auth_expired event");
    assert_eq!((ev.event.as_str(), ev.data.as_str()), ("auth_expired", "{}"));
    assert!(
        unix_now() >= exp,
        "auth_expired arrived before exp ({} < {exp})",
        unix_now()
    );
    assert_eq!(sse.next_event().await, None, "the stream must end after auth_expired");
}

#[tokio::test]
async fn sse_delivers_to_every_connection_of_an_identity() {
    let server = TestServer::start(base_config()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect_sse(&server, "42").await);
    }
    assert_eq!(server.publish("42", serde_json::json!("to all")).await, 202);
    for (i, sse) in clients.iter_mut().enumerate() {
        assert_eq!(next_message(sse).await, r#""to all""#, "connection {i}");
    }
}

#[tokio::test]
async fn sse_never_delivers_another_identitys_messages() {
    let server = TestServer::start(base_config()).await;
    let mut alice = connect_sse(&server, "alice").await;
    let mut bob = connect_sse(&server, "bob").await;
    // Prefix-sharing identities must not leak either.
    let mut alice2 = connect_sse(&server, "alice2").await;
    broker_publish(&server, "streams:bob", b"for bob").await;
    broker_publish(&server, "streams:alice", b"for alice 1").await;
    broker_publish(&server, "streams:alice", b"for alice 2").await;
    broker_publish(&server, "streams:alice2", b"for alice2").await;
    assert_eq!(next_message(&mut alice).await, "for alice 1");
    assert_eq!(next_message(&mut alice).await, "for alice 2");
    assert_eq!(next_message(&mut bob).await, "for bob");
    assert_eq!(next_message(&mut alice2).await, "for alice2");
}

#[tokio::test]
async fn sse_accepts_token_from_query_string() {
    let server = TestServer::start(base_config()).await;
    let url = format!("{}?token={}", events_url(&server), token("42", HOUR));
    let mut sse = SseClient::connect(&url, None).await;
    assert_eq!(sse.status, 200, "{:?}", sse.error_body);
    assert_eq!(sse.next_event().await.unwrap().data, r#"{"identity":"42"}"#);
}

#[tokio::test]
async fn sse_prefers_authorization_header_over_query_token() {
    let server = TestServer::start(base_config()).await;

    let url = format!("{}?token=garbage.not.a-jwt", events_url(&server));
    let mut sse = SseClient::connect(&url, Some(&token("42", HOUR))).await;
    assert_eq!(
        sse.status, 200,
        "a valid header must win over a garbage query token: {:?}",
        sse.error_body
    );
    assert_eq!(sse.next_event().await.unwrap().data, r#"{"identity":"42"}"#);

    let url = format!("{}?token={}", events_url(&server), token("7", HOUR));
    let mut sse = SseClient::connect(&url, Some(&token("42", HOUR))).await;
    assert_eq!(sse.status, 200);
    assert_eq!(
        sse.next_event().await.unwrap().data,
        r#"{"identity":"42"}"#,
        "with two valid tokens the header's identity is used"
    );
}

#[tokio::test]
async fn sse_relays_payload_larger_than_socket_buffers() {
    let server = TestServer::start(base_config()).await;
    let mut sse = connect_sse(&server, "42").await;
    let payload = "x".repeat(512 * 1024);
    server
        .inner()
        .state()
        .broker
        .publish("streams:42", Bytes::from(payload.clone()))
        .await
        .unwrap();
    assert!(next_message(&mut sse).await == payload, "512 KiB payload differs");
}

#[tokio::test]
async fn sse_drop_client_policy_ends_the_stream_of_a_slow_consumer() {
    let mut config = base_config();
    config.relay.client_buffer_size = 1;
    config.relay.slow_consumer_policy = SlowConsumerPolicy::DropClient;
    let server = TestServer::start(config).await;
    let mut sse = connect_sse(&server, "42").await;
    let state = server.inner().state().clone();
    // A synchronous burst: the connection cannot drain between dispatches, so the
    // second one finds the queue (capacity 1) full.
    for i in 0..5 {
        state.hub.dispatch("streams:42", Bytes::from(format!("burst {i}")));
    }
    assert_eq!(next_message(&mut sse).await, "burst 0");
    assert_eq!(
        sse.next_non_heartbeat().await,
        None,
        "the slow consumer's stream must end"
    );
    assert!(metric(&server.base, "streamgate_relay_slow_consumer_disconnects_total", "").await >= 1.0);
}

#[tokio::test]
async fn sse_on_a_keep_alive_connection_is_dropped_when_the_client_stops_reading() {
    use tokio::io::AsyncWriteExt;
    let mut config = base_config();
    config.relay.websocket_write_timeout_ms = 300;
    config.relay.client_buffer_size = 4096;
    let server = TestServer::start(config).await;
    // /events is this connection's second request, so hyper serves it (not the
    // raw-socket path); the small receive buffer fills fast once the client stops.
    let mut stream = keep_alive_connection(server.inner().addr(), Some(4096)).await;
    let request = format!("GET /events?token={} HTTP/1.1\r\nHost: test\r\n\r\n", token("42", HOUR));
    stream.write_all(request.as_bytes()).await.unwrap();
    let sse = || metric(&server.base, "streamgate_relay_connections", r#"transport="sse""#);
    eventually("sse gauge at 1", || async { sse().await == 1.0 }).await;
    // Far more than both ends' buffers hold: hyper's write stalls.
    let state = server.inner().state().clone();
    let chunk = Bytes::from("s".repeat(16 * 1024));
    for _ in 0..1024 {
        state.hub.dispatch("streams:42", chunk.clone());
    }
    eventually("the stalled keep-alive stream is dropped", || async {
        sse().await == 0.0
    })
    .await;
    drop(stream);
}
