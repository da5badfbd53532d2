//! `POST /api/publish`: server-to-server publishing through the broker, so every
//! node delivers it. Authenticated with a key from `server.api_keys`.
//!
//! One message: `{"identity":"42","data":…}` or `{"channel":"room","data":…}` → 202
//! `{"published":true}`. A batch: `{"messages":[{"identity":"42","data":…}, …]}` → 202
//! `{"published":N}`; every entry is checked before any is published, so a bad entry
//! publishes nothing.

use super::RelayError;
use crate::auth::{check_api_key, is_valid_identity, ApiKeyRefusal};
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// Largest publish request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most messages in one batch.
pub const MAX_BATCH: usize = 1000;

/// The request body: one message (`identity` or `channel`, and `data`) or a batch
/// (`messages` alone). `data` borrows from the body (`RawValue`); the names are
/// `Cow`s, which serde fills owned (it borrows only a bare `&str`/`Cow<str>`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody<'a> {
    #[serde(borrow, default)]
    identity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    /// Published verbatim: the exact JSON text the caller sent (`null` included).
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<Message<'a>>>,
}

/// One entry of a batch: `{"identity": "42", "data": ...}` or `{"channel": "room", "data": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message<'a> {
    #[serde(borrow, default)]
    identity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// What a successful request published.
enum Published {
    One,
    Batch(usize),
}

/// Publishes one message or a batch; 202 once the broker accepted all of it.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), RelayError> {
    let result = publish(&state, request).await;
    state.metrics.publish_request(match &result {
        Ok(_) => "ok",
        Err(RelayError::MissingApiKey | RelayError::InvalidApiKey) => "unauthorized",
        Err(RelayError::BadRequest(_)) => "bad_request",
        Err(_) => "unavailable",
    });
    result.map(|published| {
        let body = match published {
            Published::One => serde_json::json!({ "published": true }),
            Published::Batch(n) => serde_json::json!({ "published": n }),
        };
        (StatusCode::ACCEPTED, Json(body))
    })
}

async fn publish(state: &Arc<AppState>, request: Request) -> Result<Published, RelayError> {
    let (parts, body) = request.into_parts();
    check_api_key(&parts.headers, &state.config.server.api_keys).map_err(|refusal| match refusal {
        ApiKeyRefusal::Missing => RelayError::MissingApiKey,
        ApiKeyRefusal::Invalid => RelayError::InvalidApiKey,
    })?;
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| RelayError::BadRequest(format!("body larger than {MAX_BODY_BYTES} bytes")))?;
    let req: PublishBody<'_> =
        serde_json::from_slice(&body).map_err(|e| RelayError::BadRequest(format!("invalid JSON body: {e}")))?;
    match req {
        PublishBody {
            identity: None,
            channel: None,
            data: None,
            messages: Some(messages),
        } => {
            if messages.is_empty() || messages.len() > MAX_BATCH {
                return Err(RelayError::BadRequest(format!(
                    "messages must hold 1 to {MAX_BATCH} entries"
                )));
            }
            let batch = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let topic = topic(state, m.identity.as_deref(), m.channel.as_deref())
                        .map_err(|e| RelayError::BadRequest(format!("messages[{i}]: {e}")))?;
                    Ok((topic, payload(m.data)))
                })
                .collect::<Result<Vec<_>, RelayError>>()?;
            send(state, &batch).await?;
            Ok(Published::Batch(batch.len()))
        }
        PublishBody { messages: Some(_), .. } => Err(RelayError::BadRequest(
            "a batch has only messages (no identity, channel or data beside it)".into(),
        )),
        PublishBody { data: None, .. } => Err(RelayError::BadRequest("invalid JSON body: missing field `data`".into())),
        PublishBody {
            identity,
            channel,
            data: Some(data),
            messages: None,
        } => {
            let topic = topic(state, identity.as_deref(), channel.as_deref()).map_err(RelayError::BadRequest)?;
            send(state, &[(topic, payload(data))]).await?;
            Ok(Published::One)
        }
    }
}

/// A `data` field that is present, even when it is JSON `null` (which a plain
/// `Option` would read as absent).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The exact JSON text of `data`, copied out of the body (a queued frame must not
/// keep a whole large batch body alive).
fn payload(data: &RawValue) -> Bytes {
    Bytes::copy_from_slice(data.get().as_bytes())
}

/// Hands the checked messages to the broker.
async fn send(state: &AppState, batch: &[(String, Bytes)]) -> Result<(), RelayError> {
    if !state.broker.is_ready() {
        return Err(RelayError::NotReady);
    }
    state.broker.publish_batch(batch).await.map_err(|e| {
        tracing::warn!(error = %e, "publish failed");
        RelayError::PublishFailed
    })
}

fn topic(state: &AppState, identity: Option<&str>, channel: Option<&str>) -> Result<String, String> {
    match (identity, channel) {
        (Some(identity), None) if is_valid_identity(identity) => {
            Ok(format!("{}:{identity}", state.config.relay.channel_prefix))
        }
        (None, Some(channel)) if is_valid_identity(channel) => {
            Ok(format!("{}:{channel}", state.config.chat.channel_prefix))
        }
        (Some(_), None) => Err("identity must match ^[A-Za-z0-9._-]{1,128}$".into()),
        (None, Some(_)) => Err("channel must match ^[A-Za-z0-9._-]{1,128}$".into()),
        _ => Err("give exactly one of identity or channel".into()),
    }
}
