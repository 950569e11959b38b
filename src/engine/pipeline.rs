//! Each target kind's pipeline: the steps the engine runs for it, in order, and the report rows
//! each step fills. It is the one declaration of both: [`shape::rows`](super::shape::rows) reads
//! the rows from here, and the engine runs the steps from here, so the report's shape follows
//! the target's kind and never the layer that failed.
//!
//! What a step needs from the ones before is in its type: the connection steps hand a value on
//! (addresses, a stream, a tunnelled stream, a TLS connection, an HTTP connection); the server
//! steps share one [`HttpConnection`](crate::net::http::HttpConnection) and, for RBAC, the
//! identity `auth.whoami` found.

use crate::catalogue::CheckId;
use crate::model::{CheckResult, TargetKind};
use crate::plan::{Requirement, Route, Scheme, Target};

/// One row every report of the target has: a check id and its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: CheckId,
    pub subject: String,
}

impl Row {
    pub fn new(id: CheckId, subject: impl Into<String>) -> Row {
        Row {
            id,
            subject: subject.into(),
        }
    }

    /// Whether `result` fills this row. Connection rows are one per address (`ip:port`) and an
    /// IP host needs no lookup, so only RBAC rows, one per question, are told apart by subject.
    pub fn is_filled_by(&self, result: &CheckResult) -> bool {
        result.id == self.id && (self.id != CheckId::RbacCanI || result.subject == self.subject)
    }
}

/// One step of a pipeline. The connection steps come first for every kind; the server steps
/// after them are what the kind asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `dns.resolve` of the server's name, or of the proxy's on a proxied route.
    Resolve,
    /// `tcp.connect`, or `proxy.connect` on a proxied route: needs the addresses.
    Connect,
    /// `proxy.tunnel` (proxied routes only): needs the connected stream.
    Tunnel,
    /// `tls.handshake`: needs the stream, tunnelled when proxied.
    Handshake,
    /// `tls.trust`, `tls.hostname`, `tls.validity` on the captured chain (`https://` only).
    Certificate,
    /// `gitlab.kas`: the GitLab agent server's own fingerprints; needs the HTTP connection.
    AgentServer,
    /// `http.version`: is it a Kubernetes API server?
    Version,
    /// `http.health`: is it ready? (Never stops the steps after it.)
    Health,
    /// `auth.whoami`: needs credentials config.credentials found usable.
    Whoami,
    /// `rbac.can-i`, one row per requirement: needs the identity `auth.whoami` found.
    Rbac,
    /// `netpol.egress`: the in-cluster target reads its pod and namespace (judged after the run).
    ClusterRead,
    /// `gitlab.server`: does GitLab's API answer?
    GitlabServer,
    /// `gitlab.allowed-agents`: which agents GitLab allows this job (the job token's one use).
    AllowedAgents,
}

use Step::*;

/// How every kind reaches its server: `dns.resolve` (one lookup per name, shared by the run's
/// targets), then the [`LINK`] steps. Which of these have rows depends on the route and scheme.
const LOOKUP: &[Step] = &[Resolve];

/// The connection steps after the lookup, in order (`engine/connect` runs them from here): what
/// targets with one route, TLS settings and client identity share (`engine/share`).
pub const LINK: &[Step] = &[Connect, Tunnel, Handshake, Certificate];

/// What a target of `kind` asks of its server, in order, over the HTTP connection. Adding a
/// check to a kind is one entry here (and its rows in [`Step::rows`]).
pub fn server_steps(kind: TargetKind) -> &'static [Step] {
    match kind {
        TargetKind::Direct | TargetKind::LegacyCertificate => &[Version, Health, Whoami, Rbac],
        TargetKind::GitlabAgent => &[AgentServer, Version, Health, Whoami, Rbac],
        TargetKind::InCluster => &[Version, Health, Whoami, Rbac, ClusterRead],
        TargetKind::Gitlab => &[GitlabServer, AllowedAgents],
    }
}

/// Every step of a target of `kind`, in order: the connection, then the server steps.
pub fn steps(kind: TargetKind) -> impl Iterator<Item = Step> {
    LOOKUP.iter().chain(LINK).chain(server_steps(kind)).copied()
}

impl Step {
    /// The rows this step fills for `target`. A target without an endpoint keeps the rows an
    /// `https://` one would have.
    pub fn rows(self, target: &Target, requirements: &[Requirement]) -> Vec<Row> {
        let endpoint = target.endpoint.as_ref();
        let authority = || endpoint.map(|e| e.authority()).unwrap_or_default();
        let at_server = |id| vec![Row::new(id, authority())];
        match (self, &target.route) {
            (Resolve, Route::Direct) => {
                let host = endpoint.map(|e| e.host.to_string()).unwrap_or_default();
                vec![Row::new(CheckId::DnsResolve, host)]
            }
            (Resolve, Route::Proxy(p)) => vec![Row::new(CheckId::DnsResolve, p.host.to_string())],
            (Connect, Route::Direct) => at_server(CheckId::TcpConnect),
            (Connect, Route::Proxy(p)) => vec![Row::new(
                CheckId::ProxyConnect,
                format!("{}:{}", p.host, p.port),
            )],
            (Tunnel, Route::Direct) => Vec::new(),
            (Tunnel, Route::Proxy(p)) => vec![Row::new(CheckId::ProxyTunnel, p.display.clone())],
            (Handshake, _) => at_server(CheckId::TlsHandshake),
            // An `http://` URL has no certificate to judge (its handshake row says so).
            (Certificate, _) if endpoint.is_some_and(|e| e.scheme == Scheme::Http) => Vec::new(),
            (Certificate, _) => [
                CheckId::TlsTrust,
                CheckId::TlsHostname,
                CheckId::TlsValidity,
            ]
            .into_iter()
            .map(|id| Row::new(id, authority()))
            .collect(),
            (AgentServer, _) => vec![Row::new(CheckId::GitlabKas, crate::gitlab::KAS_SUBJECT)],
            (Version, _) => at_server(CheckId::HttpVersion),
            (Health, _) => at_server(CheckId::HttpHealth),
            (Whoami, _) => at_server(CheckId::AuthWhoami),
            (Rbac, _) => requirements
                .iter()
                .map(|r| Row::new(CheckId::RbacCanI, r.subject(&target.namespace)))
                .collect(),
            (ClusterRead, _) => vec![Row::new(CheckId::NetpolEgress, target.namespace.clone())],
            (GitlabServer, _) => at_server(CheckId::GitlabServer),
            (AllowedAgents, _) => vec![Row::new(CheckId::GitlabAllowedAgents, "job")],
        }
    }
}
