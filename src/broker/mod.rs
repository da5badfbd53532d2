//! The broker: the only door to shared state.
//!
//! Every node holds exactly one subscription (a set of glob patterns such as
//! `streams:*`) whose messages go to a [`Sink`] (the hub). Publishing, readiness,
//! connection-limit leases, plain keys and revocation lists go through [`Broker`]. Implementations:
//! [`MemoryBroker`] (one process, the default) and [`RedisBroker`] (many nodes).
//! Both pass the same conformance suite (`conformance.rs`).

mod error;
mod memory;
mod pattern;
mod redis;
mod resp;

#[doc(hidden)]
pub mod conformance;

pub use error::BrokerError;
pub use memory::MemoryBroker;
pub use pattern::glob_match;
pub use redis::RedisBroker;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Receives every message matching the node's subscription patterns (a pattern
/// without glob characters is an exact channel name).
pub type Sink = Arc<dyn Fn(&str, Bytes) + Send + Sync>;

/// One counted slot a connection wants: `key` may hold at most `limit` leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Counter key, e.g. `conns:identity:42` (the broker adds its namespace).
    pub key: String,
    /// Leases allowed at once on `key`.
    pub limit: u64,
}

/// Shared pub/sub and global state.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Short name for logs and `/ready` (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// True while this node's subscription is live and publishes can go out.
    fn is_ready(&self) -> bool;

    /// Resolves when readiness changes (for tests and health reporting).
    fn watch_ready(&self) -> tokio::sync::watch::Receiver<bool>;

    /// Publishes `payload` on `topic` to every node.
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BrokerError>;

    /// Publishes each `(topic, payload)` in order. Stops at the first error, so a
    /// failure may leave the messages before it published.
    async fn publish_batch(&self, messages: &[(String, Bytes)]) -> Result<(), BrokerError> {
        for (topic, payload) in messages {
            self.publish(topic, payload.clone()).await?;
        }
        Ok(())
    }

    /// Takes one lease named `holder` on every slot, all or nothing. `Ok(false)` when
    /// any slot is full. Leases expire after `ttl` unless refreshed, so a node that
    /// dies does not hold its counts forever.
    async fn acquire(&self, slots: &[Slot], holder: &str, ttl: Duration) -> Result<bool, BrokerError>;

    /// Extends the leases `(key, holder)` by `ttl` from now.
    async fn refresh(&self, leases: &[(String, String)], ttl: Duration) -> Result<(), BrokerError>;

    /// Returns the leases `(key, holder)`.
    async fn release(&self, leases: &[(String, String)]) -> Result<(), BrokerError>;

    /// Reads a plain key (no namespace added: keys such as `session:{id}:auth` are
    /// written by backends).
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BrokerError>;

    /// Writes a plain key, expiring after `ttl` when given.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), BrokerError>;

    /// Adds `entry` to the revocation list of `subject`, kept until `expires_at`
    /// (Unix seconds). Adding an entry again keeps the later of the two expiries.
    async fn revoke(&self, subject: &str, entry: &str, expires_at: u64) -> Result<(), BrokerError>;

    /// The entries of `subject`'s revocation list that have not expired, with their
    /// expiry (Unix seconds), soonest expiry first.
    async fn revocations(&self, subject: &str) -> Result<Vec<(String, u64)>, BrokerError>;
}

/// Builds the configured broker and starts its subscription to `patterns`.
pub fn from_config(
    cfg: &crate::config::BrokerConfig,
    patterns: Vec<String>,
    sink: Sink,
    metrics: Arc<crate::telemetry::Metrics>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<Arc<dyn Broker>, BrokerError> {
    match cfg.kind {
        crate::config::BrokerKind::Memory => Ok(Arc::new(MemoryBroker::new(patterns, sink, metrics))),
        crate::config::BrokerKind::Redis => {
            let broker = RedisBroker::start(&cfg.redis, patterns, sink, metrics, shutdown)?;
            Ok(Arc::new(broker))
        }
    }
}
