//! The one table of `(check, reason)` pairs (the words themselves live in `vocab`), with each
//! finding's default status, summary, fix and why. Ids and codes are a public contract (spec
//! §2): add freely, never rename. The `codes_are_stable` test pins the shipped list so a rename
//! shows up as a failing test; `house.rs` checks that every pair a check builds has a row.
//!
//! Checks fill in evidence and, where they know more, a sharper summary or a concrete fix
//! detail; the texts here are what stays true in every case.

pub use crate::vocab::{CheckId, Reason};
use crate::vocab::{Status, TargetKind};

/// One row of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub check: Option<CheckId>,
    pub reason: Reason,
    pub status: Status,
    pub summary: &'static str,
    pub fix: &'static str,
    pub why: &'static str,
}

const fn row(
    check: CheckId,
    reason: Reason,
    status: Status,
    summary: &'static str,
    fix: &'static str,
    why: &'static str,
) -> Entry {
    Entry {
        check: Some(check),
        reason,
        status,
        summary,
        fix,
        why,
    }
}

/// A row that applies to every check (blocked, deadline, internal…).
const fn any(
    reason: Reason,
    status: Status,
    summary: &'static str,
    fix: &'static str,
    why: &'static str,
) -> Entry {
    Entry {
        check: None,
        reason,
        status,
        summary,
        fix,
        why,
    }
}

use CheckId as C;
use Reason as R;
use Status::{Error as E, Fail as F, Pass as P, Skip as S, Warn as W};

const DNS_FIX_NAME: &str = "Check the host name in the kubeconfig's `server:` (a typo, or a name only resolvable on another network). From the runner, `getent hosts <name>` shows what the job sees; if the name lives in private DNS, run the job on a runner inside that network or add the record.";
const TCP_WHY: &str = "kubectl needs a TCP connection to the API server's address and port before anything else; this check tried exactly the addresses DNS returned, from the job's own network position.";

