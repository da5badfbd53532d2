//! Redis-style glob matching for the memory broker (`*` and `?`), so that both
//! brokers deliver exactly the same topics for the same patterns.

/// True when `topic` matches `pattern` (`*` = any run, `?` = one byte).
pub fn glob_match(pattern: &str, topic: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), topic.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    const CASES: &[(&str, &str, &str, bool)] = &[
        ("prefix star", "streams:*", "streams:42", true),
        ("prefix star empty rest", "streams:*", "streams:", true),
        ("other prefix", "streams:*", "inbound:42", false),
        ("middle star", "session:*:down", "session:abc:down", true),
        ("middle star wrong suffix", "session:*:down", "session:abc:up", false),
        ("question mark", "a?c", "abc", true),
        ("exact", "abc", "abc", true),
        ("exact mismatch", "abc", "abd", false),
        ("backtracking", "*a*b", "xaybzb", true),
    ];

    #[test]
    fn glob_matches_like_redis() {
        for (name, pattern, topic, expected) in CASES {
            assert_eq!(glob_match(pattern, topic), *expected, "case {name}");
        }
    }
}
