//! The binary: parse, plan, run, report, and map the outcome to an exit status (spec §3):
//! 0 no failures, 1 a check failed (or warned with `--fail-on warn`), 2 invoked wrongly,
//! 3 the tool itself broke.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use std::io::IsTerminal;

use kube_reach::cli::{
    Cli, ColorArg, Command, DemoKind, DemoServerArgs, FailOn, OutputArgs, RunArgs,
};
use kube_reach::env::Env;
use kube_reach::guard::Planned;
use kube_reach::model::Verdict;
use kube_reach::plan::RunOptions;
use kube_reach::report::console::in_gitlab_ci;
use kube_reach::report::{
    ColorChoice, ConsoleOptions, ConsoleStream, JsonDestination, JunitOptions, ReportSinks,
    resolve_color, write_all,
};
use kube_reach::secret::ScrubbedReport;

/// `eprintln!` without the panic when stderr is closed.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

const EXIT_USAGE: u8 = 2;
const EXIT_INTERNAL: u8 = 3;

/// Says a usage error on stderr through the scrubber: the reports never carry one, and a usage
/// error can quote an argument, which in a CI job is often a variable's value. What is secret
/// whatever the run (the job token, passwords of proxy and server URLs in the environment,
/// secret-shaped words) is removed.
fn say_usage(text: &str) {
    let env = Env::capture(Default::default(), Default::default());
    let mut scrubber = kube_reach::secret::Scrubber::new();
    kube_reach::plan::register_env_secrets(&mut scrubber, &env);
    say!("{}", scrubber.scrub(text.trim_end()));
}

fn main() -> ExitCode {
    kube_reach::engine::mark_process_start();
    // One crypto provider, installed before anything builds a TLS config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kube_reach::guard::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // An error quotes what was typed (`kube-reach $KUBE_URL` says "unexpected argument
        // 'https://user:password@…'"); `--help` and `--version` go out as they are.
        Err(e) if e.use_stderr() => {
            say_usage(&e.render().to_string());
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        None => run(cli.run),
        Some(Command::Demo { kind, output }) => demo(kind, output),
        Some(Command::DemoServer(args)) => demo_server(args),
    }
}

/// The async runtime, or `None` after saying why it could not start (exit 3).
fn runtime() -> Option<tokio::runtime::Runtime> {
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match built {
        Ok(rt) => Some(rt),
        Err(e) => {
            say!("kube-reach: cannot start the async runtime: {e}");
            None
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    if let Err(status) = check_report_paths(&args.output) {
        return status;
    }
    let env = Env::capture(args.resolv_conf.clone(), args.hosts_file.clone());
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_INTERNAL);
    };
    match diagnose(&rt, &args, &env, RunOptions::Real) {
        Ok(Diagnosed { report, broke }) => {
            let status = write_reports(&report, &args.output, &env);
            if broke {
                ExitCode::from(EXIT_INTERNAL)
            } else {
                status
            }
        }
        Err(status) => status,
    }
}

/// A report path that cannot be a report (empty, a FIFO, a folder) is a usage error, said
/// before anything runs.
fn check_report_paths(output: &OutputArgs) -> Result<(), ExitCode> {
    let json = output.json.as_deref().filter(|j| *j != "-").map(Path::new);
    let paths = [("--junit", output.junit.as_deref()), ("--json", json)];
    for (flag, path) in paths {
        if let Some(path) = path
            && let Err(e) = kube_reach::env::check_report_path(flag, path)
        {
            say_usage(&format!("kube-reach: {e}"));
            return Err(ExitCode::from(EXIT_USAGE));
        }
    }
    Ok(())
}

/// A finished diagnosis; `broke` when planning panicked (reports still written, then exit 3).
struct Diagnosed {
    report: ScrubbedReport,
    broke: bool,
}

