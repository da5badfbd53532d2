//! `GET /ws`: the WebSocket side of the event relay contract (DESIGN.md "Event
//! relay"), over real sockets against an in-process server. Where a well-behaved
//! client library would hide the behaviour (unanswered pings, a reader that never
//! reads), a hand-rolled client on a raw `TcpStream` is used.

mod support;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use streamgate::config::SlowConsumerPolicy;
use support::raw_ws::*;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const HOUR: Duration = Duration::from_secs(3600);
const CONNECTED_42: &str = r#"{"event":"connected","identity":"42"}"#;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Opens `/ws` for `identity` and consumes the `connected` frame.
async fn connect_ws(server: &TestServer, identity: &str) -> WsClient {
    let url = format!("{}/ws", server.ws_base);
    let mut ws = WsClient::connect(&url, Some(&token(identity, HOUR))).await;
    let hello: serde_json::Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(hello["event"], "connected", "first frame for {identity}");
    ws
}

async fn broker_publish(server: &TestServer, topic: &str, payload: impl Into<Bytes>) {
    server
        .inner()
        .state()
        .broker
        .publish(topic, payload.into())
        .await
        .expect("broker publish");
}

async fn ws_connections(server: &TestServer) -> f64 {
    metric(&server.base, "streamgate_relay_connections", r#"transport="websocket""#).await
}

/// Opens `/ws` for `token` on a hand-written raw client (see [`RawWs`]).
async fn raw_ws(server: &TestServer, token: &str, recv_buffer: Option<u32>) -> RawWs {
    RawWs::connect(server.inner().addr(), &format!("/ws?token={token}"), "", recv_buffer).await
}

#[tokio::test]
async fn ws_opens_with_connected_frame_naming_the_identity() {
    let server = TestServer::start(base_config()).await;
    let url = format!("{}/ws", server.ws_base);
    let mut ws = WsClient::connect(&url, Some(&token("42", HOUR))).await;
    assert_eq!(ws.next_text().await, CONNECTED_42);
}

#[tokio::test]
async fn ws_relays_published_text_verbatim() {
    const CASES: &[(&str, &str)] = &[
        ("json with odd spacing", r#"{ "n" :  1,"list":[1, 2 ,3] }"#),
        ("multi-line", "line one\nline two\r\nline three\n"),
        ("unicode", "h\u{e9}llo \u{1f30d} \u{65e5}\u{672c}"),
        ("empty", ""),
    ];
    let server = TestServer::start(base_config()).await;
    let mut ws = connect_ws(&server, "42").await;
    for (name, payload) in CASES {
        broker_publish(&server, "streams:42", *payload).await;
        assert_eq!(ws.next_text().await, *payload, "case {name}");
    }
}

#[tokio::test]
async fn ws_relays_payload_larger_than_the_write_buffer() {
    let server = TestServer::start(base_config()).await;
    let mut ws = connect_ws(&server, "42").await;
    let payload = "x".repeat(256 * 1024);
    broker_publish(&server, "streams:42", payload.clone()).await;
    let got = ws.next_text().await;
    assert!(got == payload, "256 KiB payload arrived as {} bytes", got.len());
}

#[tokio::test]
async fn ws_relays_non_utf8_redis_payload_as_binary_frame() {
    let redis = Redis::start().await;
    let server = TestServer::start(redis_config(&redis)).await;
    server.wait_ready(200).await;
    let mut ws = connect_ws(&server, "42").await;
    let payload: &[u8] = &[0xff, 0x00, 0xfe, b'a', 0x80];
    let mut conn = redis.conn().await;
    let receivers: i64 = ::redis::cmd("PUBLISH")
        .arg("streams:42")
        .arg(payload)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    match ws.next().await {
        Some(Message::Binary(data)) => assert_eq!(&data[..], payload),
        other => panic!("expected a binary frame, got {other:?}"),
    }
    // UTF-8 payloads still arrive as text on the same connection.
    assert_eq!(redis.publish("streams:42", "text again").await, 1);
    assert_eq!(ws.next_text().await, "text again");
}

#[tokio::test]
async fn ws_delivers_to_every_connection_of_an_identity_on_both_transports() {
    let server = TestServer::start(base_config()).await;
    let mut a = connect_ws(&server, "42").await;
    let mut b = connect_ws(&server, "42").await;
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&token("42", HOUR))).await;
    assert_eq!(sse.next_event().await.unwrap().event, "connected");
    assert_eq!(server.publish("42", serde_json::json!({"to": "all"})).await, 202);
    assert_eq!(a.next_text().await, r#"{"to":"all"}"#);
    assert_eq!(b.next_text().await, r#"{"to":"all"}"#);
    assert_eq!(sse.next_non_heartbeat().await.unwrap().data, r#"{"to":"all"}"#);
}

#[tokio::test]
async fn ws_never_receives_another_identitys_messages() {
    let server = TestServer::start(base_config()).await;
    let mut alice = connect_ws(&server, "alice").await;
    let mut bob = connect_ws(&server, "bob").await;
    broker_publish(&server, "streams:bob", "for bob").await;
    broker_publish(&server, "streams:alice", "for alice 1").await;
    broker_publish(&server, "streams:alice", "for alice 2").await;
    assert_eq!(alice.next_text().await, "for alice 1");
    assert_eq!(alice.next_text().await, "for alice 2");
    assert_eq!(bob.next_text().await, "for bob");
}

#[tokio::test]
async fn ws_publishes_inbound_text_and_binary_frames_verbatim() {
    let redis = Redis::start().await;
    let mut config = redis_config(&redis);
    config.relay.inbound_prefix = Some("inbound".into());
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;

    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("inbound:42").await.unwrap();
    let mut inbound = pubsub.into_on_message();

    let mut ws = connect_ws(&server, "42").await;
    let text = r#"{ "hello" : "server" }"#;
    let binary = vec![0x00, 0xff, 0x10, 0x80];
    ws.send_text(text).await;
    ws.send_binary(binary.clone()).await;

    for (name, expected) in [("text", text.as_bytes()), ("binary", &binary[..])] {
        let msg = tokio::time::timeout(DEADLINE, inbound.next())
            .await
            .unwrap_or_else(|_| panic!("{name} frame never reached inbound:42"))
            .expect("pubsub ended");
        assert_eq!(msg.get_channel_name(), "inbound:42", "{name} channel");
        assert_eq!(msg.get_payload_bytes(), expected, "{name} payload");
    }
    assert_eq!(
        metric(&server.base, "streamgate_relay_inbound_messages_total", "").await,
        2.0
    );
}

#[tokio::test]
async fn ws_drops_and_counts_inbound_frames_without_inbound_prefix() {
    let server = TestServer::start(base_config()).await;
    let mut ws = connect_ws(&server, "42").await;
    ws.send_text("nobody listens").await;
    ws.send_binary(vec![1, 2, 3]).await;
    eventually("two inbound frames counted as dropped", || async {
        metric(&server.base, "streamgate_relay_inbound_dropped_messages_total", "").await == 2.0
    })
    .await;
    broker_publish(&server, "streams:42", "still open").await;
    assert_eq!(ws.next_text().await, "still open");
}

#[tokio::test]
async fn ws_accepts_client_frame_of_exactly_max_message_size() {
    let mut config = base_config();
    config.relay.max_message_size_bytes = 64;
    let server = TestServer::start(config).await;
    let mut ws = connect_ws(&server, "42").await;
    ws.send_text(&"a".repeat(64)).await;
    ws.send_binary(vec![7; 64]).await;
    eventually("both frames handled", || async {
        metric(&server.base, "streamgate_relay_inbound_dropped_messages_total", "").await == 2.0
    })
    .await;
    broker_publish(&server, "streams:42", "still open").await;
    assert_eq!(ws.next_text().await, "still open");
}

#[tokio::test]
async fn ws_closes_1009_past_max_message_size() {
    // (case, max_message_size_bytes, frame)
    const CASES: &[(&str, usize, bool, usize)] = &[
        // (name, limit, binary?, size)
        ("text one byte over", 64, false, 65),
        ("binary one byte over", 64, true, 65),
        ("text far over the library backstop", 4096, false, 70_000),
    ];
    for &(name, limit, binary, size) in CASES {
        let mut config = base_config();
        config.relay.max_message_size_bytes = limit;
        let server = TestServer::start(config).await;
        let mut ws = connect_ws(&server, "42").await;
        if binary {
            ws.send_binary(vec![b'b'; size]).await;
        } else {
            ws.send_text(&"t".repeat(size)).await;
        }
        let (code, reason) = ws.expect_close().await;
        assert_eq!(code, 1009, "case {name}: reason {reason:?}");
    }
}

#[tokio::test]
async fn ws_closes_1007_on_invalid_utf8_text() {
    let server = TestServer::start(base_config()).await;
    let mut ws = connect_ws(&server, "42").await;
    let bad_text = Frame::message(vec![b'o', b'k', 0xc3, 0x28], OpCode::Data(Data::Text), true);
    ws.socket.send(Message::Frame(bad_text)).await.unwrap();
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 1007, "reason {reason:?}");
}

#[tokio::test]
async fn ws_pings_every_websocket_ping_seconds_and_stays_open_while_answered() {
    let mut config = base_config();
    config.relay.websocket_ping_seconds = 1;
    let server = TestServer::start(config).await;
    let mut ws = connect_ws(&server, "42").await;
    let opened = Instant::now();
    let mut pings = Vec::new();
    // tungstenite answers each ping with a pong as it reads; four pings means the
    // server saw the pongs (it closes after two unanswered ones).
    while pings.len() < 4 {
        match tokio::time::timeout(DEADLINE, ws.socket.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings.push(opened.elapsed()),
            Ok(Some(Ok(Message::Pong(_)))) => {}
            other => panic!("expected pings, got {other:?} after {:?}", opened.elapsed()),
        }
    }
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(500) && gap <= Duration::from_secs(3),
            "pings {gap:?} apart, expected about 1 s ({pings:?})"
        );
    }
    broker_publish(&server, "streams:42", "still open").await;
    assert_eq!(ws.next_text().await, "still open");
}

