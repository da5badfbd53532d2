//! Server-to-server API keys (`server.api_keys`), shared by `/api/publish` and the
//! admin API.

use super::token_source;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// Why a server-to-server request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyRefusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// The key is not one of `server.api_keys`.
    Invalid,
}

/// Checks the request's `Authorization: Bearer <key>` against `keys`.
pub fn check_api_key(headers: &HeaderMap, keys: &[String]) -> Result<(), ApiKeyRefusal> {
    let key = token_source::bearer(headers).ok_or(ApiKeyRefusal::Missing)?;
    if api_key_matches(keys, &key) {
        Ok(())
    } else {
        Err(ApiKeyRefusal::Invalid)
    }
}

/// Compares `key` with every configured key in constant time (no early exit), so
/// response timing does not reveal how much of a key was right.
pub fn api_key_matches(keys: &[String], key: &str) -> bool {
    keys.iter()
        .fold(subtle::Choice::from(0), |found, k| {
            found | k.as_bytes().ct_eq(key.as_bytes())
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        const KEYS: &[&str] = &["key-one-0123456789", "key-two-0123456789"];
        const CASES: &[(&str, Option<&str>, Result<(), ApiKeyRefusal>)] = &[
            ("first key", Some("Bearer key-one-0123456789"), Ok(())),
            ("second key", Some("bearer key-two-0123456789"), Ok(())),
            ("prefix of a key", Some("Bearer key-one"), Err(ApiKeyRefusal::Invalid)),
            ("wrong key", Some("Bearer nope"), Err(ApiKeyRefusal::Invalid)),
            (
                "basic scheme",
                Some("Basic key-one-0123456789"),
                Err(ApiKeyRefusal::Missing),
            ),
            ("no header", None, Err(ApiKeyRefusal::Missing)),
        ];
        let keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        for (name, header, expected) in CASES {
            let mut headers = HeaderMap::new();
            if let Some(h) = header {
                headers.insert("authorization", h.parse().unwrap());
            }
            assert_eq!(check_api_key(&headers, &keys), *expected, "case {name}");
        }
        assert!(!api_key_matches(&[], "x"), "no keys configured");
    }
}
