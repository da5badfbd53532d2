//! OpenID Connect discovery: the issuer's `/.well-known/openid-configuration` names
//! its key set (`jwks_uri`).

use super::ProviderError;
use crate::net::HttpClient;
use reqwest::header::ACCEPT;
use std::time::Duration;

/// Largest discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Where the discovery document of `issuer` lives.
pub(super) fn configuration_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// Fetches the discovery document and returns its `jwks_uri`. The document's
/// `issuer` must be the configured one (OpenID Connect Discovery §4.3), so a
/// document served for another issuer cannot redirect key fetches.
pub(super) async fn discover(client: &HttpClient, issuer: &str, timeout: Duration) -> Result<String, ProviderError> {
    let request = client
        .request(reqwest::Method::GET, &configuration_url(issuer))?
        .header(ACCEPT, "application/json");
    let fetched = client.fetch(request, timeout, MAX_DOCUMENT_BYTES).await?;
    if !fetched.status.is_success() {
        return Err(ProviderError::Status(fetched.status.as_u16()));
    }
    #[derive(serde::Deserialize)]
    struct Document {
        issuer: String,
        jwks_uri: String,
    }
    let doc: Document = serde_json::from_slice(&fetched.body)
        .map_err(|e| ProviderError::Malformed(format!("discovery document: {e}")))?;
    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(ProviderError::Malformed(format!(
            "discovery document is for issuer {:?}",
            doc.issuer
        )));
    }
    Ok(doc.jwks_uri)
}
