//! Issue 4 item 4 (brokers), over real sockets against a private `redis-server`:
//! one pattern subscription per node, fan-out from any Redis client to every node,
//! readiness and recovery when Redis goes away, and the same delivery rules for the
//! memory and Redis brokers.

mod support;

use std::time::Duration;
use streamgate::config::Config;
use support::clients::WsConnect;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const TTL: Duration = Duration::from_secs(600);

/// A node on `redis`, started and ready.
async fn node(config: Config) -> TestServer {
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;
    server
}

/// An SSE connection of `identity` that has seen its `connected` event.
async fn sse(server: &TestServer, identity: &str) -> SseClient {
    let token = token(identity, TTL);
    let mut client = SseClient::connect(&format!("{}/events", server.base), Some(&token)).await;
    assert_eq!(client.status, 200, "SSE refused: {:?}", client.error_body);
    let hello = client.next_event().await.expect("connected event");
    assert_eq!(hello.event, "connected");
    client
}

/// A WebSocket connection of `identity` that has seen its `connected` frame.
async fn ws(server: &TestServer, identity: &str) -> WsClient {
    let token = token(identity, TTL);
    let mut client = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&token)).await;
    let hello: serde_json::Value = serde_json::from_str(&client.next_text().await).unwrap();
    assert_eq!(hello["event"], "connected");
    client
}

async fn next_message(client: &mut SseClient) -> String {
    let event = client.next_non_heartbeat().await.expect("SSE stream ended");
    assert_eq!(event.event, "message", "unexpected event {event:?}");
    event.data
}

/// `(sub, psub)` of every connection Redis has, from `CLIENT LIST`.
async fn subscriptions(redis: &Redis) -> Vec<(i64, i64)> {
    let mut conn = redis.conn().await;
    let list: String = ::redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.unwrap();
    list.lines()
        .map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or_else(|| panic!("no {name} in {line}"))
            };
            (field("sub="), field("psub="))
        })
        .collect()
}

/// Connections holding a pattern subscription, and the total of plain subscriptions.
async fn pattern_subscribers(redis: &Redis) -> (Vec<i64>, i64) {
    let all = subscriptions(redis).await;
    let psubs = all.iter().map(|&(_, p)| p).filter(|&p| p > 0).collect();
    let subs = all.iter().map(|&(s, _)| s).sum();
    (psubs, subs)
}

async fn body(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.expect("JSON body")
}

#[tokio::test]
async fn each_node_holds_exactly_one_pattern_subscription_whatever_the_number_of_clients() {
    let redis = Redis::start().await;
    let a = node(redis_config(&redis)).await;
    let mut clients_a = Vec::new();
    for i in 0..10 {
        clients_a.push((sse(&a, &format!("id{i}")).await, ws(&a, &format!("id{}", i % 3)).await));
    }
    assert_eq!(redis.numpat().await, 1, "PUBSUB NUMPAT with one node");
    let (psubs, subs) = pattern_subscribers(&redis).await;
    assert_eq!(psubs, vec![1], "one connection with one PSUBSCRIBE for 20 clients");
    assert_eq!(subs, 1, "no per-client SUBSCRIBE: only the node's revocation channel");

    let b = node(redis_config(&redis)).await;
    let mut clients_b = Vec::new();
    for i in 0..10 {
        clients_b.push(ws(&b, &format!("id{i}")).await);
    }
    // Redis 7 counts unique patterns in NUMPAT (both nodes use `streams:*`), so the
    // per-node count comes from CLIENT LIST.
    assert_eq!(redis.numpat().await, 1, "both nodes subscribe to the same pattern");
    let (psubs, subs) = pattern_subscribers(&redis).await;
    assert_eq!(psubs, vec![1, 1], "one PSUBSCRIBE connection per node with two nodes");
    assert_eq!(subs, 2, "no per-client SUBSCRIBE: one revocation channel per node");
    let connections = subscriptions(&redis)
        .await
        .into_iter()
        .filter(|&(s, p)| s + p > 0)
        .count();
    assert_eq!(connections, 2, "one pub/sub connection per node carries both");
}

#[tokio::test]
async fn a_plain_redis_publish_reaches_every_sse_and_ws_connection_of_the_identity_on_every_node() {
    let redis = Redis::start().await;
    let a = node(redis_config(&redis)).await;
    let b = node(redis_config(&redis)).await;
    let (mut sse_a, mut ws_a) = (sse(&a, "42").await, ws(&a, "42").await);
    let (mut sse_b, mut ws_b) = (sse(&b, "42").await, ws(&b, "42").await);
    let mut other = ws(&a, "7").await;

    let payload = "first line\nsecond line";
    assert_eq!(redis.publish("streams:42", payload).await, 2, "one receiver per node");
    assert_eq!(next_message(&mut sse_a).await, payload);
    assert_eq!(next_message(&mut sse_b).await, payload);
    assert_eq!(ws_a.next_text().await, payload);
    assert_eq!(ws_b.next_text().await, payload);

    // Identity 7 saw nothing of 42's message: its first frame is its own.
    redis.publish("streams:7", "for seven").await;
    assert_eq!(other.next_text().await, "for seven");
}

