//! One snapshot of what the run reads from its surroundings: variables, the clock, resolv.conf
//! and the hosts file. Captured once in `main`; tests build it by
//! hand, so nothing below reads `std::env` or these files itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The largest configuration file the tool reads (kubeconfig, resolv.conf, CA bundle…):
/// bounded so hostile input cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Where the kubelet mounts a pod's service account (client-go's `rest.InClusterConfig`).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[derive(Debug, Clone)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub now: SystemTime,
    pub resolv_conf_path: PathBuf,
    pub hosts_path: PathBuf,
    /// Where the pod's service account is mounted (`token`, `ca.crt`, `namespace`): the
    /// standard path in a real run; tests point it at a folder of their own.
    pub service_account_dir: PathBuf,
    /// The embedded demo: its loopback servers are the point, not a mistake to warn about, and
    /// nothing outside the machine is contacted (no GitLab server target, even in CI).
    pub demo: bool,
}

impl Env {
    /// Captures the real process environment.
    pub fn capture(resolv_conf_path: PathBuf, hosts_path: PathBuf) -> Env {
        Env {
            vars: std::env::vars().collect(),
            now: SystemTime::now(),
            resolv_conf_path,
            hosts_path,
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
            demo: false,
        }
    }

    /// A non-empty variable's value.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn in_gitlab_ci(&self) -> bool {
        self.var("GITLAB_CI").is_some()
    }

    pub fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }
}

/// Reads a file of at most [`MAX_FILE_BYTES`], naming the path in the error.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {} bytes",
            path.display(),
            MAX_FILE_BYTES
        ));
    }
    Ok(bytes)
}