/// The catalogue. Order follows spec §2.
pub const CATALOGUE: &[Entry] = &[
    // ---- config.kubeconfig
    row(
        C::ConfigKubeconfig,
        R::NotSet,
        F,
        "no kubeconfig: KUBECONFIG is not set and no other source of targets exists",
        "In GitLab CI, authorize this project in the agent's configuration (`ci_access:` in `.gitlab/agents/<agent>/config.yaml`) or give the job an `environment:` for a certificate-based cluster; elsewhere pass `--kubeconfig` or `--server`.",
        "GitLab sets KUBECONFIG only when at least one agent is authorized for the job; with none, the variable is simply absent.",
    ),
    row(
        C::ConfigKubeconfig,
        R::Unreadable,
        F,
        "a kubeconfig file cannot be read",
        "Point KUBECONFIG (or --kubeconfig) at an existing, readable file. In GitLab, KUBECONFIG must be a variable of type File, whose value is a path, not the YAML itself.",
        "kubectl stops at the first kubeconfig file it cannot read, so nothing else runs.",
    ),
    row(
        C::ConfigKubeconfig,
        R::InvalidYaml,
        F,
        "a kubeconfig file is not a valid kubeconfig",
        "Fix the YAML at the line and column shown (a tab, a missing indent, a pasted base64 value with a line break), or regenerate the file.",
        "kubectl refuses a kubeconfig it cannot parse; the error is in the file, not the cluster.",
    ),
    row(
        C::ConfigKubeconfig,
        R::ContentNotPath,
        F,
        "KUBECONFIG holds the kubeconfig itself, not the path of a file",
        "In Settings > CI/CD > Variables, change the KUBECONFIG variable's type from Variable to File (GitLab then writes the value to a file and puts its path in KUBECONFIG), or write it out in the job before kubectl runs: `printf '%s\\n' \"$KUBECONFIG\" > \"$CI_PROJECT_DIR/.kubeconfig\"; export KUBECONFIG=\"$CI_PROJECT_DIR/.kubeconfig\"`.",
        "kubectl reads KUBECONFIG as a list of paths; a GitLab variable of type Variable puts the YAML text itself there, which names no file.",
    ),
    row(
        C::ConfigKubeconfig,
        R::Base64Encoded,
        F,
        "the kubeconfig is base64-encoded: kubectl needs the decoded YAML",
        "Store the decoded kubeconfig (`base64 -d < kubeconfig.b64 > kubeconfig`) in the File variable, or decode it in the job before kubectl runs.",
        "kubectl parses the file as YAML, and base64 text is one long string, not a kubeconfig: kubectl stops with `error loading config file \"…\": couldn't get version/kind; json parse error: json: cannot unmarshal string into Go value of type struct { APIVersion string …; Kind string … }`.",
    ),
    row(
        C::ConfigKubeconfig,
        R::NoContexts,
        F,
        "the kubeconfig has no contexts",
        "Add a context (`kubectl config set-context`), or in GitLab authorize an agent for this project so GitLab generates one.",
        "Every kubectl command needs a context naming a cluster and a user.",
    ),
    row(
        C::ConfigKubeconfig,
        R::ContextNotFound,
        F,
        "the requested context does not exist in the kubeconfig",
        "Use one of the contexts listed in the evidence (for the GitLab agent: `<agent config project path>:<agent name>`), in --context or KUBE_CONTEXT.",
        "kubectl looks a context up by its exact name; a typo or the CI project's path instead of the agent config project's path selects nothing.",
    ),
    row(
        C::ConfigKubeconfig,
        R::NoCurrentContext,
        P,
        "no current-context is set: every context is checked",
        "Select one with `kubectl config use-context <name>` (or KUBE_CONTEXT) in the deploy job.",
        "The kubeconfig GitLab injects for agents has no current context; kubectl without one fails with `The connection to the server localhost:8080 was refused`.",
    ),
    row(
        C::ConfigKubeconfig,
        R::LegacyContextSelected,
        W,
        "the current context is the certificate-based cluster's gitlab-deploy, though GitLab agent contexts exist",
        "Select the agent's context in the deploy job before kubectl or helm runs (`kubectl config use-context <agent config project>:<agent>`, or set KUBE_CONTEXT), or remove the certificate-based cluster from the project.",
        "GitLab makes `gitlab-deploy` the current context when a certificate-based cluster matches the job's environment; kubectl without `--context` then uses that deprecated integration (disabled by default since GitLab 17.0), not the agent the job is authorized for.",
    ),
    row(
        C::ConfigKubeconfig,
        R::KubeContextNotCurrent,
        W,
        "KUBE_CONTEXT names another context than current-context: kubectl itself will use current-context",
        "Select the context in the job before kubectl or helm runs (`kubectl config use-context \"$KUBE_CONTEXT\"`), or pass `--context \"$KUBE_CONTEXT\"` (helm: `--kube-context`).",
        "kube-reach checks the context KUBE_CONTEXT names, as Auto DevOps does; kubectl and helm never read KUBE_CONTEXT, so without a `use-context` they talk to the current context's cluster instead.",
    ),
    row(
        C::ConfigKubeconfig,
        R::InClusterFallback,
        W,
        "no kubeconfig and no KUBE_* variables: kubectl will act as the runner pod's service account on the runner's own cluster",
        "If the job should deploy elsewhere, give it a kubeconfig (authorize a GitLab agent with `ci_access`, or a KUBECONFIG file variable). If the runner's cluster is the target, bind the Role the job needs to this service account (see rbac.can-i) and say so with `--in-cluster`.",
        "With no kubeconfig, kubectl and client-go fall back to in-cluster config (rest.InClusterConfig): KUBERNETES_SERVICE_HOST/PORT and the pod's mounted token. The job then talks to the cluster the runner runs in, as the job pod's service account, and fails later with `User \"system:serviceaccount:<ns>:<name>\" cannot …`.",
    ),
    row(
        C::ConfigKubeconfig,
        R::NotInCluster,
        F,
        "--in-cluster was given, but the job does not run in a pod",
        "Run the job on GitLab's Kubernetes executor (or another pod), or drop --in-cluster and give the job a kubeconfig.",
        "The in-cluster target needs what the kubelet gives a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (client-go's rest.InClusterConfig requires both) and the mounted service account.",
    ),
    row(
        C::ConfigKubeconfig,
        R::NamesNoFile,
        F,
        "KUBECONFIG is set but names no file",
        "Set KUBECONFIG to the kubeconfig's path (a `:`-separated list of paths); in GitLab use a variable of type File, whose value is a path.",
        "kubectl splits KUBECONFIG at `:` and skips empty entries; a value of only separators leaves it no file to read, so it falls back to defaults that do not reach the cluster.",
    ),
    row(
        C::ConfigKubeconfig,
        R::TooManyTargets,
        W,
        "more targets than kube-reach checks in one run: the rest were not checked",
        "Select the contexts to check with --context (repeatable) or KUBE_CONTEXT; the evidence lists the first ones left out.",
        "Each target costs connections, memory and report lines; the cap keeps a huge kubeconfig from exhausting the job or flooding its reports.",
    ),
    // ---- config.server
    row(
        C::ConfigServer,
        R::Missing,
        F,
        "the cluster entry has no server URL",
        "Set `clusters[].cluster.server` to the API server's https URL.",
        "Without a server URL kubectl falls back to http://localhost:8080, which is never the cluster.",
    ),
    row(
        C::ConfigServer,
        R::ClusterNotFound,
        F,
        "the context names a cluster that is not in the kubeconfig",
        "Add the cluster entry or fix the context's `cluster:` name.",
        "kubectl resolves context → cluster by exact name.",
    ),
    row(
        C::ConfigServer,
        R::InvalidUrl,
        F,
        "the server URL cannot be parsed",
        "Write the server as `https://host[:port][/path]`.",
        "kubectl parses the URL before any connection; a malformed one never gets anywhere.",
    ),
    row(
        C::ConfigServer,
        R::InsecureScheme,
        F,
        "the server URL is http://: kubectl sends no credentials over it",
        "Use the https:// URL of the API server (for the GitLab agent, the agent server's k8s-proxy URL is https:// when KAS is configured with TLS).",
        "client-go silently drops bearer tokens and client certificates on plain http, so every request arrives anonymous.",
    ),
    row(
        C::ConfigServer,
        R::PlainHttp,
        W,
        "the server URL is http://, and the kubeconfig has no credentials to lose over it",
        "Nothing to do if a local authenticating proxy listens there (`kubectl proxy`, a sidecar); otherwise use the API server's https:// URL and give the kubeconfig user credentials.",
        "client-go drops credentials on plain http, but this user has none: every request goes as whoever the listener there authenticates as, and travels unencrypted.",
    ),
    row(
        C::ConfigServer,
        R::CredentialsWithheld,
        W,
        "the server URL is http://: the kubeconfig's credentials are withheld over it",
        "If a local authenticating proxy listens there (`kubectl proxy`, a sidecar), remove the user's credentials from this kubeconfig: they are never used; otherwise use the API server's https:// URL so they can be sent.",
        "client-go drops bearer tokens and client certificates on plain http, and kube-reach never sends them there: the later checks judge what the listener does with an anonymous request.",
    ),
    row(
        C::ConfigServer,
        R::Loopback,
        W,
        "the server is a loopback address: only reachable from the machine itself",
        "Use the cluster's real address: a kubeconfig copied from a laptop cluster (kind, minikube, k3d) points at 127.0.0.1, which inside a CI job is the job's own container.",
        "Loopback addresses never leave the host they are used on.",
    ),
    row(
        C::ConfigServer,
        R::LinkLocal,
        W,
        "the server is a link-local address",
        "Use an address routed to the runner; link-local (169.254.x.x, fe80::) is only reachable on the same network segment.",
        "Routers never forward link-local traffic.",
    ),
    row(
        C::ConfigServer,
        R::PrivateAddress,
        W,
        "the server is a private address: reachable only from runners inside that network",
        "Run the job on a runner inside the cluster's network (runner tags), or use the cluster's public endpoint or the GitLab agent.",
        "Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are not routed on the internet; shared runners cannot reach them.",
    ),
    // ---- config.credentials
    row(
        C::ConfigCredentials,
        R::None,
        W,
        "no credentials: requests will be anonymous",
        "Give the kubeconfig user a token, a client certificate or an exec plugin.",
        "Without credentials the API server treats every request as `system:anonymous`.",
    ),
    row(
        C::ConfigCredentials,
        R::UserNotFound,
        F,
        "the context names a user that is not in the kubeconfig",
        "Add the user entry or fix the context's `user:` name.",
        "kubectl then sends no credentials at all.",
    ),
    row(
        C::ConfigCredentials,
        R::TokenFileUnreadable,
        F,
        "the token file cannot be read",
        "Point `tokenFile` (or --token-file) at a readable file.",
        "kubectl reads the token from the file for each request.",
    ),
    row(
        C::ConfigCredentials,
        R::TokenInvalid,
        F,
        "the bearer token cannot be what the server issued: it is empty, spans lines, or holds control or non-ASCII characters",
        "Write the token alone on one line (`kubectl create token <sa> > token`, or paste it without quotes, line breaks or a byte-order mark) into the file or variable the evidence names.",
        "Tokens are ASCII on one line; client-go trims only surrounding whitespace, so a second line, a control character or a byte-order mark becomes part of the header (which then cannot be sent, or names no token the server knows) and an empty file gives no token at all.",
    ),
    row(
        C::ConfigCredentials,
        R::TokenExpired,
        F,
        "the bearer token has expired",
        "Issue a fresh token (for a service account: `kubectl create token <sa> --duration=…`) and update the CI variable.",
        "The token's `exp` claim is in the past; the API server rejects it with 401.",
    ),
    row(
        C::ConfigCredentials,
        R::TokenExpiring,
        W,
        "the bearer token expires soon",
        "Rotate the token before it expires.",
        "The token's `exp` claim is near; the job will start failing with 401 after it.",
    ),
    row(
        C::ConfigCredentials,
        R::ClientCertInvalid,
        F,
        "the client certificate or key cannot be read or parsed",
        "Check `client-certificate(-data)`/`client-key(-data)`: PEM, base64 in the -data fields, not truncated.",
        "kubectl cannot present a certificate it cannot parse.",
    ),
    row(
        C::ConfigCredentials,
        R::ClientKeyMismatch,
        F,
        "the client key does not belong to the client certificate",
        "Pair the certificate with the key it was issued for.",
        "The TLS handshake proves possession of the certificate's key; a different key fails it.",
    ),
    row(
        C::ConfigCredentials,
        R::ClientCertExpired,
        F,
        "the client certificate has expired",
        "Renew the client certificate (or switch to a token).",
        "The API server rejects expired client certificates, and the request becomes unauthorized.",
    ),
    row(
        C::ConfigCredentials,
        R::ClientCertNotYetValid,
        F,
        "the client certificate is not valid yet",
        "Check the runner's clock, or wait for the certificate's start date.",
        "A certificate is only accepted inside its validity period.",
    ),
    row(
        C::ConfigCredentials,
        R::ClientCertExpiring,
        W,
        "the client certificate expires soon",
        "Renew the client certificate before it expires.",
        "Deploys will fail with 401 once it expires.",
    ),
    row(
        C::ConfigCredentials,
        R::ExecPluginMissing,
        F,
        "the exec credential plugin is not on PATH",
        "Install the plugin in the job image (gke-gcloud-auth-plugin, aws, kubelogin…) or use a token for CI.",
        "kubectl runs the plugin to get a token; without it kubectl fails before sending a request.",
    ),
    row(
        C::ConfigCredentials,
        R::ExecPluginFailed,
        F,
        "the exec credential plugin failed",
        "Run the plugin command by hand in the job to see its error; it usually needs cloud credentials in the job's environment.",
        "Without the plugin's token kubectl cannot authenticate.",
    ),
    row(
        C::ConfigCredentials,
        R::ExecPluginInteractive,
        F,
        "the exec credential plugin wants a person: a CI job has no terminal to log in with",
        "Give the plugin a non-interactive login in CI: for `kubelogin`, `kubelogin convert-kubeconfig -l workloadidentity` (or `-l spn` with a service principal, `-l azurecli` after `az login --service-principal`); for `aws`, role credentials in the job (OIDC `AssumeRoleWithWebIdentity` with the CI job's ID token); for `gke-gcloud-auth-plugin`, workload identity federation or a service-account key; and remove `interactiveMode: Always`.",
        "kubectl runs the plugin without a terminal in CI, so a device-code prompt waits for nobody and `interactiveMode: Always` is refused outright (`exec plugin cannot support interactive mode`).",
    ),
    row(
        C::ConfigCredentials,
        R::ExecApiversionUnsupported,
        F,
        "the exec plugin's apiVersion client.authentication.k8s.io/v1alpha1 was removed in kubectl 1.24",
        "Regenerate the kubeconfig with a current tool (`aws eks update-kubeconfig`, `gcloud container clusters get-credentials`, `az aks get-credentials`), or set `exec.apiVersion: client.authentication.k8s.io/v1beta1`.",
        "kubectl 1.24 and newer refuse `v1alpha1` exec plugins (`exec plugin: invalid apiVersion`) before running them.",
    ),
    row(
        C::ConfigCredentials,
        R::ExecApiversionMismatch,
        F,
        "the exec plugin answered another apiVersion than the kubeconfig declares",
        "Make the kubeconfig's `exec.apiVersion` match what the plugin prints (see the evidence), usually by regenerating the kubeconfig or upgrading the plugin (an old `aws` CLI prints v1alpha1).",
        "client-go rejects an ExecCredential whose apiVersion differs from the one it asked for.",
    ),
    row(
        C::ConfigCredentials,
        R::ExecInteractiveModeMissing,
        F,
        "the exec plugin's stanza declares client.authentication.k8s.io/v1 without `interactiveMode`",
        "Add `interactiveMode: Never` (or `IfAvailable`) to the user's `exec:` stanza in the kubeconfig; a CI job has no terminal, so `Never` says what happens anyway.",
        "For `client.authentication.k8s.io/v1` client-go has no default: kubectl refuses the kubeconfig before it runs the plugin (`interactiveMode must be specified for <user> to use exec authentication plugin`).",
    ),
    row(
        C::ConfigCredentials,
        R::AuthProviderRemoved,
        F,
        "the kubeconfig uses an auth provider that kubectl removed",
        "Replace `auth-provider: gcp` with `gke-gcloud-auth-plugin` and `azure` with `kubelogin` (exec plugins).",
        "The in-tree gcp and azure auth providers were removed in kubectl 1.26.",
    ),
    row(
        C::ConfigCredentials,
        R::BasicAuthRemoved,
        F,
        "the kubeconfig uses username/password, which Kubernetes no longer accepts",
        "Use a token or a client certificate instead of basic auth.",
        "Basic authentication was removed from the API server in Kubernetes 1.19.",
    ),
    // ---- config.tls
    row(
        C::ConfigTls,
        R::InsecureSkipVerify,
        W,
        "insecure-skip-tls-verify is on: the server's identity is not checked",
        "Remove `insecure-skip-tls-verify` and set `certificate-authority-data` to the cluster's CA.",
        "Without verification anyone on the path can impersonate the API server and collect the credentials; kube-reach withholds credentials in that case.",
    ),
    row(
        C::ConfigTls,
        R::CaUnreadable,
        F,
        "the certificate-authority file cannot be read",
        "Point `certificate-authority` at a readable PEM file, or inline it as `certificate-authority-data`.",
        "kubectl cannot verify the server without its CA.",
    ),
    row(
        C::ConfigTls,
        R::CaInvalid,
        F,
        "the certificate-authority is not a valid PEM certificate",
        "Put the cluster CA's PEM (base64-encoded in `certificate-authority-data`) in the kubeconfig.",
        "An unparsable CA trusts nothing, so every handshake fails.",
    ),
    row(
        C::ConfigTls,
        R::CaExpired,
        F,
        "the certificate-authority in the kubeconfig has expired",
        "Fetch the cluster's current CA and update the kubeconfig.",
        "An expired CA can no longer anchor a valid chain.",
    ),
    row(
        C::ConfigTls,
        R::InvalidServerName,
        F,
        "the kubeconfig's tls-server-name is not a name a certificate can be checked against",
        "Set `tls-server-name` to one of the names in the server certificate (a DNS name or an IP address), or remove it to verify against the server URL's host.",
        "kubectl verifies the server certificate against tls-server-name; a value that is no DNS name or address can never match, so every handshake fails before the server is even judged.",
    ),
    // ---- config.proxy
    row(
        C::ConfigProxy,
        R::InvalidProxyUrl,
        F,
        "the proxy URL cannot be parsed",
        "Write the proxy as `http://host:port` (credentials as `http://user:pass@host:port`).",
        "kubectl fails every request when the proxy URL is invalid.",
    ),
    row(
        C::ConfigProxy,
        R::NoProxyIgnored,
        W,
        "a NO_PROXY entry that client-go does not apply to this server: the request goes through the proxy",
        "Write NO_PROXY entries as client-go reads them: the server's host name or a domain suffix (`api.example.com`, `.example.com`, or the same as `*.example.com`), or an IP or CIDR only when the kubeconfig's `server:` is an IP address; `*` only alone or as that leading `*.`, never elsewhere (`10.0.0.*` matches nothing).",
        "Go's httpproxy, which kubectl uses, never resolves the server's name to compare it with CIDR entries, and reads `*` as a wildcard only alone or in a leading `*.`; other entries silently match nothing, so traffic meant to bypass the proxy goes through it.",
    ),
    // ---- dns.resolve
    row(
        C::DnsResolve,
        R::Nxdomain,
        F,
        "the name does not exist (NXDOMAIN)",
        DNS_FIX_NAME,
        "The nameserver answered authoritatively that no such name exists; no retry or timeout will change that.",
    ),
    row(
        C::DnsResolve,
        R::Servfail,
        F,
        "the nameserver failed to answer (SERVFAIL)",
        "The job's nameserver (see evidence) could not resolve the name: check the DNS forwarder of the runner's network, or use a resolvable name.",
        "SERVFAIL means the nameserver itself failed (upstream down, DNSSEC failure), not that the name is wrong.",
    ),
    row(
        C::DnsResolve,
        R::Refused,
        F,
        "the nameserver refused the query (REFUSED)",
        "The nameserver in the job's resolv.conf does not serve this runner or this name: fix the runner's DNS settings (Docker `dns` option, pod dnsConfig).",
        "REFUSED is a policy answer: the server will not recurse for this client.",
    ),
    row(
        C::DnsResolve,
        R::Timeout,
        F,
        "no nameserver answered in time",
        "Check that the job can reach its nameservers (UDP and TCP port 53); a firewall or a dead nameserver in resolv.conf causes this.",
        "No answer at all means the queries or replies are lost, unlike NXDOMAIN or SERVFAIL.",
    ),
    row(
        C::DnsResolve,
        R::NoRecords,
        F,
        "the name exists but has no address records",
        "Add an A or AAAA record for the name, or use the correct name.",
        "The name exists in DNS, but not as an address.",
    ),
    row(
        C::DnsResolve,
        R::NoNameservers,
        F,
        "the job has no nameservers configured",
        "Give the job a resolv.conf with a nameserver (runner `dns` setting, pod dnsPolicy), or use an IP address in the server URL.",
        "With no nameserver, no name can be resolved.",
    ),
    row(
        C::DnsResolve,
        R::ResolverError,
        E,
        "the resolver could not be set up",
        "Check /etc/resolv.conf in the job image.",
        "kube-reach could not build a resolver from the job's configuration.",
    ),
    row(
        C::DnsResolve,
        R::PrivateAnswer,
        W,
        "a managed cluster's public name answered a private address: reachable only inside its network",
        "Run the job where the private endpoint is reachable (a runner inside the cluster's VPC or virtual network, or one peered with it), or enable the cluster's public endpoint and allow the runner's egress address in its authorized networks.",
        "Managed clusters with a private endpoint publish their private addresses under the public name (EKS), or in a private DNS zone only the linked network sees (AKS Private Link); from outside that network the addresses route nowhere, so connections time out.",
    ),
    row(
        C::DnsResolve,
        R::SearchExpanded,
        W,
        "the name resolved through a search domain to other addresses than the name itself has",
        "Lower `ndots` in the job's resolv.conf (on the Kubernetes executor, the pod's `dnsConfig` options) so the name is tried as itself first, or remove the wildcard record from the search domain; a trailing dot in the `server:` host also makes the name absolute.",
        "With fewer dots than `ndots`, the resolver tries the search domains before the name itself, and a wildcard record there answers first: the job then talks to another host than the kubeconfig names.",
    ),
    // ---- tcp.connect
    row(
        C::TcpConnect,
        R::Refused,
        F,
        "connection refused: nothing listens on that port, or a firewall rejects it",
        "Check the port in the server URL (the API server usually listens on 6443 or 443) and that the API server or its load balancer is up.",
        TCP_WHY,
    ),
    row(
        C::TcpConnect,
        R::Timeout,
        F,
        "no answer to the connection attempt: packets are dropped on the way",
        "A firewall, security group or network policy drops traffic from the runner to this address: allow the runner's egress address to the API server's port (for managed clusters, the API server's authorized networks). If the address is on the runner's own subnet, check that a host really owns it: an unowned local address times out the same way.",
        "A silent drop gives no error, only a timeout; a closed port would have answered with a reset.",
    ),
    row(
        C::TcpConnect,
        R::HostUnreachable,
        F,
        "host unreachable: no route to the host, or a firewall rejects with ICMP",
        "Check that the address is right and that the runner's network routes to it; a firewall rejecting with ICMP admin-prohibited gives the same error.",
        "The network (or a host on it) told the runner this host cannot be reached.",
    ),
    row(
        C::TcpConnect,
        R::NetworkUnreachable,
        F,
        "network unreachable: the runner has no route to this address",
        "The runner has no route to this network: run the job on a runner that is inside or peered with the cluster's network, or use a reachable endpoint.",
        "The kernel found no route for the destination, so nothing was sent.",
    ),
    row(
        C::TcpConnect,
        R::Reset,
        F,
        "the connection was reset",
        "A middlebox or the server reset the connection: check firewalls and the API server's listener.",
        TCP_WHY,
    ),
    row(
        C::TcpConnect,
        R::ConnectFailed,
        F,
        "the connection failed",
        "The operating system refused to make the connection (its error is in the evidence): check the runner's own network setup: a local firewall, exhausted ports, or a sandbox that forbids outbound connections.",
        TCP_WHY,
    ),
    // ---- proxy.connect
    row(
        C::ProxyConnect,
        R::Refused,
        F,
        "the proxy refused the connection: nothing listens on the proxy port",
        "Fix HTTPS_PROXY (or the kubeconfig's proxy-url): the proxy host or port is wrong, or the proxy is down. kubectl reports this as the API server refusing the connection, but it was the proxy.",
        "All traffic to the API server goes through the proxy, so a dead proxy looks like a dead cluster.",
    ),
    row(
        C::ProxyConnect,
        R::Timeout,
        F,
        "the proxy did not answer the connection attempt",
        "Check the proxy address in HTTPS_PROXY/proxy-url and that the runner may reach it.",
        "Packets to the proxy are dropped.",
    ),
    row(
        C::ProxyConnect,
        R::HostUnreachable,
        F,
        "the proxy host is unreachable",
        "Check the proxy address and the runner's route to it.",
        "The network reported the proxy host unreachable.",
    ),
    row(
        C::ProxyConnect,
        R::NetworkUnreachable,
        F,
        "the runner has no route to the proxy",
        "Check the proxy address and the runner's routes.",
        "No route to the proxy's network.",
    ),
    row(
        C::ProxyConnect,
        R::Reset,
        F,
        "the proxy reset the connection",
        "Check the proxy.",
        "The proxy closed the connection abruptly.",
    ),
    row(
        C::ProxyConnect,
        R::ConnectFailed,
        F,
        "connecting to the proxy failed",
        "The operating system refused to connect to the proxy (its error is in the evidence): check the proxy address in HTTPS_PROXY or proxy-url and the runner's own network setup.",
        "The proxy could not be reached.",
    ),
    row(
        C::ProxyConnect,
        R::NotTls,
        F,
        "the proxy URL is https://, but the proxy speaks plain HTTP",
        "Write the proxy URL with `http://` (HTTPS_PROXY=http://proxy:port, or the kubeconfig's `proxy-url`): the `https` in HTTPS_PROXY's name means the proxy is used for https:// requests, not that the proxy itself speaks TLS.",
        "With an https:// proxy URL the client starts TLS with the proxy; a plain proxy answers the ClientHello with nothing (tinyproxy) or an HTTP error, so kubectl reports `proxyconnect tcp: tls: first record does not look like a TLS handshake` or a TLS handshake timeout. The same proxy answered a plain CONNECT.",
    ),
    row(
        C::ProxyConnect,
        R::HandshakeFailed,
        F,
        "the proxy URL is https://, but no TLS handshake with the proxy completed",
        "Check the proxy URL's scheme and port: an https:// proxy must speak TLS on that port; most corporate proxies are plain `http://` proxies.",
        "With an https:// proxy URL the client must complete TLS with the proxy before it can ask for a tunnel.",
    ),
    row(
        C::ProxyConnect,
        R::Unsupported,
        E,
        "the https:// proxy speaks TLS; tunnelling through a TLS proxy is not checked yet",
        "Check the API server through the proxy by hand (`kubectl version`); kube-reach checks tunnels through http:// proxies only.",
        "kube-reach does not yet run TLS inside TLS to the proxy, so the layers beyond the proxy were not checked.",
    ),
    // ---- proxy.tunnel
    row(
        C::ProxyTunnel,
        R::Forbidden,
        F,
        "the proxy refused to tunnel to the API server (403)",
        "Allow CONNECT to the API server's host and port in the proxy's ACL (many proxies allow only port 443), or add the API server to NO_PROXY if it is reachable directly.",
        "The proxy answered the CONNECT request with 403: its policy forbids this destination.",
    ),
    row(
        C::ProxyTunnel,
        R::AuthRequired,
        F,
        "the proxy requires authentication (407)",
        "Put the proxy credentials in the proxy URL (`http://user:password@proxy:port`, as a masked CI variable).",
        "The proxy answered 407 Proxy Authentication Required.",
    ),
    row(
        C::ProxyTunnel,
        R::UpstreamFailed,
        F,
        "the proxy could not reach the API server",
        "The proxy cannot resolve or connect to the API server: check the server name from the proxy's network, or bypass the proxy with NO_PROXY if the runner can reach the cluster directly.",
        "A 502/503/504 to CONNECT comes from the proxy, not from Kubernetes.",
    ),
    row(
        C::ProxyTunnel,
        R::Timeout,
        F,
        "the proxy did not answer the CONNECT request in time",
        "The proxy is stuck connecting to the API server: check the API server's reachability from the proxy.",
        "The proxy accepted the connection but never answered.",
    ),
    row(
        C::ProxyTunnel,
        R::NotAProxy,
        F,
        "the proxy address does not speak HTTP CONNECT",
        "Check HTTPS_PROXY: it must be an HTTP forward proxy (`http://host:port`).",
        "The answer to CONNECT was not an HTTP response.",
    ),
    row(
        C::ProxyTunnel,
        R::UnexpectedStatus,
        F,
        "the proxy answered CONNECT with an unexpected HTTP status",
        "The proxy is an HTTP proxy but did not open the tunnel: see its status in the evidence, check its CONNECT policy for the API server's host and port, or bypass it with NO_PROXY if the cluster is reachable directly.",
        "An HTTP proxy answers CONNECT with a 2xx status when it opens the tunnel; any other status means it did not.",
    ),
    // ---- tls.handshake
    row(
        C::TlsHandshake,
        R::NotTls,
        F,
        "the server does not speak TLS on this port (plain HTTP)",
        "Use the TLS port of the API server (often 6443 or 443), or `http://` only if this really is an unencrypted endpoint (credentials will not be sent).",
        "The first bytes back were not a TLS handshake; kubectl prints `first record does not look like a TLS handshake`.",
    ),
    row(
        C::TlsHandshake,
        R::Alert,
        F,
        "the server aborted the TLS handshake with an alert",
        "See the alert in the evidence; a `handshake_failure` often means no cipher or server name (SNI) the server accepts.",
        "The server refused the handshake.",
    ),
    row(
        C::TlsHandshake,
        R::NoCommonVersion,
        F,
        "no TLS version in common with the server",
        "The server offers only TLS versions older than 1.2: upgrade the API server or its load balancer.",
        "kube-reach, like kubectl, requires TLS 1.2 or newer.",
    ),
    row(
        C::TlsHandshake,
        R::Closed,
        F,
        "the connection closed during the TLS handshake",
        "Something closed the connection mid-handshake: a load balancer without a backend, an SNI-routing proxy that does not know this name, or a firewall doing deep inspection.",
        "The server side closed without a TLS alert.",
    ),
    row(
        C::TlsHandshake,
        R::ClientCertRequired,
        F,
        "the server requires a client certificate",
        "Add `client-certificate-data` and `client-key-data` to the kubeconfig user.",
        "The API server's listener demands mutual TLS.",
    ),
    row(
        C::TlsHandshake,
        R::Stalled,
        F,
        "no longer emitted (now `timeout` or `mtu-blackhole`): the TLS handshake stalled: connected, but the server's handshake never arrived",
        "Large packets are dropped on the path (MTU black hole): lower the MTU of the runner's network (`dockerd --mtu`, the runner's `network_mtu`, the CNI MTU) or allow ICMP fragmentation-needed on the firewalls.",
        "The TCP connection works, but the server's certificate flight is larger than the path's MTU and the ICMP that would shrink it is dropped.",
    ),
    row(
        C::TlsHandshake,
        R::Timeout,
        F,
        "connected and sent the ClientHello, but no TLS answer came back",
        "Something on the path holds the handshake: a firewall or middlebox that accepts TCP but eats TLS (check the runner's egress rules for this host and port), or a server that accepts connections without serving them (an overloaded API server, a load balancer with no healthy backend). Through a proxy, the proxy's own path to the server can be the one that drops the handshake (an MTU black hole there included: the small-MSS retry narrows only the job's link to the proxy).",
        "The TCP connection was made, so the address and port are reachable; what fails is the TLS exchange itself. kubectl reports this as `net/http: TLS handshake timeout`.",
    ),
    row(
        C::TlsHandshake,
        R::MtuBlackhole,
        F,
        "the TLS handshake only completes with small packets: an MTU black hole on the path",
        "Lower the MTU on the runner's side to the path's (Docker-in-Docker: `dockerd --mtu=1360`, e.g. the dind service's `command: [\"--mtu=1360\"]`, and `network_mtu` in the runner's `[runners.docker]` for the networks it creates per job; Kubernetes: the CNI MTU), or allow ICMP type 3 code 4 (fragmentation needed) through the firewalls between the runner and the API server so path MTU discovery works.",
        "The server's certificate flight needs full-size packets; a link on the way has a smaller MTU and the ICMP that would tell the server to shrink them is dropped, so they vanish. The retry announced a small MSS, the server sent small segments, and the handshake completed. kubectl shows `net/http: TLS handshake timeout`.",
    ),
    row(
        C::TlsHandshake,
        R::HandshakeFailed,
        F,
        "the TLS handshake failed",
        "Compare the API server's TLS settings with what kubectl needs (TLS 1.2 or newer, ECDHE ciphers, the SNI name in the evidence), and look for a middlebox that terminates TLS; the TLS library's error is in the evidence.",
        "The TLS layer failed before any certificate could be judged.",
    ),
    row(
        C::TlsHandshake,
        R::OversizedCertificate,
        F,
        "the server's certificate message is larger than the 64 KiB TLS clients accept",
        "Send a shorter chain: the leaf and its intermediates only (no root, no cross-signed or unrelated extra certificates), and fewer subjectAltNames on the leaf.",
        "TLS clients cap a handshake message at 64 KiB (rustls and Go's crypto/tls, so kubectl too); the server does speak TLS, but its certificate chain alone exceeds that.",
    ),
    // ---- tls.trust
    row(
        C::TlsTrust,
        R::UnknownAuthority,
        F,
        "the server's certificate comes from a private CA this client was not given",
        "Give the client the cluster's CA, not the server a new chain: put the CA certificate in the kubeconfig cluster's `certificate-authority-data` (`kubectl config set-cluster <cluster> --certificate-authority=ca.pem --embed-certs`); for the certificate-based integration set `KUBE_CA_PEM`; for the GitLab agent server (no CA in GitLab's kubeconfig) set `SSL_CERT_FILE` to the CA's PEM.",
        "No CA is configured, so only the system's public roots are trusted, and every cluster signs its API server with its own CA; kubectl says `x509: certificate signed by unknown authority`.",
    ),
    row(
        C::TlsTrust,
        R::CaMismatch,
        F,
        "the server's chain comes from a different CA than the one in the kubeconfig",
        "Replace the kubeconfig's `certificate-authority-data` with the CA of the cluster this server belongs to (kubeadm: `/etc/kubernetes/pki/ca.crt`; k3s: `/var/lib/rancher/k3s/server/tls/server-ca.crt`; or `kubectl config view --raw` from a machine that connects), or point `server:` at the cluster whose CA you have.",
        "The kubeconfig's CA replaces the system roots and did not sign this server's chain: the cluster was rebuilt with a new CA (kubeadm names every CA `kubernetes`, so the name still matches but the key does not), or the URL reaches another cluster.",
    ),
    row(
        C::TlsTrust,
        R::Intercepted,
        F,
        "the chain was issued by a TLS-inspecting proxy, not by the API server",
        "Ask the proxy's administrators to exempt the API server's host from TLS inspection, or bypass the proxy for it (`NO_PROXY`), or, if your policy allows, trust the inspection CA in the kubeconfig's `certificate-authority-data`.",
        "A TLS-inspecting proxy ends the job's TLS connection itself and presents a certificate it minted, signed by its own CA, which the cluster's CA did not issue.",
    ),
    row(
        C::TlsTrust,
        R::MissingIntermediate,
        F,
        "the server does not send its intermediate certificate",
        "Configure the API server (or the load balancer in front of it) to send the full chain: the leaf followed by the intermediate CA certificate(s) named in the evidence (kube-apiserver: `--tls-cert-file` holding leaf + intermediates).",
        "The trusted root is known, but nothing links the leaf to it without the intermediate; browsers often hide this by fetching intermediates from the AIA URL, kubectl (Go's crypto/x509) does not.",
    ),
    row(
        C::TlsTrust,
        R::SelfSigned,
        F,
        "the server's certificate is self-signed",
        "Put that certificate (or the cluster CA) in the kubeconfig's `certificate-authority-data`.",
        "A self-signed certificate is trusted only where it is explicitly configured.",
    ),
    row(
        C::TlsTrust,
        R::BadSignature,
        F,
        "a certificate in the chain has an invalid signature",
        "The server sends an issuer certificate whose key did not sign the certificate below it (a stale intermediate after a CA renewal, or a corrupt chain): send the intermediate that really issued the leaf.",
        "A signature that does not verify breaks the chain.",
    ),
    row(
        C::TlsTrust,
        R::NotACa,
        F,
        "a certificate used as an issuer is not a CA",
        "Reissue the chain so issuers are CA certificates.",
        "Only CA certificates may sign others.",
    ),
    row(
        C::TlsTrust,
        R::IssuerExpired,
        F,
        "a CA certificate in the chain is expired or not yet valid",
        "Renew the intermediate (or root) named in the evidence and send the new one with the leaf; if the configured CA itself expired, put the cluster's renewed CA in the kubeconfig.",
        "Every certificate on the path to the trust anchor must be valid now, not only the server's own; kubectl says `x509: certificate has expired or is not yet valid`.",
    ),
    row(
        C::TlsTrust,
        R::WeakSignature,
        F,
        "a certificate in the chain is signed with an algorithm that is no longer accepted (SHA-1, MD5)",
        "Reissue the certificate named in the evidence with a SHA-256 (or stronger) signature.",
        "Go's crypto/x509 (kubectl, client-go) and this tool's verifier reject SHA-1 and MD5 signatures, so the chain cannot verify even though the right CA signed it.",
    ),
    row(
        C::TlsTrust,
        R::UnsupportedAlgorithm,
        F,
        "kube-reach cannot check a signature algorithm this chain uses (kubectl may)",
        "Check with `kubectl get --raw /version` from the job: kube-reach's TLS library (ring) does not verify ECDSA P-521 or RSA keys under 2048 bits, which Go's crypto/x509 accepts; until the CA is reissued with P-256/P-384 or RSA 2048+, the checks above TLS cannot run here.",
        "No credential is sent over a connection whose chain was not verified, so an algorithm the verifier lacks stops the run at TLS even where the cluster is healthy.",
    ),
    row(
        C::TlsTrust,
        R::WeakKey,
        F,
        "the server's certificate has an RSA key under 2048 bits, which kube-reach cannot verify (kubectl may connect)",
        "Re-issue the API server's certificate with an RSA key of 2048 bits or more, or ECDSA P-256 (kubeadm: `kubeadm certs renew apiserver` after setting `encryptionAlgorithm`; openssl: `-newkey rsa:2048`). Until then check the server with `kubectl get --raw /version` from the job.",
        "This tool's TLS library (rustls with webpki and ring) refuses RSA keys below 2048 bits, and it never sends credentials over a connection it could not verify, so the checks above TLS cannot run; Go's crypto/x509 (kubectl) still accepts 1024-bit keys, so kubectl would connect.",
    ),
    row(
        C::TlsTrust,
        R::WrongPurpose,
        F,
        "the server's certificate is not for TLS servers (its extendedKeyUsage lacks serverAuth)",
        "Reissue the API server's certificate with `extendedKeyUsage = serverAuth`; if its purposes name only clientAuth, a client certificate was installed as the serving one: install the server certificate instead.",
        "A certificate whose extendedKeyUsage names other purposes only may not identify a server; kubectl says `x509: certificate specifies an incompatible key usage`.",
    ),
    row(
        C::TlsTrust,
        R::ChainRejected,
        F,
        "the chain reaches the configured CA, but the verifier refuses it for another reason",
        "Keep the CA: it is the right one. Fix what the verifier names in the evidence: a name constraint on the CA that excludes the server's name (reissue the leaf for a permitted name, or the CA without the constraint), a path length the chain exceeds, or an extension the verifier does not accept.",
        "The trust anchor is the one the chain leads to, so replacing it (the `ca-mismatch` fix) would not help; kubectl's Go crypto/x509 applies the same rules and refuses the same chain.",
    ),
    // ---- tls.hostname
    row(
        C::TlsHostname,
        R::Mismatch,
        F,
        "the certificate is not valid for this host name",
        "Use a host name the certificate lists (evidence), or set `tls-server-name` in the kubeconfig cluster to one of them.",
        "TLS checks the name in the URL against the certificate's subjectAltNames.",
    ),
    row(
        C::TlsHostname,
        R::IpNotInSan,
        F,
        "the server was addressed by IP, and the certificate does not list that IP",
        "Use a host name the certificate lists, or set `tls-server-name` to one of them while keeping the IP in `server:`.",
        "An IP in the URL must appear as an IP subjectAltName; DNS names do not match IPs.",
    ),
    row(
        C::TlsHostname,
        R::CnOnly,
        F,
        "the certificate has the name only in its Common Name, no subjectAltName",
        "Reissue the certificate with subjectAltNames.",
        "Go (since 1.15) and rustls ignore the Common Name.",
    ),
    // ---- tls.validity
    row(
        C::TlsValidity,
        R::Expired,
        F,
        "the server certificate has expired",
        "Renew the API server certificate (kubeadm: `kubeadm certs renew apiserver`, then restart the API server).",
        "TLS clients reject certificates past their notAfter date.",
    ),
    row(
        C::TlsValidity,
        R::NotYetValid,
        F,
        "the server certificate is not valid yet",
        "If the runner's clock is wrong (see runner.clock), fix it; otherwise reissue the certificate with a correct start date.",
        "TLS clients reject certificates before their notBefore date.",
    ),
    row(
        C::TlsValidity,
        R::ExpiringSoon,
        W,
        "the server certificate expires soon",
        "Renew the certificate before it expires.",
        "The job will fail with an x509 error once it expires.",
    ),
    // ---- http.version
    row(
        C::HttpVersion,
        R::NotKubernetes,
        F,
        "the server is not a Kubernetes API server",
        "The URL reaches something else (a web page, a load balancer, a login page): check the server URL's host, port and path.",
        "A Kubernetes API server answers /version with JSON containing gitVersion.",
    ),
    row(
        C::HttpVersion,
        R::BackendNotTls,
        F,
        "a load balancer sends plain HTTP to the API server's HTTPS port",
        "The address in the kubeconfig is right; the load balancer in front of the API server forgets to re-encrypt: make it speak TLS to its backend (HAProxy: `server apiserver <ip>:6443 ssl verify required ca-file <cluster CA>`; nginx: `proxy_pass https://<apiserver>:6443` with `proxy_ssl_verify on` and `proxy_ssl_trusted_certificate`), or pass TLS through (HAProxy `mode tcp`, nginx `stream`).",
        "The API server answered in Go's own words, `Client sent an HTTP request to an HTTPS server.`: the request reached it, but unencrypted, from whatever terminated the job's TLS.",
    ),
    row(
        C::HttpVersion,
        R::ProxyError,
        F,
        "a proxy answered instead of the API server",
        "Check the proxy and NO_PROXY settings.",
        "The response carries a proxy's signature, not the API server's.",
    ),
    row(
        C::HttpVersion,
        R::Redirect,
        F,
        "the server redirects instead of answering",
        "Use the URL the redirect points to, if it is the API server; a redirect to a login page means an authenticating proxy sits in front.",
        "kubectl does not follow redirects for API calls.",
    ),
    row(
        C::HttpVersion,
        R::ServerError,
        F,
        "the server answered with an error (5xx)",
        "Check the API server's or load balancer's health.",
        "A 5xx comes from the server side, not from the path.",
    ),
    row(
        C::HttpVersion,
        R::Stalled,
        F,
        "connected and TLS done, but the response never arrived",
        "Large packets are being dropped on the path (MTU black hole, or a middlebox): lower the MTU of the runner's network (`dockerd --mtu`, the runner's `network_mtu` in `[runners.docker]`, the CNI MTU) or allow ICMP fragmentation-needed through the firewalls.",
        "Small packets (the handshake) pass but full-size ones vanish, and the ICMP message that would shrink them is dropped.",
    ),
    row(
        C::HttpVersion,
        R::UnauthorizedAnonymous,
        P,
        "anonymous access is disabled; continuing with credentials",
        "",
        "",
    ),
    row(
        C::HttpVersion,
        R::RequestFailed,
        F,
        "the HTTP request failed",
        "The connection broke mid-request: look for a load balancer or proxy that closes connections (HTTP/2 or idle limits) in front of the API server; the error is in the evidence.",
        "The connection broke during the request.",
    ),
    // ---- http.health
    row(
        C::HttpHealth,
        R::NotReady,
        F,
        "the API server reports itself not ready",
        "See the failing checks in the evidence (often etcd); the cluster's operators need to act.",
        "/readyz lists the server's internal health checks; while one fails (etcd, say) the server may answer reads but writes, and so the deploy, fail.",
    ),
    row(
        C::HttpHealth,
        R::Forbidden,
        P,
        "/readyz is not readable for this identity (informational)",
        "",
        "",
    ),
    // ---- auth.whoami
    row(
        C::AuthWhoami,
        R::Unauthorized,
        F,
        "the API server rejected the credentials (401)",
        "Renew the token or certificate in the kubeconfig; for a service account token, check the account still exists.",
        "401 means the server could not authenticate the request: the token is unknown, expired or revoked, or the certificate is not signed by the cluster's client CA.",
    ),
    row(
        C::AuthWhoami,
        R::ClientCertNotRequested,
        F,
        "401 for a client certificate the server never asked for: TLS is terminated in front of the API server",
        "Connect to the API server's own TLS endpoint, or configure the load balancer in front of it for TLS passthrough (TCP mode) so the client certificate reaches kube-apiserver; alternatively authenticate with a bearer token (a service-account token) instead of the client certificate.",
        "A client certificate is only sent when the server asks for one in the TLS handshake. This server never asked, so whatever terminates TLS here (a load balancer, an ingress, a proxy) is not kube-apiserver, and the request reached the API server without any identity.",
    ),
    row(
        C::AuthWhoami,
        R::ImpersonationDenied,
        F,
        "the kubeconfig user may not impersonate the identity its `as`/`as-groups` name: every request fails",
        "Grant the user kubectl authenticates as (named in the evidence) the `impersonate` verb on `users` (and `groups`, `uids`, `userextras/<key>` for what the kubeconfig also sets) with a ClusterRole and ClusterRoleBinding (`kubectl apply -f -`), or drop `as`/`as-groups`/`as-uid`/`as-user-extra` from the kubeconfig user.",
        "With `as:` in the kubeconfig, kubectl sends every request with `Impersonate-*` headers; kube-apiserver first checks that the authenticated user may impersonate that identity, and answers 403 `cannot impersonate resource \"users\"` for every request when it may not: no deploy step can succeed.",
    ),
    row(
        C::AuthWhoami,
        R::Anonymous,
        F,
        "the server saw system:anonymous: the credentials never arrived",
        "Make sure the kubeconfig user has credentials and the URL is https:// (credentials are dropped on http://).",
        "The request authenticated as the anonymous user, so RBAC for the real identity never applied.",
    ),
    row(
        C::AuthWhoami,
        R::Unsupported,
        P,
        "the server does not support SelfSubjectReview (before 1.28); identity not confirmed",
        "",
        "",
    ),
    row(
        C::AuthWhoami,
        R::Unknown,
        W,
        "the server answered SelfSubjectReview with an unexpected status; identity not confirmed",
        "Look at the HTTP status and body in the evidence: a 404 or 405 usually means something other than the API server answered the request (a path-rewriting proxy or load balancer in front of it); `kubectl auth whoami -v=6` from the job shows the same answer.",
        "The API server answers SelfSubjectReview with 201 (or 401/403); any other status means the request did not reach its authentication layer as kubectl's would, so who the job is stays unknown and the RBAC checks that follow may not mean what they say.",
    ),
    row(
        C::AuthWhoami,
        R::CredentialsWithheld,
        W,
        "credentials withheld: the server's TLS was not verified",
        "Remove `insecure-skip-tls-verify` and configure the cluster's CA so the credentials can be sent safely.",
        "kube-reach never sends credentials to a server whose identity it did not verify.",
    ),
    row(
        C::AuthWhoami,
        R::AgentUnauthorized,
        F,
        "the GitLab agent server rejected the CI job token",
        "The job token is invalid or expired: rerun the pipeline (job tokens live only while the job runs) and make sure the kubeconfig comes from this job's KUBECONFIG.",
        "The agent server checks the `ci:<agent id>:<job token>` credential with GitLab for every request.",
    ),
    row(
        C::AuthWhoami,
        R::AgentForbidden,
        F,
        "the agent is not allowed for this job (agentId is not allowed)",
        "Authorize this project (or its group) in the agent's `ci_access` configuration; see gitlab.allowed-agents for what GitLab allows this job.",
        "The agent server asks GitLab which agents this job may use; this agent is not among them.",
    ),
    row(
        C::AuthWhoami,
        R::AgentNotConnected,
        F,
        "the agent is not connected to the agent server",
        "Check the agentk pods in the cluster (`kubectl -n gitlab-agent logs deploy/<agent>`): they must be running and connected; upgrade agentk if it is older than the agent server.",
        "The agent server waits about 20 s for a tunnel from the agent in the cluster, then gives up.",
    ),
    row(
        C::AuthWhoami,
        R::AgentServerError,
        F,
        "the agent server could not ask GitLab which agents this job may use",
        "The agent server cannot use GitLab's API (on GitLab Self-Managed: check the KAS logs, its internal URL to GitLab and the shared KAS secret); it remembers a failure for about 10 s, so retry once fixed.",
        "For each CI request the agent server asks GitLab's /api/v4/job/allowed_agents with the job token; `Failed to get allowed agents` means that call failed, not that the token is wrong.",
    ),
    // ---- rbac
    row(
        C::RbacCanI,
        R::TooManyRequirements,
        W,
        "more requirements than kube-reach asks in one run: the rest were not asked",
        "Give only the permissions the pipeline needs (`--require`, `--require-file`); the evidence lists the first ones left out.",
        "Each requirement is one access review per target; the cap keeps a huge list from flooding the API server and the reports.",
    ),
    row(
        C::RbacCanI,
        R::Denied,
        F,
        "RBAC denies this action to the job's identity",
        "Bind a Role granting it to the identity in the evidence (a RoleBinding in that namespace).",
        "The API server authorizes each request by the user's roles; none grants this verb on this resource.",
    ),
    row(
        C::RbacCanI,
        R::ImpersonationDenied,
        F,
        "the GitLab agent may not impersonate the identity its access_as names: every request fails",
        "Give the agent's own ServiceAccount (the one agentk runs as, named in the evidence) the `impersonate` verb on `users`, `groups` and `serviceaccounts`, and on the `userextras/agent.gitlab.com/…` extras it sends for `ci_job` (a ClusterRole and ClusterRoleBinding, printed here when the 403 names the service account; the agent's Helm chart creates an equivalent with `rbac.create=true`), or change `access_as` in the agent's configuration to `agent: {}`.",
        "With `access_as: ci_job` or `impersonate`, agentk sends each request as the CI job's identity (`gitlab:ci_job:<job id>` in groups `gitlab:ci_job`, `gitlab:project:<id>`…); kube-apiserver first checks that the agent itself may impersonate, and answers 403 `cannot impersonate resource \"users\"` for every request when it may not.",
    ),
    row(
        C::RbacCanI,
        R::Unknown,
        W,
        "the server did not say whether this is allowed",
        "Ask the cluster's operators: the API server could not evaluate the review (a failing authorization webhook, say) and its words are in the evidence. kube-reach never reports this as a denial.",
        "An unanswered review is not a denial.",
    ),
    row(
        C::RbacRules,
        R::Incomplete,
        P,
        "the rules list is incomplete (informational)",
        "",
        "",
    ),
    row(
        C::NetpolEgress,
        R::BlocksApiserver,
        F,
        "a NetworkPolicy blocks egress to the API server",
        "Allow egress from the runner pods to the API server's endpoint addresses and port.",
        "Egress policies that select the runner pod drop everything they do not allow: the connection times out (`dial tcp …:443: i/o timeout`). kube-proxy rewrites the `kubernetes` service address (ClusterIP:443) to an endpoint (usually :6443) and most CNIs match policies after that rewrite, some before it: a rule for one reading only breaks on the other.",
    ),
    row(
        C::NetpolEgress,
        R::BlocksDns,
        F,
        "a NetworkPolicy blocks DNS from the runner pod",
        "Allow egress from the runner pods to the cluster DNS on UDP and TCP port 53, under both readings of the DNS service's DNAT (the YAML below lists the nameserver addresses and the DNS pods' endpoints).",
        "A pod selected by an egress policy may send only what a rule allows; without a DNS rule every name lookup times out, which kubectl reports as `i/o timeout` or `no such host`.",
    ),
    row(
        C::NetpolEgress,
        R::NotReadable,
        P,
        "NetworkPolicies are not readable (informational)",
        "",
        "",
    ),
    row(
        C::NetpolEgress,
        R::Unknown,
        P,
        "whether the NetworkPolicies allow this cannot be decided from what is readable (informational)",
        "Read the rule named in the evidence: it depends on labels or named ports kube-reach could not see.",
        "Selectors match labels and named ports match container ports of pods; without reading those objects the rule's effect is unknown, and kube-reach never reports an unknown as blocked.",
    ),
    // ---- gitlab
    row(
        C::GitlabServer,
        R::Unreachable,
        F,
        "the GitLab server cannot be reached from the job",
        "Check CI_SERVER_URL from the runner: the evidence shows which request failed and what answered instead. Through a proxy, the proxy must let the runner reach the GitLab host (or add it to NO_PROXY).",
        "The job needs GitLab for its agent authorization and artifacts.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::JobTokenRejected,
        F,
        "GitLab rejected the job token",
        "Job tokens are valid only while the job runs: run kube-reach inside the job, not afterwards.",
        "GET /api/v4/job/allowed_agents authenticates with the job token.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::NoAgents,
        F,
        "GitLab allows no agent for this job",
        "Add this project (or its group) to `ci_access` in the agent's `.gitlab/agents/<agent>/config.yaml`.",
        "GitLab puts in KUBECONFIG only the agents whose `ci_access` covers this job.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::AgentNotAllowed,
        F,
        "an agent in the kubeconfig is not allowed for this job",
        "Use a context from this job's KUBECONFIG, or authorize the project for that agent.",
        "The agent server accepts only agents GitLab allows for the job.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::OtherTopLevelGroup,
        F,
        "the agent the job expects is configured in another top-level group than this project",
        "Register an agent in a project of this project's top-level group and authorize the project in its `ci_access`, or (GitLab Self-Managed) have an administrator enable `organization_cluster_agent_authorization_enabled`.",
        "GitLab keeps only the `ci_access` entries under the configuration project's top-level group (or user namespace) and drops the rest without a word, so the job gets no context for that agent; the two paths (the agent's context name, CI_PROJECT_PATH) decide it.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::EnvironmentExcludesJob,
        F,
        "the agent's `environments` filter leaves this job out",
        "Give the deploy job an `environment:` that the agent's `environments` list matches, or widen the list.",
        "An agent entry with `environments` authorizes only jobs whose environment matches one of them; a job without `environment:` never does. The agent's configuration in this checkout shows the filter.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::ProtectedBranchesOnly,
        F,
        "the agent admits only jobs on protected refs, and this ref is not protected",
        "Run the deploy job on a protected branch or tag (Settings > Repository > Protected branches), or drop `protected_branches_only` from the agent's entry.",
        "GitLab (17.3+) gives an entry with `protected_branches_only: true` only to jobs whose CI_COMMIT_REF_PROTECTED is true; the agent's configuration in this checkout shows the setting.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::KubeContextAgentNotAllowed,
        F,
        "KUBE_CONTEXT names an agent GitLab does not allow this job",
        "Authorize this project in that agent's `ci_access` (`.gitlab/agents/<agent>/config.yaml` of its configuration project), or set KUBE_CONTEXT to the context of an agent GitLab allows (listed in the evidence).",
        "GitLab writes into KUBECONFIG only the agents whose `ci_access` covers this job; a context KUBE_CONTEXT names for any other agent does not exist there, so kubectl and Auto DevOps fail with `no context exists with the name`.",
    ),
    row(
        C::GitlabAllowedAgents,
        R::Unavailable,
        W,
        "the allowed-agents API could not be asked",
        "Run kube-reach inside the GitLab job, where CI_JOB_TOKEN and CI_API_V4_URL are set and CI_API_V4_URL is on the CI_SERVER_URL host; the evidence says which of these stopped the request, or what GitLab answered.",
        "Without it the agent's authorization cannot be confirmed.",
    ),
    row(
        C::GitlabAgentConfig,
        R::InvalidYaml,
        F,
        "the agent configuration file is not valid YAML",
        "Fix the YAML at the position shown.",
        "The agent ignores a configuration it cannot parse.",
    ),
    row(
        C::GitlabAgentConfig,
        R::ProjectNotListed,
        F,
        "the agent configuration does not authorize this project",
        "Add this project's path (or a group above it) under `ci_access:` in the agent configuration.",
        "Only listed projects and groups get the agent's context.",
    ),
    row(
        C::GitlabAgentConfig,
        R::OtherTopLevelGroup,
        F,
        "the authorized project or group is in another top-level group",
        "Projects authorized with `ci_access` must share the agent configuration project's top-level group.",
        "GitLab only honours ci_access entries within the same top-level group.",
    ),
    row(
        C::GitlabAgentConfig,
        R::EnvironmentExcludesJob,
        F,
        "the agent's `environments` filter excludes this job",
        "Give the job a matching `environment:` or widen the `environments` list.",
        "With an environments filter, jobs without a matching environment get no context.",
    ),
    row(
        C::GitlabAgentConfig,
        R::ProtectedBranchesOnly,
        F,
        "the agent's entry has `protected_branches_only: true` and this job's ref is not protected",
        "Run the deploy job on a protected branch or tag (Settings > Repository > Protected branches), or remove `protected_branches_only` from the entry.",
        "GitLab (17.3+) gives such entries only to jobs on protected refs.",
    ),
    row(
        C::GitlabAgentConfig,
        R::MisnamedFile,
        F,
        "the agent configuration file is named config.yml; GitLab reads only config.yaml",
        "Rename it to `config.yaml` in the same directory, on the default branch.",
        "GitLab looks for `.gitlab/agents/<agent>/config.yaml` exactly; with any other name the agent runs without configuration and authorizes no other project.",
    ),
    row(
        C::GitlabAgentConfig,
        R::Unreadable,
        W,
        "the agent configuration file cannot be read",
        "See the evidence: the file must be UTF-8 text under 1 MiB in the job's checkout.",
        "kube-reach reads the checkout's copy of the file to check `ci_access`; GitLab reads the default branch's.",
    ),
    row(
        C::GitlabKas,
        R::NotAgentServer,
        F,
        "something other than the GitLab agent server answers at the k8s-proxy URL",
        "A proxy or load balancer in front of the agent server answered: check the k8s-proxy URL and the path routing in front of KAS.",
        "The agent server marks its own 401s with `Gitlab-Unauthorized: true`.",
    ),
    row(
        C::GitlabKas,
        R::Unreachable,
        F,
        "the agent server cannot be reached",
        "The agent server gave no HTTP answer to an anonymous request: check the host and port of the kubeconfig's k8s-proxy URL, and that a proxy or firewall lets the runner reach it.",
        "All agent traffic goes through the agent server.",
    ),
    row(
        C::GitlabKas,
        R::WrongPath,
        F,
        "the agent server answered, but the URL's path is not its k8s-proxy path",
        "Use the k8s-proxy URL exactly as GitLab writes it in KUBECONFIG (GitLab.com `https://kas.gitlab.com/k8s-proxy`, Linux package `https://<gitlab host>/-/kubernetes-agent/k8s-proxy/`); a proxy in front must not rewrite the path.",
        "The agent server serves the Kubernetes API only under its configured path prefix and answers `400 URL does not start with expected prefix` elsewhere.",
    ),
    // ---- runner
    row(
        C::RunnerClock,
        R::Skew,
        W,
        "the runner's clock differs from the servers' clocks",
        "Sync the runner host's clock (NTP).",
        "Certificate validity and token expiry are judged with the local clock; a wrong clock makes good certificates look expired or not yet valid.",
    ),
    row(
        C::RunnerTools,
        R::KnownBadVersion,
        W,
        "a client tool on PATH is a version known to break through the GitLab agent",
        "Use kubectl 1.27.2 or newer (or 1.26) and Helm 3.12.1 or newer in the job image (pin the image tag, e.g. `bitnami/kubectl:1.30`).",
        "These versions fetch the OpenAPI document from the server's root instead of under the kubeconfig's server path, and the agent server answers that with 426; kube-reach's own requests carry the path, so they pass while the deploy step fails.",
    ),
    row(
        C::RunnerTools,
        R::VersionSkew,
        W,
        "kubectl on PATH is more than one minor version away from the API server",
        "Use a kubectl within one minor version of the server's (see the evidence) in the job image.",
        "Kubernetes supports kubectl only within one minor version of the API server; outside it, commands fail on removed or changed APIs, or silently send fields the server does not know.",
    ),
    row(
        C::RunnerTools,
        R::Timeout,
        W,
        "a client tool did not answer `version` in time",
        "Run the tool's `version` command in the job image by hand: a tool that hangs without a server (a wrapper script waiting for input, a network lookup) will hang the deploy step too.",
        "kube-reach asks each tool its version with stdin closed and kills it at `--timeout`; a healthy kubectl or helm answers at once.",
    ),
    row(
        C::RunnerTools,
        R::ToolCannotRun,
        W,
        "a client tool on PATH could not be started",
        "Check the tool in the job image (the evidence says why it did not start): the execute bit, a binary for another CPU or libc (an Alpine image with a glibc build), a script whose interpreter is missing.",
        "The deploy step runs the same file; a kubectl or helm that cannot start here will not start there either.",
    ),
    // ---- any check
    any(
        R::Blocked,
        S,
        "not run: a check it depends on failed",
        "",
        "",
    ),
    any(R::NotApplicable, S, "not applicable", "", ""),
    any(
        R::RequestFailed,
        F,
        "the request failed",
        "The connection broke during the request: look for a load balancer or proxy that closes connections in front of the server; the error is in the evidence.",
        "The connection was established and verified, then failed before an answer arrived.",
    ),
    any(
        R::Timeout,
        F,
        "timed out",
        "Raise --timeout if the server is merely slow; if it never answers, the request is lost on the path (a firewall, a proxy, an overloaded API server). The evidence names the request.",
        "The operation did not finish within --timeout.",
    ),
    any(
        R::Deadline,
        E,
        "not finished before the run's deadline",
        "Raise --deadline, or fix the slower layers first (timeouts add up).",
        "The whole run is bounded by --deadline so a CI job never hangs.",
    ),
    any(
        R::Internal,
        E,
        "the check itself broke (a kube-reach bug)",
        "Please report it with the evidence; the other checks are unaffected.",
        "The check panicked or failed inside kube-reach.",
    ),
];

