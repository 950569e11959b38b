//! Which proxy kubectl would use, with client-go's rules: the kubeconfig cluster's `proxy-url`
//! wins; otherwise `golang.org/x/net/http/httpproxy` reads `HTTPS_PROXY`/`https_proxy` (for
//! https) or `HTTP_PROXY`/`http_proxy`, and `NO_PROXY`/`no_proxy` exempts hosts by exact
//! name, domain suffix, IP, CIDR or `*`. Loopback hosts (`localhost`, 127/8, ::1) never use
//! the environment proxy (httpproxy `useProxy`).

use std::net::IpAddr;

use base64::Engine;

use crate::plan::target::{Endpoint, Host, ProxyEndpoint, Scheme};
use crate::secret::{NAME_CHARS, Secret, quoted};
use crate::targets::url;

#[derive(Debug)]
pub enum ProxyDecision {
    Direct { why: String },
    Proxy { proxy: ProxyEndpoint, why: String },
    Invalid { source: String, problem: String },
}

pub fn decide(
    kubeconfig_proxy: Option<&Secret>,
    endpoint: &Endpoint,
    var: &dyn Fn(&str) -> Option<String>,
) -> ProxyDecision {
    if let Some(url) = kubeconfig_proxy {
        return to_decision(
            url.expose(),
            "kubeconfig proxy-url",
            "the kubeconfig's proxy-url overrides HTTPS_PROXY and NO_PROXY".into(),
        );
    }
    let (upper, lower) = match endpoint.scheme {
        Scheme::Https => ("HTTPS_PROXY", "https_proxy"),
        Scheme::Http => ("HTTP_PROXY", "http_proxy"),
    };
    let nonempty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let Some((source, url)) = nonempty(upper)
        .map(|v| (upper, v))
        .or_else(|| nonempty(lower).map(|v| (lower, v)))
    else {
        return ProxyDecision::Direct {
            why: format!("{upper}/{lower} not set"),
        };
    };
    if is_loopback(&endpoint.host) {
        return ProxyDecision::Direct {
            why: format!(
                "{} is a loopback host, which client-go never proxies",
                endpoint.host
            ),
        };
    }
    let no_proxy = nonempty("NO_PROXY")
        .map(|v| ("NO_PROXY", v))
        .or_else(|| nonempty("no_proxy").map(|v| ("no_proxy", v)));
    if let Some((np_name, list)) = no_proxy
        && let Some(entry) = no_proxy_match(&list, &endpoint.host, endpoint.port)
    {
        return ProxyDecision::Direct {
            why: format!(
                "{np_name} entry {} matches {}",
                quoted(&entry, NAME_CHARS),
                endpoint.host
            ),
        };
    }
    to_decision(
        &url,
        source,
        format!(
            "{source} is set and NO_PROXY does not match {}",
            endpoint.host
        ),
    )
}

fn to_decision(raw: &str, source: &str, why: String) -> ProxyDecision {
    match parse_proxy_url(raw) {
        Ok(proxy) => ProxyDecision::Proxy { proxy, why },
        Err(problem) => ProxyDecision::Invalid {
            source: format!("{source}={}", url::display_raw(raw)),
            problem,
        },
    }
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Name(n) => n.eq_ignore_ascii_case("localhost"),
        Host::Ip(ip) => ip.is_loopback(),
    }
}

/// A proxy URL as Go's httpproxy reads it: a missing scheme means `http://`. Parsed by the
/// crate's one URL parser, so a password with an unencoded `#`, `?`, `/` or `@` is refused (Go
/// would read it as a path or fragment) and never shown.
pub fn parse_proxy_url(raw: &str) -> Result<ProxyEndpoint, String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let url = url::parse(&with_scheme).map_err(|e| e.to_string())?;
    // An https:// proxy is accepted so that `proxy.connect` can tell whether it speaks TLS at
    // all (a plain proxy behind an https:// URL is a common mistake); tunnelling through one
    // is not checked yet.
    let tls = match url.scheme.as_str() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "scheme {}: only http:// and https:// forward proxies are supported (socks5:// proxies are not checked yet)",
                quoted(other, NAME_CHARS)
            ));
        }
    };
    let authorization = url.user.as_ref().map(|user| {
        let password = url.password.as_ref().map_or("", Secret::expose);
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ))
    });
    Ok(ProxyEndpoint {
        display: url.display().to_string(),
        port: url.port.unwrap_or(if tls { 443 } else { 80 }),
        host: url.host,
        authorization,
        tls,
    })
}

