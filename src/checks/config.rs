//! `config.*`: judges what discovery found, before any traffic, and resolves it into a
//! [`Target`] ready for the network. Certificates, keys and tokens are parsed here once; the
//! secrets are registered with the scrubber as soon as they are seen.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::catalogue::{CheckId, Reason};
use crate::env::{Env, read_bounded};
use crate::model::{CheckResult, TargetKind};
use crate::plan::proxy_choice::{self, ProxyDecision};
use crate::plan::target::{
    ClientIdentity, Credentials, Endpoint, Host, NoProxyNet, Route, Scheme, Target, TlsSettings,
};
use crate::secret::{NAME_CHARS, Scrubber, Secret, quoted};
use crate::targets::TargetSpec;
use crate::x509::{CertFacts, format_time, human_duration};

pub struct Judge<'a> {
    pub env: &'a Env,
    pub ci: &'a crate::gitlab::CiFacts,
    /// The run is a GitLab CI job's (`RunOptions::judge_as_ci_job` and `GITLAB_CI` set).
    pub in_ci_job: bool,
    /// Bound on a credential plugin's run (`--timeout`).
    pub timeout: Duration,
    pub expiry_warn: Duration,
    pub default_namespace: Option<String>,
}

/// Whether the kubeconfig user presents nothing: no token, certificate or plugin.
fn has_no_credentials(credentials: &Credentials) -> bool {
    credentials.bearer().is_none()
        && credentials.client_identity().is_none()
        && credentials.exec_plugin.is_none()
}

/// `insecure-scheme` is what [`Judge::server`] says of every http:// URL; what it means
/// depends on the user. A user with none loses nothing (`kubectl proxy` on http:// adds its
/// own): the `plain-http` warning. A user with credentials has them withheld (client-go drops
/// them, kube-reach never sends them): a warning too, and the later layers judge what the
/// listener does without them. Only the GitLab agent server, which needs the job's own
/// credential, keeps the failure.
fn over_http(
    server_check: CheckResult,
    credentials: &Credentials,
    kind: TargetKind,
) -> CheckResult {
    if server_check.reason != Some(Reason::InsecureScheme) || kind == TargetKind::GitlabAgent {
        return server_check;
    }
    let (reason, why) = match has_no_credentials(credentials) {
        true => (
            Reason::PlainHttp,
            "the user has no token, certificate or plugin: nothing for client-go to drop",
        ),
        false => (
            Reason::CredentialsWithheld,
            "the user's credentials are never sent over http://: what answers is judged as an anonymous request",
        ),
    };
    let mut warned = CheckResult::finding(server_check.id, server_check.subject.clone(), reason);
    warned.evidence = server_check.evidence;
    warned.with_evidence(why)
}