#[tokio::test]
async fn api_publish_on_one_node_reaches_clients_on_another_node() {
    let redis = Redis::start().await;
    let a = node(redis_config(&redis)).await;
    let b = node(redis_config(&redis)).await;
    let mut on_b = ws(&b, "42").await;
    let mut sse_on_b = sse(&b, "42").await;

    assert_eq!(a.publish("42", serde_json::json!({"from": "a"})).await, 202);
    assert_eq!(on_b.next_text().await, r#"{"from":"a"}"#);
    assert_eq!(next_message(&mut sse_on_b).await, r#"{"from":"a"}"#);
}

#[tokio::test]
async fn an_api_publish_batch_on_one_node_reaches_clients_on_another_node_in_order() {
    let redis = Redis::start().await;
    let a = node(redis_config(&redis)).await;
    let b = node(redis_config(&redis)).await;
    let mut on_b = ws(&b, "42").await;
    let mut seven_on_b = sse(&b, "7").await;

    let batch = serde_json::json!({ "messages": [
        { "identity": "42", "data": 1 },
        { "identity": "7", "data": "seven" },
        { "identity": "42", "data": 2 },
    ]});
    let resp = reqwest::Client::new()
        .post(format!("{}/api/publish", a.base))
        .bearer_auth(API_KEY)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(body(resp).await, serde_json::json!({ "published": 3 }));
    assert_eq!(on_b.next_text().await, "1");
    assert_eq!(on_b.next_text().await, "2");
    assert_eq!(next_message(&mut seven_on_b).await, r#""seven""#);
}

#[tokio::test]
async fn the_subscription_authenticates_with_the_configured_password() {
    let redis = Redis::start().await;
    let _: () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("sub-secret")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let mut config = redis_config(&redis);
    config.broker.redis.password = Some("sub-secret".into());
    let server = node(config).await;
    let mut client = ws(&server, "42").await;
    assert_eq!(server.publish("42", serde_json::json!("through auth")).await, 202);
    assert_eq!(client.next_text().await, r#""through auth""#);
}

#[tokio::test]
async fn when_redis_goes_away_the_node_is_not_ready_refuses_new_clients_and_keeps_open_ones() {
    let mut redis = Redis::start().await;
    let mut config = redis_config(&redis);
    config.relay.heartbeat_seconds = 1;
    let server = node(config).await;
    let mut open_sse = sse(&server, "42").await;
    let mut open_ws = ws(&server, "42").await;
    assert_eq!(metric(&server.base, "streamgate_broker_connected", "").await, 1.0);

    redis.stop();
    server.wait_ready(503).await;
    let ready = reqwest::get(format!("{}/ready", server.base)).await.unwrap();
    let ready = body(ready).await;
    assert_eq!(ready["broker"], "disconnected", "{ready}");
    assert_eq!(metric(&server.base, "streamgate_broker_connected", "").await, 0.0);

    let token = token("43", TTL);
    let refused = SseClient::connect(&format!("{}/events", server.base), Some(&token)).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.error_body, Some(serde_json::json!({"error": "not ready"})));
    match WsClient::try_connect(&format!("{}/ws", server.ws_base), Some(&token)).await {
        WsConnect::Refused(status, body) => {
            assert_eq!((status, body), (503, serde_json::json!({"error": "not ready"})))
        }
        WsConnect::Open(_) => panic!("WS admitted while Redis is down"),
    }
    assert_eq!(
        server.publish("42", serde_json::json!(1)).await,
        503,
        "publish while down"
    );
    assert!(
        metric(
            &server.base,
            "streamgate_server_connection_rejections_total",
            r#"reason="not_ready""#
        )
        .await
            >= 2.0
    );

    // The open connections are still served: the SSE stream keeps its heartbeats and
    // the WebSocket answers a ping.
    let beat = open_sse.next_event().await.expect("SSE stream still open");
    assert_eq!(beat.event, "heartbeat");
    use futures_util::SinkExt;
    open_ws
        .socket
        .send(Message::Ping(b"alive?".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(DEADLINE, async {
        loop {
            use futures_util::StreamExt;
            match open_ws.socket.next().await {
                Some(Ok(Message::Pong(p))) => return p.to_vec(),
                Some(Ok(Message::Ping(_))) => continue,
                other => panic!("WS not open during the outage: {other:?}"),
            }
        }
    })
    .await
    .expect("pong");
    assert_eq!(pong, b"alive?");
    let state = server.inner().state();
    use streamgate::telemetry::Transport;
    assert_eq!(state.metrics.connections(Transport::Sse), 1);
    assert_eq!(state.metrics.connections(Transport::WebSocket), 1);
}

#[tokio::test]
async fn after_redis_restarts_the_same_open_clients_receive_again() {
    let mut redis = Redis::start().await;
    let server = node(redis_config(&redis)).await;
    let mut open_sse = sse(&server, "42").await;
    let mut open_ws = ws(&server, "42").await;
    assert_eq!(
        metric(&server.base, "streamgate_broker_reconnects_total", "").await,
        0.0
    );

    redis.stop();
    server.wait_ready(503).await;
    redis.restart().await;
    server.wait_ready(200).await;
    let ready = body(reqwest::get(format!("{}/ready", server.base)).await.unwrap()).await;
    assert_eq!(ready["broker"], "connected", "{ready}");
    assert!(metric(&server.base, "streamgate_broker_reconnects_total", "").await >= 1.0);
    assert_eq!(metric(&server.base, "streamgate_broker_connected", "").await, 1.0);
    assert_eq!(redis.numpat().await, 1, "resubscribed after the restart");

    assert_eq!(redis.publish("streams:42", "after the restart").await, 1);
    assert_eq!(next_message(&mut open_sse).await, "after the restart");
    assert_eq!(open_ws.next_text().await, "after the restart");
    // And new clients are admitted again.
    let mut fresh = ws(&server, "42").await;
    server.publish("42", serde_json::json!(1)).await;
    assert_eq!(fresh.next_text().await, "1");
}

/// The broker contract both implementations must honour, seen from clients: only
/// `{channel_prefix}:{identity}` reaches an identity, verbatim, and only that one.
async fn delivers_only_the_identity_topic(server: &TestServer) {
    let mut c42 = ws(server, "42").await;
    let mut c420 = ws(server, "420").await;
    let mut s42 = sse(server, "42").await;
    let publish = |body: serde_json::Value| {
        let url = format!("{}/api/publish", server.base);
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
        }
    };
    // A shared channel named like the identity lives outside `streams:*`.
    publish(serde_json::json!({"channel": "42", "data": "channel"})).await;
    publish(serde_json::json!({"identity": "420", "data": "for 420"})).await;
    publish(serde_json::json!({"identity": "42", "data": {"a": [1, 2]}})).await;
    assert_eq!(c42.next_text().await, r#"{"a":[1,2]}"#);
    assert_eq!(next_message(&mut s42).await, r#"{"a":[1,2]}"#);
    assert_eq!(c420.next_text().await, r#""for 420""#);
}

#[tokio::test]
async fn memory_broker_delivers_only_the_identity_topic() {
    let server = node(base_config()).await;
    delivers_only_the_identity_topic(&server).await;
}

#[tokio::test]
async fn redis_broker_delivers_only_the_identity_topic() {
    let redis = Redis::start().await;
    let server = node(redis_config(&redis)).await;
    delivers_only_the_identity_topic(&server).await;

    // Topics a plain Redis client may use that are not exactly `streams:42`.
    let mut c42 = ws(&server, "42").await;
    assert_eq!(redis.publish("other:42", "no").await, 0, "outside the pattern");
    assert_eq!(redis.publish("streams42", "no").await, 0, "no separator");
    assert_eq!(redis.publish("streams:42:x", "no").await, 1, "matches the pattern");
    redis.publish("streams:42", "yes").await;
    assert_eq!(c42.next_text().await, "yes");
}

#[tokio::test]
async fn the_subscription_follows_the_configured_channel_prefix() {
    let redis = Redis::start().await;
    let mut config = redis_config(&redis);
    config.relay.channel_prefix = "events".into();
    let server = node(config).await;
    let mut client = ws(&server, "42").await;
    assert_eq!(redis.publish("streams:42", "old prefix").await, 0);
    assert_eq!(redis.publish("events:42", "new prefix").await, 1);
    assert_eq!(client.next_text().await, "new prefix");
}

#[tokio::test]
async fn a_lost_redis_is_retried_with_capped_exponential_backoff() {
    let mut redis = Redis::start().await;
    let server = node(redis_config(&redis)).await;
    let port: u16 = redis.url().rsplit(':').next().unwrap().parse().unwrap();
    redis.stop();
    server.wait_ready(503).await;
    // Something that accepts and hangs up on the Redis port records every attempt.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut attempts = Vec::new();
    while attempts.len() < 8 {
        let (socket, _) = tokio::time::timeout(Duration::from_secs(8), listener.accept())
            .await
            .expect("the node stopped retrying")
            .unwrap();
        attempts.push(tokio::time::Instant::now());
        drop(socket);
    }
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] < Duration::from_secs(1), "first retries are quick: {gaps:?}");
    for pair in gaps.windows(2).take(4) {
        assert!(pair[1] > pair[0], "the delay grows: {gaps:?}");
    }
    assert!(
        gaps.iter().all(|g| *g < Duration::from_millis(6500)),
        "the delay is capped: {gaps:?}"
    );
    // 0.1 s doubling reaches the 5 s cap by the sixth retry; the last two wait the cap.
    assert!(
        gaps[gaps.len() - 2..].iter().all(|g| *g > Duration::from_secs(4)),
        "the delay reached the cap: {gaps:?}"
    );
    assert!(!server.inner().state().broker.is_ready(), "still not ready");
}
