//! Table-driven tests of loading and validation, with injected environments.

use super::*;
use std::io::Write;

fn load_str(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    load(Some(file.path()), env)
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn paths(yaml: &str) -> Vec<String> {
    let config = load_str(yaml, &[]).expect("parses");
    config.validate(false).into_iter().map(|p| p.path).collect()
}

#[test]
fn defaults_match_the_documented_values() {
    let c = Config::default();
    assert_eq!((c.server.host.as_str(), c.server.port), ("0.0.0.0", 8080));
    assert_eq!(c.server.shutdown_timeout_seconds, 10);
    assert_eq!(c.auth.identity_claim, "sub");
    assert!(c.auth.require_expiry);
    assert_eq!(c.broker.kind, BrokerKind::Memory);
    assert_eq!(c.broker.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(c.relay.channel_prefix, "streams");
    assert_eq!(c.relay.inbound_prefix, None);
    assert_eq!((c.relay.heartbeat_seconds, c.relay.client_buffer_size), (30, 64));
    assert_eq!(c.relay.slow_consumer_policy, SlowConsumerPolicy::DropNewestMessage);
    assert_eq!(c.relay.max_message_size_bytes, 4096);
    assert_eq!(
        (c.relay.websocket_ping_seconds, c.relay.websocket_write_timeout_ms),
        (30, 10_000)
    );
    assert_eq!(c.logging.format, LogFormat::Text);
}

/// (case, yaml, key paths expected among the problems)
const INVALID: &[(&str, &str, &[&str])] = &[
    ("no key at all", "{}", &["auth"]),
    ("short secret", "auth: {jwt_secret: short}", &["auth.jwt_secret"]),
    (
        "secret and public key",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef, jwt_public_key: /nonexistent.pem}",
        &["auth", "auth.jwt_public_key"],
    ),
    ("unreadable pem", "auth: {jwt_public_key: /nonexistent/key.pem}", &["auth.jwt_public_key"]),
    (
        "zero buffer and heartbeat",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef}\nrelay: {client_buffer_size: 0, heartbeat_seconds: 0}",
        &["relay.client_buffer_size", "relay.heartbeat_seconds"],
    ),
    (
        "prefix with a colon",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef}\nrelay: {channel_prefix: 'a:b'}",
        &["relay.channel_prefix"],
    ),
    (
        "inbound equals outbound",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef}\nrelay: {inbound_prefix: streams}",
        &["relay.inbound_prefix"],
    ),
    (
        "hmac algorithm with a secret is fine, RS256 is not",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef, algorithms: [HS256, RS256]}",
        &["auth.algorithms[1]"],
    ),
    (
        "unknown algorithm",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef, algorithms: [none]}",
        &["auth.algorithms[0]"],
    ),
    (
        "bad redis url",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef}\nbroker: {kind: redis, redis: {url: 'http://x'}}",
        &["broker.redis.url"],
    ),
    (
        "bad origin and short api key",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef}\nserver: {allowed_origins: [example.com], api_keys: [short]}",
        &["server.allowed_origins[0]", "server.api_keys[0]"],
    ),
    (
        "bad stats identity",
        "auth: {jwt_secret: 0123456789abcdef0123456789abcdef}\nrelay: {stats_identity: 'a b'}",
        &["relay.stats_identity"],
    ),
];

#[test]
fn validation_reports_every_problem_with_its_key_path() {
    for (name, yaml, expected) in INVALID {
        let got = paths(yaml);
        for path in *expected {
            assert!(got.iter().any(|p| p == path), "case {name}: expected {path} in {got:?}");
        }
    }
}

#[test]
fn a_minimal_config_is_valid() {
    assert!(paths(&format!("auth: {{jwt_secret: {SECRET}}}")).is_empty());
}

#[test]
fn demo_mode_does_not_require_a_key() {
    let c = Config::default();
    assert!(c.validate(true).is_empty(), "{:?}", c.validate(true));
    assert!(!c.validate(false).is_empty());
}

#[test]
fn unknown_keys_are_errors() {
    const CASES: &[(&str, &str)] = &[
        ("top-level section", "sever: {port: 1}"),
        ("key in a section", "server: {prot: 1}"),
        ("nested key", "broker: {redis: {uri: x}}"),
    ];
    for (name, yaml) in CASES {
        let err = load_str(yaml, &[]).expect_err(name);
        assert!(matches!(err, ConfigError::Parse(_)), "case {name}: {err}");
    }
}

#[test]
fn wrong_types_are_errors() {
    let err = load_str("server: {port: eighty}", &[]).expect_err("string port");
    assert!(
        err.to_string().contains("port") || err.to_string().contains("invalid"),
        "{err}"
    );
}

