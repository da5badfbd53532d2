//! Table-driven tests of the SSRF ranges, IPv4-mapped and translated forms included.

use super::*;

/// (case, address, verdict)
const ADDRESSES: &[(&str, &str, Option<Blocked>)] = &[
    ("loopback", "127.0.0.1", Some(Blocked::Loopback)),
    ("loopback high", "127.255.0.9", Some(Blocked::Loopback)),
    ("rfc1918 10", "10.0.0.1", Some(Blocked::Private)),
    ("rfc1918 172.16", "172.16.5.4", Some(Blocked::Private)),
    ("rfc1918 172.31", "172.31.255.255", Some(Blocked::Private)),
    ("just outside 172.16/12", "172.32.0.1", None),
    ("rfc1918 192.168", "192.168.1.1", Some(Blocked::Private)),
    ("cloud metadata", "169.254.169.254", Some(Blocked::LinkLocal)),
    ("cgnat", "100.64.0.1", Some(Blocked::SharedAddressSpace)),
    ("cgnat top", "100.127.255.254", Some(Blocked::SharedAddressSpace)),
    ("just outside cgnat", "100.128.0.1", None),
    ("test-net-1", "192.0.2.1", Some(Blocked::Documentation)),
    ("test-net-2", "198.51.100.7", Some(Blocked::Documentation)),
    ("test-net-3", "203.0.113.9", Some(Blocked::Documentation)),
    ("unspecified", "0.0.0.0", Some(Blocked::Unspecified)),
    ("this network", "0.1.2.3", Some(Blocked::Unspecified)),
    ("multicast", "224.0.0.1", Some(Blocked::Multicast)),
    ("broadcast", "255.255.255.255", Some(Blocked::Broadcast)),
    ("class e", "240.0.0.1", Some(Blocked::Reserved)),
    ("benchmarking", "198.18.0.1", Some(Blocked::Reserved)),
    ("ietf protocol block", "192.0.0.8", Some(Blocked::Reserved)),
    ("public v4", "93.184.216.34", None),
    ("public v4 8.8.8.8", "8.8.8.8", None),
    ("v6 loopback", "::1", Some(Blocked::Loopback)),
    ("v6 unspecified", "::", Some(Blocked::Unspecified)),
    ("mapped loopback", "::ffff:127.0.0.1", Some(Blocked::Loopback)),
    ("mapped private", "::ffff:10.0.0.1", Some(Blocked::Private)),
    ("mapped metadata", "::ffff:169.254.169.254", Some(Blocked::LinkLocal)),
    ("mapped public", "::ffff:8.8.8.8", None),
    ("v4-compatible", "::127.0.0.1", Some(Blocked::Reserved)),
    ("nat64 loopback", "64:ff9b::7f00:1", Some(Blocked::Loopback)),
    ("nat64 public", "64:ff9b::808:808", None),
    ("nat64 local use", "64:ff9b:1::1", Some(Blocked::Private)),
    ("6to4 private", "2002:0a00:0001::1", Some(Blocked::Private)),
    ("6to4 public", "2002:0808:0808::1", None),
    ("unique local", "fc00::1", Some(Blocked::Private)),
    ("unique local fd", "fd12:3456::1", Some(Blocked::Private)),
    ("link local v6", "fe80::1", Some(Blocked::LinkLocal)),
    ("site local", "fec0::1", Some(Blocked::Private)),
    ("v6 multicast", "ff02::1", Some(Blocked::Multicast)),
    ("v6 documentation", "2001:db8::1", Some(Blocked::Documentation)),
    ("v6 documentation 3fff", "3fff::1", Some(Blocked::Documentation)),
    ("teredo", "2001::1", Some(Blocked::Reserved)),
    ("discard", "100::1", Some(Blocked::Reserved)),
    ("public v6", "2606:4700:4700::1111", None),
];

#[test]
fn ranges_are_classified() {
    for (name, addr, expected) in ADDRESSES {
        let ip: IpAddr = addr.parse().unwrap_or_else(|e| panic!("case {name}: {e}"));
        assert_eq!(classify(ip), *expected, "case {name} ({addr})");
    }
}

/// `Ok` = accepted; `Err(Some(range))` = refused; `Err(None)` = not a usable URL.
type Verdict = Result<(), Option<Blocked>>;

/// (case, url, verdict)
const URLS: &[(&str, &str, Verdict)] = &[
    (
        "loopback literal",
        "http://127.0.0.1:8080/jwks",
        Err(Some(Blocked::Loopback)),
    ),
    ("private literal", "https://10.0.0.1/jwks", Err(Some(Blocked::Private))),
    (
        "metadata literal",
        "http://169.254.169.254/latest/meta-data",
        Err(Some(Blocked::LinkLocal)),
    ),
    (
        "v6 loopback literal",
        "http://[::1]:9000/",
        Err(Some(Blocked::Loopback)),
    ),
    (
        "mapped loopback literal",
        "http://[::ffff:127.0.0.1]/",
        Err(Some(Blocked::Loopback)),
    ),
    (
        "hex-encoded loopback",
        "http://0x7f.0.0.1/",
        Err(Some(Blocked::Loopback)),
    ),
    ("decimal loopback", "http://2130706433/", Err(Some(Blocked::Loopback))),
    (
        "cgnat literal",
        "http://100.64.0.1/",
        Err(Some(Blocked::SharedAddressSpace)),
    ),
    (
        "unspecified literal",
        "http://0.0.0.0/",
        Err(Some(Blocked::Unspecified)),
    ),
    (
        "localhost resolves to loopback",
        "http://localhost:8080/",
        Err(Some(Blocked::Loopback)),
    ),
    ("public literal", "https://8.8.8.8/", Ok(())),
    (
        "unresolvable name passes until it is called",
        "https://no-such-host.invalid/",
        Ok(()),
    ),
    ("not http", "ftp://8.8.8.8/", Err(None)),
    ("relative", "/jwks", Err(None)),
    ("no host", "http://", Err(None)),
];

#[test]
fn startup_check_refuses_internal_targets() {
    for (name, url, expected) in URLS {
        let got = match check_url_blocking(url, false) {
            Ok(()) => Ok(()),
            Err(NetError::Blocked { range, .. }) => Err(Some(range)),
            Err(NetError::BadUrl) => Err(None),
            Err(other) => panic!("case {name}: unexpected {other}"),
        };
        assert_eq!(got, *expected, "case {name} ({url})");
    }
}

#[test]
fn allow_private_checks_only_the_shape() {
    const CASES: &[(&str, &str, bool)] = &[
        ("loopback", "http://127.0.0.1:1/", true),
        ("localhost", "http://localhost/", true),
        ("metadata", "http://169.254.169.254/", true),
        ("not a url", "localhost:80", false),
    ];
    for (name, url, ok) in CASES {
        assert_eq!(check_url_blocking(url, true).is_ok(), *ok, "case {name}");
    }
}