impl Judge<'_> {
    pub fn resolve(&self, spec: &TargetSpec, scrubber: &mut Scrubber) -> Target {
        register_secrets(spec, scrubber);
        let kind = spec.kind.unwrap_or(TargetKind::Direct);
        let (server_check, endpoint) = self.server(spec, kind);
        let server_display = spec
            .server
            .as_deref()
            .map(crate::targets::url::display_raw)
            .unwrap_or_default();
        let mut checks = vec![server_check];
        let tls = endpoint
            .as_ref()
            .filter(|e| e.scheme == Scheme::Https)
            .map(|e| {
                let (check, tls) = self.tls(spec, e, kind);
                checks.push(check);
                tls
            });
        let (cred_check, credentials) = self.credentials(spec, kind, scrubber);
        let server_check = checks.remove(0);
        checks.insert(0, over_http(server_check, &credentials, kind));
        checks.push(cred_check);
        // A plugin's token is known only now: every output must be scrubbed of it too.
        if let Some(token) = credentials.bearer() {
            scrubber.add_secret(token);
        }
        // An unusable proxy URL means no traffic at all: the target then has no endpoint.
        let mut endpoint = endpoint;
        let mut route = Route::Direct;
        if let Some(e) = &endpoint {
            let (check, decided) = self.proxy(spec, e);
            checks.push(check);
            match decided {
                Some(r) => route = r,
                None => endpoint = None,
            }
        }
        let no_proxy_nets = match &endpoint {
            Some(e) => self.pending_no_proxy(spec, e, &route),
            None => Vec::new(),
        };
        register_route(&route, scrubber);
        let agent = (kind == TargetKind::GitlabAgent).then(|| {
            crate::gitlab::AgentTarget::read(
                spec.server.as_deref().unwrap_or_default(),
                spec.user_name.as_deref(),
                credentials.bearer().map(Secret::expose),
                &spec.name,
                self.ci,
            )
        });
        Target {
            name: spec.name.clone(),
            kind,
            server_display,
            endpoint,
            tls,
            credentials,
            route,
            namespace: self.namespace(spec),
            config_checks: checks,
            agent,
            no_proxy_nets,
        }
    }

    fn namespace(&self, spec: &TargetSpec) -> String {
        spec.namespace
            .clone()
            .or_else(|| self.default_namespace.clone())
            .unwrap_or_else(|| "default".into())
    }

    // ---- config.server

    fn server(&self, spec: &TargetSpec, kind: TargetKind) -> (CheckResult, Option<Endpoint>) {
        let id = CheckId::ConfigServer;
        if let Some(cluster) = &spec.cluster_missing {
            let r = CheckResult::finding(id, "", Reason::ClusterNotFound).with_evidence(format!(
                "{} names cluster {}",
                spec.source,
                quoted(cluster, NAME_CHARS)
            ));
            return (r, None);
        }
        let Some(raw) = spec.server.as_deref().filter(|s| !s.trim().is_empty()) else {
            return (
                CheckResult::finding(id, "", Reason::Missing).with_evidence(spec.source.clone()),
                None,
            );
        };
        let shown = crate::targets::url::display_raw(raw);
        let endpoint = match parse_endpoint(raw) {
            Ok(e) => e,
            Err(problem) => {
                let r = CheckResult::finding(id, shown.clone(), Reason::InvalidUrl)
                    .with_evidence(format!("{shown}: {problem} ({})", spec.source));
                return (r, None);
            }
        };
        if endpoint.scheme == Scheme::Http {
            let mut r = CheckResult::finding(id, shown.clone(), Reason::InsecureScheme)
                .with_evidence(format!("server: {shown}"));
            if kind == TargetKind::GitlabAgent {
                r = r.with_fix_detail(crate::gitlab::agent_insecure_scheme_fix_detail(raw));
            }
            return (r, Some(endpoint));
        }
        if kind == TargetKind::InCluster {
            // KUBERNETES_SERVICE_HOST is the `kubernetes` service's ClusterIP: private by design,
            // and reachable from the pod that was given it.
            let r = CheckResult::pass(id, shown.clone(), format!("server {shown}"))
                .with_evidence("the kubernetes service address (KUBERNETES_SERVICE_HOST/PORT)");
            return (r, Some(endpoint));
        }
        (self.address_class(id, &shown, &endpoint), Some(endpoint))
    }

    fn address_class(&self, id: CheckId, shown: &str, endpoint: &Endpoint) -> CheckResult {
        let in_ci = self.in_ci_job;
        let reason = match &endpoint.host {
            Host::Name(n) if n.eq_ignore_ascii_case("localhost") => Some(Reason::Loopback),
            Host::Ip(ip) if ip.is_loopback() => Some(Reason::Loopback),
            Host::Ip(ip) if is_link_local(ip) => Some(Reason::LinkLocal),
            Host::Ip(ip) if is_private(ip) => Some(Reason::PrivateAddress),
            _ => None,
        };
        match reason {
            // Outside CI a loopback or private server is ordinary (a local cluster, a lab);
            // inside a CI job it is the classic copied-kubeconfig mistake, worth a warning.
            Some(reason) if in_ci => {
                CheckResult::finding(id, shown, reason).with_evidence(format!("server: {shown}"))
            }
            Some(reason) => CheckResult::pass(id, shown, format!("server {shown}")).with_evidence(
                format!("{} (not in GitLab CI, so not a warning)", reason.as_str()),
            ),
            None => CheckResult::pass(id, shown, format!("server {shown}")),
        }
    }

    // ---- config.tls

    fn tls(
        &self,
        spec: &TargetSpec,
        endpoint: &Endpoint,
        kind: TargetKind,
    ) -> (CheckResult, TlsSettings) {
        let id = CheckId::ConfigTls;
        let server_name = spec
            .tls_server_name
            .clone()
            .unwrap_or_else(|| match &endpoint.host {
                Host::Name(n) => n.clone(),
                Host::Ip(ip) => ip.to_string(),
            });
        let mut settings = TlsSettings {
            ca_certs: Vec::new(),
            ca_source: None,
            ca_replaces_system_roots: kind != TargetKind::Gitlab,
            insecure_skip_verify: spec.insecure_skip_verify,
            server_name: server_name.clone(),
        };
        let subject = endpoint.authority();
        // An unusable `tls-server-name` is the kubeconfig's mistake, said before any handshake.
        if let Some(name) = &spec.tls_server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return (
                CheckResult::finding(id, subject, Reason::InvalidServerName).with_evidence(
                    format!(
                        "tls-server-name {} ({}) is neither a DNS name nor an IP address",
                        quoted(name, NAME_CHARS),
                        spec.source
                    ),
                ),
                settings,
            );
        }
        let ca = match load_ca(spec) {
            Ok(ca) => ca,
            Err((reason, evidence)) => {
                return (
                    CheckResult::finding(id, subject, reason).with_evidence(evidence),
                    settings,
                );
            }
        };
        let mut evidence = vec![format!(
            "verifying the certificate for {}",
            quoted(&server_name, NAME_CHARS)
        )];
        if let Some((source, certs)) = ca {
            for cert in &certs {
                let facts = CertFacts::parse(cert);
                if let Some(f) = &facts {
                    evidence.push(format!(
                        "CA {} valid until {}",
                        f.subject,
                        format_time(f.not_after)
                    ));
                    if f.not_after < self.env.now {
                        settings.ca_source = Some(source.clone());
                        settings.ca_certs = certs.clone();
                        return (
                            CheckResult::finding(id, subject, Reason::CaExpired).with_evidence(
                                format!(
                                    "{source}: {} expired {}",
                                    f.subject,
                                    format_time(f.not_after)
                                ),
                            ),
                            settings,
                        );
                    }
                }
            }
            settings.ca_source = Some(source.clone());
            settings.ca_certs = certs;
            evidence.insert(0, format!("trusting {source}"));
        } else {
            evidence.insert(
                0,
                "trusting the system roots (SSL_CERT_FILE / the CA bundle)".to_string(),
            );
        }
        if spec.insecure_skip_verify {
            return (
                CheckResult::finding(id, subject, Reason::InsecureSkipVerify)
                    .with_evidence_lines(evidence),
                settings,
            );
        }
        let summary = match &settings.ca_source {
            Some(s) => format!("verifying against {s}"),
            None => "verifying against the system roots".into(),
        };
        (
            CheckResult::pass(id, subject, summary).with_evidence_lines(evidence),
            settings,
        )
    }

    // ---- config.credentials

    fn credentials(
        &self,
        spec: &TargetSpec,
        kind: TargetKind,
        scrubber: &mut Scrubber,
    ) -> (CheckResult, Credentials) {
        let id = CheckId::ConfigCredentials;
        let subject = spec.user_name.clone().unwrap_or_default();
        let mut creds = Credentials::default();
        creds.impersonation = spec.impersonation.clone();
        let fail = |reason: Reason, evidence: String| -> CheckResult {
            CheckResult::finding(id, subject.clone(), reason).with_evidence(evidence)
        };
        if let Some(user) = &spec.user_missing {
            creds.withhold();
            return (
                fail(
                    Reason::UserNotFound,
                    format!("{} names user {}", spec.source, quoted(user, NAME_CHARS)),
                ),
                creds,
            );
        }
        if let Some(provider) = &spec.auth_provider
            && (provider == "gcp" || provider == "azure")
        {
            creds.withhold();
            return (
                fail(
                    Reason::AuthProviderRemoved,
                    format!("auth-provider: {provider}"),
                ),
                creds,
            );
        }
        if spec.basic_auth && spec.token.is_none() && spec.token_file.is_none() {
            creds.withhold();
            return (
                fail(
                    Reason::BasicAuthRemoved,
                    "user has username/password".into(),
                ),
                creds,
            );
        }
        let mut results = Vec::new();
        let token = match (&spec.token, &spec.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => match read_bounded(path) {
                Ok(bytes) => Some(Secret::new(
                    String::from_utf8_lossy(&bytes).trim().to_string(),
                )),
                Err(e) => {
                    creds.withhold();
                    return (fail(Reason::TokenFileUnreadable, e), creds);
                }
            },
            _ => None,
        };
        if let Some(token) = &token {
            // A token read from a file (--token-file, tokenFile, the service account) is a
            // secret from the moment it is read.
            register_token(token, scrubber);
            let judged = match unsendable_token(token.expose()) {
                Some(problem) => fail(
                    Reason::TokenInvalid,
                    format!("{}: {problem}", token_origin(spec)),
                ),
                None => self.judge_token(id, &subject, token, kind),
            };
            results.push(judged);
            creds.set_token(token.clone());
        }
        match load_client_identity(spec, scrubber) {
            Ok(Some((identity, facts))) => {
                results.push(self.judge_client_cert(id, &subject, &identity, &facts));
                creds.set_certificate(identity);
            }
            Ok(None) => {}
            Err(e) => results.push(fail(Reason::ClientCertInvalid, e)),
        }
        if let Some(exec) = &spec.exec
            && let Some(static_credential) = creds.static_credential()
        {
            // client-go's exec authenticator steps aside when the user already has a token, a
            // token file or a client certificate (`UpdateTransportConfig`): kubectl never runs
            // the plugin then, so neither do we, and its failure cannot withhold the rest.
            results.push(CheckResult::pass(
                id,
                subject.clone(),
                format!(
                    "exec plugin {} not run: the user has a {static_credential}, which kubectl uses instead",
                    quoted(&exec.command, NAME_CHARS)
                ),
            ));
        } else if let Some(exec) = &spec.exec
            && !command_exists(&exec.command, self.env)
        {
            let command = &exec.command;
            results.push(
                fail(
                    Reason::ExecPluginMissing,
                    format!(
                        "exec command {} not found on PATH",
                        quoted(command, NAME_CHARS)
                    ),
                )
                .with_fix_detail(format!(
                    "Install {} in the job image.",
                    quoted(command, NAME_CHARS)
                )),
            );
        } else if let Some(exec) = &spec.exec {
            let (result, token) = crate::checks::exec_credential::judge(
                id,
                &subject,
                exec,
                &crate::credential_plugin::ClusterInfo::of(spec),
                self.env,
                self.timeout,
            );
            match token {
                Some(crate::checks::exec_credential::Issued::Token(token))
                    if creds.bearer().is_none() =>
                {
                    creds.set_token(token)
                }
                Some(crate::checks::exec_credential::Issued::ClientCertificate {
                    cert_pem,
                    key_pem,
                }) if creds.client_identity().is_none() => {
                    scrubber.add_secret(&key_pem);
                    match identity_from_pem(cert_pem.as_bytes(), key_pem.expose().as_bytes()) {
                        Ok((identity, _)) => creds.set_certificate(identity),
                        Err(e) => results.push(fail(Reason::ExecPluginFailed, e)),
                    }
                }
                _ => {}
            }
            creds.exec_plugin = Some(exec.command.clone());
            results.push(result);
        }
        if results.is_empty() && kind == TargetKind::Gitlab {
            return (
                CheckResult::not_applicable(
                    id,
                    subject,
                    "no credentials needed: the GitLab server is asked anonymously, and the allowed-agents API with the job token",
                ),
                creds,
            );
        }
        if results.is_empty() {
            return (
                CheckResult::finding(id, subject, Reason::None)
                    .with_evidence(format!("{}: no token, certificate or plugin", spec.source)),
                creds,
            );
        }
        if let Some(impersonation) = &spec.impersonation {
            results.push(impersonation_sent(id, &subject, impersonation));
        }
        // The worst finding speaks for the user; the rest become evidence.
        results.sort_by_key(|r| std::cmp::Reverse(r.status));
        let mut first = results.remove(0);
        for other in results {
            first
                .evidence
                .push(format!("{}: {}", other.status.as_str(), other.summary));
        }
        if first.status.is_failure() {
            creds.withhold();
        }
        (first, creds)
    }

    fn judge_token(
        &self,
        id: CheckId,
        subject: &str,
        token: &Secret,
        kind: TargetKind,
    ) -> CheckResult {
        if kind == TargetKind::GitlabAgent {
            // Only the parsed id is printed: a token without one (`pat:glpat-…`) has no part
            // that is not secret.
            let summary = match crate::gitlab::agent_token_id(token.expose()) {
                Some((kind, agent)) => format!(
                    "GitLab agent token for agent:{agent} ({}:<agent id>:<token>)",
                    kind.as_str()
                ),
                None => "GitLab agent target, token not of the form ci:<agent id>:<job token>"
                    .to_string(),
            };
            return CheckResult::pass(id, subject, summary);
        }
        let Some(exp) = jwt_expiry(token.expose()) else {
            return CheckResult::pass(id, subject, "bearer token (not a JWT with an expiry)");
        };
        let now = self.env.now;
        if exp <= now {
            let ago = now.duration_since(exp).unwrap_or_default();
            CheckResult::finding(id, subject, Reason::TokenExpired)
                .with_summary(format!(
                    "the bearer token expired {} ago",
                    human_duration(ago)
                ))
                .with_evidence(format!("JWT exp = {}", format_time(exp)))
        } else {
            let left = exp.duration_since(now).unwrap_or_default();
            // `--expiry-warn-days`, like certificates; except the runner pod's own projected
            // token, which the kubelet rotates long before it expires.
            let base = if left < self.expiry_warn && kind != TargetKind::InCluster {
                CheckResult::finding(id, subject, Reason::TokenExpiring).with_summary(format!(
                    "the bearer token expires in {}",
                    human_duration(left)
                ))
            } else {
                CheckResult::pass(
                    id,
                    subject,
                    format!("bearer token (JWT, expires in {})", human_duration(left)),
                )
            };
            base.with_evidence(format!("JWT exp = {}", format_time(exp)))
        }
    }

    fn judge_client_cert(
        &self,
        id: CheckId,
        subject: &str,
        identity: &ClientIdentity,
        facts: &CertFacts,
    ) -> CheckResult {
        let now = self.env.now;
        let evidence = format!(
            "client certificate {} issued by {}, valid {} to {}",
            facts.subject,
            facts.issuer,
            format_time(facts.not_before),
            format_time(facts.not_after)
        );
        if let Err(e) = keys_match(identity) {
            return CheckResult::finding(id, subject, Reason::ClientKeyMismatch)
                .with_evidence(evidence)
                .with_evidence(e);
        }
        if facts.not_after < now {
            return CheckResult::finding(id, subject, Reason::ClientCertExpired)
                .with_evidence(evidence);
        }
        if facts.not_before > now {
            return CheckResult::finding(id, subject, Reason::ClientCertNotYetValid)
                .with_evidence(evidence);
        }
        if facts.not_after < now + self.expiry_warn {
            return CheckResult::finding(id, subject, Reason::ClientCertExpiring)
                .with_evidence(evidence);
        }
        CheckResult::pass(id, subject, format!("client certificate {}", facts.subject))
            .with_evidence(evidence)
    }

    // ---- config.proxy

    /// The `NO_PROXY` list client-go reads (the upper-case name first), with its name.
    fn no_proxy(&self) -> Option<(&'static str, &str)> {
        ["NO_PROXY", "no_proxy"]
            .into_iter()
            .filter_map(|name| self.env.var(name).map(|v| (name, v)))
            .find(|(_, v)| !v.trim().is_empty())
    }

    /// `NO_PROXY` entries that look meant for a server but that client-go never applies.
    fn ignored_no_proxy(&self) -> Vec<String> {
        self.no_proxy()
            .into_iter()
            .flat_map(|(name, list)| {
                proxy_choice::ignored_entries(list)
                    .into_iter()
                    .map(move |(entry, why)| {
                        format!("{name} entry {} ignored: {why}", quoted(&entry, NAME_CHARS))
                    })
            })
            .collect()
    }

    /// The IP and CIDR `NO_PROXY` entries a proxied server written as a name may resolve
    /// into (judged after DNS by [`after_server_lookup`]); none when `NO_PROXY` does not
    /// apply to `route` at all (direct, or the kubeconfig's own proxy-url).
    fn pending_no_proxy(
        &self,
        spec: &TargetSpec,
        endpoint: &Endpoint,
        route: &Route,
    ) -> Vec<NoProxyNet> {
        let (Route::Proxy(_), None, Some((name, list))) = (route, &spec.proxy_url, self.no_proxy())
        else {
            return Vec::new();
        };
        proxy_choice::ip_entries_against_name(list, &endpoint.host)
            .into_iter()
            .map(|(entry, net)| NoProxyNet {
                entry: format!("{name} entry {}", quoted(&entry, NAME_CHARS)),
                net,
            })
            .collect()
    }

    fn proxy(&self, spec: &TargetSpec, endpoint: &Endpoint) -> (CheckResult, Option<Route>) {
        let id = CheckId::ConfigProxy;
        let subject = endpoint.authority();
        let decision = proxy_choice::decide(spec.proxy_url.as_ref(), endpoint, &|name| {
            self.env.var(name).map(str::to_string)
        });
        match decision {
            ProxyDecision::Direct { why } => (
                CheckResult::pass(id, subject, format!("direct: {why}")),
                Some(Route::Direct),
            ),
            ProxyDecision::Proxy { proxy, why } => {
                let summary = format!("through proxy {}: {why}", proxy.display);
                let ignored = match spec.proxy_url {
                    // The kubeconfig's proxy-url ignores NO_PROXY altogether, by design.
                    Some(_) => Vec::new(),
                    None => self.ignored_no_proxy(),
                };
                let result = if ignored.is_empty() {
                    CheckResult::pass(id, subject, summary)
                } else {
                    CheckResult::finding(id, subject, Reason::NoProxyIgnored)
                        .with_evidence(summary)
                        .with_evidence_lines(ignored)
                };
                (result, Some(Route::Proxy(proxy)))
            }
            ProxyDecision::Invalid { source, problem } => (
                CheckResult::finding(id, subject, Reason::InvalidProxyUrl)
                    .with_evidence(format!("{source}: {problem}")),
                None,
            ),
        }
    }
}

