//! Issue 4 item 6 (limits): `max_connections_per_identity` and `max_connections_total`
//! hold across nodes sharing one Redis, closed connections free their slot, and a
//! node that dies stops counting once its leases expire (leases are refreshed while
//! the connection lives).

mod support;

use std::time::Duration;
use streamgate::config::Config;
use support::clients::WsConnect;
use support::*;

const TTL: Duration = Duration::from_secs(600);
const LEASE_SECONDS: u64 = 3;

fn per_identity(redis: &Redis, limit: u64) -> Config {
    let mut config = redis_config(redis);
    config.server.max_connections_per_identity = limit;
    config
}

async fn node(config: Config) -> TestServer {
    let server = TestServer::start(config).await;
    server.wait_ready(200).await;
    server
}

/// What a connection attempt got.
#[derive(Debug, PartialEq)]
enum Attempt {
    Admitted,
    Refused(u16, serde_json::Value),
}

fn too_many() -> Attempt {
    Attempt::Refused(429, serde_json::json!({"error": "too many connections"}))
}

/// Opens an SSE stream of `identity` on `base`; keeps it open in `keep` when admitted.
async fn sse_on(base: &str, identity: &str, keep: &mut Vec<SseClient>) -> Attempt {
    let token = token(identity, TTL);
    let client = SseClient::connect(&format!("{base}/events"), Some(&token)).await;
    if client.status == 200 {
        keep.push(client);
        return Attempt::Admitted;
    }
    let body = client.error_body.clone().unwrap_or_default();
    Attempt::Refused(client.status.as_u16(), body)
}

/// Opens a WebSocket of `identity` on `ws_base`; keeps it open in `keep` when admitted.
async fn ws_on(ws_base: &str, identity: &str, keep: &mut Vec<WsClient>) -> Attempt {
    let token = token(identity, TTL);
    match WsClient::try_connect(&format!("{ws_base}/ws"), Some(&token)).await {
        WsConnect::Open(client) => {
            keep.push(client);
            Attempt::Admitted
        }
        WsConnect::Refused(status, body) => Attempt::Refused(status, body),
    }
}

/// Milliseconds on the Redis clock (the clock the lease scripts use).
async fn redis_now_ms(redis: &Redis) -> i64 {
    let mut conn = redis.conn().await;
    let (secs, micros): (i64, i64) = ::redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    secs * 1000 + micros / 1000
}

/// The lease expiries (ms, Redis clock) in the sorted set `key`.
async fn lease_expiries(redis: &Redis, key: &str) -> Vec<i64> {
    let mut conn = redis.conn().await;
    let members: Vec<(String, f64)> = ::redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    members.into_iter().map(|(_, score)| score as i64).collect()
}

#[tokio::test]
async fn per_identity_limit_holds_across_two_nodes() {
    let redis = Redis::start().await;
    let a = node(per_identity(&redis, 2)).await;
    let b = node(per_identity(&redis, 2)).await;
    let (mut sse, mut ws) = (Vec::new(), Vec::new());

    assert_eq!(sse_on(&a.base, "42", &mut sse).await, Attempt::Admitted);
    assert_eq!(ws_on(&b.ws_base, "42", &mut ws).await, Attempt::Admitted);
    assert_eq!(sse_on(&a.base, "42", &mut sse).await, too_many());
    assert_eq!(ws_on(&a.ws_base, "42", &mut ws).await, too_many());
    assert_eq!(sse_on(&b.base, "42", &mut sse).await, too_many());
    assert_eq!(ws_on(&b.ws_base, "42", &mut ws).await, too_many());
    // Another identity has its own allowance.
    assert_eq!(sse_on(&a.base, "43", &mut sse).await, Attempt::Admitted);
    assert_eq!(ws_on(&b.ws_base, "43", &mut ws).await, Attempt::Admitted);
    assert_eq!(
        metric(
            &a.base,
            "streamgate_server_connection_rejections_total",
            r#"reason="limit""#
        )
        .await,
        2.0
    );
}

#[tokio::test]
async fn total_limit_holds_across_two_nodes() {
    let redis = Redis::start().await;
    let mut config = redis_config(&redis);
    config.server.max_connections_total = 2;
    let a = node(config.clone()).await;
    let b = node(config).await;
    let (mut sse, mut ws) = (Vec::new(), Vec::new());

    assert_eq!(sse_on(&a.base, "1", &mut sse).await, Attempt::Admitted);
    assert_eq!(ws_on(&b.ws_base, "2", &mut ws).await, Attempt::Admitted);
    assert_eq!(sse_on(&a.base, "3", &mut sse).await, too_many());
    assert_eq!(ws_on(&b.ws_base, "3", &mut ws).await, too_many());
    assert_eq!(ws_on(&a.ws_base, "1", &mut ws).await, too_many());
}