/// Where each kind of target takes its CA from (spec §1): what a TLS fix must name. A legacy
/// `KUBE_URL` target has no kubeconfig to edit, an in-cluster one trusts what the kubelet
/// mounted, GitLab's agent kubeconfig carries no CA, and the GitLab server is trusted through
/// the system store plus the runner's CA file.
pub fn ca_setting(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Direct => "the kubeconfig's `certificate-authority-data`",
        TargetKind::LegacyCertificate => {
            "`KUBE_CA_PEM` (the *CA Certificate* of the cluster in GitLab's certificate-based cluster settings, which GitLab passes to the job as `KUBE_CA_PEM` / `KUBE_CA_PEM_FILE`)"
        }
        TargetKind::InCluster => {
            "the pod's service-account `ca.crt` (`/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`, mounted from the namespace's `kube-root-ca.crt` ConfigMap)"
        }
        TargetKind::GitlabAgent => {
            "the job's trust store (`SSL_CERT_FILE`: GitLab's agent kubeconfig carries no CA)"
        }
        TargetKind::Gitlab => {
            "`CI_SERVER_TLS_CA_FILE` (the runner's `tls-ca-file` in config.toml) or the job image's CA bundle"
        }
    }
}

/// A fix that depends on the kind of target, for a `(check, reason)` whose row's fix names one
/// kind's settings (a kubeconfig field, a kubeadm command).
#[derive(Debug, Clone, Copy)]
pub struct KindFix {
    pub check: CheckId,
    pub reason: Reason,
    pub kinds: &'static [TargetKind],
    pub fix: &'static str,
}

