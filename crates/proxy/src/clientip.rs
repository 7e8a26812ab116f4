//! Which address is the client: the TCP peer, unless the peer is a trusted
//! proxy, in which case `X-Forwarded-For` / `Forwarded` are believed as far
//! back as the chain stays trusted.

use ipnet::IpNet;
use std::net::IpAddr;

pub fn resolve(peer: IpAddr, headers: &[(String, Vec<u8>)], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Hops as listed, client first. Walk from the nearest hop back; the first
    // untrusted address is the client. Unparseable entries stop the walk.
    let mut hops: Vec<IpAddr> = Vec::new();
    let xff: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.as_slice())
        .collect();
    if !xff.is_empty() {
        for v in xff {
            for part in String::from_utf8_lossy(v).split(',') {
                hops.push(match parse_ip(part.trim()) {
                    Some(ip) => ip,
                    None => return peer,
                });
            }
        }
    } else {
        for (_, v) in headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("forwarded"))
        {
            for elem in String::from_utf8_lossy(v).split(',') {
                for pair in elem.split(';') {
                    let Some((k, val)) = pair.trim().split_once('=') else {
                        continue;
                    };
                    if k.trim().eq_ignore_ascii_case("for") {
                        match parse_ip(val.trim().trim_matches('"')) {
                            Some(ip) => hops.push(ip),
                            None => return peer,
                        }
                    }
                }
            }
        }
    }
    let mut client = peer;
    for ip in hops.iter().rev() {
        client = *ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: &str, v: &str) -> (String, Vec<u8>) {
        (n.to_string(), v.as_bytes().to_vec())
    }

    #[test]
    fn untrusted_peer_is_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "1.2.3.4".parse().unwrap();
        assert_eq!(
            resolve(peer, &[h("X-Forwarded-For", "9.9.9.9")], &trusted),
            peer
        );
    }

    #[test]
    fn trusted_chain() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let r = resolve(
            peer,
            &[h("X-Forwarded-For", "6.6.6.6, 5.5.5.5, 10.1.1.1")],
            &trusted,
        );
        assert_eq!(r, "5.5.5.5".parse::<IpAddr>().unwrap());
        let r = resolve(
            peer,
            &[h("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https")],
            &trusted,
        );
        assert_eq!(r, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            resolve(peer, &[h("X-Forwarded-For", "garbage")], &trusted),
            peer
        );
        assert_eq!(resolve(peer, &[], &trusted), peer);
    }
}
