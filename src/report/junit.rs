//! The JUnit XML report, shaped for GitLab's parser (`lib/gitlab/ci/parsers/test/junit.rb`) and
//! for what GitLab's merge-request widget and pipeline "Tests" tab show of it.
//!
//! Layout: one `<testsuites name="kube-reach">`; a `<testsuite name="kube-reach">` for the run's
//! global checks when there are any, then one `<testsuite>` per target (named after it); a
//! `<testcase>` per check with `classname` = `<target> / <layer>` (the Tests tab's "Suite"
//! column) and `name` = `<target>: <check id> <subject>` for a target's checks (the widget lists
//! only `name`, so the target must be in it) or `<check id> <subject>` for the global ones. The
//! subject is what the user configured (host:port, requirement), never an observed address, so a
//! name is the same in every run (GitLab compares runs by suite + classname + name). GitLab
//! silently overwrites a repeated `(classname, name)`, so a repeat gets ` #2`, ` #3`… in report
//! order ([`UniqueNames`], linear in the number of cases).
//!
//! What a person sees, status by status (GitLab keeps text only for failed, errored and skipped
//! cases; a passing case's `<system-out>` is discarded):
//! - `fail`/`error`: `<failure>`/`<error>` whose body is the full details (summary, reason,
//!   evidence, fix, why), written once: no `<system-out>`, since GitLab shows the body followed by
//!   `System Out:` and the same text again.
//! - `warn`: with `--fail-on warn` (the job fails on it) a `<failure>`; otherwise a `<skipped>`
//!   whose body starts with `warning:`, so the text reaches the Tests tab (a pass would be silent).
//! - `skip`: `<skipped>` naming what blocked it.
//! - `pass`: the details in `<system-out>` for other JUnit viewers (GitLab ignores it).
//!
//! The traps this module exists to avoid (gitlab-facts §4.2):
//! - GitLab keeps only the **text body** of `<failure>`/`<error>` and drops its attributes;
//!   `<failure message="…"/>` without a body is shown as a Ruby hash dump. Every failure, error
//!   and skip therefore carries its full text as the body (quick-junit's `description`; the
//!   `junit-report` crate wrote only `message`, which is why it was replaced).
//! - A `type` attribute of `yaml` or `symbol` makes the whole file a parse error, and `integer`,
//!   `string`, `array`… typecast the element. `type` is the reason code, prefixed with
//!   `kube-reach-` should a code ever equal one of those words ([`junit_type`]).
//! - No ANSI escapes or control characters (text passes through `clean_text`).
//!
//! Must not: decide statuses or root causes (they come from the `RunReport`), or add anything
//! that makes the file fail Jenkins xUnit's `junit-10.xsd` (`tests/data/junit-10.xsd`).

use std::collections::{HashMap, HashSet};
use std::io::Write;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{ReportError, ReportFormat, clean_text, one_line};
use crate::catalogue::CheckId;
use crate::model::{CheckResult, RunReport, Status};
use crate::secret::ScrubbedReport;

/// Name of the `<testsuites>` root and of the suite holding the run's global checks.
pub const ROOT_NAME: &str = "kube-reach";

/// Words GitLab's XML-to-hash conversion (ActiveSupport) treats specially in a `type`
/// attribute: `yaml`/`symbol` are refused, the others typecast the element's text.
pub const RESERVED_TYPES: &[&str] = &[
    "yaml",
    "symbol",
    "integer",
    "float",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "dateTime",
    "double",
    "base64Binary",
    "binary",
    "file",
    "string",
    "array",
];

/// `type` of a result without a reason code (should not happen; never a reserved word).
const UNCLASSIFIED: &str = "unclassified";

/// What the JUnit report needs besides the `RunReport`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JunitOptions {
    /// `--fail-on warn`: the job fails on warnings, so they are written as `<failure>`.
    pub warnings_fail: bool,
    /// The report file's name (`--junit`, without its folder), put in every suite's name.
    /// GitLab keys a test case by suite, classname and name across all the JUnit files of a
    /// job and keeps one case per key (gitlab-facts §4.2): two kube-reach runs in one job
    /// (two kubeconfigs, two `--require` sets) would otherwise overwrite each other's cases.
    /// Only the name, never the folder: the key must be the same in every pipeline.
    pub report_file: Option<String>,
}

