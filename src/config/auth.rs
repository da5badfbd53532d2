//! `auth:` — how client tokens are verified.

use super::auth_endpoints::{check_endpoint, RefreshConfig, VerifyConfig};
use super::Problems;
use serde::{Deserialize, Serialize};

/// Token verification settings. Exactly one key source: `jwt_secret`,
/// `jwt_public_key`, or a key set (`jwks_url` and/or `oidc_issuer`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC secret (HS256/384/512), at least 32 bytes.
    pub jwt_secret: Option<String>,
    /// Path to a PEM public key (RSA, EC P-256/P-384 or Ed25519).
    pub jwt_public_key: Option<String>,
    /// URL of a JSON Web Key Set; the key is picked by the token's `kid`.
    pub jwks_url: Option<String>,
    /// OpenID Connect issuer: `{issuer}/.well-known/openid-configuration` names the key
    /// set (unless `jwks_url` is set), and `iss` must equal it unless `expected_issuer` is set.
    pub oidc_issuer: Option<String>,
    /// Longest use of a fetched key set before it is fetched again (in the background);
    /// a shorter `Cache-Control: max-age` from the provider wins.
    pub jwks_cache_seconds: u64,
    /// Shortest interval between two key-set fetches, so a flood of unknown `kid`s
    /// cannot hammer the provider.
    pub jwks_min_refresh_seconds: u64,
    /// Time limit of one key-set or discovery fetch.
    pub jwks_timeout_ms: u64,
    /// Accepted `alg` values; empty = every algorithm the key type supports.
    pub algorithms: Vec<String>,
    /// Claim holding the identity (a string, or a number used as its decimal form).
    pub identity_claim: String,
    /// Claim carried as the display name (`Principal.name`); empty = none.
    pub name_claim: String,
    /// Claim holding the roles, a dotted path for nested claims (`realm_access.roles`);
    /// a list of strings or a space-separated string. Empty = none.
    pub roles_claim: String,
    /// Accepted `azp` (authorized party) values; empty = any.
    pub allowed_azp: Vec<String>,
    /// When set, `iss` must equal it.
    pub expected_issuer: Option<String>,
    /// When set, `aud` must contain it.
    pub expected_audience: Option<String>,
    /// Reject tokens without `exp`.
    pub require_expiry: bool,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// Where a request's token is looked for, in this order.
    pub token_sources: Vec<TokenSourceKind>,
    /// Cookie read by the `cookie` token source.
    pub cookie_name: String,
    /// Remote verification of each new token (introspection); off unless `url` is set.
    pub verify: VerifyConfig,
    /// Token refresh for long-lived connections; off unless `url` is set.
    pub refresh: RefreshConfig,
    /// Sent as `Authorization: Bearer` on `verify` calls.
    pub service_token: Option<String>,
    /// Let `jwks_url`, `oidc_issuer`, `verify.url` and `refresh.url` reach loopback,
    /// private and other internal addresses, over plain http too (logged at start).
    pub allow_private_endpoints: bool,
    /// How long a revocation is kept when the token's expiry is not known: at least
    /// the longest lifetime of the tokens you issue.
    pub revocation_ttl_seconds: u64,
}

/// A place a request may carry its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSourceKind {
    /// `Authorization: Bearer <token>`.
    Header,
    /// `?token=<token>` (redacted from logs).
    Query,
    /// The cookie named `auth.cookie_name`.
    Cookie,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_public_key: None,
            jwks_url: None,
            oidc_issuer: None,
            jwks_cache_seconds: 300,
            jwks_min_refresh_seconds: 10,
            jwks_timeout_ms: 5000,
            algorithms: Vec::new(),
            identity_claim: "sub".into(),
            name_claim: "preferred_username".into(),
            roles_claim: "roles".into(),
            allowed_azp: Vec::new(),
            expected_issuer: None,
            expected_audience: None,
            require_expiry: true,
            leeway_seconds: 0,
            token_sources: vec![TokenSourceKind::Header, TokenSourceKind::Query],
            cookie_name: "session".into(),
            verify: VerifyConfig::default(),
            refresh: RefreshConfig::default(),
            service_token: None,
            allow_private_endpoints: false,
            revocation_ttl_seconds: 86_400,
        }
    }
}

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2 asks for the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Where verification keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySourceKind {
    /// `jwt_secret`.
    Secret,
    /// `jwt_public_key`.
    PublicKey,
    /// `jwks_url` and/or `oidc_issuer`.
    KeySet,
}

impl AuthConfig {
    /// The configured sources of keys (valid configs have exactly one).
    pub fn key_sources(&self) -> Vec<KeySourceKind> {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let mut sources = Vec::new();
        if set(&self.jwt_secret) {
            sources.push(KeySourceKind::Secret);
        }
        if set(&self.jwt_public_key) {
            sources.push(KeySourceKind::PublicKey);
        }
        if set(&self.jwks_url) || set(&self.oidc_issuer) {
            sources.push(KeySourceKind::KeySet);
        }
        sources
    }