/// `config.proxy` once the server's name is resolved: an IP or CIDR `NO_PROXY` entry that
/// one of its addresses falls in was meant for this server, and client-go ignores it (it
/// matches such entries only against a server written as an IP); one it does not fall in
/// cannot change this server's route, so it is a note, no warning. `addresses` is `None`
/// when the name did not resolve here.
pub fn after_server_lookup(
    result: CheckResult,
    nets: &[NoProxyNet],
    name: &str,
    addresses: Option<&[IpAddr]>,
) -> CheckResult {
    let addresses = addresses.unwrap_or_default();
    let (meant, other): (Vec<&NoProxyNet>, Vec<&NoProxyNet>) = nets
        .iter()
        .partition(|n| addresses.iter().any(|a| n.net.contains(a)));
    let shown: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    let notes = other.iter().map(|n| {
        format!(
            "{} does not cover {name} ({}): it cannot change this server's route",
            n.entry,
            if shown.is_empty() {
                "not resolved here".to_string()
            } else {
                shown.join(", ")
            }
        )
    });
    let ignored: Vec<String> = meant
        .iter()
        .map(|n| {
            format!(
                "{} ignored: {name} resolves into it ({}), but an IP or CIDR entry matches only a server written as an IP address, not the name {name} (client-go does not resolve names for NO_PROXY)",
                n.entry,
                shown.join(", ")
            )
        })
        .collect();
    let result = result.with_evidence_lines(notes);
    if ignored.is_empty() {
        return result;
    }
    if result.reason == Some(Reason::NoProxyIgnored) {
        return result.with_evidence_lines(ignored);
    }
    let evidence = std::iter::once(result.summary.clone()).chain(result.evidence.clone());
    CheckResult::finding(result.id, result.subject, Reason::NoProxyIgnored)
        .with_evidence_lines(evidence)
        .with_evidence_lines(ignored)
}

