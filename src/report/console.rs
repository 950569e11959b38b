//! The job-log summary: one line per target, then one GitLab collapsible section per target
//! (global checks first), then a totals line.
//!
//! ```text
//! FAIL  prod (direct, https://api.prod.example.com:6443)  tls.trust missing-intermediate: the server …
//! WARN  staging (gitlab-agent, https://kas.example.com/k8s-proxy/)  tls.validity expiring-soon: …
//!
//! ␛[0Ksection_start:1700000000:kube_reach_target_1␍␛[0KFAIL  prod (direct, …): 8 checks: 4 pass, 1 warn, 1 fail, 2 skip
//!   pass  dns.resolve api.prod.example.com: resolved to 203.0.113.10
//!   fail  tls.trust api.prod.example.com: the server does not send its intermediate certificate
//!          - chain sent: CN=api.prod.example.com (issuer CN=Example Intermediate CA)
//!          fix: …
//!          why: …
//!   skip  http.version api.prod.example.com: not run: tls.trust api.prod.example.com failed
//! ␛[0Ksection_end:1700000000:kube_reach_target_1␍␛[0K
//! kube-reach 0.1.0: FAIL; 2 targets: 1 fail, 1 warn; 14 checks: 9 pass, 2 warn, 1 fail, 2 skip; 1.2 s
//! ```
//!
//! Owns: the layout, the section markers (GitLab `doc/ci/jobs/job_logs.md`; the parser's regex is
//! `section_((?:start)|(?:end)):(\d+):([a-zA-Z0-9_.-]+)` plus options and `\r\e[0K`), the
//! colour decision ([`resolve_color`]) and the [`Styles`] that carry it: plain by `Default`,
//! 8-colour SGR after [`Styles::colorize`] (GitLab renders no 24-bit colour). Printing code only
//! applies styles; nothing here asks whether colour is on.
//!
//! Must not: read the environment or the clock by itself (the caller passes what [`resolve_color`]
//! and [`in_gitlab_ci`] need, and [`ConsoleOptions`]), or print anything that did not come from
//! the scrubbed `RunReport`. Every string from the report is cleaned of escape sequences and
//! control characters first, so a hostile server name cannot forge a section marker.

use std::fmt;
use std::io::{self, Write};

use super::{ReportError, ReportFormat, clean_text, one_line};
use crate::model::{CheckResult, RunReport, Status, TargetReport, Verdict};
use crate::secret::ScrubbedReport;
use crate::verdict::Counts;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether the summary is coloured: never when `NO_COLOR` is set (non-empty, no-color.org);
/// always for `Always`; for `Auto`, when the summary's stream is a terminal, or in CI
/// (`GITLAB_CI` or `CI` set: GitLab renders SGR colour in job logs), or when `CLICOLOR_FORCE`
/// is set to anything but `0`.
pub fn resolve_color(
    choice: ColorChoice,
    is_terminal: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> bool {
    let is_set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if is_set("NO_COLOR") {
        return false;
    }
    match choice {
        ColorChoice::Never => false,
        ColorChoice::Always => true,
        ColorChoice::Auto => {
            let forced = env("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
            is_terminal || is_set("GITLAB_CI") || is_set("CI") || forced
        }
    }
}

/// Whether the job runs in GitLab CI, where section markers fold the log. Elsewhere the summary
/// uses indentation only: a terminal would show the markers as noise.
pub fn in_gitlab_ci(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("GITLAB_CI").is_some_and(|v| !v.is_empty())
}

/// One SGR style: empty (plain) or an 8-colour/bold sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    sgr: &'static str,
}

impl Style {
    const fn sgr(sgr: &'static str) -> Self {
        Style { sgr }
    }

    /// `text` wrapped in this style (and a reset), or as is when plain.
    pub fn paint<'a>(self, text: &'a str) -> Painted<'a> {
        Painted { style: self, text }
    }
}

/// Text with a style, displayed with its escape sequences.
pub struct Painted<'a> {
    style: Style,
    text: &'a str,
}

