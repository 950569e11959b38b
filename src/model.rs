//! Plain data: targets, layers, statuses and check results. No I/O lives here.
//!
//! Everything a check finds about the cluster is a [`CheckResult`], even when it is a failure:
//! findings are data, and only the tool's own breakage is an error type (see `error.rs`).

use std::time::Duration;

use crate::catalogue;
use crate::vocab::{CheckId, Reason};

pub use crate::vocab::{Layer, Status, TargetKind, Verdict};

/// One observation: a check, about one subject, with what was seen and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub id: CheckId,
    /// What the check looked at: `10.0.0.5:6443`, `api.example.com`, `create deployments.apps -n prod`.
    pub subject: String,
    pub status: Status,
    pub reason: Option<Reason>,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: Option<String>,
    pub why: Option<String>,
    pub duration: Duration,
    /// `"<check id> <subject>"` of the failed check this one could not run without.
    pub blocked_by: Option<String>,
}

impl CheckResult {
    /// A passing result with its own summary.
    pub fn pass(id: CheckId, subject: impl Into<String>, summary: impl Into<String>) -> Self {
        CheckResult {
            id,
            subject: subject.into(),
            status: Status::Pass,
            reason: None,
            summary: summary.into(),
            evidence: Vec::new(),
            fix: None,
            why: None,
            duration: Duration::ZERO,
            blocked_by: None,
        }
    }

    /// A finding whose status, summary, fix and why come from the catalogue entry of
    /// `(id, reason)`; the check adds evidence and, where it knows more, a sharper summary or fix.
    pub fn finding(id: CheckId, subject: impl Into<String>, reason: Reason) -> Self {
        Self::finding_with_fix(id, subject, reason, catalogue::entry(id, reason).fix)
    }

    /// A [`finding`](Self::finding) for a target of `kind`: its fix is the kind's variant of
    /// the row's ([`catalogue::fix_for`], e.g. where an agent or in-cluster target takes its
    /// CA from), chosen here rather than patched into the finished text.
    pub fn finding_for(
        id: CheckId,
        subject: impl Into<String>,
        reason: Reason,
        kind: TargetKind,
    ) -> Self {
        Self::finding_with_fix(id, subject, reason, catalogue::fix_for(id, reason, kind))
    }

    fn finding_with_fix(
        id: CheckId,
        subject: impl Into<String>,
        reason: Reason,
        fix: &'static str,
    ) -> Self {
        let entry = catalogue::entry(id, reason);
        CheckResult {
            id,
            subject: subject.into(),
            status: entry.status,
            reason: Some(reason),
            summary: entry.summary.to_string(),
            evidence: Vec::new(),
            fix: (!fix.is_empty()).then(|| fix.to_string()),
            why: (!entry.why.is_empty()).then(|| entry.why.to_string()),
            duration: Duration::ZERO,
            blocked_by: None,
        }
    }

    /// A check that did not run because `blocker` failed (or, like withheld credentials,
    /// did not pass).
    pub fn blocked(id: CheckId, subject: impl Into<String>, blocker: &CheckResult) -> Self {
        let mut result = CheckResult::finding(id, subject, Reason::Blocked);
        let outcome = if blocker.status.is_failure() {
            "failed"
        } else {
            "did not pass"
        };
        result.summary = format!("not run: {} {outcome}", blocker.key());
        result.blocked_by = Some(blocker.key());
        result
    }

    /// A check that does not apply to this target (an IP needs no DNS lookup, say).
    pub fn not_applicable(id: CheckId, subject: impl Into<String>, why: impl Into<String>) -> Self {
        let mut result = CheckResult::finding(id, subject, Reason::NotApplicable);
        result.summary = why.into();
        result
    }

    /// `"<check id> <subject>"`: how `blocked_by` and reports name a result.
    pub fn key(&self) -> String {
        if self.subject.is_empty() {
            self.id.as_str().to_string()
        } else {
            format!("{} {}", self.id.as_str(), self.subject)
        }
    }

    pub fn layer(&self) -> Layer {
        self.id.layer()
    }

    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = summary.into();
        self
    }

    pub fn with_evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(cap_evidence_line(line.into()));
        self
    }

    pub fn with_evidence_lines<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.evidence
            .extend(lines.into_iter().map(|l| cap_evidence_line(l.into())));
        self
    }

    /// Puts a concrete, situation-specific instruction before the catalogue's generic fix.
    pub fn with_fix_detail(mut self, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        self.fix = Some(match self.fix.take() {
            Some(generic) => format!("{detail} {generic}"),
            None => detail,
        });
        self
    }

    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }
}

