//! `auth:` — how client tokens are verified.

use super::Problems;
use serde::{Deserialize, Serialize};

/// Token verification settings. Exactly one of `jwt_secret` / `jwt_public_key`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC secret (HS256/384/512), at least 32 bytes.
    pub jwt_secret: Option<String>,
    /// Path to a PEM public key (RSA, EC P-256/P-384 or Ed25519).
    pub jwt_public_key: Option<String>,
    /// Accepted `alg` values; empty = every algorithm the key type supports.
    pub algorithms: Vec<String>,
    /// Claim holding the identity (a string, or a number used as its decimal form).
    pub identity_claim: String,
    /// When set, `iss` must equal it.
    pub expected_issuer: Option<String>,
    /// When set, `aud` must contain it.
    pub expected_audience: Option<String>,
    /// Reject tokens without `exp`.
    pub require_expiry: bool,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_public_key: None,
            algorithms: Vec::new(),
            identity_claim: "sub".into(),
            expected_issuer: None,
            expected_audience: None,
            require_expiry: true,
            leeway_seconds: 0,
        }
    }
}

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2 asks for the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

impl AuthConfig {
    pub(super) fn validate(&self, demo: bool, problems: &mut Problems) {
        let secret = self.jwt_secret.as_deref().filter(|s| !s.is_empty());
        let key = self.jwt_public_key.as_deref().filter(|s| !s.is_empty());
        match (secret, key) {
            (Some(_), Some(_)) => problems.push("auth", "set either auth.jwt_secret or auth.jwt_public_key, not both"),
            (None, None) if !demo => {
                problems.push("auth", "set auth.jwt_secret (HMAC) or auth.jwt_public_key (PEM path)")
            }
            _ => {}
        }
        if let Some(secret) = secret {
            if secret.len() < MIN_SECRET_BYTES {
                problems.push(
                    "auth.jwt_secret",
                    format!("must be at least {MIN_SECRET_BYTES} bytes (got {})", secret.len()),
                );
            }
        }
        if let Some(path) = key {
            match std::fs::read(path) {
                Err(e) => problems.push("auth.jwt_public_key", format!("cannot read {path:?}: {e}")),
                Ok(pem) => {
                    if let Err(e) = crate::auth::PublicKey::from_pem(&pem) {
                        problems.push("auth.jwt_public_key", format!("{path:?}: {e}"));
                    }
                }
            }
        }
        for (i, alg) in self.algorithms.iter().enumerate() {
            match crate::auth::parse_algorithm(alg) {
                Err(e) => problems.push(&format!("auth.algorithms[{i}]"), e),
                Ok(alg) => {
                    let fits = match (secret, key) {
                        (Some(_), None) => crate::auth::is_hmac(alg),
                        (None, Some(_)) => !crate::auth::is_hmac(alg),
                        _ => true,
                    };
                    if !fits {
                        problems.push(
                            &format!("auth.algorithms[{i}]"),
                            format!("{alg:?} does not fit the configured key type"),
                        );
                    }
                }
            }
        }
        if self.identity_claim.trim().is_empty() {
            problems.push("auth.identity_claim", "must not be empty");
        }
        if self.leeway_seconds > 3600 {
            problems.push("auth.leeway_seconds", "must be at most 3600");
        }
    }
}