#[test]
fn env_overrides_nest_with_double_underscores() {
    let env = [
        ("STREAMGATE__AUTH__JWT_SECRET", "12345678901234567890123456789012"),
        ("STREAMGATE__SERVER__PORT", "9090"),
        ("STREAMGATE__BROKER__KIND", "redis"),
        ("STREAMGATE__BROKER__REDIS__URL", "redis://10.0.0.1:6380"),
        (
            "STREAMGATE__SERVER__ALLOWED_ORIGINS",
            "[https://a.example, https://b.example]",
        ),
        ("STREAMGATE__RELAY__INBOUND_PREFIX", "inbound"),
        ("OTHER__VAR", "ignored"),
    ];
    let c = load_str("server: {port: 1234}", &env).unwrap();
    // A numeric-looking secret stays a string.
    assert_eq!(c.auth.jwt_secret.as_deref(), Some("12345678901234567890123456789012"));
    assert_eq!(c.server.port, 9090, "env wins over the file");
    assert_eq!(c.broker.kind, BrokerKind::Redis);
    assert_eq!(c.broker.redis.url, "redis://10.0.0.1:6380");
    assert_eq!(c.server.allowed_origins, ["https://a.example", "https://b.example"]);
    assert_eq!(c.relay.inbound_prefix.as_deref(), Some("inbound"));
    assert!(c.validate(false).is_empty());
}

#[test]
fn an_env_override_of_an_unknown_key_is_an_error() {
    let err = load_str("{}", &[("STREAMGATE__SERVER__PROT", "1")]).expect_err("typo in env");
    assert!(matches!(err, ConfigError::Parse(_)), "{err}");
}

#[test]
fn empty_file_means_defaults() {
    let c = load_str("", &[]).unwrap();
    assert_eq!(c.server.port, 8080);
}

#[test]
fn missing_file_is_a_read_error() {
    let err = load(Some(std::path::Path::new("/nonexistent/streamgate.yaml")), Vec::new()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}

#[test]
fn auth_provider_defaults_match_the_documented_values() {
    let a = Config::default().auth;
    assert_eq!(
        (a.jwks_cache_seconds, a.jwks_min_refresh_seconds, a.jwks_timeout_ms),
        (300, 10, 5000)
    );
    assert_eq!(
        (a.name_claim.as_str(), a.roles_claim.as_str()),
        ("preferred_username", "roles")
    );
    assert_eq!(a.token_sources, [TokenSourceKind::Header, TokenSourceKind::Query]);
    assert_eq!(a.cookie_name, "session");
    assert!(!a.allow_private_endpoints);
    assert_eq!(a.revocation_ttl_seconds, 86_400);
    let v = &a.verify;
    assert_eq!((v.method, v.token_location), (HttpMethod::Post, TokenLocation::Body));
    assert_eq!(
        (
            v.token_param.as_str(),
            v.active_field.as_str(),
            v.identity_field.as_str()
        ),
        ("token", "active", "sub")
    );
    assert_eq!((v.cache_seconds, v.timeout_ms), (60, 2000));
    let r = &a.refresh;
    assert_eq!(
        (r.token_param.as_str(), r.new_token_field.as_str()),
        ("refresh_token", "access_token")
    );
    assert_eq!((r.interval_seconds, r.timeout_ms), (1800, 2000));
}

/// (case, yaml of the auth section, key paths expected among the problems)
const INVALID_AUTH: &[(&str, &str, &[&str])] = &[
    (
        "secret and key set",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, jwks_url: 'https://8.8.8.8/jwks'}",
        &["auth"],
    ),
    ("jwks url not a url", "{jwks_url: 'jwks.json'}", &["auth.jwks_url"]),
    ("plain http to a public host", "{jwks_url: 'http://8.8.8.8/jwks'}", &["auth.jwks_url"]),
    ("loopback jwks", "{jwks_url: 'https://127.0.0.1/jwks'}", &["auth.jwks_url"]),
    ("private jwks", "{jwks_url: 'https://10.0.0.1/jwks'}", &["auth.jwks_url"]),
    ("metadata jwks", "{jwks_url: 'http://169.254.169.254/latest'}", &["auth.jwks_url"]),
    ("v6 loopback jwks", "{jwks_url: 'https://[::1]:8443/jwks'}", &["auth.jwks_url"]),
    ("localhost jwks", "{jwks_url: 'https://localhost/jwks'}", &["auth.jwks_url"]),
    ("loopback issuer", "{oidc_issuer: 'https://127.0.0.1/realms/x'}", &["auth.oidc_issuer"]),
    (
        "private verify url",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, verify: {url: 'https://10.1.2.3/introspect'}}",
        &["auth.verify.url"],
    ),
    (
        "loopback refresh url",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, refresh: {url: 'https://localhost/token'}}",
        &["auth.refresh.url"],
    ),
    (
        "hmac algorithm with a key set",
        "{jwks_url: 'https://8.8.8.8/jwks', algorithms: [HS256]}",
        &["auth.algorithms[0]"],
    ),
    (
        "zero cache and floor",
        "{jwks_url: 'https://8.8.8.8/jwks', jwks_cache_seconds: 0, jwks_min_refresh_seconds: 0}",
        &["auth.jwks_cache_seconds", "auth.jwks_min_refresh_seconds"],
    ),
    (
        "no token source, duplicate source",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, token_sources: []}",
        &["auth.token_sources"],
    ),
    (
        "duplicate source",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, token_sources: [query, query]}",
        &["auth.token_sources[1]"],
    ),
    (
        "bad cookie name",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, token_sources: [cookie], cookie_name: 'a b'}",
        &["auth.cookie_name"],
    ),
    (
        "GET with a body",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, allow_private_endpoints: true, verify: {url: 'http://127.0.0.1/v', method: GET}}",
        &["auth.verify.token_location"],
    ),
    (
        "token and service token both in Authorization",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, allow_private_endpoints: true, service_token: s, verify: {url: 'http://127.0.0.1/v', token_location: header, token_param: Authorization}}",
        &["auth.verify.token_param"],
    ),
    (
        "bad verify bounds",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, allow_private_endpoints: true, verify: {url: 'http://127.0.0.1/v', timeout_ms: 0, cache_max_entries: 0, active_field: ''}}",
        &["auth.verify.timeout_ms", "auth.verify.cache_max_entries", "auth.verify.active_field"],
    ),
    (
        "bad refresh fields",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, allow_private_endpoints: true, refresh: {url: 'http://127.0.0.1/t', new_token_field: '', interval_seconds: 0, extra_params: {refresh_token: x}}}",
        &["auth.refresh.new_token_field", "auth.refresh.interval_seconds", "auth.refresh.extra_params"],
    ),
    (
        "short revocation ttl",
        "{jwt_secret: 0123456789abcdef0123456789abcdef, revocation_ttl_seconds: 5}",
        &["auth.revocation_ttl_seconds"],
    ),
];