#[tokio::test]
async fn per_identity_limit_holds_with_the_memory_broker() {
    let mut config = base_config();
    config.server.max_connections_per_identity = 1;
    config.server.max_connections_total = 2;
    let server = node(config).await;
    let (mut sse, mut ws) = (Vec::new(), Vec::new());
    assert_eq!(sse_on(&server.base, "42", &mut sse).await, Attempt::Admitted);
    assert_eq!(ws_on(&server.ws_base, "42", &mut ws).await, too_many());
    assert_eq!(ws_on(&server.ws_base, "43", &mut ws).await, Attempt::Admitted);
    assert_eq!(sse_on(&server.base, "44", &mut sse).await, too_many());
}

#[tokio::test]
async fn closing_a_websocket_frees_its_slot_on_every_node() {
    let redis = Redis::start().await;
    let a = node(per_identity(&redis, 1)).await;
    let b = node(per_identity(&redis, 1)).await;
    let mut ws = Vec::new();
    assert_eq!(ws_on(&a.ws_base, "42", &mut ws).await, Attempt::Admitted);
    assert_eq!(ws_on(&b.ws_base, "42", &mut ws).await, too_many());

    let mut client = ws.pop().unwrap();
    client.socket.close(None).await.unwrap();
    drop(client);
    eventually("node B admits identity 42 again", || async {
        ws_on(&b.ws_base, "42", &mut Vec::new()).await == Attempt::Admitted
    })
    .await;
}

#[tokio::test]
async fn closing_an_sse_stream_frees_its_slot_on_every_node() {
    let redis = Redis::start().await;
    let a = node(per_identity(&redis, 1)).await;
    let b = node(per_identity(&redis, 1)).await;
    let mut sse = Vec::new();
    assert_eq!(sse_on(&a.base, "42", &mut sse).await, Attempt::Admitted);
    assert_eq!(sse_on(&b.base, "42", &mut sse).await, too_many());

    sse.clear();
    eventually("node B admits identity 42 again", || async {
        sse_on(&b.base, "42", &mut Vec::new()).await == Attempt::Admitted
    })
    .await;
}

#[tokio::test]
async fn a_killed_node_stops_counting_once_its_leases_expire() {
    let redis = Redis::start().await;
    let mut config = per_identity(&redis, 1);
    config.server.connection_lease_seconds = LEASE_SECONDS;
    let mut a = BinaryServer::start(&config).await;
    let b = node(config).await;
    eventually("node A (a separate process) is ready", || async {
        let url = format!("{}/ready", a.base);
        reqwest::get(url).await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    let mut keep = Vec::new();
    assert_eq!(sse_on(&a.base, "42", &mut keep).await, Attempt::Admitted);
    assert_eq!(sse_on(&b.base, "42", &mut Vec::new()).await, too_many());

    a.kill();
    let killed_at = redis_now_ms(&redis).await;
    let expiries = lease_expiries(&redis, "streamgate:conns:identity:42").await;
    assert_eq!(expiries.len(), 1, "the dead node's lease is still in Redis");
    assert!(expiries[0] > killed_at, "the lease was live when the node died");
    eventually("node B admits identity 42 after the lease expired", || async {
        sse_on(&b.base, "42", &mut Vec::new()).await == Attempt::Admitted
    })
    .await;
    assert!(
        redis_now_ms(&redis).await >= expiries[0],
        "admitted only after the dead node's lease expired"
    );
}

#[tokio::test]
async fn leases_are_refreshed_while_the_connection_lives() {
    let redis = Redis::start().await;
    let mut config = per_identity(&redis, 1);
    config.server.connection_lease_seconds = LEASE_SECONDS;
    let a = node(config.clone()).await;
    let b = node(config).await;
    let mut ws = Vec::new();
    assert_eq!(ws_on(&a.ws_base, "42", &mut ws).await, Attempt::Admitted);
    let opened = redis_now_ms(&redis).await;

    let held = 2 * LEASE_SECONDS as i64 * 1000 + 500;
    eventually("the connection outlived two lease lifetimes", || async {
        redis_now_ms(&redis).await > opened + held
    })
    .await;
    let expiries = lease_expiries(&redis, "streamgate:conns:identity:42").await;
    assert_eq!(expiries.len(), 1, "the lease is still held");
    assert!(
        expiries[0] > opened + held,
        "the lease was extended past {}: {expiries:?}",
        opened + held
    );
    assert_eq!(ws_on(&b.ws_base, "42", &mut Vec::new()).await, too_many());
    assert_eq!(ws_on(&a.ws_base, "42", &mut Vec::new()).await, too_many());
}

#[tokio::test]
async fn open_connections_count_again_after_redis_restarts_empty() {
    let mut redis = Redis::start().await;
    let mut config = per_identity(&redis, 1);
    config.server.connection_lease_seconds = LEASE_SECONDS;
    let a = node(config.clone()).await;
    let b = node(config).await;
    let mut ws = Vec::new();
    assert_eq!(ws_on(&a.ws_base, "42", &mut ws).await, Attempt::Admitted);

    // redis-server runs without persistence: the restart forgets every lease.
    redis.restart().await;
    a.wait_ready(200).await;
    b.wait_ready(200).await;
    eventually("node A re-registers the lease of its open connection", || async {
        lease_expiries(&redis, "streamgate:conns:identity:42").await.len() == 1
    })
    .await;
    assert_eq!(ws_on(&b.ws_base, "42", &mut Vec::new()).await, too_many());
}
