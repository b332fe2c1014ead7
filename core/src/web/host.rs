//! The host a request was sent to, read the way a proxy-aware server must: from the URI's
//! authority or the `Host` header, and from `Forwarded` / `X-Forwarded-Host` only when the peer is
//! a configured proxy (any client can send those headers). Normalised once (lower case, no port,
//! no trailing dot, internationalised names in their ASCII form) and checked; a host that is
//! not a host name or an IP address is refused.

use std::fmt;
use std::net::IpAddr;

use axum::http::header::{FORWARDED, HOST};
use axum::http::{HeaderMap, Uri};

use crate::Domain;
use crate::config::IpRange;

/// The checked host of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestHost {
    /// A host name, in ASCII form.
    Name(Domain),
    /// An IP address: never a tenant's domain.
    Ip(IpAddr),
}

impl fmt::Display for RequestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(domain) => domain.fmt(f),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}

/// Why a request's host was refused (answered with 400 Bad Request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Neither the URI nor a `Host` header names a host.
    #[error("the request names no host")]
    Missing,
    /// The host is not a host name or an IP address.
    #[error("the request's host is not a valid host name")]
    Malformed,
}

/// The host of a request sent by `peer` (if known), believing forwarded headers only from `trusted`.
///
/// # Errors
/// [`HostError`] when there is no host or it is malformed.
pub fn request_host(uri: &Uri, headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpRange]) -> Result<RequestHost, HostError> {
    if let Some(peer) = peer
        && trusted.iter().any(|range| range.contains(peer))
        && let Some(forwarded) = forwarded_host(headers)
    {
        return parse_host(&forwarded?);
    }
    if let Some(authority) = uri.authority() {
        return parse_host(authority.as_str());
    }
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => parse_host(text(host)?),
        (None, _) => Err(HostError::Missing),
        // Two Host headers: which one a proxy used is anyone's guess.
        (Some(_), Some(_)) => Err(HostError::Malformed),
    }
}

/// The host a trusted proxy passed on: `Forwarded`'s first `host=`, else `X-Forwarded-Host`'s
/// first value. The first element is the one the client-facing proxy wrote.
fn forwarded_host(headers: &HeaderMap) -> Option<Result<String, HostError>> {
    if let Some(value) = headers.get(FORWARDED) {
        let Ok(value) = text(value) else { return Some(Err(HostError::Malformed)) };
        let first = value.split(',').next().unwrap_or_default();
        for pair in first.split(';') {
            if let Some((key, host)) = pair.trim().split_once('=')
                && key.trim().eq_ignore_ascii_case("host")
            {
                return Some(Ok(host.trim().trim_matches('"').to_owned()));
            }
        }
    }
    let value = headers.get("x-forwarded-host")?;
    let Ok(value) = text(value) else { return Some(Err(HostError::Malformed)) };
    Some(Ok(value.split(',').next().unwrap_or_default().trim().to_owned()))
}

/// A header's value as UTF-8: an internationalised host sent as such (not as its `xn--` form) is
/// converted below, not refused here.
fn text(value: &axum::http::HeaderValue) -> Result<&str, HostError> {
    std::str::from_utf8(value.as_bytes()).map_err(|_| HostError::Malformed)
}

