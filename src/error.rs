//! Errors of the tool itself. Findings about the cluster are never errors: they are
//! `CheckResult`s. These types exist only for "the tool was invoked wrongly" (exit 2) and
//! "the tool broke" (exit 3).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("cannot read --require-file {path}: {source}")]
    RequireFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid --require line {line:?}: {problem} (expected \"VERB[,VERB] RESOURCE[.GROUP] [-n NAMESPACE]\")"
    )]
    InvalidRequirement { line: String, problem: String },
    #[error("--timeout and --deadline must be positive numbers of seconds, got {0}")]
    InvalidDuration(String),
    #[error("--server {0:?} is not a URL: {1}")]
    InvalidServer(String, String),
}

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("demo failed: {0}")]
    Demo(String),
}
