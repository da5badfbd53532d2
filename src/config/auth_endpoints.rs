//! `auth.verify` and `auth.refresh` — calls to the identity provider, and the SSRF
//! check every outbound auth URL gets at startup.

use super::Problems;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// HTTP method of a provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum HttpMethod {
    /// `GET` (token in a header or the query).
    #[serde(rename = "GET", alias = "get")]
    Get,
    /// `POST`.
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// Where a provider call carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenLocation {
    /// A form field (`application/x-www-form-urlencoded`), as RFC 7662 introspection
    /// and OAuth token endpoints expect.
    Body,
    /// A request header named `token_param` (`Authorization` gets `Bearer <token>`).
    Header,
    /// A query parameter.
    Query,
}

/// Remote verification: every new token is also checked by the provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// Verification endpoint (e.g. an RFC 7662 introspection URL); unset = off.
    pub url: Option<String>,
    /// `POST` or `GET`.
    pub method: HttpMethod,
    /// Name of the form field, header or query parameter carrying the token.
    pub token_param: String,
    /// `body`, `header` or `query`.
    pub token_location: TokenLocation,
    /// Extra parameters sent where the token goes (e.g. `client_id`, `client_secret` for
    /// RFC 7662 client authentication); with a header token, in the body for POST.
    pub extra_params: BTreeMap<String, String>,
    /// Response field (dotted path) that must be truthy.
    pub active_field: String,
    /// Response field (dotted path) that must equal the token's identity; empty = not checked.
    pub identity_field: String,
    /// How long a positive answer is reused (never past the token's `exp`); 0 = ask every time.
    pub cache_seconds: u64,
    /// Most answers cached at once; the oldest go first.
    pub cache_max_entries: usize,
    /// Time limit of one call; a slower provider fails the connection (401).
    pub timeout_ms: u64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            url: None,
            method: HttpMethod::Post,
            token_param: "token".into(),
            token_location: TokenLocation::Body,
            extra_params: BTreeMap::new(),
            active_field: "active".into(),
            identity_field: "sub".into(),
            cache_seconds: 60,
            cache_max_entries: 10_000,
            timeout_ms: 2000,
        }
    }
}

/// Token refresh: a client's `X-Refresh-Token` traded for a new access token before
/// the current one expires.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshConfig {
    /// Token endpoint; unset = off.
    pub url: Option<String>,
    /// `POST` or `GET`.
    pub method: HttpMethod,
    /// Name of the form field, header or query parameter carrying the refresh token.
    pub token_param: String,
    /// `body`, `header` or `query`.
    pub token_location: TokenLocation,
    /// Response field holding the new access token.
    pub new_token_field: String,
    /// Response field holding a rotated refresh token, used for the next refresh.
    pub new_refresh_token_field: String,
    /// Extra parameters sent where the token goes (e.g. `grant_type`, `client_id`);
    /// with a header token, in the body for POST.
    pub extra_params: BTreeMap<String, String>,
    /// How long before `exp` the refresh is attempted.
    pub interval_seconds: u64,
    /// Time limit of one call.
    pub timeout_ms: u64,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            url: None,
            method: HttpMethod::Post,
            token_param: "refresh_token".into(),
            token_location: TokenLocation::Body,
            new_token_field: "access_token".into(),
            new_refresh_token_field: "refresh_token".into(),
            extra_params: BTreeMap::new(),
            interval_seconds: 1800,
            timeout_ms: 2000,
        }
    }
}

impl VerifyConfig {
    /// True when remote verification is on.
    pub fn enabled(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.is_empty())
    }

    pub(super) fn validate(&self, service_token: Option<&str>, problems: &mut Problems) {
        if !self.enabled() {
            return;
        }
        check_call(
            "auth.verify",
            self.method,
            self.token_location,
            &self.token_param,
            problems,
        );
        if self.active_field.trim().is_empty() {
            problems.push("auth.verify.active_field", "must not be empty");
        }
        if self.extra_params.contains_key(&self.token_param) {
            problems.push("auth.verify.extra_params", "must not contain auth.verify.token_param");
        }
        let bearer_param =
            self.token_location == TokenLocation::Header && self.token_param.eq_ignore_ascii_case("authorization");
        if bearer_param && service_token.is_some() {
            problems.push(
                "auth.verify.token_param",
                "the token and auth.service_token cannot both go in Authorization",
            );
        }
        if self.cache_seconds > 3600 {
            problems.push("auth.verify.cache_seconds", "must be at most 3600");
        }
        if self.cache_max_entries == 0 {
            problems.push("auth.verify.cache_max_entries", "must be greater than 0");
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            problems.push("auth.verify.timeout_ms", "must be between 100 and 60000");
        }
    }
}

impl RefreshConfig {
    /// True when token refresh is on.
    pub fn enabled(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.is_empty())
    }

    pub(super) fn validate(&self, problems: &mut Problems) {
        if !self.enabled() {
            return;
        }
        check_call(
            "auth.refresh",
            self.method,
            self.token_location,
            &self.token_param,
            problems,
        );
        if self.new_token_field.trim().is_empty() {
            problems.push("auth.refresh.new_token_field", "must not be empty");
        }
        if self.extra_params.contains_key(&self.token_param) {
            problems.push("auth.refresh.extra_params", "must not contain auth.refresh.token_param");
        }
        if self.interval_seconds == 0 {
            problems.push("auth.refresh.interval_seconds", "must be greater than 0");
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            problems.push("auth.refresh.timeout_ms", "must be between 100 and 60000");
        }
    }
}

/// Checks the shape shared by every provider call.
fn check_call(section: &str, method: HttpMethod, location: TokenLocation, param: &str, problems: &mut Problems) {
    if param.trim().is_empty() {
        problems.push(&format!("{section}.token_param"), "must not be empty");
    } else if location == TokenLocation::Header && axum::http::HeaderName::try_from(param).is_err() {
        problems.push(&format!("{section}.token_param"), "must be a valid header name");
    }
    if method == HttpMethod::Get && location == TokenLocation::Body {
        problems.push(
            &format!("{section}.token_location"),
            "GET has no body: use header or query, or method POST",
        );
    }
}

/// Startup SSRF check of an outbound auth URL (it is checked again on every call).
/// Plain `http` is accepted only with `allow_private_endpoints`: key sets and
/// verification answers must not be open to tampering on the way.
pub(super) fn check_endpoint(path: &str, url: &str, allow_private: bool, problems: &mut Problems) {
    use crate::net::NetError;
    match crate::net::check_url_blocking(url, allow_private) {
        Ok(()) if !allow_private && url.starts_with("http://") => problems.push(
            path,
            "must use https (plain http only with auth.allow_private_endpoints: true)",
        ),
        Ok(()) => {}
        Err(NetError::BadUrl) => problems.push(path, format!("{url:?} is not an absolute http(s) URL")),
        Err(e) => problems.push(
            path,
            format!("{e}; set auth.allow_private_endpoints: true to allow internal services"),
        ),
    }
}
