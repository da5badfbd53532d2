//! Revocations: one token (`jti`) or every token of an identity issued before a time
//! ("log out everywhere"), stored in the broker so every node sees them.
//!
//! An entry is kept until the revoked tokens can no longer be valid anyway: the
//! token's `exp` when the revoker knows it, else `auth.revocation_ttl_seconds` after
//! the revocation (or after `before`), plus the leeway. [`check`] runs at connect;
//! [`publish`] also announces each revocation on [`TOPIC`] so that open
//! connections can be closed ([`Revocation::matches`]).

use super::{AuthError, Principal};
use crate::broker::{Broker, BrokerError};
use crate::config::AuthConfig;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;

/// The one broker channel of revocation notices ([`Notice`]). A plain channel, not
/// a pattern: each node keeps exactly one pattern subscription (its job topics).
pub const TOPIC: &str = "streamgate:revocations";

/// A revocation as announced to every node: whose, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The identity whose tokens are revoked.
    pub sub: String,
    /// What is revoked.
    #[serde(flatten)]
    pub revocation: Revocation,
}

/// What is revoked for one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Revocation {
    /// The single token whose `jti` is this.
    Token {
        /// The token's `jti`.
        jti: String,
    },
    /// Every token whose `iat` is before this Unix time (a token without `iat` too).
    IssuedBefore {
        /// Unix seconds.
        before: u64,
    },
}

impl Revocation {
    /// True when `principal`'s token is covered.
    pub fn matches(&self, principal: &Principal) -> bool {
        match self {
            Revocation::Token { jti } => principal.token_id() == Some(jti.as_str()),
            // Without `iat` the token may be older than `before`: refuse it.
            Revocation::IssuedBefore { before } => principal.issued_at().is_none_or(|iat| iat < *before),
        }
    }

    /// The broker's member string (`jti:<id>` or `before:<unix>`).
    fn member(&self) -> String {
        match self {
            Revocation::Token { jti } => format!("jti:{jti}"),
            Revocation::IssuedBefore { before } => format!("before:{before}"),
        }
    }

