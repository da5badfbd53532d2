//! The relay's HTTP contract (DESIGN.md "Wire contract" and "Event relay"): every
//! refusal as a status plus `{"error": ...}`, token verification as clients see it,
//! `/api/publish`, `/stats`, connection limits and readiness, over real sockets.

mod support;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use streamgate::config::{BrokerKind, Config};
use support::clients::WsConnect;
use support::*;

const HOUR: Duration = Duration::from_secs(3600);
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "streamgate-tests";

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A refused request as the client saw it.
#[derive(Debug, PartialEq)]
struct Refusal {
    status: u16,
    body: Value,
}

/// The three authenticated relay endpoints a client token opens.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Sse,
    Ws,
    Stats,
}

const ENDPOINTS: [Endpoint; 3] = [Endpoint::Sse, Endpoint::Ws, Endpoint::Stats];

/// Calls `endpoint` with `token` as a bearer header (or none) and returns the
/// refusal, or `None` when it was accepted.
async fn call(server: &TestServer, endpoint: Endpoint, token: Option<&str>) -> Option<Refusal> {
    match endpoint {
        Endpoint::Sse => {
            let sse = SseClient::connect(&format!("{}/events", server.base), token).await;
            (sse.status != 200).then(|| Refusal {
                status: sse.status.as_u16(),
                body: sse.error_body.unwrap_or(Value::Null),
            })
        }
        Endpoint::Ws => match WsClient::try_connect(&format!("{}/ws", server.ws_base), token).await {
            WsConnect::Open(_) => None,
            WsConnect::Refused(status, body) => Some(Refusal { status, body }),
        },
        Endpoint::Stats => {
            let mut req = reqwest::Client::new().get(format!("{}/stats", server.base));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.json().await.unwrap_or(Value::Null);
            (status != 200).then_some(Refusal { status, body })
        }
    }
}

/// The identity `/events` announces for `token`, or the refusal.
async fn sse_identity(server: &TestServer, token: &str) -> Result<String, Refusal> {
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(token)).await;
    if sse.status != 200 {
        return Err(Refusal {
            status: sse.status.as_u16(),
            body: sse.error_body.unwrap_or(Value::Null),
        });
    }
    let hello = sse.next_event().await.expect("connected event");
    assert_eq!(hello.event, "connected");
    let data: Value = serde_json::from_str(&hello.data).unwrap();
    Ok(data["identity"].as_str().expect("identity string").to_string())
}

fn unauthorized(message: &str) -> Option<Refusal> {
    Some(Refusal {
        status: 401,
        body: json!({ "error": message }),
    })
}

// === client tokens ===

