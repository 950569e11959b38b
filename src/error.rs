//! Errors of the tool itself. Findings about the cluster are never errors: they are
//! `CheckResult`s. This type exists only for "the tool was invoked wrongly" (exit 2); the
//! tool breaking (exit 3) is a runtime or report-writing failure, handled where it happens in `main`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("cannot read --require-file {path}: {source}")]
    RequireFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid --require line {line}: {problem} (expected \"VERB[,VERB] RESOURCE[.GROUP] [-n NAMESPACE]\")"
    )]
    /// `line` is already [`crate::secret::quoted`].
    InvalidRequirement { line: String, problem: String },
    /// A bad line of a `--require-file`: named by file and line number, never quoted (the flag
    /// may point at the wrong file, a token file say).
    #[error(
        "invalid line {line_number} of --require-file {path}: {problem} (expected \"VERB[,VERB] RESOURCE[.GROUP] [-n NAMESPACE]\")"
    )]
    InvalidRequirementInFile {
        path: PathBuf,
        line_number: usize,
        problem: String,
    },
    #[error("--timeout and --deadline must be positive numbers of seconds, got {0}")]
    InvalidDuration(String),
    #[error("invalid --namespace: {0}")]
    InvalidNamespace(String),
    #[error(
        "invalid --tls-server-name {0}: expected a DNS name (letters, digits, `-` and `.`) or an IP address"
    )]
    /// Already [`crate::secret::quoted`].
    InvalidTlsServerName(String),
}

/// An error with its whole `source` chain on one line ("a: b: c"): foreign errors (hyper,
/// serde-saphyr) keep the useful part (a YAML position, the I/O cause) in their sources.
pub fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
