//! Auth over a connection's whole life, over real sockets: a revocation posted on one
//! node ends the open SSE and WebSocket connections it covers on every node (real
//! Redis between two nodes, and the memory broker on one), and `auth.refresh` keeps a
//! connection open past its token's `exp` by asking a real HTTP token endpoint.

mod support;

use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use streamgate::config::{BrokerKind, Config};
use support::idp::{Answer, Idp};
use support::*;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------- helpers

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An HS256 token of `sub` issued now, expiring `ttl` seconds from now; returns it
/// with its `exp`.
fn token_for(sub: &str, jti: &str, ttl: u64) -> (String, u64) {
    let exp = now() + ttl;
    let token = token_with(json!({ "sub": sub, "iat": now(), "exp": exp, "jti": jti }));
    (token, exp)
}

async fn revoke(node: &TestServer, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/admin/revoke", node.base))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "revoke {body}: {answer}");
}

async fn provider_calls(server: &TestServer, result: &str) -> f64 {
    let labels = format!("call=\"refresh\",result=\"{result}\"");
    metric(&server.base, "streamgate_auth_provider_calls_total", &labels).await
}

async fn open_sse(server: &TestServer, token: &str, headers: &[(&str, &str)]) -> SseClient {
    open_sse_at(&format!("{}/events", server.base), token, headers).await
}

async fn open_sse_at(url: &str, token: &str, headers: &[(&str, &str)]) -> SseClient {
    let mut sse = SseClient::connect_with(url, Some(token), headers).await;
    assert_eq!(sse.status, 200, "{:?}", sse.error_body);
    let hello = sse.next_non_heartbeat().await.expect("a connected event");
    assert_eq!(hello.event, "connected");
    sse
}

async fn open_ws(server: &TestServer, token: &str, headers: &[(&str, &str)]) -> WsClient {
    open_ws_at(&format!("{}/ws", server.ws_base), token, headers).await
}

async fn open_ws_at(url: &str, token: &str, headers: &[(&str, &str)]) -> WsClient {
    let mut ws = WsClient::connect_with(url, Some(token), headers).await;
    let hello: Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(hello["event"], "connected");
    ws
}

/// The next SSE event is `revoked` with `{}`, and then the stream ends.
async fn expect_sse_revoked(sse: &mut SseClient, what: &str) {
    let event = sse
        .next_non_heartbeat()
        .await
        .unwrap_or_else(|| panic!("{what}: ended silently"));
    assert_eq!((event.event.as_str(), event.data.as_str()), ("revoked", "{}"), "{what}");
    assert_eq!(sse.next_event().await, None, "{what}: the stream ends after revoked");
}

/// The next WebSocket message is the close 1008 `Token revoked`.
async fn expect_ws_revoked(ws: &mut WsClient, what: &str) {
    match ws.next().await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(
                (u16::from(frame.code), frame.reason.as_str()),
                (1008, "Token revoked"),
                "{what}"
            );
        }
        other => panic!("{what}: expected close 1008 Token revoked, got {other:?}"),
    }
}

/// The next SSE event is `auth_expired`, not before `exp`, and then the stream ends.
async fn expect_sse_expired_at(sse: &mut SseClient, exp: u64, what: &str) {
    let event = sse
        .next_non_heartbeat()
        .await
        .unwrap_or_else(|| panic!("{what}: ended silently"));
    let at = now_ms();
    assert_eq!(event.event, "auth_expired", "{what}: {event:?}");
    assert!(
        at >= exp * 1000,
        "{what}: auth_expired {} ms before exp",
        exp * 1000 - at
    );
    assert_eq!(
        sse.next_event().await,
        None,
        "{what}: the stream ends after auth_expired"
    );
}

