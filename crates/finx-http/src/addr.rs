//! The client's address, for rate limits. Behind a reverse proxy every connection comes
//! from the proxy, so the address is taken from `X-Forwarded-For` (or, without it, the
//! standard `Forwarded`), but only when the connection comes from a configured trusted
//! proxy: anyone else could write those headers. The client is the right-most address
//! that is not itself a trusted proxy (each proxy appends the address it saw, so entries
//! left of an untrusted hop may be forged).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    proxies.iter().any(|n| n.contains(&ip))
}

/// One hop of `X-Forwarded-For` (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]:443`,
/// `192.0.2.1:80`).
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = raw.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    raw.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// The hops a request passed, oldest first: `X-Forwarded-For` whenever the request has one
/// (then `Forwarded` is not read at all, so a client cannot pick the header a proxy does not
/// write), else the `for=` parameters of `Forwarded` (RFC 7239). `None` for an entry that
/// does not parse (obfuscated, `unknown`, or bytes that are not text): the chain cannot be
/// followed past it.
fn hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    // Read lossily: what a proxy appends is ASCII and stays readable even after a client's
    // bytes that are not text, which become unreadable entries of their own.
    let lines = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let xff = lines("x-forwarded-for");
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|l| l.split(','))
            .map(parse_hop)
            .collect();
    }
    lines("forwarded")
        .iter()
        .flat_map(|l| l.split(','))
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_hop(v))
            })?
        })
        .collect()
}

/// The address to count a request against: the peer's, unless the peer is a trusted proxy;
/// then the right-most forwarded address that is not a trusted proxy.
#[must_use]
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if !trusted(peer.ip(), proxies) {
        return peer.ip();
    }
    let mut last_trusted = peer.ip();
    for hop in hops(headers).into_iter().rev() {
        match hop {
            Some(ip) if trusted(ip, proxies) => last_trusted = ip,
            Some(ip) => return ip,
            // An entry we cannot read: the chain cannot be followed further; count the
            // request against the last proxy that handed it on.
            None => return last_trusted,
        }
    }
    // Every hop is a trusted proxy (or there are none): the left-most is the best we know.
    last_trusted
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 40000)
    }

    #[test]
    fn headers_of_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_ip(peer("198.51.100.1"), &h, &[]),
            "198.51.100.1".parse::<IpAddr>().expect("ip")
        );
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(peer("198.51.100.1"), &h, &proxies),
            "198.51.100.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        // A forged left-most entry, the real client, then an inner proxy.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &h, &proxies),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        let h = headers(&[
            ("x-forwarded-for", "[2001:db8:1::7]:5555"),
            ("x-forwarded-for", "2001:db8:ffff::1"),
        ]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &h, &proxies),
            "2001:db8:1::7".parse::<IpAddr>().expect("ip")
        );
        let h = headers(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &h, &proxies),
            "10.9.9.9".parse::<IpAddr>().expect("ip"),
            "all trusted: the left-most"
        );
        let h = headers(&[("x-forwarded-for", "garbage, 10.1.1.1")]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &h, &proxies),
            "10.1.1.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn bytes_that_are_not_text_and_a_forwarded_header_change_nothing() {
        let proxies = nets(&["127.0.0.0/8"]);
        let mut h = HeaderMap::new();
        // The client's own line, not text; the proxy appended the real address to it.
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.5").expect("opaque bytes"),
        );
        h.append("forwarded", HeaderValue::from_static("for=198.51.100.77"));
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &proxies),
            "203.0.113.5".parse::<IpAddr>().expect("ip"),
            "the address the proxy saw, never the client's pick"
        );
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.5"),
            ("forwarded", "for=198.51.100.77"),
        ]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &proxies),
            "203.0.113.5".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn forwarded_is_read_when_x_forwarded_for_is_absent() {
        let proxies = nets(&["127.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https"#,
        )]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &proxies),
            "2001:db8:cafe::17".parse::<IpAddr>().expect("ip")
        );
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &proxies),
            "127.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }
}
