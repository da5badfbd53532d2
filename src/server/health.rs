//! `/health`, `/healthz`, `/ready`, `/metrics`: unauthenticated operations routes.

use super::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// Routes for load balancers and Prometheus.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(super::error::not_found)
        .with_state(state)
}

/// 200 while the process serves.
async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "status": state.config.server.health_status }))
}

/// 200 when the broker subscription is live, else 503 with the reason.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let kind = state.broker.kind();
    if state.shutdown.is_cancelled() {
        let broker = if state.broker.is_ready() {
            "connected"
        } else {
            "disconnected"
        };
        let body = json!({ "status": "not ready", "error": "shutting down", "broker": broker, "broker_kind": kind });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if state.broker.is_ready() {
        Json(json!({ "status": "ready", "broker": "connected", "broker_kind": kind })).into_response()
    } else {
        let body = json!({
            "status": "not ready",
            "error": "not ready",
            "broker": "disconnected",
            "broker_kind": kind,
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Prometheus text exposition.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}