#[tokio::test]
async fn ws_closes_1008_after_two_unanswered_pings() {
    let mut config = base_config();
    config.relay.websocket_ping_seconds = 1;
    let server = TestServer::start(config).await;
    let mut raw = raw_ws(&server, &token("42", HOUR), None).await;
    let hello = raw.next_frame().await.expect("connected frame");
    assert_eq!(
        (hello.opcode, hello.payload.as_slice()),
        (OP_TEXT, CONNECTED_42.as_bytes())
    );
    let mut pings = Vec::new();
    let close = loop {
        let frame = raw.next_frame().await.expect("connection ended without a close frame");
        match frame.opcode {
            OP_PING => pings.push(Instant::now()),
            OP_CLOSE => break frame,
            other => panic!("unexpected opcode {other}"),
        }
        assert!(pings.len() <= 4, "still open after {} unanswered pings", pings.len());
    };
    let closed_at = Instant::now();
    assert!(pings.len() >= 2, "closed after {} ping(s)", pings.len());
    // Two missed pongs: the close comes about two intervals after the first
    // unanswered ping, not after the first one alone.
    let waited = closed_at - pings[0];
    assert!(
        waited >= Duration::from_millis(1500) && waited <= Duration::from_secs(4),
        "closed {waited:?} after the first unanswered ping, expected about 2 s"
    );
    let code = u16::from_be_bytes([close.payload[0], close.payload[1]]);
    assert_eq!(code, 1008, "reason {:?}", String::from_utf8_lossy(&close.payload[2..]));
    // The client never answers the close either: the server must drop the socket.
    assert!(
        raw.next_frame().await.is_none(),
        "the server must close the TCP connection"
    );
    eventually("websocket gauge back to 0", || async {
        ws_connections(&server).await == 0.0
    })
    .await;
}