/// `host`, `host:port`, `[v6]:port`, `v6` (a NO_PROXY entry).
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    if s.matches(':').count() > 1 {
        return Some((s.to_string(), None));
    }
    match s.split_once(':') {
        Some((h, p)) => Some((h.to_string(), Some(p.parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

/// The NO_PROXY entry that exempts `host:port`, following httpproxy's matching:
/// `*` matches all; an IP or CIDR matches IP hosts; `example.com` matches it and its
/// subdomains; `.example.com` and `*.example.com` match subdomains only; an entry with a port
/// matches only that port.
pub fn no_proxy_match(list: &str, host: &Host, port: u16) -> Option<String> {
    for raw in list.split(',') {
        let entry = raw.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return Some(entry);
        }
        if let Ok(net) = entry.parse::<ipnet::IpNet>() {
            if let Host::Ip(ip) = host
                && net.contains(ip)
            {
                return Some(entry);
            }
            continue;
        }
        let Some((entry_host, entry_port)) = split_host_port(&entry) else {
            continue;
        };
        if entry_port.is_some_and(|p| p != port) {
            continue;
        }
        if let Ok(entry_ip) = entry_host.parse::<IpAddr>() {
            if matches!(host, Host::Ip(ip) if *ip == entry_ip) {
                return Some(entry);
            }
            continue;
        }
        let Host::Name(name) = host else { continue };
        let (suffix, match_exact) = match entry_host.strip_prefix("*.") {
            Some(rest) => (format!(".{rest}"), false),
            None if entry_host.starts_with('.') => (entry_host.clone(), false),
            None => (format!(".{entry_host}"), true),
        };
        if name.ends_with(&suffix) || (match_exact && *name == suffix[1..]) {
            return Some(entry);
        }
    }
    None
}

/// Entries of a `NO_PROXY` list that someone wrote for `host` but that Go's httpproxy will not
/// apply to any host, whatever the server (golang.org/x/net/http/httpproxy `useProxy`): a `*` anywhere but alone or
/// as a leading `*.` is no pattern (`10.0.0.*` matches nothing). Each with the reason. IP and
/// CIDR entries against a host name are [`ip_entries_against_name`]: whether one was meant for
/// the server is known only once the name is resolved.
pub fn ignored_entries(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in entries(list) {
        if entry == "*" || ip_entry(&entry).is_some() {
            continue;
        }
        let body = entry.strip_prefix("*.").unwrap_or(&entry);
        if body.contains('*') {
            out.push((
                entry,
                "`*` is a wildcard only alone or as a leading `*.`; here it is a literal character that no host name contains".into(),
            ));
        }
    }
    out
}

/// The IP and CIDR entries of a `NO_PROXY` list that never apply to `host` because it is a
/// name (client-go matches them only against a server written as an IP literal; it does not
/// resolve names for `NO_PROXY`). They matter only when the name resolves into one, which
/// the engine decides after DNS. Loopback and link-local entries are left out: they are
/// written for other hosts ([`for_this_machine_or_metadata`]).
pub fn ip_entries_against_name(list: &str, host: &Host) -> Vec<(String, ipnet::IpNet)> {
    if !matches!(host, Host::Name(_)) {
        return Vec::new();
    }
    entries(list)
        .filter_map(|entry| ip_entry(&entry).map(|net| (entry, net)))
        .filter(|(_, net)| !for_this_machine_or_metadata(net))
        .collect()
}

/// The entries of a `NO_PROXY` list, trimmed and lower-cased, empty ones left out.
fn entries(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(|raw| raw.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
}

/// An entry read as an IP network: a CIDR, or an IP address (with or without a port).
fn ip_entry(entry: &str) -> Option<ipnet::IpNet> {
    entry.parse::<ipnet::IpNet>().ok().or_else(|| {
        split_host_port(entry)
            .and_then(|(h, _)| h.parse::<IpAddr>().ok())
            .map(ipnet::IpNet::from)
    })
}

/// Loopback and link-local entries (`127.0.0.1`, `::1`, `169.254.169.254`): nearly every
/// `NO_PROXY` has them, for the job's own machine and the cloud metadata service, and no API
/// server a kubeconfig names by host name lives there; calling them ignored is noise.
fn for_this_machine_or_metadata(net: &ipnet::IpNet) -> bool {
    ["127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10"]
        .iter()
        .filter_map(|range| range.parse::<ipnet::IpNet>().ok())
        .any(|range| range.contains(net))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Host {
        Host::Name(n.into())
    }
    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().expect("ip"))
    }

    /// The NO_PROXY table, after golang.org/x/net/http/httpproxy's own tests.
    #[test]
    fn ignored_no_proxy_entries_are_named() {
        let entries = |list: &str, _host: Host| -> Vec<String> {
            ignored_entries(list).into_iter().map(|(e, _)| e).collect()
        };
        let ip_entries = |list: &str, host: Host| -> Vec<String> {
            ip_entries_against_name(list, &host)
                .into_iter()
                .map(|(e, _)| e)
                .collect()
        };
        let list = "10.0.0.0/8, 10.0.0.*, .svc, *.corp.example, 10.1.2.3, *";
        assert_eq!(entries(list, name("api.corp.example")), ["10.0.0.*"]);
        assert_eq!(
            ip_entries(list, name("api.corp.example")),
            ["10.0.0.0/8", "10.1.2.3"]
        );
        // Against an IP-literal server, IP and CIDR entries do apply.
        assert_eq!(entries(list, ip("10.0.0.5")), ["10.0.0.*"]);
        assert!(ip_entries(list, ip("10.0.0.5")).is_empty());
        assert!(entries("corp.example,.svc", name("api.corp.example")).is_empty());
        // Entries for the job's own machine and the metadata service are not meant for it.
        let field = "localhost,127.0.0.1,::1,127.0.0.0/8,169.254.169.254,[::1]:8080,.svc";
        assert!(entries(field, name("api.corp.example")).is_empty());
        assert!(ip_entries(field, name("api.corp.example")).is_empty());
    }

    #[test]
    fn no_proxy_matching_table() {
        let cases: &[(&str, Host, u16, bool)] = &[
            ("*", name("api.example.com"), 443, true),
            ("example.com", name("example.com"), 443, true),
            ("example.com", name("api.example.com"), 443, true),
            ("example.com", name("notexample.com"), 443, false),
            (".example.com", name("example.com"), 443, false),
            (".example.com", name("api.example.com"), 443, true),
            ("*.example.com", name("api.example.com"), 443, true),
            ("*.example.com", name("example.com"), 443, false),
            ("example.com:6443", name("api.example.com"), 6443, true),
            ("example.com:6443", name("api.example.com"), 443, false),
            ("10.0.0.0/8", ip("10.1.2.3"), 443, true),
            ("10.0.0.0/8", ip("192.168.1.1"), 443, false),
            ("10.0.0.0/8", name("ten.example.com"), 443, false),
            ("192.168.1.1", ip("192.168.1.1"), 6443, true),
            ("fd00::/8", ip("fd00::5"), 443, true),
            ("other.com, example.com", name("k.example.com"), 443, true),
            ("", name("example.com"), 443, false),
            ("EXAMPLE.com", name("api.example.com"), 443, true),
        ];
        for (list, host, port, expected) in cases {
            assert_eq!(
                no_proxy_match(list, host, *port).is_some(),
                *expected,
                "NO_PROXY={list:?} host={host} port={port}"
            );
        }
    }

    fn endpoint(host: Host) -> Endpoint {
        Endpoint {
            scheme: Scheme::Https,
            host,
            port: 6443,
            base_path: String::new(),
        }
    }

    /// The `NO_PROXY` entry that matched and a proxy URL's scheme are quoted through
    /// `secret::quoted` (redacted, between single quotes), never `Debug`.
    #[test]
    fn quoted_entries_and_schemes_are_redacted() {
        const SECRET: &str = "glpat-abcdefghij0123456789";
        let host = format!("{SECRET}.example");
        let vars = |n: &str| match n {
            "HTTPS_PROXY" => Some("http://env-proxy:3128".to_string()),
            "NO_PROXY" => Some(host.clone()),
            _ => None,
        };
        match decide(None, &endpoint(name(&host)), &vars) {
            ProxyDecision::Direct { why } => {
                assert!(
                    why.starts_with("NO_PROXY entry 'glpat-[REDACTED]' matches "),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
        let err = parse_proxy_url(&format!("{SECRET}://proxy:3128")).expect_err("scheme");
        assert!(err.starts_with("scheme 'glpat-[REDACTED]':"), "{err}");
    }

    #[test]
    fn kubeconfig_proxy_url_beats_environment_and_no_proxy() {
        let vars = |n: &str| match n {
            "HTTPS_PROXY" => Some("http://env-proxy:3128".to_string()),
            "NO_PROXY" => Some("*".to_string()),
            _ => None,
        };
        let kube = Secret::new("http://kube-proxy:8888");
        match decide(Some(&kube), &endpoint(name("api.k8s.test")), &vars) {
            ProxyDecision::Proxy { proxy, .. } => assert_eq!(proxy.host, name("kube-proxy")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(None, &endpoint(name("api.k8s.test")), &vars),
            ProxyDecision::Direct { .. }
        ));
    }

    #[test]
    fn uppercase_variable_wins_and_loopback_is_never_proxied() {
        let vars = |n: &str| match n {
            "HTTPS_PROXY" => Some("upper:3128".to_string()),
            "https_proxy" => Some("http://lower:3128".to_string()),
            _ => None,
        };
        match decide(None, &endpoint(name("api.k8s.test")), &vars) {
            ProxyDecision::Proxy { proxy, .. } => {
                assert_eq!(proxy.host, name("upper"));
                assert_eq!(proxy.port, 3128);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(None, &endpoint(ip("127.0.0.1")), &vars),
            ProxyDecision::Direct { .. }
        ));
    }

    #[test]
    fn proxy_credentials_become_a_header_and_never_display() {
        let p = parse_proxy_url("http://ci:s3cr%40t@proxy.corp:8080").expect("valid");
        assert_eq!(p.display, "http://ci:***@proxy.corp:8080");
        let header = p.authorization.expect("auth");
        assert_eq!(
            header.expose(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("ci:s3cr@t")
            )
        );
        assert!(parse_proxy_url("socks5://x:1").is_err());
    }
}
