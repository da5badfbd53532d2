//! Auth against real identity-provider endpoints over real sockets: JWKS (rotation,
//! outage, slowness, garbage, unknown-kid floods), OIDC discovery, remote
//! verification, the refresh call, token sources, revocation across two nodes
//! sharing one Redis, and SSRF refusal at startup.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use streamgate::config::{Config, TokenLocation, TokenSourceKind};
use support::idp::{Answer, Idp};
use support::*;

// ---------------------------------------------------------------- helpers

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/auth/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The public JWK of fixture key `name` (its `kid` is `name`).
fn jwk(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{name}.jwk.json"))).unwrap()).unwrap()
}

/// A token signed by fixture key `key` with header `kid`.
fn sign_as(key: &str, kid: &str, alg: Algorithm, claims: &Value) -> String {
    let pem = std::fs::read(fixture(&format!("{key}.pem"))).unwrap();
    let encoding = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iat": now(), "exp": now() + 300, "jti": format!("j{}", rand::random::<u64>()) })
}

/// A token of fixture key `key` (kid = key) for identity 42.
fn signed(key: &str, alg: Algorithm) -> String {
    sign_as(key, key, alg, &claims("42"))
}

/// A relay server verifying against `idp`'s key set, with short cache times.
fn jwks_config(idp: &Idp) -> Config {
    let mut c = base_config();
    c.auth.jwt_secret = None;
    c.auth.jwks_url = Some(format!("{}/jwks", idp.base));
    c.auth.allow_private_endpoints = true;
    c.auth.jwks_cache_seconds = 1;
    c.auth.jwks_min_refresh_seconds = 1;
    c
}

/// An HS256 server that also asks `idp`'s `/verify`.
fn verify_config(idp: &Idp) -> Config {
    let mut c = base_config();
    c.auth.allow_private_endpoints = true;
    c.auth.verify.url = Some(format!("{}/verify", idp.base));
    c.auth.service_token = Some("svc-token-123".into());
    c.auth.verify.timeout_ms = 300;
    c
}

/// An HS256 token for `sub` with a fresh `jti` (so no two tokens are equal).
fn hs_token(sub: &str) -> String {
    token_with(claims(sub))
}

/// `GET /stats` with `token`: the status and JSON body (any authenticated route will do).
async fn probe(server: &TestServer, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/stats", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn provider_calls(server: &TestServer, call: &str, result: &str) -> f64 {
    metric(
        &server.base,
        "streamgate_auth_provider_calls_total",
        &format!("call=\"{call}\",result=\"{result}\""),
    )
    .await
}

/// Polls until `token` gets `status` from the probe.
async fn eventually_status(server: &TestServer, token: &str, status: u16, what: &str) {
    eventually(what, || async { probe(server, token).await.0 == status }).await;
}

fn invalid() -> Value {
    json!({ "error": "invalid token" })
}

// ---------------------------------------------------------------- JWKS

#[tokio::test]
async fn every_key_type_of_a_key_set_verifies_its_tokens() {
    let idp = Idp::start().await;
    idp.set_keys(vec![jwk("rsa_a"), jwk("ec_p256"), jwk("ec_p384"), jwk("ed25519")]);
    let server = TestServer::start(jwks_config(&idp)).await;
    const CASES: &[(&str, &str, Algorithm)] = &[
        ("RS256", "rsa_a", Algorithm::RS256),
        ("PS384", "rsa_a", Algorithm::PS384),
        ("ES256 on P-256", "ec_p256", Algorithm::ES256),
        ("ES384 on P-384", "ec_p384", Algorithm::ES384),
        ("EdDSA on Ed25519", "ed25519", Algorithm::EdDSA),
    ];
    for (name, key, alg) in CASES {
        assert_eq!(probe(&server, &signed(key, *alg)).await.0, 200, "case {name}");
    }
    // A key may only verify its own family: ES384 claimed against the P-256 key.
    let wrong = sign_as("ec_p384", "ec_p256", Algorithm::ES384, &claims("42"));
    assert_eq!(
        probe(&server, &wrong).await,
        (401, invalid()),
        "alg outside the key's family"
    );
    // A token signed by another key under a known kid.
    let forged = sign_as("rsa_b", "rsa_a", Algorithm::RS256, &claims("42"));
    assert_eq!(
        probe(&server, &forged).await,
        (401, invalid()),
        "signature by another key"
    );
}

