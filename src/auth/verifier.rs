//! [`Verifier`]: checks signature, algorithm, time claims, issuer, audience and the
//! claims of `auth:`, then (when configured) asks the provider.

use super::claims::ClaimRules;
use super::jwks::KeyStore;
use super::refresh::Refresher;
use super::remote::RemoteVerifier;
use super::validation::{classify, header_failure, validation, Rules};
use super::{is_hmac, parse_algorithm, AuthError, InvalidReason, Principal, PublicKey, TokenSources};
use crate::config::{AuthConfig, KeySourceKind};
use crate::net::HttpClient;
use crate::telemetry::Metrics;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Where verification keys come from.
enum Keys {
    /// One key (secret or PEM) for every token.
    Fixed(DecodingKey),
    /// A key set picked by `kid`.
    Set(Arc<KeyStore>),
}

/// Verifies client tokens. Built once from `auth:`. Local verification never does
/// I/O except fetching a key set for a `kid` it has not seen (rate-limited).
pub struct Verifier {
    keys: Keys,
    rules: Rules,
    /// Same rules with `exp` required / optional, for [`Verifier::verify_claims`].
    rules_exp: Rules,
    rules_no_exp: Rules,
    claims: ClaimRules,
    sources: TokenSources,
    remote: Option<RemoteVerifier>,
    pub(super) refresher: Option<Refresher>,
    pub(super) metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.rules.algorithms())
            .field("identity_claim", &self.claims.identity_claim())
            .field("remote", &self.remote.is_some())
            .field("refresh", &self.refresher.is_some())
            .finish_non_exhaustive()
    }
}