impl JunitOptions {
    /// The options for a report written to `path` (`--junit PATH`).
    pub fn for_file(warnings_fail: bool, path: Option<&std::path::Path>) -> JunitOptions {
        let report_file = path
            .and_then(|p| p.file_name())
            .map(|name| name.to_string_lossy().into_owned());
        JunitOptions {
            warnings_fail,
            report_file,
        }
    }

    /// A `<testsuite>`'s name: `base`, with the report file's name when there is one. Not
    /// shown by GitLab (its "Suite" column is the classname), only part of a case's key.
    fn suite_name(&self, base: &str) -> String {
        match &self.report_file {
            Some(file) => one_line(&format!("{base} ({file})")),
            None => one_line(base),
        }
    }
}

/// Writes the JUnit report.
pub fn write(
    report: &ScrubbedReport,
    options: JunitOptions,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let xml = to_xml(report, options)?;
    out.write_all(xml.as_bytes())
        .map_err(|e| ReportError::write(ReportFormat::Junit, e))
}

/// The JUnit report as a string.
pub fn to_xml(report: &ScrubbedReport, options: JunitOptions) -> Result<String, ReportError> {
    let xml = build(report, options)
        .to_string()
        .map_err(|e| ReportError::serialize(ReportFormat::Junit, e))?;
    Ok(drop_root_skipped_attribute(xml))
}

/// The `type` attribute for a reason code: the code itself unless it equals (in any case) one
/// of [`RESERVED_TYPES`], then `kube-reach-<code>`.
pub fn junit_type(code: &str) -> String {
    if RESERVED_TYPES
        .iter()
        .any(|word| word.eq_ignore_ascii_case(code))
    {
        format!("kube-reach-{code}")
    } else {
        code.to_string()
    }
}

fn build(report: &RunReport, options: JunitOptions) -> Report {
    let mut writer = CaseWriter {
        options,
        names: UniqueNames::default(),
    };
    let mut junit = Report::new(ROOT_NAME);
    junit.set_time(report.duration);
    if !report.checks.is_empty() {
        junit.add_test_suite(writer.suite(ROOT_NAME, None, &report.checks));
    }
    for target in &report.targets {
        let name = one_line(&target.name);
        junit.add_test_suite(writer.suite(&name, Some(&name), &target.checks));
    }
    junit
}

/// Turns checks into test cases, handing out unique names across the whole report.
struct CaseWriter {
    options: JunitOptions,
    names: UniqueNames,
}

impl CaseWriter {
    /// A `<testsuite>`; `target` prefixes every case name (`None` for the global checks), and
    /// `name` the classnames.
    fn suite(&mut self, name: &str, target: Option<&str>, checks: &[CheckResult]) -> TestSuite {
        let name = one_line(name);
        let mut suite = TestSuite::new(self.options.suite_name(&name));
        for check in checks {
            suite.add_test_case(self.test_case(&name, target, check));
        }
        suite
    }

    fn test_case(
        &mut self,
        suite_name: &str,
        target: Option<&str>,
        check: &CheckResult,
    ) -> TestCase {
        let classname = format!("{suite_name} / {}", check.layer().as_str());
        let key = one_line(&stable_key(check));
        let name = match target {
            Some(target) => format!("{target}: {key}"),
            None => key,
        };
        let name = self.names.claim(&classname, name);
        let (status, system_out) = status_element(check, &self.options);
        let mut case = TestCase::new(name, status);
        case.set_classname(classname);
        // A check judged from local input (a kubeconfig field, a variable) or skipped took no
        // time that was measured: it has no `time` rather than a made-up `0.000`. GitLab reads
        // a missing `time` as 0.0 (`time.to_f`), so its view is the same; a JUnit viewer that
        // tells "not measured" from "took 0 s" gets it right.
        if !check.duration.is_zero() {
            case.set_time(check.duration);
        }
        if let Some(text) = system_out {
            case.set_system_out(text);
        }
        case
    }
}

