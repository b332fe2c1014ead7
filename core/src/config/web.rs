//! `[web]`: how `tenancy serve` and the `web` layer find the tenant of a request.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::Domain;

/// `[web]`: identification of tenants in HTTP requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Where `tenancy serve` listens.
    pub listen: SocketAddr,
    /// The hosts of the application itself (sign-up, admin): never a tenant's, and the parents of
    /// tenant subdomains. Host names or IP addresses.
    pub central_domains: Vec<String>,
    /// The ways a tenant is recognised, tried in this order; the first that finds one wins.
    pub identify_by: Vec<Identify>,
    /// The header the `header` way reads.
    pub tenant_header: String,
    /// Proxies whose `Forwarded` and `X-Forwarded-Host` headers are believed: addresses or
    /// CIDR ranges (`10.0.0.0/8`). From anyone else these headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// The most hosts the resolver cache keeps.
    pub resolver_cache_capacity: u64,
    /// How long a host's tenant is cached, at most.
    pub resolver_cache_ttl_secs: u64,
    /// How long "no tenant here" is cached.
    pub resolver_negative_ttl_secs: u64,
    /// How often the registry's change counter is read, so changes made by other processes reach
    /// this one's cache: the bound on serving a removed domain or a suspended tenant.
    pub change_poll_millis: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            central_domains: vec!["localhost".into(), "127.0.0.1".into()],
            identify_by: vec![Identify::Domain, Identify::Subdomain],
            tenant_header: "X-Tenant".into(),
            trusted_proxies: Vec::new(),
            resolver_cache_capacity: 10_000,
            resolver_cache_ttl_secs: 300,
            resolver_negative_ttl_secs: 5,
            change_poll_millis: 1_000,
        }
    }
}

/// A way to recognise the tenant of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Identify {
    /// The host is one of the tenant's domains.
    Domain,
    /// The host is `LABEL.CENTRAL` for a central domain, and `LABEL` is one of the tenant's domains.
    Subdomain,
    /// The first path segment is the tenant's id or one of its domains; it is removed before routing.
    Path,
    /// The `tenant_header` header holds the tenant's id or one of its domains.
    Header,
}

/// A central host: a name or an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CentralHost {
    /// A host name.
    Name(Domain),
    /// An IP address.
    Ip(IpAddr),
}

impl CentralHost {
    fn parse(input: &str) -> Result<Self, String> {
        if let Ok(ip) = input.trim().trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        Domain::parse(input).map(Self::Name).map_err(|err| err.to_string())
    }
}

/// An address range: `10.0.0.0/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX`.
    ///
    /// # Errors
    /// A message naming the input.
    pub fn parse(input: &str) -> Result<Self, String> {
        let (address, prefix) = match input.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (input, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| format!("`{input}` is not an IP address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => match prefix.trim().parse::<u8>() {
                Ok(prefix) if prefix <= max => prefix,
                _ => return Err(format!("`{input}`: the prefix length must be a number from 0 to {max}")),
            },
        };
        Ok(Self { network, prefix })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(net), 128, self.prefix) == masked(u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits >> (width - prefix) }
}

impl WebConfig {
    /// The central hosts, parsed.
    pub fn central_hosts(&self) -> Vec<CentralHost> {
        self.central_domains.iter().filter_map(|host| CentralHost::parse(host).ok()).collect()
    }

    /// The trusted proxies, parsed.
    pub fn trusted_proxy_ranges(&self) -> Vec<IpRange> {
        self.trusted_proxies.iter().filter_map(|range| IpRange::parse(range).ok()).collect()
    }

    /// Checks every value; the error names the key.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("web.{k}");
        for host in &self.central_domains {
            CentralHost::parse(host).map_err(|err| (key("central_domains"), err))?;
        }
        for range in &self.trusted_proxies {
            IpRange::parse(range).map_err(|err| (key("trusted_proxies"), err))?;
        }
        if self.identify_by.is_empty() {
            return Err((key("identify_by"), "name at least one of domain, subdomain, path, header".into()));
        }
        for (index, way) in self.identify_by.iter().enumerate() {
            if self.identify_by[..index].contains(way) {
                return Err((key("identify_by"), format!("`{}` is listed twice", serde_json::to_value(way).unwrap_or_default())));
            }
        }
        if self.identify_by.contains(&Identify::Subdomain) && self.central_hosts().iter().all(|host| matches!(host, CentralHost::Ip(_))) {
            return Err((key("identify_by"), "`subdomain` needs a host name in `web.central_domains` to find subdomains of".into()));
        }
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        // Checked even when `header` is not listed: an application may turn it on in code.
        if self.tenant_header.is_empty() || !self.tenant_header.chars().all(token) {
            return Err((key("tenant_header"), format!("`{}` is not an HTTP header name", self.tenant_header)));
        }
        for (name, value) in [
            ("resolver_cache_capacity", self.resolver_cache_capacity),
            ("resolver_cache_ttl_secs", self.resolver_cache_ttl_secs),
            ("change_poll_millis", self.change_poll_millis),
        ] {
            if value == 0 {
                return Err((key(name), format!("`{name}` must be at least 1")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_on_their_prefix() {
        let range = IpRange::parse("10.1.0.0/16").unwrap();
        assert!(range.contains("10.1.200.3".parse().unwrap()));
        assert!(!range.contains("10.2.0.1".parse().unwrap()));
        assert!(range.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = IpRange::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("example.com").is_err());
    }
}
