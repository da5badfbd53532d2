//! `broker:` — embedded memory broker (one process) or Redis (many nodes).

use super::Problems;
use serde::{Deserialize, Serialize};

/// Which broker carries pub/sub and global state.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `memory` (default, one process) or `redis`.
    pub kind: BrokerKind,
    /// Redis connection settings, used when `kind: redis`.
    pub redis: RedisConfig,
}

/// Broker implementation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    /// In-process; nothing shared with other nodes.
    #[default]
    Memory,
    /// Redis pub/sub and keys; every node sharing the Redis sees the same state.
    Redis,
}

/// Redis connection settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port` (or `rediss://` for TLS).
    pub url: String,
    /// Password, when not in the URL.
    pub password: Option<String>,
    /// Database number, when not in the URL.
    pub db: i64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            password: None,
            db: 0,
        }
    }
}

impl BrokerConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.kind != BrokerKind::Redis {
            return;
        }
        let url = &self.redis.url;
        if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
            problems.push(
                "broker.redis.url",
                format!("{url:?} must start with redis://, rediss:// or unix://"),
            );
        } else if redis::IntoConnectionInfo::into_connection_info(url.as_str()).is_err() {
            problems.push("broker.redis.url", format!("{url:?} is not a valid Redis URL"));
        }
        if self.redis.db < 0 {
            problems.push("broker.redis.db", "must be 0 or more");
        }
    }
}
