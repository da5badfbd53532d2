//! `logging:` — level and format.

use serde::{Deserialize, Serialize};

/// How logs are written to stderr.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// A `tracing` filter: `info`, `debug`, or `streamgate=debug,info`.
    pub level: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LoggingConfig {
    pub(super) fn validate(&self, problems: &mut super::Problems) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            problems.push("logging.level", format!("{:?} is not a log filter: {e}", self.level));
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}
