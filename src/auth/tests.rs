//! Table-driven tests of token verification: every rejection reason.

use super::*;
use crate::config::AuthConfig;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "unit-test-secret-0123456789abcdef0123";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn config() -> AuthConfig {
    AuthConfig {
        jwt_secret: Some(SECRET.into()),
        expected_issuer: Some("issuer.example".into()),
        expected_audience: Some("streamgate".into()),
        ..AuthConfig::default()
    }
}

fn sign(alg: Algorithm, secret: &str, claims: Value) -> String {
    encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn good_claims() -> Value {
    json!({ "sub": "42", "exp": now() + 60, "iss": "issuer.example", "aud": "streamgate" })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

fn unsigned(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

#[tokio::test]
async fn rejections_carry_their_reason() {
    use InvalidReason as R;
    let cases: Vec<(&str, String, InvalidReason)> = vec![
        ("garbage", "not-a-jwt".into(), R::Malformed),
        ("two parts", "a.b".into(), R::Malformed),
        (
            "wrong secret",
            sign(Algorithm::HS256, "another-secret-0123456789abcdef01234", good_claims()),
            R::Signature,
        ),
        ("alg none", unsigned(&good_claims()), R::Algorithm),
        (
            "expired",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "exp", json!(now() - 10))),
            R::Expired,
        ),
        (
            "not yet valid",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "nbf", json!(now() + 60))),
            R::NotYetValid,
        ),
        (
            "no exp",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "exp", Value::Null)),
            R::MissingExpiry,
        ),
        (
            "wrong issuer",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "iss", json!("evil"))),
            R::Issuer,
        ),
        (
            "no issuer",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "iss", Value::Null)),
            R::Issuer,
        ),
        (
            "wrong audience",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "aud", json!("other"))),
            R::Audience,
        ),
        (
            "no identity",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "sub", Value::Null)),
            R::Identity,
        ),
        (
            "identity with colon",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "sub", json!("a:b"))),
            R::Identity,
        ),
        (
            "identity with star",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "sub", json!("*"))),
            R::Identity,
        ),
        (
            "empty identity",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "sub", json!(""))),
            R::Identity,
        ),
        (
            "long identity",
            sign(
                Algorithm::HS256,
                SECRET,
                with(good_claims(), "sub", json!("a".repeat(129))),
            ),
            R::Identity,
        ),
        (
            "float identity",
            sign(Algorithm::HS256, SECRET, with(good_claims(), "sub", json!(4.5))),
            R::Identity,
        ),
    ];
    let verifier = Verifier::from_config(&config()).unwrap();
    for (name, token, reason) in cases {
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            AuthError::Invalid(reason),
            "case {name}"
        );
    }
}

#[tokio::test]
async fn accepted_tokens_yield_the_identity() {
    let long = "a".repeat(128);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("string sub", good_claims(), "42"),
        ("numeric sub", with(good_claims(), "sub", json!(42)), "42"),
        (
            "all allowed characters",
            with(good_claims(), "sub", json!("user.name_1-x")),
            "user.name_1-x",
        ),
        ("128 characters", with(good_claims(), "sub", json!(long)), &long),
        (
            "audience list",
            with(good_claims(), "aud", json!(["x", "streamgate"])),
            "42",
        ),
    ];
    let verifier = Verifier::from_config(&config()).unwrap();
    for (name, claims, identity) in cases {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let principal = verifier
                .verify(&sign(alg, SECRET, claims.clone()))
                .await
                .unwrap_or_else(|e| panic!("case {name} {alg:?}: {e}"));
            assert_eq!(&*principal.identity, identity, "case {name}");
        }
    }
}

#[tokio::test]
async fn configured_algorithms_restrict_the_set() {
    let cfg = AuthConfig {
        algorithms: vec!["HS512".into()],
        ..config()
    };
    let verifier = Verifier::from_config(&cfg).unwrap();
    let hs256 = sign(Algorithm::HS256, SECRET, good_claims());
    assert_eq!(
        verifier.verify(&hs256).await.unwrap_err(),
        AuthError::Invalid(InvalidReason::Algorithm)
    );
    assert!(verifier
        .verify(&sign(Algorithm::HS512, SECRET, good_claims()))
        .await
        .is_ok());
}

#[tokio::test]
async fn leeway_admits_a_just_expired_token() {
    let token = sign(Algorithm::HS256, SECRET, with(good_claims(), "exp", json!(now() - 5)));
    let strict = Verifier::from_config(&config()).unwrap();
    assert!(strict.verify(&token).await.is_err());
    let lenient = Verifier::from_config(&AuthConfig {
        leeway_seconds: 30,
        ..config()
    })
    .unwrap();
    assert!(lenient.verify(&token).await.is_ok());
}

#[tokio::test]
async fn expiry_is_optional_when_not_required() {
    let cfg = AuthConfig {
        require_expiry: false,
        ..config()
    };
    let token = sign(Algorithm::HS256, SECRET, with(good_claims(), "exp", Value::Null));
    let principal = Verifier::from_config(&cfg).unwrap().verify(&token).await.unwrap();
    assert_eq!(principal.expires_at, None);
}

#[tokio::test]
async fn identity_claim_is_configurable() {
    let cfg = AuthConfig {
        identity_claim: "user_id".into(),
        ..config()
    };
    let token = sign(Algorithm::HS256, SECRET, with(good_claims(), "user_id", json!(7)));
    assert_eq!(
        &*Verifier::from_config(&cfg)
            .unwrap()
            .verify(&token)
            .await
            .unwrap()
            .identity,
        "7"
    );
}
