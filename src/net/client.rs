//! [`HttpClient`]: the one outbound HTTP client, resolving through the SSRF guard.

use super::error::Refusal;
use super::ssrf::{self, first_blocked};
use super::NetError;
use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Connect timeout of every outbound call (the call's own timeout bounds the rest).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Outbound HTTP client. Cheap to clone (one connection pool).
///
/// Names are resolved by [`GuardedResolver`], which hands reqwest only addresses
/// that passed [`ssrf::classify`], so the connection goes to a checked address.
/// Proxies from the environment are ignored (a proxy would resolve the name itself),
/// redirects are not followed (a redirect could point anywhere), and unless private
/// targets are allowed only `https` is spoken (a URL a provider hands out, such as a
/// discovered `jwks_uri`, gets the same rule as a configured one).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    allow_private: bool,
}

/// A response read to the end.
#[derive(Debug)]
pub struct Fetched {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpClient {
    /// A client that refuses internal addresses and plain `http` unless `allow_private`.
    pub fn new(allow_private: bool) -> Result<Self, NetError> {
        let inner = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!allow_private)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("streamgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NetError::from_reqwest)?;
        Ok(Self { inner, allow_private })
    }

    /// Starts a request to `url` after checking its shape and, for a literal IP
    /// host (which never reaches the resolver), the address itself.
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, NetError> {
        let parsed = ssrf::parse(url)?;
        if !self.allow_private {
            ssrf::check_literal(&parsed)?;
        }
        Ok(self.inner.request(method, parsed))
    }

    /// Sends `request` and reads at most `limit` body bytes, all within `timeout`.
    pub async fn fetch(&self, request: RequestBuilder, timeout: Duration, limit: usize) -> Result<Fetched, NetError> {
        let call = async {
            let mut response = request.send().await.map_err(NetError::from_reqwest)?;
            let mut body = BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(NetError::from_reqwest)? {
                if body.len() + chunk.len() > limit {
                    return Err(NetError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched {
                status: response.status(),
                headers: response.headers().clone(),
                body: body.freeze(),
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(NetError::Timeout))
    }
}

/// Resolves with the system resolver and keeps only addresses the guard accepts.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Refusal::Resolve {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .collect();
            if allow_private {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let refused = first_blocked(&resolved);
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| ssrf::classify(a.ip()).is_none())
                .collect();
            match (allowed.is_empty(), refused) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
                (true, Some((ip, range))) => Err(Refusal::Blocked { host, ip, range }.into()),
                (true, None) => Err(Refusal::Resolve {
                    host,
                    reason: "no addresses".into(),
                }
                .into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resolver path (not the literal check): `localhost` must be refused on
    /// every call, not only at startup.
    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_call_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = HttpClient::new(false).unwrap();
        let request = client
            .request(Method::GET, &format!("https://localhost:{port}/"))
            .unwrap();
        let err = client.fetch(request, Duration::from_secs(5), 1024).await.unwrap_err();
        assert!(matches!(err, NetError::Blocked { .. }), "got {err}");
    }

    #[tokio::test]
    async fn literal_internal_addresses_are_refused_before_sending() {
        const CASES: &[(&str, &str)] = &[
            ("loopback", "http://127.0.0.1:1/"),
            ("private", "http://10.0.0.1/"),
            ("metadata", "http://169.254.169.254/latest"),
            ("v6 loopback", "http://[::1]:1/"),
            ("mapped", "http://[::ffff:127.0.0.1]:1/"),
        ];
        let client = HttpClient::new(false).unwrap();
        for (name, url) in CASES {
            let err = client.request(Method::GET, url).unwrap_err();
            assert!(matches!(err, NetError::Blocked { .. }), "case {name}: got {err}");
        }
    }

    #[tokio::test]
    async fn plain_http_is_refused_unless_private_targets_are_allowed() {
        let client = HttpClient::new(false).unwrap();
        let request = client.request(Method::GET, "http://8.8.8.8:1/").unwrap();
        let err = client.fetch(request, Duration::from_secs(5), 1024).await.unwrap_err();
        assert!(matches!(err, NetError::Request(_)), "got {err}");
    }
}
