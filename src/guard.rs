//! Planning under the engine's rules (spec §3: every run writes all requested reports, even
//! when a check panics or the deadline passes). A panic while planning, or planning that
//! outlives `--deadline`, becomes one run-wide `error` check (`internal` or `deadline`) in an
//! otherwise empty report, which `main` writes like any other.
//!
//! Owns: running `Plan::new` on its own thread under the deadline, catching its panic, the
//! process's panic hook (which prints where the panic happened, never a formatted payload that
//! could carry input data), and the report of a run whose planning failed. Must not: decide
//! exit statuses (`main` does) or print anything but the hook's one line.

use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::catalogue::{CheckId, Reason};
use crate::checks::runner;
use crate::cli::RunArgs;
use crate::env::Env;
use crate::error::UsageError;
use crate::model::{CheckResult, RunReport};
use crate::net::resolve::DnsSetup;
use crate::plan::{Plan, RunOptions};
use crate::secret::{ScrubbedReport, Scrubber};

/// The subject of the run-wide check that stands for failed planning.
pub const PLANNING_SUBJECT: &str = "planning";

/// The least time left to the engine after planning, so it still records its rows.
const MIN_ENGINE_TIME: Duration = Duration::from_millis(1);

/// Where the latest panic happened ("src/x.rs:12:5: message"), recorded by the hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// What planning came to.
pub enum Planned {
    Ready(Box<Plan>),
    /// The tool was invoked wrongly (exit 2).
    Usage(UsageError),
    /// Planning broke or ran out of time: the report to write. `broke` is a panic, the tool
    /// itself breaking (exit 3 once the reports are written); a deadline is a finding (exit 1).
    Failed {
        report: Box<ScrubbedReport>,
        broke: bool,
    },
}

/// Replaces the default panic hook, whose message can quote input (a token in an `expect`
/// text): prints the location and only a payload that is a literal of our own source.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = describe_panic(info);
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(what.clone());
        }
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "kube-reach: internal error (a kube-reach bug) at {what}"
        );
    }));
}

fn describe_panic(info: &PanicHookInfo<'_>) -> String {
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "an unknown place".into());
    // A `&'static str` payload is a literal from our code; a `String` was formatted at run
    // time and may hold input.
    match info.payload().downcast_ref::<&'static str>() {
        Some(message) => format!("{location}: {message}"),
        None => location,
    }
}

/// What plans: `Plan::new`, or a stand-in in tests.
type Planner = fn(&RunArgs, &Env, RunOptions) -> Result<Plan, UsageError>;

/// Plans on a thread of its own, under `--deadline`; the engine gets what is left of it.
pub fn plan(args: &RunArgs, env: &Env, options: RunOptions) -> Planned {
    plan_with(args, env, options, plan_or_failpoint)
}

/// `Plan::new`, except that debug builds (the test binaries' kube-reach) panic here when
/// `KUBE_REACH_FAILPOINT=plan-panic`, stall for 30 s with `plan-hang` and for 1 s with
/// `plan-slow`, so the end-to-end tests can prove that a planning panic or a planning stall
/// still writes the reports, and that the duration counts planning. Release builds have no such
/// variable.
fn plan_or_failpoint(args: &RunArgs, env: &Env, options: RunOptions) -> Result<Plan, UsageError> {
    #[cfg(debug_assertions)]
    match env.var("KUBE_REACH_FAILPOINT") {
        Some("plan-panic") => panic!("failpoint plan-panic"),
        Some("plan-hang") => std::thread::sleep(Duration::from_secs(30)),
        // Slow but within the deadline: the report's duration must count it.
        Some("plan-slow") => std::thread::sleep(Duration::from_secs(1)),
        _ => {}
    }
    Plan::with_options(args, env, options)
}

fn plan_with(args: &RunArgs, env: &Env, options: RunOptions, planner: Planner) -> Planned {
    let started = Instant::now();
    // Checked before the clock starts: `--deadline 0` would otherwise run out before
    // `Plan::new` could call it the usage error it is.
    let deadline = match crate::plan::seconds(args.deadline) {
        Ok(deadline) => deadline,
        Err(usage) => return Planned::Usage(usage),
    };
    let (tx, rx) = mpsc::channel();
    let (thread_args, thread_env) = (args.clone(), env.clone());
    let spawned = std::thread::Builder::new()
        .name("plan".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                planner(&thread_args, &thread_env, options)
            }));
            let _ = tx.send(outcome);
        });
    let outcome = match spawned {
        Ok(_) => rx.recv_timeout(deadline),
        // No thread to spare: plan here, still catching a panic, without the deadline.
        Err(_) => Ok(std::panic::catch_unwind(AssertUnwindSafe(|| {
            planner(args, env, options)
        }))),
    };
    match outcome {
        Ok(Ok(Ok(mut plan))) => {
            plan.deadline = plan
                .deadline
                .saturating_sub(started.elapsed())
                .max(MIN_ENGINE_TIME);
            Planned::Ready(Box::new(plan))
        }
        Ok(Ok(Err(usage))) => Planned::Usage(usage),
        // A panic (caught, or the thread gone without a word).
        Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => failed(args, env, started, None),
        Err(RecvTimeoutError::Timeout) => failed(args, env, started, Some(deadline)),
    }
}