impl fmt::Display for Painted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.style.sgr.is_empty() {
            f.write_str(self.text)
        } else {
            write!(f, "{}{}\x1b[0m", self.style.sgr, self.text)
        }
    }
}

/// The summary's styles. `Default` is plain; [`Styles::colorize`] fills them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Styles {
    pub pass: Style,
    pub warn: Style,
    pub fail: Style,
    pub error: Style,
    pub skip: Style,
    /// Target names and the totals line.
    pub name: Style,
    /// `fix:` and `why:`.
    pub label: Style,
}

impl Styles {
    /// 8-colour SGR and bold only: GitLab's job log renders these, not 24-bit colour.
    pub fn colorize(&mut self) {
        self.pass = Style::sgr("\x1b[32m");
        self.warn = Style::sgr("\x1b[33m");
        self.fail = Style::sgr("\x1b[31m");
        self.error = Style::sgr("\x1b[1;31m");
        self.skip = Style::sgr("\x1b[36m");
        self.name = Style::sgr("\x1b[1m");
        self.label = Style::sgr("\x1b[1m");
    }

    fn status(&self, status: Status) -> Style {
        match status {
            Status::Pass => self.pass,
            Status::Warn => self.warn,
            Status::Fail => self.fail,
            Status::Error => self.error,
            Status::Skip => self.skip,
        }
    }

    fn verdict(&self, verdict: Verdict) -> Style {
        match verdict {
            Verdict::Pass => self.pass,
            Verdict::Warn => self.warn,
            Verdict::Fail => self.fail,
        }
    }
}

/// How the summary is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleOptions {
    pub styles: Styles,
    /// Write GitLab section markers (in GitLab CI); otherwise indentation only.
    pub sections: bool,
    /// Unix seconds when the summary is written (the run's end): the section end markers carry
    /// it, the start markers this minus the run's duration.
    pub timestamp: u64,
    /// Part of every section name, different for every run: a job that runs kube-reach twice
    /// gets two sets of sections, each of which folds (GitLab matches a section's end to its
    /// start by name). `[a-z0-9]` only: GitLab lower-cases names.
    pub run_id: String,
}

impl ConsoleOptions {
    /// Options with colour as decided by [`resolve_color`], sections as by [`in_gitlab_ci`],
    /// the current time for the markers, and a fresh run id.
    pub fn new(color: bool, sections: bool) -> Self {
        let mut styles = Styles::default();
        if color {
            styles.colorize();
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        ConsoleOptions {
            styles,
            sections,
            timestamp: now.as_secs(),
            run_id: run_id(now, std::process::id()),
        }
    }
}

/// A short id unique per run: the clock's nanoseconds and the process id, in base 36. Two runs
/// in one job are different processes; one process writing twice reads the clock twice.
pub fn run_id(now: std::time::Duration, pid: u32) -> String {
    let mixed = (now.as_nanos() as u64)
        .rotate_left(20)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(pid);
    base36(mixed % 36u64.pow(8))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the job-log summary.
pub fn write(
    report: &ScrubbedReport,
    options: &ConsoleOptions,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    Console {
        options,
        out,
        duration: report.duration,
    }
    .report(report)
    .map_err(|e| ReportError::write(ReportFormat::Console, e))
}

/// Name (after `kube_reach_<run id>_`) of the section holding the run's global checks.
const GLOBAL_SECTION: &str = "global";
/// Status column width: the longest word, `error`, plus a space.
const STATUS_WIDTH: usize = 6;
/// Indentation of a check line, and of its detail lines.
const CHECK_INDENT: &str = "  ";
const DETAIL_INDENT: &str = "         ";

struct Console<'a> {
    options: &'a ConsoleOptions,
    out: &'a mut dyn Write,
    /// The run's duration: how far before [`ConsoleOptions::timestamp`] the sections start.
    duration: std::time::Duration,
}

impl Console<'_> {
    fn report(&mut self, report: &RunReport) -> io::Result<()> {
        // No blank line between the overview and the sections: GitLab drops empty lines.
        self.overview(report)?;
        if !report.checks.is_empty() {
            self.global_section(&report.checks)?;
        }
        for (index, target) in report.targets.iter().enumerate() {
            self.target_section(index, target)?;
        }
        self.totals(report)
    }

