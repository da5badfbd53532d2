//! Session authentication: a JWT whose session claim equals the path, or an opaque
//! token equal to the value a backend stored at `auth_key`.

use super::SessionError;
use crate::config::{SessionAuth, SessionConfig};
use crate::server::AppState;
use subtle::ConstantTimeEq;

/// Admits `token` for `session_id` or says why not (always 403 to the client).
pub async fn check(state: &AppState, cfg: &SessionConfig, session_id: &str, token: &str) -> Result<(), SessionError> {
    match cfg.auth {
        SessionAuth::Jwt => {
            let claims = state
                .verifier
                .verify_claims(token, cfg.require_expiry)
                .await
                .map_err(|e| SessionError::Forbidden(e.reason()))?;
            match claims.get(&cfg.session_claim).and_then(|v| v.as_str()) {
                Some(claimed) if claimed == session_id => Ok(()),
                Some(_) => Err(SessionError::Forbidden("session_mismatch")),
                None => Err(SessionError::Forbidden("session_claim_missing")),
            }
        }
        SessionAuth::RedisToken => {
            let key = SessionConfig::render(&cfg.auth_key, session_id);
            let stored = state.broker.get(&key).await.map_err(|e| {
                tracing::warn!(error = %e, "session token lookup failed");
                SessionError::NotReady
            })?;
            match stored {
                Some(expected) if bool::from(expected.as_ref().ct_eq(token.as_bytes())) => Ok(()),
                Some(_) => Err(SessionError::Forbidden("wrong_token")),
                None => Err(SessionError::Forbidden("no_session_token")),
            }
        }
    }
}