/// The report of a run whose planning failed: the run-wide `error` row, the runner's
/// environment, no targets. `deadline` is set when planning ran out of time.
fn failed(args: &RunArgs, env: &Env, started: Instant, deadline: Option<Duration>) -> Planned {
    let check = match deadline {
        Some(limit) => CheckResult::finding(CheckId::ConfigKubeconfig, PLANNING_SUBJECT, Reason::Deadline)
            .with_summary(format!(
                "reading the configuration did not finish within --deadline ({} s): nothing was checked",
                limit.as_secs_f64()
            ))
            .with_evidence("planning (kubeconfig, token, CA and --require files) was still running at the deadline"),
        None => CheckResult::finding(CheckId::ConfigKubeconfig, PLANNING_SUBJECT, Reason::Internal)
            .with_summary("kube-reach broke while reading the configuration (a kube-reach bug): nothing was checked")
            .with_evidence(format!(
                "panicked at {}",
                LAST_PANIC
                    .lock()
                    .ok()
                    .and_then(|p| p.clone())
                    .unwrap_or_else(|| "an unknown place".into())
            )),
    };
    let dns = DnsSetup::load(&args.resolv_conf, &args.hosts_file);
    let environment = runner::facts(env, &dns);
    let checks = vec![check, runner::environment(&environment)];
    let report = RunReport::new(
        crate::x509::format_time(env.now),
        crate::engine::elapsed_since_start(started),
        checks,
        Vec::new(),
        environment,
    );
    let mut scrubber = Scrubber::default();
    crate::plan::register_env_secrets(&mut scrubber, env);
    Planned::Failed {
        report: Box::new(scrubber.scrub_report(report)),
        broke: deadline.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, Verdict};
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        let dir = env!("CARGO_MANIFEST_DIR");
        let mut argv = vec![
            "kube-reach".to_string(),
            "--resolv-conf".into(),
            format!("{dir}/no-such-resolv.conf"),
            "--hosts-file".into(),
            format!("{dir}/no-such-hosts"),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        crate::cli::Cli::try_parse_from(argv).expect("flags").run
    }

    fn env() -> Env {
        Env {
            vars: [(
                "CI_JOB_TOKEN".to_string(),
                "job-token-canary-0123".to_string(),
            )]
            .into(),
            now: std::time::SystemTime::now(),
            resolv_conf_path: "/nonexistent".into(),
            hosts_path: "/nonexistent".into(),
            service_account_dir: "/nonexistent".into(),
        }
    }

    fn planning_row(report: &RunReport) -> &CheckResult {
        report
            .checks
            .iter()
            .find(|c| c.subject == PLANNING_SUBJECT)
            .expect("the planning row")
    }

    #[test]
    fn a_panic_while_planning_becomes_an_internal_error_row() {
        fn panics(_: &RunArgs, _: &Env, _: RunOptions) -> Result<Plan, UsageError> {
            panic!("planning broke")
        }
        let Planned::Failed { report, broke } =
            plan_with(&args(&[]), &env(), RunOptions::Real, panics)
        else {
            panic!("planning must fail");
        };
        assert!(broke, "a panic is the tool breaking");
        let row = planning_row(&report);
        assert_eq!(
            (row.status, row.reason),
            (Status::Error, Some(Reason::Internal))
        );
        assert_eq!(report.verdict, Verdict::Fail);
        assert!(report.targets.is_empty());
    }

    #[test]
    fn planning_that_outlives_the_deadline_becomes_a_deadline_row() {
        fn hangs(_: &RunArgs, _: &Env, _: RunOptions) -> Result<Plan, UsageError> {
            // Bounded: the test's own thread outlives the run by at most this.
            std::thread::sleep(Duration::from_secs(5));
            Err(UsageError::InvalidDuration("late".into()))
        }
        let Planned::Failed { report, broke } = plan_with(
            &args(&["--deadline", "0.2"]),
            &env(),
            RunOptions::Real,
            hangs,
        ) else {
            panic!("planning must run out of time");
        };
        assert!(!broke, "a deadline is a finding, not the tool breaking");
        let row = planning_row(&report);
        assert_eq!(
            (row.status, row.reason),
            (Status::Error, Some(Reason::Deadline))
        );
    }

    #[test]
    fn a_deadline_of_zero_or_less_is_a_usage_error_not_a_planning_deadline() {
        // Before: `--deadline 0` timed planning out at once (exit 1, "reading the
        // configuration did not finish within --deadline (0 s)") while `--timeout 0` was exit 2.
        for deadline in ["0", "0.0", "-0", "1e-12", "-5", "NaN", "inf", "1e30"] {
            let planned = plan(
                &args(&[
                    "--server",
                    "https://127.0.0.1:9",
                    &format!("--deadline={deadline}"),
                ]),
                &env(),
                RunOptions::Real,
            );
            assert!(
                matches!(planned, Planned::Usage(UsageError::InvalidDuration(_))),
                "--deadline {deadline}"
            );
        }
    }

    #[test]
    fn a_plan_made_in_time_leaves_the_engine_the_rest_of_the_deadline() {
        let planned = plan(
            &args(&["--server", "https://127.0.0.1:9", "--deadline", "30"]),
            &env(),
            RunOptions::Real,
        );
        let Planned::Ready(plan) = planned else {
            panic!("a plain --server plans");
        };
        assert!(plan.deadline <= Duration::from_secs(30));
        assert!(plan.deadline > Duration::ZERO);
    }
}