#[tokio::test]
async fn a_rotated_key_is_accepted_without_restart_and_a_removed_one_stops() {
    let idp = Idp::start().await;
    idp.set_keys(vec![jwk("rsa_a")]);
    let server = TestServer::start(jwks_config(&idp)).await;
    let old = signed("rsa_a", Algorithm::RS256);
    let new = signed("rsa_b", Algorithm::RS256);
    assert_eq!(probe(&server, &old).await.0, 200);
    assert_eq!(probe(&server, &new).await.0, 401, "rsa_b is not published yet");

    idp.set_keys(vec![jwk("rsa_a"), jwk("rsa_b")]);
    eventually_status(&server, &new, 200, "the new key is fetched for its unknown kid").await;
    assert_eq!(probe(&server, &old).await.0, 200, "the old key still works");

    idp.set_keys(vec![jwk("rsa_b")]);
    eventually_status(&server, &old, 401, "the removed key stops after the cache expires").await;
    assert_eq!(probe(&server, &new).await.0, 200);
    assert!(auth_failures(&server, "unknown_key").await >= 1.0);
}

#[tokio::test]
async fn the_cached_set_keeps_working_while_the_provider_is_down() {
    let mut idp = Idp::start().await;
    idp.set_keys(vec![jwk("ed25519")]);
    let server = TestServer::start(jwks_config(&idp)).await;
    let token = signed("ed25519", Algorithm::EdDSA);
    assert_eq!(probe(&server, &token).await.0, 200);

    idp.stop().await;
    // The set expires every second; wait until refetches have failed twice.
    eventually("key set refetches fail", || async {
        let all = metric(&server.base, "streamgate_auth_provider_calls_total", "call=\"jwks\"").await;
        all - provider_calls(&server, "jwks", "ok").await >= 2.0
    })
    .await;
    assert_eq!(probe(&server, &token).await.0, 200, "cached key still verifies");
    let unknown = signed("rsa_a", Algorithm::RS256);
    assert_eq!(
        probe(&server, &unknown).await,
        (401, invalid()),
        "unknown kid fails closed"
    );
}

#[tokio::test]
async fn a_slow_key_set_fails_closed() {
    let idp = Idp::start().await;
    idp.set_keys(vec![jwk("rsa_a")]);
    idp.set_jwks_answer(Some(Answer::Slow(Duration::from_secs(5))));
    let mut config = jwks_config(&idp);
    config.auth.jwks_timeout_ms = 200;
    let server = TestServer::start(config).await;
    let started = std::time::Instant::now();
    assert_eq!(
        probe(&server, &signed("rsa_a", Algorithm::RS256)).await,
        (401, invalid())
    );
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the timeout");
    assert_eq!(auth_failures(&server, "keys_unavailable").await, 1.0);
    eventually("the timeout is counted", || async {
        provider_calls(&server, "jwks", "timeout").await >= 1.0
    })
    .await;
}