    /// One line for the run's global checks when they did not all pass, then one per target.
    fn overview(&mut self, report: &RunReport) -> io::Result<()> {
        let global = crate::verdict::verdict(&report.checks);
        if global != Verdict::Pass {
            let cause = first_problem(&report.checks)
                .map(cause_text)
                .unwrap_or_default();
            self.overview_line(global, "run checks", &cause)?;
        }
        if report.targets.is_empty() {
            writeln!(self.out, "no targets")?;
        }
        for target in &report.targets {
            let cause = target_cause(target);
            self.overview_line(target.verdict, &target_title(target), &cause)?;
        }
        Ok(())
    }

    fn overview_line(&mut self, verdict: Verdict, title: &str, cause: &str) -> io::Result<()> {
        let styles = &self.options.styles;
        let word = format!("{:<STATUS_WIDTH$}", verdict_word(verdict));
        write!(
            self.out,
            "{}{}",
            styles.verdict(verdict).paint(&word),
            styles.name.paint(title)
        )?;
        if cause.is_empty() {
            writeln!(self.out)
        } else {
            writeln!(self.out, "  {cause}")
        }
    }

    fn global_section(&mut self, checks: &[CheckResult]) -> io::Result<()> {
        let verdict = crate::verdict::verdict(checks);
        let header = self.header(verdict, "run checks", checks);
        self.section(GLOBAL_SECTION, verdict == Verdict::Pass, &header, checks)
    }

    fn target_section(&mut self, index: usize, target: &TargetReport) -> io::Result<()> {
        let name = format!("target_{}", index + 1);
        let header = self.header(target.verdict, &target_title(target), &target.checks);
        self.section(
            &name,
            target.verdict == Verdict::Pass,
            &header,
            &target.checks,
        )
    }

    fn header(&self, verdict: Verdict, title: &str, checks: &[CheckResult]) -> String {
        let styles = &self.options.styles;
        let word = format!("{:<STATUS_WIDTH$}", verdict_word(verdict));
        format!(
            "{}{}: {}",
            styles.verdict(verdict).paint(&word),
            styles.name.paint(title),
            check_counts(&Counts::of(checks))
        )
    }

    fn section(
        &mut self,
        name: &str,
        collapsed: bool,
        header: &str,
        checks: &[CheckResult],
    ) -> io::Result<()> {
        let name = section_name(&format!("kube_reach_{}_{name}", self.options.run_id));
        let end = self.options.timestamp;
        if self.options.sections {
            // Every section is written when the run is over and targets ran concurrently, so
            // a per-section duration would be invented: the badge is hidden (the runner does the
            // same for its multi-line commands), and a GitLab that ignores the option shows the
            // run's real duration.
            let start = end.saturating_sub(self.duration.as_secs_f64().round() as u64);
            let collapsed = if collapsed { "collapsed=true," } else { "" };
            writeln!(
                self.out,
                "\x1b[0Ksection_start:{start}:{name}[{collapsed}hide_duration=true]\r\x1b[0K{header}"
            )?;
        } else {
            writeln!(self.out, "{header}")?;
        }
        let mut rest = checks;
        while let Some(first) = rest.first() {
            let run = blocked_run(rest);
            if run >= 3 {
                self.skipped_run(&rest[..run])?;
                rest = &rest[run..];
            } else {
                self.check(first)?;
                rest = &rest[1..];
            }
        }
        if self.options.sections {
            writeln!(self.out, "\x1b[0Ksection_end:{end}:{name}\r\x1b[0K")?;
        }
        Ok(())
    }

