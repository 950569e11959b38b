//! The vocabulary every other module speaks: check ids (each with its layer), reason codes,
//! layers, statuses, verdicts and target kinds. It depends on nothing in the crate, so the
//! catalogue (which gives each `(check, reason)` its texts) and the model (which carries
//! results) both build on it without depending on each other.
//!
//! Ids and codes are a public contract (spec §2): add freely, never rename. The catalogue's
//! `codes_are_stable` test pins the shipped strings.

/// An enum of words with one string each, in declaration order.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            /// The variant's name in the source (`AuthWhoami`), for tests that read the source.
            #[cfg(test)]
            #[allow(dead_code)] // read for check ids and reasons only
            pub(crate) fn variant_name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
        }
    };
}

/// The check ids, each declared once with its layer. The id's text must begin with its
/// layer's name and a dot; a mismatch does not compile, so no id can have an unknown layer.
macro_rules! check_ids {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal in $layer:ident),* $(,)? }) => {
        string_enum! { $(#[$meta])* $name { $($variant = $text),* } }
        impl $name {
            pub const fn layer(self) -> Layer {
                match self { $($name::$variant => Layer::$layer),* }
            }
        }
        const _: () = {
            $(assert!(
                starts_with_layer($text, Layer::$layer.as_str()),
                concat!("check id `", $text, "` does not begin with its layer's name")
            );)*
        };
    };
}

/// Whether `id` is `<layer>.<something>`; a `const fn` so [`check_ids!`] can assert it.
const fn starts_with_layer(id: &str, layer: &str) -> bool {
    let (id, layer) = (id.as_bytes(), layer.as_bytes());
    if id.len() <= layer.len() + 1 || id[layer.len()] != b'.' {
        return false;
    }
    let mut i = 0;
    while i < layer.len() {
        if id[i] != layer[i] {
            return false;
        }
        i += 1;
    }
    true
}

check_ids! {
    /// A check id: `<layer>.<name>`.
    CheckId {
        ConfigKubeconfig = "config.kubeconfig" in Config,
        ConfigServer = "config.server" in Config,
        ConfigCredentials = "config.credentials" in Config,
        ConfigTls = "config.tls" in Config,
        ConfigProxy = "config.proxy" in Config,
        RunnerEnvironment = "runner.environment" in Runner,
        RunnerClock = "runner.clock" in Runner,
        RunnerTools = "runner.tools" in Runner,
        DnsResolve = "dns.resolve" in Dns,
        TcpConnect = "tcp.connect" in Tcp,
        ProxyConnect = "proxy.connect" in Proxy,
        ProxyTunnel = "proxy.tunnel" in Proxy,
        TlsHandshake = "tls.handshake" in Tls,
        TlsTrust = "tls.trust" in Tls,
        TlsHostname = "tls.hostname" in Tls,
        TlsValidity = "tls.validity" in Tls,
        HttpVersion = "http.version" in Http,
        HttpHealth = "http.health" in Http,
        AuthWhoami = "auth.whoami" in Auth,
        RbacCanI = "rbac.can-i" in Rbac,
        RbacRules = "rbac.rules" in Rbac,
        NetpolEgress = "netpol.egress" in Netpol,
        GitlabServer = "gitlab.server" in Gitlab,
        GitlabAllowedAgents = "gitlab.allowed-agents" in Gitlab,
        GitlabAgentConfig = "gitlab.agent-config" in Gitlab,
        GitlabKas = "gitlab.kas" in Gitlab,
    }
}

string_enum! {
    /// A reason code. One code may serve several checks (`timeout`, `refused`); the pair
    /// `(check, reason)` selects the catalogue entry.
    Reason {
        // config.kubeconfig
        NotSet = "not-set",
        Unreadable = "unreadable",
        InvalidYaml = "invalid-yaml",
        NoContexts = "no-contexts",
        ContextNotFound = "context-not-found",
        NoCurrentContext = "no-current-context",
        ContentNotPath = "content-not-path",
        Base64Encoded = "base64-encoded",
        LegacyContextSelected = "legacy-context-selected",
        KubeContextNotCurrent = "kube-context-not-current",
        InClusterFallback = "in-cluster-fallback",
        NotInCluster = "not-in-cluster",
        NamesNoFile = "names-no-file",
        TooManyTargets = "too-many-targets",
        TooManyRequirements = "too-many-requirements",
        // config.server
        Missing = "missing",
        ClusterNotFound = "cluster-not-found",
        InvalidUrl = "invalid-url",
        InsecureScheme = "insecure-scheme",
        PlainHttp = "plain-http",
        Loopback = "loopback",
        LinkLocal = "link-local",
        PrivateAddress = "private-address",
        // config.credentials
        None = "none",
        UserNotFound = "user-not-found",
        TokenFileUnreadable = "token-file-unreadable",
        TokenInvalid = "token-invalid",
        TokenExpired = "token-expired",
        TokenExpiring = "token-expiring",
        ClientCertInvalid = "client-cert-invalid",
        ClientKeyMismatch = "client-key-mismatch",
        ClientCertExpired = "client-cert-expired",
        ClientCertNotYetValid = "client-cert-not-yet-valid",
        ClientCertExpiring = "client-cert-expiring",
        ExecPluginMissing = "exec-plugin-missing",
        ExecPluginFailed = "exec-plugin-failed",
        ExecPluginInteractive = "exec-plugin-interactive",
        ExecApiversionUnsupported = "exec-apiversion-unsupported",
        ExecApiversionMismatch = "exec-apiversion-mismatch",
        ExecInteractiveModeMissing = "exec-interactive-mode-missing",
        AuthProviderRemoved = "auth-provider-removed",
        BasicAuthRemoved = "basic-auth-removed",
        // config.tls
        InsecureSkipVerify = "insecure-skip-verify",
        CaUnreadable = "ca-unreadable",
        CaInvalid = "ca-invalid",
        CaExpired = "ca-expired",
        InvalidServerName = "invalid-server-name",
        // config.proxy
        InvalidProxyUrl = "invalid-proxy-url",
        NoProxyIgnored = "no-proxy-ignored",
        // dns
        Nxdomain = "nxdomain",
        Servfail = "servfail",
        Refused = "refused",
        Timeout = "timeout",
        NoRecords = "no-records",
        NoNameservers = "no-nameservers",
        ResolverError = "resolver-error",
        PrivateAnswer = "private-answer",
        SearchExpanded = "search-expanded",
        // tcp / proxy.connect
        HostUnreachable = "host-unreachable",
        NetworkUnreachable = "network-unreachable",
        Reset = "reset",
        ConnectFailed = "connect-failed",
        // proxy.tunnel
        Forbidden = "forbidden",
        AuthRequired = "auth-required",
        UpstreamFailed = "upstream-failed",
        NotAProxy = "not-a-proxy",
        UnexpectedStatus = "unexpected-status",
        // tls.handshake
        NotTls = "not-tls",
        Alert = "alert",
        NoCommonVersion = "no-common-version",
        Closed = "closed",
        ClientCertRequired = "client-cert-required",
        HandshakeFailed = "handshake-failed",
        OversizedCertificate = "oversized-certificate",
        MtuBlackhole = "mtu-blackhole",
        // tls.trust
        UnknownAuthority = "unknown-authority",
        CaMismatch = "ca-mismatch",
        Intercepted = "intercepted",
        MissingIntermediate = "missing-intermediate",
        SelfSigned = "self-signed",
        BadSignature = "bad-signature",
        NotACa = "not-a-ca",
        IssuerExpired = "issuer-expired",
        WeakSignature = "weak-signature",
        UnsupportedAlgorithm = "unsupported-algorithm",
        WrongPurpose = "wrong-purpose",
        ChainRejected = "chain-rejected",
        WeakKey = "weak-key",
        // tls.hostname
        Mismatch = "mismatch",
        IpNotInSan = "ip-not-in-san",
        CnOnly = "cn-only",
        // tls.validity
        Expired = "expired",
        NotYetValid = "not-yet-valid",
        ExpiringSoon = "expiring-soon",
        // http
        NotKubernetes = "not-kubernetes",
        ProxyError = "proxy-error",
        Redirect = "redirect",
        ServerError = "server-error",
        Stalled = "stalled",
        UnauthorizedAnonymous = "unauthorized-anonymous",
        RequestFailed = "request-failed",
        NotReady = "not-ready",
        BackendNotTls = "backend-not-tls",
        // auth
        Unauthorized = "unauthorized",
        Anonymous = "anonymous",
        Unsupported = "unsupported",
        CredentialsWithheld = "credentials-withheld",
        ClientCertNotRequested = "client-cert-not-requested",
        AgentUnauthorized = "agent-unauthorized",
        AgentForbidden = "agent-forbidden",
        AgentNotConnected = "agent-not-connected",
        AgentServerError = "agent-server-error",
        // rbac / netpol
        Denied = "denied",
        ImpersonationDenied = "impersonation-denied",
        Unknown = "unknown",
        Incomplete = "incomplete",
        BlocksApiserver = "blocks-apiserver",
        BlocksDns = "blocks-dns",
        NotReadable = "not-readable",
        // gitlab
        JobTokenRejected = "job-token-rejected",
        NoAgents = "no-agents",
        AgentNotAllowed = "agent-not-allowed",
        KubeContextAgentNotAllowed = "kube-context-agent-not-allowed",
        Unavailable = "unavailable",
        ProjectNotListed = "project-not-listed",
        OtherTopLevelGroup = "other-top-level-group",
        EnvironmentExcludesJob = "environment-excludes-job",
        NotAgentServer = "not-agent-server",
        Unreachable = "unreachable",
        WrongPath = "wrong-path",
        ProtectedBranchesOnly = "protected-branches-only",
        MisnamedFile = "misnamed-file",
        // runner
        Skew = "skew",
        KnownBadVersion = "known-bad-version",
        VersionSkew = "version-skew",
        ToolCannotRun = "tool-cannot-run",
        // the engine's own
        Blocked = "blocked",
        NotApplicable = "not-applicable",
        Deadline = "deadline",
        Internal = "internal",
    }
}

string_enum! {
    /// How a target was found, which decides what extra checks and fixes apply to it.
    TargetKind {
        Direct = "direct",
        GitlabAgent = "gitlab-agent",
        LegacyCertificate = "legacy-certificate",
        InCluster = "in-cluster",
        Gitlab = "gitlab",
    }
}

string_enum! {
    /// The layers in root-cause order (spec §2): the first `fail` or `error` in this order is the
    /// root cause. GitLab checks sit just before `auth` because, when they find something, they
    /// explain the agent's auth failure better than the 401 itself does.
    Layer {
        Config = "config",
        Runner = "runner",
        Dns = "dns",
        /// `tcp` and `proxy` share a rank: a target goes one way or the other.
        Tcp = "tcp",
        Proxy = "proxy",
        Tls = "tls",
        Http = "http",
        Gitlab = "gitlab",
        Auth = "auth",
        Rbac = "rbac",
        Netpol = "netpol",
    }
}

impl Layer {
    /// Root-cause rank; `tcp` and `proxy` are equal.
    pub fn rank(self) -> u8 {
        match self {
            Layer::Config => 0,
            Layer::Runner => 1,
            Layer::Dns => 2,
            Layer::Tcp | Layer::Proxy => 3,
            Layer::Tls => 4,
            Layer::Http => 5,
            Layer::Gitlab => 6,
            Layer::Auth => 7,
            Layer::Rbac => 8,
            Layer::Netpol => 9,
        }
    }
}

string_enum! {
    /// What one check found; ordered from best to worst.
    Status {
        Pass = "pass",
        Skip = "skip",
        Warn = "warn",
        Fail = "fail",
        Error = "error",
    }
}

impl Status {
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }
}

string_enum! {
    /// The verdict of a target or of the run.
    Verdict {
        Pass = "pass",
        Warn = "warn",
        Fail = "fail",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_names_its_layer() {
        for id in CheckId::ALL {
            let (prefix, name) = id.as_str().split_once('.').expect("<layer>.<name>");
            assert_eq!(prefix, id.layer().as_str(), "{}", id.as_str());
            assert!(!name.is_empty());
        }
        assert!(!starts_with_layer("gitlab", "gitlab"));
        assert!(!starts_with_layer("gitlabx.kas", "gitlab"));
        assert!(starts_with_layer("gitlab.kas", "gitlab"));
    }
}
