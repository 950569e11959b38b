//! Managed-cluster endpoint names: which cloud's API endpoint a server host name is, whether an
//! address it answered is private, and what that provider calls the settings that decide who may
//! reach the endpoint. Shared by `dns.resolve` (`private-answer`), `tcp.connect` (the timeout's
//! fix) and `auth.whoami` (a cloud identity not mapped). Pure functions, no I/O.
//!
//! The list is short on purpose: each entry is a name pattern the provider documents for its
//! Kubernetes API endpoint, and that users report answering a private address from outside:
//! - EKS: `<id>.<gr7|sk1|yl4…>.<region>.eks.amazonaws.com` (`.amazonaws.com.cn` in China). With
//!   the private endpoint enabled the public Route 53 name answers the VPC's ENI addresses from
//!   anywhere (eksctl#7929; AWS "Cluster API server endpoint").
//! - AKS: `<prefix>-<hash>.hcp.<region>.azmk8s.io`, private clusters
//!   `<prefix>-<hash>.<guid>.privatelink.<region>.azmk8s.io` (Azure/AKS#1504).
//! - Azure Private Link in general: a `privatelink.` label, whose private DNS zone only the
//!   linked virtual network sees.
//! - GKE's DNS-based endpoint: `gke-<hash>-<project>.<region>.gke.goog`. GKE's classic endpoint
//!   is an IP address, which `config.server private-address` already judges.

use std::net::IpAddr;

use crate::model::CheckResult;

/// A managed Kubernetes offering, recognised from its API endpoint's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Eks,
    Aks,
    Gke,
    /// A Private Link name not otherwise known (Azure Private Link for another service).
    PrivateLink,
}

impl Provider {
    /// `result` with `detail`, this provider's fix: put before the catalogue's generic one,
    /// except for GKE's DNS-based endpoint, where the generic texts ("the API server's
    /// authorized networks", "allow the runner's egress address in its authorized networks")
    /// would contradict it: that endpoint has no authorized networks, so its fix is the whole.
    pub fn fix(self, result: CheckResult, detail: &str) -> CheckResult {
        if self == Provider::Gke {
            CheckResult {
                fix: Some(detail.to_string()),
                ..result
            }
        } else {
            result.with_fix_detail(detail)
        }
    }

    /// The provider whose API endpoint `host` is named like, if any.
    pub fn of_host(host: &str) -> Option<Provider> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ends = |suffix: &str| host.ends_with(suffix);
        if ends(".eks.amazonaws.com") || ends(".eks.amazonaws.com.cn") {
            Some(Provider::Eks)
        } else if ends(".azmk8s.io") {
            Some(Provider::Aks)
        } else if ends(".gke.goog") {
            Some(Provider::Gke)
        } else if is_private_zone_name(&host) {
            Some(Provider::PrivateLink)
        } else {
            None
        }
    }

    /// How a person names it.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Eks => "an Amazon EKS API endpoint",
            Provider::Aks => "an Azure AKS API endpoint",
            Provider::Gke => "a Google GKE DNS-based endpoint",
            Provider::PrivateLink => "an Azure Private Link name",
        }
    }

    /// Where the private endpoint is reachable from, and how to reach it from the job.
    pub fn private_endpoint_fix(self) -> &'static str {
        match self {
            Provider::Eks => {
                "This is the EKS cluster's private endpoint: run the job on a runner inside the cluster's VPC (or a network peered with it, through a Transit Gateway or VPN), or enable the public endpoint (`endpointPublicAccess`) and add the runner's egress address to `publicAccessCidrs`."
            }
            Provider::Aks => {
                "This is the AKS cluster's private endpoint: run the job on a runner inside the cluster's virtual network (or a peered one linked to its private DNS zone), or use `az aks command invoke`; for a public cluster, add the runner's egress address to `--api-server-authorized-ip-ranges`."
            }
            Provider::Gke => {
                "This GKE DNS-based endpoint answered a private address (a private DNS zone or Private Service Connect endpoint overrides Google's public answer): run the job on a runner inside that VPC network, or resolve the name through public DNS. Access to the DNS-based endpoint is decided by IAM (`container.clusters.connect` for the job's Google identity), not by authorized networks."
            }
            Provider::PrivateLink => {
                "A Private Link name is served by a private DNS zone that only its linked virtual networks see: run the job on a runner inside that virtual network (or one linked to the zone)."
            }
        }
    }

    /// The whole fix of an NXDOMAIN for a name of this provider, where the generic one (a
    /// name only resolvable on another network, private DNS) would mislead: EKS publishes a
    /// cluster's endpoint name in public DNS whatever its endpoint access (a private-only
    /// cluster's name answers its VPC addresses: AWS "Accessing a private only API server"),
    /// and GKE's DNS-based endpoint is a public name. `None`: the generic fix stands (AKS's
    /// private clusters and Private Link names live in private zones; [`is_private_zone_name`]).
    pub fn nxdomain_fix(self) -> Option<&'static str> {
        match self {
            Provider::Eks => Some(
                "EKS publishes every cluster's endpoint name in public DNS, whatever its endpoint access (with only the private endpoint enabled the name still resolves, to the VPC's addresses), so NXDOMAIN is not a private endpoint: no current cluster has this name (a typo, or the cluster was deleted or recreated under a new endpoint). Take the endpoint from `aws eks describe-cluster --name <cluster> --query cluster.endpoint` (or `aws eks update-kubeconfig --name <cluster>`).",
            ),
            Provider::Gke => Some(
                "GKE's DNS-based endpoint is a public name, resolvable from anywhere while the cluster's DNS access is enabled, so NXDOMAIN is not a private endpoint: this name is not a current cluster's (a typo, a deleted or recreated cluster, or DNS access disabled). Take the endpoint from `gcloud container clusters describe <cluster> --location <location> --format='value(controlPlaneEndpointsConfig.dnsEndpointConfig.endpoint)'` (or `gcloud container clusters get-credentials <cluster> --dns-endpoint`).",
            ),
            Provider::Aks | Provider::PrivateLink => None,
        }
    }

    /// What decides whether the runner's address may reach the endpoint at all.
    pub fn authorized_networks_fix(self) -> &'static str {
        match self {
            Provider::Eks => {
                "For EKS, add the runner's egress address to the cluster's `publicAccessCidrs` (a public endpoint), or the cluster security group's inbound rules on 443 (a private endpoint from a peered network)."
            }
            Provider::Aks => {
                "For AKS, add the runner's egress address to `--api-server-authorized-ip-ranges`."
            }
            Provider::Gke => {
                "GKE's DNS-based endpoint is not behind authorized networks (`--master-authorized-networks` gates only the IP-based endpoint) nor the cluster's firewall rules: Google's front end serves it from public addresses, and access is IAM-gated (the job's Google identity needs `container.clusters.connect`; VPC Service Controls may restrict it further), which refuses with an HTTP 403, never a silent drop. A timeout to it is the runner's own egress: allow the runner's network out to these addresses on port 443 (an egress firewall or network policy), or send the job through the proxy that network requires."
            }
            Provider::PrivateLink => {
                "Private Link endpoints are reachable only from linked virtual networks: run the job inside one."
            }
        }
    }
}

