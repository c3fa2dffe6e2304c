//! The end user's IP address, read from the request body or a trusted proxy's header.

use std::net::IpAddr;

use crate::net::Cidr;

/// The end user's IP: `client_ip` from the body, else the first `X-Forwarded-For` address
/// added by a trusted proxy (read from the right), else none: the connection's own address is
/// the app server's, not the user's.
pub fn end_user_ip(
    body_ip: Option<&str>,
    forwarded_for: Option<&str>,
    peer: Option<IpAddr>,
    trusted: &[Cidr],
) -> Result<Option<IpAddr>, String> {
    if let Some(raw) = body_ip {
        return raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("`client_ip` is not an IP address: {raw:?}"));
    }
    let (Some(header), Some(peer)) = (forwarded_for, peer) else {
        return Ok(None);
    };
    if !crate::net::any_contains(trusted, peer) {
        return Ok(None);
    }
    for hop in header.rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) if crate::net::any_contains(trusted, ip) => continue,
            Ok(ip) => return Ok(Some(ip)),
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let proxy = Some("10.1.2.3".parse().unwrap());
        let stranger = Some("203.0.113.9".parse().unwrap());
        assert_eq!(
            end_user_ip(None, Some("198.51.100.7, 10.0.0.5"), proxy, &trusted).unwrap(),
            "198.51.100.7".parse().ok()
        );
        assert_eq!(
            end_user_ip(None, Some("198.51.100.7"), stranger, &trusted).unwrap(),
            None,
            "spoofable header from an untrusted peer"
        );
        assert_eq!(
            end_user_ip(Some("192.0.2.1"), Some("198.51.100.7"), proxy, &trusted).unwrap(),
            "192.0.2.1".parse().ok()
        );
        assert!(end_user_ip(Some("nope"), None, None, &trusted).is_err());
    }
}
