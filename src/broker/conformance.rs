//! One conformance suite for every [`Broker`]: the same publish, pattern, lease,
//! key and revocation behaviour for `memory` and `redis`, so backends cannot drift.
//!
//! `tests/broker_conformance.rs` runs [`run_all`] against each implementation
//! (Redis on a private `redis-server`).

use super::{Broker, Sink, Slot};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Patterns every case subscribes to.
pub const PATTERNS: &[&str] = &["streams:*", "session:*:down"];
const WAIT: Duration = Duration::from_secs(15);
const TTL: Duration = Duration::from_secs(30);

/// A sink that forwards `(topic, payload)` into a channel the case reads.
pub fn channel_sink() -> (Sink, mpsc::UnboundedReceiver<(String, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink: Sink = Arc::new(move |topic: &str, payload: Bytes| {
        let _ = tx.send((topic.to_string(), payload));
    });
    (sink, rx)
}

/// Runs every case against brokers made by `make(patterns, sink)`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn(Vec<String>, Sink) -> Fut,
    Fut: Future<Output = Arc<dyn Broker>>,
{
    let patterns = || PATTERNS.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let mut cases = 0;
    for case in [
        Case::Delivery,
        Case::Order,
        Case::Leases,
        Case::AllOrNothing,
        Case::Keys,
        Case::Revocations,
    ] {
        let (sink, rx) = channel_sink();
        let broker = make(patterns(), sink).await;
        wait_ready(broker.as_ref()).await;
        match case {
            Case::Delivery => delivery(broker.as_ref(), rx).await,
            Case::Order => order(broker.as_ref(), rx).await,
            Case::Leases => leases(broker.as_ref()).await,
            Case::AllOrNothing => all_or_nothing(broker.as_ref()).await,
            Case::Keys => keys(broker.as_ref()).await,
            Case::Revocations => revocations(broker.as_ref()).await,
        }
        cases += 1;
    }
    assert_eq!(cases, 6);
}

enum Case {
    Delivery,
    Order,
    Leases,
    AllOrNothing,
    Keys,
    Revocations,
}

async fn wait_ready(broker: &dyn Broker) {
    let mut ready = broker.watch_ready();
    tokio::time::timeout(WAIT, ready.wait_for(|up| *up))
        .await
        .expect("broker ready in time")
        .expect("ready channel open");
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, Bytes)>) -> (String, Bytes) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("message in time")
        .expect("sink open")
}

