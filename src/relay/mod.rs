//! The event relay job (StreamRelay-compatible).
//!
//! Flow: `Principal` (extractor) → [`admission`] (broker ready, limits, hub
//! subscription on `{channel_prefix}:{identity}`) → transport loop ([`sse`] or
//! [`ws`]) that owns framing, heartbeats, expiry and close codes.
//! Backends publish with `PUBLISH streams:{identity}` or [`publish`]
//! (`POST /api/publish`); [`stats`] serves `GET /stats`.

mod admission;
mod error;
mod publish;
mod pump;
pub mod session;
mod sse;
mod stats;
mod ws;

pub use error::RelayError;

use crate::server::AppState;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The relay's routes, each present only when its transport is enabled.
pub fn routes(state: Arc<AppState>) -> Router {
    let relay = &state.config.relay;
    let mut router = Router::new()
        .route("/api/publish", post(publish::handle))
        .route("/stats", get(stats::handle));
    if relay.sse {
        router = router.route("/events", get(sse::handle));
    }
    if relay.websocket {
        router = router.route("/ws", get(ws::handle));
    }
    router
        .layer(axum::extract::DefaultBodyLimit::max(publish::MAX_BODY_BYTES))
        .with_state(state)
}
