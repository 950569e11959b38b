//! Every output a run makes (job log, JSON, JUnit), and the one leak assertion: no canary
//! secret, and no 12-character fragment of one, in any of them.

use kube_reach::in_process::Outputs;

use crate::report::Report;

/// Any substring of a secret this long counts as a leak (the scrubber's `FRAGMENT_LEN`).
pub const FRAGMENT: usize = 12;

/// The job log, JSON and JUnit of an in-process run, the JSON read as the report it must be
/// and the JUnit checked to be XML.
pub fn render(outputs: &Outputs) -> Vec<(&'static str, String)> {
    report_of(outputs);
    assert!(
        outputs.junit.starts_with("<?xml"),
        "junit: {}",
        outputs.junit
    );
    vec![
        ("job log", outputs.job_log.clone()),
        ("json", outputs.json.clone()),
        ("junit", outputs.junit.clone()),
    ]
}

/// The run's report, through the one typed reader.
pub fn report_of(outputs: &Outputs) -> Report {
    Report::parse(&outputs.json)
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
pub fn assert_report_clean(outputs: &Outputs, secrets: &[&str]) -> Vec<(&'static str, String)> {
    let outputs = render(outputs);
    assert_no_leak(&outputs, secrets);
    outputs
}