    /// Checks skipped because of one failure share one line: "rbac.can-i ×15, auth.whoami".
    fn skipped_run(&mut self, run: &[CheckResult]) -> io::Result<()> {
        let mut ids: Vec<(&str, usize)> = Vec::new();
        for check in run {
            match ids.iter_mut().find(|(id, _)| *id == check.id.as_str()) {
                Some((_, n)) => *n += 1,
                None => ids.push((check.id.as_str(), 1)),
            }
        }
        let list: Vec<String> = ids
            .iter()
            .map(|(id, n)| {
                if *n > 1 {
                    format!("{id} ×{n}")
                } else {
                    id.to_string()
                }
            })
            .collect();
        let blocker = run[0].blocked_by.as_deref().unwrap_or_default();
        let word = format!("{:<STATUS_WIDTH$}", Status::Skip.as_str());
        writeln!(
            self.out,
            "{CHECK_INDENT}{}{} checks not run ({}): {} did not pass",
            self.options.styles.status(Status::Skip).paint(&word),
            run.len(),
            list.join(", "),
            one_line(blocker)
        )
    }

    /// One line per check; `warn`, `fail` and `error` add evidence, fix and why.
    fn check(&mut self, check: &CheckResult) -> io::Result<()> {
        let styles = &self.options.styles;
        let word = format!("{:<STATUS_WIDTH$}", check.status.as_str());
        let mut line = format!("{}: {}", one_line(&check.key()), one_line(&check.summary));
        if let Some(blocker) = check
            .blocked_by
            .as_deref()
            .filter(|b| !check.summary.contains(b))
        {
            line.push_str(&format!(" (blocked by {})", one_line(blocker)));
        }
        writeln!(
            self.out,
            "{CHECK_INDENT}{}{line}",
            styles.status(check.status).paint(&word)
        )?;
        match check.status {
            Status::Pass | Status::Skip => Ok(()),
            Status::Warn | Status::Fail | Status::Error => self.details(check),
        }
    }

    fn details(&mut self, check: &CheckResult) -> io::Result<()> {
        for evidence in &check.evidence {
            self.block("- ", evidence)?;
        }
        let label = self.options.styles.label;
        if let Some(fix) = &check.fix {
            self.block(&format!("{} ", label.paint("fix:")), fix)?;
        }
        if let Some(why) = &check.why {
            self.block(&format!("{} ", label.paint("why:")), why)?;
        }
        Ok(())
    }

    /// A possibly multi-line text under a check: the first line after `prefix`, the others
    /// aligned below it.
    fn block(&mut self, prefix: &str, text: &str) -> io::Result<()> {
        let text = clean_text(text);
        let mut lines = text.lines();
        writeln!(
            self.out,
            "{DETAIL_INDENT}{prefix}{}",
            lines.next().unwrap_or_default()
        )?;
        for line in lines {
            writeln!(self.out, "{DETAIL_INDENT}  {line}")?;
        }
        Ok(())
    }

    fn totals(&mut self, report: &RunReport) -> io::Result<()> {
        let styles = &self.options.styles;
        let verdict = verdict_word(report.verdict);
        writeln!(
            self.out,
            "{}: {}; {}; {}; {:.1} s",
            styles
                .name
                .paint(&format!("kube-reach {}", report.tool_version)),
            styles.verdict(report.verdict).paint(verdict),
            target_counts(report.targets.len(), &report.target_counts()),
            check_counts(&Counts::of(report.all_checks())),
            report.duration.as_secs_f64(),
        )
    }
}

/// How many checks from the start of `checks` were skipped because of the same failure.
fn blocked_run(checks: &[CheckResult]) -> usize {
    let Some(blocker) = checks
        .first()
        .filter(|c| c.status == Status::Skip)
        .and_then(|c| c.blocked_by.as_ref())
    else {
        return 0;
    };
    checks
        .iter()
        .take_while(|c| c.status == Status::Skip && c.blocked_by.as_ref() == Some(blocker))
        .count()
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Warn => "WARN",
        Verdict::Fail => "FAIL",
    }
}

/// `name (kind, server)`, on one clean line.
fn target_title(target: &TargetReport) -> String {
    format!(
        "{} ({}, {})",
        one_line(&target.name),
        target.kind.as_str(),
        one_line(&target.server)
    )
}