    fn from_member(member: &str) -> Option<Self> {
        match member.split_once(':')? {
            ("jti", jti) => Some(Revocation::Token { jti: jti.to_string() }),
            ("before", at) => Some(Revocation::IssuedBefore {
                before: at.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// Until when the entry must be kept (Unix seconds): past the latest expiry of any
    /// token it covers.
    pub fn keep_until(&self, token_exp: Option<u64>, cfg: &AuthConfig) -> u64 {
        let latest_exp = match (self, token_exp) {
            (Revocation::Token { .. }, Some(exp)) => exp,
            (Revocation::Token { .. }, None) => now().saturating_add(cfg.revocation_ttl_seconds),
            (Revocation::IssuedBefore { before }, _) => (*before).saturating_add(cfg.revocation_ttl_seconds),
        };
        latest_exp.saturating_add(cfg.leeway_seconds).max(now() + 1)
    }
}

/// A revocation as listed by `GET /admin/revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// What is revoked.
    #[serde(flatten)]
    pub revocation: Revocation,
    /// When the entry goes away (Unix seconds).
    pub expires_at: u64,
}

/// Stores `revocation` for `identity` until `keep_until` and announces it on
/// [`topic`]. The notice is best effort: the stored entry is what [`check`] reads.
pub async fn publish(
    broker: &dyn Broker,
    identity: &str,
    revocation: &Revocation,
    keep_until: u64,
) -> Result<(), BrokerError> {
    broker.revoke(identity, &revocation.member(), keep_until).await?;
    let notice = Notice {
        sub: identity.to_string(),
        revocation: revocation.clone(),
    };
    let notice = serde_json::to_vec(&notice).unwrap_or_default();
    if let Err(e) = broker.publish(TOPIC, Bytes::from(notice)).await {
        tracing::warn!(error = %e, "revocation stored but its notice was not published");
    }
    Ok(())
}

/// The live revocations of `identity`.
pub async fn list(broker: &dyn Broker, identity: &str) -> Result<Vec<Listed>, BrokerError> {
    let entries = broker.revocations(identity).await?;
    Ok(entries
        .into_iter()
        .filter_map(|(member, expires_at)| {
            Some(Listed {
                revocation: Revocation::from_member(&member)?,
                expires_at,
            })
        })
        .collect())
}

/// Refuses a revoked token (401 `token revoked`). When the list cannot be read the
/// connection is refused too (503 `not ready`, as for any connection while the broker
/// is down): admitting a revoked token is the worse failure. A broker that is not
/// ready is not asked, so a connection attempt never waits on a dead connection.
pub async fn check(broker: &dyn Broker, principal: &Principal) -> Result<(), AuthError> {
    if !broker.is_ready() {
        return Err(AuthError::Unavailable);
    }
    let entries = broker.revocations(&principal.identity).await.map_err(|e| {
        tracing::warn!(error = %e, "revocation lookup failed; refusing the connection");
        AuthError::Unavailable
    })?;
    let revoked = entries
        .iter()
        .filter_map(|(member, _)| Revocation::from_member(member))
        .any(|r| r.matches(principal));
    if revoked {
        return Err(AuthError::Revoked);
    }
    Ok(())
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn principal(claims: serde_json::Value) -> Principal {
        Principal::from_claims(
            "42".into(),
            None,
            Arc::from(Vec::new()),
            claims.as_object().unwrap().clone(),
        )
    }

    #[test]
    fn revocations_cover_the_right_tokens() {
        let jti = |s: &str| Revocation::Token { jti: s.into() };
        let before = |t: u64| Revocation::IssuedBefore { before: t };
        let cases: Vec<(&str, Revocation, serde_json::Value, bool)> = vec![
            ("same jti", jti("abc"), json!({ "jti": "abc" }), true),
            ("other jti", jti("abc"), json!({ "jti": "abd" }), false),
            ("no jti", jti("abc"), json!({}), false),
            ("issued before", before(100), json!({ "iat": 99 }), true),
            ("issued at the cut", before(100), json!({ "iat": 100 }), false),
            ("issued after", before(100), json!({ "iat": 101 }), false),
            ("no iat is refused", before(100), json!({}), true),
        ];
        for (name, revocation, claims, expected) in cases {
            assert_eq!(revocation.matches(&principal(claims)), expected, "case {name}");
        }
    }

    #[test]
    fn members_round_trip() {
        const CASES: &[(&str, &str, bool)] = &[
            ("jti", "jti:abc", true),
            ("jti with colon", "jti:a:b", true),
            ("before", "before:1700000000", true),
            ("before not a number", "before:soon", false),
            ("unknown kind", "x:1", false),
            ("no kind", "abc", false),
        ];
        for (name, member, ok) in CASES {
            let parsed = Revocation::from_member(member);
            assert_eq!(parsed.is_some(), *ok, "case {name}");
            if let Some(r) = parsed {
                assert_eq!(r.member(), *member, "case {name}");
            }
        }
    }

    #[test]
    fn entries_outlive_the_tokens_they_cover() {
        let cfg = AuthConfig {
            revocation_ttl_seconds: 1000,
            leeway_seconds: 5,
            ..AuthConfig::default()
        };
        let t = now();
        let jti = Revocation::Token { jti: "a".into() };
        assert_eq!(jti.keep_until(Some(t + 50), &cfg), t + 55, "known exp plus leeway");
        assert!(jti.keep_until(None, &cfg) >= t + 1005, "unknown exp: the ttl");
        let before = Revocation::IssuedBefore { before: t };
        assert_eq!(before.keep_until(None, &cfg), t + 1005, "before plus the ttl");
        assert!(jti.keep_until(Some(t - 100), &cfg) > t, "never already expired");
    }

    #[test]
    fn notices_are_json_the_loops_can_read() {
        let r = Revocation::IssuedBefore { before: 5 };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"before":5}"#);
        assert_eq!(serde_json::from_str::<Revocation>(&text).unwrap(), r);
        let r = Revocation::Token { jti: "x".into() };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"jti":"x"}"#);
    }
}
