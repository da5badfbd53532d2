//! Key material and algorithm names.

use jsonwebtoken::{Algorithm, DecodingKey};

/// A public verification key loaded from PEM, with the algorithms its type allows.
pub struct PublicKey {
    /// Key usable by `jsonwebtoken::decode`.
    pub key: DecodingKey,
    /// Every algorithm this key type can verify.
    pub algorithms: Vec<Algorithm>,
}

impl PublicKey {
    /// Parses an RSA, EC (P-256/P-384) or Ed25519 public key in PEM form.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        use Algorithm::*;
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            let algorithms = vec![RS256, RS384, RS512, PS256, PS384, PS512];
            return Ok(Self { key, algorithms });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self {
                key,
                algorithms: vec![ES256, ES384],
            });
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(Self {
                key,
                algorithms: vec![EdDSA],
            });
        }
        Err("not a PEM RSA, EC or Ed25519 public key".into())
    }
}

/// Parses an `alg` name (`HS256`, `RS256`, `ES256`, `EdDSA`, ...). `none` is refused.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    name.parse::<Algorithm>()
        .map_err(|_| format!("{name:?} is not a supported algorithm"))
}

/// True for the HMAC family (shared-secret algorithms).
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}