/// The one mapping from a status to its JUnit element, and the case's `<system-out>`. The
/// details go in exactly one place: GitLab shows a failure's body and then its `<system-out>`,
/// so a failing case has none; it drops a passing case's `<system-out>`, so a warning (which
/// must be seen) becomes a `<skipped>` with its text, or a `<failure>` when it fails the job.
fn status_element(check: &CheckResult, options: &JunitOptions) -> (TestCaseStatus, Option<String>) {
    match check.status {
        Status::Fail => (
            non_success(NonSuccessKind::Failure, check, details(check)),
            None,
        ),
        Status::Error => (
            non_success(NonSuccessKind::Error, check, details(check)),
            None,
        ),
        Status::Skip => (skipped(check), None),
        Status::Warn if options.warnings_fail => {
            let body = format!("{WARNING_FAILS}\n{}", details(check));
            (non_success(NonSuccessKind::Failure, check, body), None)
        }
        Status::Warn => (warning(check), None),
        Status::Pass => (TestCaseStatus::success(), Some(details(check))),
    }
}

/// First line of a warning written as `<failure>` (`--fail-on warn`).
const WARNING_FAILS: &str = "warning (fails this job: --fail-on warn)";
/// First line of a warning written as `<skipped>`: the check did run.
const WARNING_SHOWN: &str = "warning: the check ran and passed with a warning (listed as skipped \
                             because GitLab shows no text for passed tests)";

/// `<failure>`/`<error>`: `message` = summary, `type` = reason code, body = `body`.
fn non_success(kind: NonSuccessKind, check: &CheckResult, body: String) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status
        .set_message(one_line(&check.summary))
        .set_type(type_of(check))
        .set_description(body);
    status
}

/// A warning that does not fail the job: `<skipped>` (visible in GitLab, never counted as a
/// failure) whose message and body say it is a warning.
fn warning(check: &CheckResult) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status
        .set_message(format!("warning: {}", one_line(&check.summary)))
        .set_type(type_of(check))
        .set_description(format!("{WARNING_SHOWN}\n{}", details(check)));
    status
}

/// `<skipped>` naming what blocked the check, as message and as body (GitLab shows the body).
fn skipped(check: &CheckResult) -> TestCaseStatus {
    let summary = one_line(&check.summary);
    let mut body = summary.clone();
    if let Some(blocker) = &check.blocked_by {
        body.push_str(&format!("\nBlocked by: {}", one_line(blocker)));
    }
    let mut status = TestCaseStatus::skipped();
    status
        .set_message(summary)
        .set_type(type_of(check))
        .set_description(body);
    status
}

fn type_of(check: &CheckResult) -> String {
    junit_type(check.reason.map_or(UNCLASSIFIED, |r| r.as_str()))
}

/// Summary, reason, `Evidence:` lines, `Fix:` and `Why:`, for bodies and `<system-out>`.
/// A test case's name without its target. `config.kubeconfig` is named by its id alone: its
/// subject is whatever it found a problem with (a file, the variable, a context, planning), so a
/// subject in the name would make a failing run's case a new test beside the passing run's
/// `config.kubeconfig`, and fixing it would never show as resolved. The subject goes in the text.
fn stable_key(check: &CheckResult) -> String {
    match check.id {
        CheckId::ConfigKubeconfig => check.id.as_str().to_string(),
        _ => check.key(),
    }
}

fn details(check: &CheckResult) -> String {
    let mut text = one_line(&check.summary);
    if stable_key(check) != check.key() {
        text.push_str(&format!("\nSubject: {}", one_line(&check.subject)));
    }
    if let Some(reason) = check.reason {
        // GitLab drops the `type` attribute once there is a body; say the code in the text too.
        text.push_str(&format!("\nReason: {}", reason.as_str()));
    }
    if !check.evidence.is_empty() {
        text.push_str("\n\nEvidence:");
        for line in &check.evidence {
            text.push_str(&format!("\n  {}", clean_text(line).replace('\n', "\n    ")));
        }
    }
    if let Some(fix) = &check.fix {
        text.push_str(&format!("\n\nFix: {}", clean_text(fix)));
    }
    if let Some(why) = &check.why {
        text.push_str(&format!("\n\nWhy: {}", clean_text(why)));
    }
    text
}

/// Hands out testcase names unique per classname, in call order: `name`, `name #2`, `name #3`.
///
/// Linear: each base name remembers the last number it handed out, so the n-th repeat costs one
/// probe (plus one per literal name like `x #3` that took a number first), not n.
#[derive(Default)]
struct UniqueNames {
    used: HashSet<(String, String)>,
    last_number: HashMap<(String, String), usize>,
    #[cfg(test)]
    probes: usize,
}

