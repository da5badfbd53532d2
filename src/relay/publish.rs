//! `POST /api/publish`: server-to-server publishing through the broker, so every
//! node delivers it. Authenticated with a key from `server.api_keys`.

use super::RelayError;
use crate::auth::{check_api_key, is_valid_identity, ApiKeyRefusal};
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Largest publish request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `{"identity": "42", "data": ...}` or `{"channel": "room", "data": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    identity: Option<String>,
    channel: Option<String>,
    /// Published verbatim: the exact JSON text the caller sent.
    data: Box<RawValue>,
}

/// Publishes one message; 202 `{"published":true}` once the broker accepted it.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), RelayError> {
    let result = publish(&state, request).await;
    state.metrics.publish_request(match &result {
        Ok(()) => "ok",
        Err(RelayError::MissingApiKey | RelayError::InvalidApiKey) => "unauthorized",
        Err(RelayError::BadRequest(_)) => "bad_request",
        Err(_) => "unavailable",
    });
    result.map(|()| (StatusCode::ACCEPTED, Json(serde_json::json!({ "published": true }))))
}

async fn publish(state: &Arc<AppState>, request: Request) -> Result<(), RelayError> {
    let (parts, body) = request.into_parts();
    check_api_key(&parts.headers, &state.config.server.api_keys).map_err(|refusal| match refusal {
        ApiKeyRefusal::Missing => RelayError::MissingApiKey,
        ApiKeyRefusal::Invalid => RelayError::InvalidApiKey,
    })?;
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| RelayError::BadRequest(format!("body larger than {MAX_BODY_BYTES} bytes")))?;
    let req: PublishRequest =
        serde_json::from_slice(&body).map_err(|e| RelayError::BadRequest(format!("invalid JSON body: {e}")))?;
    let topic = topic(state, &req)?;
    if !state.broker.is_ready() {
        return Err(RelayError::NotReady);
    }
    let payload = Bytes::copy_from_slice(req.data.get().as_bytes());
    state.broker.publish(&topic, payload).await.map_err(|e| {
        tracing::warn!(error = %e, "publish failed");
        RelayError::PublishFailed
    })
}

fn topic(state: &AppState, req: &PublishRequest) -> Result<String, RelayError> {
    match (&req.identity, &req.channel) {
        (Some(identity), None) if is_valid_identity(identity) => {
            Ok(format!("{}:{identity}", state.config.relay.channel_prefix))
        }
        (None, Some(channel)) if is_valid_identity(channel) => {
            Ok(format!("{}:{channel}", state.config.chat.channel_prefix))
        }
        (Some(_), None) => Err(RelayError::BadRequest(
            "identity must match ^[A-Za-z0-9._-]{1,128}$".into(),
        )),
        (None, Some(_)) => Err(RelayError::BadRequest(
            "channel must match ^[A-Za-z0-9._-]{1,128}$".into(),
        )),
        _ => Err(RelayError::BadRequest("give exactly one of identity or channel".into())),
    }
}