/// Checks and normalises one `host[:port]`.
///
/// # Errors
/// [`HostError`] when `raw` is empty, has user information, a bad port, or is no host name or IP.
pub fn parse_host(raw: &str) -> Result<RequestHost, HostError> {
    if raw.is_empty() {
        return Err(HostError::Missing);
    }
    // One pass finds both what must not be there and where a port would start.
    let mut colon = None;
    for (at, byte) in raw.bytes().enumerate() {
        match byte {
            b'@' | b'/' | b'\\' | b'?' | b'#' | b' ' => return Err(HostError::Malformed),
            b':' if colon.is_none() => colon = Some(at),
            _ => {}
        }
    }
    let host = if let Some(rest) = raw.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(HostError::Malformed)?;
        check_port(after.strip_prefix(':'), after.is_empty())?;
        return literal.parse::<std::net::Ipv6Addr>().map(|ip| RequestHost::Ip(IpAddr::V6(ip))).map_err(|_| HostError::Malformed);
    } else {
        match colon {
            Some(at) => {
                check_port(Some(&raw[at + 1..]), false)?;
                &raw[..at]
            }
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if let Some(domain) = Domain::parse_plain_ascii(host) {
        return Ok(RequestHost::Name(domain));
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(RequestHost::Ip(IpAddr::V4(ip)));
    }
    let is_plain = host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let domain = if is_plain && !host.contains("xn--") {
        Domain::parse(host)
    } else {
        // Internationalised names (and A-labels written as such) are checked by UTS 46.
        let ascii = idna::domain_to_ascii_strict(host).map_err(|_| HostError::Malformed)?;
        Domain::parse(&ascii)
    };
    domain.map(RequestHost::Name).map_err(|_| HostError::Malformed)
}

/// A port, if any, is 1 to 5 digits.
fn check_port(port: Option<&str>, absent_is_fine: bool) -> Result<(), HostError> {
    match port {
        None if absent_is_fine => Ok(()),
        Some(port) if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(HostError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(host: &str) -> RequestHost {
        RequestHost::Name(Domain::parse(host).unwrap())
    }

    #[test]
    fn normalises_what_browsers_send() {
        assert_eq!(parse_host("Acme.Localhost"), Ok(name("acme.localhost")));
        assert_eq!(parse_host("acme.localhost:8000"), Ok(name("acme.localhost")));
        assert_eq!(parse_host("acme.localhost."), Ok(name("acme.localhost")));
        assert_eq!(parse_host("acme.localhost.:80"), Ok(name("acme.localhost")));
        assert_eq!(parse_host("BÜCHER.example"), Ok(name("xn--bcher-kva.example")));
        assert_eq!(parse_host("127.0.0.1:8000"), Ok(RequestHost::Ip("127.0.0.1".parse().unwrap())));
        assert_eq!(parse_host("[::1]:8000"), Ok(RequestHost::Ip("::1".parse().unwrap())));
    }

    #[test]
    fn refuses_what_is_no_host() {
        for bad in [
            "user@acme.localhost",
            "acme.localhost:",
            "acme.localhost:80:80",
            "acme.localhost:http",
            "acme..localhost",
            "acme.localhost..",
            "../etc",
            "acme.localhost/x",
            "a b",
            "[::1",
            "[::1]x",
            "[not-ip]",
            "under_score.localhost",
            "xn--zz.localhost",
        ] {
            assert_eq!(parse_host(bad), Err(HostError::Malformed), "{bad}");
        }
        assert_eq!(parse_host(&format!("{}.localhost", "a.".repeat(130))), Err(HostError::Malformed));
        assert_eq!(parse_host(""), Err(HostError::Missing));
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "proxy.localhost".parse().unwrap());
        headers.insert("x-forwarded-host", "acme.localhost, other.localhost".parse().unwrap());
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = [IpRange::parse("10.0.0.0/8").unwrap()];
        assert_eq!(request_host(&uri, &headers, Some(client), &trusted), Ok(name("proxy.localhost")));
        assert_eq!(request_host(&uri, &headers, None, &trusted), Ok(name("proxy.localhost")));
        assert_eq!(request_host(&uri, &headers, Some(proxy), &trusted), Ok(name("acme.localhost")));
        headers.insert(FORWARDED, "for=203.0.113.9;Host=\"globex.localhost:443\";proto=https, host=x.localhost".parse().unwrap());
        assert_eq!(request_host(&uri, &headers, Some(proxy), &trusted), Ok(name("globex.localhost")));
    }

    #[test]
    fn the_uri_authority_wins_and_two_hosts_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "acme.localhost".parse().unwrap());
        let absolute: Uri = "http://globex.localhost/x".parse().unwrap();
        assert_eq!(request_host(&absolute, &headers, None, &[]), Ok(name("globex.localhost")));
        headers.append(HOST, "globex.localhost".parse().unwrap());
        assert_eq!(request_host(&"/".parse().unwrap(), &headers, None, &[]), Err(HostError::Malformed));
        assert_eq!(request_host(&"/".parse().unwrap(), &HeaderMap::new(), None, &[]), Err(HostError::Missing));
    }
}
