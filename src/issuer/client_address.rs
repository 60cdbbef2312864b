//! Which address a request comes from, for the per-address brute-force limit: the TCP peer,
//! or, when the peer is a proxy the operator trusts (`--trusted-proxies`), the address that
//! proxy saw, taken from `X-Forwarded-For`.
//!
//! Owns: the trusted networks and the reading of `X-Forwarded-For` from the right: each proxy
//! appends the address it received the request from, so the entries a client wrote itself are
//! on the left and cannot be trusted; the client is the rightmost entry that is not itself a
//! trusted proxy. Must not trust the header from any other peer: a client talking to the
//! issuer directly could otherwise pick a fresh address for every guess.
//!
//! A header from a trusted proxy that cannot be read (an entry that is not an address, or
//! bytes that are not text) names nobody: the request is counted under [`GARBLED`], one
//! address shared by every such request, never under the proxy's own address (twenty garbled
//! guesses would lock out everyone behind the proxy) nor under the last entry read (an
//! attacker could then choose it).

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// The address of requests whose `X-Forwarded-For`, from a trusted proxy, cannot be read: the
/// unspecified address, which no TCP peer has, so these requests share one brute-force count
/// of their own.
pub(crate) const GARBLED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The proxies whose `X-Forwarded-For` is believed. Empty: none, the peer is the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated networks (`10.0.0.0/8`) or single addresses (`10.1.2.3`).
    fn from_str(text: &str) -> Result<Self, String> {
        let nets = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                IpNet::from_str(s)
                    .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not a network (10.0.0.0/8) or an address"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(nets))
    }
}

impl TrustedProxies {
    /// Whether `address` is a trusted proxy.
    pub(crate) fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address: `peer`, unless `peer` is trusted and `X-Forwarded-For` names
    /// someone before it. [`GARBLED`] when the header, from a trusted peer, cannot be read
    /// up to the client's entry.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Every X-Forwarded-For line, in order, is one list (RFC 9110 §5.3).
        let lines: Vec<&str> = match headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str())
            .collect::<Result<_, _>>()
        {
            Ok(lines) => lines,
            Err(_) => return GARBLED,
        };
        let entries = lines.iter().flat_map(|line| line.split(','));
        for entry in entries.rev() {
            let Ok(address) = IpAddr::from_str(entry.trim()) else {
                return GARBLED;
            };
            client = canonical(address);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is that IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(line).expect("ascii"),
            );
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["198.51.100.7"]);
        assert_eq!(none.client(ip("10.0.0.5"), &headers), ip("10.0.0.5"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_entry() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.10".parse().expect("valid");
        // The client wrote a fake address itself; the ingress (10.0.0.5) appended the real one;
        // an inner trusted proxy (192.0.2.10) appended the ingress.
        let headers = forwarded(&["203.0.113.66, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            proxies.client(ip("192.0.2.10"), &headers),
            ip("198.51.100.7")
        );
        // From an untrusted peer, the header means nothing.
        assert_eq!(
            proxies.client(ip("198.51.100.9"), &headers),
            ip("198.51.100.9")
        );
        // A trusted peer without the header is the client.
        let empty = HeaderMap::new();
        assert_eq!(proxies.client(ip("10.0.0.5"), &empty), ip("10.0.0.5"));
        // Mapped IPv4 counts as IPv4, on either side.
        let mapped = forwarded(&["::ffff:198.51.100.7"]);
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.5"), &mapped),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_garbled_entry_from_a_trusted_proxy_is_the_garbled_address_never_the_proxys() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().expect("valid");
        let peer = ip("10.0.0.5");
        for lines in [
            &["unknown"][..],
            &["198.51.100.7, unknown, 10.0.0.6"],
            &["198.51.100.7", ""],
            &["198.51.100.7:4711"],
            &["198.51.100.7", "10.0.0.6, 10.0.0.256"],
        ] {
            assert_eq!(
                proxies.client(peer, &forwarded(lines)),
                GARBLED,
                "{lines:?}"
            );
        }
        let mut not_text = HeaderMap::new();
        let bytes = HeaderValue::from_bytes(b"198.51.100.7\xff").expect("opaque bytes");
        not_text.append("x-forwarded-for", bytes);
        assert_eq!(proxies.client(peer, &not_text), GARBLED);
        // Garbage to the left of the client's entry was written by the client: not read.
        let forged_left = forwarded(&["unknown, 198.51.100.7, 10.0.0.6"]);
        assert_eq!(proxies.client(peer, &forged_left), ip("198.51.100.7"));
        // Only entries of trusted proxies: the leftmost one sent the request.
        let all_trusted = forwarded(&["10.0.0.7"]);
        assert_eq!(proxies.client(peer, &all_trusted), ip("10.0.0.7"));
        // From an untrusted peer the header is not read at all.
        let untrusted = ip("198.51.100.9");
        assert_eq!(
            proxies.client(untrusted, &forwarded(&["unknown"])),
            untrusted
        );
    }

    #[test]
    fn networks_and_single_addresses_parse_and_anything_else_is_refused() {
        let proxies: TrustedProxies = "10.0.0.0/8,fd00::/8, 192.0.2.1".parse().expect("valid");
        assert_eq!(proxies.0.len(), 3);
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        let error = "10.0.0.0/33"
            .parse::<TrustedProxies>()
            .expect_err("invalid");
        assert!(error.contains("10.0.0.0/33"), "{error}");
    }
}
