//! Root cause and verdicts: pure functions over finished results. The layer order lives in
//! `Layer::rank`; the first `fail` or `error` in that order (ties broken by the order checks
//! ran) is the root cause, because everything after it is a consequence. A target's report gets
//! them only from [`TargetReport::new`], [`TargetReport::add`] and
//! [`TargetReport::explain_root_cause`], a run's from [`RunReport::new`].

use crate::catalogue::{CheckId, Reason};
use std::time::Duration;

use crate::model::{CheckResult, RootCause, RunReport, Status, TargetKind, TargetReport, Verdict};

pub fn root_cause(checks: &[CheckResult]) -> Option<RootCause> {
    checks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.status.is_failure())
        .min_by_key(|(i, c)| (c.layer().rank(), *i))
        .map(|(_, c)| RootCause {
            check: c.id,
            reason: c.reason.unwrap_or(Reason::Internal),
        })
}

pub fn verdict(checks: &[CheckResult]) -> Verdict {
    let worst = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    match worst {
        Status::Fail | Status::Error => Verdict::Fail,
        Status::Warn => Verdict::Warn,
        Status::Pass | Status::Skip => Verdict::Pass,
    }
}

impl TargetReport {
    /// A target's report: its verdict and root cause are computed from `checks`, here only.
    pub fn new(
        name: impl Into<String>,
        kind: TargetKind,
        server: impl Into<String>,
        checks: Vec<CheckResult>,
    ) -> TargetReport {
        TargetReport {
            name: name.into(),
            kind,
            server: server.into(),
            verdict: verdict(&checks),
            root_cause: root_cause(&checks),
            checks,
        }
    }

    /// Adds results found after the target's own run (GitLab's answer, the NetworkPolicy
    /// evaluation); the verdict and root cause follow.
    pub fn add(&mut self, results: impl IntoIterator<Item = CheckResult>) {
        self.checks.extend(results);
        self.verdict = verdict(&self.checks);
        self.root_cause = root_cause(&self.checks);
    }

    /// Names a root cause found from outside the target's own results: the NetworkPolicy
    /// evaluation, which shows a timeout lower in the layers is its consequence. The one place
    /// besides [`TargetReport::new`] and [`TargetReport::add`] that sets it.
    pub fn explain_root_cause(&mut self, check: CheckId, reason: Reason) {
        self.root_cause = Some(RootCause { check, reason });
    }
}

impl RunReport {
    /// The run's report: its verdict counts every check (the run's own and each target's), its
    /// root cause only the run's own (a target's is in its report), both computed here only.
    pub fn new(
        started_at: String,
        duration: Duration,
        checks: Vec<CheckResult>,
        targets: Vec<TargetReport>,
        environment: Vec<(String, String)>,
    ) -> RunReport {
        let mut report = RunReport {
            tool_version: env!("CARGO_PKG_VERSION"),
            started_at,
            duration,
            verdict: Verdict::Pass,
            root_cause: root_cause(&checks),
            checks,
            targets,
            environment,
        };
        let all: Vec<CheckResult> = report.all_checks().cloned().collect();
        report.verdict = verdict(&all);
        report
    }
}

/// How many checks have each status, in the order reports list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    /// `(status, count)` for pass, warn, fail, error, skip, zero counts included.
    pub by_status: [(Status, usize); 5],
}

impl Counts {
    pub fn of<'a>(checks: impl IntoIterator<Item = &'a CheckResult>) -> Counts {
        let mut by_status = [
            Status::Pass,
            Status::Warn,
            Status::Fail,
            Status::Error,
            Status::Skip,
        ]
        .map(|s| (s, 0));
        let mut total = 0;
        for check in checks {
            total += 1;
            if let Some((_, n)) = by_status.iter_mut().find(|(s, _)| *s == check.status) {
                *n += 1;
            }
        }
        Counts { total, by_status }
    }
}

impl RunReport {
    /// Every check of the run, its own and each target's: the totals line counts these.
    pub fn all_checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .chain(self.targets.iter().flat_map(|t| &t.checks))
    }

    /// How many targets have each verdict (fail, warn, pass).
    pub fn target_counts(&self) -> [(Verdict, usize); 3] {
        [Verdict::Fail, Verdict::Warn, Verdict::Pass]
            .map(|v| (v, self.targets.iter().filter(|t| t.verdict == v).count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_layer_failure_is_the_root_cause_whatever_the_order() {
        let checks = vec![
            CheckResult::finding(CheckId::AuthWhoami, "x", Reason::Unauthorized),
            CheckResult::pass(CheckId::DnsResolve, "x", "ok"),
            CheckResult::finding(CheckId::TlsTrust, "x", Reason::UnknownAuthority),
            CheckResult::finding(CheckId::TcpConnect, "a", Reason::Timeout)
                .with_status(Status::Warn),
        ];
        let rc = root_cause(&checks).expect("a failure");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::TlsTrust, Reason::UnknownAuthority)
        );
        assert_eq!(verdict(&checks), Verdict::Fail);
        assert_eq!(verdict(&checks[1..2]), Verdict::Pass);
        assert_eq!(verdict(&checks[3..]), Verdict::Warn);
    }
}
