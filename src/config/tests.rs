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
