//! Session authentication: a JWT whose session claim equals the path, or an opaque
//! token equal to the value a backend stored at `auth_key`.

use super::SessionError;
use crate::auth::Principal;
use crate::config::{SessionAuth, SessionConfig};
use crate::server::AppState;
use subtle::ConstantTimeEq;

/// Admits `token` for `session_id` or says why not (always 403 to the client). A JWT
/// yields the session's principal (so a token with `exp` ends the connection then);
/// an opaque token yields none.
pub async fn check(
    state: &AppState,
    cfg: &SessionConfig,
    session_id: &str,
    token: &str,
) -> Result<Option<Principal>, SessionError> {
    match cfg.auth {
        SessionAuth::Jwt => {
            let claims = state
                .verifier
                .verify_claims(token, cfg.require_expiry)
                .await
                .map_err(|e| SessionError::Forbidden(e.reason()))?;
            match claims.get(&cfg.session_claim).and_then(|v| v.as_str()) {
                Some(claimed) if claimed == session_id => Ok(Some(Principal::from_claims(
                    session_id.into(),
                    None,
                    std::sync::Arc::from(Vec::new()),
                    claims,
                ))),
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
                Some(expected) if bool::from(expected.as_ref().ct_eq(token.as_bytes())) => Ok(None),
                Some(_) => Err(SessionError::Forbidden("wrong_token")),
                None => Err(SessionError::Forbidden("no_session_token")),
            }
        }
    }
}