#[tokio::test]
async fn a_malformed_key_set_is_refused_and_never_replaces_a_good_one() {
    // Garbage from the start: nothing verifies.
    let idp = Idp::start().await;
    idp.set_jwks_answer(Some(Answer::Garbage("<html>maintenance</html>")));
    let server = TestServer::start(jwks_config(&idp)).await;
    let token = signed("rsa_a", Algorithm::RS256);
    assert_eq!(probe(&server, &token).await, (401, invalid()));
    assert!(provider_calls(&server, "jwks", "malformed").await >= 1.0);
    assert_eq!(auth_failures(&server, "keys_unavailable").await, 1.0);

    // A good set, then garbage again: the good set stays in use.
    idp.set_keys(vec![jwk("rsa_a")]);
    idp.set_jwks_answer(None);
    eventually_status(&server, &token, 200, "the good set is fetched").await;
    idp.set_jwks_answer(Some(Answer::Json(json!({ "not": "a key set" }))));
    let before = provider_calls(&server, "jwks", "malformed").await;
    eventually("a malformed refetch is counted", || async {
        provider_calls(&server, "jwks", "malformed").await > before
    })
    .await;
    assert_eq!(probe(&server, &token).await.0, 200);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_the_provider_at_most_one_fetch_per_interval() {
    let idp = Idp::start().await;
    idp.set_keys(vec![jwk("rsa_a")]);
    let mut config = jwks_config(&idp);
    config.auth.jwks_cache_seconds = 300;
    config.auth.jwks_min_refresh_seconds = 60;
    let server = TestServer::start(config).await;
    assert_eq!(probe(&server, &signed("rsa_a", Algorithm::RS256)).await.0, 200);
    let hits_before = idp.jwks_hits();
    assert_eq!(hits_before, 1, "one fetch at start");

    let flood: Vec<_> = (0..40)
        .map(|i| {
            let token = sign_as("rsa_a", &format!("bogus-{i}"), Algorithm::RS256, &claims("42"));
            let server = &server;
            async move { probe(server, &token).await.0 }
        })
        .collect();
    let statuses = futures_util::future::join_all(flood).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(idp.jwks_hits() <= hits_before + 1, "hits: {}", idp.jwks_hits());
    assert_eq!(auth_failures(&server, "unknown_key").await, 40.0);
}

#[tokio::test]
async fn a_short_max_age_from_the_provider_wins_over_the_configured_cache() {
    let idp = Idp::start().await;
    idp.set_keys(vec![jwk("rsa_a")]);
    idp.set_cache_control(Some("public, max-age=1"));
    let mut config = jwks_config(&idp);
    config.auth.jwks_cache_seconds = 300;
    let server = TestServer::start(config).await;
    let token = signed("rsa_a", Algorithm::RS256);
    assert_eq!(probe(&server, &token).await.0, 200);
    idp.set_keys(vec![]);
    eventually_status(&server, &token, 401, "the key expires after max-age, not 300 s").await;
}

// ---------------------------------------------------------------- OIDC discovery

#[tokio::test]
async fn oidc_discovery_finds_the_key_set_and_sets_the_issuer() {
    let idp = Idp::start().await;
    idp.set_keys(vec![jwk("rsa_a")]);
    let mut config = base_config();
    config.auth.jwt_secret = None;
    config.auth.oidc_issuer = Some(idp.base.clone());
    config.auth.allow_private_endpoints = true;
    let server = TestServer::start(config).await;
    let mut good = claims("42");
    good["iss"] = json!(idp.base);
    let mut other = claims("42");
    other["iss"] = json!("https://evil.example");
    assert_eq!(
        probe(&server, &sign_as("rsa_a", "rsa_a", Algorithm::RS256, &good))
            .await
            .0,
        200
    );
    assert_eq!(
        probe(&server, &sign_as("rsa_a", "rsa_a", Algorithm::RS256, &other)).await,
        (401, invalid()),
        "iss must be the discovered issuer"
    );
    assert_eq!(idp.discovery_hits(), 1);
    assert_eq!(auth_failures(&server, "issuer").await, 1.0);
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let idp = Idp::start().await;
    idp.set_keys(vec![jwk("rsa_a")]);
    idp.set_discovery_issuer("https://someone-else.example");
    let mut config = base_config();
    config.auth.jwt_secret = None;
    config.auth.oidc_issuer = Some(idp.base.clone());
    config.auth.allow_private_endpoints = true;
    let server = TestServer::start(config).await;
    let mut c = claims("42");
    c["iss"] = json!(idp.base);
    assert_eq!(
        probe(&server, &sign_as("rsa_a", "rsa_a", Algorithm::RS256, &c)).await,
        (401, invalid())
    );
    assert_eq!(idp.jwks_hits(), 0, "keys are never fetched from an unverified document");
}

// ---------------------------------------------------------------- remote verification

#[tokio::test]
async fn remote_verification_answers_decide() {
    let idp = Idp::start().await;
    let server = TestServer::start(verify_config(&idp)).await;
    let cases: Vec<(&str, Answer, u16, Option<&str>)> = vec![
        (
            "active, same identity",
            Answer::Json(json!({ "active": true, "sub": "42" })),
            200,
            None,
        ),
        (
            "numeric identity",
            Answer::Json(json!({ "active": true, "sub": 42 })),
            200,
            None,
        ),
        (
            "inactive",
            Answer::Json(json!({ "active": false, "sub": "42" })),
            401,
            Some("inactive"),
        ),
        (
            "no active field",
            Answer::Json(json!({ "sub": "42" })),
            401,
            Some("inactive"),
        ),
        (
            "another identity",
            Answer::Json(json!({ "active": true, "sub": "43" })),
            401,
            Some("identity_mismatch"),
        ),
        ("provider error", Answer::Status(500), 401, Some("provider_error")),
        ("not JSON", Answer::Garbage("ok"), 401, Some("provider_error")),
        (
            "too slow",
            Answer::Slow(Duration::from_secs(3)),
            401,
            Some("provider_error"),
        ),
    ];
    for (name, answer, status, reason) in cases {
        idp.set_verify(answer);
        let before = match reason {
            Some(r) => auth_failures(&server, r).await,
            None => 0.0,
        };
        let (got, body) = probe(&server, &hs_token("42")).await;
        assert_eq!(got, status, "case {name}: {body}");
        if let Some(reason) = reason {
            assert_eq!(body, invalid(), "case {name}");
            assert_eq!(
                auth_failures(&server, reason).await - before,
                1.0,
                "case {name}: counted"
            );
        }
    }
    assert!(provider_calls(&server, "verify", "timeout").await >= 1.0);
}

#[tokio::test]
async fn remote_verification_sends_the_service_token_and_caches_positive_answers() {
    let idp = Idp::start().await;
    idp.set_verify(Answer::Json(json!({ "active": true, "sub": "42" })));
    let server = TestServer::start(verify_config(&idp)).await;
    let token = hs_token("42");
    assert_eq!(probe(&server, &token).await.0, 200);
    let seen = idp.last_seen();
    assert_eq!(seen.authorization.as_deref(), Some("Bearer svc-token-123"));
    assert_eq!(seen.form.get("token"), Some(&token), "RFC 7662 form body");

    assert_eq!(probe(&server, &token).await.0, 200);
    assert_eq!(idp.verify_hits(), 1, "the second connect is answered from the cache");
    assert_eq!(provider_calls(&server, "verify", "cached").await, 1.0);

    // A negative answer is never cached: the next attempt asks again.
    idp.set_verify(Answer::Json(json!({ "active": false })));
    let other = hs_token("42");
    assert_eq!(probe(&server, &other).await.0, 401);
    assert_eq!(probe(&server, &other).await.0, 401);
    assert_eq!(idp.verify_hits(), 3);
}

#[tokio::test]
async fn remote_verification_puts_the_token_where_configured() {
    const CASES: &[(&str, TokenLocation, &str, &str)] = &[
        ("body", TokenLocation::Body, "POST", "token"),
        ("query", TokenLocation::Query, "GET", "access_token"),
        ("header", TokenLocation::Header, "GET", "X-Token"),
    ];
    let idp = Idp::start().await;
    idp.set_verify(Answer::Json(json!({ "active": "true", "user": { "id": "42" } })));
    for (name, location, method, param) in CASES {
        let mut config = verify_config(&idp);
        config.auth.verify.token_location = *location;
        config.auth.verify.method = serde_json::from_value(json!(method)).unwrap();
        config.auth.verify.token_param = param.to_string();
        config.auth.verify.identity_field = "user.id".into();
        let server = TestServer::start(config).await;
        let token = hs_token("42");
        assert_eq!(probe(&server, &token).await.0, 200, "case {name}");
        let seen = idp.last_seen();
        let carried = match location {
            TokenLocation::Body => seen.form.get(*param).cloned(),
            TokenLocation::Query => seen.query.get(*param).cloned(),
            TokenLocation::Header => seen.headers.get(&param.to_ascii_lowercase()).cloned(),
        };
        assert_eq!(carried, Some(token), "case {name}");
        assert_eq!(
            seen.authorization.as_deref(),
            Some("Bearer svc-token-123"),
            "case {name}"
        );
    }
}

// ---------------------------------------------------------------- refresh call

#[tokio::test]
async fn refresh_trades_a_refresh_token_for_a_verified_principal() {
    let idp = Idp::start().await;
    let mut config = base_config();
    config.auth.allow_private_endpoints = true;
    config.auth.refresh.url = Some(format!("{}/token", idp.base));
    config.auth.refresh.extra_params = [("grant_type".to_string(), "refresh_token".to_string())].into();
    let server = TestServer::start(config).await;
    let verifier = &server.inner().state().verifier;
    let current = verifier.verify(&hs_token("42")).await.unwrap();
    assert_eq!(verifier.refresh_lead(), Some(Duration::from_secs(1800)));

    let mut later = claims("42");
    later["exp"] = json!(now() + 3600);
    let fresh = token_with(later);
    idp.set_token(Answer::Json(
        json!({ "access_token": fresh, "refresh_token": "r2", "token_type": "Bearer" }),
    ));
    let refreshed = verifier.refresh("r1", &current).await.expect("refresh succeeds");
    assert_eq!(&*refreshed.principal.identity, "42");
    assert_eq!(refreshed.principal.expires_at, Some(exp_of(&refreshed.token)));
    assert_eq!(refreshed.refresh_token.as_deref(), Some("r2"), "rotated refresh token");
    let seen = idp.last_seen();
    assert_eq!(seen.form.get("refresh_token").map(String::as_str), Some("r1"));
    assert_eq!(seen.form.get("grant_type").map(String::as_str), Some("refresh_token"));

    let cases: Vec<(&str, Answer, &str)> = vec![
        (
            "another identity",
            Answer::Json(json!({ "access_token": hs_token("43") })),
            "identity_mismatch",
        ),
        (
            "a token that does not verify",
            Answer::Json(json!({ "access_token": "not.a.jwt" })),
            "refused",
        ),
        (
            "no token in the answer",
            Answer::Json(json!({ "error": "invalid_grant" })),
            "malformed",
        ),
        ("provider error", Answer::Status(400), "status"),
    ];
    for (name, answer, label) in cases {
        idp.set_token(answer);
        let err = verifier.refresh("r1", &current).await.expect_err(name);
        assert_eq!(err.label(), label, "case {name}: {err}");
        assert!(
            provider_calls(&server, "refresh", label).await >= 1.0,
            "case {name}: counted"
        );
    }
}

fn exp_of(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&raw).unwrap()["exp"].as_u64().unwrap()
}