/// Registers every secret the spec holds where it was parsed: the token (and the job token
/// inside an agent token), the client key data, the other kubeconfig secrets, and the password
/// and query values of the server and proxy URLs.
fn register_secrets(spec: &TargetSpec, scrubber: &mut Scrubber) {
    if let Some(t) = &spec.token {
        register_token(t, scrubber);
    }
    if let Some(k) = &spec.client_key_data_base64 {
        scrubber.add(k.expose());
    }
    for secret in &spec.other_secrets {
        scrubber.add_secret(secret);
    }
    for path in [&spec.token_file, &spec.client_key_file]
        .into_iter()
        .flatten()
    {
        register_pasted_credential(path, scrubber);
    }
    let urls = [
        spec.server.as_deref(),
        spec.proxy_url.as_ref().map(Secret::expose),
    ];
    for secret in urls
        .into_iter()
        .flatten()
        .flat_map(crate::targets::url::secrets_of)
    {
        scrubber.add_secret(&secret);
    }
}

/// A token or key pasted where the path of its file belongs (`tokenFile: <the token>`,
/// `--token-file "$TOKEN"`): no such file exists, and its name is shaped like a credential
/// ([`crate::secret::looks_like_credential`]), so the "cannot read" evidence that names the
/// path must not print it. A real path (`…/serviceaccount/token`) is left readable.
fn register_pasted_credential(path: &std::path::Path, scrubber: &mut Scrubber) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    if crate::secret::looks_like_credential(name) && !path.exists() {
        scrubber.add(name);
    }
}

