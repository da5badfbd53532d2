//! `relay:` — the event relay job.

use super::Problems;
use serde::{Deserialize, Serialize};

/// Event relay settings (`/events`, `/ws`, `/api/publish`, `/stats`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Switches the whole job on or off.
    pub enabled: bool,
    /// Outbound topic prefix: backends publish to `{channel_prefix}:{identity}`.
    pub channel_prefix: String,
    /// Inbound topic prefix: client WS frames go to `{inbound_prefix}:{identity}`; none = off.
    pub inbound_prefix: Option<String>,
    /// Serve `GET /events`.
    pub sse: bool,
    /// Serve `GET /ws`.
    pub websocket: bool,
    /// SSE `event: heartbeat` interval.
    pub heartbeat_seconds: u64,
    /// Messages queued per connection before `slow_consumer_policy` applies.
    pub client_buffer_size: usize,
    /// What a full client queue does.
    pub slow_consumer_policy: SlowConsumerPolicy,
    /// Largest client WebSocket message accepted (bigger closes with 1009).
    pub max_message_size_bytes: usize,
    /// WebSocket ping interval; two unanswered pings close the connection.
    pub websocket_ping_seconds: u64,
    /// A WebSocket write slower than this closes the connection.
    pub websocket_write_timeout_ms: u64,
    /// When set, only this identity may read `/stats`.
    pub stats_identity: Option<String>,
}

/// What happens when a client's queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Drop the message for that client only and count it.
    #[default]
    DropNewestMessage,
    /// Disconnect the client (WS close 1008, SSE stream ends).
    DropClient,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            channel_prefix: "streams".into(),
            inbound_prefix: None,
            sse: true,
            websocket: true,
            heartbeat_seconds: 30,
            client_buffer_size: 64,
            slow_consumer_policy: SlowConsumerPolicy::DropNewestMessage,
            max_message_size_bytes: 4096,
            websocket_ping_seconds: 30,
            websocket_write_timeout_ms: 10_000,
            stats_identity: None,
        }
    }
}

impl RelayConfig {
    /// The inbound prefix, treating an empty string as "off".
    pub fn inbound_prefix(&self) -> Option<&str> {
        self.inbound_prefix.as_deref().filter(|p| !p.is_empty())
    }

    pub(super) fn validate(&self, problems: &mut Problems) {
        check_prefix("relay.channel_prefix", &self.channel_prefix, problems);
        if let Some(prefix) = self.inbound_prefix() {
            check_prefix("relay.inbound_prefix", prefix, problems);
            if prefix == self.channel_prefix {
                problems.push(
                    "relay.inbound_prefix",
                    "must differ from relay.channel_prefix (clients would publish to themselves)",
                );
            }
        }
        const DAY: u64 = 86_400;
        problems.range("relay.heartbeat_seconds", self.heartbeat_seconds, 1, DAY);
        problems.range("relay.websocket_ping_seconds", self.websocket_ping_seconds, 1, DAY);
        problems.range(
            "relay.websocket_write_timeout_ms",
            self.websocket_write_timeout_ms,
            1,
            DAY * 1000,
        );
        problems.range("relay.client_buffer_size", self.client_buffer_size as u64, 1, 1 << 20);
        problems.range(
            "relay.max_message_size_bytes",
            self.max_message_size_bytes as u64,
            1,
            64 << 20,
        );
        if let Some(id) = &self.stats_identity {
            if !crate::auth::is_valid_identity(id) {
                problems.push("relay.stats_identity", "must match ^[A-Za-z0-9._-]{1,128}$");
            }
        }
    }
}

/// A topic prefix: non-empty, no `:`, `*`, `?`, `[` or whitespace (they would
/// change what a pattern subscription matches).
pub(super) fn check_prefix(path: &str, prefix: &str, problems: &mut Problems) {
    let bad = prefix.is_empty()
        || prefix
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ':' | '*' | '?' | '[' | ']' | '\\'));
    if bad {
        problems.push(
            path,
            format!("{prefix:?} must be non-empty without ':', '*', '?', '[', ']', '\\' or spaces"),
        );
    }
}