const fn kind_fix(
    check: CheckId,
    reason: Reason,
    kinds: &'static [TargetKind],
    fix: &'static str,
) -> KindFix {
    KindFix {
        check,
        reason,
        kinds,
        fix,
    }
}

use TargetKind::{
    Gitlab as GITLAB, GitlabAgent as AGENT, InCluster as POD, LegacyCertificate as LEGACY,
};

/// GitLab's agent kubeconfig has no CA of its own, whatever went wrong with trust.
pub const AGENT_TLS_FIX: &str = "GitLab's KUBECONFIG carries no CA for the agent server, so the job's own trust store must trust it: set the CI/CD variable `SSL_CERT_FILE` (type File) to the CA's PEM (kubectl reads it because the kubeconfig has no CA); when the agent server's certificate comes from the same CA as GitLab's, `export SSL_CERT_FILE=\"$CI_SERVER_TLS_CA_FILE\"` in the job is enough; or add `certificate-authority-data` to the `gitlab` cluster: `kubectl config set-cluster gitlab --certificate-authority=<ca.pem> --embed-certs`.";
const LEGACY_CA_FIX: &str = "Give the job this cluster's CA: set the cluster's *CA Certificate* in GitLab's certificate-based cluster settings (Operate > Kubernetes clusters), which GitLab passes as `KUBE_CA_PEM`, or set the CI/CD variable `KUBE_CA_PEM` (or a File variable `KUBE_CA_PEM_FILE`) to the CA's PEM.";
const POD_CA_FIX: &str = "The pod trusts the CA mounted with its service account (`/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`, from the `kube-root-ca.crt` ConfigMap), which is always the cluster's own: when it does not verify, something else answers the service address (a TLS-inspecting proxy: add `KUBERNETES_SERVICE_HOST` to `NO_PROXY`), or the mounted CA is stale after a CA rotation (restart the runner's pods).";
const GITLAB_CA_FIX: &str = "Make the job trust GitLab's CA: set `tls-ca-file` in the runner's config.toml (the runner then passes it as `CI_SERVER_TLS_CA_FILE`), or add the CA to the job image's CA bundle (`update-ca-certificates`).";
const ALL_CA_KINDS: &[TargetKind] = &[AGENT, LEGACY, POD, GITLAB];

