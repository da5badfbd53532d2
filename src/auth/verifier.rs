//! [`Verifier`]: checks signature, algorithm, time claims, issuer, audience and the
//! identity claim, locally.

use super::identity::identity_from_claim;
use super::{is_hmac, parse_algorithm, AuthError, InvalidReason, Principal, PublicKey};
use crate::config::AuthConfig;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Verifies client tokens. Built once from `auth:`; `verify` never does I/O.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// Same rules with `exp` required / optional, for [`Verifier::verify_claims`].
    validation_exp: Validation,
    validation_no_exp: Validation,
    identity_claim: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .field("identity_claim", &self.identity_claim)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds a verifier from a validated `auth:` section.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, String> {
        let (key, supported) = if let Some(secret) = cfg.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            let key = DecodingKey::from_secret(secret.as_bytes());
            (key, vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512])
        } else if let Some(path) = cfg.jwt_public_key.as_deref().filter(|s| !s.is_empty()) {
            let pem = std::fs::read(path).map_err(|e| format!("auth.jwt_public_key {path:?}: {e}"))?;
            let pk = PublicKey::from_pem(&pem).map_err(|e| format!("auth.jwt_public_key {path:?}: {e}"))?;
            (pk.key, pk.algorithms)
        } else {
            return Err("auth: no jwt_secret or jwt_public_key".into());
        };
        let algorithms = if cfg.algorithms.is_empty() {
            supported
        } else {
            let chosen: Vec<Algorithm> = cfg
                .algorithms
                .iter()
                .map(|a| parse_algorithm(a))
                .collect::<Result<_, _>>()?;
            let secret_key = supported.iter().copied().all(is_hmac);
            if chosen.iter().any(|a| is_hmac(*a) != secret_key) {
                return Err("auth.algorithms: an algorithm does not fit the key type".into());
            }
            chosen
        };
        let validation = validation(cfg, algorithms);
        let (mut validation_exp, mut validation_no_exp) = (validation.clone(), validation.clone());
        validation_exp.required_spec_claims.insert("exp".into());
        validation_no_exp.required_spec_claims.remove("exp");
        Ok(Self {
            key,
            validation,
            validation_exp,
            validation_no_exp,
            identity_claim: cfg.identity_claim.clone(),
        })
    }

    /// Verifies `token` and derives the [`Principal`]. Failures carry a bounded reason.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.decode(token, &self.validation)?;
        let identity = claims
            .get(&self.identity_claim)
            .and_then(identity_from_claim)
            .ok_or(invalid(InvalidReason::Identity))?;
        let expires_at = claims.get("exp").and_then(Value::as_u64);
        Ok(Principal {
            identity: identity.into(),
            expires_at,
            claims: Arc::new(claims),
        })
    }

    /// Verifies signature, algorithm, time claims, issuer and audience, and returns the
    /// claims without deriving an identity (for jobs whose tokens carry other claims,
    /// such as session tokens `{session_id, iat}`). `exp` is required only when
    /// `require_expiry` is true.
    pub fn verify_claims(&self, token: &str, require_expiry: bool) -> Result<Map<String, Value>, AuthError> {
        let validation = if require_expiry {
            &self.validation_exp
        } else {
            &self.validation_no_exp
        };
        self.decode(token, validation)
    }

    fn decode(&self, token: &str, validation: &Validation) -> Result<Map<String, Value>, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid(header_failure(token)))?;
        if !validation.algorithms.contains(&header.alg) {
            return Err(invalid(InvalidReason::Algorithm));
        }
        jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, validation)
            .map(|data| data.claims)
            .map_err(|e| invalid(classify(e.kind())))
    }
}

fn validation(cfg: &AuthConfig, algorithms: Vec<Algorithm>) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms;
    v.leeway = cfg.leeway_seconds;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.required_spec_claims.clear();
    if cfg.require_expiry {
        v.required_spec_claims.insert("exp".into());
    }
    match cfg.expected_issuer.as_deref().filter(|s| !s.is_empty()) {
        Some(iss) => {
            // Required too: a token without `iss` must not pass an issuer check.
            v.set_issuer(&[iss]);
            v.required_spec_claims.insert("iss".into());
        }
        None => v.iss = None,
    }
    match cfg.expected_audience.as_deref().filter(|s| !s.is_empty()) {
        Some(aud) => {
            v.set_audience(&[aud]);
            v.required_spec_claims.insert("aud".into());
        }
        None => v.validate_aud = false,
    }
    v
}

/// Why a header did not parse: an `alg` outside what we support (`none`, say) is an
/// algorithm refusal; anything else is malformed.
fn header_failure(token: &str) -> InvalidReason {
    use base64::Engine;
    let alg = token
        .split('.')
        .next()
        .and_then(|h| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .and_then(|h| h.get("alg").map(Value::is_string));
    match alg {
        Some(true) => InvalidReason::Algorithm,
        _ => InvalidReason::Malformed,
    }
}

fn invalid(reason: InvalidReason) -> AuthError {
    AuthError::Invalid(reason)
}

fn classify(kind: &ErrorKind) -> InvalidReason {
    match kind {
        ErrorKind::InvalidSignature => InvalidReason::Signature,
        ErrorKind::ExpiredSignature => InvalidReason::Expired,
        ErrorKind::ImmatureSignature => InvalidReason::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidReason::Issuer,
        ErrorKind::InvalidAudience => InvalidReason::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => InvalidReason::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => InvalidReason::MissingExpiry,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => InvalidReason::Issuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => InvalidReason::Audience,
        _ => InvalidReason::Malformed,
    }
}
