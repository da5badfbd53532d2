//! The broker conformance suite (src/broker/conformance.rs) against both brokers.

mod support;

use std::sync::Arc;
use streamgate::broker::{conformance, Broker, MemoryBroker, RedisBroker};
use streamgate::config::RedisConfig;
use streamgate::telemetry::Metrics;
use support::Redis;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn memory_broker_conforms() {
    conformance::run_all(|patterns, sink| async move {
        Arc::new(MemoryBroker::new(patterns, sink, Arc::new(Metrics::new()))) as Arc<dyn Broker>
    })
    .await;
}

#[tokio::test]
async fn redis_broker_conforms() {
    let redis = Redis::start().await;
    let cfg = RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    };
    let shutdown = CancellationToken::new();
    conformance::run_all(|patterns, sink| {
        let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
        async move {
            let broker = RedisBroker::start(&cfg, patterns, sink, Arc::new(Metrics::new()), shutdown).unwrap();
            Arc::new(broker) as Arc<dyn Broker>
        }
    })
    .await;
    shutdown.cancel();
}