/// The per-kind fixes. A row not listed here has one fix for every kind.
pub const KIND_FIXES: &[KindFix] = &[
    kind_fix(C::TlsTrust, R::UnknownAuthority, &[AGENT], AGENT_TLS_FIX),
    kind_fix(C::TlsTrust, R::UnknownAuthority, &[LEGACY], LEGACY_CA_FIX),
    kind_fix(C::TlsTrust, R::UnknownAuthority, &[POD], POD_CA_FIX),
    kind_fix(C::TlsTrust, R::UnknownAuthority, &[GITLAB], GITLAB_CA_FIX),
    kind_fix(C::TlsTrust, R::CaMismatch, &[AGENT], AGENT_TLS_FIX),
    kind_fix(
        C::TlsTrust,
        R::CaMismatch,
        &[LEGACY],
        "Replace the cluster's *CA Certificate* in GitLab's certificate-based cluster settings (or the `KUBE_CA_PEM` variable) with the CA of the cluster this server belongs to, or point `KUBE_URL` (the cluster's API URL in those settings) at the cluster whose CA you have.",
    ),
    kind_fix(C::TlsTrust, R::CaMismatch, &[POD], POD_CA_FIX),
    kind_fix(C::TlsTrust, R::CaMismatch, &[GITLAB], GITLAB_CA_FIX),
    kind_fix(C::TlsTrust, R::SelfSigned, &[AGENT], AGENT_TLS_FIX),
    kind_fix(C::TlsTrust, R::SelfSigned, &[LEGACY], LEGACY_CA_FIX),
    kind_fix(C::TlsTrust, R::SelfSigned, &[POD], POD_CA_FIX),
    kind_fix(C::TlsTrust, R::SelfSigned, &[GITLAB], GITLAB_CA_FIX),
    kind_fix(
        C::TlsTrust,
        R::Intercepted,
        ALL_CA_KINDS,
        "Ask the proxy's administrators to exempt this host from TLS inspection, or bypass the proxy for it (`NO_PROXY`).",
    ),
    kind_fix(
        C::TlsTrust,
        R::IssuerExpired,
        ALL_CA_KINDS,
        "Renew the intermediate (or root) named in the evidence and send the new one with the leaf; if the trusted CA itself expired, replace it where this target takes it from (see the evidence's trust anchors).",
    ),
    kind_fix(
        C::TlsTrust,
        R::WeakKey,
        &[GITLAB],
        "Re-issue GitLab's certificate with an RSA key of 2048 bits or more, or ECDSA P-256 (Linux package: replace the files `nginx['ssl_certificate']` and `nginx['ssl_certificate_key']` name, then `gitlab-ctl hup nginx`, or let `letsencrypt['enable']` issue one; Helm chart: the ingress's TLS secret; openssl: `-newkey rsa:2048`). Until then check GitLab with `curl -v \"$CI_SERVER_URL\"` from the job.",
    ),
    kind_fix(
        C::TlsTrust,
        R::WeakKey,
        &[AGENT],
        "Re-issue the agent server's certificate with an RSA key of 2048 bits or more, or ECDSA P-256 (on GitLab's Linux package it is GitLab's own: the files `nginx['ssl_certificate']` and `nginx['ssl_certificate_key']` name; with a separate KAS ingress, its TLS secret).",
    ),
    kind_fix(
        C::TlsHostname,
        R::Mismatch,
        &[LEGACY, POD, GITLAB],
        "Use a host name the certificate lists (evidence) in the server URL, or reissue the certificate with this name among its subjectAltNames.",
    ),
    kind_fix(
        C::TlsHostname,
        R::IpNotInSan,
        &[LEGACY, POD, GITLAB],
        "Use a host name the certificate lists in the server URL, or reissue the certificate with this IP among its subjectAltNames.",
    ),
    kind_fix(
        C::TlsValidity,
        R::Expired,
        &[GITLAB],
        "Renew GitLab's certificate (Linux package: `letsencrypt['enable']` renews automatically, or replace the files `nginx['ssl_certificate']` names and `gitlab-ctl hup nginx`; Helm chart: the TLS secret of the ingress).",
    ),
    kind_fix(
        C::TlsValidity,
        R::Expired,
        &[AGENT],
        "Renew the agent server's certificate (on GitLab's Linux package it is GitLab's own: `letsencrypt['enable']`, or the files `nginx['ssl_certificate']` names; with a separate KAS ingress, its TLS secret).",
    ),
];

