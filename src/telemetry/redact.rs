//! Removes credentials from strings that are about to be logged.

/// Query keys whose values are credentials.
const SECRET_KEYS: &[&str] = &["token", "access_token", "api_key", "password"];

/// Returns `query` with the values of credential keys replaced by `[redacted]`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) => {
                format!("{key}=[redacted]")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_query;

    const CASES: &[(&str, &str, &str)] = &[
        ("token only", "token=abc.def.ghi", "token=[redacted]"),
        ("token among others", "a=1&token=xyz&b=2", "a=1&token=[redacted]&b=2"),
        ("case-insensitive key", "TOKEN=xyz", "TOKEN=[redacted]"),
        ("no secret", "a=1&b=2", "a=1&b=2"),
        ("key without value kept", "token", "token"),
    ];

    #[test]
    fn redacts_credential_values() {
        for (name, input, expected) in CASES {
            assert_eq!(redact_query(input), *expected, "case {name}");
        }
    }
}