    /// The issuer `iss` must equal: `expected_issuer`, else `oidc_issuer`.
    pub fn issuer(&self) -> Option<&str> {
        self.expected_issuer
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.oidc_issuer.as_deref().filter(|s| !s.is_empty()))
    }

    /// Every configured outbound endpoint with its key path.
    pub fn endpoints(&self) -> Vec<(&'static str, &str)> {
        [
            ("auth.jwks_url", self.jwks_url.as_deref()),
            ("auth.oidc_issuer", self.oidc_issuer.as_deref()),
            ("auth.verify.url", self.verify.url.as_deref()),
            ("auth.refresh.url", self.refresh.url.as_deref()),
        ]
        .into_iter()
        .filter_map(|(path, url)| Some((path, url.filter(|u| !u.is_empty())?)))
        .collect()
    }

    pub(super) fn validate(&self, demo: bool, problems: &mut Problems) {
        self.validate_keys(demo, problems);
        self.validate_key_set(problems);
        self.validate_claims(problems);
        self.validate_sources(problems);
        for (path, url) in self.endpoints() {
            check_endpoint(path, url, self.allow_private_endpoints, problems);
        }
        self.verify.validate(self.service_token.as_deref(), problems);
        self.refresh.validate(problems);
        if self.service_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            problems.push("auth.service_token", "must not be empty when set");
        }
        if self.revocation_ttl_seconds < 60 {
            problems.push("auth.revocation_ttl_seconds", "must be at least 60");
        }
    }

    fn validate_keys(&self, demo: bool, problems: &mut Problems) {
        let sources = self.key_sources();
        match sources.as_slice() {
            [] if !demo => problems.push(
                "auth",
                "set auth.jwt_secret (HMAC), auth.jwt_public_key (PEM path) or auth.jwks_url / auth.oidc_issuer",
            ),
            [] | [_] => {}
            [KeySourceKind::Secret, KeySourceKind::PublicKey] => {
                problems.push("auth", "set either auth.jwt_secret or auth.jwt_public_key, not both")
            }
            _ => problems.push(
                "auth",
                "set only one of auth.jwt_secret, auth.jwt_public_key and auth.jwks_url / auth.oidc_issuer, not both",
            ),
        }
        if let Some(secret) = self.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SECRET_BYTES {
                problems.push(
                    "auth.jwt_secret",
                    format!("must be at least {MIN_SECRET_BYTES} bytes (got {})", secret.len()),
                );
            }
        }
        if let Some(path) = self.jwt_public_key.as_deref().filter(|s| !s.is_empty()) {
            match std::fs::read(path) {
                Err(e) => problems.push("auth.jwt_public_key", format!("cannot read {path:?}: {e}")),
                Ok(pem) => {
                    if let Err(e) = crate::auth::PublicKey::from_pem(&pem) {
                        problems.push("auth.jwt_public_key", format!("{path:?}: {e}"));
                    }
                }
            }
        }
        let hmac_only = sources == [KeySourceKind::Secret];
        let public_only = matches!(sources.as_slice(), [KeySourceKind::PublicKey] | [KeySourceKind::KeySet]);
        for (i, alg) in self.algorithms.iter().enumerate() {
            match crate::auth::parse_algorithm(alg) {
                Err(e) => problems.push(&format!("auth.algorithms[{i}]"), e),
                Ok(alg) => {
                    let hmac = crate::auth::is_hmac(alg);
                    if (hmac_only && !hmac) || (public_only && hmac) {
                        problems.push(
                            &format!("auth.algorithms[{i}]"),
                            format!("{alg:?} does not fit the configured key type"),
                        );
                    }
                }
            }
        }
    }

    fn validate_key_set(&self, problems: &mut Problems) {
        if !(1..=86_400).contains(&self.jwks_cache_seconds) {
            problems.push("auth.jwks_cache_seconds", "must be between 1 and 86400");
        }
        if !(1..=3600).contains(&self.jwks_min_refresh_seconds) {
            problems.push("auth.jwks_min_refresh_seconds", "must be between 1 and 3600");
        }
        if !(100..=60_000).contains(&self.jwks_timeout_ms) {
            problems.push("auth.jwks_timeout_ms", "must be between 100 and 60000");
        }
    }

    fn validate_claims(&self, problems: &mut Problems) {
        if self.identity_claim.trim().is_empty() {
            problems.push("auth.identity_claim", "must not be empty");
        }
        if self.leeway_seconds > 3600 {
            problems.push("auth.leeway_seconds", "must be at most 3600");
        }
        for (i, azp) in self.allowed_azp.iter().enumerate() {
            if azp.trim().is_empty() {
                problems.push(&format!("auth.allowed_azp[{i}]"), "must not be empty");
            }
        }
    }

    fn validate_sources(&self, problems: &mut Problems) {
        if self.token_sources.is_empty() {
            problems.push("auth.token_sources", "list at least one of header, query, cookie");
        }
        for (i, source) in self.token_sources.iter().enumerate() {
            if self.token_sources[..i].contains(source) {
                problems.push(&format!("auth.token_sources[{i}]"), "listed twice");
            }
        }
        let cookie_name_ok = !self.cookie_name.is_empty()
            && self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if self.token_sources.contains(&TokenSourceKind::Cookie) && !cookie_name_ok {
            problems.push("auth.cookie_name", "must be a cookie name (letters, digits, -, _, .)");
        }
    }
}
