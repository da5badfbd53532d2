//! [`ProviderCall`]: one configured call to the identity provider that carries a
//! token (`auth.verify`, `auth.refresh`) and answers with a JSON object.

use super::ProviderError;
use crate::config::{HttpMethod, TokenLocation};
use crate::net::HttpClient;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use serde_json::{Map, Value};
use std::time::Duration;

/// Largest provider answer accepted.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// How to send a token to one endpoint.
#[derive(Debug)]
pub(super) struct ProviderCall {
    pub(super) client: HttpClient,
    pub(super) url: String,
    pub(super) method: HttpMethod,
    pub(super) param: String,
    pub(super) location: TokenLocation,
    /// Sent with the token, in the same place (or the body for a header token on POST).
    pub(super) extra: Vec<(String, String)>,
    /// `Authorization: Bearer` of the call itself (`auth.service_token`).
    pub(super) bearer: Option<String>,
    pub(super) timeout: Duration,
}

impl ProviderCall {
    /// Sends `token` and returns the answer's JSON object. Non-2xx is an error.
    pub(super) async fn send(&self, token: &str) -> Result<Map<String, Value>, ProviderError> {
        let method = match self.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
        };
        let mut params: Vec<(&str, &str)> = self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut request = self
            .client
            .request(method, &self.url)?
            .header(ACCEPT, "application/json");
        if let Some(bearer) = &self.bearer {
            request = request.header(AUTHORIZATION, sensitive(&format!("Bearer {bearer}"))?);
        }
        match self.location {
            TokenLocation::Header => {
                let value = if self.param.eq_ignore_ascii_case("authorization") {
                    format!("Bearer {token}")
                } else {
                    token.to_string()
                };
                let name = HeaderName::try_from(self.param.as_str())
                    .map_err(|_| ProviderError::Malformed("token_param is not a header name".into()))?;
                request = request.header(name, sensitive(&value)?);
            }
            TokenLocation::Body | TokenLocation::Query => params.push((&self.param, token)),
        }
        if !params.is_empty() {
            request = match (self.location, self.method) {
                (TokenLocation::Query, _) | (TokenLocation::Header, HttpMethod::Get) => request.query(&params),
                (TokenLocation::Body, _) | (TokenLocation::Header, HttpMethod::Post) => request.form(&params),
            };
        }
        let fetched = self.client.fetch(request, self.timeout, MAX_ANSWER_BYTES).await?;
        if !fetched.status.is_success() {
            return Err(ProviderError::Status(fetched.status.as_u16()));
        }
        serde_json::from_slice(&fetched.body).map_err(|e| ProviderError::Malformed(format!("not a JSON object: {e}")))
    }
}

/// A header value that HTTP libraries must not log.
fn sensitive(value: &str) -> Result<HeaderValue, ProviderError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| ProviderError::Malformed("token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// JavaScript-style truthiness, except that the strings `"false"` and `"0"` are false
/// (some services answer `"active": "false"`).
pub(super) fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !(s.is_empty() || s.eq_ignore_ascii_case("false") || s == "0"),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::truthy;
    use serde_json::{json, Value};

    #[test]
    fn active_fields_are_judged_by_truthiness() {
        let cases: Vec<(&str, Option<Value>, bool)> = vec![
            ("true", Some(json!(true)), true),
            ("false", Some(json!(false)), false),
            ("absent", None, false),
            ("null", Some(Value::Null), false),
            ("one", Some(json!(1)), true),
            ("zero", Some(json!(0)), false),
            ("string", Some(json!("yes")), true),
            ("string false", Some(json!("False")), false),
            ("string zero", Some(json!("0")), false),
            ("empty string", Some(json!("")), false),
            ("list", Some(json!([1])), true),
            ("empty object", Some(json!({})), false),
        ];
        for (name, value, expected) in cases {
            assert_eq!(truthy(value.as_ref()), expected, "case {name}");
        }
    }
}