/// Every asymmetric algorithm a key set may offer.
const KEY_SET_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Verifier {
    /// Builds a verifier from a validated `auth:` section, with its own metrics
    /// (for tests and tools; the server uses [`Verifier::new`]).
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, String> {
        Self::new(cfg, Arc::new(Metrics::new()))
    }

    /// Builds a verifier from a validated `auth:` section. With a key set, starts
    /// fetching it in the background (when inside a Tokio runtime).
    pub fn new(cfg: &AuthConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let client = match cfg.endpoints().is_empty() {
            true => None,
            false => {
                if cfg.allow_private_endpoints {
                    tracing::warn!(
                        endpoints = ?cfg.endpoints().iter().map(|(path, _)| *path).collect::<Vec<_>>(),
                        "auth.allow_private_endpoints is on: identity endpoints may reach internal addresses"
                    );
                }
                Some(HttpClient::new(cfg.allow_private_endpoints).map_err(|e| format!("auth: HTTP client: {e}"))?)
            }
        };
        // `None`: keys come from a key set.
        let (fixed, supported) = match cfg.key_sources().as_slice() {
            [KeySourceKind::Secret] => {
                let secret = cfg.jwt_secret.as_deref().unwrap_or_default();
                let key = DecodingKey::from_secret(secret.as_bytes());
                (Some(key), vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512])
            }
            [KeySourceKind::PublicKey] => {
                let path = cfg.jwt_public_key.as_deref().unwrap_or_default();
                let pem = std::fs::read(path).map_err(|e| format!("auth.jwt_public_key {path:?}: {e}"))?;
                let pk = PublicKey::from_pem(&pem).map_err(|e| format!("auth.jwt_public_key {path:?}: {e}"))?;
                (Some(pk.key), pk.algorithms)
            }
            [KeySourceKind::KeySet] => (None, KEY_SET_ALGORITHMS.to_vec()),
            [] => return Err("auth: no jwt_secret, jwt_public_key, jwks_url or oidc_issuer".into()),
            _ => return Err("auth: more than one key source".into()),
        };
        let algorithms = chosen_algorithms(cfg, &supported)?;
        let keys = match (fixed, &client) {
            (Some(key), _) => Keys::Fixed(key),
            (None, Some(client)) => Keys::Set(KeyStore::start(
                cfg,
                client.clone(),
                metrics.clone(),
                algorithms.clone(),
            )),
            (None, None) => return Err("auth: a key set needs auth.jwks_url or auth.oidc_issuer".into()),
        };
        let rules = Rules::new(&validation(cfg, algorithms));
        let (rules_exp, rules_no_exp) = (rules.with_expiry(true), rules.with_expiry(false));
        let remote = match (&client, cfg.verify.enabled()) {
            (Some(client), true) => Some(RemoteVerifier::new(cfg, client.clone(), metrics.clone())),
            _ => None,
        };
        let refresher = match (&client, cfg.refresh.enabled()) {
            (Some(client), true) => Some(Refresher::new(cfg, client.clone())),
            _ => None,
        };
        Ok(Self {
            keys,
            rules,
            rules_exp,
            rules_no_exp,
            claims: ClaimRules::from_config(cfg),
            sources: TokenSources::from_config(cfg),
            remote,
            refresher,
            metrics,
        })
    }

    /// Where requests carry their tokens.
    pub fn token_sources(&self) -> &TokenSources {
        &self.sources
    }

    /// Verifies `token` and derives the [`Principal`]: locally, then with
    /// `auth.verify` when configured. Failures carry a bounded reason. Revocation is
    /// checked by [`super::authenticate`], which needs the broker.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let principal = self.verify_local(token).await?;
        if let Some(remote) = &self.remote {
            remote.check(token, &principal).await.map_err(AuthError::Invalid)?;
        }
        Ok(principal)
    }

    /// Local verification only: signature, claims, identity, `azp`.
    pub async fn verify_local(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.decode(token, &self.rules).await?;
        self.claims.principal(claims).map_err(AuthError::Invalid)
    }

    /// Verifies signature, algorithm, time claims, issuer and audience, and returns the
    /// claims without deriving an identity (for jobs whose tokens carry other claims,
    /// such as session tokens `{session_id, iat}`). `exp` is required only when
    /// `require_expiry` is true.
    pub async fn verify_claims(&self, token: &str, require_expiry: bool) -> Result<Map<String, Value>, AuthError> {
        let rules = if require_expiry {
            &self.rules_exp
        } else {
            &self.rules_no_exp
        };
        self.decode(token, rules).await
    }

    async fn decode(&self, token: &str, rules: &Rules) -> Result<Map<String, Value>, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid(header_failure(token)))?;
        let validation = rules.for_alg(header.alg).ok_or(invalid(InvalidReason::Algorithm))?;
        let decoded = match &self.keys {
            Keys::Fixed(key) => jsonwebtoken::decode::<Map<String, Value>>(token, key, validation),
            Keys::Set(store) => {
                let key = store.key(header.kid.as_deref()).await.map_err(invalid)?;
                if !key.algorithms.contains(&header.alg) {
                    return Err(invalid(InvalidReason::Algorithm));
                }
                jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            }
        };
        decoded.map(|data| data.claims).map_err(|e| invalid(classify(e.kind())))
    }
}

/// `auth.algorithms` when set (each must fit the key type), else every supported one.
fn chosen_algorithms(cfg: &AuthConfig, supported: &[Algorithm]) -> Result<Vec<Algorithm>, String> {
    if cfg.algorithms.is_empty() {
        return Ok(supported.to_vec());
    }
    let chosen: Vec<Algorithm> = cfg
        .algorithms
        .iter()
        .map(|a| parse_algorithm(a))
        .collect::<Result<_, _>>()?;
    let secret_key = supported.iter().copied().all(is_hmac);
    if chosen.iter().any(|a| is_hmac(*a) != secret_key) {
        return Err("auth.algorithms: an algorithm does not fit the key type".into());
    }
    Ok(chosen)
}

fn invalid(reason: InvalidReason) -> AuthError {
    AuthError::Invalid(reason)
}
