//! Client → backend: JSON text frames go to the up topic verbatim.

use crate::relay::pump::{Inbound, Reply};
use crate::server::AppState;
use bytes::Bytes;
use serde::de::IgnoredAny;
use std::sync::Arc;
use tungstenite::{Message, Utf8Bytes};

/// The error frame wsproxy sends for a message that is not JSON.
const INVALID_JSON: &str = r#"{"error":"Invalid JSON format"}"#;
/// The error frame for a binary message where JSON text is required.
const BINARY_REFUSED: &str = r#"{"error":"Binary messages are not supported"}"#;

/// Forwards one session's client messages to its up topic.
pub struct SessionInbound {
    state: Arc<AppState>,
    up_topic: String,
}

impl SessionInbound {
    pub fn new(state: Arc<AppState>, up_topic: String) -> Self {
        Self { state, up_topic }
    }

    /// Publishes to the up topic. The node's shared Redis connection notices that it
    /// broke (say Redis restarted) only when a command fails on it, and that failure
    /// is what starts the reconnect: without one more try, the first message after
    /// every recovery would be lost while `/ready` already says 200. Retried only when
    /// the connection dropped (reset, refused, EOF), where the command almost surely
    /// never ran, so a duplicate is unlikely.
    fn refuse(&self, text: &'static str) -> Reply {
        self.state.metrics.session_json_rejection();
        Reply::Send(Message::Text(Utf8Bytes::from_static(text)))
    }
}

impl Inbound for SessionInbound {
    async fn message(&mut self, payload: Bytes, text: bool) -> Reply {
        if self.state.config.session.require_json {
            if !text {
                return self.refuse(BINARY_REFUSED);
            }
            if serde_json::from_slice::<IgnoredAny>(&payload).is_err() {
                return self.refuse(INVALID_JSON);
            }
        }
        match self.state.broker.publish(&self.up_topic, payload).await {
            Ok(()) => self.state.metrics.session_frames("up", 1),
            Err(e) => tracing::warn!(error = %e, "session up publish failed; message dropped"),
        }
        Reply::Continue
    }

    fn delivered(&mut self, count: usize) {
        self.state.metrics.session_frames("down", count as u64);
    }
}
