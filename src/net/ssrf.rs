//! The SSRF guard: which addresses an outbound call may reach.
//!
//! A URL from the configuration (or, for discovery, from a provider's answer) must not
//! become a way into the network streamgate sits in: cloud metadata at
//! 169.254.169.254, an admin port on 127.0.0.1, a database on 10.x. Only globally
//! routable unicast addresses pass; IPv6 forms that embed an IPv4 address
//! (`::ffff:127.0.0.1`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the
//! address they embed.

use super::error::Refusal;
use super::NetError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// `0.0.0.0/8`, `::`: "this host"; often reaches the local machine.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), unique-local `fc00::/7`,
    /// site-local `fec0::/10`, local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT `100.64/10` (RFC 6598).
    SharedAddressSpace,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Special-purpose blocks that are not public unicast: `192.0.0/24`, `192.88.99/24`,
    /// `198.18/15`, `240/4`, IPv4-compatible `::/96`, discard `100::/64`, `2001::/23`.
    Reserved,
}

impl Blocked {
    /// Short name for messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocked::Unspecified => "unspecified",
            Blocked::Loopback => "loopback",
            Blocked::Private => "private",
            Blocked::LinkLocal => "link-local",
            Blocked::SharedAddressSpace => "shared (CGNAT)",
            Blocked::Multicast => "multicast",
            Blocked::Broadcast => "broadcast",
            Blocked::Documentation => "documentation",
            Blocked::Reserved => "reserved",
        }
    }
}

/// Why `ip` may not be reached, or `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// `(network, prefix length, verdict)`, most specific first where blocks nest.
const V4_BLOCKS: &[([u8; 4], u32, Blocked)] = &[
    ([0, 0, 0, 0], 8, Blocked::Unspecified),
    ([10, 0, 0, 0], 8, Blocked::Private),
    ([100, 64, 0, 0], 10, Blocked::SharedAddressSpace),
    ([127, 0, 0, 0], 8, Blocked::Loopback),
    ([169, 254, 0, 0], 16, Blocked::LinkLocal),
    ([172, 16, 0, 0], 12, Blocked::Private),
    ([192, 0, 0, 0], 24, Blocked::Reserved),
    ([192, 0, 2, 0], 24, Blocked::Documentation),
    ([192, 88, 99, 0], 24, Blocked::Reserved),
    ([192, 168, 0, 0], 16, Blocked::Private),
    ([198, 18, 0, 0], 15, Blocked::Reserved),
    ([198, 51, 100, 0], 24, Blocked::Documentation),
    ([203, 0, 113, 0], 24, Blocked::Documentation),
    ([224, 0, 0, 0], 4, Blocked::Multicast),
    ([255, 255, 255, 255], 32, Blocked::Broadcast),
    ([240, 0, 0, 0], 4, Blocked::Reserved),
];

fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    let addr = u32::from(ip);
    V4_BLOCKS.iter().find_map(|(net, len, verdict)| {
        let mask = u32::MAX << (32 - len);
        (addr & mask == u32::from_be_bytes(*net) & mask).then_some(*verdict)
    })
}

/// `(network, prefix length, verdict)` for IPv6 blocks that embed no IPv4 address.
const V6_BLOCKS: &[(u128, u32, Blocked)] = &[
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48, Blocked::Private),
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64, Blocked::Reserved),
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32, Blocked::Documentation),
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23, Blocked::Reserved),
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20, Blocked::Documentation),
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, Blocked::Private),
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, Blocked::LinkLocal),
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, Blocked::Private),
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8, Blocked::Multicast),
];

fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    let addr = u128::from(ip);
    let in_block = |net: u128, len: u32| addr & (u128::MAX << (128 - len)) == net;
    if ip.is_unspecified() {
        return Some(Blocked::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Blocked::Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if in_block(0x0064_ff9b << 96, 96) {
        return classify_v4(Ipv4Addr::from(addr as u32));
    }
    // 6to4 (2002::/16) reaches the IPv4 address in bits 16..48.
    if in_block(0x2002 << 112, 16) {
        return classify_v4(Ipv4Addr::from((addr >> 80) as u32));
    }
    // Deprecated IPv4-compatible addresses (::a.b.c.d); never public.
    if in_block(0, 96) {
        return Some(Blocked::Reserved);
    }
    V6_BLOCKS
        .iter()
        .find_map(|(net, len, verdict)| in_block(*net, *len).then_some(*verdict))
}

/// The first refused address among `addrs`, if any.
pub(super) fn first_blocked(addrs: &[SocketAddr]) -> Option<(IpAddr, Blocked)> {
    addrs
        .iter()
        .find_map(|a| classify(a.ip()).map(|verdict| (a.ip(), verdict)))
}

/// Startup check of a configured URL: an absolute `http(s)` URL whose host is not, and
/// does not resolve to, a refused address. Resolves with the system resolver
/// (blocking; for validation only). A name that does not resolve now passes: it is
/// checked again on every call, and a provider may be briefly unreachable at start.
/// With `allow_private` only the URL's shape is checked.
pub fn check_url_blocking(url: &str, allow_private: bool) -> Result<(), NetError> {
    let parsed = parse(url)?;
    if allow_private {
        return Ok(());
    }
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(name)) => match (name, port).to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(_) => return Ok(()),
        },
        None => return Err(NetError::BadUrl),
    };
    match first_blocked(&addrs) {
        Some((ip, range)) => Err(Refusal::Blocked { host, ip, range }.into()),
        None => Ok(()),
    }
}

/// Parses an absolute `http`/`https` URL with a host.
pub(super) fn parse(url: &str) -> Result<reqwest::Url, NetError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| NetError::BadUrl)?;
    let web = matches!(parsed.scheme(), "http" | "https");
    if !web || parsed.host_str().is_none_or(str::is_empty) {
        return Err(NetError::BadUrl);
    }
    Ok(parsed)
}

/// Checks a literal IP host, which no resolver sees. Names pass here; the guarded
/// resolver checks what they resolve to.
pub(super) fn check_literal(url: &reqwest::Url) -> Result<(), NetError> {
    let ip: IpAddr = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.into(),
        Some(url::Host::Ipv6(ip)) => ip.into(),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err(NetError::BadUrl),
    };
    match classify(ip) {
        Some(range) => Err(Refusal::Blocked {
            host: url.host_str().unwrap_or_default().to_string(),
            ip,
            range,
        }
        .into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
