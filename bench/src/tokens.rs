//! HS256 tokens as streamgate expects them (`sub` = identity, `exp`).

use jsonwebtoken::{decode, encode, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    jti: u64,
}

/// A token for `identity`, valid for two hours; `jti` makes every token distinct.
pub fn mint(secret: &str, identity: &str, jti: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = Claims {
        sub: identity.to_string(),
        exp: now + 7200,
        jti,
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// The identity in a valid token (what the GRIP origin does for Pushpin clients).
pub fn verify(key: &DecodingKey, token: &str) -> Option<String> {
    let validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    decode::<Claims>(token, key, &validation).ok().map(|d| d.claims.sub)
}

/// The committed test key pair (2048-bit RSA) the RS256 connect run signs with.
pub const RSA_PRIVATE_PEM: &str = include_str!("../../tests/fixtures/keys/rsa_private.pem");
pub const RSA_PUBLIC_PEM: &str = include_str!("../../tests/fixtures/keys/rsa_public.pem");

/// The RS256 signing key of [`RSA_PRIVATE_PEM`].
pub fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("committed RSA fixture parses")
}

/// As [`mint`], signed RS256 with `key`.
pub fn mint_rs256(key: &EncodingKey, identity: &str, jti: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = Claims {
        sub: identity.to_string(),
        exp: now + 7200,
        jti,
    };
    encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, key).expect("RS256 signing cannot fail")
}
