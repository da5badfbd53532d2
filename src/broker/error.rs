//! Broker failures.

/// A broker operation failed; callers map it to 503 (`not ready`) or fail open.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker is not connected right now.
    #[error("broker not connected")]
    NotConnected,
    /// Redis answered with an error or the connection broke.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The subscription connection failed or Redis sent something unexpected on it.
    #[error("redis subscription: {0}")]
    Subscription(String),
    /// The configuration could not be used (bad URL).
    #[error("broker config: {0}")]
    Config(String),
}
