//! The binary: parse, plan, run, report, and map the outcome to an exit status (spec §3):
//! 0 no failures, 1 a check failed (or warned with `--fail-on warn`), 2 invoked wrongly,
//! 3 the tool itself broke.

use std::process::ExitCode;

use clap::Parser;
use kube_reach::cli::{Cli, Command, FailOn, RunArgs};
use kube_reach::env::Env;
use kube_reach::model::{RunReport, Verdict};
use kube_reach::plan::Plan;

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
    if let Some(path) = &args.output.json {
        let text = kube_reach::report::json(&report);
        if path == "-" {
            println!("{text}");
        } else if let Err(e) = std::fs::write(path, text) {
            eprintln!("kube-reach: cannot write {path}: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    }
    exit_status(&report, fail_on)
}

fn exit_status(report: &RunReport, fail_on: FailOn) -> ExitCode {
    match (report.verdict, fail_on) {
        (Verdict::Fail, _) | (Verdict::Warn, FailOn::Warn) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}