/// The root cause of a target: the first failure in layer order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootCause {
    pub check: CheckId,
    pub reason: Reason,
}

#[derive(Debug, Clone)]
pub struct TargetReport {
    pub name: String,
    pub kind: TargetKind,
    pub server: String,
    pub verdict: Verdict,
    pub root_cause: Option<RootCause>,
    pub checks: Vec<CheckResult>,
}

/// Everything a run found; every reporter writes from this and nothing else.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub tool_version: &'static str,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration: Duration,
    pub verdict: Verdict,
    /// Checks about the run as a whole (`config.kubeconfig`, `runner.*`).
    pub checks: Vec<CheckResult>,
    /// The first run-wide `fail`/`error` in layer order (spec §3): a kubeconfig that does not
    /// parse or a context that does not exist has no target to carry its root cause.
    pub root_cause: Option<RootCause>,
    pub targets: Vec<TargetReport>,
    /// What the job's surroundings looked like (resolv.conf, proxy variables without passwords…).
    pub environment: Vec<(String, String)>,
}

/// The longest evidence line kept, in characters: a 3,000-name certificate once made one line
/// of 68,000. Longer lines end in "… (N more characters)".
pub const MAX_EVIDENCE_CHARS: usize = 2_000;

/// How far back from the limit a line is cut at a space or comma rather than mid-word.
const WORD_BACKTRACK: usize = 200;

/// Cuts a line to [`MAX_EVIDENCE_CHARS`]. The cut falls after a space or comma where one is
/// near, so a token or password in the line is kept whole or dropped whole, never halved
/// (the scrubber, which runs later over every string, then still sees it entire); it always
/// falls on a character boundary.
fn cap_evidence_line(line: String) -> String {
    let Some((limit, _)) = line.char_indices().nth(MAX_EVIDENCE_CHARS) else {
        return line;
    };
    let floor = line
        .char_indices()
        .nth(MAX_EVIDENCE_CHARS - WORD_BACKTRACK)
        .map_or(0, |(i, _)| i);
    let cut = line[floor..limit]
        .rfind([' ', ','])
        .map_or(limit, |i| floor + i + 1);
    let more = line[cut..].chars().count();
    format!("{}… ({more} more characters)", &line[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_evidence_lines_are_cut_with_a_marker() {
        let names: Vec<String> = (0..3000).map(|i| format!("host-{i}.example")).collect();
        let line = format!("certificate names: {}", names.join(", "));
        let r = CheckResult::finding(CheckId::TlsHostname, "x", Reason::Mismatch)
            .with_evidence(line.clone())
            .with_evidence_lines(["short"]);
        let kept = &r.evidence[0];
        assert!(
            kept.chars().count() < MAX_EVIDENCE_CHARS + 40,
            "{}",
            kept.len()
        );
        let (head, marker) = kept.rsplit_once("… (").expect("marker");
        let more: usize = marker
            .trim_end_matches(" more characters)")
            .parse()
            .expect("a count");
        assert_eq!(head.chars().count() + more, line.chars().count());
        assert!(head.ends_with(", "), "cut after a separator: {head:?}");
        assert_eq!(r.evidence[1], "short");
    }

    #[test]
    fn a_secret_across_the_limit_is_dropped_whole() {
        let secret = "s3cr3tT0kenValue".repeat(4);
        let pad = "a ".repeat((MAX_EVIDENCE_CHARS - 10) / 2);
        let line = format!("{pad}{secret} tail");
        let kept = cap_evidence_line(line);
        assert!(
            !kept.contains("s3cr3t"),
            "no fragment of the secret is kept"
        );
        // Without a separator near the limit the cut still falls on a character boundary.
        let wide = "é".repeat(MAX_EVIDENCE_CHARS * 2);
        let kept = cap_evidence_line(wide);
        assert!(kept.starts_with(&"é".repeat(MAX_EVIDENCE_CHARS)));
        assert!(kept.ends_with(&format!("({MAX_EVIDENCE_CHARS} more characters)")));
    }
}
