//! The no-config demo: generated secret and API key, printed copy-paste lines.

use crate::config::Config;
use base64::Engine;
use std::net::SocketAddr;

/// Secrets generated for a demo run.
pub(super) struct Demo {
    token: String,
    api_key: String,
}

/// Fills in what a config-less start lacks: an HMAC secret, an API key and open CORS
/// (so the printed browser lines work from any page). Returns `None` when the
/// environment already configured a key (then it is not a demo).
pub(super) fn prepare(config: &mut Config) -> Option<Demo> {
    let a = &config.auth;
    // An empty value counts as unset, as validation treats it.
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let has_key = set(&a.jwt_secret) || set(&a.jwt_public_key) || set(&a.jwks_url) || set(&a.oidc_issuer);
    if has_key {
        return None;
    }
    let secret = random_secret();
    config.auth.jwt_secret = Some(secret.clone());
    if config.server.api_keys.is_empty() {
        config.server.api_keys.push(random_secret());
    }
    if config.server.allowed_origins.is_empty() {
        config.server.allowed_origins.push("*".into());
    }
    let claims = super::token::claims("demo", std::time::Duration::from_secs(3600), &[]);
    let token = super::token::sign_hmac(&secret, &claims).ok()?;
    Some(Demo {
        token,
        api_key: config.server.api_keys[0].clone(),
    })
}

fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Demo {
    /// Prints the token, the API key and lines to try them.
    pub(super) fn print(&self, addr: SocketAddr) {
        let base = format!("localhost:{}", addr.port());
        let (token, key) = (&self.token, &self.api_key);
        println!(
            r#"
streamgate demo: no config file, embedded memory broker, secrets generated for this run
(every origin allowed). Pass --config FILE for a real setup.

Token for identity "demo" (valid 1 hour):
  {token}
API key for POST /api/publish:
  {key}

1. Listen (terminal):
  curl -N -H "Authorization: Bearer {token}" http://{base}/events

2. Listen (browser console, EventSource):
  new EventSource("http://{base}/events?token={token}").addEventListener("message", e => console.log("sse", e.data))

3. Listen (browser console, WebSocket):
  const ws = new WebSocket("ws://{base}/ws?token={token}"); ws.onmessage = e => console.log("ws", e.data)

4. Publish to identity "demo":
  curl -X POST http://{base}/api/publish -H "Authorization: Bearer {key}" -H "Content-Type: application/json" -d '{{"identity":"demo","data":{{"hello":"world"}}}}'
"#
        );
    }
}
