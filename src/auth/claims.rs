//! From verified claims to a [`Principal`]: identity, display name, roles, `azp`.

use super::identity::identity_from_claim;
use super::{InvalidReason, Principal};
use crate::config::AuthConfig;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Which claims mean what, from `auth:`.
#[derive(Debug, Clone)]
pub(super) struct ClaimRules {
    identity: String,
    name: String,
    roles: String,
    allowed_azp: Vec<String>,
}

impl ClaimRules {
    pub(super) fn from_config(cfg: &AuthConfig) -> Self {
        Self {
            identity: cfg.identity_claim.clone(),
            name: cfg.name_claim.clone(),
            roles: cfg.roles_claim.clone(),
            allowed_azp: cfg.allowed_azp.clone(),
        }
    }

    /// The claim naming the identity.
    pub(super) fn identity_claim(&self) -> &str {
        &self.identity
    }

    /// Derives the principal, or says which claim is unacceptable.
    pub(super) fn principal(&self, claims: Map<String, Value>) -> Result<Principal, InvalidReason> {
        let identity = claims
            .get(&self.identity)
            .and_then(identity_from_claim)
            .ok_or(InvalidReason::Identity)?;
        if !self.allowed_azp.is_empty() {
            let azp = claims.get("azp").and_then(Value::as_str);
            if !azp.is_some_and(|azp| self.allowed_azp.iter().any(|a| a == azp)) {
                return Err(InvalidReason::Azp);
            }
        }
        let name = lookup(&claims, &self.name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Arc::from);
        let roles = lookup(&claims, &self.roles).map(roles_from).unwrap_or_default();
        Ok(Principal::from_claims(identity.into(), name, roles.into(), claims))
    }
}

/// The value at `path`: the claim named exactly `path` first (namespaced claims such
/// as `https://example.com/roles` contain dots), else the dotted walk through nested
/// objects (`realm_access.roles`). An empty path finds nothing.
pub(super) fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut segments = path.split('.');
    let first = claims.get(segments.next()?)?;
    segments.try_fold(first, |value, key| value.as_object()?.get(key))
}

/// Roles from a list of strings (other entries ignored) or a space-separated string
/// (OAuth `scope` style).
fn roles_from(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(roles: &str, azp: &[&str]) -> ClaimRules {
        ClaimRules {
            identity: "sub".into(),
            name: "preferred_username".into(),
            roles: roles.into(),
            allowed_azp: azp.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn roles_come_from_flat_nested_and_namespaced_claims() {
        const CASES: &[(&str, &str, &str, &[&str])] = &[
            ("flat list", "roles", r#"{"roles":["admin","ops"]}"#, &["admin", "ops"]),
            (
                "keycloak realm roles",
                "realm_access.roles",
                r#"{"realm_access":{"roles":["admin"]}}"#,
                &["admin"],
            ),
            (
                "keycloak client roles",
                "resource_access.streamgate.roles",
                r#"{"resource_access":{"streamgate":{"roles":["publisher"]}}}"#,
                &["publisher"],
            ),
            (
                "namespaced claim with dots",
                "https://example.com/roles",
                r#"{"https://example.com/roles":["editor"]}"#,
                &["editor"],
            ),
            (
                "space separated",
                "scope",
                r#"{"scope":"read write"}"#,
                &["read", "write"],
            ),
            ("non-strings ignored", "roles", r#"{"roles":["a",1,null]}"#, &["a"]),
            ("absent", "roles", r#"{}"#, &[]),
            ("path through a non-object", "a.b", r#"{"a":"x"}"#, &[]),
            ("disabled", "", r#"{"roles":["a"]}"#, &[]),
        ];
        for (name, path, extra, expected) in CASES {
            let mut c = claims(serde_json::from_str(extra).unwrap());
            c.insert("sub".into(), json!("42"));
            let principal = rules(path, &[]).principal(c).unwrap();
            assert_eq!(&*principal.roles, *expected, "case {name}");
        }
    }

    #[test]
    fn azp_must_be_listed_when_a_list_is_configured() {
        const CASES: &[(&str, &[&str], Option<&str>, bool)] = &[
            ("no list, no azp", &[], None, true),
            ("no list, any azp", &[], Some("x"), true),
            ("listed", &["web", "mobile"], Some("mobile"), true),
            ("not listed", &["web"], Some("evil"), false),
            ("absent with a list", &["web"], None, false),
        ];
        for (name, allowed, azp, ok) in CASES {
            let mut c = claims(json!({ "sub": "42" }));
            if let Some(azp) = azp {
                c.insert("azp".into(), json!(azp));
            }
            let result = rules("roles", allowed).principal(c);
            match ok {
                true => assert!(result.is_ok(), "case {name}"),
                false => assert_eq!(result.unwrap_err(), InvalidReason::Azp, "case {name}"),
            }
        }
    }

    #[test]
    fn name_is_carried_when_present() {
        let c = claims(json!({ "sub": "42", "preferred_username": "alice" }));
        assert_eq!(rules("roles", &[]).principal(c).unwrap().name.as_deref(), Some("alice"));
        let c = claims(json!({ "sub": "42", "preferred_username": 7 }));
        assert_eq!(rules("roles", &[]).principal(c).unwrap().name, None);
    }
}
