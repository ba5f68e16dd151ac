//! The checks every HTTP request passes before it reaches a session: DNS-rebinding protection
//! (`Host` must name the listening address or a loopback name with its port, `Origin` when
//! present must be a loopback origin) and the bearer token.

use std::net::SocketAddr;

/// Why a request is refused before it is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("host {0:?} is not this endpoint")]
    ForeignHost(String),
    #[error("origin {0:?} is not a loopback origin")]
    ForeignOrigin(String),
}

/// Host names a loopback client may use for the listening address `listen`.
fn loopback_name(host: &str, listen: SocketAddr) -> bool {
    let listen_ip = match listen {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    let host = host.to_ascii_lowercase();
    ["localhost", "127.0.0.1", "[::1]"].contains(&host.as_str()) || host == listen_ip
}

/// `HOST[:PORT]`, with an IPv6 host in brackets, split; `None` when it is not of that shape.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (host, rest) = authority.split_at(end);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse().ok()?),
        None => None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// The `Host` header must be `localhost`, `127.0.0.1`, `[::1]` or the listening address, with
/// the listening port: a page whose name resolves to 127.0.0.1 (DNS rebinding) sends its own name.
pub fn check_host(host: Option<&str>, listen: SocketAddr) -> Result<(), Refusal> {
    let host = host.unwrap_or_default();
    match split_authority(host) {
        Some((name, Some(port))) if port == listen.port() && loopback_name(name, listen) => Ok(()),
        _ => Err(Refusal::ForeignHost(host.to_owned())),
    }
}

/// An `Origin`, when the client sends one (browsers do), must be `http` or `https` on a loopback
/// name or the listening address, any port.
pub fn check_origin(origin: Option<&str>, listen: SocketAddr) -> Result<(), Refusal> {
    let Some(origin) = origin else {
        return Ok(());
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match authority.and_then(split_authority) {
        Some((name, _)) if loopback_name(name, listen) => Ok(()),
        _ => Err(Refusal::ForeignOrigin(origin.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        "127.0.0.1:8931".parse().unwrap()
    }

    #[test]
    fn loopback_hosts_with_the_port_pass() {
        for host in [
            "localhost:8931",
            "127.0.0.1:8931",
            "[::1]:8931",
            "LOCALHOST:8931",
        ] {
            assert_eq!(check_host(Some(host), listen()), Ok(()), "{host}");
        }
    }

    #[test]
    fn other_hosts_and_ports_are_refused() {
        for host in [
            "evil.example:8931",
            "localhost:8932",
            "localhost",
            "127.0.0.1.evil.example:8931",
            "[::1]8931",
            "",
        ] {
            assert!(check_host(Some(host), listen()).is_err(), "{host}");
        }
        assert!(check_host(None, listen()).is_err());
    }

    #[test]
    fn a_forced_address_is_its_own_host() {
        let listen: SocketAddr = "192.0.2.7:80".parse().unwrap();
        assert_eq!(check_host(Some("192.0.2.7:80"), listen), Ok(()));
        assert!(check_host(Some("192.0.2.8:80"), listen).is_err());
        let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!(check_host(Some("[2001:db8::1]:80"), v6), Ok(()));
    }

    #[test]
    fn only_loopback_origins_pass() {
        for origin in [
            "http://localhost:3000",
            "https://127.0.0.1",
            "http://[::1]:8931",
        ] {
            assert_eq!(check_origin(Some(origin), listen()), Ok(()), "{origin}");
        }
        for origin in [
            "http://evil.example",
            "null",
            "file://",
            "http://localhost.evil.example",
            "ftp://localhost",
        ] {
            assert!(check_origin(Some(origin), listen()).is_err(), "{origin}");
        }
        assert_eq!(check_origin(None, listen()), Ok(()));
    }
}