/// The fix of `(check, reason)` for a target of `kind`: its own variant, else the row's.
pub fn fix_for(check: CheckId, reason: Reason, kind: TargetKind) -> &'static str {
    KIND_FIXES
        .iter()
        .find(|k| k.check == check && k.reason == reason && k.kinds.contains(&kind))
        .map_or_else(|| entry(check, reason).fix, |k| k.fix)
}

/// The entry for `(check, reason)`, falling back to the check-independent row, then to a
/// generic error row: a missing row is a kube-reach bug, never a reason to panic.
pub fn entry(check: CheckId, reason: Reason) -> Entry {
    CATALOGUE
        .iter()
        .find(|e| e.check == Some(check) && e.reason == reason)
        .or_else(|| {
            CATALOGUE
                .iter()
                .find(|e| e.check.is_none() && e.reason == reason)
        })
        .copied()
        .unwrap_or_else(|| unclassified(check, reason))
}

/// The row of a pair the catalogue lacks. In the crate's unit tests it fails the test that
/// built the finding: the static reader in `house.rs` cannot follow a reason or a check that
/// comes from a match or a parameter, and this catches every pair any unit test produces.
fn unclassified(check: CheckId, reason: Reason) -> Entry {
    #[cfg(test)]
    panic!(
        "({}, {}) has no catalogue row: it would read \"unclassified finding\"",
        check.as_str(),
        reason.as_str()
    );
    #[cfg(not(test))]
    Entry {
        check: Some(check),
        reason,
        status: Status::Error,
        summary: "unclassified finding",
        fix: "",
        why: "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_kebab_case_and_unique() {
        let mut seen = HashSet::new();
        for reason in Reason::ALL {
            let code = reason.as_str();
            // Kebab case: lowercase words, digits allowed inside a word (spec: `base64-encoded`).
            assert!(
                code.starts_with(|c: char| c.is_ascii_lowercase())
                    && code
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{code}"
            );
            assert!(seen.insert(code), "duplicate reason {code}");
        }
        let mut ids = HashSet::new();
        for id in CheckId::ALL {
            assert!(ids.insert(id.as_str()), "duplicate id");
            assert!(id.as_str().contains('.'));
        }
    }

    #[test]
    fn every_row_is_unique_and_non_pass_rows_say_what_to_do() {
        let mut seen = HashSet::new();
        for e in CATALOGUE {
            assert!(
                seen.insert((e.check, e.reason)),
                "duplicate row {:?} {:?}",
                e.check,
                e.reason
            );
            if matches!(e.status, Status::Fail | Status::Warn) {
                assert!(
                    !e.fix.is_empty() && !e.why.is_empty(),
                    "{:?} {:?} lacks fix/why",
                    e.check,
                    e.reason
                );
            }
            assert!(
                !e.summary.ends_with('.'),
                "summary ends with a period: {}",
                e.summary
            );
        }
    }

    /// A kind's variant replaces a row's fix: the row must exist, and the variant differ.
    #[test]
    fn every_kind_fix_varies_an_existing_row() {
        for k in KIND_FIXES {
            let row = entry(k.check, k.reason);
            assert_eq!(row.check, Some(k.check), "{:?} {:?}", k.check, k.reason);
            assert!(!k.kinds.is_empty() && !k.fix.is_empty() && k.fix != row.fix);
            assert!(!row.fix.is_empty(), "{:?} {:?}", k.check, k.reason);
            // Only these checks build their findings for a kind (`CheckResult::finding_for`
            // in checks/tls.rs): a variant of another check's row would never be shown.
            assert!(
                matches!(k.check, C::TlsTrust | C::TlsHostname | C::TlsValidity),
                "{:?} {:?}",
                k.check,
                k.reason
            );
        }
    }

    /// Texts that named things that do not exist, or contradicted each other.
    #[test]
    fn fix_texts_name_what_exists() {
        let fix = |c, r| entry(c, r).fix;
        assert!(
            CATALOGUE
                .iter()
                .all(|e| !e.fix.contains("KUBECONFIG_CONTENT"))
        );
        // Every MTU advice names the runner's key, `network_mtu` in `[runners.docker]`.
        for (check, reason) in [
            (C::TlsHandshake, R::MtuBlackhole),
            (C::TlsHandshake, R::Stalled),
            (C::HttpVersion, R::Stalled),
        ] {
            assert!(
                fix(check, reason).contains("`network_mtu`"),
                "{check:?} {reason:?}"
            );
        }
        let no_proxy = entry(C::ConfigProxy, R::NoProxyIgnored);
        assert!(no_proxy.fix.contains("`*.example.com`") && no_proxy.why.contains("leading `*.`"));
        assert!(
            entry(C::TlsHandshake, R::Stalled)
                .summary
                .starts_with("no longer emitted")
        );
        let dns = fix(C::NetpolEgress, R::BlocksDns);
        assert!(
            dns.contains("YAML below") && !dns.contains("above"),
            "{dns}"
        );
    }

    /// Pins the public contract: renaming a shipped code fails here.
    #[test]
    fn codes_are_stable() {
        let ids: Vec<&str> = CheckId::ALL.iter().map(|c| c.as_str()).collect();
        for must in [
            "config.kubeconfig",
            "config.server",
            "config.credentials",
            "config.tls",
            "config.proxy",
            "dns.resolve",
            "tcp.connect",
            "proxy.connect",
            "proxy.tunnel",
            "tls.handshake",
            "tls.trust",
            "tls.hostname",
            "tls.validity",
            "http.version",
            "http.health",
            "auth.whoami",
            "rbac.can-i",
            "rbac.rules",
            "netpol.egress",
            "gitlab.server",
            "gitlab.allowed-agents",
            "gitlab.agent-config",
            "gitlab.kas",
            "runner.clock",
            "runner.environment",
            "runner.tools",
        ] {
            assert!(ids.contains(&must), "check id {must} vanished");
        }
        let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        for must in [
            "not-set",
            "unreadable",
            "invalid-yaml",
            "no-contexts",
            "context-not-found",
            "no-current-context",
            "missing",
            "invalid-url",
            "insecure-scheme",
            "loopback",
            "link-local",
            "private-address",
            "none",
            "token-file-unreadable",
            "token-expired",
            "token-expiring",
            "client-cert-invalid",
            "client-key-mismatch",
            "client-cert-expired",
            "client-cert-not-yet-valid",
            "client-cert-expiring",
            "exec-plugin-missing",
            "exec-plugin-failed",
            "auth-provider-removed",
            "basic-auth-removed",
            "insecure-skip-verify",
            "ca-unreadable",
            "ca-invalid",
            "ca-expired",
            "invalid-proxy-url",
            "nxdomain",
            "servfail",
            "refused",
            "timeout",
            "no-records",
            "no-nameservers",
            "host-unreachable",
            "network-unreachable",
            "reset",
            "forbidden",
            "auth-required",
            "upstream-failed",
            "not-a-proxy",
            "unexpected-status",
            "not-tls",
            "alert",
            "no-common-version",
            "closed",
            "client-cert-required",
            "unknown-authority",
            "ca-mismatch",
            "intercepted",
            "missing-intermediate",
            "self-signed",
            "bad-signature",
            "not-a-ca",
            "issuer-expired",
            "weak-signature",
            "unsupported-algorithm",
            "wrong-purpose",
            "weak-key",
            "mismatch",
            "ip-not-in-san",
            "cn-only",
            "expired",
            "not-yet-valid",
            "expiring-soon",
            "not-kubernetes",
            "proxy-error",
            "redirect",
            "server-error",
            "stalled",
            "unauthorized-anonymous",
            "not-ready",
            "backend-not-tls",
            "unauthorized",
            "anonymous",
            "unsupported",
            "agent-unauthorized",
            "agent-forbidden",
            "agent-not-connected",
            "denied",
            "unknown",
            "incomplete",
            "blocks-apiserver",
            "blocks-dns",
            "in-cluster-fallback",
            "not-in-cluster",
            "not-readable",
            "job-token-rejected",
            "no-agents",
            "agent-not-allowed",
            "unavailable",
            "project-not-listed",
            "other-top-level-group",
            "environment-excludes-job",
            "not-agent-server",
            "unreachable",
            "agent-server-error",
            "wrong-path",
            "protected-branches-only",
            "misnamed-file",
            "skew",
            "deadline",
            "internal",
        ] {
            assert!(codes.contains(&must), "reason {must} vanished");
        }
    }
}

