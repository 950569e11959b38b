//! Secrets and the scrubber every output string passes through (spec §5: no token, key, job
//! token, password or kubeconfig secret ever appears in any output).
//!
//! Owns: the [`Secret`] newtype (no `Display`, redacted `Debug`, so a secret cannot reach a
//! `format!` by accident), the [`Scrubber`] that knows the run's secret values and replaces them,
//! and [`redact_url_password`] for credentials embedded in URLs (`http://user:pass@proxy:3128`).
//!
//! Must not: decide what is secret (the planner registers values with [`Scrubber::add`] as it
//! loads them), log, or keep secrets anywhere but in memory. Reporters never call this module:
//! `main` scrubs the finished `RunReport` once with [`Scrubber::scrub_report`] and every sink
//! writes from the scrubbed copy.

use std::fmt;

use crate::model::{CheckResult, RunReport, TargetReport};

/// What replaces a secret value in every output.
pub const REDACTED: &str = "[REDACTED]";

/// What replaces the password part of `user:password@` in a URL.
pub const URL_PASSWORD_MASK: &str = "***";

/// Shorter values are not registered: replacing every `ab` in a report would destroy it
/// without protecting anything.
pub const MIN_SECRET_LEN: usize = 4;

/// Lines of a multi-line secret (a PEM key) at least this long are registered on their own too,
/// so that one line of the key quoted in evidence is caught as well.
const MIN_SECRET_LINE_LEN: usize = 16;

/// A secret value: a bearer token, a client key, the job token, a proxy password.
///
/// There is deliberately no `Display`; `Debug` prints `Secret([REDACTED])`. Call
/// [`Secret::expose`] at the one place the value is really needed (an `Authorization` header).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Never pass it to a formatter that ends up in an output.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// The run's secret values, and the replacement of every occurrence of them by [`REDACTED`].
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Distinct values, each at least [`MIN_SECRET_LEN`] bytes long.
    secrets: Vec<String>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Scrubber {
    pub fn new() -> Self {
        Scrubber::default()
    }

    /// Registers a secret value. Values shorter than [`MIN_SECRET_LEN`] are ignored; a
    /// multi-line value (a PEM key) also registers each of its long lines, except the PEM
    /// `-----BEGIN …-----`/`-----END …-----` boundaries, which are not secret.
    pub fn add(&mut self, secret: impl AsRef<str>) {
        let secret = secret.as_ref();
        self.add_one(secret);
        if secret.contains('\n') {
            for line in secret.lines().map(str::trim) {
                if line.len() >= MIN_SECRET_LINE_LEN && !line.starts_with("-----") {
                    self.add_one(line);
                }
            }
        }
    }

    /// Registers the value of a [`Secret`].
    pub fn add_secret(&mut self, secret: &Secret) {
        self.add(secret.expose());
    }

    /// How many distinct values are registered.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    fn add_one(&mut self, value: &str) {
        if value.len() >= MIN_SECRET_LEN && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_string());
        }
    }

    /// `text` with every occurrence of a registered secret replaced by [`REDACTED`] (overlapping
    /// occurrences of different secrets become one marker) and every URL password masked.
    pub fn scrub(&self, text: &str) -> String {
        let ranges = merge_ranges(self.occurrences(text));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in ranges {
            out.push_str(&text[at..start]);
            out.push_str(REDACTED);
            at = end;
        }
        out.push_str(&text[at..]);
        redact_url_password(&out)
    }

    /// Scrubs `text` where it lies.
    pub fn scrub_in_place(&self, text: &mut String) {
        let scrubbed = self.scrub(text);
        if scrubbed != *text {
            *text = scrubbed;
        }
    }

    /// Passes every string of the report through [`Scrubber::scrub`] once: started_at, the
    /// global checks, every target's name, server and checks, and the environment (keys and
    /// values). Run it once, after the engine and before any reporter.
    pub fn scrub_report(&self, report: &mut RunReport) {
        self.scrub_in_place(&mut report.started_at);
        self.scrub_checks(&mut report.checks);
        for target in &mut report.targets {
            self.scrub_target(target);
        }
        for (key, value) in &mut report.environment {
            self.scrub_in_place(key);
            self.scrub_in_place(value);
        }
    }

    fn scrub_target(&self, target: &mut TargetReport) {
        self.scrub_in_place(&mut target.name);
        self.scrub_in_place(&mut target.server);
        self.scrub_checks(&mut target.checks);
    }

    fn scrub_checks(&self, checks: &mut [CheckResult]) {
        for check in checks {
            self.scrub_check(check);
        }
    }

    fn scrub_check(&self, check: &mut CheckResult) {
        self.scrub_in_place(&mut check.subject);
        self.scrub_in_place(&mut check.summary);
        for line in &mut check.evidence {
            self.scrub_in_place(line);
        }
        for text in [&mut check.fix, &mut check.why, &mut check.blocked_by]
            .into_iter()
            .flatten()
        {
            self.scrub_in_place(text);
        }
    }

    /// Byte ranges of every occurrence (overlapping ones included) of every secret.
    fn occurrences(&self, text: &str) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        for secret in &self.secrets {
            let mut from = 0;
            while let Some(found) = text[from..].find(secret.as_str()) {
                let start = from + found;
                ranges.push((start, start + secret.len()));
                // Step one character, not one byte: the next search must start on a boundary.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        ranges
    }
}

