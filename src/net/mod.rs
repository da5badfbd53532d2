//! Outbound networking (reserved): the SSRF guard (resolve, reject private and
//! special ranges, connect to the checked address) and the shared HTTP client, for
//! JWKS, remote verification, the gateway and the media proxy.
