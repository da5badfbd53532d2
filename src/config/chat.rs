//! `chat:` — shared channels. Reserved for the channels-and-chat job; today only the
//! topic prefix is read, by `POST /api/publish {"channel": ...}`.

use super::Problems;
use serde::{Deserialize, Serialize};

/// Shared-channel settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Topic prefix of shared channels: `{channel_prefix}:{name}`.
    pub channel_prefix: String,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            channel_prefix: "channels".into(),
        }
    }
}

impl ChatConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        super::relay::check_prefix("chat.channel_prefix", &self.channel_prefix, problems);
    }
}
