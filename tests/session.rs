//! The session proxy (issue 6, DESIGN.md "Session proxy"): wsproxy-compatible
//! WebSocket sessions bridged to Redis pub/sub, checked over real sockets against a
//! real redis-server. A "backend" here is a plain Redis client doing what a wsproxy
//! backend does: SET the session's auth token, SUBSCRIBE to `session:{id}:up`,
//! PUBLISH to `session:{id}:down`.

mod support;

use futures_util::future::join_all;
use futures_util::StreamExt;
use std::time::Duration;
use streamgate::config::SessionAuth;
use support::clients::WsConnect;
use support::session::*;
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Starts redis-server and an in-process node with the session proxy on.
async fn start(auth: SessionAuth) -> (Redis, TestServer) {
    let redis = Redis::start().await;
    let server = TestServer::start(session_config(&redis, auth)).await;
    server.wait_ready(200).await;
    (redis, server)
}

/// Connects to `session` with a `{session_id, iat}` JWT.
async fn connect_jwt(server: &TestServer, session: &str) -> WsClient {
    WsClient::connect(&session_url(&server.ws_base, session), Some(&session_jwt(session))).await
}

/// The refusal of an upgrade that must not succeed.
async fn refused(url: &str, bearer: Option<&str>) -> (u16, serde_json::Value) {
    match WsClient::try_connect(url, bearer).await {
        WsConnect::Refused(status, body) => (status, body),
        WsConnect::Open(_) => panic!("{url} upgraded but must be refused"),
    }
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!(r#"{{"{prefix}":{i}}}"#)).collect()
}

// === auth ===

#[tokio::test]
async fn jwt_with_session_id_and_iat_and_no_exp_connects_and_receives() {
    let (redis, server) = start(SessionAuth::Jwt).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    let mut backend = Backend::connect(&redis).await;
    assert_eq!(
        backend.publish_down("s-1", r#"{"hello":1}"#).await,
        1,
        "one node subscribed"
    );
    assert_eq!(ws.next_text().await, r#"{"hello":1}"#);
}

#[tokio::test]
async fn jwt_without_exp_is_refused_when_require_expiry_is_set() {
    let redis = Redis::start().await;
    let mut config = session_config(&redis, SessionAuth::Jwt);
    config.session.require_expiry = true;
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;
    let url = session_url(&server.ws_base, "s-1");
    let (status, _) = refused(&url, Some(&session_jwt("s-1"))).await;
    assert_eq!(status, 403);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let with_exp = token_with(serde_json::json!({ "session_id": "s-1", "iat": now, "exp": now + 60 }));
    let WsConnect::Open(_) = WsClient::try_connect(&url, Some(&with_exp)).await else {
        panic!("a token with exp must connect when require_expiry is set");
    };
}

#[tokio::test]
async fn redis_token_set_by_the_backend_connects_and_receives() {
    let (redis, server) = start(SessionAuth::RedisToken).await;
    let mut backend = Backend::connect(&redis).await;
    backend.set_token("s-1", "opaque-token-1").await;
    let mut ws = WsClient::connect(&session_url(&server.ws_base, "s-1"), Some("opaque-token-1")).await;
    assert_eq!(backend.publish_down("s-1", r#"{"hello":1}"#).await, 1);
    assert_eq!(ws.next_text().await, r#"{"hello":1}"#);
}

#[tokio::test]
async fn missing_bearer_header_is_401_even_with_a_valid_query_token() {
    for auth in [SessionAuth::Jwt, SessionAuth::RedisToken] {
        let (redis, server) = start(auth).await;
        Backend::connect(&redis).await.set_token("s-1", "opaque-token-1").await;
        let valid = match auth {
            SessionAuth::Jwt => session_jwt("s-1"),
            SessionAuth::RedisToken => "opaque-token-1".to_string(),
        };
        let url = session_url(&server.ws_base, "s-1");
        let (status, body) = refused(&url, None).await;
        assert_eq!(
            (status, &body["error"]),
            (401, &"missing token".into()),
            "{auth:?}: no header"
        );
        let (status, _) = refused(&format!("{url}?token={valid}"), None).await;
        assert_eq!(status, 401, "{auth:?}: a ?token= query must not count");
        assert_eq!(session_auth_failures(&server, "missing").await, 2.0, "{auth:?}");
    }
}

#[tokio::test]
async fn jwt_that_is_not_for_this_session_is_403_and_the_reason_is_only_counted() {
    let (_redis, server) = start(SessionAuth::Jwt).await;
    let url = session_url(&server.ws_base, "s-1");
    let wrong_key = {
        let key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-0123456789abcdef0123");
        let claims = serde_json::json!({ "session_id": "s-1", "iat": 1 });
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    let cases: &[(&str, String, &str)] = &[
        ("bad signature", wrong_key, "signature"),
        ("other session", session_jwt("s-2"), "session_mismatch"),
        ("no session claim", token("s-1", HOUR), "session_claim_missing"),
        ("malformed", "not.a.jwt".into(), "malformed"),
        ("wsproxy's invalid token", "invalid_token".into(), "malformed"),
    ];
    for (name, bearer, reason) in cases {
        let before = session_auth_failures(&server, reason).await;
        let (status, body) = refused(&url, Some(bearer)).await;
        assert_eq!(status, 403, "case {name}");
        assert_eq!(
            body,
            serde_json::json!({ "error": "forbidden" }),
            "case {name}: no detail echoed"
        );
        assert_eq!(
            session_auth_failures(&server, reason).await,
            before + 1.0,
            "case {name}: counted as {reason}"
        );
    }
    let total = metric(&server.base, "streamgate_session_auth_failures_total", "").await;
    assert_eq!(total, cases.len() as f64, "every refusal counted once");
}

#[tokio::test]
async fn wrong_or_missing_redis_token_is_403() {
    let (redis, server) = start(SessionAuth::RedisToken).await;
    let mut backend = Backend::connect(&redis).await;
    backend.set_token("s-1", "opaque-token-1").await;
    let cases = [
        ("wrong token", "s-1", "opaque-token-2", "wrong_token"),
        ("prefix of the token", "s-1", "opaque-token", "wrong_token"),
        ("no key for the session", "s-2", "opaque-token-1", "no_session_token"),
    ];
    for (name, session, bearer, reason) in cases {
        let before = session_auth_failures(&server, reason).await;
        let (status, body) = refused(&session_url(&server.ws_base, session), Some(bearer)).await;
        assert_eq!(status, 403, "case {name}");
        assert_eq!(body, serde_json::json!({ "error": "forbidden" }), "case {name}");
        assert_eq!(
            session_auth_failures(&server, reason).await,
            before + 1.0,
            "case {name}"
        );
    }
}

#[tokio::test]
async fn path_segment_outside_the_identity_alphabet_is_400() {
    let (_redis, server) = start(SessionAuth::Jwt).await;
    let long = "a".repeat(129);
    let cases = [
        ("star in session", format!("/{AGENT}/ws/%2A"), "*"),
        ("space in session", format!("/{AGENT}/ws/a%20b"), "a b"),
        ("colon in session", format!("/{AGENT}/ws/a%3Adown"), "a:down"),
        ("star in agent", "/a%2A/ws/s-1".to_string(), "s-1"),
        ("129 characters", format!("/{AGENT}/ws/{long}"), long.as_str()),
    ];
    for (name, path, session) in cases {
        let url = format!("{}{path}", server.ws_base);
        let (status, body) = refused(&url, Some(&session_jwt(session))).await;
        assert_eq!((status, &body["error"]), (400, &"invalid path".into()), "case {name}");
        let (status, _) = refused(&url, None).await;
        assert_eq!(status, 400, "case {name}: the path is checked before the token");
    }
    let ok = format!("{}/{AGENT}/ws/{}", server.ws_base, "a".repeat(128));
    let WsConnect::Open(_) = WsClient::try_connect(&ok, Some(&session_jwt(&"a".repeat(128)))).await else {
        panic!("128 characters are allowed");
    };
}

// === limits and readiness ===

#[tokio::test]
async fn second_client_over_max_connections_per_session_is_429_until_the_first_leaves() {
    let redis = Redis::start().await;
    let mut config = session_config(&redis, SessionAuth::Jwt);
    config.session.max_connections_per_session = 1;
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;
    let url = session_url(&server.ws_base, "s-1");
    let mut first = connect_jwt(&server, "s-1").await;
    // The first connection is running (not just upgraded): its lease must hold.
    Backend::connect(&redis).await.publish_down("s-1", "{}").await;
    assert_eq!(first.next_text().await, "{}");
    let (status, body) = refused(&url, Some(&session_jwt("s-1"))).await;
    assert_eq!((status, &body["error"]), (429, &"too many connections".into()));
    let WsConnect::Open(_) =
        WsClient::try_connect(&session_url(&server.ws_base, "s-2"), Some(&session_jwt("s-2"))).await
    else {
        panic!("the limit is per session");
    };
    first.socket.close(None).await.unwrap();
    eventually("a new client once the first left", || {
        ws_admitted(url.clone(), session_jwt("s-1"))
    })
    .await;
}

#[tokio::test]
async fn stopped_redis_refuses_upgrades_with_503_and_ready_says_why() {
    let (mut redis, server) = start(SessionAuth::Jwt).await;
    let ready: serde_json::Value = reqwest::get(format!("{}/ready", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["broker"], "connected");
    redis.stop();
    server.wait_ready(503).await;
    let ready: serde_json::Value = reqwest::get(format!("{}/ready", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["broker"], "disconnected");
    let (status, body) = refused(&session_url(&server.ws_base, "s-1"), Some(&session_jwt("s-1"))).await;
    assert_eq!((status, &body["error"]), (503, &"not ready".into()));
}

// === frames ===

#[tokio::test]
async fn client_message_over_max_message_size_closes_1009() {
    let redis = Redis::start().await;
    let mut config = session_config(&redis, SessionAuth::Jwt);
    config.session.max_message_size_bytes = 64;
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;
    let mut up_listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    let fits = format!(r#"{{"a":"{}"}}"#, "x".repeat(64 - 8));
    assert_eq!(fits.len(), 64);
    ws.send_text(&fits).await;
    assert_eq!(up_listener.next_payload().await, fits, "exactly the limit is accepted");
    let too_big = format!(r#"{{"a":"{}"}}"#, "x".repeat(64 - 7));
    ws.send_text(&too_big).await;
    assert_eq!(ws.expect_close().await.0, 1009);
}

#[tokio::test]
async fn thousand_messages_each_way_keep_their_order() {
    let (redis, server) = start(SessionAuth::Jwt).await;
    let mut up_listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    let mut backend = Backend::connect(&redis).await;
    let downs = numbered("down", 1000);
    let ups = numbered("up", 1000);
    let publish = async {
        for m in &downs {
            backend.publish_down("s-1", m).await;
        }
    };
    let send_and_receive = async {
        let mut got = Vec::with_capacity(downs.len());
        for m in &ups {
            ws.send_text(m).await;
        }
        while got.len() < downs.len() {
            got.push(ws.next_text().await);
        }
        got
    };
    let (_, got_down, got_up) = tokio::join!(publish, send_and_receive, up_listener.take(ups.len()));
    assert!(
        got_down == downs,
        "down order broken: first diff at {:?}",
        first_diff(&got_down, &downs)
    );
    assert!(
        got_up == ups,
        "up order broken: first diff at {:?}",
        first_diff(&got_up, &ups)
    );
    assert_eq!(
        metric(&server.base, "streamgate_session_frames_total", r#"direction="down""#).await,
        1000.0
    );
    assert_eq!(
        metric(&server.base, "streamgate_session_frames_total", r#"direction="up""#).await,
        1000.0
    );
}

fn first_diff(got: &[String], want: &[String]) -> Option<usize> {
    (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i))
}

#[tokio::test]
async fn down_messages_arrive_verbatim_and_non_utf8_as_a_binary_frame() {
    let (redis, server) = start(SessionAuth::Jwt).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    let mut backend = Backend::connect(&redis).await;
    for text in [r#"{ "spaced" :  1 }"#, "not json at all", "line\nbreak \u{1f30d}", ""] {
        backend.publish_down("s-1", text).await;
        assert_eq!(ws.next_text().await, text, "text {text:?} relayed verbatim");
    }
    let mut conn = redis.conn().await;
    let bytes = vec![0xff, 0x00, 0xfe];
    ::redis::cmd("PUBLISH")
        .arg(down("s-1"))
        .arg(bytes.clone())
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    match ws.next().await {
        Some(tokio_tungstenite::tungstenite::Message::Binary(got)) => assert_eq!(got.to_vec(), bytes),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

#[tokio::test]
async fn ten_thousand_messages_in_one_pipeline_to_one_session_all_arrive_in_order() {
    let (redis, server) = start(SessionAuth::Jwt).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    let payloads = numbered("seq", 10_000);
    let messages: Vec<(String, String)> = payloads.iter().map(|p| (down("s-1"), p.clone())).collect();
    let mut backend = Backend::connect(&redis).await;
    let read = async {
        let mut got = Vec::with_capacity(payloads.len());
        while got.len() < payloads.len() {
            got.push(ws.next_text().await);
        }
        got
    };
    let (_, got) = tokio::join!(backend.publish_pipeline(&messages), read);
    assert!(
        got == payloads,
        "lost or reordered: first diff at {:?}",
        first_diff(&got, &payloads)
    );
}

#[tokio::test]
async fn ten_thousand_messages_in_one_pipeline_over_fifty_sessions_all_arrive_in_order_per_session() {
    const SESSIONS: usize = 50;
    const EACH: usize = 200;
    let (redis, server) = start(SessionAuth::Jwt).await;
    let sessions: Vec<String> = (0..SESSIONS).map(|i| format!("s-{i}")).collect();
    let mut clients = Vec::new();
    for s in &sessions {
        clients.push(connect_jwt(&server, s).await);
    }
    // Interleaved: s-0 #0, s-1 #0, …, s-49 #0, s-0 #1, …
    let mut messages = Vec::with_capacity(SESSIONS * EACH);
    for i in 0..EACH {
        for s in &sessions {
            messages.push((down(s), format!(r#"{{"session":"{s}","seq":{i}}}"#)));
        }
    }
    let mut backend = Backend::connect(&redis).await;
    let reads = clients.iter_mut().zip(&sessions).map(|(ws, s)| async move {
        let want: Vec<String> = (0..EACH).map(|i| format!(r#"{{"session":"{s}","seq":{i}}}"#)).collect();
        let mut got = Vec::with_capacity(EACH);
        while got.len() < EACH {
            got.push(ws.next_text().await);
        }
        assert!(got == want, "{s}: lost or reordered at {:?}", first_diff(&got, &want));
    });
    tokio::join!(backend.publish_pipeline(&messages), join_all(reads));
    let down_frames = metric(&server.base, "streamgate_session_frames_total", r#"direction="down""#).await;
    assert_eq!(down_frames, (SESSIONS * EACH) as f64);
}

#[tokio::test]
async fn all_up_channel_publishes_of_a_node_share_one_redis_connection() {
    const CLIENTS: usize = 20;
    const EACH: usize = 50;
    let (redis, server) = start(SessionAuth::Jwt).await;
    let sessions: Vec<String> = (0..=CLIENTS).map(|i| format!("s-{i}")).collect();
    let channels: Vec<String> = sessions.iter().map(|s| up(s)).collect();
    let mut listener = Listener::subscribe(&redis, &channels).await;
    let mut backend = Backend::connect(&redis).await;
    // Warm up: the node's publish connection exists after its first publish.
    let mut first = connect_jwt(&server, &sessions[0]).await;
    first.send_text(r#"{"warm":"up"}"#).await;
    assert_eq!(
        listener.next().await,
        (up(&sessions[0]), r#"{"warm":"up"}"#.to_string())
    );
    let open_before = backend.client_count().await;
    let accepted_before = backend.connections_received().await;

    let mut clients = Vec::new();
    for s in &sessions[1..] {
        clients.push(connect_jwt(&server, s).await);
    }
    let sends = clients.iter_mut().zip(&sessions[1..]).map(|(ws, s)| async move {
        for i in 0..EACH {
            ws.send_text(&format!(r#"{{"from":"{s}","seq":{i}}}"#)).await;
        }
    });
    let (_, received) = tokio::join!(join_all(sends), listener.take(CLIENTS * EACH));
    for s in &sessions[1..] {
        let from: Vec<&String> = received.iter().filter(|m| m.contains(&format!(r#""{s}""#))).collect();
        assert_eq!(from.len(), EACH, "{s}: every message published");
    }

    let open_after = backend.client_count().await;
    let accepted_after = backend.connections_received().await;
    assert_eq!(
        open_after, open_before,
        "open Redis connections grew with {CLIENTS} clients × {EACH} messages"
    );
    assert_eq!(
        accepted_after, accepted_before,
        "Redis accepted new connections while clients published (one per client or message?)"
    );
    // Ours are the listener and the backend; the node has its one subscription and
    // its one command connection.
    assert!(
        open_before <= 4,
        "{open_before} connections open: the node holds more than two"
    );
}

#[tokio::test]
async fn invalid_json_gets_an_error_frame_and_the_connection_stays_open() {
    let (redis, server) = start(SessionAuth::Jwt).await;
    let mut up_listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    for bad in ["this is not json", r#"{"unterminated":"#, ""] {
        ws.send_text(bad).await;
        assert_eq!(
            ws.next_text().await,
            r#"{"error":"Invalid JSON format"}"#,
            "for {bad:?}"
        );
    }
    let good = r#"{ "type" : "request", "id": 1 }"#;
    ws.send_text(good).await;
    assert_eq!(
        up_listener.next_payload().await,
        good,
        "valid JSON goes up verbatim afterwards"
    );
    assert_eq!(
        metric(&server.base, "streamgate_session_json_rejections_total", "").await,
        3.0
    );
}

#[tokio::test]
async fn binary_frame_gets_an_error_frame_and_the_connection_stays_open() {
    let (redis, server) = start(SessionAuth::Jwt).await;
    let mut up_listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    ws.send_binary(br#"{"valid":"json","but":"binary"}"#.to_vec()).await;
    assert_eq!(ws.next_text().await, r#"{"error":"Binary messages are not supported"}"#);
    ws.send_text(r#"{"after":"binary"}"#).await;
    assert_eq!(up_listener.next_payload().await, r#"{"after":"binary"}"#);
    assert_eq!(
        metric(&server.base, "streamgate_session_json_rejections_total", "").await,
        1.0
    );
}

#[tokio::test]
async fn without_require_json_any_text_and_binary_go_up_verbatim() {
    let redis = Redis::start().await;
    let mut config = session_config(&redis, SessionAuth::Jwt);
    config.session.require_json = false;
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(up("s-1")).await.unwrap();
    let mut messages = pubsub.into_on_message();
    let mut ws = connect_jwt(&server, "s-1").await;
    ws.send_text("plain text").await;
    ws.send_binary(vec![0, 159, 146, 150]).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let msg = tokio::time::timeout(DEADLINE, messages.next()).await.unwrap().unwrap();
        got.push(msg.get_payload_bytes().to_vec());
    }
    assert_eq!(got, [b"plain text".to_vec(), vec![0, 159, 146, 150]]);
}

// === lifecycle ===

#[tokio::test]
async fn several_clients_on_one_session_all_receive() {
    let (redis, server) = start(SessionAuth::RedisToken).await;
    let mut backend = Backend::connect(&redis).await;
    backend.set_token("s-1", "opaque-token-1").await;
    let url = session_url(&server.ws_base, "s-1");
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(WsClient::connect(&url, Some("opaque-token-1")).await);
    }
    assert_eq!(
        backend.publish_down("s-1", r#"{"to":"all"}"#).await,
        1,
        "one subscription per node"
    );
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_eq!(ws.next_text().await, r#"{"to":"all"}"#, "client {i}");
    }
}

#[tokio::test]
async fn reconnecting_with_the_same_token_works_at_once() {
    for auth in [SessionAuth::Jwt, SessionAuth::RedisToken] {
        let (redis, server) = start(auth).await;
        let mut backend = Backend::connect(&redis).await;
        backend.set_token("s-1", "opaque-token-1").await;
        let bearer = match auth {
            SessionAuth::Jwt => session_jwt("s-1"),
            SessionAuth::RedisToken => "opaque-token-1".into(),
        };
        let url = session_url(&server.ws_base, "s-1");
        let mut ws = WsClient::connect(&url, Some(&bearer)).await;
        backend.publish_down("s-1", r#"{"n":1}"#).await;
        assert_eq!(ws.next_text().await, r#"{"n":1}"#, "{auth:?}");
        drop(ws); // the socket just goes away, as when a network drops
        let mut ws = WsClient::connect(&url, Some(&bearer)).await;
        backend.publish_down("s-1", r#"{"n":2}"#).await;
        assert_eq!(ws.next_text().await, r#"{"n":2}"#, "{auth:?}: after reconnecting");
    }
}

#[tokio::test]
async fn two_nodes_on_one_redis_both_deliver_a_single_publish() {
    let redis = Redis::start().await;
    let a = TestServer::start(session_config(&redis, SessionAuth::RedisToken)).await;
    let b = TestServer::start(session_config(&redis, SessionAuth::RedisToken)).await;
    a.wait_ready(200).await;
    b.wait_ready(200).await;
    let mut backend = Backend::connect(&redis).await;
    backend.set_token("s-1", "opaque-token-1").await;
    let mut on_a = WsClient::connect(&session_url(&a.ws_base, "s-1"), Some("opaque-token-1")).await;
    let mut on_b = WsClient::connect(&session_url(&b.ws_base, "s-1"), Some("opaque-token-1")).await;
    assert_eq!(
        backend.publish_down("s-1", r#"{"once":true}"#).await,
        2,
        "each node holds one pattern subscription"
    );
    assert_eq!(on_a.next_text().await, r#"{"once":true}"#);
    assert_eq!(on_b.next_text().await, r#"{"once":true}"#);

    // Either node's client reaches the one backend listener.
    let mut listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    on_a.send_text(r#"{"from":"a"}"#).await;
    assert_eq!(listener.next_payload().await, r#"{"from":"a"}"#);
    on_b.send_text(r#"{"from":"b"}"#).await;
    assert_eq!(listener.next_payload().await, r#"{"from":"b"}"#);
}

#[tokio::test]
async fn redis_restart_while_a_session_is_open_resumes_both_ways_once_ready() {
    let (mut redis, server) = start(SessionAuth::Jwt).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    Backend::connect(&redis)
        .await
        .publish_down("s-1", r#"{"before":1}"#)
        .await;
    assert_eq!(ws.next_text().await, r#"{"before":1}"#);
    let mut listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    ws.send_text(r#"{"up":"before"}"#).await;
    assert_eq!(
        listener.next_payload().await,
        r#"{"up":"before"}"#,
        "publish connection in use"
    );
    drop(listener);

    redis.stop();
    server.wait_ready(503).await;
    redis.restart().await;
    server.wait_ready(200).await;

    let mut backend = Backend::connect(&redis).await;
    assert_eq!(
        backend.publish_down("s-1", r#"{"after":1}"#).await,
        1,
        "node resubscribed"
    );
    assert_eq!(
        ws.next_text().await,
        r#"{"after":1}"#,
        "the open session receives again"
    );
    let mut listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    ws.send_text(r#"{"up":"after restart"}"#).await;
    assert_eq!(
        listener.next_payload().await,
        r#"{"up":"after restart"}"#,
        "the first message after recovery goes up"
    );
}

#[tokio::test]
async fn unanswered_ping_closes_the_session_1008() {
    let redis = Redis::start().await;
    let mut config = session_config(&redis, SessionAuth::Jwt);
    config.session.ping_seconds = 1;
    config.session.ping_timeout_seconds = 1;
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;
    let path = format!("/{AGENT}/ws/s-1");
    let mut raw = raw_session(server.inner().addr(), &path, &session_jwt("s-1")).await;
    let started = std::time::Instant::now();
    let first = raw.next_frame().await.expect("a ping");
    assert_eq!(first.opcode, 0x9, "first frame is a ping");
    let close = loop {
        let frame = raw.next_frame().await.expect("a close frame before EOF");
        if frame.opcode == 0x8 {
            break frame;
        }
    };
    assert_eq!(close.close_code(), Some(1008));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed before the timeout"
    );
}

#[tokio::test]
async fn in_process_shutdown_closes_sessions_with_1001() {
    let (_redis, server) = start(SessionAuth::Jwt).await;
    let mut ws = connect_jwt(&server, "s-1").await;
    let base = server.base.clone();
    let url = session_url(&server.ws_base, "s-1");
    let ((code, _), ()) = tokio::join!(ws.expect_close(), server.shutdown());
    assert_eq!(code, 1001);
    assert!(reqwest::get(format!("{base}/health")).await.is_err(), "listener closed");
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(refused.is_err(), "no upgrade after shutdown");
}

#[tokio::test]
async fn sigterm_closes_sessions_with_1001_and_the_binary_exits_cleanly() {
    let redis = Redis::start().await;
    let server = BinaryServer::start(&session_config(&redis, SessionAuth::Jwt)).await;
    let url = session_url(&server.ws_base, "s-1");
    let mut server = server;
    let mut ws = WsClient::connect(&url, Some(&session_jwt("s-1"))).await;
    Backend::connect(&redis)
        .await
        .publish_down("s-1", r#"{"before":"term"}"#)
        .await;
    assert_eq!(ws.next_text().await, r#"{"before":"term"}"#);
    server.signal("TERM");
    assert_eq!(ws.expect_close().await.0, 1001);
    let status = server.wait_exit(DEADLINE).await;
    assert!(status.success(), "exit {status}; stderr:\n{}", server.stderr.text());
}

#[tokio::test]
async fn stats_and_metrics_count_session_connections_frames_and_rejections() {
    let (redis, server) = start(SessionAuth::Jwt).await;
    let mut listener = Listener::subscribe(&redis, &[up("s-1")]).await;
    let mut a = connect_jwt(&server, "s-1").await;
    let _b = connect_jwt(&server, "s-1").await;
    let stats: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/stats", server.base))
        .bearer_auth(token("ops", HOUR))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["session_connections"], 2);
    assert_eq!(metric(&server.base, "streamgate_session_connections", "").await, 2.0);
    Backend::connect(&redis).await.publish_down("s-1", r#"{"d":1}"#).await;
    assert_eq!(a.next_text().await, r#"{"d":1}"#);
    a.send_text("nope").await;
    assert_eq!(a.next_text().await, r#"{"error":"Invalid JSON format"}"#);
    a.send_text(r#"{"u":1}"#).await;
    assert_eq!(listener.next_payload().await, r#"{"u":1}"#);
    eventually("two down frames counted (one per client)", || async {
        metric(&server.base, "streamgate_session_frames_total", r#"direction="down""#).await == 2.0
    })
    .await;
    assert_eq!(
        metric(&server.base, "streamgate_session_frames_total", r#"direction="up""#).await,
        1.0
    );
    assert_eq!(
        metric(&server.base, "streamgate_session_json_rejections_total", "").await,
        1.0
    );
    drop(a);
    eventually("the gauge follows a disconnect", || async {
        metric(&server.base, "streamgate_session_connections", "").await == 1.0
    })
    .await;
}

// === wsproxy compatibility ===

/// wsproxy's own integration scenarios (its `test_wsproxy.py`: health, connect,
/// auth failure, Redis → WS, WS → Redis, bidirectional) with its values, against the
/// real binary configured only through environment variables as
/// docs/session-proxy.md tells a wsproxy user to. wsproxy's tests expect port 4040;
/// it is used when free (a free port otherwise, as other tests may hold it).
#[tokio::test]
async fn wsproxy_integration_scenarios_pass_against_streamgate() {
    const AGENT_ID: &str = "test-agent";
    const SESSION: &str = "test-session-123";
    const TOKEN: &str = "test-token-secret";
    let redis = Redis::start().await;
    let port = if std::net::TcpListener::bind("127.0.0.1:4040").is_ok() {
        4040
    } else {
        free_port()
    };
    let port_text = port.to_string();
    let redis_url = redis.url();
    let env = [
        ("STREAMGATE__SERVER__HOST", "127.0.0.1"),
        ("STREAMGATE__SERVER__PORT", port_text.as_str()),
        ("STREAMGATE__SERVER__HEALTH_STATUS", "healthy"),
        ("STREAMGATE__SERVER__SHUTDOWN_TIMEOUT_SECONDS", "30"),
        ("STREAMGATE__BROKER__KIND", "redis"),
        ("STREAMGATE__BROKER__REDIS__URL", redis_url.as_str()),
        ("STREAMGATE__AUTH__JWT_SECRET", SECRET),
        ("STREAMGATE__RELAY__ENABLED", "false"),
        ("STREAMGATE__SESSION__ENABLED", "true"),
        ("STREAMGATE__SESSION__AUTH", "redis_token"),
        ("STREAMGATE__SESSION__PING_SECONDS", "15"),
        ("STREAMGATE__SESSION__PING_TIMEOUT_SECONDS", "30"),
        ("STREAMGATE__SESSION__MAX_MESSAGE_SIZE_BYTES", "1048576"),
        ("STREAMGATE__LOGGING__LEVEL", "info"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(&["serve".to_string()], &env, port, dir).await;
    let ws_base = format!("ws://localhost:{port}");
    let endpoint = format!("{ws_base}/{AGENT_ID}/ws/{SESSION}");
    let mut backend = Backend::connect(&redis).await;

    // check_health: 200 and {"status": "healthy"}
    let health = reqwest::get(format!("http://localhost:{port}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "healthy");
    let ready = reqwest::get(format!("http://localhost:{port}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200, "ready once the broker subscription is live");

    // test_websocket_connection
    backend.set_token(SESSION, TOKEN).await;
    let ws = WsClient::connect(&endpoint, Some(TOKEN)).await;
    drop(ws);

    // test_auth_failure: "Bearer invalid_token" on a session without a token
    let no_token = format!("{ws_base}/{AGENT_ID}/ws/no-token-session");
    let (status, _) = refused(&no_token, Some("invalid_token")).await;
    assert!(status == 401 || status == 403, "auth failure answered {status}");

    // test_redis_to_websocket
    let mut ws = WsClient::connect(&endpoint, Some(TOKEN)).await;
    let sent = serde_json::json!({ "type": "test", "data": "Hello from Redis" });
    backend.publish_down(SESSION, &sent.to_string()).await;
    let got: serde_json::Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(got, sent);
    drop(ws);

    // test_websocket_to_redis
    let mut listener = Listener::subscribe(&redis, &[up(SESSION)]).await;
    let mut ws = WsClient::connect(&endpoint, Some(TOKEN)).await;
    let sent = serde_json::json!({ "type": "test", "data": "Hello from WebSocket" });
    ws.send_text(&sent.to_string()).await;
    let got: serde_json::Value = serde_json::from_str(&listener.next_payload().await).unwrap();
    assert_eq!(got, sent);
    drop(ws);

    // test_bidirectional
    let mut ws = WsClient::connect(&endpoint, Some(TOKEN)).await;
    let msg1 = serde_json::json!({ "type": "ping", "id": 1 });
    ws.send_text(&msg1.to_string()).await;
    let got: serde_json::Value = serde_json::from_str(&listener.next_payload().await).unwrap();
    assert_eq!(got, msg1);
    let msg2 = serde_json::json!({ "type": "pong", "id": 2 });
    backend.publish_down(SESSION, &msg2.to_string()).await;
    let got: serde_json::Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(got, msg2);

    // wsproxy's Rust tests: invalid JSON gets an error frame mentioning "Invalid JSON",
    // and a 100 KiB message (under MAX_MESSAGE_SIZE_BYTES = 1 MiB) goes up.
    ws.send_text("this is not json").await;
    assert!(ws.next_text().await.contains("Invalid JSON"));
    let big = format!(r#"{{"data":"{}"}}"#, "x".repeat(100 * 1024));
    ws.send_text(&big).await;
    assert!(listener.next_payload().await == big, "100 KiB message forwarded");
    drop(server);
}

#[tokio::test]
async fn a_session_jwt_with_exp_ends_the_connection_when_it_expires() {
    let redis = Redis::start().await;
    let server = TestServer::start(session_config(&redis, SessionAuth::Jwt)).await;
    server.wait_ready(200).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = now + 2;
    let token = token_with(serde_json::json!({ "session_id": "s-exp", "iat": now, "exp": exp }));
    let mut ws = WsClient::connect(&session_url(&server.ws_base, "s-exp"), Some(&token)).await;
    assert_eq!(ws.next_text().await, r#"{"event":"auth_expired"}"#);
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "auth expired"));
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(after >= exp, "closed at exp, not before ({after} < {exp})");
}