/// Plans (a usage error exits 2 before any traffic; a panic or the deadline while planning
/// still gives a report) and runs the diagnosis.
fn diagnose(
    rt: &tokio::runtime::Runtime,
    args: &RunArgs,
    env: &Env,
    options: RunOptions,
) -> Result<Diagnosed, ExitCode> {
    match kube_reach::guard::plan(args, env, options) {
        Planned::Ready(plan) => Ok(Diagnosed {
            report: rt.block_on(kube_reach::engine::run(*plan, env)),
            broke: false,
        }),
        Planned::Failed { report, broke } => Ok(Diagnosed {
            report: *report,
            broke,
        }),
        Planned::Usage(e) => {
            say_usage(&format!("kube-reach: {e}"));
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Writes every requested report (all attempted, spec §3) and maps the outcome to the exit
/// status: a report that could not be written is the tool failing (3).
fn write_reports(report: &ScrubbedReport, output: &OutputArgs, env: &Env) -> ExitCode {
    let sinks = ReportSinks {
        console: ConsoleStream::Stdout,
        junit: output.junit.clone(),
        json: output.json.as_deref().map(JsonDestination::from_arg),
        junit_options: JunitOptions::for_file(
            output.fail_on == FailOn::Warn,
            output.junit.as_deref(),
        ),
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
        say!("kube-reach: {e}");
    }
    if !errors.is_empty() {
        return ExitCode::from(EXIT_INTERNAL);
    }
    exit_status(report, output.fail_on)
}

/// Starts the embedded loopback cluster, diagnoses every context of its kubeconfig, and
/// reports exactly as a real run would.
fn demo(kind: DemoKind, output: OutputArgs) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_INTERNAL);
    };
    let demo_kind = match kind {
        DemoKind::All => kube_reach::demo::DemoKind::All,
        DemoKind::Healthy => kube_reach::demo::DemoKind::Healthy,
    };
    let demo = match rt.block_on(kube_reach::demo::Demo::start(demo_kind)) {
        Ok(demo) => demo,
        Err(e) => {
            say!("kube-reach: cannot start the demo cluster: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let mut args = match Cli::try_parse_from(["kube-reach"]) {
        Ok(cli) => cli.run,
        Err(e) => {
            say!("kube-reach: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    args.kubeconfig = Some(demo.kubeconfig_path().display().to_string());
    args.no_in_cluster = true;
    args.timeout = Some(3.0);
    args.output = output;
    // The demo's servers live on loopback by design (not the copied-kubeconfig mistake
    // `config.server loopback` warns about in CI), and nothing outside the machine is asked:
    // RunOptions::Demo.
    let env = Env::capture(args.resolv_conf.clone(), args.hosts_file.clone());
    if let Err(status) = check_report_paths(&args.output) {
        return status;
    }
    let (report, broke) = match diagnose(&rt, &args, &env, RunOptions::Demo) {
        Ok(Diagnosed { report, broke }) => (report, broke),
        Err(status) => return status,
    };
    let status = match write_reports(&report, &args.output, &env) {
        _ if broke => ExitCode::from(EXIT_INTERNAL),
        status => status,
    };
    let matched = demo
        .scenarios()
        .iter()
        .filter(|s| {
            let found = report
                .targets
                .iter()
                .find(|t| t.name == s.context)
                .and_then(|t| t.root_cause);
            match (&s.expected, found) {
                (None, None) => true,
                (Some(want), Some(got)) => {
                    want.check == got.check.as_str() && want.reason == got.reason.as_str()
                }
                _ => false,
            }
        })
        .count();
    say!(
        "kube-reach demo: {matched} of {} scenarios diagnosed as the demo intended (exit status {})",
        demo.scenarios().len(),
        if report.verdict == Verdict::Fail {
            1
        } else {
            0
        }
    );
    status
}

/// The embedded fake API server alone, for the network-namespace tests.
fn demo_server(args: DemoServerArgs) -> ExitCode {
    let tls = match (args.plain_http, args.cert_chain, args.key) {
        (true, _, _) => kube_reach::demo::ServeTls::Plain,
        (false, Some(chain_pem), Some(key_pem)) => kube_reach::demo::ServeTls::Files {
            chain_pem,
            key_pem,
            client_ca_pem: None,
        },
        _ => {
            say!("kube-reach demo-server: give --cert-chain and --key, or --plain-http");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut api = kube_reach::demo::ApiServerOptions {
        version_padding_bytes: args.version_padding,
        protocols: match args.http1_only {
            true => kube_reach::demo::Protocols::Http1Only,
            false => kube_reach::demo::Protocols::Both,
        },
        body_delay: (args.body_delay_ms > 0)
            .then(|| std::time::Duration::from_millis(args.body_delay_ms)),
        ..Default::default()
    };
    if let Some(path) = &args.in_cluster_fixture {
        match kube_reach::demo::in_cluster::InClusterFixture::read(path) {
            Ok(fixture) => fixture.apply(&mut api),
            Err(e) => {
                say!("kube-reach demo-server: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let options = kube_reach::demo::ServeOptions {
        listen: args.listen,
        tls,
        api,
        max_lifetime: std::time::Duration::from_secs(args.max_lifetime),
        ready_file: args.ready_file,
    };
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_INTERNAL);
    };
    match rt.block_on(kube_reach::demo::serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("kube-reach demo-server: {e}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

fn exit_status(report: &ScrubbedReport, fail_on: FailOn) -> ExitCode {
    match (report.verdict, fail_on) {
        (Verdict::Fail, _) | (Verdict::Warn, FailOn::Warn) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}
