//! The identity pattern `^[A-Za-z0-9._-]{1,128}$`.
//!
//! Identities become topic names (`streams:{identity}`); anything outside this set
//! could reach another topic or a pattern, so it is refused as an invalid token.

/// Longest identity accepted.
pub const MAX_IDENTITY_LEN: usize = 128;

/// True when `s` matches `^[A-Za-z0-9._-]{1,128}$`.
pub fn is_valid_identity(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IDENTITY_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Turns a claim value into an identity: a string as is, an integer as its decimal
/// form; anything else (float, bool, object, bad characters) is `None`.
pub(super) fn identity_from_claim(value: &serde_json::Value) -> Option<String> {
    let candidate = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return None,
    };
    is_valid_identity(&candidate).then_some(candidate)
}