/// Matching topics arrive byte for byte; others never do.
async fn delivery(broker: &dyn Broker, mut rx: mpsc::UnboundedReceiver<(String, Bytes)>) {
    let binary = Bytes::from_static(&[0, 159, 146, 150, 255]);
    broker
        .publish("inbound:42", Bytes::from_static(b"not subscribed"))
        .await
        .unwrap();
    broker
        .publish("session:abc:up", Bytes::from_static(b"not subscribed"))
        .await
        .unwrap();
    broker.publish("streams:42", binary.clone()).await.unwrap();
    broker
        .publish("session:abc:down", Bytes::from_static(b"{\"a\":1}"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        ("streams:42".to_string(), binary),
        "{}: binary payload intact, unmatched topics skipped",
        broker.kind()
    );
    assert_eq!(
        next(&mut rx).await.0,
        "session:abc:down",
        "{}: middle-star pattern",
        broker.kind()
    );
}

/// Publishes from one caller arrive in order, batches included (unmatched
/// topics in a batch are skipped).
async fn order(broker: &dyn Broker, mut rx: mpsc::UnboundedReceiver<(String, Bytes)>) {
    for i in 0..100 {
        broker.publish("streams:o", Bytes::from(i.to_string())).await.unwrap();
    }
    let batch: Vec<(String, Bytes)> = (100..200)
        .flat_map(|i| {
            [
                ("streams:o".to_string(), Bytes::from(i.to_string())),
                ("inbound:o".to_string(), Bytes::from_static(b"not subscribed")),
            ]
        })
        .collect();
    broker.publish_batch(&batch).await.unwrap();
    for i in 0..200 {
        assert_eq!(
            next(&mut rx).await.1,
            Bytes::from(i.to_string()),
            "{}: message {i} in order",
            broker.kind()
        );
    }
}

/// A slot holds at most `limit` leases; release frees one; 0 is unlimited.
async fn leases(broker: &dyn Broker) {
    let key = format!("conformance:{}", rand::random::<u32>());
    let slot = [Slot {
        key: key.clone(),
        limit: 2,
    }];
    assert!(broker.acquire(&slot, "a", TTL).await.unwrap());
    assert!(broker.acquire(&slot, "b", TTL).await.unwrap());
    assert!(
        !broker.acquire(&slot, "c", TTL).await.unwrap(),
        "{}: third lease refused",
        broker.kind()
    );
    broker
        .refresh(&[(key.clone(), "a".into()), (key.clone(), "b".into())], TTL)
        .await
        .unwrap();
    broker.release(&[(key.clone(), "a".into())]).await.unwrap();
    assert!(
        broker.acquire(&slot, "c", TTL).await.unwrap(),
        "{}: released slot reused",
        broker.kind()
    );
    let unlimited = [Slot {
        key: format!("{key}:u"),
        limit: 0,
    }];
    for i in 0..10 {
        assert!(broker.acquire(&unlimited, &i.to_string(), TTL).await.unwrap());
    }
}

/// A refused multi-slot acquire takes nothing.
async fn all_or_nothing(broker: &dyn Broker) {
    let base = format!("conformance:{}", rand::random::<u32>());
    let (wide, narrow) = (format!("{base}:wide"), format!("{base}:narrow"));
    assert!(broker
        .acquire(
            &[Slot {
                key: narrow.clone(),
                limit: 1
            }],
            "x",
            TTL
        )
        .await
        .unwrap());
    let both = [
        Slot {
            key: wide.clone(),
            limit: 1,
        },
        Slot { key: narrow, limit: 1 },
    ];
    assert!(!broker.acquire(&both, "y", TTL).await.unwrap());
    let wide_only = [Slot { key: wide, limit: 1 }];
    assert!(
        broker.acquire(&wide_only, "z", TTL).await.unwrap(),
        "{}: refused acquire left no lease behind",
        broker.kind()
    );
}

/// Plain keys round-trip byte for byte; missing keys read as `None`.
async fn keys(broker: &dyn Broker) {
    let key = format!("session:conf{}:auth", rand::random::<u32>());
    assert_eq!(broker.get(&key).await.unwrap(), None, "{}: missing key", broker.kind());
    broker
        .set(&key, Bytes::from_static(b"tok\x00en"), Some(TTL))
        .await
        .unwrap();
    assert_eq!(
        broker.get(&key).await.unwrap(),
        Some(Bytes::from_static(b"tok\x00en")),
        "{}: value",
        broker.kind()
    );
    let short = format!("{key}:short");
    broker
        .set(&short, Bytes::from_static(b"x"), Some(Duration::from_millis(50)))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.get(&short).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: key with a TTL expires",
            broker.kind()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Revocation lists: entries listed soonest expiry first, a repeated entry keeps the
/// later expiry, subjects are separate, expired entries vanish.
async fn revocations(broker: &dyn Broker) {
    let subject = format!("conf{}", rand::random::<u32>());
    let other = format!("{subject}x");
    let now = unix_now();
    assert_eq!(
        broker.revocations(&subject).await.unwrap(),
        vec![],
        "{}: empty list",
        broker.kind()
    );
    broker.revoke(&subject, "jti:a", now + 600).await.unwrap();
    broker.revoke(&subject, "before:100", now + 300).await.unwrap();
    broker.revoke(&subject, "jti:a", now + 60).await.unwrap();
    broker.revoke(&other, "jti:z", now + 600).await.unwrap();
    assert_eq!(
        broker.revocations(&subject).await.unwrap(),
        vec![("before:100".to_string(), now + 300), ("jti:a".to_string(), now + 600)],
        "{}: soonest first, later expiry kept",
        broker.kind()
    );
    assert_eq!(
        broker.revocations(&other).await.unwrap(),
        vec![("jti:z".to_string(), now + 600)],
        "{}: subjects are separate",
        broker.kind()
    );
    broker.revoke(&subject, "jti:short", unix_now() + 1).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let live = broker.revocations(&subject).await.unwrap();
        if !live.iter().any(|(entry, _)| entry == "jti:short") {
            assert_eq!(live.len(), 2, "{}: only the expired entry went", broker.kind());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: expired revocation disappears",
            broker.kind()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