/// Sorts ranges and merges the ones that overlap or touch.
fn merge_ranges(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Masks the password of every `scheme://user:password@host` in `text`, keeping the user:
/// `http://bob:hunter2@proxy:3128` → `http://bob:***@proxy:3128`. A lone URL without a scheme
/// (`bob:hunter2@proxy:3128`, which curl and Go accept in `HTTPS_PROXY`) is handled too.
/// Text without credentials comes back unchanged.
pub fn redact_url_password(text: &str) -> String {
    if !text.contains('@') {
        return text.to_string();
    }
    if !text.contains("://") {
        let is_lone_url = !text.chars().any(char::is_whitespace);
        if !is_lone_url {
            return text.to_string();
        }
        let len = authority_len(text);
        return format!("{}{}", mask_userinfo(&text[..len]), &text[len..]);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let authority_start = at + "://".len();
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        let len = authority_len(rest);
        out.push_str(&mask_userinfo(&rest[..len]));
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// Length in bytes of the URL authority at the start of `s` (up to the path, query, fragment,
/// whitespace or a quoting character).
fn authority_len(s: &str) -> usize {
    s.find(|c: char| {
        matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace()
    })
    .unwrap_or(s.len())
}

/// `authority` (`user:password@host:port`) with a non-empty password masked.
fn mask_userinfo(authority: &str) -> String {
    // The last `@` ends the user info: an unencoded `@` in a password belongs to the password.
    let Some(at) = authority.rfind('@') else {
        return authority.to_string();
    };
    match authority[..at].split_once(':') {
        Some((user, password)) if !password.is_empty() => {
            format!("{user}:{URL_PASSWORD_MASK}{}", &authority[at..])
        }
        _ => authority.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{CheckId, Reason};
    use crate::model::{TargetKind, Verdict};
    use std::time::Duration;

    const TOKEN: &str = "canary-token-7f3a9c1e";
    const JOB_TOKEN: &str = "glcbt-canary-job-4b2d";
    const PROXY_PASSWORD: &str = "canary-proxy-pw-91c5";
    const KEY_LINE: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCcanary";

    fn key_pem() -> String {
        format!(
            "-----BEGIN PRIVATE KEY-----\n{KEY_LINE}\nAbCdEfGhIjKlMnOpQrStUvWxYz0123canary\n-----END PRIVATE KEY-----\n"
        )
    }

    fn scrubber() -> Scrubber {
        let mut s = Scrubber::new();
        s.add(TOKEN);
        s.add(JOB_TOKEN);
        s.add(PROXY_PASSWORD);
        s.add(key_pem());
        s
    }

    #[test]
    fn secret_debug_is_redacted_and_expose_gives_the_value() {
        let secret = Secret::new(TOKEN);
        assert_eq!(format!("{secret:?}"), "Secret([REDACTED])");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret([REDACTED]))");
        assert_eq!(secret.expose(), TOKEN);
    }

    #[test]
    fn scrubber_debug_does_not_show_values() {
        let debug = format!("{:?}", scrubber());
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(!debug.contains("canary"), "{debug}");
    }

    #[test]
    fn replaces_every_occurrence() {
        let s = scrubber();
        let text = format!("Authorization: Bearer {TOKEN} and again {TOKEN}; job {JOB_TOKEN}");
        assert_eq!(
            s.scrub(&text),
            "Authorization: Bearer [REDACTED] and again [REDACTED]; job [REDACTED]"
        );
    }

    #[test]
    fn agent_token_with_job_token_inside_is_redacted() {
        let s = scrubber();
        let scrubbed = s.scrub(&format!("user token ci:42:{JOB_TOKEN}"));
        assert_eq!(scrubbed, "user token ci:42:[REDACTED]");
    }

    #[test]
    fn short_values_are_not_registered() {
        let mut s = Scrubber::new();
        s.add("abc");
        s.add("");
        assert!(s.is_empty());
        assert_eq!(s.scrub("abcabc"), "abcabc");
    }

    #[test]
    fn duplicates_are_registered_once() {
        let mut s = Scrubber::new();
        s.add(TOKEN);
        s.add_secret(&Secret::new(TOKEN));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn overlapping_secrets_become_one_marker() {
        let mut s = Scrubber::new();
        s.add("canary-abcd");
        s.add("abcd-efgh-canary");
        assert_eq!(s.scrub("x canary-abcd-efgh-canary y"), "x [REDACTED] y");
    }

    #[test]
    fn a_secret_inside_the_marker_word_does_not_mangle_it() {
        let mut s = Scrubber::new();
        s.add("REDACTED");
        s.add("DACT");
        assert_eq!(s.scrub("a REDACTED b"), "a [REDACTED] b");
    }

    #[test]
    fn pem_key_whole_and_by_line() {
        let s = scrubber();
        let whole = s.scrub(&format!("key:\n{}", key_pem()));
        assert!(
            !whole.contains(KEY_LINE) && !whole.contains("canary"),
            "{whole}"
        );
        let one_line = s.scrub(&format!("bad key line {KEY_LINE}"));
        assert_eq!(one_line, "bad key line [REDACTED]");
        // The PEM boundaries are not secret and stay readable.
        assert_eq!(
            s.scrub("-----BEGIN PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----"
        );
    }

    #[test]
    fn non_ascii_text_around_secrets_is_kept() {
        let s = scrubber();
        assert_eq!(s.scrub(&format!("é{TOKEN}ü→")), "é[REDACTED]ü→");
    }

    #[test]
    fn url_password_is_masked_user_kept() {
        assert_eq!(
            redact_url_password("http://bob:hunter2@proxy:3128"),
            "http://bob:***@proxy:3128"
        );
        assert_eq!(
            redact_url_password("https://bob:p%40ss@proxy.example.com:8443/path?q=1"),
            "https://bob:***@proxy.example.com:8443/path?q=1"
        );
        assert_eq!(
            redact_url_password("http://bob:p@ss@proxy:3128/"),
            "http://bob:***@proxy:3128/"
        );
        assert_eq!(
            redact_url_password("bob:hunter2@proxy:3128"),
            "bob:***@proxy:3128"
        );
    }

    #[test]
    fn urls_without_passwords_are_unchanged() {
        for url in [
            "http://proxy:3128",
            "http://bob@proxy:3128",
            "http://bob:@proxy:3128",
            "https://kas.gitlab.com/k8s-proxy/",
            "https://example.com/@scope/pkg",
            "mailto-like text a@b",
            "",
        ] {
            assert_eq!(redact_url_password(url), url);
        }
    }

    #[test]
    fn url_passwords_inside_free_text_are_masked() {
        let text = "HTTPS_PROXY=http://u1:pw1@p1:3128 and \"https://u2:pw2@p2\" then https://ok.example/x@y";
        assert_eq!(
            redact_url_password(text),
            "HTTPS_PROXY=http://u1:***@p1:3128 and \"https://u2:***@p2\" then https://ok.example/x@y"
        );
    }

    #[test]
    fn scrub_masks_url_passwords_even_when_not_registered() {
        let s = Scrubber::new();
        assert_eq!(
            s.scrub("via http://bob:canary-unregistered@proxy:3128"),
            "via http://bob:***@proxy:3128"
        );
    }

    fn canary_check(text: &str) -> CheckResult {
        let mut check = CheckResult::finding(
            CheckId::AuthWhoami,
            format!("subject {text}"),
            Reason::Unauthorized,
        )
        .with_summary(format!("summary {text}"))
        .with_evidence(format!("evidence {text}"));
        check.fix = Some(format!("fix {text}"));
        check.why = Some(format!("why {text}"));
        check.blocked_by = Some(format!("blocked {text}"));
        check
    }

    #[test]
    fn scrub_report_reaches_every_string() {
        let mut report = RunReport {
            tool_version: "0.1.0",
            started_at: format!("2025-01-01T00:00:00Z {TOKEN}"),
            duration: Duration::from_millis(5),
            verdict: Verdict::Fail,
            checks: vec![canary_check(TOKEN)],
            root_cause: None,
            targets: vec![TargetReport {
                name: format!("name {JOB_TOKEN}"),
                kind: TargetKind::Direct,
                server: format!("https://bob:{PROXY_PASSWORD}@api:6443"),
                verdict: Verdict::Fail,
                root_cause: None,
                checks: vec![canary_check(JOB_TOKEN), canary_check(KEY_LINE)],
            }],
            environment: vec![(
                format!("KEY_{TOKEN}"),
                format!("http://bob:{PROXY_PASSWORD}@proxy:3128"),
            )],
        };
        scrubber().scrub_report(&mut report);
        let debug = format!("{report:?}");
        for canary in [TOKEN, JOB_TOKEN, PROXY_PASSWORD, KEY_LINE, "canary"] {
            assert!(!debug.contains(canary), "{canary} survived in {debug}");
        }
        assert_eq!(report.targets[0].server, "https://bob:***@api:6443");
        assert_eq!(report.checks[0].summary, "summary [REDACTED]");
    }
}
