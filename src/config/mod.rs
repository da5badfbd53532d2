//! The one typed configuration tree.
//!
//! Flow: YAML file (optional) → env overrides `STREAMGATE__SECTION__KEY` (see
//! [`load`]) → [`Config::validate`], which returns *every* problem with its key path.
//! `serve` refuses to start on any error; `validate` prints them all.
//!
//! Each section lives in its own file and owns its defaults (`#[serde(default)]`)
//! and its validation. Unknown keys are errors (`deny_unknown_fields`): a typo must
//! not pass silently.

mod auth;
mod auth_endpoints;
mod broker;
mod chat;
mod load;
mod logging;
mod relay;
mod server;
mod session;

pub use auth::{AuthConfig, KeySourceKind, TokenSourceKind, MIN_SECRET_BYTES};
pub use auth_endpoints::{HttpMethod, RefreshConfig, TokenLocation, VerifyConfig};
pub use broker::{BrokerConfig, BrokerKind, RedisConfig};
pub use chat::ChatConfig;
pub use load::{load, load_lenient, ConfigError, Lookup};
pub use logging::{LogFormat, LoggingConfig};
pub use relay::{RelayConfig, SlowConsumerPolicy};
pub use server::ServerConfig;
pub use session::{SessionAuth, SessionConfig};

use serde::{Deserialize, Serialize};

/// The whole configuration of one streamgate process.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listener, CORS, connection limits, shutdown and server-to-server API keys.
    pub server: ServerConfig,
    /// How client tokens are verified.
    pub auth: AuthConfig,
    /// Where shared state and pub/sub live: embedded memory or Redis.
    pub broker: BrokerConfig,
    /// The event relay job (`/events`, `/ws`, `/api/publish`, `/stats`).
    pub relay: RelayConfig,
    /// The wsproxy-compatible session proxy (`/{agent_id}/ws/{session_id}`).
    pub session: SessionConfig,
    /// Shared channels (reserved: only the topic prefix is used today).
    pub chat: ChatConfig,
    /// Log level and format.
    pub logging: LoggingConfig,
}

/// One validation problem: the dotted key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending key, e.g. `auth.jwt_secret`.
    pub path: String,
    /// Human-readable description of what is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects validation problems; sections push into it with their own key paths.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Records that the key at `path` is wrong.
    pub fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Records a problem unless `min <= value <= max` (bounds keep timers from
    /// overflowing and buffers from being zero).
    pub fn range(&mut self, path: &str, value: u64, min: u64, max: u64) {
        if value < min || value > max {
            self.push(path, format!("must be between {min} and {max} (got {value})"));
        }
    }

    /// All problems found, in the order they were found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

impl Config {
    /// Checks every section and returns every problem (empty = valid).
    ///
    /// `demo` relaxes the "a key must be configured" rule for the no-config demo,
    /// where `serve` generates a secret itself.
    pub fn validate(&self, demo: bool) -> Vec<Problem> {
        let mut problems = Problems::default();
        self.server.validate(&mut problems);
        self.auth.validate(demo, &mut problems);
        self.broker.validate(&mut problems);
        self.relay.validate(&mut problems);
        self.session.validate(&mut problems);
        self.chat.validate(&mut problems);
        self.logging.validate(&mut problems);
        if self.chat.channel_prefix == self.relay.channel_prefix {
            problems.push(
                "chat.channel_prefix",
                "must differ from relay.channel_prefix (a channel would reach the identity of the same name)",
            );
        }
        problems.into_vec()
    }
}

#[cfg(test)]
mod tests;