/// Texts a check puts in place of its row's generic ones when the situation makes those wrong
/// (or says why a check does not apply). They live here with the rows, not in the checks.
pub mod situational {
    /// `auth.whoami credentials-withheld` for an `http://` URL: not a TLS matter, so the
    /// row's fix (configure the CA) would mislead.
    pub const CREDENTIALS_WITHHELD_HTTP_SUMMARY: &str =
        "credentials withheld: the server URL is http://";
    pub const CREDENTIALS_WITHHELD_HTTP_FIX: &str = "Use the server's https:// URL (see config.server): like kubectl, kube-reach sends no credentials over http://.";
    /// `auth.whoami unauthorized` for the anonymous request over `http://`: the listener wants
    /// the credentials that are never sent there, so the row's "renew the token" would mislead.
    pub const ANONYMOUS_OVER_HTTP_UNAUTHORIZED_SUMMARY: &str = "the server refused the anonymous request (401): the kubeconfig's credentials are withheld over http://";
    /// `gitlab.allowed-agents` without a job token.
    pub const ALLOWED_AGENTS_NO_JOB_TOKEN: &str =
        "CI_JOB_TOKEN is not set: GitLab's allowed agents cannot be asked";
    /// `gitlab.allowed-agents` when `CI_API_V4_URL` gives no path to ask.
    pub const ALLOWED_AGENTS_NO_PATH: &str =
        "the allowed-agents URL has no path: GitLab was not asked";
}

