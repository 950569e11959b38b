//! The one in-process entry to a whole run, for the integration tests (the binary is the other
//! way in): flags as typed, the surroundings as an [`Env`], and back the texts the binary would
//! write (job log, JSON report, JUnit). The tests read reports only from these texts, through
//! their own typed reader of the JSON schema, so no test depends on the model's fields.
//!
//! Why not always the binary: tests that start their servers in-process would pay a process
//! per case, and an `Env` lets a test point the service-account folder at one of its own.
//! Planning goes through [`crate::guard::plan`] as in `main`, so a planning panic or deadline
//! still gives a report here too.

use crate::cli::{Cli, FailOn};
use crate::env::Env;
use crate::guard::Planned;
use crate::report::junit::JunitOptions;
use crate::report::{ConsoleOptions, console, json, junit};

/// What one run wrote: the job log (no colour; GitLab sections when `GITLAB_CI` is set, as the
/// binary decides), the JSON report (`--json`) and the JUnit report (`--junit`).
#[derive(Debug, Clone)]
pub struct Outputs {
    pub job_log: String,
    pub json: String,
    pub junit: String,
}

/// Runs kube-reach with `argv` (the program name first) in `env`; an invocation the binary
/// would refuse with exit status 2 is `Err` with the message it would say.
pub async fn run(argv: &[String], env: &Env) -> Result<Outputs, String> {
    let cli = <Cli as clap::Parser>::try_parse_from(argv).map_err(|e| e.to_string())?;
    let args = cli.run;
    let report = match crate::guard::plan(&args, env, crate::plan::RunOptions::Real) {
        Planned::Ready(plan) => crate::engine::run(*plan, env).await,
        Planned::Failed { report, .. } => *report,
        Planned::Usage(e) => return Err(e.to_string()),
    };
    let var = |name: &str| env.var(name).map(str::to_string);
    let sections = console::in_gitlab_ci(&var);
    let mut job_log = Vec::new();
    console::write(&report, &ConsoleOptions::new(false, sections), &mut job_log)
        .map_err(|e| e.to_string())?;
    let mut json_text = Vec::new();
    json::write(&report, &mut json_text).map_err(|e| e.to_string())?;
    let options = JunitOptions::for_file(
        args.output.fail_on == FailOn::Warn,
        args.output.junit.as_deref(),
    );
    Ok(Outputs {
        job_log: String::from_utf8_lossy(&job_log).into_owned(),
        json: String::from_utf8_lossy(&json_text).into_owned(),
        junit: junit::to_xml(&report, options).map_err(|e| e.to_string())?,
    })
}