/// Who the user's `as*` fields name (names quoted through the redaction point; `as-user-extra`
/// values never shown): a pass, since every request that carries the user's credentials also
/// carries the `Impersonate-*` headers, as kubectl's do, and the server judges that identity.
fn impersonation_sent(
    id: CheckId,
    subject: &str,
    impersonation: &crate::targets::Impersonation,
) -> CheckResult {
    CheckResult::pass(
        id,
        subject.to_string(),
        format!(
            "the user impersonates {}: every request with its credentials carries the Impersonate-* headers, as kubectl's do, so auth and RBAC judge that identity",
            impersonation_named(impersonation)
        ),
    )
}

/// `as 'deployer', as-groups 'ops'…`: the impersonated identity, names quoted (extra keys
/// only, never their values).
pub fn impersonation_named(impersonation: &crate::targets::Impersonation) -> String {
    let mut named = Vec::new();
    if let Some(user) = &impersonation.user {
        named.push(format!("as {}", quoted(user, NAME_CHARS)));
    }
    if let Some(uid) = &impersonation.uid {
        named.push(format!("as-uid {}", quoted(uid, NAME_CHARS)));
    }
    for group in &impersonation.groups {
        named.push(format!("as-groups {}", quoted(group, NAME_CHARS)));
    }
    for (key, _) in &impersonation.extra {
        named.push(format!("as-user-extra {}", quoted(key, NAME_CHARS)));
    }
    named.join(", ")
}

