//! Temporary minimal reporters (replaced by the full report module).
use crate::model::RunReport;
use crate::secret::Scrubber;

pub fn scrub(report: &mut RunReport, scrubber: &Scrubber) {
    for c in report
        .checks
        .iter_mut()
        .chain(report.targets.iter_mut().flat_map(|t| t.checks.iter_mut()))
    {
        c.summary = scrubber.scrub(&c.summary);
        c.evidence = c.evidence.iter().map(|e| scrubber.scrub(e)).collect();
        c.fix = c.fix.as_ref().map(|f| scrubber.scrub(f));
    }
}

pub fn json(report: &RunReport) -> String {
    let check = |c: &crate::model::CheckResult| {
        serde_json::json!({
            "id": c.id.as_str(), "subject": c.subject, "layer": c.layer().as_str(), "status": c.status.as_str(),
            "reason": c.reason.map(|r| r.as_str()), "summary": c.summary, "evidence": c.evidence, "fix": c.fix,
            "why": c.why, "duration_ms": c.duration.as_millis() as u64, "blocked_by": c.blocked_by,
        })
    };
    let v = serde_json::json!({
        "tool": {"name": "kube-reach", "version": report.tool_version},
        "started_at": report.started_at, "duration_ms": report.duration.as_millis() as u64,
        "verdict": report.verdict.as_str(),
        "checks": report.checks.iter().map(check).collect::<Vec<_>>(),
        "targets": report.targets.iter().map(|t| serde_json::json!({
            "name": t.name, "kind": t.kind.as_str(), "server": t.server, "verdict": t.verdict.as_str(),
            "root_cause": t.root_cause.map(|r| serde_json::json!({"check": r.check.as_str(), "reason": r.reason.as_str()})),
            "checks": t.checks.iter().map(check).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "environment": report.environment.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
