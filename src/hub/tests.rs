//! Fan-out semantics: one frame per message, bounded queues, slow-consumer policies.

use super::*;
use crate::config::SlowConsumerPolicy::{DropClient, DropNewestMessage};

fn hub() -> Arc<Hub> {
    Hub::new(Arc::new(Metrics::new()))
}

#[tokio::test]
async fn every_subscriber_of_a_topic_gets_the_same_shared_frame() {
    let hub = hub();
    let a = hub.subscribe("streams:42", 8, DropNewestMessage);
    let b = hub.subscribe("streams:42", 8, DropNewestMessage);
    let other = hub.subscribe("streams:7", 8, DropNewestMessage);
    let fanout = hub.dispatch("streams:42", Bytes::from_static(b"hi"));
    assert_eq!(fanout.delivered, 2);
    let (fa, fb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
    assert!(Arc::ptr_eq(&fa, &fb), "one frame shared by all recipients");
    assert_eq!(fa.payload().as_ref(), b"hi");
    assert!(other.try_recv().is_none(), "another identity receives nothing");
    // Encoded once: the SSE bytes of both are the same allocation.
    assert_eq!(fa.sse().as_ptr(), fb.sse().as_ptr());
}

#[tokio::test]
async fn a_full_queue_drops_for_that_client_only() {
    let hub = hub();
    let slow = hub.subscribe("t", 1, DropNewestMessage);
    let fast = hub.subscribe("t", 8, DropNewestMessage);
    hub.dispatch("t", Bytes::from_static(b"1"));
    let second = hub.dispatch("t", Bytes::from_static(b"2"));
    assert_eq!((second.delivered, second.dropped), (1, 1));
    assert_eq!(slow.recv().await.unwrap().payload().as_ref(), b"1");
    assert_eq!(fast.recv().await.unwrap().payload().as_ref(), b"1");
    assert_eq!(fast.recv().await.unwrap().payload().as_ref(), b"2");
    assert_eq!(hub.subscriber_count(), 2, "drop_newest keeps the client");
}

#[tokio::test]
async fn drop_client_removes_the_slow_subscriber() {
    let hub = hub();
    let slow = hub.subscribe("t", 1, DropClient);
    hub.dispatch("t", Bytes::from_static(b"1"));
    let fanout = hub.dispatch("t", Bytes::from_static(b"2"));
    assert_eq!(fanout.disconnected, 1);
    assert_eq!(
        slow.recv().await.unwrap().payload().as_ref(),
        b"1",
        "queued frames still drain"
    );
    assert!(slow.recv().await.is_none(), "then the queue ends");
    assert_eq!(hub.subscriber_count(), 0);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let hub = hub();
    let a = hub.subscribe("t", 1, DropNewestMessage);
    assert_eq!((hub.subscriber_count(), hub.topic_count()), (1, 1));
    drop(a);
    assert_eq!((hub.subscriber_count(), hub.topic_count()), (0, 0));
    assert_eq!(hub.dispatch("t", Bytes::new()), Fanout::default());
}

#[test]
fn non_utf8_payloads_become_binary_frames() {
    use tungstenite::Message;
    assert!(matches!(Frame::new(Bytes::from_static(b"text")).ws(), Message::Text(_)));
    assert!(matches!(
        Frame::new(Bytes::from_static(&[0xff, 0xfe])).ws(),
        Message::Binary(_)
    ));
}