/// A bearer token, and the job token inside a `ci:<id>:<job token>` agent token on its own.
fn register_token(token: &Secret, scrubber: &mut Scrubber) {
    scrubber.add_secret(token);
    if let Some(job_token) = token.expose().splitn(3, ':').nth(2) {
        scrubber.add(job_token);
    }
}

/// The `Proxy-Authorization` value we build, whole and without its `Basic ` scheme word.
fn register_route(route: &Route, scrubber: &mut Scrubber) {
    if let Route::Proxy(proxy) = route
        && let Some(auth) = &proxy.authorization
    {
        scrubber.add_secret(auth);
        scrubber.add(auth.expose().trim_start_matches("Basic "));
    }
}

/// Parses a kubeconfig server URL with the crate's one URL parser. kubectl accepts
/// `https://host[:port][/path]`; a port that is not a number from 1 to 65535 is invalid (a
/// lenient parser once read `host:99999` as `host:443` and sent the token there).
pub fn parse_endpoint(raw: &str) -> Result<Endpoint, String> {
    let url = crate::targets::url::parse(raw).map_err(|e| e.to_string())?;
    let scheme = match url.scheme.as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => {
            return Err(format!(
                "scheme {} is neither https nor http",
                quoted(other, NAME_CHARS)
            ));
        }
    };
    Ok(Endpoint {
        scheme,
        port: url.port_or_default(),
        host: url.host.clone(),
        base_path: url.path.trim_end_matches('/').to_string(),
    })
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

type CaLoad = Result<Option<(String, Vec<CertificateDer<'static>>)>, (Reason, String)>;

fn load_ca(spec: &TargetSpec) -> CaLoad {
    let (source, pem) = if let Some(data) = &spec.ca_data_base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim().replace(['\n', '\r', ' '], ""))
            .map_err(|e| {
                (
                    Reason::CaInvalid,
                    format!("certificate-authority-data is not base64: {e}"),
                )
            })?;
        ("certificate-authority-data".to_string(), bytes)
    } else if let Some(pem) = &spec.ca_pem {
        ("KUBE_CA_PEM".to_string(), pem.as_bytes().to_vec())
    } else if let Some(path) = &spec.ca_file {
        let bytes = read_bounded(path).map_err(|e| (Reason::CaUnreadable, e))?;
        (format!("certificate-authority {}", path.display()), bytes)
    } else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| (Reason::CaInvalid, format!("{source}: {}", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err((
            Reason::CaInvalid,
            format!("{source}: no PEM certificate found"),
        ));
    }
    if certs.iter().any(|c| CertFacts::parse(c).is_none()) {
        return Err((
            Reason::CaInvalid,
            format!("{source}: a certificate does not parse as X.509"),
        ));
    }
    Ok(Some((source, certs)))
}

/// A PEM parse error in our words. The parser's `Debug` prints the offending section's bytes
/// (a private key pasted where a CA belongs came out as a decimal byte array).
fn pem_problem(error: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error as E;
    match error {
        E::MissingSectionEnd { .. } => "a PEM section has no -----END line",
        E::IllegalSectionStart { .. } => "a PEM -----BEGIN line is malformed",
        E::Base64Decode(_) => "a PEM section is not valid base64",
        E::Io(_) => "the PEM text could not be read",
        E::NoItemsFound => "no PEM certificate found",
        _ => "not PEM certificates",
    }
}

fn load_bytes(
    data_b64: Option<&str>,
    file: Option<&std::path::Path>,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(data) = data_b64 {
        return base64::engine::general_purpose::STANDARD
            .decode(data.trim().replace(['\n', '\r', ' '], ""))
            .map(Some)
            .map_err(|e| format!("{what}-data is not base64: {e}"));
    }
    match file {
        Some(path) => read_bounded(path).map(Some),
        None => Ok(None),
    }
}