#[test]
fn auth_provider_problems_are_reported_with_their_key_paths() {
    for (name, yaml, expected) in INVALID_AUTH {
        let got = paths(&format!("auth: {yaml}"));
        for path in *expected {
            assert!(got.iter().any(|p| p == path), "case {name}: expected {path} in {got:?}");
        }
    }
}

#[test]
fn valid_auth_provider_configs_pass() {
    const CASES: &[(&str, &str)] = &[
        ("public jwks", "{jwks_url: 'https://8.8.8.8/jwks'}"),
        ("issuer only", "{oidc_issuer: 'https://8.8.8.8/realms/demo'}"),
        ("issuer and jwks", "{oidc_issuer: 'https://8.8.8.8/r', jwks_url: 'https://8.8.8.8/jwks'}"),
        ("internal with allow", "{jwks_url: 'http://127.0.0.1:8080/jwks', allow_private_endpoints: true}"),
        (
            "refresh with extra params",
            "{jwt_secret: 0123456789abcdef0123456789abcdef, refresh: {url: 'https://8.8.8.8/token', extra_params: {grant_type: refresh_token, client_id: web}}}",
        ),
        (
            "cookie source",
            "{jwt_secret: 0123456789abcdef0123456789abcdef, token_sources: [cookie, header], cookie_name: sg_session}",
        ),
    ];
    for (name, yaml) in CASES {
        let got = paths(&format!("auth: {yaml}"));
        assert!(got.is_empty(), "case {name}: {got:?}");
    }
}

#[test]
fn extra_params_take_any_key_from_file_and_env() {
    let env = [("STREAMGATE__AUTH__REFRESH__EXTRA_PARAMS__CLIENT_ID", "web")];
    let c = load_str("auth: {refresh: {extra_params: {grant_type: refresh_token}}}", &env).unwrap();
    let params: Vec<(&str, &str)> = c
        .auth
        .refresh
        .extra_params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(params, [("client_id", "web"), ("grant_type", "refresh_token")]);
}

/// Every `auth` key path of the defaults, and no other, is in examples/streamgate.yaml.
#[test]
fn the_example_lists_every_auth_key() {
    fn paths(value: &serde_norway::Value, prefix: &str, out: &mut Vec<String>) {
        if let Some(map) = value.as_mapping().filter(|m| !m.is_empty()) {
            for (key, child) in map {
                paths(child, &format!("{prefix}.{}", key.as_str().unwrap_or_default()), out);
            }
        } else {
            out.push(prefix.to_string());
        }
    }
    let example: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/streamgate.yaml")).unwrap(),
    )
    .unwrap();
    let defaults = serde_norway::to_value(Config::default()).unwrap();
    let (mut documented, mut expected) = (Vec::new(), Vec::new());
    paths(&example["auth"], "auth", &mut documented);
    paths(&defaults["auth"], "auth", &mut expected);
    documented.sort();
    expected.sort();
    assert_eq!(documented, expected);
}
