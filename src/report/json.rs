//! The JSON report (`--json PATH`, `-` for stdout): serde wire types, kept apart from the model
//! so that the model can change without breaking the public shape. Pretty-printed, with a
//! trailing newline.
//!
//! # Schema (spec §3)
//!
//! ```json
//! {"tool": {"name": "kube-reach", "version": "…"}, "started_at": "RFC 3339", "duration_ms": 0,
//!  "verdict": "pass|warn|fail",
//!  "targets": [{"name": "context or URL", "kind": "direct|gitlab-agent|legacy-certificate|in-cluster|gitlab",
//!               "server": "https://…", "verdict": "pass|warn|fail",
//!               "root_cause": {"check": "tls.trust", "reason": "missing-intermediate"} ,
//!               "checks": [{"id": "tls.trust", "subject": "…", "layer": "tls", "status": "fail",
//!                           "reason": "missing-intermediate", "summary": "…", "evidence": ["…"],
//!                           "fix": "…", "why": "…", "duration_ms": 0, "blocked_by": null}]}],
//!  "environment": {"…": "…"},
//!  "checks": [ /* the run's global checks, same shape as a target's checks */ ],
//!  "root_cause": {"check": "config.kubeconfig", "reason": "context-not-found"}}
//! ```
//!
//! - `root_cause` is `null` for a target with no `fail`/`error`.
//! - `status` is `pass|warn|fail|error|skip`; `reason`, `fix`, `why` and `blocked_by` are `null`
//!   when absent (a `pass` may carry a reason, e.g. `no-current-context`); `evidence` is always
//!   an array.
//! - `environment` is an object of string to string, keys sorted; a key that repeats keeps its
//!   first value.
//! - `checks` and `root_cause` (top level) are the run-wide checks (`config.kubeconfig`,
//!   `runner.*`, agent configuration files), which belong to no target, and the first `fail` or
//!   `error` among them in layer order (`null` when none). A failing run always has a root cause
//!   at the top level or in a target, so
//!   `jq '[.root_cause] + [.targets[].root_cause] | map(select(.))'` lists them all. New fields
//!   are only ever added, never renamed.
//!
//! Must not: compute anything (verdicts and root causes come from the report) or scrub (the
//! report is scrubbed before any sink runs).

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::{ReportError, ReportFormat};
use crate::model::{CheckResult, RootCause, TargetReport};
use crate::secret::ScrubbedReport;

