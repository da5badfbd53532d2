//! The `jsonwebtoken` rules built from `auth:`, and its errors turned into bounded
//! [`InvalidReason`]s.

use super::InvalidReason;
use crate::config::AuthConfig;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

/// Signature, time, issuer and audience rules for `algorithms` (never empty).
pub(super) fn validation(cfg: &AuthConfig, algorithms: Vec<Algorithm>) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms;
    v.leeway = cfg.leeway_seconds;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.required_spec_claims.clear();
    if cfg.require_expiry {
        v.required_spec_claims.insert("exp".into());
    }
    match cfg.issuer() {
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
pub(super) fn header_failure(token: &str) -> InvalidReason {
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

/// The reason of a `jsonwebtoken` decode error.
pub(super) fn classify(kind: &ErrorKind) -> InvalidReason {
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

/// One [`Validation`] per accepted algorithm. `jsonwebtoken` refuses a validation
/// whose algorithm list mixes key families, and a key set mixes them; a token is
/// checked against the rules of its own `alg` (already known to be accepted).
#[derive(Debug, Clone)]
pub(super) struct Rules {
    per_alg: Vec<Validation>,
}

impl Rules {
    /// Splits `base` by algorithm.
    pub(super) fn new(base: &Validation) -> Self {
        let per_alg = base
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = base.clone();
                v.algorithms = vec![*alg];
                v
            })
            .collect();
        Self { per_alg }
    }

    /// The same rules with `exp` required (`true`) or optional (`false`).
    pub(super) fn with_expiry(&self, required: bool) -> Self {
        let mut rules = self.clone();
        for v in &mut rules.per_alg {
            match required {
                true => v.required_spec_claims.insert("exp".into()),
                false => v.required_spec_claims.remove("exp"),
            };
        }
        rules
    }

    /// The rules for `alg`, or `None` when `alg` is not accepted.
    pub(super) fn for_alg(&self, alg: Algorithm) -> Option<&Validation> {
        self.per_alg.iter().find(|v| v.algorithms == [alg])
    }

    /// Every accepted algorithm.
    pub(super) fn algorithms(&self) -> Vec<Algorithm> {
        self.per_alg.iter().flat_map(|v| v.algorithms.iter().copied()).collect()
    }
}