#[tokio::test]
async fn ws_sends_auth_expired_then_closes_1008() {
    let server = TestServer::start(base_config()).await;
    let exp = unix_now() + 2;
    let token = token_with(serde_json::json!({ "sub": "42", "exp": exp }));
    let mut ws = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&token)).await;
    assert_eq!(ws.next_text().await, CONNECTED_42);
    assert_eq!(ws.next_text().await, r#"{"event":"auth_expired"}"#);
    assert!(
        unix_now() >= exp,
        "auth_expired arrived before exp ({} < {exp})",
        unix_now()
    );
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 1008, "reason {reason:?}");
}

#[tokio::test]
async fn ws_drop_client_policy_closes_slow_consumer_1008() {
    let mut config = base_config();
    config.relay.client_buffer_size = 1;
    config.relay.slow_consumer_policy = SlowConsumerPolicy::DropClient;
    let server = TestServer::start(config).await;
    let mut ws = connect_ws(&server, "42").await;
    let state = server.inner().state().clone();
    // A synchronous burst while the client reads nothing: the connection cannot
    // drain between dispatches, so the queue (capacity 1) overflows.
    for i in 0..10 {
        state.hub.dispatch("streams:42", Bytes::from(format!("burst {i}")));
    }
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    assert!(metric(&server.base, "streamgate_relay_slow_consumer_disconnects_total", "").await >= 1.0);
}