/// `check reason: summary` of the target's root cause; for a target that only warns, of its
/// first warning.
fn target_cause(target: &TargetReport) -> String {
    let Some(root) = target.root_cause else {
        return first_problem(&target.checks)
            .map(cause_text)
            .unwrap_or_default();
    };
    let matching = |c: &&CheckResult| c.id == root.check && c.reason == Some(root.reason);
    let found = target
        .checks
        .iter()
        .filter(matching)
        .find(|c| c.status.is_failure());
    match found.or_else(|| target.checks.iter().find(matching)) {
        Some(check) => cause_text(check),
        None => format!("{} {}", root.check.as_str(), root.reason.as_str()),
    }
}

/// The first `fail`/`error`, else the first `warn`.
fn first_problem(checks: &[CheckResult]) -> Option<&CheckResult> {
    checks
        .iter()
        .find(|c| c.status.is_failure())
        .or_else(|| checks.iter().find(|c| c.status == Status::Warn))
}

fn cause_text(check: &CheckResult) -> String {
    let reason = check
        .reason
        .map(|r| format!(" {}", r.as_str()))
        .unwrap_or_default();
    format!(
        "{}{reason}: {}",
        check.id.as_str(),
        one_line(&check.summary)
    )
}

/// `8 checks: 4 pass, 1 warn, 1 fail, 2 skip` (zero counts left out).
fn check_counts(counts: &Counts) -> String {
    let parts = counts.by_status.map(|(s, n)| (s.as_str(), n));
    counted(counts.total, ("check", "checks"), &parts)
}

/// `2 targets: 1 fail, 1 warn` (zero counts left out).
fn target_counts(total: usize, counts: &[(Verdict, usize)]) -> String {
    let parts: Vec<(&str, usize)> = counts.iter().map(|(v, n)| (v.as_str(), *n)).collect();
    counted(total, ("target", "targets"), &parts)
}

/// `N nouns: a x, b y` with the zero counts left out (`N nouns` when all are zero).
fn counted(total: usize, (one, many): (&str, &str), parts: &[(&str, usize)]) -> String {
    let noun = if total == 1 { one } else { many };
    let parts: Vec<String> = parts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    if parts.is_empty() {
        format!("{total} {noun}")
    } else {
        format!("{total} {noun}: {}", parts.join(", "))
    }
}