/// The whole JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonReport {
    pub tool: JsonTool,
    pub started_at: String,
    pub duration_ms: u64,
    pub verdict: String,
    pub targets: Vec<JsonTarget>,
    pub environment: BTreeMap<String, String>,
    pub checks: Vec<JsonCheck>,
    pub root_cause: Option<JsonRootCause>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonTool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonTarget {
    pub name: String,
    pub kind: String,
    pub server: String,
    pub verdict: String,
    pub root_cause: Option<JsonRootCause>,
    pub checks: Vec<JsonCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonRootCause {
    pub check: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonCheck {
    pub id: String,
    pub subject: String,
    pub layer: String,
    pub status: String,
    pub reason: Option<String>,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: Option<String>,
    pub why: Option<String>,
    pub duration_ms: u64,
    pub blocked_by: Option<String>,
}

impl From<&ScrubbedReport> for JsonReport {
    fn from(report: &ScrubbedReport) -> Self {
        JsonReport {
            tool: JsonTool {
                name: "kube-reach".to_string(),
                version: report.tool_version.to_string(),
            },
            started_at: report.started_at.clone(),
            duration_ms: millis(report.duration),
            verdict: report.verdict.as_str().to_string(),
            targets: report.targets.iter().map(JsonTarget::from).collect(),
            environment: environment(&report.environment),
            checks: report.checks.iter().map(JsonCheck::from).collect(),
            root_cause: report.root_cause.map(JsonRootCause::from),
        }
    }
}

impl From<&TargetReport> for JsonTarget {
    fn from(target: &TargetReport) -> Self {
        JsonTarget {
            name: target.name.clone(),
            kind: target.kind.as_str().to_string(),
            server: target.server.clone(),
            verdict: target.verdict.as_str().to_string(),
            root_cause: target.root_cause.map(JsonRootCause::from),
            checks: target.checks.iter().map(JsonCheck::from).collect(),
        }
    }
}

impl From<RootCause> for JsonRootCause {
    fn from(rc: RootCause) -> Self {
        JsonRootCause {
            check: rc.check.as_str().to_string(),
            reason: rc.reason.as_str().to_string(),
        }
    }
}

impl From<&CheckResult> for JsonCheck {
    fn from(check: &CheckResult) -> Self {
        JsonCheck {
            id: check.id.as_str().to_string(),
            subject: check.subject.clone(),
            layer: check.layer().as_str().to_string(),
            status: check.status.as_str().to_string(),
            reason: check.reason.map(|r| r.as_str().to_string()),
            summary: check.summary.clone(),
            evidence: check.evidence.clone(),
            fix: check.fix.clone(),
            why: check.why.clone(),
            duration_ms: millis(check.duration),
            blocked_by: check.blocked_by.clone(),
        }
    }
}

/// Writes the JSON report, pretty-printed, with a trailing newline.
pub fn write(report: &ScrubbedReport, out: &mut dyn Write) -> Result<(), ReportError> {
    let mut text = serde_json::to_string_pretty(&JsonReport::from(report))
        .map_err(|e| ReportError::serialize(ReportFormat::Json, e))?;
    text.push('\n');
    out.write_all(text.as_bytes())
        .map_err(|e| ReportError::write(ReportFormat::Json, e))
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sorted keys; the first value of a repeated key wins.
fn environment(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        map.entry(key.clone()).or_insert_with(|| value.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunReport;
    use crate::report::test_support::{CANARIES, canary_report, sample_report};
    use serde_json::Value;

    fn scrubbed(report: &RunReport) -> ScrubbedReport {
        ScrubbedReport::assumed_for_test(report.clone())
    }

    fn render(report: &RunReport) -> String {
        let mut out = Vec::new();
        write(&scrubbed(report), &mut out).expect("write to a Vec");
        String::from_utf8(out).expect("utf-8")
    }

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn top_level_keys_are_exactly_the_spec_plus_checks() {
        let value: Value = serde_json::from_str(&render(&sample_report())).expect("valid JSON");
        assert_eq!(
            keys(&value),
            [
                "checks",
                "duration_ms",
                "environment",
                "root_cause",
                "started_at",
                "targets",
                "tool",
                "verdict"
            ]
        );
        assert_eq!(keys(&value["tool"]), ["name", "version"]);
        assert_eq!(value["tool"]["name"], "kube-reach");
        assert_eq!(value["tool"]["version"], "0.1.0");
        assert_eq!(value["duration_ms"], 1234);
        assert_eq!(value["verdict"], "fail");
        assert_eq!(
            value["environment"]["HTTPS_PROXY"],
            "http://proxy.internal:3128"
        );
    }

    #[test]
    fn target_and_check_keys_are_exactly_the_spec() {
        let value: Value = serde_json::from_str(&render(&sample_report())).expect("valid JSON");
        let target = &value["targets"][0];
        assert_eq!(
            keys(target),
            ["checks", "kind", "name", "root_cause", "server", "verdict"]
        );
        assert_eq!(target["kind"], "direct");
        assert_eq!(keys(&target["root_cause"]), ["check", "reason"]);
        assert_eq!(target["root_cause"]["check"], "tls.trust");
        assert_eq!(target["root_cause"]["reason"], "missing-intermediate");
        assert_eq!(value["targets"][1]["root_cause"], Value::Null);
        let check_keys = [
            "blocked_by",
            "duration_ms",
            "evidence",
            "fix",
            "id",
            "layer",
            "reason",
            "status",
            "subject",
            "summary",
            "why",
        ];
        for check in value["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .flat_map(|t| t["checks"].as_array().expect("checks"))
        {
            assert_eq!(keys(check), check_keys);
        }
        for check in value["checks"].as_array().expect("global checks") {
            assert_eq!(keys(check), check_keys);
        }
        let trust = &target["checks"][5];
        assert_eq!(trust["id"], "tls.trust");
        assert_eq!(trust["layer"], "tls");
        assert_eq!(trust["status"], "fail");
        assert_eq!(trust["duration_ms"], 41);
        assert_eq!(trust["blocked_by"], Value::Null);
        assert!(trust["evidence"].as_array().is_some_and(|e| e.len() == 2));
        let pass = &target["checks"][0];
        assert_eq!(pass["reason"], Value::Null);
        assert_eq!(pass["fix"], Value::Null);
        assert_eq!(pass["evidence"], Value::Array(vec![]));
        assert_eq!(
            target["checks"][6]["blocked_by"],
            "tls.trust api.prod.example.com"
        );
        assert_eq!(target["checks"][6]["status"], "skip");
    }

    #[test]
    fn pretty_with_trailing_newline_and_round_trips() {
        let text = render(&sample_report());
        assert!(text.starts_with("{\n  \"tool\": {"), "{text}");
        assert!(text.ends_with("}\n"));
        let back: JsonReport = serde_json::from_str(&text).expect("typed parse");
        assert_eq!(back, JsonReport::from(&scrubbed(&sample_report())));
    }

    #[test]
    fn environment_first_value_wins() {
        let pairs = vec![
            ("A".to_string(), "1".to_string()),
            ("A".to_string(), "2".to_string()),
        ];
        assert_eq!(environment(&pairs).get("A").map(String::as_str), Some("1"));
    }

    /// Every string of a JSON value, object keys included.
    fn strings(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::String(text) => found.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, found)),
            Value::Object(map) => map.iter().for_each(|(key, v)| {
                found.push(key.clone());
                strings(v, found);
            }),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn leaks_in(report: &ScrubbedReport) -> Vec<String> {
        let mut out = Vec::new();
        write(report, &mut out).expect("write to a Vec");
        let value: Value = serde_json::from_slice(&out).expect("valid JSON");
        let mut found = Vec::new();
        strings(&value, &mut found);
        found
            .into_iter()
            .filter(|text| CANARIES.iter().any(|canary| text.contains(canary)))
            .collect()
    }

    /// The only way to a report a sink accepts is the scrubber: walked string by string, the
    /// JSON of a scrubbed report holds no known secret, where the same report unscrubbed
    /// (possible only in this crate's tests) leaks in many places.
    #[test]
    fn no_string_of_the_scrubbed_json_holds_a_known_secret() {
        let (report, scrubber) = canary_report();
        let unscrubbed = leaks_in(&scrubbed(&report));
        assert!(unscrubbed.len() > 10, "the fixture leaks: {unscrubbed:?}");
        let leaks = leaks_in(&scrubber.scrub_report(report));
        assert!(leaks.is_empty(), "secrets left in the JSON: {leaks:?}");
    }
}