#[tokio::test]
async fn ws_drop_newest_policy_counts_drops_and_keeps_the_client() {
    let mut config = base_config();
    config.relay.client_buffer_size = 1;
    config.relay.slow_consumer_policy = SlowConsumerPolicy::DropNewestMessage;
    let server = TestServer::start(config).await;
    let mut ws = connect_ws(&server, "42").await;
    let state = server.inner().state().clone();
    for i in 0..10 {
        state.hub.dispatch("streams:42", Bytes::from(format!("burst {i}")));
    }
    assert!(
        metric(&server.base, "streamgate_relay_dropped_messages_total", "").await > 0.0,
        "drops must be counted"
    );
    assert_eq!(ws.next_text().await, "burst 0", "the queued message is kept");
    broker_publish(&server, "streams:42", "after the burst").await;
    assert_eq!(
        ws.next_text().await,
        "after the burst",
        "the client stays connected and receives later messages"
    );
}

#[tokio::test]
async fn ws_write_timeout_drops_a_client_that_never_reads() {
    let mut config = base_config();
    config.relay.websocket_write_timeout_ms = 300;
    config.relay.client_buffer_size = 4096;
    let server = TestServer::start(config).await;
    // Reads the handshake response, then never reads again.
    let _raw = raw_ws(&server, &token("42", HOUR), Some(4096)).await;
    eventually("websocket gauge at 1", || async {
        ws_connections(&server).await == 1.0
    })
    .await;
    let state = server.inner().state().clone();
    // 16 MiB in frames well under tungstenite's write buffer: more than the
    // kernel buffers of both ends can hold, so a write blocks.
    let chunk = Bytes::from("w".repeat(16 * 1024));
    for _ in 0..1024 {
        state.hub.dispatch("streams:42", chunk.clone());
    }
    eventually("the stuck connection is dropped", || async {
        ws_connections(&server).await == 0.0
    })
    .await;
}

#[tokio::test]
async fn ws_answers_a_close_the_client_starts() {
    let server = TestServer::start(base_config()).await;
    let mut ws = connect_ws(&server, "42").await;
    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    };
    ws.socket.send(Message::Close(Some(frame))).await.unwrap();
    // tungstenite yields the peer's reply as a Close message, then ends; a server
    // that just dropped the socket would surface as an error (1006) instead.
    let reply = tokio::time::timeout(DEADLINE, ws.socket.next())
        .await
        .expect("close reply in time");
    assert!(
        matches!(reply, Some(Ok(Message::Close(_)))),
        "expected the server's close reply, got {reply:?}"
    );
}

#[tokio::test]
async fn ws_upgrade_later_on_a_keep_alive_connection_works() {
    let server = TestServer::start(base_config()).await;
    let stream = keep_alive_connection(server.inner().addr(), None).await;
    let mut raw = RawWs::upgrade_on(stream, &format!("/ws?token={}", token("42", HOUR)), "", &[]).await;
    let hello = raw.next_frame().await.expect("connected frame");
    assert_eq!(
        (hello.opcode, hello.payload.as_slice()),
        (OP_TEXT, CONNECTED_42.as_bytes())
    );
    broker_publish(&server, "streams:42", "after keep-alive").await;
    let frame = raw.next_frame().await.expect("relayed frame");
    assert_eq!(frame.payload, b"after keep-alive");
}

#[tokio::test]
async fn ws_frame_sent_with_the_handshake_is_not_lost() {
    let server = TestServer::start(base_config()).await;
    let stream = tokio::net::TcpStream::connect(server.inner().addr()).await.unwrap();
    let ping = client_frame(OP_PING, b"early");
    let path = format!("/ws?token={}", token("42", HOUR));
    let mut raw = RawWs::upgrade_on(stream, &path, "", &ping).await;
    let hello = raw.next_frame().await.expect("connected frame");
    assert_eq!(hello.opcode, OP_TEXT);
    let pong = raw.next_frame().await.expect("pong");
    assert_eq!((pong.opcode, pong.payload.as_slice()), (OP_PONG, b"early".as_slice()));
}
