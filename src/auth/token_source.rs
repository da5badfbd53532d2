//! Where a request carries its token: the sources of `auth.token_sources`, tried in
//! order (default: `Authorization: Bearer`, then `?token=`), and the cookie named
//! `auth.cookie_name`. Query tokens are redacted from logs
//! ([`crate::telemetry::redact_query`]).

use crate::config::{AuthConfig, TokenSourceKind};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::HeaderMap;

/// Header carrying the client's refresh token (never accepted from the query).
pub const REFRESH_TOKEN_HEADER: &str = "x-refresh-token";

/// The configured token sources, in order.
#[derive(Debug, Clone)]
pub struct TokenSources {
    order: Vec<TokenSourceKind>,
    cookie_name: String,
}

impl Default for TokenSources {
    fn default() -> Self {
        Self::from_config(&AuthConfig::default())
    }
}

impl TokenSources {
    /// The sources of `auth.token_sources` / `auth.cookie_name`.
    pub fn from_config(cfg: &AuthConfig) -> Self {
        Self {
            order: cfg.token_sources.clone(),
            cookie_name: cfg.cookie_name.clone(),
        }
    }

    /// The first token found, trying each source in order. Empty values count as absent.
    pub fn find(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        self.order.iter().find_map(|source| match source {
            TokenSourceKind::Header => bearer(headers),
            TokenSourceKind::Query => query_token(query),
            TokenSourceKind::Cookie => cookie(headers, &self.cookie_name),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The first non-empty `token=` value of a query string, percent-decoded.
pub fn query_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, v)| k == "token" && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// The value of the first non-empty cookie called `name` (RFC 6265 `Cookie` syntax,
/// optional double quotes removed), across every `Cookie` header.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

/// The client's refresh token from `X-Refresh-Token`.
pub fn refresh_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REFRESH_TOKEN_HEADER)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenSourceKind::{Cookie, Header, Query};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(axum::http::HeaderName::try_from(*k).unwrap(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn sources_are_tried_in_the_configured_order() {
        type Case<'a> = (
            &'a str,
            &'a [TokenSourceKind],
            &'a [(&'a str, &'a str)],
            Option<&'a str>,
            Option<&'a str>,
        );
        const CASES: &[Case] = &[
            (
                "header first",
                &[Header, Query],
                &[("authorization", "Bearer h")],
                Some("token=q"),
                Some("h"),
            ),
            (
                "query when no header",
                &[Header, Query],
                &[],
                Some("token=q"),
                Some("q"),
            ),
            (
                "query first",
                &[Query, Header],
                &[("authorization", "Bearer h")],
                Some("token=q"),
                Some("q"),
            ),
            (
                "cookie",
                &[Cookie],
                &[("cookie", "a=1; session=c; b=2")],
                None,
                Some("c"),
            ),
            (
                "cookie not configured",
                &[Header, Query],
                &[("cookie", "session=c")],
                None,
                None,
            ),
            ("query not configured", &[Header], &[], Some("token=q"), None),
            (
                "second cookie header",
                &[Cookie],
                &[("cookie", "a=1"), ("cookie", "session=\"c2\"")],
                None,
                Some("c2"),
            ),
            (
                "empty cookie ignored",
                &[Cookie, Query],
                &[("cookie", "session=")],
                Some("token=q"),
                Some("q"),
            ),
            (
                "similar cookie name",
                &[Cookie],
                &[("cookie", "session_old=x")],
                None,
                None,
            ),
            (
                "non-bearer header",
                &[Header],
                &[("authorization", "Basic abc")],
                None,
                None,
            ),
        ];
        for (name, order, hdrs, query, expected) in CASES {
            let sources = TokenSources {
                order: order.to_vec(),
                cookie_name: "session".into(),
            };
            assert_eq!(
                sources.find(&headers(hdrs), *query).as_deref(),
                *expected,
                "case {name}"
            );
        }
    }

    #[test]
    fn query_tokens_are_percent_decoded_and_empty_ones_ignored() {
        const CASES: &[(&str, Option<&str>, Option<&str>)] = &[
            ("plain", Some("token=abc"), Some("abc")),
            ("encoded", Some("a=1&token=a%2Eb"), Some("a.b")),
            ("empty then real", Some("token=&token=x"), Some("x")),
            ("absent", Some("a=1"), None),
            ("no query", None, None),
        ];
        for (name, query, expected) in CASES {
            assert_eq!(query_token(*query).as_deref(), *expected, "case {name}");
        }
    }

    #[test]
    fn refresh_tokens_come_only_from_their_header() {
        assert_eq!(
            refresh_token(&headers(&[("x-refresh-token", " r1 ")])).as_deref(),
            Some("r1")
        );
        assert_eq!(refresh_token(&headers(&[("x-refresh-token", "")])), None);
        assert_eq!(refresh_token(&headers(&[("authorization", "Bearer x")])), None);
    }
}
