//! Table-driven tests of JWKS parsing: which keys are kept, which are skipped and why.

use super::*;
use serde_json::json;

const RSA_A: &str = include_str!("../../../tests/fixtures/auth/rsa_a.jwk.json");
const EC_P256: &str = include_str!("../../../tests/fixtures/auth/ec_p256.jwk.json");
const EC_P384: &str = include_str!("../../../tests/fixtures/auth/ec_p384.jwk.json");
const ED25519: &str = include_str!("../../../tests/fixtures/auth/ed25519.jwk.json");

fn jwk(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn with(mut key: Value, field: &str, value: Value) -> Value {
    if value.is_null() {
        key.as_object_mut().unwrap().remove(field);
    } else {
        key[field] = value;
    }
    key
}

fn all_asymmetric() -> Vec<Algorithm> {
    use Algorithm::*;
    vec![RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA]
}

#[test]
fn keys_are_kept_with_the_algorithms_their_type_allows() {
    use Algorithm::*;
    let cases: Vec<(&str, Value, Vec<Algorithm>)> = vec![
        ("rsa", jwk(RSA_A), vec![RS256, RS384, RS512, PS256, PS384, PS512]),
        (
            "rsa pinned to RS256",
            with(jwk(RSA_A), "alg", json!("RS256")),
            vec![RS256],
        ),
        ("ec p-256", jwk(EC_P256), vec![ES256]),
        ("ec p-384", jwk(EC_P384), vec![ES384]),
        ("ed25519", jwk(ED25519), vec![EdDSA]),
        ("no use field", with(jwk(ED25519), "use", Value::Null), vec![EdDSA]),
    ];
    for (name, key, algorithms) in cases {
        let doc = json!({ "keys": [key] }).to_string();
        let (set, skipped) = KeySet::parse(doc.as_bytes(), &all_asymmetric()).unwrap();
        assert!(skipped.is_empty(), "case {name}: {skipped:?}");
        let found = set.find(None).unwrap_or_else(|| panic!("case {name}: key kept"));
        assert_eq!(found.algorithms, algorithms, "case {name}");
    }
}

#[test]
fn unusable_keys_are_skipped_with_a_reason() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("encryption key", with(jwk(RSA_A), "use", json!("enc")), "use != sig"),
        (
            "symmetric key",
            json!({ "kty": "oct", "kid": "h", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" }),
            "symmetric",
        ),
        (
            "p-521",
            json!({ "kty": "EC", "kid": "p5", "crv": "P-521", "x": "AA", "y": "AA" }),
            "not supported",
        ),
        ("unknown type", json!({ "kty": "XYZ", "kid": "u" }), "unreadable"),
        (
            "alg of another family",
            with(jwk(EC_P256), "alg", json!("RS256")),
            "does not fit",
        ),
        (
            "encryption alg",
            with(jwk(RSA_A), "alg", json!("RSA-OAEP")),
            "not a signature",
        ),
        (
            "bad rsa material",
            with(jwk(RSA_A), "n", json!("!!")),
            "bad key material",
        ),
    ];
    for (name, key, why) in cases {
        let doc = json!({ "keys": [key, jwk(ED25519)] }).to_string();
        let (set, skipped) = KeySet::parse(doc.as_bytes(), &all_asymmetric()).unwrap();
        assert_eq!(set.len(), 1, "case {name}: only the good key is kept");
        assert_eq!(skipped.len(), 1, "case {name}: {skipped:?}");
        assert!(
            skipped[0].contains(why),
            "case {name}: {:?} should say {why:?}",
            skipped[0]
        );
    }
}

#[test]
fn configured_algorithms_filter_the_set() {
    let doc = json!({ "keys": [jwk(RSA_A), jwk(EC_P256)] }).to_string();
    let (set, skipped) = KeySet::parse(doc.as_bytes(), &[Algorithm::ES256]).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.find(Some("ec_p256")).is_some());
    assert!(set.find(Some("rsa_a")).is_none());
    assert_eq!(skipped.len(), 1);
}

#[test]
fn malformed_documents_are_errors() {
    const CASES: &[(&str, &str)] = &[
        ("not json", "<html>"),
        ("no keys", "{}"),
        ("keys not a list", r#"{"keys": {}}"#),
        ("empty", ""),
    ];
    for (name, body) in CASES {
        assert!(
            KeySet::parse(body.as_bytes(), &all_asymmetric()).is_err(),
            "case {name}"
        );
    }
}

#[test]
fn tokens_without_kid_match_only_a_single_key_set() {
    let one = json!({ "keys": [jwk(ED25519)] }).to_string();
    let two = json!({ "keys": [jwk(ED25519), jwk(EC_P256)] }).to_string();
    let (one, _) = KeySet::parse(one.as_bytes(), &all_asymmetric()).unwrap();
    let (two, _) = KeySet::parse(two.as_bytes(), &all_asymmetric()).unwrap();
    assert!(one.find(None).is_some());
    assert!(two.find(None).is_none());
    assert!(two.find(Some("ec_p256")).is_some());
    assert!(two.find(Some("nope")).is_none());
}
