//! `server:` — listener, CORS, connection limits, shutdown, API keys.

use super::Problems;
use serde::{Deserialize, Serialize};

/// Listener-wide settings shared by every job.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free port, used by tests).
    pub port: u16,
    /// Origins allowed to make cross-origin requests; empty = none, `["*"]` = all.
    pub allowed_origins: Vec<String>,
    /// Connections allowed at once over the whole deployment (0 = unlimited).
    pub max_connections_total: u64,
    /// Connections allowed at once per identity over the whole deployment (0 = unlimited).
    pub max_connections_per_identity: u64,
    /// How long a graceful shutdown waits for connections to close.
    pub shutdown_timeout_seconds: u64,
    /// Server-to-server keys accepted by `POST /api/publish` (compared in constant time).
    pub api_keys: Vec<String>,
    /// Lifetime of a connection's limit lease in the broker; refreshed every third of it,
    /// so the counts of a node that dies are freed after at most this long.
    pub connection_lease_seconds: u64,
    /// The `status` text of `GET /health` (`ok`; set `healthy` where a checker expects
    /// wsproxy's answer).
    pub health_status: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            allowed_origins: Vec::new(),
            max_connections_total: 0,
            max_connections_per_identity: 0,
            shutdown_timeout_seconds: 10,
            api_keys: Vec::new(),
            connection_lease_seconds: 30,
            health_status: "ok".into(),
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.host.trim().is_empty() {
            problems.push("server.host", "must not be empty");
        }
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            let ok = origin == "*" || origin.starts_with("http://") || origin.starts_with("https://");
            if !ok {
                problems.push(
                    &format!("server.allowed_origins[{i}]"),
                    format!("{origin:?} must be \"*\" or start with http:// or https://"),
                );
            }
        }
        problems.range(
            "server.connection_lease_seconds",
            self.connection_lease_seconds,
            3,
            3600,
        );
        problems.range(
            "server.shutdown_timeout_seconds",
            self.shutdown_timeout_seconds,
            0,
            3600,
        );
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.len() < 16 {
                problems.push(&format!("server.api_keys[{i}]"), "must be at least 16 characters");
            }
        }
    }
}