// ---------------------------------------------------------------- token sources

#[tokio::test]
async fn token_sources_follow_the_configured_order() {
    let mut config = base_config();
    config.auth.token_sources = vec![TokenSourceKind::Cookie, TokenSourceKind::Header];
    config.auth.cookie_name = "sg".into();
    let server = TestServer::start(config).await;
    let good = hs_token("42");
    let stats = format!("{}/stats", server.base);
    let client = reqwest::Client::new();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "cookie",
            client.get(&stats).header("cookie", format!("a=1; sg={good}")),
            200,
        ),
        ("header", client.get(&stats).bearer_auth(&good), 200),
        (
            "cookie wins over header",
            client
                .get(&stats)
                .header("cookie", format!("sg={good}"))
                .bearer_auth("garbage"),
            200,
        ),
        (
            "query is not configured",
            client.get(format!("{stats}?token={good}")),
            401,
        ),
    ];
    for (name, request, status) in cases {
        assert_eq!(request.send().await.unwrap().status().as_u16(), status, "case {name}");
    }
}

// ---------------------------------------------------------------- revocation

async fn admin(server: &TestServer, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/admin/revoke", server.base));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn connect(server: &TestServer, token: &str) -> (u16, Option<Value>) {
    let sse = SseClient::connect(&format!("{}/events", server.base), Some(token)).await;
    (sse.status.as_u16(), sse.error_body)
}