fn load_client_identity(
    spec: &TargetSpec,
    scrubber: &mut Scrubber,
) -> Result<Option<(ClientIdentity, CertFacts)>, String> {
    let cert = load_bytes(
        spec.client_cert_data_base64.as_deref(),
        spec.client_cert_file.as_deref(),
        "client-certificate",
    )?;
    let key = load_bytes(
        spec.client_key_data_base64.as_ref().map(|s| s.expose()),
        spec.client_key_file.as_deref(),
        "client-key",
    )?;
    if let Some(key) = &key {
        scrubber.add(String::from_utf8_lossy(key));
    }
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err("client certificate without client key".into()),
        (None, Some(_)) => return Err("client key without client certificate".into()),
        (Some(c), Some(k)) => (c, k),
    };
    identity_from_pem(&cert, &key).map(Some)
}

/// A client identity from PEM certificate(s) and a PEM key (a kubeconfig's, or what a
/// credential plugin returned).
fn identity_from_pem(cert: &[u8], key: &[u8]) -> Result<(ClientIdentity, CertFacts), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|_| "client certificate is not PEM".to_string())?;
    let first = chain
        .first()
        .ok_or("client certificate holds no PEM certificate")?;
    let facts = CertFacts::parse(first).ok_or("client certificate does not parse as X.509")?;
    // The key's parse error is deliberately vague: it must not echo key material.
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|_| "client key is not a PEM private key".to_string())?;
    Ok((
        ClientIdentity {
            subject: facts.subject.clone(),
            chain,
            key,
        },
        facts,
    ))
}

fn keys_match(identity: &ClientIdentity) -> Result<(), String> {
    let key = rustls::crypto::ring::sign::any_supported_type(&identity.key)
        .map_err(|_| "client key type is not supported".to_string())?;
    rustls::sign::CertifiedKey::new(identity.chain.clone(), key)
        .keys_match()
        .map_err(|e| format!("key check: {e}"))
}

/// Why a bearer token cannot be the one the server issued, in words that quote none of it:
/// empty, more than one line, a control character (none can be sent in a header), or a
/// character outside ASCII (a byte-order mark, a typographic quote, bytes that are not UTF-8).
fn unsendable_token(token: &str) -> Option<String> {
    if token.is_empty() {
        return Some("the token is empty".into());
    }
    if token.trim() != token {
        return Some(
            "the token has a line break or space before or after it (a variable's value is sent as it is)"
                .into(),
        );
    }
    let lines = token.lines().count();
    if lines > 1 {
        return Some(format!(
            "the token spans {lines} lines (two values, or a line break pasted into it)"
        ));
    }
    if let Some((at, c)) = token.char_indices().find(|(_, c)| c.is_control()) {
        return Some(format!(
            "the token holds a control character ({}) at byte {at}",
            c.escape_unicode()
        ));
    }
    if let Some((at, c)) = token.char_indices().find(|(_, c)| !c.is_ascii()) {
        let what = match c {
            '\u{feff}' => "a byte-order mark (U+FEFF)",
            char::REPLACEMENT_CHARACTER => "bytes that are not UTF-8",
            _ => "a character outside ASCII",
        };
        return Some(format!("the token holds {what} at byte {at}"));
    }
    None
}

/// Where the token came from, for `token-invalid` evidence.
fn token_origin(spec: &TargetSpec) -> String {
    match (&spec.token, &spec.token_file) {
        (None, Some(path)) => format!("token file {}", path.display()),
        _ => format!("token from {}", spec.source),
    }
}

/// The `exp` claim of a JWT, if the token is one. Never returns or logs the token.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let exp = jwt_claims(token)?.get("exp")?.as_u64()?;
    // `UNIX_EPOCH + d` panics past what `SystemTime` holds (about 2^63 s): such an `exp` is no
    // expiry a clock can reach.
    UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

