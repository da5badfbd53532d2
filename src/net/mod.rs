//! Outbound networking: the SSRF guard and the shared HTTP client.
//!
//! Every call streamgate makes on a configured URL (JWKS, OIDC discovery, remote
//! verification, token refresh; later the gateway and the media proxy) goes through
//! [`HttpClient`]. Its resolver drops every address [`ssrf::classify`] refuses
//! (loopback, private, link-local, CGNAT, multicast, documentation, unspecified,
//! reserved, and the IPv4-mapped and translated forms of these) and the connection
//! is made to an address that passed the check, so a DNS answer that changes between
//! the check and the connect (rebinding) cannot reach an internal service. Literal IP
//! hosts never reach a resolver, so [`HttpClient::request`] checks them itself.
//! [`check_url_blocking`] is the same check for startup validation.

mod client;
mod error;
pub mod ssrf;

pub use client::{Fetched, HttpClient};
pub use error::NetError;
pub use ssrf::{check_url_blocking, classify, Blocked};
