//! The one typed reader of kube-reach's JSON report, for every suite: the JSON text (from the
//! binary's `--json`, or `kube_reach::in_process`) is deserialized into these test-side types,
//! which mirror the schema of spec §3 field by field. Unknown fields, a missing field, an id,
//! reason, status, layer, kind or verdict the tool does not define, or a `layer` that is not its
//! check's, fail the parse: so every test that reads a report also pins the JSON contract, and
//! none reads the model's own structs.

// Each test binary reads the parts it needs.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kube_reach::vocab::{CheckId, Layer, Reason, Status, TargetKind, Verdict};
use serde::{Deserialize, Deserializer};

/// The whole document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub tool: Tool,
    pub started_at: String,
    pub duration_ms: u64,
    #[serde(deserialize_with = "named")]
    pub verdict: Verdict,
    pub targets: Vec<Target>,
    pub environment: BTreeMap<String, String>,
    /// The run-wide checks, which belong to no target.
    pub checks: Vec<Check>,
    pub root_cause: Option<RootCause>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    #[serde(deserialize_with = "named")]
    pub kind: TargetKind,
    pub server: String,
    #[serde(deserialize_with = "named")]
    pub verdict: Verdict,
    pub root_cause: Option<RootCause>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootCause {
    #[serde(deserialize_with = "named")]
    pub check: CheckId,
    #[serde(deserialize_with = "named")]
    pub reason: Reason,
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(deserialize_with = "named")]
    pub id: CheckId,
    pub subject: String,
    #[serde(deserialize_with = "named")]
    pub layer: Layer,
    #[serde(deserialize_with = "named")]
    pub status: Status,
    #[serde(deserialize_with = "named_or_null")]
    pub reason: Option<Reason>,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: Option<String>,
    pub why: Option<String>,
    pub duration_ms: u64,
    /// The key (`<check id> <subject>`) of the result that blocked this one.
    pub blocked_by: Option<String>,
}

impl Report {
    /// The report in `json`, panicking with the text when it breaks the schema.
    pub fn parse(json: &str) -> Report {
        let report: Report = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("not a JSON report in the spec's schema ({e}):\n{json}"));
        assert_eq!(report.tool.name, "kube-reach", "the report's tool");
        let every_check = report
            .checks
            .iter()
            .chain(report.targets.iter().flat_map(|t| &t.checks));
        for check in every_check {
            assert_eq!(
                check.layer,
                check.id.layer(),
                "{} has another check's layer",
                check.key()
            );
        }
        report
    }

    /// The target named `name`.
    pub fn target(&self, name: &str) -> &Target {
        self.targets
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no target {name}: {:#?}", self.targets))
    }

    /// The only target.
    pub fn only_target(&self) -> &Target {
        match self.targets.as_slice() {
            [one] => one,
            _ => panic!("expected exactly one target: {:#?}", self.targets),
        }
    }
}

impl Target {
    /// Every result of check `id` (several for per-address checks), failing the test when
    /// there is none.
    pub fn results(&self, id: CheckId) -> Vec<&Check> {
        let found: Vec<&Check> = self.checks.iter().filter(|c| c.id == id).collect();
        assert!(
            !found.is_empty(),
            "{}: no {} result: {:#?}",
            self.name,
            id.as_str(),
            self.checks
        );
        found
    }

    /// The rows every report of a target of this kind has (spec §2-§3: the report's shape
    /// follows the kind, never the layer that failed): the connection layers, then what the
    /// kind asks of the server. Direct or through a proxy, from the rows themselves.
    pub fn assert_has_rows_of_its_kind(&self) {
        let has = |id: CheckId| self.checks.iter().any(|c| c.id == id);
        let mut must = vec![CheckId::DnsResolve, CheckId::TlsHandshake];
        if has(CheckId::ProxyConnect) || has(CheckId::ProxyTunnel) {
            must.extend([CheckId::ProxyConnect, CheckId::ProxyTunnel]);
        } else {
            must.push(CheckId::TcpConnect);
        }
        if self.server.starts_with("https://") {
            must.extend([
                CheckId::TlsTrust,
                CheckId::TlsHostname,
                CheckId::TlsValidity,
            ]);
        }
        match self.kind {
            TargetKind::Gitlab => {
                must.extend([CheckId::GitlabServer, CheckId::GitlabAllowedAgents])
            }
            kind => {
                if kind == TargetKind::GitlabAgent {
                    must.push(CheckId::GitlabKas);
                }
                must.extend([
                    CheckId::HttpVersion,
                    CheckId::HttpHealth,
                    CheckId::AuthWhoami,
                    CheckId::RbacCanI,
                ]);
            }
        }
        let missing: Vec<&str> = must
            .iter()
            .filter(|id| !has(**id))
            .map(|id| id.as_str())
            .collect();
        assert!(
            missing.is_empty(),
            "{} ({}) lacks the rows {missing:?} of its kind: {:#?}",
            self.name,
            self.kind.as_str(),
            self.checks
        );
    }
}