/// A name served from a private DNS zone (an Azure Private Link `privatelink.` label), which
/// resolvers outside the linked networks do not see: NXDOMAIN there means "not from here".
pub fn is_private_zone_name(host: &str) -> bool {
    host.trim_end_matches('.')
        .split('.')
        .any(|label| label.eq_ignore_ascii_case("privatelink"))
}

/// Addresses that only their own network routes: RFC 1918, shared address space (RFC 6598,
/// used by some VPCs and CNIs), and IPv6 unique-local (RFC 4193).
pub fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// A managed endpoint name that answered at least one private address: `(provider, addresses)`.
pub fn private_answer(host: &str, addresses: &[IpAddr]) -> Option<(Provider, Vec<IpAddr>)> {
    let provider = Provider::of_host(host)?;
    let private: Vec<IpAddr> = addresses.iter().copied().filter(is_private).collect();
    (!private.is_empty()).then_some((provider, private))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_each_provider_are_recognised() {
        for (host, want) in [
            (
                "ABCDEF0123.gr7.eu-west-1.eks.amazonaws.com",
                Some(Provider::Eks),
            ),
            (
                "x.sk1.cn-north-1.eks.amazonaws.com.cn.",
                Some(Provider::Eks),
            ),
            ("dns-1a2b.hcp.westeurope.azmk8s.io", Some(Provider::Aks)),
            (
                "aks-1a2b.5f0c.privatelink.westeurope.azmk8s.io",
                Some(Provider::Aks),
            ),
            ("gke-0a1b-proj.europe-west1.gke.goog", Some(Provider::Gke)),
            ("db.privatelink.example.net", Some(Provider::PrivateLink)),
            ("api.k8s.test", None),
            ("eks.amazonaws.com.evil.example", None),
            ("notprivatelink.example", None),
        ] {
            assert_eq!(Provider::of_host(host), want, "{host}");
        }
    }

    #[test]
    fn private_means_rfc1918_shared_and_unique_local() {
        for (ip, want) in [
            ("10.0.190.233", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("35.202.107.4", false),
            ("127.0.0.1", false),
            ("fd00:253:1::2", true),
            ("2001:db8::1", false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(is_private(&ip), want, "{ip}");
        }
    }

    #[test]
    fn only_a_managed_name_with_a_private_address_is_a_private_answer() {
        let private: IpAddr = "10.0.190.233".parse().unwrap();
        let public: IpAddr = "35.202.107.4".parse().unwrap();
        let eks = "abc.gr7.us-east-1.eks.amazonaws.com";
        assert_eq!(
            private_answer(eks, &[public, private]),
            Some((Provider::Eks, vec![private]))
        );
        assert_eq!(private_answer(eks, &[public]), None);
        assert_eq!(private_answer("api.k8s.test", &[private]), None);
    }
}