impl UniqueNames {
    fn claim(&mut self, classname: &str, name: String) -> String {
        let key = (classname.to_string(), name);
        if self.used.insert(key.clone()) {
            return key.1;
        }
        let n = self.last_number.entry(key.clone()).or_insert(1);
        loop {
            *n += 1;
            #[cfg(test)]
            {
                self.probes += 1;
            }
            let candidate = format!("{} #{n}", key.1);
            if self.used.insert((key.0.clone(), candidate.clone())) {
                return candidate;
            }
        }
    }
}

/// quick-junit writes `skipped="N"` on `<testsuites>`, an attribute `junit-10.xsd` does not
/// declare for the root (it does for `<testsuite>`, where it stays) and GitLab ignores. The
/// root's only attribute values are our constant name and numbers, so the first ` skipped="…"`
/// inside the root's start tag is that attribute.
fn drop_root_skipped_attribute(xml: String) -> String {
    let Some(root) = xml.find("<testsuites") else {
        return xml;
    };
    let Some(tag_end) = xml[root..].find('>').map(|i| root + i) else {
        return xml;
    };
    let Some(attr) = xml[root..tag_end].find(" skipped=\"").map(|i| root + i) else {
        return xml;
    };
    let value = attr + " skipped=\"".len();
    let Some(close) = xml[value..tag_end].find('"').map(|i| value + i) else {
        return xml;
    };
    format!("{}{}", &xml[..attr], &xml[close + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Reason;
    use crate::model::{TargetKind, TargetReport, Verdict};
    use crate::report::test_support::{one_of_each_status, sample_report};
    use std::path::Path;
    use std::process::Command;

    fn scrubbed(report: &RunReport) -> ScrubbedReport {
        ScrubbedReport::assumed_for_test(report.clone())
    }

    fn xml_of(report: &RunReport) -> String {
        to_xml(&scrubbed(report), JunitOptions::default()).expect("serialise")
    }

    fn xml_failing_on_warnings(report: &RunReport) -> String {
        let options = JunitOptions {
            warnings_fail: true,
            report_file: None,
        };
        to_xml(&scrubbed(report), options).expect("serialise")
    }

    fn parse(xml: &str) -> Report {
        Report::deserialize_from_str(xml)
            .unwrap_or_else(|e| panic!("our XML does not parse back: {e}\n{xml}"))
    }

    fn cases(report: &Report) -> Vec<&TestCase> {
        report
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .collect()
    }

    /// Validates with `xmllint --schema tests/data/junit-10.xsd`. CI installs xmllint
    /// (`apt-get install -y libxml2-utils`); without it this fails rather than pass silently.
    fn assert_valid_against_xsd(xml: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("junit.xml");
        std::fs::write(&file, xml).expect("write xml");
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit-10.xsd");
        let output = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(&file)
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) => panic!(
                "xmllint is needed to validate the JUnit report against junit-10.xsd but could not be run ({e}); \
                 install it with `apt-get install -y libxml2-utils`"
            ),
        };
        assert!(
            output.status.success(),
            "JUnit report does not validate against junit-10.xsd:\n{}\n{xml}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn validates_against_junit_10_xsd() {
        assert_valid_against_xsd(&xml_of(&sample_report()));
        let mut edge = sample_report();
        edge.targets[0].name = "we<ird> & \"name\" \x1b[31m\u{FFFF}".into();
        edge.targets[0].checks[0]
            .evidence
            .push("bytes \x00\x07 and \r\n newline".into());
        edge.checks = one_of_each_status();
        assert_valid_against_xsd(&xml_of(&edge));
        let empty = RunReport {
            checks: vec![],
            root_cause: None,
            targets: vec![],
            ..sample_report()
        };
        assert_valid_against_xsd(&xml_of(&empty));
    }

    #[test]
    fn suites_and_case_naming() {
        let report = parse(&xml_of(&sample_report()));
        assert_eq!(report.name.as_deref(), Some("kube-reach"));
        let suites: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(suites, ["kube-reach", "prod", "group/agents:staging"]);
        let prod = &report.test_suites[1].test_cases;
        assert_eq!(prod[5].classname.as_deref(), Some("prod / tls"));
        assert_eq!(
            prod[5].name.as_str(),
            "prod: tls.trust api.prod.example.com",
            "the widget lists only the name: the target is in it"
        );
        let global = &report.test_suites[0].test_cases;
        assert_eq!(global[0].classname.as_deref(), Some("kube-reach / config"));
        assert_eq!(
            global[0].name.as_str(),
            "config.kubeconfig",
            "an empty subject leaves the id alone"
        );
    }

    /// A broken kubeconfig must be the same test case as the healthy run's `config.kubeconfig`
    /// (GitLab keys cases by suite, classname and name), whatever file or context it names.
    #[test]
    fn config_kubeconfig_keeps_its_name_whatever_it_found() {
        let names = |checks: Vec<CheckResult>| -> Vec<String> {
            let mut report = sample_report();
            report.checks = checks;
            parse(&xml_of(&report)).test_suites[0]
                .test_cases
                .iter()
                .map(|c| c.name.to_string())
                .collect()
        };
        let passing = names(vec![CheckResult::pass(
            CheckId::ConfigKubeconfig,
            "",
            "read",
        )]);
        let missing = CheckResult::finding(
            CheckId::ConfigKubeconfig,
            "/builds/g/p.tmp/KUBECONFIG",
            Reason::Unreadable,
        );
        let failing = names(vec![missing.clone()]);
        assert_eq!(passing, failing);
        let two = names(vec![
            missing,
            CheckResult::finding(CheckId::ConfigKubeconfig, "ctx", Reason::ContextNotFound),
        ]);
        assert_eq!(two, ["config.kubeconfig", "config.kubeconfig #2"]);
        let mut report = sample_report();
        report.checks = vec![CheckResult::finding(
            CheckId::ConfigKubeconfig,
            "/builds/g/p.tmp/KUBECONFIG",
            Reason::Unreadable,
        )];
        assert!(
            xml_of(&report).contains("Subject: /builds/g/p.tmp/KUBECONFIG"),
            "the subject moves into the text"
        );
    }

    #[test]
    fn status_mapping_is_exhaustive_and_bodies_are_text() {
        let mut report = sample_report();
        report.checks = one_of_each_status();
        let xml = xml_of(&report);
        let parsed = parse(&xml);
        let global = &parsed.test_suites[0].test_cases;
        assert!(
            matches!(global[0].status, TestCaseStatus::Success { .. }),
            "pass"
        );
        match &global[1].status {
            TestCaseStatus::Skipped {
                message,
                ty,
                description,
                ..
            } => {
                assert!(
                    message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("warning: "))
                );
                assert_eq!(ty.as_deref(), Some("insecure-skip-verify"));
                let body = description.as_deref().expect("a warning has a text body");
                assert!(
                    body.starts_with("warning: the check ran") && body.contains("Fix: "),
                    "{body}"
                );
            }
            other => panic!("warn must be a <skipped> with text: {other:?}"),
        }
        assert!(global[1].system_out.is_none(), "the text is written once");
        match &global[2].status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                ty,
                description,
                ..
            } => {
                assert!(message.is_some());
                assert_eq!(ty.as_deref(), Some("nxdomain"));
                let body = description.as_deref().expect("failure has a text body");
                assert!(
                    body.contains("Reason: nxdomain")
                        && body.contains("\n\nFix: ")
                        && body.contains("\n\nWhy: ")
                );
            }
            other => panic!("fail must be <failure>: {other:?}"),
        }
        assert!(
            global[2].system_out.is_none(),
            "GitLab appends system-out to the body: the details must not be there twice"
        );
        match &global[3].status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Error,
                ty,
                description,
                ..
            } => {
                assert_eq!(ty.as_deref(), Some("deadline"));
                assert!(description.is_some(), "error has a text body");
            }
            other => panic!("error must be <error>: {other:?}"),
        }
        match &global[4].status {
            TestCaseStatus::Skipped { description, .. } => {
                let body = description.as_deref().expect("skip has a text body");
                assert!(body.contains("Blocked by: dns.resolve a.example"), "{body}");
            }
            other => panic!("skip must be <skipped>: {other:?}"),
        }
    }

    #[test]
    fn failure_body_is_element_text_not_only_an_attribute() {
        let xml = xml_of(&sample_report());
        let start = xml.find("<failure ").expect("a failure element");
        let tag_end = start + xml[start..].find('>').expect("tag end");
        assert_ne!(
            &xml[tag_end - 1..=tag_end],
            "/>",
            "failure must not be self-closing"
        );
        let body = &xml[tag_end + 1..start + xml[start..].find("</failure>").expect("closing tag")];
        assert!(
            body.starts_with("the server does not send its intermediate certificate"),
            "{body}"
        );
        assert!(
            body.contains("Evidence:\n  chain sent: CN=api.prod.example.com"),
            "{body}"
        );
    }

    #[test]
    fn no_ansi_or_control_characters() {
        let mut report = sample_report();
        report.targets[0].checks[5].summary = "\x1b[31mred\x1b[0m".into();
        report.targets[0].checks[5].evidence.push("bell\x07".into());
        let xml = xml_of(&report);
        assert!(!xml.chars().any(|c| c.is_control() && c != '\n'), "{xml:?}");
        assert!(xml.contains("message=\"red\""));
    }

    /// Two reports of one job (two `--junit` files) have no suite name in common, so GitLab,
    /// which keys cases by suite + classname + name across the job's files, keeps both; the
    /// classnames and case names, which GitLab shows, are unchanged.
    #[test]
    fn suites_are_named_after_the_report_file() {
        let report = sample_report();
        let in_file = |path: &str| {
            let options = JunitOptions::for_file(false, Some(std::path::Path::new(path)));
            quick_junit::Report::deserialize_from_str(
                &to_xml(&scrubbed(&report), options).expect("xml"),
            )
            .expect("parses")
        };
        let (a, b) = (in_file("/builds/x/prod.xml"), in_file("staging.xml"));
        let names = |r: &quick_junit::Report| -> Vec<String> {
            r.test_suites.iter().map(|s| s.name.to_string()).collect()
        };
        assert_eq!(
            names(&a),
            [
                "kube-reach (prod.xml)",
                "prod (prod.xml)",
                "group/agents:staging (prod.xml)"
            ]
        );
        assert!(names(&a).iter().all(|n| !names(&b).contains(n)));
        let cases = |r: &quick_junit::Report| -> Vec<(String, String)> {
            r.test_suites
                .iter()
                .flat_map(|s| &s.test_cases)
                .map(|c| {
                    let class = c.classname.as_ref().map(|c| c.to_string());
                    (class.unwrap_or_default(), c.name.to_string())
                })
                .collect()
        };
        assert_eq!(cases(&a), cases(&b));
        assert!(cases(&a).contains(&(
            "prod / tls".to_string(),
            "prod: tls.trust api.prod.example.com".to_string()
        )));
    }

    /// A check with no measured time (judged locally, or skipped) writes no `time`; a measured
    /// one writes its seconds.
    #[test]
    fn an_unmeasured_check_has_no_time() {
        let mut report = sample_report();
        let trust = report.targets[0]
            .checks
            .iter_mut()
            .find(|c| c.id == CheckId::TlsTrust)
            .expect("tls.trust");
        trust.duration = std::time::Duration::ZERO;
        let xml = xml_of(&report);
        let case = xml
            .split("<testcase ")
            .find(|c| c.starts_with("name=\"prod: tls.trust api.prod.example.com\""))
            .unwrap_or_else(|| panic!("no tls.trust case in {xml}"));
        let head = case.split('>').next().unwrap_or_default();
        assert!(!head.contains("time="), "{head}");
        assert!(
            xml.contains(
                "name=\"runner.environment\" classname=\"kube-reach / runner\" time=\"0.002\""
            ),
            "{xml}"
        );
    }

    #[test]
    fn time_is_in_seconds() {
        let xml = xml_of(&sample_report());
        assert!(
            xml.contains(
                "name=\"prod: tls.trust api.prod.example.com\" classname=\"prod / tls\" time=\"0.041\""
            ),
            "{xml}"
        );
        assert!(xml.contains("<testsuites name=\"kube-reach\" tests=\"14\" failures=\"1\" errors=\"0\" time=\"1.234\">"));
    }

    #[test]
    fn duplicate_names_get_stable_suffixes() {
        let check = |subject: &str| CheckResult::pass(CheckId::TcpConnect, subject, "connected");
        let target = |name: &str, checks| TargetReport {
            name: name.into(),
            kind: TargetKind::Direct,
            server: "https://x".into(),
            verdict: Verdict::Pass,
            root_cause: None,
            checks,
        };
        let mut report = sample_report();
        report.targets = vec![
            target(
                "dup",
                vec![
                    check("1.2.3.4:443"),
                    check("1.2.3.4:443"),
                    check("1.2.3.4:443 #2"),
                ],
            ),
            target("dup", vec![check("1.2.3.4:443")]),
        ];
        report.checks = vec![CheckResult::pass(CheckId::TcpConnect, "", "x")];
        report.targets.push(target(
            "kube-reach",
            vec![CheckResult::pass(CheckId::TcpConnect, "", "y")],
        ));
        let parsed = parse(&xml_of(&report));
        let all = cases(&parsed);
        let mut seen = HashSet::new();
        for case in &all {
            let key = (
                case.classname.clone().map(|c| c.to_string()),
                case.name.to_string(),
            );
            assert!(
                seen.insert(key.clone()),
                "duplicate (classname, name) {key:?}"
            );
        }
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tcp.connect",
                "dup: tcp.connect 1.2.3.4:443",
                "dup: tcp.connect 1.2.3.4:443 #2",
                "dup: tcp.connect 1.2.3.4:443 #2 #2",
                "dup: tcp.connect 1.2.3.4:443 #3",
                "kube-reach: tcp.connect"
            ]
        );
        assert_eq!(xml_of(&report), xml_of(&report), "deterministic");
    }

    /// 10,000 identical `--require` lines took 18 s when the n-th repeat probed `#2`…`#n`.
    #[test]
    fn unique_names_are_linear_in_the_number_of_repeats() {
        let mut names = UniqueNames::default();
        let n = 20_000;
        let mut last = String::new();
        for _ in 0..n {
            last = names.claim("t / rbac", "rbac.can-i get pods".to_string());
        }
        assert_eq!(last, format!("rbac.can-i get pods #{n}"));
        assert_eq!(names.probes, n - 1, "one probe per repeat");
        // Literal names that take a number first cost one extra probe each, once.
        let mut names = UniqueNames::default();
        for k in 2..=100 {
            names.claim("c", format!("x #{k}"));
        }
        for _ in 0..200 {
            names.claim("c", "x".to_string());
        }
        assert!(names.probes <= 199 + 99, "{} probes", names.probes);
        assert_eq!(names.used.len(), 99 + 200);
    }

    #[test]
    fn warnings_are_failures_when_they_fail_the_job() {
        let mut report = sample_report();
        report.checks = one_of_each_status();
        let parsed = parse(&xml_failing_on_warnings(&report));
        match &parsed.test_suites[0].test_cases[1].status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                ty,
                description,
                ..
            } => {
                assert_eq!(ty.as_deref(), Some("insecure-skip-verify"));
                let body = description.as_deref().expect("body");
                assert!(body.starts_with("warning (fails this job"), "{body}");
            }
            other => panic!("with --fail-on warn a warning is a <failure>: {other:?}"),
        }
        assert!(
            matches!(
                parsed.test_suites[0].test_cases[0].status,
                TestCaseStatus::Success { .. }
            ),
            "a pass stays a pass"
        );
        assert_valid_against_xsd(&xml_failing_on_warnings(&report));
    }

    #[test]
    fn no_reason_code_is_a_reserved_type_word() {
        for reason in Reason::ALL {
            let ty = junit_type(reason.as_str());
            assert!(
                !RESERVED_TYPES.iter().any(|w| w.eq_ignore_ascii_case(&ty)),
                "{ty}"
            );
        }
        assert_eq!(junit_type("yaml"), "kube-reach-yaml");
        assert_eq!(junit_type("DateTime"), "kube-reach-DateTime");
        assert_eq!(junit_type("missing-intermediate"), "missing-intermediate");
        assert!(!RESERVED_TYPES.contains(&UNCLASSIFIED));
    }

    #[test]
    fn type_attributes_in_the_file_are_never_reserved() {
        let mut report = sample_report();
        report.checks = one_of_each_status();
        let xml = xml_of(&report);
        for piece in xml.split(" type=\"").skip(1) {
            let value = &piece[..piece.find('"').expect("closing quote")];
            assert!(
                !RESERVED_TYPES.iter().any(|w| w.eq_ignore_ascii_case(value)),
                "type={value}"
            );
        }
    }

    #[test]
    fn root_skipped_attribute_is_dropped_suite_ones_kept() {
        let xml = xml_of(&sample_report());
        let root = &xml[xml.find("<testsuites").expect("root")..];
        let root_tag = &root[..root.find('>').expect("end")];
        assert!(!root_tag.contains("skipped="), "{root_tag}");
        assert!(
            xml.contains("<testsuite name=\"prod\" tests=\"8\" skipped=\"3\""),
            "{xml}"
        );
    }
}