/// A section name GitLab accepts: `[a-zA-Z0-9_.-]` only, anything else becomes `_`.
fn section_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::CheckId;
    use crate::model::TargetKind;
    use crate::report::test_support::{one_of_each_status, sample_report};
    use std::collections::HashMap;

    const TS: u64 = 1_700_000_000;

    fn render(report: &RunReport, color: bool, sections: bool) -> String {
        let mut options = ConsoleOptions {
            styles: Styles::default(),
            sections,
            timestamp: TS,
            run_id: "r1".into(),
        };
        if color {
            options.styles.colorize();
        }
        let mut out = Vec::new();
        let report = crate::secret::ScrubbedReport::assumed_for_test(report.clone());
        write(&report, &options, &mut out).expect("write to a Vec");
        String::from_utf8(out).expect("utf-8")
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn color_resolution() {
        use ColorChoice::{Always, Auto, Never};
        type Case = (
            ColorChoice,
            bool,
            &'static [(&'static str, &'static str)],
            bool,
        );
        let cases: &[Case] = &[
            (Auto, false, &[], false),
            (Auto, true, &[], true),
            (Auto, false, &[("GITLAB_CI", "true")], true),
            (Auto, false, &[("CI", "true")], true),
            (Auto, false, &[("CI", "")], false),
            (Auto, false, &[("CLICOLOR_FORCE", "1")], true),
            (Auto, false, &[("CLICOLOR_FORCE", "0")], false),
            (Always, false, &[], true),
            (Never, true, &[("GITLAB_CI", "true")], false),
            (Auto, true, &[("NO_COLOR", "1")], false),
            (Always, true, &[("NO_COLOR", "1")], false),
            (
                Auto,
                false,
                &[("GITLAB_CI", "true"), ("NO_COLOR", "yes")],
                false,
            ),
            (Auto, true, &[("NO_COLOR", "")], true),
        ];
        for (choice, tty, env, want) in cases {
            assert_eq!(
                resolve_color(*choice, *tty, &env_of(env)),
                *want,
                "{choice:?} tty={tty} env={env:?}"
            );
        }
    }

    #[test]
    fn sections_only_in_gitlab_ci() {
        assert!(in_gitlab_ci(&env_of(&[("GITLAB_CI", "true")])));
        assert!(!in_gitlab_ci(&env_of(&[("CI", "true")])));
    }

    #[test]
    fn plain_styles_write_no_sgr() {
        let text = render(&sample_report(), false, true);
        assert!(sgr_sequences(&text).is_empty(), "{text:?}");
        let text = render(&sample_report(), false, false);
        assert!(!text.contains('\x1b'), "{text:?}");
    }

    #[test]
    fn no_color_env_means_no_colour_in_the_output() {
        let color = resolve_color(
            ColorChoice::Auto,
            true,
            &env_of(&[("GITLAB_CI", "true"), ("NO_COLOR", "1")]),
        );
        let text = render(&sample_report(), color, true);
        assert!(sgr_sequences(&text).is_empty(), "{text:?}");
    }

    #[test]
    fn colour_is_8_colour_sgr_only() {
        let text = render(&sample_report(), true, true);
        let sequences = sgr_sequences(&text);
        assert!(!sequences.is_empty());
        for params in sequences {
            for p in params.split(';') {
                let n: u8 = p
                    .parse()
                    .unwrap_or_else(|_| panic!("bad SGR parameter {p:?}"));
                assert!(
                    matches!(n, 0 | 1 | 30..=37),
                    "SGR {n} is not 8-colour or bold"
                );
            }
        }
    }

    #[test]
    fn section_markers_are_well_formed_balanced_and_unique() {
        let text = render(&sample_report(), true, true);
        let markers = markers(&text);
        assert_eq!(
            markers.len(),
            6,
            "global + 2 targets, start and end: {text}"
        );
        let mut open: Option<&str> = None;
        let mut seen = Vec::new();
        for m in &markers {
            // The sample run took 1.234 s: sections span it, ending when the summary is written.
            let want = if m.kind == "start" { TS - 1 } else { TS };
            assert_eq!(m.timestamp, want, "{m:?}");
            assert!(m.kind == "end" || m.hide_duration, "{m:?}");
            match (m.kind, open) {
                ("start", None) => {
                    assert!(!seen.contains(&m.name), "duplicate section {}", m.name);
                    seen.push(m.name);
                    open = Some(m.name);
                }
                ("end", Some(name)) => {
                    assert_eq!(name, m.name);
                    open = None;
                }
                _ => panic!("unbalanced marker {m:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                "kube_reach_r1_global",
                "kube_reach_r1_target_1",
                "kube_reach_r1_target_2"
            ]
        );
    }

    /// Running kube-reach twice in one job must give two sets of sections: GitLab pairs a
    /// section's end with its start by name, so repeated names leave the first run unfoldable.
    #[test]
    fn section_names_are_unique_across_runs() {
        let first = ConsoleOptions::new(false, true);
        let second = ConsoleOptions::new(false, true);
        assert_ne!(first.run_id, second.run_id);
        let names = |options: &ConsoleOptions| -> Vec<String> {
            let mut out = Vec::new();
            write(
                &ScrubbedReport::assumed_for_test(sample_report()),
                options,
                &mut out,
            )
            .expect("write");
            let text = String::from_utf8(out).expect("utf-8");
            markers(&text)
                .iter()
                .map(|m| m.name.to_ascii_lowercase())
                .collect()
        };
        let (a, b) = (names(&first), names(&second));
        assert_eq!(a.len(), 6);
        assert!(a.iter().all(|n| !b.contains(n)), "{a:?} {b:?}");
        // Different processes at the same instant, and one process at two instants.
        let now = std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        assert_ne!(run_id(now, 100), run_id(now, 101));
        assert_ne!(
            run_id(now, 100),
            run_id(now + std::time::Duration::from_nanos(1), 100)
        );
        assert!(
            run_id(now, 7)
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    /// GitLab drops empty lines from the job log: the layout must not depend on them.
    #[test]
    fn no_empty_lines() {
        for sections in [true, false] {
            let text = render(&sample_report(), true, sections);
            assert!(!text.lines().any(|l| l.trim().is_empty()), "{text}");
        }
    }

    #[test]
    fn only_passing_sections_are_collapsed() {
        let mut report = sample_report();
        report.targets[1].verdict = Verdict::Pass;
        let text = render(&report, false, true);
        let collapsed: Vec<(&str, bool)> = markers(&text)
            .iter()
            .filter(|m| m.kind == "start")
            .map(|m| (m.name, m.collapsed))
            .collect();
        assert_eq!(
            collapsed,
            [
                ("kube_reach_r1_global", true),
                ("kube_reach_r1_target_1", false),
                ("kube_reach_r1_target_2", true)
            ]
        );
    }

    #[test]
    fn without_sections_there_are_no_markers() {
        let text = render(&sample_report(), false, false);
        assert!(!text.contains("section_"), "{text}");
        assert!(
            text.contains("\n  fail  tls.trust api.prod.example.com: "),
            "{text}"
        );
    }

    #[test]
    fn overview_names_verdict_target_kind_server_and_root_cause() {
        let text = render(&sample_report(), false, true);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "FAIL  prod (direct, https://api.prod.example.com:6443)  tls.trust missing-intermediate: \
                 the server does not send its intermediate certificate"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "WARN  group/agents:staging (gitlab-agent, https://kas.gitlab.example.com/k8s-proxy/)  \
                 tls.validity expiring-soon: the server certificate expires soon"
            )
        );
        assert!(
            lines
                .next()
                .is_some_and(|l| l.starts_with("\x1b[0Ksection_start:")),
            "the sections follow at once (GitLab drops empty lines): {text}"
        );
    }

    #[test]
    fn failures_show_evidence_fix_and_why_and_skips_one_line() {
        let text = render(&sample_report(), false, false);
        let after = text
            .split("  fail  tls.trust")
            .nth(1)
            .expect("failing check printed");
        let block: Vec<&str> = after.lines().take(6).collect();
        assert!(
            block[1].starts_with("         - chain sent: CN=api.prod.example.com"),
            "{block:?}"
        );
        assert!(
            block[2].starts_with("         - trusted roots:"),
            "{block:?}"
        );
        assert!(block[3].starts_with("         fix: "), "{block:?}");
        assert!(block[4].starts_with("         why: "), "{block:?}");
        assert_eq!(
            block[5],
            "  skip  http.version api.prod.example.com: not run: tls.trust api.prod.example.com failed"
        );
    }

    #[test]
    fn a_passing_target_is_short() {
        let mut report = sample_report();
        let target = &mut report.targets[1];
        target.checks.retain(|c| c.status == Status::Pass);
        target.verdict = Verdict::Pass;
        let text = render(&report, false, true);
        let section = text
            .split("kube_reach_r1_target_2[collapsed=true,hide_duration=true]")
            .nth(1)
            .expect("collapsed section");
        let lines = section
            .lines()
            .take_while(|l| !l.contains("section_end"))
            .count();
        assert_eq!(lines, 3, "header and one line per check:\n{section}");
    }

    #[test]
    fn totals_line_has_counts_and_verdict() {
        let text = render(&sample_report(), false, true);
        assert_eq!(
            text.lines().last(),
            Some(
                "kube-reach 0.1.0: FAIL; 2 targets: 1 fail, 1 warn; 14 checks: 8 pass, 2 warn, 1 fail, 3 skip; 1.2 s"
            )
        );
    }

    #[test]
    fn global_failures_get_an_overview_line_even_without_targets() {
        let mut report = sample_report();
        report.targets.clear();
        report.checks = one_of_each_status();
        let text = render(&report, false, true);
        assert!(
            text.starts_with("FAIL  run checks  dns.resolve nxdomain: "),
            "{text}"
        );
        assert!(text.contains("\nno targets\n"), "{text}");
    }

    #[test]
    fn hostile_strings_cannot_forge_markers_or_colour() {
        let mut report = sample_report();
        report.targets[0].name =
            "evil\r\x1b[0Ksection_end:1:kube_reach_r1_target_1\r\x1b[0K\x1b[38;2;1;2;3mx".into();
        report.targets[0].checks[0].summary = "line one\nline two\x1b[2J".into();
        let text = render(&report, false, true);
        assert_eq!(markers(&text).len(), 6, "{text}");
        assert!(
            !text.contains("\x1b[38") && !text.contains("\x1b[2J"),
            "{text:?}"
        );
        assert!(text.contains("line one line two"), "{text}");
    }

    #[test]
    fn section_names_are_sanitised() {
        assert_eq!(section_name("kube reach/target:1"), "kube_reach_target_1");
        assert_eq!(section_name("a.b-c_9"), "a.b-c_9");
    }

    #[test]
    fn blocked_by_is_shown_when_the_summary_does_not_say_it() {
        let mut check =
            CheckResult::pass(CheckId::HttpHealth, "x", "skipped").with_status(Status::Skip);
        check.blocked_by = Some("tls.trust x".into());
        let report = RunReport {
            tool_version: "0.1.0",
            started_at: String::new(),
            duration: std::time::Duration::ZERO,
            verdict: Verdict::Pass,
            checks: vec![],
            root_cause: None,
            targets: vec![TargetReport {
                name: "t".into(),
                kind: TargetKind::Direct,
                server: "https://x".into(),
                verdict: Verdict::Pass,
                root_cause: None,
                checks: vec![check],
            }],
            environment: vec![],
        };
        let text = render(&report, false, false);
        assert!(
            text.contains("  skip  http.health x: skipped (blocked by tls.trust x)\n"),
            "{text}"
        );
    }

    /// The parameters of every SGR sequence (`ESC [ params m`) in `text`.
    fn sgr_sequences(text: &str) -> Vec<&str> {
        text.split('\x1b')
            .skip(1)
            .filter_map(|s| s.strip_prefix('['))
            .filter_map(|s| {
                let end = s.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
                (s[end..].starts_with('m')).then(|| &s[..end])
            })
            .collect()
    }

    #[derive(Debug)]
    struct Marker<'a> {
        kind: &'a str,
        timestamp: u64,
        name: &'a str,
        collapsed: bool,
        hide_duration: bool,
    }

    /// GitLab's section marker, as `lib/gitlab/regex.rb` builds it: the name pattern, the
    /// options group, then `\r\e[0K`. GitLab's converter tries it at every position of the
    /// log, so text that matches anywhere is a marker.
    const GITLAB_SECTION_REGEX: &str = concat!(
        r"section_((?:start)|(?:end)):(\d+):([a-zA-Z0-9_.-]+)",
        r"(\[(?:\w+=\w+)(?:, ?(?:\w+=\w+))*\])?",
        r"\r\x1b\[0K"
    );

    /// Every section marker in `text` as GitLab's regex finds them. Each must be ours: at the
    /// start of a line after `\e[0K` (a hostile string never makes one).
    fn markers(text: &str) -> Vec<Marker<'_>> {
        let regex = regex::Regex::new(GITLAB_SECTION_REGEX).expect("GitLab's regex compiles");
        let ours = regex::Regex::new(&format!("^\x1b\\[0K{GITLAB_SECTION_REGEX}"))
            .expect("anchored regex compiles");
        text.lines()
            .filter(|line| regex.is_match(line))
            .map(|line| {
                let regex = &ours;
                let caps = regex
                    .captures(line)
                    .unwrap_or_else(|| panic!("malformed section marker {line:?}"));
                let group = |i: usize| caps.get(i).map_or("", |m| m.as_str());
                let options = group(4);
                let kind = group(1);
                let rest = &line[caps.get(0).map_or(0, |m| m.end())..];
                if kind == "end" {
                    assert!(options.is_empty() && rest.is_empty(), "end marker {line:?}");
                }
                Marker {
                    kind,
                    timestamp: group(2).parse().expect("digits"),
                    name: group(3),
                    collapsed: options.contains("collapsed=true"),
                    hide_duration: options.contains("hide_duration=true"),
                }
            })
            .collect()
    }
}
