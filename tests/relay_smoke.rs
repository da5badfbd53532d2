//! A first end-to-end check that the support code and the relay agree.

mod support;

use std::time::Duration;
use support::*;

#[tokio::test]
async fn sse_receives_connected_then_published_message() {
    let server = TestServer::start(base_config()).await;
    let token = token("42", Duration::from_secs(60));
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&token)).await;
    assert_eq!(sse.status, 200);
    let hello = sse.next_event().await.unwrap();
    assert_eq!(
        (hello.event.as_str(), hello.data.as_str()),
        ("connected", r#"{"identity":"42"}"#)
    );
    assert_eq!(server.publish("42", serde_json::json!({"n": 1})).await, 202);
    let msg = sse.next_non_heartbeat().await.unwrap();
    assert_eq!(
        (msg.event.as_str(), msg.data.as_str()),
        ("message", r#"{"n": 1}"#.replace(' ', "").as_str())
    );
}

#[tokio::test]
async fn ws_receives_connected_then_redis_published_message() {
    let redis = Redis::start().await;
    let server = TestServer::start(redis_config(&redis)).await;
    server.wait_ready(200).await;
    let token = token("42", Duration::from_secs(60));
    let mut ws = WsClient::connect(&format!("{}/ws?token={token}", server.ws_base), None).await;
    assert_eq!(ws.next_text().await, r#"{"event":"connected","identity":"42"}"#);
    assert_eq!(redis.publish("streams:42", "hello\nworld").await, 1);
    assert_eq!(ws.next_text().await, "hello\nworld");
}
