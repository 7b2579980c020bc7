//! Which webhook URLs the relay will call. Stores set their own URL, so
//! unless `webhook.allow_private_networks` is on, a URL may not lead to the
//! relay's own network: IP literals are checked when the URL is set and
//! before each request, and host names are resolved by `PublicOnly`, which
//! drops every non-public address (so DNS cannot point a name inside later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// The longest webhook URL a store may set.
pub const MAX_URL_LEN: usize = 2048;

/// Parse and check a webhook URL; the error says what is wrong with it.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!(
            "webhook_url is longer than {MAX_URL_LEN} characters"
        ));
    }
    let url = Url::parse(raw).map_err(|e| format!("webhook_url is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("webhook_url must start with https:// or http://".into());
    }
    let private = match url.host() {
        None => return Err("webhook_url has no host".into()),
        Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(
            "webhook_url leads to a loopback, private or link-local address, which \
             this relay does not call (webhook.allow_private_networks)"
                .into(),
        );
    }
    Ok(url)
}

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)) // documentation
}

/// A resolver that returns only public addresses.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for public in [
            "8.8.8.8",
            "2606:4700::1111",
            "100.128.0.1",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://erp.example.com/hooks/ct?x=1", false).is_ok());
        let refused = |u: &str| check_url(u, false).unwrap_err();
        assert!(refused("ftp://example.com/").contains("https://"));
        assert!(refused("/relative").contains("absolute"));
        assert!(refused("http://127.0.0.1:8080/").contains("private"));
        assert!(refused("http://[::1]/").contains("private"));
        assert!(refused("http://169.254.169.254/latest/meta-data").contains("private"));
        assert!(refused("http://LOCALHOST./").contains("private"));
        assert!(refused(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).contains("longer"));
        assert!(check_url("http://127.0.0.1:8080/", true).is_ok());
    }
}
