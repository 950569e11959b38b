//! The binary: parse, plan, run, report, and map the outcome to an exit status (spec §3):
//! 0 no failures, 1 a check failed (or warned with `--fail-on warn`), 2 invoked wrongly,
//! 3 the tool itself broke.

use std::process::ExitCode;

use clap::Parser;
use std::io::IsTerminal;

use kube_reach::cli::{Cli, ColorArg, Command, FailOn, OutputArgs, RunArgs};
use kube_reach::env::Env;
use kube_reach::model::{RunReport, Verdict};
use kube_reach::plan::Plan;
use kube_reach::report::console::in_gitlab_ci;
use kube_reach::report::{
    ColorChoice, ConsoleOptions, ConsoleStream, JsonDestination, ReportSinks, resolve_color,
    write_all,
};

const EXIT_USAGE: u8 = 2;
const EXIT_INTERNAL: u8 = 3;

fn main() -> ExitCode {
    // One crypto provider, installed before anything builds a TLS config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        None => run(cli.run),
        Some(Command::Demo { .. }) | Some(Command::DemoServer(_)) => {
            eprintln!("kube-reach: demo not built yet");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn run(args: RunArgs) -> ExitCode {
    let env = Env::capture(args.resolv_conf.clone(), args.hosts_file.clone());
    let plan = match Plan::new(&args, &env) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("kube-reach: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let fail_on = plan.fail_on;
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-reach: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let report = rt.block_on(kube_reach::engine::run(plan, &env));
    write_reports(&report, &args.output, &env, fail_on)
}

/// Writes every requested report (all attempted, spec §3) and maps the outcome to the exit
/// status: a report that could not be written is the tool failing (3).
fn write_reports(report: &RunReport, output: &OutputArgs, env: &Env, fail_on: FailOn) -> ExitCode {
    let sinks = ReportSinks {
        console: ConsoleStream::Stdout,
        junit: output.junit.clone(),
        json: output.json.as_deref().map(JsonDestination::from_arg),
    };
    let var = |name: &str| env.var(name).map(str::to_string);
    let is_terminal = match sinks.console_stream() {
        ConsoleStream::Stdout => std::io::stdout().is_terminal(),
        ConsoleStream::Stderr => std::io::stderr().is_terminal(),
    };
    let choice = match output.color {
        ColorArg::Auto => ColorChoice::Auto,
        ColorArg::Always => ColorChoice::Always,
        ColorArg::Never => ColorChoice::Never,
    };
    let console = ConsoleOptions::new(resolve_color(choice, is_terminal, &var), in_gitlab_ci(&var));
    let errors = write_all(
        report,
        &sinks,
        &console,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    for e in &errors {
        eprintln!("kube-reach: {e}");
    }
    if !errors.is_empty() {
        return ExitCode::from(EXIT_INTERNAL);
    }
    exit_status(report, fail_on)
}

fn exit_status(report: &RunReport, fail_on: FailOn) -> ExitCode {
    match (report.verdict, fail_on) {
        (Verdict::Fail, _) | (Verdict::Warn, FailOn::Warn) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}
