//! Who is connected, derived once from a verified token.

use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};

/// The claims of a principal that no longer carries them (see [`Principal::without_claims`]).
static NO_CLAIMS: LazyLock<Arc<Map<String, Value>>> = LazyLock::new(|| Arc::new(Map::new()));

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
    /// `jti`, which single-token revocations name.
    pub token_id: Option<Arc<str>>,
    /// `iat` as Unix seconds, which "revoke before" compares with.
    pub issued_at: Option<u64>,
    /// All claims of the token, for jobs that need more than the fields above. Empty
    /// after [`Principal::without_claims`].
    pub claims: Arc<Map<String, Value>>,
}

impl Principal {
    /// Builds a principal from verified `claims`, reading `exp`, `jti` and `iat`.
    pub fn from_claims(
        identity: Arc<str>,
        name: Option<Arc<str>>,
        roles: Arc<[String]>,
        claims: Map<String, Value>,
    ) -> Self {
        let expires_at = claims.get("exp").and_then(Value::as_u64);
        let token_id = claims.get("jti").and_then(Value::as_str).map(Arc::from);
        let issued_at = claims
            .get("iat")
            .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)));
        Self {
            identity,
            name,
            roles,
            expires_at,
            token_id,
            issued_at,
            claims: Arc::new(claims),
        }
    }

    /// The same principal without the raw claims map. Long-lived connections keep
    /// this form: the map is the largest part of a principal (~0.75 KiB measured per
    /// idle connection) and nothing after admission reads it.
    pub fn without_claims(mut self) -> Self {
        self.claims = NO_CLAIMS.clone();
        self
    }

    /// True when `auth.roles_claim` lists `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The token's `jti`.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// The token's `iat` as Unix seconds.
    pub fn issued_at(&self) -> Option<u64> {
        self.issued_at
    }
}
