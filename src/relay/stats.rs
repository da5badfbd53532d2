//! `GET /stats`: this node's connection counts, for operators (JWT; only
//! `relay.stats_identity` when set).

use super::RelayError;
use crate::auth::Principal;
use crate::server::AppState;
use crate::telemetry::Transport;
use axum::extract::State;
use axum::Json;
use std::sync::Arc;
use std::time::Duration;

/// Node statistics.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, RelayError> {
    if let Some(allowed) = &state.config.relay.stats_identity {
        if *allowed != *principal.identity {
            return Err(RelayError::Forbidden);
        }
    }
    let sse = state.metrics.connections(Transport::Sse);
    let ws = state.metrics.connections(Transport::WebSocket);
    Ok(Json(serde_json::json!({
        "status": "ok",
        "connections": sse + ws,
        "identities": state.hub.topic_count(),
        "uptime": format_uptime(state.started.elapsed()),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "sse_connections": sse,
        "websocket_connections": ws,
        "session_connections": state.metrics.session_connections(),
        "broker": state.broker.kind(),
        "broker_connected": state.broker.is_ready(),
    })))
}

/// `2h30m15s`, as StreamRelay prints it.
fn format_uptime(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::format_uptime;
    use std::time::Duration;

    #[test]
    fn uptime_reads_like_streamrelay() {
        let cases = [(0, "0s"), (59, "59s"), (61, "1m1s"), (9015, "2h30m15s")];
        for (secs, expected) in cases {
            assert_eq!(format_uptime(Duration::from_secs(secs)), expected, "{secs}s");
        }
    }
}
