//! `POST /admin/revoke` and `GET /admin/revocations`.

use super::AdminError;
use crate::auth::revocation::{self, Listed, Revocation, MAX_JTI_LEN};
use crate::auth::{check_api_key, is_valid_identity};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// `{"sub": "42", "jti": "abc", "exp": 1700000000}` or `{"sub": "42", "before": 1700000000}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    sub: String,
    jti: Option<String>,
    before: Option<u64>,
    /// The revoked token's `exp`, when known (with `jti` only).
    exp: Option<u64>,
}

/// Stores a revocation; 200 `{"revoked":true,"sub":..,("jti"|"before"):..,"expires_at":N}`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let result = revoke_inner(&state, &headers, &body).await;
    state
        .metrics
        .admin_request("revoke", result.as_ref().map_or_else(AdminError::label, |_| "ok"));
    result
}

async fn revoke_inner(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Json<Value>, AdminError> {
    check_api_key(headers, &state.config.server.api_keys)?;
    let req: RevokeRequest =
        serde_json::from_slice(body).map_err(|e| AdminError::BadRequest(format!("invalid JSON body: {e}")))?;
    if !is_valid_identity(&req.sub) {
        return Err(AdminError::BadRequest("sub must match ^[A-Za-z0-9._-]{1,128}$".into()));
    }
    let revocation = match (req.jti, req.before, req.exp) {
        (Some(jti), None, _) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => Revocation::Token { jti },
        (Some(_), None, _) => {
            return Err(AdminError::BadRequest(format!("jti must be 1 to {MAX_JTI_LEN} bytes")));
        }
        (None, Some(before), None) => Revocation::IssuedBefore { before },
        (None, Some(_), Some(_)) => return Err(AdminError::BadRequest("exp goes with jti only".into())),
        _ => return Err(AdminError::BadRequest("give exactly one of jti or before".into())),
    };
    let keep_until = revocation.keep_until(req.exp, &state.config.auth);
    revocation::publish(state.broker.as_ref(), &req.sub, &revocation, keep_until)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "revocation not stored");
            AdminError::Unavailable
        })?;
    tracing::info!(sub = %req.sub, revocation = ?revocation, keep_until, "token revoked");
    let mut answer = json!({ "revoked": true, "sub": req.sub, "expires_at": keep_until });
    if let (Value::Object(answer), Ok(Value::Object(what))) = (&mut answer, serde_json::to_value(&revocation)) {
        answer.extend(what);
    }
    Ok(Json(answer))
}

/// `?sub=42`
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    sub: Option<String>,
}

/// Lists the live revocations of `sub`: 200 `{"sub":"42","revocations":[...]}`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    let result = list_inner(&state, &headers, query).await;
    state
        .metrics
        .admin_request("revocations", result.as_ref().map_or_else(AdminError::label, |_| "ok"));
    result
}

async fn list_inner(state: &AppState, headers: &HeaderMap, query: ListQuery) -> Result<Json<Value>, AdminError> {
    check_api_key(headers, &state.config.server.api_keys)?;
    let sub = query
        .sub
        .filter(|s| is_valid_identity(s))
        .ok_or_else(|| AdminError::BadRequest("sub must match ^[A-Za-z0-9._-]{1,128}$".into()))?;
    let revocations: Vec<Listed> = revocation::list(state.broker.as_ref(), &sub).await.map_err(|e| {
        tracing::warn!(error = %e, "revocations not read");
        AdminError::Unavailable
    })?;
    Ok(Json(json!({ "sub": sub, "revocations": revocations })))
}