#[tokio::test]
async fn a_revocation_on_one_node_refuses_the_token_on_another() {
    let redis = Redis::start().await;
    let node = || {
        let mut c = base_config();
        c.broker.kind = streamgate::config::BrokerKind::Redis;
        c.broker.redis.url = redis.url();
        c
    };
    let a = TestServer::start(node()).await;
    let b = TestServer::start(node()).await;
    a.wait_ready(200).await;
    b.wait_ready(200).await;

    let mut revoked_claims = claims("42");
    revoked_claims["jti"] = json!("abc");
    let revoked = token_with(revoked_claims);
    let sibling = hs_token("42");
    assert_eq!(connect(&b, &revoked).await.0, 200, "valid before the revocation");

    let (status, body) = admin(&a, Some(API_KEY), json!({ "sub": "42", "jti": "abc" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["revoked"].clone(), body["jti"].clone()),
        (json!(true), json!("abc"))
    );
    let revoked_body = Some(json!({ "error": "token revoked" }));
    assert_eq!(connect(&b, &revoked).await, (401, revoked_body.clone()), "node b");
    assert_eq!(connect(&a, &revoked).await, (401, revoked_body.clone()), "node a");
    assert_eq!(connect(&b, &sibling).await.0, 200, "another token of the identity");

    // "Log out everywhere": every token of 42 issued before now + 1.
    let (status, _) = admin(&a, Some(API_KEY), json!({ "sub": "42", "before": now() + 1 })).await;
    assert_eq!(status, 200);
    assert_eq!(
        connect(&b, &sibling).await,
        (401, revoked_body),
        "issued before the cut"
    );
    assert_eq!(connect(&b, &hs_token("43")).await.0, 200, "other identities unaffected");
    assert_eq!(auth_failures(&b, "revoked").await, 2.0, "two refusals on node b");

    let listed: Value = reqwest::Client::new()
        .get(format!("{}/admin/revocations?sub=42", b.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = listed["revocations"].as_array().expect("a list");
    assert_eq!(entries.len(), 2, "{listed}");
    assert!(entries.iter().any(|e| e["jti"] == "abc"), "{listed}");
    assert!(entries.iter().any(|e| e["before"].is_u64()), "{listed}");
    assert!(
        entries.iter().all(|e| e["expires_at"].as_u64() > Some(now())),
        "{listed}"
    );
}

#[tokio::test]
async fn the_admin_api_refuses_bad_requests() {
    let server = TestServer::start(base_config()).await;
    let cases: Vec<(&str, Option<&str>, Value, u16)> = vec![
        ("no key", None, json!({ "sub": "42", "jti": "a" }), 401),
        (
            "wrong key",
            Some("wrong-key-0123456789"),
            json!({ "sub": "42", "jti": "a" }),
            401,
        ),
        ("bad sub", Some(API_KEY), json!({ "sub": "a:b", "jti": "a" }), 400),
        (
            "both kinds",
            Some(API_KEY),
            json!({ "sub": "42", "jti": "a", "before": 1 }),
            400,
        ),
        ("neither kind", Some(API_KEY), json!({ "sub": "42" }), 400),
        ("empty jti", Some(API_KEY), json!({ "sub": "42", "jti": "" }), 400),
        (
            "unknown field",
            Some(API_KEY),
            json!({ "sub": "42", "jti": "a", "x": 1 }),
            400,
        ),
        (
            "jti with its exp",
            Some(API_KEY),
            json!({ "sub": "42", "jti": "a", "exp": now() + 60 }),
            200,
        ),
    ];
    for (name, key, body, status) in cases {
        let (got, answer) = admin(&server, key, body).await;
        assert_eq!(got, status, "case {name}: {answer}");
        assert!(
            answer.get(if status == 200 { "revoked" } else { "error" }).is_some(),
            "case {name}"
        );
    }
    let resp = reqwest::Client::new()
        .get(format!("{}/admin/revocations?sub=42", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "listing needs the key too");
}

// ---------------------------------------------------------------- SSRF at startup

#[tokio::test]
async fn internal_endpoints_are_refused_at_startup() {
    const TARGETS: &[(&str, &str)] = &[
        ("loopback", "http://127.0.0.1:8080/jwks"),
        ("private", "https://10.0.0.1/jwks"),
        ("cloud metadata", "http://169.254.169.254/latest/meta-data"),
        ("v6 loopback", "http://[::1]:8080/jwks"),
        ("name resolving to loopback", "https://localhost/jwks"),
    ];
    for (name, url) in TARGETS {
        for key in ["jwks_url", "oidc_issuer", "verify.url", "refresh.url"] {
            let mut config = base_config();
            match key {
                "jwks_url" => {
                    config.auth.jwt_secret = None;
                    config.auth.jwks_url = Some(url.to_string());
                }
                "oidc_issuer" => {
                    config.auth.jwt_secret = None;
                    config.auth.oidc_issuer = Some(url.to_string());
                }
                "verify.url" => config.auth.verify.url = Some(url.to_string()),
                _ => config.auth.refresh.url = Some(url.to_string()),
            }
            let problems = config.validate(false);
            let path = format!("auth.{key}");
            let problem = problems
                .iter()
                .find(|p| p.path == path)
                .unwrap_or_else(|| panic!("case {name} {key}: no problem in {problems:?}"));
            assert!(problem.message.contains("SSRF"), "case {name} {key}: {problem}");
            config.auth.allow_private_endpoints = true;
            assert!(
                config.validate(false).is_empty(),
                "case {name} {key}: allowed with allow_private_endpoints"
            );
        }
    }
    // The real binary refuses to serve.
    let out = run_cli(
        &["serve"],
        &[("STREAMGATE__AUTH__JWKS_URL", "http://169.254.169.254/keys")],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("auth.jwks_url"), "{}", out.stderr);
}
