//! Every output a run makes (job log, JSON, JUnit), and the one leak assertion: no canary
//! secret, and no 12-character fragment of one, in any of them.

use kube_reach::model::RunReport;
use kube_reach::report::{ConsoleOptions, console, json, junit};

/// Any substring of a secret this long counts as a leak (the scrubber's `FRAGMENT_LEN`).
pub const FRAGMENT: usize = 12;

/// The job log, JSON and JUnit of an in-process run, each checked to parse.
pub fn render(report: &RunReport) -> Vec<(&'static str, String)> {
    let mut log = Vec::new();
    console::write(report, &ConsoleOptions::new(false, true), &mut log).expect("job log");
    let mut json_out = Vec::new();
    json::write(report, &mut json_out).expect("json");
    let json_text = String::from_utf8(json_out).expect("json is UTF-8");
    serde_json::from_str::<serde_json::Value>(&json_text).expect("json parses");
    let junit_text = junit::to_xml(report, junit::JunitOptions::default()).expect("junit");
    assert!(junit_text.starts_with("<?xml"), "junit: {junit_text}");
    vec![
        ("job log", String::from_utf8(log).expect("log is UTF-8")),
        ("json", json_text),
        ("junit", junit_text),
    ]
}

/// The first leaked fragment of `secret` in `text`, if any: the whole value, or any substring
/// of [`FRAGMENT`] bytes.
pub fn leaked_fragment<'a>(text: &str, secret: &'a str) -> Option<&'a str> {
    if secret.len() < FRAGMENT {
        return text.contains(secret).then_some(secret);
    }
    (0..=secret.len() - FRAGMENT)
        .filter(|&i| secret.is_char_boundary(i) && secret.is_char_boundary(i + FRAGMENT))
        .map(|i| &secret[i..i + FRAGMENT])
        .find(|fragment| text.contains(fragment))
}

/// Panics naming the output and the fragment when any secret leaked into any output.
pub fn assert_no_leak(outputs: &[(&str, String)], secrets: &[&str]) {
    for (name, text) in outputs {
        for secret in secrets {
            if let Some(fragment) = leaked_fragment(text, secret) {
                panic!("{fragment:?} (from a canary secret) leaked into the {name}:\n{text}");
            }
        }
    }
}

/// [`render`] then [`assert_no_leak`].
pub fn assert_report_clean(report: &RunReport, secrets: &[&str]) -> Vec<(&'static str, String)> {
    let outputs = render(report);
    assert_no_leak(&outputs, secrets);
    outputs
}