/// The (unverified) claims of a JWT, if the token is one: only for what it says about itself
/// (expiry, the service account it names), never as proof of anything.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the plugin's command is there to run: a path (with a `/`) names its file, a bare name
/// is looked up on the job's `PATH` as [`crate::credential_plugin::run`] will run it (an
/// executable file; Go's `exec.LookPath`, so kubectl, skips one without the execute bit too).
fn command_exists(command: &str, env: &Env) -> bool {
    if command.contains('/') {
        return std::path::Path::new(command).is_file();
    }
    crate::exec::which(command, env.var("PATH").unwrap_or_default()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    /// Names a kubeconfig or the environment gives (a cluster, a user, an exec command, a
    /// `NO_PROXY` entry) are quoted through `secret::quoted`: redacted, between single quotes,
    /// never `Debug` (which escapes but redacts nothing).
    #[test]
    fn names_from_the_input_are_quoted_redacted() {
        const SECRET: &str = "glpat-abcdefghij0123456789";
        let env = Env {
            vars: [
                ("HTTPS_PROXY", "http://proxy.example:3128".to_string()),
                ("NO_PROXY", format!("{SECRET}*.example")),
                ("PATH", String::new()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            now: SystemTime::now(),
            resolv_conf_path: "/nonexistent".into(),
            hosts_path: "/nonexistent".into(),
            service_account_dir: "/nonexistent".into(),
        };
        let ci = crate::gitlab::CiFacts::default();
        let judge = Judge {
            env: &env,
            ci: &ci,
            in_ci_job: false,
            timeout: Duration::from_secs(1),
            expiry_warn: Duration::from_secs(1),
            default_namespace: None,
        };
        let exec = crate::targets::ExecSpec {
            command: format!("kubectl-{SECRET}"),
            ..Default::default()
        };
        let with_exec = TargetSpec {
            server: Some("https://api.example:6443".into()),
            exec: Some(exec),
            ..Default::default()
        };
        let missing = TargetSpec {
            cluster_missing: Some(format!("c {SECRET}")),
            user_missing: Some(format!("u {SECRET}")),
            ..Default::default()
        };
        let mut texts = Vec::new();
        for spec in [with_exec, missing] {
            let target = judge.resolve(&spec, &mut Scrubber::default());
            for r in target.config_checks {
                texts.extend(r.evidence);
                texts.extend([r.summary]);
                texts.extend(r.fix);
            }
        }
        let all = texts.join("\n");
        assert!(!all.contains("abcdefghij0123"), "{all}");
        for said in [
            "names cluster 'c glpat-[REDACTED]'",
            "names user 'u glpat-[REDACTED]'",
            "exec command 'kubectl-glpat-[REDACTED]' not found on PATH",
            "NO_PROXY entry 'glpat-[REDACTED]' ignored",
        ] {
            assert!(all.contains(said), "{said}: {all}");
        }
    }

    /// A CIDR entry warns only when the server's name resolves into it; otherwise it is a
    /// note on the pass (and so is a name that did not resolve here).
    #[test]
    fn a_cidr_no_proxy_entry_warns_only_when_the_name_resolves_into_it() {
        let nets = [NoProxyNet {
            entry: "NO_PROXY entry '192.168.0.0/16'".into(),
            net: "192.168.0.0/16".parse().expect("net"),
        }];
        let proxied = || CheckResult::pass(CheckId::ConfigProxy, "api:6443", "through proxy p");
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let inside = [ip("10.0.0.1"), ip("192.168.4.5")];
        let r = after_server_lookup(proxied(), &nets, "api", Some(&inside));
        assert_eq!(r.reason, Some(Reason::NoProxyIgnored), "{r:?}");
        assert!(
            r.evidence.iter().any(|e| e.contains("resolves into it")),
            "{r:?}"
        );
        assert!(
            r.evidence.iter().any(|e| e.contains("through proxy p")),
            "{r:?}"
        );
        let elsewhere = [ip("10.253.2.5")];
        for addresses in [Some(&elsewhere[..]), None] {
            let r = after_server_lookup(proxied(), &nets, "api", addresses);
            assert_eq!(r.status, Status::Pass, "{r:?}");
            assert!(
                r.evidence.iter().any(|e| e.contains("does not cover api")),
                "{r:?}"
            );
        }
    }

    #[test]
    fn endpoints_parse_like_kubectl() {
        let e = parse_endpoint("https://api.example.com:6443/").expect("valid");
        assert_eq!(e.host, Host::Name("api.example.com".into()));
        assert_eq!(e.port, 6443);
        assert_eq!(e.base_path, "");
        let e = parse_endpoint("https://kas.gitlab.com/k8s-proxy/").expect("valid");
        assert_eq!(e.port, 443);
        assert_eq!(e.base_path, "/k8s-proxy");
        let e = parse_endpoint("https://[::1]:6443").expect("valid");
        assert_eq!(e.host, Host::Ip("::1".parse().expect("ip")));
        assert!(parse_endpoint("api.example.com:6443").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
    }

    /// http:// warns: a user without credentials (behind `kubectl proxy`) has nothing to lose,
    /// one with a token has it withheld; only the agent server keeps the failure, and every
    /// other config.server finding is left alone.
    #[test]
    fn plain_http_is_a_warning_except_for_the_agent_server() {
        let insecure = || {
            CheckResult::finding(
                CheckId::ConfigServer,
                "http://p:8001",
                Reason::InsecureScheme,
            )
            .with_evidence("server: http://p:8001")
        };
        let none = Credentials::default();
        assert!(has_no_credentials(&none));
        let mut token = Credentials::default();
        token.set_token(Secret::new("t"));
        for (creds, reason) in [
            (&none, Reason::PlainHttp),
            (&token, Reason::CredentialsWithheld),
        ] {
            let warned = over_http(insecure(), creds, TargetKind::Direct);
            assert_eq!(warned.reason, Some(reason));
            assert_eq!(warned.status, crate::vocab::Status::Warn);
            assert_eq!(warned.subject, "http://p:8001");
            assert!(
                warned.evidence[0].contains("server: http://p:8001"),
                "{:?}",
                warned.evidence
            );
        }
        let agent = over_http(insecure(), &token, TargetKind::GitlabAgent);
        assert_eq!(agent.reason, Some(Reason::InsecureScheme));
        let loopback = CheckResult::finding(CheckId::ConfigServer, "x", Reason::Loopback);
        assert_eq!(
            over_http(loopback, &token, TargetKind::Direct).reason,
            Some(Reason::Loopback)
        );
        let mut plugin = Credentials::default();
        plugin.exec_plugin = Some("aws".into());
        assert!(!has_no_credentials(&plugin));
    }

    #[test]
    fn jwt_expiry_reads_exp_only_from_jwts() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"exp":1700000000,"sub":"x"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        assert_eq!(
            jwt_expiry(&token),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_expiry("plain-token"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
    }
}