/// How a case's token is made.
enum Make {
    /// The valid claims with these edits: `null` removes a claim; `exp`/`nbf`
    /// numbers are offsets from now.
    Claims(&'static str),
    /// Valid claims signed with another secret.
    OtherSecret,
    /// Exactly this text.
    Raw(&'static str),
    /// Valid claims, `{"alg":"none"}` header, empty signature.
    AlgNone,
    /// Valid claims with a `sub` one character too long.
    LongSub,
}

fn valid_claims() -> Value {
    json!({ "sub": "42", "iss": ISSUER, "aud": AUDIENCE, "exp": unix_now() + 3600 })
}

fn edited_claims(edits: &str) -> Value {
    let mut claims = valid_claims();
    let edits: Value = serde_json::from_str(edits).expect("case edits are JSON");
    for (key, value) in edits.as_object().unwrap() {
        let map = claims.as_object_mut().unwrap();
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Number(n) if key == "exp" || key == "nbf" => {
                map.insert(key.clone(), json!(unix_now() + n.as_i64().unwrap()));
            }
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
    claims
}

fn make_token(make: &Make) -> String {
    match make {
        Make::Claims(edits) => token_with(edited_claims(edits)),
        Make::OtherSecret => jsonwebtoken::encode(
            &Header::default(),
            &valid_claims(),
            &EncodingKey::from_secret(b"another-secret-0123456789abcdef0123456789"),
        )
        .unwrap(),
        Make::Raw(text) => text.to_string(),
        Make::LongSub => token_with(edited_claims(&json!({ "sub": "a".repeat(129) }).to_string())),
        Make::AlgNone => format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(valid_claims().to_string().as_bytes())
        ),
    }
}

fn strict_config() -> Config {
    let mut config = base_config();
    config.auth.expected_issuer = Some(ISSUER.into());
    config.auth.expected_audience = Some(AUDIENCE.into());
    config
}

#[tokio::test]
async fn missing_token_is_401_on_every_endpoint() {
    let server = TestServer::start(base_config()).await;
    for endpoint in ENDPOINTS {
        assert_eq!(
            call(&server, endpoint, None).await,
            unauthorized("missing token"),
            "{endpoint:?} without a token"
        );
    }
    // An empty query token or a non-bearer header is no token either.
    let sse = SseClient::connect(&format!("{}/events?token=", server.base), None).await;
    assert_eq!(
        (sse.status.as_u16(), sse.error_body),
        (401, Some(json!({"error": "missing token"})))
    );
    let resp = reqwest::Client::new()
        .get(format!("{}/events", server.base))
        .basic_auth("42", Some("password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"error": "missing token"}));
    assert_eq!(auth_failures(&server, "missing").await, 5.0);
}

#[tokio::test]
async fn invalid_tokens_are_401_and_counted_by_reason() {
    const CASES: &[(&str, Make, &str)] = &[
        ("bad signature", Make::OtherSecret, "signature"),
        ("not a JWT", Make::Raw("not-a-jwt"), "malformed"),
        ("three garbage parts", Make::Raw("abc.def.ghi"), "malformed"),
        ("alg none", Make::AlgNone, "algorithm"),
        ("expired", Make::Claims(r#"{"exp": -120}"#), "expired"),
        ("nbf in the future", Make::Claims(r#"{"nbf": 600}"#), "not_yet_valid"),
        ("missing exp", Make::Claims(r#"{"exp": null}"#), "missing_expiry"),
        ("wrong iss", Make::Claims(r#"{"iss": "https://evil.test"}"#), "issuer"),
        ("missing iss", Make::Claims(r#"{"iss": null}"#), "issuer"),
        ("wrong aud", Make::Claims(r#"{"aud": "someone-else"}"#), "audience"),
        ("missing aud", Make::Claims(r#"{"aud": null}"#), "audience"),
        ("sub with a colon", Make::Claims(r#"{"sub": "a:b"}"#), "identity"),
        ("sub with a space", Make::Claims(r#"{"sub": "a b"}"#), "identity"),
        ("sub with a wildcard", Make::Claims(r#"{"sub": "4*"}"#), "identity"),
        ("empty sub", Make::Claims(r#"{"sub": ""}"#), "identity"),
        ("sub of 129 characters", Make::LongSub, "identity"),
        ("missing sub", Make::Claims(r#"{"sub": null}"#), "identity"),
        ("float sub", Make::Claims(r#"{"sub": 4.2}"#), "identity"),
        // jsonwebtoken's own claim pass refuses a non-scalar `sub` before the
        // identity check runs, so it counts as malformed.
        ("object sub", Make::Claims(r#"{"sub": {"id": "42"}}"#), "malformed"),
    ];
    let server = TestServer::start(strict_config()).await;
    assert_eq!(
        sse_identity(&server, &make_token(&Make::Claims("{}"))).await,
        Ok("42".into()),
        "the unedited claims must pass (every case changes one thing)"
    );
    for (name, make, reason) in CASES {
        let token = make_token(make);
        let before = auth_failures(&server, reason).await;
        for endpoint in ENDPOINTS {
            assert_eq!(
                call(&server, endpoint, Some(&token)).await,
                unauthorized("invalid token"),
                "case {name} on {endpoint:?}"
            );
        }
        assert_eq!(
            auth_failures(&server, reason).await - before,
            3.0,
            "case {name}: streamgate_auth_failures_total{{reason=\"{reason}\"}}"
        );
    }
}

#[tokio::test]
async fn identity_of_128_characters_is_accepted() {
    let server = TestServer::start(base_config()).await;
    let identity = "a".repeat(128);
    assert_eq!(sse_identity(&server, &token(&identity, HOUR)).await, Ok(identity));
}

#[tokio::test]
async fn numeric_sub_becomes_its_decimal_identity() {
    let server = TestServer::start(base_config()).await;
    let token = token_with(json!({ "sub": 42, "exp": unix_now() + 3600 }));
    assert_eq!(sse_identity(&server, &token).await, Ok("42".into()));
}

#[tokio::test]
async fn identity_claim_selects_another_claim() {
    let mut config = base_config();
    config.auth.identity_claim = "user_id".into();
    let server = TestServer::start(config).await;
    let token = token_with(json!({ "sub": "ignored", "user_id": "u-7", "exp": unix_now() + 3600 }));
    assert_eq!(sse_identity(&server, &token).await, Ok("u-7".into()));
    let only_sub = token_with(json!({ "sub": "42", "exp": unix_now() + 3600 }));
    assert_eq!(
        sse_identity(&server, &only_sub).await.err(),
        unauthorized("invalid token"),
        "without the configured claim there is no identity"
    );
}

#[tokio::test]
async fn leeway_admits_a_just_expired_token_only() {
    let mut config = base_config();
    config.auth.leeway_seconds = 30;
    let server = TestServer::start(config).await;
    let just_expired = token_with(json!({ "sub": "42", "exp": unix_now() - 5 }));
    assert_eq!(sse_identity(&server, &just_expired).await, Ok("42".into()));
    let long_expired = token_with(json!({ "sub": "42", "exp": unix_now() - 120 }));
    assert_eq!(
        sse_identity(&server, &long_expired).await.err(),
        unauthorized("invalid token")
    );
}

#[tokio::test]
async fn missing_exp_is_accepted_when_expiry_is_not_required() {
    let mut config = base_config();
    config.auth.require_expiry = false;
    let server = TestServer::start(config).await;
    let token = token_with(json!({ "sub": "42" }));
    assert_eq!(sse_identity(&server, &token).await, Ok("42".into()));
}

#[tokio::test]
async fn algorithm_outside_the_configured_set_is_401() {
    let mut config = base_config();
    config.auth.algorithms = vec!["HS256".into()];
    let server = TestServer::start(config).await;
    let claims = json!({ "sub": "42", "exp": unix_now() + 3600 });
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(sse_identity(&server, &hs384).await.err(), unauthorized("invalid token"));
    assert_eq!(auth_failures(&server, "algorithm").await, 1.0);
    assert_eq!(sse_identity(&server, &token_with(claims)).await, Ok("42".into()));
}

#[tokio::test]
async fn public_key_tokens_are_accepted_and_hmac_confusion_refused() {
    // (alg, public key fixture, private key fixture)
    const CASES: &[(Algorithm, &str, &str)] = &[
        (Algorithm::RS256, "rsa_public.pem", "rsa_private.pem"),
        (Algorithm::PS256, "rsa_public.pem", "rsa_private.pem"),
        (Algorithm::ES256, "ec_p256_public.pem", "ec_p256_private.pem"),
        (Algorithm::EdDSA, "ed25519_public.pem", "ed25519_private.pem"),
    ];
    for (alg, public, private) in CASES {
        let mut config = base_config();
        config.auth.jwt_secret = None;
        config.auth.jwt_public_key = Some(fixture(public));
        let server = TestServer::start(config).await;
        let pem = read_fixture(private);
        let key = match alg {
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .unwrap();
        let claims = json!({ "sub": "42", "exp": unix_now() + 3600 });
        let signed = jsonwebtoken::encode(&Header::new(*alg), &claims, &key).unwrap();
        assert_eq!(
            sse_identity(&server, &signed).await,
            Ok("42".into()),
            "{alg:?} token against {public}"
        );
        // The classic confusion attack: HS256 keyed with the public key's bytes.
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&read_fixture(public)),
        )
        .unwrap();
        assert_eq!(
            sse_identity(&server, &confused).await.err(),
            unauthorized("invalid token"),
            "HS256 token against the {alg:?} key {public}"
        );
        // And a token made with the test HMAC secret.
        assert_eq!(
            sse_identity(&server, &token("42", HOUR)).await.err(),
            unauthorized("invalid token"),
            "HS256 secret token against {public}"
        );
    }
}

// === POST /api/publish ===

async fn post_publish(server: &TestServer, bearer: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/publish", server.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = bearer {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_publish_accepts_identity_and_channel_with_202() {
    let server = TestServer::start(base_config()).await;
    for body in [
        r#"{"identity":"42","data":{"n":1}}"#,
        r#"{"channel":"room-1","data":"hi"}"#,
    ] {
        assert_eq!(
            post_publish(&server, Some(API_KEY), body).await,
            (202, json!({ "published": true })),
            "{body}"
        );
    }
}

/// (case, bearer, body, status, exact error text or `None` for any non-empty text).
type PublishCase = (
    &'static str,
    Option<&'static str>,
    &'static str,
    u16,
    Option<&'static str>,
);

#[tokio::test]
async fn api_publish_refuses_bad_requests() {
    const CASES: &[PublishCase] = &[
        (
            "missing key",
            None,
            r#"{"identity":"42","data":1}"#,
            401,
            Some("missing token"),
        ),
        (
            "wrong key",
            Some("wrong-key-0123456789"),
            r#"{"identity":"42","data":1}"#,
            401,
            Some("invalid token"),
        ),
        (
            "key prefix",
            Some("test-api-key"),
            r#"{"identity":"42","data":1}"#,
            401,
            Some("invalid token"),
        ),
        ("invalid JSON", Some(API_KEY), r#"{"identity":"42","data":"#, 400, None),
        ("not an object", Some(API_KEY), "[1,2]", 400, None),
        (
            "neither identity nor channel",
            Some(API_KEY),
            r#"{"data":1}"#,
            400,
            None,
        ),
        (
            "both identity and channel",
            Some(API_KEY),
            r#"{"identity":"42","channel":"room","data":1}"#,
            400,
            None,
        ),
        (
            "identity with a colon",
            Some(API_KEY),
            r#"{"identity":"a:b","data":1}"#,
            400,
            None,
        ),
        (
            "identity with a wildcard",
            Some(API_KEY),
            r#"{"identity":"*","data":1}"#,
            400,
            None,
        ),
        (
            "empty identity",
            Some(API_KEY),
            r#"{"identity":"","data":1}"#,
            400,
            None,
        ),
        (
            "numeric identity",
            Some(API_KEY),
            r#"{"identity":42,"data":1}"#,
            400,
            None,
        ),
        ("missing data", Some(API_KEY), r#"{"identity":"42"}"#, 400, None),
    ];
    let server = TestServer::start(base_config()).await;
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&token("42", HOUR))).await;
    assert_eq!(sse.next_event().await.unwrap().event, "connected");
    for (name, bearer, body, status, error) in CASES {
        let (got_status, got_body) = post_publish(&server, *bearer, body).await;
        assert_eq!(got_status, *status, "case {name}: body {got_body}");
        let text = got_body["error"].as_str().unwrap_or_default();
        match error {
            Some(expected) => assert_eq!(text, *expected, "case {name}"),
            None => assert!(!text.is_empty(), "case {name}: error text in {got_body}"),
        }
    }
    // None of the refused requests published anything.
    assert_eq!(server.publish("42", json!("marker")).await, 202);
    assert_eq!(sse.next_non_heartbeat().await.unwrap().data, r#""marker""#);
}

#[tokio::test]
async fn api_publish_data_reaches_clients_verbatim() {
    const CASES: &[(&str, &str)] = &[
        ("string", r#""hello""#),
        ("string with an escaped newline", r#""line1\nline2""#),
        ("integer", "42"),
        ("number beyond f64 precision", "3.141592653589793238462643383279"),
        ("null", "null"),
        ("object with its own spacing", r#"{"b": 2,  "a": [1, 2.50]}"#),
    ];
    let server = TestServer::start(base_config()).await;
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&token("42", HOUR))).await;
    assert_eq!(sse.next_event().await.unwrap().event, "connected");
    let mut ws = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&token("42", HOUR))).await;
    ws.next_text().await;
    for (name, data) in CASES {
        let body = format!(r#"{{"identity":"42","data":{data}}}"#);
        assert_eq!(post_publish(&server, Some(API_KEY), &body).await.0, 202, "case {name}");
        let ev = sse.next_non_heartbeat().await.unwrap();
        assert_eq!(
            (ev.event.as_str(), ev.data.as_str()),
            ("message", *data),
            "case {name} over SSE"
        );
        assert_eq!(ws.next_text().await, *data, "case {name} over WebSocket");
    }
}

#[tokio::test]
async fn api_publish_batch_delivers_every_message_in_order_with_202() {
    let server = TestServer::start(base_config()).await;
    let mut sse_42 = SseClient::connect(&format!("{}/events", server.base), Some(&token("42", HOUR))).await;
    assert_eq!(sse_42.next_event().await.unwrap().event, "connected");
    let mut ws_7 = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&token("7", HOUR))).await;
    ws_7.next_text().await;
    let body = r#"{"messages":[
        {"identity":"42","data":{"n":1}},
        {"identity":"7","data":"seven"},
        {"channel":"room-1","data":"to a channel"},
        {"identity":"42","data":null},
        {"identity":"42","data": [1, 2.50]}
    ]}"#;
    assert_eq!(
        post_publish(&server, Some(API_KEY), body).await,
        (202, json!({ "published": 5 }))
    );
    for expected in [r#"{"n":1}"#, "null", "[1, 2.50]"] {
        let ev = sse_42.next_non_heartbeat().await.unwrap();
        assert_eq!((ev.event.as_str(), ev.data.as_str()), ("message", expected));
    }
    assert_eq!(ws_7.next_text().await, r#""seven""#);
    // The single form still answers `true`, not a count.
    assert_eq!(
        post_publish(&server, Some(API_KEY), r#"{"identity":"7","data":1}"#).await,
        (202, json!({ "published": true }))
    );
    assert_eq!(ws_7.next_text().await, "1");
}

#[tokio::test]
async fn api_publish_batch_with_a_bad_entry_is_refused_whole() {
    let too_many = format!(
        r#"{{"messages":[{}]}}"#,
        vec![r#"{"identity":"42","data":1}"#; 1001].join(",")
    );
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "empty batch",
            r#"{"messages":[]}"#.into(),
            Some("messages must hold 1 to 1000 entries"),
        ),
        (
            "over 1000 entries",
            too_many,
            Some("messages must hold 1 to 1000 entries"),
        ),
        (
            "messages not an array",
            r#"{"messages":{"identity":"42","data":1}}"#.into(),
            None,
        ),
        ("messages null", r#"{"messages":null}"#.into(), None),
        (
            "bad identity in the second entry",
            r#"{"messages":[{"identity":"42","data":1},{"identity":"a:b","data":2}]}"#.into(),
            Some("messages[1]: identity must match ^[A-Za-z0-9._-]{1,128}$"),
        ),
        (
            "entry with both identity and channel",
            r#"{"messages":[{"identity":"42","channel":"c","data":1}]}"#.into(),
            Some("messages[0]: give exactly one of identity or channel"),
        ),
        (
            "entry without data",
            r#"{"messages":[{"identity":"42","data":1},{"identity":"42"}]}"#.into(),
            None,
        ),
        (
            "entry with an unknown field",
            r#"{"messages":[{"identity":"42","data":1,"x":1}]}"#.into(),
            None,
        ),
        ("entry not an object", r#"{"messages":[42]}"#.into(), None),
        (
            "identity beside messages",
            r#"{"identity":"42","messages":[{"identity":"42","data":1}]}"#.into(),
            Some("a batch has only messages (no identity, channel or data beside it)"),
        ),
        (
            "data beside messages",
            r#"{"data":1,"messages":[{"identity":"42","data":1}]}"#.into(),
            Some("a batch has only messages (no identity, channel or data beside it)"),
        ),
    ];
    let server = TestServer::start(base_config()).await;
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&token("42", HOUR))).await;
    assert_eq!(sse.next_event().await.unwrap().event, "connected");
    for (name, body, error) in &cases {
        let (status, got) = post_publish(&server, Some(API_KEY), body).await;
        assert_eq!(status, 400, "case {name}: body {got}");
        let text = got["error"].as_str().unwrap_or_default();
        match error {
            Some(expected) => assert_eq!(text, *expected, "case {name}"),
            None => assert!(!text.is_empty(), "case {name}: error text in {got}"),
        }
    }
    // No entry of a refused batch was published, not even the good ones before the bad one.
    assert_eq!(server.publish("42", json!("marker")).await, 202);
    assert_eq!(sse.next_non_heartbeat().await.unwrap().data, r#""marker""#);
}

// === GET /stats ===

async fn get_stats(server: &TestServer, identity: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/stats", server.base))
        .bearer_auth(token(identity, HOUR))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn is_uptime(text: &str) -> bool {
    // `2h30m15s`, `1m1s`, `0s`.
    let mut rest = text;
    for unit in ['h', 'm', 's'] {
        if let Some(i) = rest.find(unit) {
            let digits = &rest[..i];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            rest = &rest[i + 1..];
        }
    }
    rest.is_empty() && text.ends_with('s')
}

#[tokio::test]
async fn stats_reports_connections_identities_and_uptime() {
    let server = TestServer::start(base_config()).await;
    let (status, stats) = get_stats(&server, "42").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (stats["connections"].as_i64(), stats["identities"].as_i64()),
        (Some(0), Some(0))
    );

    let events = format!("{}/events", server.base);
    let mut a = SseClient::connect(&events, Some(&token("42", HOUR))).await;
    let mut b = SseClient::connect(&events, Some(&token("42", HOUR))).await;
    a.next_event().await.unwrap();
    b.next_event().await.unwrap();
    let mut ws = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&token("7", HOUR))).await;
    ws.next_text().await;

    let (status, stats) = get_stats(&server, "42").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["status"], "ok");
    assert_eq!(stats["connections"], 3, "{stats}");
    assert_eq!(stats["identities"], 2, "{stats}");
    let uptime = stats["uptime"].as_str().unwrap_or_default();
    assert!(is_uptime(uptime), "uptime {uptime:?} is not like 2h30m15s");
}

#[tokio::test]
async fn stats_is_forbidden_to_other_identities_when_stats_identity_is_set() {
    let mut config = base_config();
    config.relay.stats_identity = Some("ops".into());
    let server = TestServer::start(config).await;
    assert_eq!(get_stats(&server, "42").await, (403, json!({ "error": "forbidden" })));
    let (status, stats) = get_stats(&server, "ops").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["status"], "ok");
}

// === limits ===

fn too_many() -> Option<Refusal> {
    Some(Refusal {
        status: 429,
        body: json!({ "error": "too many connections" }),
    })
}

async fn sse_admitted(server: &TestServer, identity: &str) -> bool {
    let sse = SseClient::connect(&format!("{}/events", server.base), Some(&token(identity, HOUR))).await;
    sse.status == 200
}

#[tokio::test]
async fn per_identity_limit_refuses_with_429_until_a_connection_closes() {
    let mut config = base_config();
    config.server.max_connections_per_identity = 1;
    config.relay.heartbeat_seconds = 1;
    let server = TestServer::start(config).await;
    let first = token("42", HOUR);
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&first)).await;
    assert_eq!(sse.status, 200);
    sse.next_event().await.unwrap();

    for endpoint in [Endpoint::Sse, Endpoint::Ws] {
        assert_eq!(
            call(&server, endpoint, Some(&token("42", HOUR))).await,
            too_many(),
            "second {endpoint:?} connection of 42"
        );
    }
    assert!(sse_admitted(&server, "7").await, "another identity is not limited");
    assert!(
        metric(
            &server.base,
            "streamgate_server_connection_rejections_total",
            r#"reason="limit""#
        )
        .await
            >= 2.0
    );

    drop(sse);
    eventually("42 is admitted again after its connection closed", || {
        sse_admitted(&server, "42")
    })
    .await;
}

#[tokio::test]
async fn per_identity_limit_counts_websocket_connections() {
    let mut config = base_config();
    config.server.max_connections_per_identity = 1;
    let server = TestServer::start(config).await;
    let mut ws = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&token("42", HOUR))).await;
    ws.next_text().await;
    for endpoint in [Endpoint::Ws, Endpoint::Sse] {
        assert_eq!(
            call(&server, endpoint, Some(&token("42", HOUR))).await,
            too_many(),
            "{endpoint:?} while a WebSocket of 42 is open"
        );
    }
    ws.socket.close(None).await.unwrap();
    drop(ws);
    eventually("42 is admitted again after its WebSocket closed", || {
        ws_admitted(format!("{}/ws", server.ws_base), token("42", HOUR))
    })
    .await;
}

#[tokio::test]
async fn total_limit_refuses_with_429_until_a_connection_closes() {
    let mut config = base_config();
    config.server.max_connections_total = 2;
    config.relay.heartbeat_seconds = 1;
    let server = TestServer::start(config).await;
    let mut sse = SseClient::connect(&format!("{}/events", server.base), Some(&token("a", HOUR))).await;
    sse.next_event().await.unwrap();
    let mut ws = WsClient::connect(&format!("{}/ws", server.ws_base), Some(&token("b", HOUR))).await;
    ws.next_text().await;
    for endpoint in [Endpoint::Sse, Endpoint::Ws] {
        assert_eq!(
            call(&server, endpoint, Some(&token("c", HOUR))).await,
            too_many(),
            "{endpoint:?} past max_connections_total"
        );
    }
    drop(sse);
    eventually("c is admitted after a connection closed", || sse_admitted(&server, "c")).await;
}

// === readiness ===

#[tokio::test]
async fn broker_down_refuses_new_connections_with_503_not_ready() {
    let mut config = base_config();
    config.broker.kind = BrokerKind::Redis;
    // Nothing listens there.
    config.broker.redis.url = format!("redis://127.0.0.1:{}", free_port());
    let server = TestServer::start(config).await;
    server.wait_ready(503).await;
    let not_ready = Some(Refusal {
        status: 503,
        body: json!({ "error": "not ready" }),
    });
    for endpoint in [Endpoint::Sse, Endpoint::Ws] {
        assert_eq!(
            call(&server, endpoint, Some(&token("42", HOUR))).await,
            not_ready,
            "{endpoint:?} while the broker is down"
        );
    }
    assert_eq!(
        post_publish(&server, Some(API_KEY), r#"{"identity":"42","data":1}"#).await,
        (503, json!({ "error": "not ready" }))
    );
}
