//! One file per check-id prefix. Each function turns a typed outcome from `net` into
//! `CheckResult`s through the catalogue; none of them touches the network.
//!
//! The steps over the server's HTTP connection share one calling shape: a [`Context`] and the
//! answers the engine fetched in, [`Findings`] out.

use std::time::Duration;

use crate::gitlab::{AgentExpectation, AgentIdentity, CiFacts};
use crate::model::CheckResult;
use crate::plan::Target;

pub mod auth;
pub mod cloud;
pub mod config;
pub mod dns;
pub mod exec_credential;
pub mod gitlab_server;
pub mod http;
pub mod kas;
pub mod netpol;
pub mod rbac;
pub mod runner;
pub mod tcp;
pub mod tls;
pub mod tools;

/// What a server step's check knows besides the answers: the target, how its connection
/// carries credentials, and the run's GitLab facts.
pub struct Context<'a> {
    pub target: &'a Target,
    /// `host:port` of the server: the subject of its rows.
    pub authority: &'a str,
    /// Whether the connection carries the target's credentials (usable ones, over verified TLS).
    pub credentials_sent: bool,
    /// Whether the server's TLS verified.
    pub verified: bool,
    pub ci: &'a CiFacts,
    /// The GitLab agents the kubeconfig's agent targets use (the allowed-agents cross-check).
    pub agents: &'a [AgentIdentity],
    pub agent_expectation: &'a AgentExpectation,
    /// This checkout's `gitlab.agent-config` results (which rule left an agent out).
    pub agent_configs: &'a [CheckResult],
    /// How long requests through the GitLab agent server are given.
    pub agent_timeout: Duration,
    /// `system:serviceaccount:<ns>:<name>` of the mounted token, when there is one.
    pub service_account: Option<&'a str>,
}

/// What one step found, and whether the steps after it can run (their rows are then skips
/// naming the finding that stopped them).
#[derive(Debug, Default)]
pub struct Findings {
    pub results: Vec<CheckResult>,
    pub go_on: bool,
}

impl Findings {
    /// The steps after go on unless one of `results` failed.
    pub fn judged(results: Vec<CheckResult>) -> Findings {
        let go_on = !results.iter().any(|r| r.status.is_failure());
        Findings { results, go_on }
    }

    /// `results` end the pipeline whatever their status.
    pub fn last(results: Vec<CheckResult>) -> Findings {
        Findings {
            results,
            go_on: false,
        }
    }

    /// `results` stop nothing, whatever their status.
    pub fn noted(results: Vec<CheckResult>) -> Findings {
        Findings {
            results,
            go_on: true,
        }
    }

    /// Nothing to report; the steps after go on.
    pub fn nothing() -> Findings {
        Findings {
            results: Vec::new(),
            go_on: true,
        }
    }

    /// These findings, then `more`'s; going on only when both do.
    pub fn then(mut self, more: Findings) -> Findings {
        self.results.extend(more.results);
        self.go_on &= more.go_on;
        self
    }
}

/// A [`Context`] for the checks' unit tests: a target of `kind` at `api.example.test:6443`,
/// over verified TLS that carried its credentials, in a job with `vars`.
#[cfg(test)]
mod fixture {
    use super::Context;
    use crate::gitlab::{AgentExpectation, CiFacts};
    use crate::model::TargetKind;
    use crate::plan::{Credentials, Endpoint, Host, Route, Scheme, Target};
    use std::time::Duration;

    pub const AUTHORITY: &str = "api.example.test:6443";

    pub fn target(kind: TargetKind, scheme: Scheme) -> Target {
        Target {
            name: "t".into(),
            kind,
            server_display: format!("https://{AUTHORITY}"),
            endpoint: Some(Endpoint {
                scheme,
                host: Host::Name("api.example.test".into()),
                port: 6443,
                base_path: String::new(),
            }),
            tls: None,
            credentials: Credentials::default(),
            route: Route::Direct,
            namespace: "ci".into(),
            config_checks: Vec::new(),
            agent: None,
            no_proxy_nets: Vec::new(),
        }
    }

    pub fn ci(vars: &[(&str, &str)]) -> CiFacts {
        CiFacts::from_lookup(&|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    pub fn expectation() -> AgentExpectation {
        AgentExpectation::from_targets(std::iter::empty())
    }

    pub fn context<'a>(
        target: &'a Target,
        ci: &'a CiFacts,
        expectation: &'a AgentExpectation,
    ) -> Context<'a> {
        Context {
            target,
            authority: AUTHORITY,
            credentials_sent: true,
            verified: true,
            ci,
            agents: &[],
            agent_expectation: expectation,
            agent_configs: &[],
            agent_timeout: Duration::from_secs(30),
            service_account: Some("system:serviceaccount:ci:runner"),
        }
    }
}
