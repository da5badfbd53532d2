//! A parsed JSON Web Key Set (RFC 7517): `kid` → key, with the algorithms each key
//! may verify.

use super::PublicKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Usable keys of one fetched set.
#[derive(Default)]
pub(super) struct KeySet {
    by_kid: HashMap<String, Arc<PublicKey>>,
    /// Keys without a `kid`; used only when the set holds exactly one key.
    unnamed: Vec<Arc<PublicKey>>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("unnamed", &self.unnamed.len())
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document, keeping keys that may verify one of `allowed`.
    /// Keys streamgate cannot or must not use (encryption keys, symmetric `oct` keys,
    /// P-521, unknown types) are skipped and described in the second value; only a
    /// document that is not `{"keys": [...]}` is an error.
    pub(super) fn parse(body: &[u8], allowed: &[Algorithm]) -> Result<(Self, Vec<String>), String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let doc: Document = serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for (i, raw) in doc.keys.into_iter().enumerate() {
            let kid = raw.get("kid").and_then(Value::as_str).map(str::to_string);
            let label = kid.clone().unwrap_or_else(|| format!("#{i}"));
            match usable_key(raw, allowed) {
                Err(why) => skipped.push(format!("{label}: {why}")),
                Ok(key) => match kid {
                    Some(kid) if set.by_kid.contains_key(&kid) => skipped.push(format!("{label}: duplicate kid")),
                    Some(kid) => {
                        set.by_kid.insert(kid, Arc::new(key));
                    }
                    None => set.unnamed.push(Arc::new(key)),
                },
            }
        }
        Ok((set, skipped))
    }

    /// The key for a token's `kid`. A token without `kid` matches only a set of
    /// exactly one key: guessing among several would let any key sign any token.
    pub(super) fn find(&self, kid: Option<&str>) -> Option<Arc<PublicKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None if self.len() == 1 => self.by_kid.values().chain(&self.unnamed).next().cloned(),
            None => None,
        }
    }

    /// Number of usable keys.
    pub(super) fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }
}

fn usable_key(raw: Value, allowed: &[Algorithm]) -> Result<PublicKey, String> {
    if raw.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
        return Err("not a signing key (use != sig)".into());
    }
    let jwk: Jwk = serde_json::from_value(raw).map_err(|e| format!("unreadable: {e}"))?;
    let family = family(&jwk.algorithm)?;
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        None | Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => family,
        Some(alg) => {
            let alg: Algorithm = alg
                .to_string()
                .parse()
                .map_err(|_| format!("alg {alg} is not a signature algorithm"))?;
            if !family.contains(&alg) {
                return Err(format!("alg {alg:?} does not fit the key type"));
            }
            vec![alg]
        }
    };
    let algorithms: Vec<Algorithm> = algorithms.into_iter().filter(|a| allowed.contains(a)).collect();
    if algorithms.is_empty() {
        return Err("none of its algorithms is accepted (auth.algorithms)".into());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key material: {e}"))?;
    Ok(PublicKey { key, algorithms })
}

/// Every algorithm a key type and curve can verify.
fn family(params: &AlgorithmParameters) -> Result<Vec<Algorithm>, String> {
    use Algorithm::*;
    match params {
        AlgorithmParameters::RSA(_) => Ok(vec![RS256, RS384, RS512, PS256, PS384, PS512]),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Ok(vec![ES256]),
            EllipticCurve::P384 => Ok(vec![ES384]),
            EllipticCurve::P521 | EllipticCurve::Ed25519 => Err(format!("EC curve {:?} is not supported", ec.curve)),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Ok(vec![EdDSA]),
            EllipticCurve::P256 | EllipticCurve::P384 | EllipticCurve::P521 => {
                Err(format!("OKP curve {:?} is not supported", okp.curve))
            }
        },
        // A symmetric key published in a key set would let anyone who can read the
        // set sign tokens.
        AlgorithmParameters::OctetKey(_) => Err("symmetric (oct) keys are never taken from a key set".into()),
    }
}

#[cfg(test)]
mod tests;
