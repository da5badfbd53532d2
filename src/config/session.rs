//! `session:` — the wsproxy-compatible session proxy.

use super::{Problems, SlowConsumerPolicy};
use serde::{Deserialize, Serialize};

/// Placeholder every channel/key template must contain.
pub const SESSION_PLACEHOLDER: &str = "{session_id}";

/// Session proxy settings (`GET /{agent_id}/ws/{session_id}`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Switches the job on.
    pub enabled: bool,
    /// Route; must contain `{session_id}` and may contain `{agent_id}`.
    pub path: String,
    /// `jwt` (signed `{session_id, iat}` claims) or `redis_token` (opaque token at `auth_key`).
    pub auth: SessionAuth,
    /// With `auth: jwt`, the claim that must equal the path's session id.
    pub session_claim: String,
    /// With `auth: jwt`, reject tokens without `exp`.
    pub require_expiry: bool,
    /// Topic the backend publishes to; its messages go to the client.
    pub down_channel: String,
    /// Topic client messages are published to.
    pub up_channel: String,
    /// With `auth: redis_token`, the key holding the session's token.
    pub auth_key: String,
    /// Only JSON text frames are forwarded up; others get an error frame.
    pub require_json: bool,
    /// Connections allowed at once per session, across nodes (0 = unlimited).
    pub max_connections_per_session: u64,
    /// Largest client message accepted (bigger closes with 1009).
    pub max_message_size_bytes: usize,
    /// Ping interval.
    pub ping_seconds: u64,
    /// A ping unanswered for this long closes the connection.
    pub ping_timeout_seconds: u64,
    /// Messages queued per connection before `slow_consumer_policy` applies. Large by
    /// default: backends burst, and the queue only allocates what it holds.
    pub client_buffer_size: usize,
    /// What a full queue does; `drop_client` by default so no message is lost silently.
    pub slow_consumer_policy: SlowConsumerPolicy,
}

/// How a session connection proves it may attach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionAuth {
    /// A JWT signed with the `auth:` key whose `session_claim` equals the path.
    #[default]
    Jwt,
    /// The bearer token must equal the value stored at `auth_key`.
    RedisToken,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path: "/{agent_id}/ws/{session_id}".into(),
            auth: SessionAuth::Jwt,
            session_claim: "session_id".into(),
            require_expiry: false,
            down_channel: "session:{session_id}:down".into(),
            up_channel: "session:{session_id}:up".into(),
            auth_key: "session:{session_id}:auth".into(),
            require_json: true,
            max_connections_per_session: 0,
            max_message_size_bytes: 65_536,
            ping_seconds: 30,
            ping_timeout_seconds: 10,
            client_buffer_size: 16_384,
            slow_consumer_policy: SlowConsumerPolicy::DropClient,
        }
    }
}

impl SessionConfig {
    /// Fills `{session_id}` in a channel or key template.
    pub fn render(template: &str, session_id: &str) -> String {
        template.replace(SESSION_PLACEHOLDER, session_id)
    }

    /// The subscription pattern of the down channel (`session:*:down`).
    pub fn down_pattern(&self) -> String {
        self.down_channel.replace(SESSION_PLACEHOLDER, "*")
    }

    pub(super) fn validate(&self, problems: &mut Problems) {
        if !self.enabled {
            return;
        }
        if !self.path.starts_with('/') || !self.path.contains(SESSION_PLACEHOLDER) {
            problems.push("session.path", "must start with / and contain {session_id}");
        }
        for (path, template) in [
            ("session.down_channel", &self.down_channel),
            ("session.up_channel", &self.up_channel),
            ("session.auth_key", &self.auth_key),
        ] {
            let glob = template.replace(SESSION_PLACEHOLDER, "");
            if !template.contains(SESSION_PLACEHOLDER) || glob.contains(['*', '?', '[', ']']) {
                problems.push(path, "must contain {session_id} and no glob characters");
            }
        }
        if self.down_channel == self.up_channel {
            problems.push("session.up_channel", "must differ from session.down_channel");
        }
        if self.session_claim.trim().is_empty() {
            problems.push("session.session_claim", "must not be empty");
        }
        const DAY: u64 = 86_400;
        problems.range("session.ping_seconds", self.ping_seconds, 1, DAY);
        problems.range("session.ping_timeout_seconds", self.ping_timeout_seconds, 1, DAY);
        problems.range(
            "session.max_message_size_bytes",
            self.max_message_size_bytes as u64,
            1,
            64 << 20,
        );
        problems.range("session.client_buffer_size", self.client_buffer_size as u64, 1, 1 << 20);
    }
}