impl Check {
    /// `"<check id> <subject>"`: how `blocked_by` and the reports name a result.
    pub fn key(&self) -> String {
        if self.subject.is_empty() {
            self.id.as_str().to_string()
        } else {
            format!("{} {}", self.id.as_str(), self.subject)
        }
    }

    pub fn layer(&self) -> Layer {
        self.layer
    }
}

/// A vocabulary type of the tool, read from its name in the report.
trait Named: Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

/// `Named` for the tool's vocabulary types, from their own lists of values.
macro_rules! named {
    ($($ty:ident),*) => {$(
        impl Named for $ty {
            const ALL: &'static [Self] = $ty::ALL;
            fn name(self) -> &'static str {
                self.as_str()
            }
        }
    )*};
}

named!(CheckId, Reason, Status, Verdict, TargetKind, Layer);

fn by_name<T: Named, E: serde::de::Error>(text: &str) -> Result<T, E> {
    T::ALL
        .iter()
        .copied()
        .find(|value| value.name() == text)
        .ok_or_else(|| E::custom(format!("{text:?} is no {}", std::any::type_name::<T>())))
}

fn named<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<T, D::Error> {
    by_name(&String::deserialize(d)?)
}

fn named_or_null<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<Option<T>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| by_name(&text))
        .transpose()
}

#[cfg(test)]
mod self_test {
    use super::Report;

    const REPORT: &str = r#"{"tool": {"name": "kube-reach", "version": "0"},
        "started_at": "2026-01-01T00:00:00Z", "duration_ms": 1, "verdict": "fail",
        "targets": [{"name": "c", "kind": "direct", "server": "https://127.0.0.1:9",
          "verdict": "fail", "root_cause": {"check": "tcp.connect", "reason": "refused"},
          "checks": [{"id": "tcp.connect", "subject": "127.0.0.1:9", "layer": "tcp",
            "status": "fail", "reason": "refused", "summary": "s", "evidence": ["e"],
            "fix": "f", "why": "w", "duration_ms": 0, "blocked_by": null}]}],
        "environment": {}, "checks": [], "root_cause": null}"#;

    #[test]
    fn a_report_in_the_schema_reads() {
        let report = Report::parse(REPORT);
        assert_eq!(
            report.only_target().checks[0].key(),
            "tcp.connect 127.0.0.1:9"
        );
    }

    #[test]
    #[should_panic(expected = "unknown field")]
    fn an_unknown_field_is_refused() {
        Report::parse(&REPORT.replace("\"why\": \"w\"", "\"why\": \"w\", \"extra\": 1"));
    }

    #[test]
    #[should_panic(expected = "is no")]
    fn an_unknown_reason_is_refused() {
        Report::parse(&REPORT.replace(
            "\"reason\": \"refused\", \"summary\"",
            "\"reason\": \"nope\", \"summary\"",
        ));
    }

    #[test]
    #[should_panic(expected = "another check's layer")]
    fn a_layer_that_is_not_the_checks_is_refused() {
        Report::parse(&REPORT.replace("\"layer\": \"tcp\"", "\"layer\": \"tls\""));
    }

    #[test]
    #[should_panic(expected = "lacks the rows")]
    fn a_target_without_its_kinds_rows_is_refused() {
        Report::parse(REPORT)
            .only_target()
            .assert_has_rows_of_its_kind();
    }
}
