//! `streamgate token`: mint a JWT for tests and demos.

use clap::Args;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Arguments of `streamgate token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Identity, written to `--identity-claim`.
    #[arg(long)]
    identity: String,
    /// HMAC secret (HS256 unless `--alg` says otherwise).
    #[arg(long, env = "STREAMGATE_TOKEN_SECRET", conflicts_with = "key")]
    secret: Option<String>,
    /// PEM private key (RSA, EC or Ed25519); needs `--alg`.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Algorithm: HS256/384/512, RS*, PS*, ES256/384, EdDSA.
    #[arg(long)]
    alg: Option<String>,
    /// Lifetime, e.g. `30s`, `15m`, `1h`.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    /// Extra claims `k=v` (v parsed as JSON when it is valid JSON, else a string).
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// Claim that holds the identity.
    #[arg(long, default_value = "sub")]
    identity_claim: String,
}

pub(super) fn run(args: TokenArgs) -> ExitCode {
    match mint(&args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("token: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mint(args: &TokenArgs) -> Result<String, String> {
    let mut extra = Vec::new();
    for claim in &args.claims {
        let (k, v) = claim
            .split_once('=')
            .ok_or_else(|| format!("--claim {claim:?} must be k=v"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        extra.push((k.to_string(), value));
    }
    let mut claims = claims(&args.identity, args.ttl.into(), &extra);
    if args.identity_claim != "sub" {
        let id = claims.remove("sub").unwrap_or(Value::Null);
        claims.insert(args.identity_claim.clone(), id);
    }
    let alg = match &args.alg {
        Some(name) => crate::auth::parse_algorithm(name)?,
        None if args.key.is_some() => return Err("--key needs --alg".into()),
        None => Algorithm::HS256,
    };
    let key = match (&args.secret, &args.key) {
        (Some(secret), None) if crate::auth::is_hmac(alg) => EncodingKey::from_secret(secret.as_bytes()),
        (None, Some(path)) if !crate::auth::is_hmac(alg) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            encoding_key(alg, &pem)?
        }
        (None, None) => return Err("give --secret or --key".into()),
        _ => return Err(format!("{alg:?} does not fit the given key")),
    };
    encode(&Header::new(alg), &claims, &key).map_err(|e| e.to_string())
}

fn encoding_key(alg: Algorithm, pem: &[u8]) -> Result<EncodingKey, String> {
    use Algorithm::*;
    let key = match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => EncodingKey::from_rsa_pem(pem),
        ES256 | ES384 => EncodingKey::from_ec_pem(pem),
        EdDSA => EncodingKey::from_ed_pem(pem),
        HS256 | HS384 | HS512 => unreachable!("HMAC takes a secret"),
    };
    key.map_err(|e| format!("private key: {e}"))
}

/// `sub`, `iat`, `exp` (= now + `ttl`) and any extra claims.
pub(super) fn claims(identity: &str, ttl: Duration, extra: &[(String, Value)]) -> Map<String, Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(identity.to_string()));
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl.as_secs()).into());
    for (k, v) in extra {
        claims.insert(k.clone(), v.clone());
    }
    claims
}

/// Signs `claims` with HS256.
pub(super) fn sign_hmac(secret: &str, claims: &Map<String, Value>) -> Result<String, String> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}