/// The next WebSocket frames are `{"event":"auth_expired"}`, not before `exp`, then
/// close 1008 `auth expired`.
async fn expect_ws_expired_at(ws: &mut WsClient, exp: u64, what: &str) {
    let text = ws.next_text().await;
    let at = now_ms();
    assert_eq!(text, r#"{"event":"auth_expired"}"#, "{what}");
    assert!(
        at >= exp * 1000,
        "{what}: auth_expired {} ms before exp",
        exp * 1000 - at
    );
    assert_eq!(ws.expect_close().await, (1008, "auth expired".to_string()), "{what}");
}

// ---------------------------------------------------------------- revocation

/// One node's connections of identity 42: SSE and WebSocket with the token whose
/// `jti` is "a", and the same with "b".
struct Clients {
    sse_a: SseClient,
    ws_a: WsClient,
    sse_b: SseClient,
    ws_b: WsClient,
}

/// Opens [`Clients`] on every node, revokes `jti` "a" on the first node, checks that
/// exactly the "a" connections end everywhere while the "b" ones still relay, then
/// revokes everything of 42 issued before now + 1 and checks that the rest end.
async fn revocations_end_the_connections_they_cover(nodes: &[TestServer]) {
    let (a, _) = token_for("42", "a", 300);
    let (b, _) = token_for("42", "b", 300);
    let mut clients = Vec::new();
    for node in nodes {
        clients.push(Clients {
            sse_a: open_sse(node, &a, &[]).await,
            ws_a: open_ws(node, &a, &[]).await,
            sse_b: open_sse(node, &b, &[]).await,
            ws_b: open_ws(node, &b, &[]).await,
        });
    }

    revoke(&nodes[0], json!({ "sub": "42", "jti": "a" })).await;
    for (i, c) in clients.iter_mut().enumerate() {
        expect_sse_revoked(&mut c.sse_a, &format!("node {i}: SSE of jti a")).await;
        expect_ws_revoked(&mut c.ws_a, &format!("node {i}: WS of jti a")).await;
    }

    // Had "b" been closed too, its next event would be the revocation, not this.
    assert_eq!(nodes[0].publish("42", json!({ "still": "open" })).await, 202);
    for (i, c) in clients.iter_mut().enumerate() {
        let event = c.sse_b.next_non_heartbeat().await.expect("SSE of jti b is open");
        assert_eq!(
            (event.event.as_str(), event.data.as_str()),
            ("message", r#"{"still":"open"}"#),
            "node {i}: SSE of jti b"
        );
        assert_eq!(c.ws_b.next_text().await, r#"{"still":"open"}"#, "node {i}: WS of jti b");
    }

    revoke(&nodes[0], json!({ "sub": "42", "before": now() + 1 })).await;
    for (i, c) in clients.iter_mut().enumerate() {
        expect_sse_revoked(&mut c.sse_b, &format!("node {i}: SSE of jti b, issued before")).await;
        expect_ws_revoked(&mut c.ws_b, &format!("node {i}: WS of jti b, issued before")).await;
    }
}

#[tokio::test]
async fn a_revocation_on_one_node_ends_the_open_connections_it_covers_on_both_nodes() {
    let redis = Redis::start().await;
    let node = || {
        let mut c = base_config();
        c.broker.kind = BrokerKind::Redis;
        c.broker.redis.url = redis.url();
        c
    };
    let nodes = [TestServer::start(node()).await, TestServer::start(node()).await];
    for node in &nodes {
        node.wait_ready(200).await;
    }
    revocations_end_the_connections_they_cover(&nodes).await;
}

#[tokio::test]
async fn a_revocation_ends_the_open_connections_it_covers_with_the_memory_broker() {
    let nodes = [TestServer::start(base_config()).await];
    revocations_end_the_connections_they_cover(&nodes).await;
}

#[tokio::test]
async fn a_revocation_leaves_other_identities_connected() {
    let server = TestServer::start(base_config()).await;
    let (other, _) = token_for("43", "a", 300);
    let mut sse = open_sse(&server, &other, &[]).await;
    let mut ws = open_ws(&server, &other, &[]).await;
    revoke(&server, json!({ "sub": "42", "jti": "a" })).await;
    revoke(&server, json!({ "sub": "42", "before": now() + 1 })).await;
    assert_eq!(server.publish("43", json!({ "n": 1 })).await, 202);
    assert_eq!(sse.next_non_heartbeat().await.unwrap().data, r#"{"n":1}"#);
    assert_eq!(ws.next_text().await, r#"{"n":1}"#);
}

// ---------------------------------------------------------------- refresh

/// Tokens live about 3 s here (`exp` is whole seconds: 2–3 s), so a refresh 2 s
/// before `exp` happens within a second of connecting.
const SHORT_TTL: u64 = 3;
const LEAD_SECONDS: u64 = 2;
const REFRESH_HEADER: (&str, &str) = ("X-Refresh-Token", "r1");

/// A relay server refreshing tokens at `idp`'s `/token`, `LEAD_SECONDS` before `exp`.
fn refresh_config(idp: &Idp) -> Config {
    let mut c = base_config();
    c.auth.allow_private_endpoints = true;
    c.auth.refresh.url = Some(format!("{}/token", idp.base));
    c.auth.refresh.interval_seconds = LEAD_SECONDS;
    c
}

/// A provider whose `/token` answers with a token of `sub` valid for a minute; returns
/// that token's `exp`.
async fn provider_refreshing_as(sub: &str) -> (Idp, u64) {
    let idp = Idp::start().await;
    let (fresh, exp) = token_for(sub, "fresh", 60);
    idp.set_token(Answer::Json(json!({ "access_token": fresh, "token_type": "Bearer" })));
    (idp, exp)
}

#[tokio::test]
async fn a_refreshed_sse_stream_gets_token_refreshed_and_outlives_the_old_exp() {
    let (idp, fresh_exp) = provider_refreshing_as("42").await;
    let server = TestServer::start(refresh_config(&idp)).await;
    let (old, old_exp) = token_for("42", "old", SHORT_TTL);
    let mut refreshed = open_sse(&server, &old, &[REFRESH_HEADER]).await;
    // Same token without a refresh token: it marks the moment the old exp passed.
    let mut control = open_sse(&server, &old, &[]).await;

    let event = refreshed.next_non_heartbeat().await.expect("a token_refreshed event");
    assert_eq!(event.event, "token_refreshed", "{event:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&event.data).unwrap(),
        json!({ "exp": fresh_exp })
    );
    assert_eq!(idp.token_hits(), 1);
    assert_eq!(
        idp.last_seen().form.get("refresh_token").map(String::as_str),
        Some("r1")
    );

    expect_sse_expired_at(&mut control, old_exp, "the control stream").await;
    assert_eq!(server.publish("42", json!({ "after": "old exp" })).await, 202);
    let event = refreshed
        .next_non_heartbeat()
        .await
        .expect("the refreshed stream is open");
    assert_eq!(
        (event.event.as_str(), event.data.as_str()),
        ("message", r#"{"after":"old exp"}"#),
        "no auth_expired at the old exp"
    );
    assert_eq!(provider_calls(&server, "ok").await, 1.0);
}

#[tokio::test]
async fn a_refreshed_websocket_gets_token_refreshed_and_outlives_the_old_exp() {
    let (idp, fresh_exp) = provider_refreshing_as("42").await;
    let server = TestServer::start(refresh_config(&idp)).await;
    let (old, old_exp) = token_for("42", "old", SHORT_TTL);
    let mut refreshed = open_ws(&server, &old, &[REFRESH_HEADER]).await;
    let mut control = open_ws(&server, &old, &[]).await;

    let frame: Value = serde_json::from_str(&refreshed.next_text().await).unwrap();
    assert_eq!(frame, json!({ "event": "token_refreshed", "exp": fresh_exp }));
    assert_eq!(idp.token_hits(), 1);
    assert_eq!(
        idp.last_seen().form.get("refresh_token").map(String::as_str),
        Some("r1")
    );

    expect_ws_expired_at(&mut control, old_exp, "the control socket").await;
    assert_eq!(server.publish("42", json!({ "after": "old exp" })).await, 202);
    assert_eq!(
        refreshed.next_text().await,
        r#"{"after":"old exp"}"#,
        "no auth_expired at the old exp"
    );
    assert_eq!(provider_calls(&server, "ok").await, 1.0);
}

/// With `/token` answering `answer`, SSE and WebSocket connections that asked for
/// refresh get no `token_refreshed`, and `auth_expired` at the old `exp`; each
/// attempt is counted with `result`.
async fn a_failed_refresh_keeps_the_old_expiry(idp: Idp, result: &str) {
    let server = TestServer::start(refresh_config(&idp)).await;
    let (old, old_exp) = token_for("42", "old", SHORT_TTL);
    let mut sse = open_sse(&server, &old, &[REFRESH_HEADER]).await;
    let mut ws = open_ws(&server, &old, &[REFRESH_HEADER]).await;
    // Both attempts are made and fail well before exp.
    eventually("both refresh attempts are counted", || async {
        provider_calls(&server, result).await == 2.0
    })
    .await;
    assert_eq!(idp.token_hits(), 2);
    expect_sse_expired_at(&mut sse, old_exp, "SSE").await;
    expect_ws_expired_at(&mut ws, old_exp, "WS").await;
    assert_eq!(provider_calls(&server, "ok").await, 0.0);
}

#[tokio::test]
async fn a_refresh_answered_with_another_identity_lets_the_token_expire_at_its_exp() {
    let (idp, _) = provider_refreshing_as("43").await;
    a_failed_refresh_keeps_the_old_expiry(idp, "identity_mismatch").await;
}

#[tokio::test]
async fn a_refresh_the_provider_fails_lets_the_token_expire_at_its_exp() {
    let idp = Idp::start().await;
    idp.set_token(Answer::Status(500));
    a_failed_refresh_keeps_the_old_expiry(idp, "status").await;
}

#[tokio::test]
async fn a_refresh_token_in_the_query_triggers_no_refresh() {
    let (idp, _) = provider_refreshing_as("42").await;
    let server = TestServer::start(refresh_config(&idp)).await;
    let (old, old_exp) = token_for("42", "old", SHORT_TTL);
    let mut sse = open_sse_at(&format!("{}/events?refresh_token=r1", server.base), &old, &[]).await;
    let mut ws = open_ws_at(&format!("{}/ws?refresh_token=r1", server.ws_base), &old, &[]).await;
    expect_sse_expired_at(&mut sse, old_exp, "SSE").await;
    expect_ws_expired_at(&mut ws, old_exp, "WS").await;
    assert_eq!(idp.token_hits(), 0, "the provider was never asked");
    let calls = metric(&server.base, "streamgate_auth_provider_calls_total", "call=\"refresh\"").await;
    assert_eq!(calls, 0.0);
}

#[tokio::test]
async fn a_refreshed_connection_is_judged_by_its_new_token() {
    let (idp, fresh_exp) = provider_refreshing_as("42").await;
    let server = TestServer::start(refresh_config(&idp)).await;
    let (old, _) = token_for("42", "old", SHORT_TTL);
    let mut sse = open_sse(&server, &old, &[REFRESH_HEADER]).await;
    let mut ws = open_ws(&server, &old, &[REFRESH_HEADER]).await;
    assert_eq!(sse.next_non_heartbeat().await.unwrap().event, "token_refreshed");
    let frame: Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(frame, json!({ "event": "token_refreshed", "exp": fresh_exp }));

    revoke(&server, json!({ "sub": "42", "jti": "old" })).await;
    assert_eq!(server.publish("42", json!({ "n": 1 })).await, 202);
    let event = sse.next_non_heartbeat().await.expect("still open");
    assert_eq!((event.event.as_str(), event.data.as_str()), ("message", r#"{"n":1}"#));
    assert_eq!(ws.next_text().await, r#"{"n":1}"#);

    revoke(&server, json!({ "sub": "42", "jti": "fresh" })).await;
    expect_sse_revoked(&mut sse, "SSE carrying the fresh token").await;
    expect_ws_revoked(&mut ws, "WS carrying the fresh token").await;
}

/// Keycloak's 300 s access tokens under the default 1800 s `interval_seconds`: every
/// new token is already inside the refresh window.
#[tokio::test]
async fn tokens_shorter_than_the_refresh_interval_are_refreshed_once_not_in_a_loop() {
    let idp = Idp::start().await;
    let (fresh, fresh_exp) = token_for("42", "fresh", 300);
    idp.set_token(Answer::Json(json!({ "access_token": fresh })));
    let mut config = refresh_config(&idp);
    config.auth.refresh.interval_seconds = 1800;
    let server = TestServer::start(config).await;
    let (old, _) = token_for("42", "old", 300);
    let mut sse = open_sse(&server, &old, &[REFRESH_HEADER]).await;
    let mut ws = open_ws(&server, &old, &[REFRESH_HEADER]).await;

    // Inside the window at connect: refreshed at once.
    let event = sse.next_non_heartbeat().await.expect("a token_refreshed event");
    assert_eq!(event.event, "token_refreshed", "{event:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&event.data).unwrap(),
        json!({ "exp": fresh_exp })
    );
    let frame: Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(frame, json!({ "event": "token_refreshed", "exp": fresh_exp }));

    // The new token is inside the window too; refreshing again at once would loop.
    assert_eq!(server.publish("42", json!({ "n": 1 })).await, 202);
    let event = sse.next_non_heartbeat().await.expect("still open");
    assert_eq!((event.event.as_str(), event.data.as_str()), ("message", r#"{"n":1}"#));
    assert_eq!(ws.next_text().await, r#"{"n":1}"#, "WS: no second token_refreshed");
    assert_eq!(idp.token_hits(), 2, "one refresh per connection");
    assert_eq!(provider_calls(&server, "ok").await, 2.0);
}

#[tokio::test]
async fn each_refresh_extends_the_connection_again_using_the_rotated_refresh_token() {
    let idp = Idp::start().await;
    // The first refresh yields another short token (inside the window at once) and a
    // rotated refresh token.
    let (short, short_exp) = token_for("42", "second", SHORT_TTL + 1);
    idp.set_token(Answer::Json(json!({ "access_token": short, "refresh_token": "r2" })));
    let server = TestServer::start(refresh_config(&idp)).await;
    let (old, _) = token_for("42", "first", SHORT_TTL);
    let mut sse = open_sse(&server, &old, &[REFRESH_HEADER]).await;
    let mut ws = open_ws(&server, &old, &[REFRESH_HEADER]).await;
    let event = sse.next_non_heartbeat().await.unwrap();
    assert_eq!(
        (event.event.as_str(), event.data),
        ("token_refreshed", format!(r#"{{"exp":{short_exp}}}"#))
    );
    let frame: Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(frame, json!({ "event": "token_refreshed", "exp": short_exp }));
    assert_eq!(
        idp.last_seen().form.get("refresh_token").map(String::as_str),
        Some("r1")
    );

    let (long, long_exp) = token_for("42", "third", 60);
    idp.set_token(Answer::Json(json!({ "access_token": long })));
    let event = sse.next_non_heartbeat().await.unwrap();
    assert_eq!(
        (event.event.as_str(), event.data),
        ("token_refreshed", format!(r#"{{"exp":{long_exp}}}"#))
    );
    let frame: Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(frame, json!({ "event": "token_refreshed", "exp": long_exp }));
    assert_eq!(idp.token_hits(), 4);
    assert_eq!(
        idp.last_seen().form.get("refresh_token").map(String::as_str),
        Some("r2")
    );
}
