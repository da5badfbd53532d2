//! Who is connected, derived once from a verified token.

use std::sync::Arc;

/// A verified caller. Cheap to clone (shared claims).
#[derive(Debug, Clone)]
pub struct Principal {
    /// Identity from `auth.identity_claim`, already checked against the identity pattern.
    pub identity: Arc<str>,
    /// `exp` as Unix seconds, when the token has one; connections close at this time.
    pub expires_at: Option<u64>,
    /// All claims of the token, for jobs that need more than the identity.
    pub claims: Arc<serde_json::Map<String, serde_json::Value>>,
}
