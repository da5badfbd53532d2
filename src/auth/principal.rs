//! Who is connected, derived once from a verified token.

use serde_json::Value;
use std::sync::Arc;

/// A verified caller. Cheap to clone (shared claims).
#[derive(Debug, Clone)]
pub struct Principal {
    /// Identity from `auth.identity_claim`, already checked against the identity pattern.
    pub identity: Arc<str>,
    /// Display name from `auth.name_claim`, when the token has one. Never used as a key:
    /// it is not unique and may contain anything.
    pub name: Option<Arc<str>>,
    /// Roles from `auth.roles_claim`, for admin endpoints and jobs that authorise by role.
    pub roles: Arc<[String]>,
    /// `exp` as Unix seconds, when the token has one; connections close at this time.
    pub expires_at: Option<u64>,
    /// All claims of the token, for jobs that need more than the identity.
    pub claims: Arc<serde_json::Map<String, Value>>,
}

impl Principal {
    /// True when `auth.roles_claim` lists `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The token's `jti`, which single-token revocations name.
    pub fn token_id(&self) -> Option<&str> {
        self.claims.get("jti").and_then(Value::as_str)
    }

    /// The token's `iat` as Unix seconds, which "revoke before" compares with.
    pub fn issued_at(&self) -> Option<u64> {
        self.claims
            .get("iat")
            .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)))
    }
}
