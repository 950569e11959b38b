//! Command-line syntax only (ripgrep's "low args"): what the user typed, validated for form.
//! Reading files and the environment happens in `env` and `plan`, never here.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kube-reach",
    version,
    about = "Tells a CI job exactly which layer between it and its Kubernetes API server is broken, and how to fix it",
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an embedded loopback cluster (a healthy API server and broken ones) and diagnose it.
    Demo {
        /// Which demo cluster to start.
        #[arg(value_enum, default_value_t = DemoKind::All)]
        kind: DemoKind,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Serve the embedded fake API server (for the network-namespace tests).
    #[command(hide = true)]
    DemoServer(DemoServerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoKind {
    All,
    Healthy,
}

#[derive(Debug, clap::Args)]
pub struct DemoServerArgs {
    #[arg(long, required = true)]
    pub listen: Vec<std::net::SocketAddr>,
    #[arg(long)]
    pub cert_chain: Option<PathBuf>,
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[arg(long)]
    pub plain_http: bool,
    #[arg(long, default_value_t = 0)]
    pub version_padding: usize,
    #[arg(long, default_value_t = 120)]
    pub max_lifetime: u64,
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// JSON naming a service-account token and the objects an in-cluster world serves.
    #[arg(long)]
    pub in_cluster_fixture: Option<PathBuf>,
    /// Speak HTTP/1.1 only (ALPN offers no `h2`), like many load balancers.
    #[arg(long)]
    pub http1_only: bool,
    /// Send each response body this many milliseconds after its head (a slow backend).
    #[arg(long, default_value_t = 0)]
    pub body_delay_ms: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Kubeconfig file(s), `:`-separated like KUBECONFIG (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<String>,

    /// Context to check (repeatable; default: $KUBE_CONTEXT, then current-context, then all).
    #[arg(long, value_name = "NAME")]
    pub context: Vec<String>,

    /// Check this API server URL directly instead of a kubeconfig.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// Bearer token file for --server.
    #[arg(long, value_name = "PATH", requires = "server")]
    pub token_file: Option<PathBuf>,

    /// CA certificate file (PEM) for --server.
    #[arg(long, value_name = "PATH", requires = "server")]
    pub ca_file: Option<PathBuf>,

    /// Name to verify the server certificate against, for --server.
    #[arg(long, value_name = "NAME", requires = "server")]
    pub tls_server_name: Option<String>,

    /// Also check the runner pod's own service account (Kubernetes executor).
    #[arg(long, conflicts_with = "no_in_cluster")]
    pub in_cluster: bool,

    /// Never check the in-cluster service account.
    #[arg(long)]
    pub no_in_cluster: bool,

    /// What the pipeline needs, e.g. "create deployments.apps -n prod" (repeatable; at most
    /// 100 requirements and 100 targets are checked per run, the rest reported as left out).
    #[arg(long, value_name = "LINE")]
    pub require: Vec<String>,

    /// File with one --require line per line (`#` comments allowed).
    #[arg(long, value_name = "PATH")]
    pub require_file: Option<PathBuf>,

    /// Namespace for requirements without `-n` when the context names none (default: default).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,

    /// Seconds allowed for each network operation [default: 5; requests through the GitLab
    /// agent server get 25 unless --timeout is given, since it waits 20 s for its agent].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,

    /// Seconds allowed for the whole run.
    #[arg(long, value_name = "SECS", default_value = "60")]
    pub deadline: f64,

    /// Warn when a certificate expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub expiry_warn_days: u32,

    /// resolv.conf to resolve with (default: the job's own).
    #[arg(long, value_name = "PATH", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,

    /// hosts file consulted before DNS (default: the job's own).
    #[arg(long, value_name = "PATH", default_value = "/etc/hosts")]
    pub hosts_file: PathBuf,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Write a JUnit XML report here (one test case per check).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,

    /// Write the JSON report here (`-` for stdout; the summary then goes to stderr).
    #[arg(long, value_name = "PATH", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub json: Option<String>,

    /// Colour in the job-log summary.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,

    /// Exit 1 on failures only (`fail`) or on warnings too (`warn`).
    #[arg(long, value_enum, default_value_t = FailOn::Fail)]
    pub fail_on: FailOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Fail,
    Warn,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` states the caps `plan` applies, with the same numbers.
    #[test]
    fn help_states_the_caps() {
        let help = super::Cli::command().render_long_help().to_string();
        let caps = format!(
            "at most {} requirements and {} targets",
            crate::plan::target::MAX_REQUIREMENTS,
            crate::plan::target::MAX_TARGETS
        );
        assert!(
            help.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&caps),
            "{help}"
        );
    }

    #[test]
    fn empty_report_paths_are_usage_errors_naming_the_flag() {
        for flag in ["--json", "--junit"] {
            let err = <super::Cli as clap::Parser>::try_parse_from(["kube-reach", flag, ""])
                .expect_err(flag);
            assert_eq!(err.exit_code(), 2, "{flag}");
            assert!(err.to_string().contains(flag), "{err}");
        }
    }
}