/// The catalogue as the Markdown table in the README (between the `catalogue` markers). The
/// `readme_lists_the_catalogue` test keeps the two equal; `KUBE_REACH_WRITE_README=1 cargo test
/// readme` rewrites the README's copy.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| check | reason | status | meaning | fix |\n|---|---|---|---|---|\n");
    for e in CATALOGUE {
        let check = e.check.map(|c| c.as_str()).unwrap_or("(any)");
        let status = match e.status {
            Status::Pass => "info",
            other => other.as_str(),
        };
        let mut fix = e.fix.replace('|', "\\|").replace('\n', " ");
        for k in KIND_FIXES
            .iter()
            .filter(|k| Some(k.check) == e.check && k.reason == e.reason)
        {
            let kinds: Vec<String> = k
                .kinds
                .iter()
                .map(|t| format!("`{}`", t.as_str()))
                .collect();
            fix.push_str(&format!(
                "<br>**{}:** {}",
                kinds.join(", "),
                k.fix.replace('|', "\\|")
            ));
        }
        out.push_str(&format!(
            "| `{check}` | `{}` | {status} | {} | {fix} |\n",
            e.reason.as_str(),
            e.summary.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod readme {
    const BEGIN: &str = "<!-- catalogue:begin -->\n";
    const END: &str = "<!-- catalogue:end -->";

    #[test]
    fn readme_lists_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let (head, rest) = readme.split_once(BEGIN).expect("catalogue:begin marker");
        let (_, tail) = rest.split_once(END).expect("catalogue:end marker");
        let wanted = format!("{head}{BEGIN}{}{END}{tail}", super::markdown_table());
        if std::env::var_os("KUBE_REACH_WRITE_README").is_some() {
            std::fs::write(path, &wanted).expect("write README.md");
        }
        assert!(
            readme == wanted,
            "README's check catalogue is stale: run KUBE_REACH_WRITE_README=1 cargo test readme"
        );
    }
}
