//! The variables Kubernetes puts into every pod for each Service of its namespace (unless the
//! pod sets `enableServiceLinks: false`): for a Service named `smsgate`, `SMSGATE_SERVICE_HOST`,
//! `SMSGATE_SERVICE_PORT`, `SMSGATE_SERVICE_PORT_<PORT NAME>`, `SMSGATE_PORT` and
//! `SMSGATE_PORT_<N>_<PROTO>` with `_ADDR`, `_PORT` and `_PROTO`. They share smsgate's prefix
//! but are not its configuration, so loading skips them; a Service named `smsgate-<x>` makes the
//! same variables under `SMSGATE_<X>_`. A variable is skipped only when both its name and its
//! value have the shape Kubernetes gives them, so `SMSGATE_PORT=8080` (a mistaken setting, not a
//! service link) is still reported as an unknown key.

use std::net::IpAddr;

/// Whether `name=value`, `name` without the `SMSGATE_` prefix, is a service link variable.
pub(super) fn is_service_link(name: &str, value: &str) -> bool {
    // The variable's suffix after an optional `<X>_` from the rest of a Service's name.
    let mut starts = vec![0];
    starts.extend(name.match_indices('_').map(|(i, _)| i + 1));
    starts.into_iter().any(|start| {
        let (label, suffix) = name.split_at(start);
        (label.is_empty() || is_service_name_rest(&label[..label.len() - 1])) && is_link_suffix(suffix, value)
    })
}

/// The upper-cased rest of a DNS label after `smsgate-`, `-` made `_`: `SIM`, `SIM_V2`.
/// A double underscore is smsgate's own nesting, never part of a link variable.
fn is_service_name_rest(label: &str) -> bool {
    !label.is_empty()
        && label
            .split('_')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
}

fn is_link_suffix(suffix: &str, value: &str) -> bool {
    match suffix {
        "SERVICE_HOST" => value.parse::<IpAddr>().is_ok(),
        "SERVICE_PORT" => is_port(value),
        "PORT" => is_link_url(value),
        _ => {
            if let Some(port_name) = suffix.strip_prefix("SERVICE_PORT_") {
                return is_service_name_rest(port_name) && is_port(value);
            }
            let Some(rest) = suffix.strip_prefix("PORT_") else {
                return false;
            };
            let mut parts = rest.splitn(3, '_');
            let (Some(port), Some(proto)) = (parts.next(), parts.next()) else {
                return false;
            };
            if !is_port(port) || !["TCP", "UDP", "SCTP"].contains(&proto) {
                return false;
            }
            match parts.next() {
                None => is_link_url(value),
                Some("ADDR") => value.parse::<IpAddr>().is_ok(),
                Some("PORT") => value == port,
                Some("PROTO") => value.eq_ignore_ascii_case(proto),
                Some(_) => false,
            }
        }
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// `tcp://10.0.0.1:80`, `udp://[fd00::1]:53`.
fn is_link_url(value: &str) -> bool {
    let Some((proto, addr)) = value.split_once("://") else {
        return false;
    };
    ["tcp", "udp", "sctp"].contains(&proto) && addr.parse::<std::net::SocketAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::is_service_link;

    #[test]
    fn the_variables_of_a_service_named_smsgate_are_links() {
        for (name, value) in [
            ("SERVICE_HOST", "10.0.0.1"),
            ("SERVICE_PORT", "80"),
            ("SERVICE_PORT_HTTP", "80"),
            ("PORT", "tcp://10.0.0.1:80"),
            ("PORT_80_TCP", "tcp://10.0.0.1:80"),
            ("PORT_80_TCP_ADDR", "10.0.0.1"),
            ("PORT_80_TCP_PORT", "80"),
            ("PORT_80_TCP_PROTO", "tcp"),
            ("SERVICE_HOST", "fd00::1"),
            ("PORT", "tcp://[fd00::1]:80"),
            ("SIM_SERVICE_HOST", "10.0.0.2"),
            ("SIM_V2_PORT_9000_UDP", "udp://10.0.0.2:9000"),
        ] {
            assert!(is_service_link(name, value), "{name}={value}");
        }
    }

    #[test]
    fn our_keys_and_mistakes_are_not_links() {
        for (name, value) in [
            ("PORT", "8080"),
            ("SERVER_PORT", "8080"),
            ("SERVER__PORT", "tcp://10.0.0.1:80"),
            ("SERVICE_HOST", "smsgate.example"),
            ("SERVICE_PORT", "http"),
            ("PORT_80_TCP_PORT", "81"),
            ("PORT_80_TCP_ADDRESS", "10.0.0.1"),
            ("OTP__TTL_SECOND", "5"),
            ("FOO", "1"),
        ] {
            assert!(!is_service_link(name, value), "{name}={value}");
        }
    }
}
