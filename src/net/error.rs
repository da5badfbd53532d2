//! Why an outbound call did not happen or did not succeed.

use super::Blocked;
use std::net::IpAddr;

/// An outbound HTTP failure. Messages never contain a URL's query (it may carry a
/// token): reqwest errors are stored without their URL.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Not an absolute `http://` or `https://` URL with a host.
    #[error("not an absolute http(s) URL with a host")]
    BadUrl,
    /// The host is, or resolves only to, an address the SSRF guard refuses.
    #[error("{host} is a {range} address ({ip}), refused by the SSRF guard", range = .range.as_str())]
    Blocked {
        /// Host as written in the URL.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// Why it was refused.
        range: Blocked,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// Host as written in the URL.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// The whole call (connect, request, body) took longer than its timeout.
    #[error("timed out")]
    Timeout,
    /// Connection, TLS or protocol failure.
    #[error("request failed: {0}")]
    Request(reqwest::Error),
    /// The response body was larger than the caller accepts.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

impl NetError {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            NetError::BadUrl => "bad_url",
            NetError::Blocked { .. } => "blocked",
            NetError::Resolve { .. } => "resolve",
            NetError::Timeout => "timeout",
            NetError::Request(_) => "error",
            NetError::TooLarge(_) => "too_large",
        }
    }

    /// Wraps a reqwest error, dropping its URL and surfacing a refusal of our own
    /// resolver (which reqwest reports as a connect error).
    pub(super) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return NetError::Timeout;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(refusal) = err.downcast_ref::<Refusal>() {
                return refusal.clone().into();
            }
            source = err.source();
        }
        NetError::Request(e.without_url())
    }
}

/// What the guarded resolver can refuse with; travels through reqwest as a boxed
/// error and comes back out as a [`NetError`].
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum Refusal {
    /// Every address of the name is refused; this is the first.
    #[error("{host} resolves to {ip}, a {range} address", range = .range.as_str())]
    Blocked {
        /// Host name.
        host: String,
        /// A refused address.
        ip: IpAddr,
        /// Why.
        range: Blocked,
    },
    /// The name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// Host name.
        host: String,
        /// Resolver message.
        reason: String,
    },
}

impl From<Refusal> for NetError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Blocked { host, ip, range } => NetError::Blocked { host, ip, range },
            Refusal::Resolve { host, reason } => NetError::Resolve { host, reason },
        }
    }
}
