//! Secrets and the one redaction point every output string passes through (spec §5: no token,
//! key, job token, password or kubeconfig secret ever appears in any output).
//!
//! Owns: the [`Secret`] newtype (no `Display`, redacted `Debug`, so a secret cannot reach a
//! `format!` by accident), the [`Scrubber`] that knows the run's secret values and removes them
//! **and any fragment of them**, the patterns that are secrets whatever we know
//! ([`redact_patterns`]: `Bearer …`, `Basic …`, JWTs, GitLab tokens, agent tokens, PEM private
//! keys), [`redact_url_password`] for credentials embedded in URLs, and
//! [`redact_output_line`] for what other programs print (credential plugins, the job's tools).
//!
//! Why fragments: evidence excerpts are cut at a fixed length, so a secret echoed by a server
//! may appear only in part. Every 12-byte window of every registered secret is indexed (one
//! hash-set entry per byte, so registration is linear in the secret's length), and at a cut (an
//! ellipsis `…`, which every truncation of outside text appends) a prefix or suffix of 4 or more
//! bytes goes too.
//!
//! Must not: decide what is secret (the planner registers values with [`Scrubber::add`] where it
//! parses them), log, or keep secrets anywhere but in memory. Reporters never call this module:
//! the engine scrubs the finished `RunReport` once with [`Scrubber::scrub_report`], which
//! consumes it and gives back a [`ScrubbedReport`], and every sink accepts only that type, so an
//! unscrubbed report cannot reach an output by construction.

use std::collections::HashSet;
use std::fmt;

use crate::model::{CheckResult, RunReport, TargetReport};

/// What replaces a secret value in every output.
pub const REDACTED: &str = "[REDACTED]";

/// What replaces the password part of `user:password@` in a URL.
pub const URL_PASSWORD_MASK: &str = "***";

/// Shorter values are not registered: replacing every `ab` in a report would destroy it
/// without protecting anything.
pub const MIN_SECRET_LEN: usize = 4;

/// Any substring of a registered secret at least this long is removed wherever it appears.
pub const FRAGMENT_LEN: usize = 12;

/// At most this many windows are indexed per secret. A longer "secret" (a 4 MB multi-line
/// token) is indexed every few bytes instead, so registration stays linear and bounded in
/// memory; fragments of `FRAGMENT_LEN + stride - 1` bytes are then still caught.
const MAX_WINDOWS_PER_SECRET: usize = 1 << 20;

/// The characters that mark a cut made by truncation.
const CUT_MARKS: [char; 1] = ['…'];

/// A secret value: a bearer token, a client key, a proxy password.
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

/// The job's `CI_JOB_TOKEN`. Its own type, not a [`Secret`]: it may go only to the GitLab
/// server, so the one request that carries it takes a `&JobToken`, and nothing that sends a
/// bearer token to a cluster can be handed one by mistake.
#[derive(Clone, PartialEq, Eq)]
pub struct JobToken(Secret);

impl JobToken {
    pub fn new(value: impl Into<String>) -> Self {
        JobToken(Secret::new(value))
    }

    /// The value, for the `JOB-TOKEN` header of a request to the GitLab server only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for JobToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobToken({REDACTED})")
    }
}

/// A finished report every string of which has passed through the [`Scrubber`]: the only report
/// a reporter accepts. Only [`Scrubber::scrub_report`] makes one (the field is private to this
/// module) and it reads as a [`RunReport`] but cannot be changed, so nothing unscrubbed can be
/// added after the scrub.
///
/// A reporter refuses an unscrubbed report at compile time:
///
/// ```compile_fail,E0308
/// # use kube_reach::model::RunReport;
/// let report = RunReport::new(String::new(), Default::default(), vec![], vec![], vec![]);
/// kube_reach::report::json::write(&report, &mut Vec::new());
/// ```
///
/// and nothing outside this module can make one without the scrubber:
///
/// ```compile_fail,E0423
/// # use kube_reach::model::RunReport;
/// let report = RunReport::new(String::new(), Default::default(), vec![], vec![], vec![]);
/// let _ = kube_reach::secret::ScrubbedReport(report);
/// ```
///
/// or change one after it:
///
/// ```compile_fail,E0596
/// # use kube_reach::model::RunReport;
/// let report = RunReport::new(String::new(), Default::default(), vec![], vec![], vec![]);
/// let mut scrubbed = kube_reach::secret::Scrubber::new().scrub_report(report);
/// scrubbed.environment.push(("TOKEN".into(), "secret".into()));
/// ```
///
/// while the scrubbed one is accepted:
///
/// ```
/// # use kube_reach::model::RunReport;
/// let report = RunReport::new(String::new(), Default::default(), vec![], vec![], vec![]);
/// let scrubbed = kube_reach::secret::Scrubber::new().scrub_report(report);
/// kube_reach::report::json::write(&scrubbed, &mut Vec::new()).expect("written");
/// ```
#[derive(Debug, Clone)]
pub struct ScrubbedReport(RunReport);

impl std::ops::Deref for ScrubbedReport {
    type Target = RunReport;

    fn deref(&self) -> &RunReport {
        &self.0
    }
}

impl ScrubbedReport {
    /// A report taken as scrubbed without scrubbing, for the reporters' own unit tests, whose
    /// fixtures carry no secret and whose expected texts must not depend on the patterns.
    #[cfg(test)]
    pub(crate) fn assumed_for_test(report: RunReport) -> ScrubbedReport {
        ScrubbedReport(report)
    }
}

/// The run's secret values, and the removal of every occurrence (and fragment) of them.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Registered values shorter than [`FRAGMENT_LEN`], matched exactly: looked up at every
    /// offset by each length present, so a scrub stays linear however many there are (a
    /// server URL with 200,000 short query values once made it take 105 s).
    short: HashSet<Vec<u8>>,
    /// `short_lens[n]`: some short value is `n` bytes long.
    short_lens: [bool; FRAGMENT_LEN],
    /// The first bytes of the short values: an offset whose byte is none of them starts none.
    short_first: ByteSet,
    /// Every registered value and encoded form, for de-duplication.
    seen: HashSet<String>,
    /// How many values were registered, their encoded forms aside.
    values: usize,
    /// Every [`FRAGMENT_LEN`]-byte window of every longer value.
    windows: HashSet<u128>,
    /// A bit per hash bucket of `windows`: a window whose bit is clear is in no secret, so
    /// most offsets of a report are passed over without hashing the set's way (50 targets'
    /// reports spent a quarter of the run's CPU in these lookups).
    window_bits: WindowBits,
    /// Prefixes and suffixes (4 to [`FRAGMENT_LEN`] - 1 bytes) of every value, looked for at cuts.
    prefixes: HashSet<Vec<u8>>,
    suffixes: HashSet<Vec<u8>>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("secrets", &self.seen.len())
            .finish()
    }
}

impl Scrubber {
    pub fn new() -> Self {
        Scrubber::default()
    }

    /// Registers a secret value (surrounding whitespace ignored). Values shorter than
    /// [`MIN_SECRET_LEN`] are ignored. A value with inner whitespace (a PEM key, a multi-line
    /// token) is registered a second time with every whitespace run collapsed to one space, the
    /// way evidence lines print it.
    pub fn add(&mut self, secret: impl AsRef<str>) {
        let secret = secret.as_ref().trim();
        if secret.contains("-----BEGIN ") {
            // A PEM key: its `-----BEGIN …-----`/`-----END …-----` lines are not secret and must
            // stay readable in evidence; the lines between them are.
            let body: Vec<&str> = secret
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("-----"))
                .collect();
            return self.add_lines(&body.join("\n"));
        }
        self.add_lines(secret);
    }

    fn add_lines(&mut self, secret: &str) {
        self.add_forms(secret);
        if secret.contains(char::is_whitespace) {
            let collapsed = secret.split_whitespace().collect::<Vec<_>>().join(" ");
            self.add_forms(&collapsed);
        }
    }

    /// Registers `value` as written and as a server echoes it re-encoded ([`encoded_forms`]):
    /// a base64-style token with a `/` every few characters has no 12-byte piece left
    /// verbatim once a JSON encoder wrote `\/` or a redirect wrote `%2F`.
    fn add_forms(&mut self, value: &str) {
        if value.len() >= MIN_SECRET_LEN && !self.seen.contains(value) {
            self.values += 1;
        }
        self.add_one(value);
        if value.len() <= MAX_ENCODED_LEN {
            for form in encoded_forms(value) {
                self.add_one(&form);
            }
        }
    }

    /// Registers the value of a [`Secret`].
    pub fn add_secret(&mut self, secret: &Secret) {
        self.add(secret.expose());
    }

    /// How many distinct values are registered (not counting their encoded forms).
    pub fn len(&self) -> usize {
        self.values
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn add_one(&mut self, value: &str) {
        if value.len() < MIN_SECRET_LEN || !self.seen.insert(value.to_string()) {
            return;
        }
        let bytes = value.as_bytes();
        let edge_max = (FRAGMENT_LEN - 1).min(bytes.len());
        for len in MIN_SECRET_LEN..=edge_max {
            self.prefixes.insert(bytes[..len].to_vec());
            self.suffixes.insert(bytes[bytes.len() - len..].to_vec());
        }
        if bytes.len() < FRAGMENT_LEN {
            self.short.insert(bytes.to_vec());
            self.short_lens[bytes.len()] = true;
            self.short_first.insert(bytes[0]);
            return;
        }
        let count = bytes.len() - FRAGMENT_LEN + 1;
        let stride = count.div_ceil(MAX_WINDOWS_PER_SECRET);
        let mut at = 0;
        while at < count {
            self.insert_window(window(&bytes[at..]));
            at += stride;
        }
        // The last window always, so a fragment at the very end of a strided value is caught.
        self.insert_window(window(&bytes[count - 1..]));
    }

    fn insert_window(&mut self, window: u128) {
        self.windows.insert(window);
        self.window_bits.insert(window);
    }

    /// `text` with every registered secret, every fragment of one and every secret-shaped
    /// pattern replaced by [`REDACTED`], and every URL password masked.
    pub fn scrub(&self, text: &str) -> String {
        let known = replace_ranges(text, self.ranges(text));
        redact_url_password(&redact_patterns(&known))
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
    /// values). Run it once, after the engine and before any reporter: it consumes the report,
    /// and the [`ScrubbedReport`] it returns is what every reporter takes.
    pub fn scrub_report(&self, mut report: RunReport) -> ScrubbedReport {
        self.scrub_in_place(&mut report.started_at);
        self.scrub_checks(&mut report.checks);
        for target in &mut report.targets {
            self.scrub_target(target);
        }
        for (key, value) in &mut report.environment {
            self.scrub_in_place(key);
            self.scrub_in_place(value);
        }
        ScrubbedReport(report)
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

    /// Byte ranges to redact: short secrets, windows of long ones, and secret edges at cuts.
    fn ranges(&self, text: &str) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        if self.seen.is_empty() {
            return ranges;
        }
        let bytes = text.as_bytes();
        let lens: Vec<usize> = (0..FRAGMENT_LEN).filter(|&n| self.short_lens[n]).collect();
        if !lens.is_empty() {
            for start in 0..bytes.len() {
                if !self.short_first.contains(bytes[start]) {
                    continue;
                }
                let ends = lens.iter().map(|n| start + n).filter(|&e| e <= bytes.len());
                ranges.extend(
                    ends.filter(|&end| self.short.contains(&bytes[start..end]))
                        .map(|end| (start, end)),
                );
            }
        }
        if !self.windows.is_empty() && bytes.len() >= FRAGMENT_LEN {
            // Rolling: each offset's window is the last one shifted by a byte.
            let mut current = window(bytes) >> 8;
            for start in 0..=bytes.len() - FRAGMENT_LEN {
                current =
                    ((current << 8) | u128::from(bytes[start + FRAGMENT_LEN - 1])) & WINDOW_MASK;
                if self.window_bits.may_contain(current) && self.windows.contains(&current) {
                    ranges.push((start, start + FRAGMENT_LEN));
                }
            }
        }
        for cut in cuts(text) {
            ranges.extend(self.edges_at(bytes, cut));
        }
        ranges
    }

    /// The longest secret prefix ending at `cut` and the longest secret suffix starting there.
    fn edges_at(&self, bytes: &[u8], cut: usize) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let longest = |set: &HashSet<Vec<u8>>, range: &dyn Fn(usize) -> Option<(usize, usize)>| {
            (MIN_SECRET_LEN..FRAGMENT_LEN)
                .rev()
                .filter_map(range)
                .find(|&(s, e)| set.contains(&bytes[s..e]))
        };
        let before = |len: usize| cut.checked_sub(len).map(|s| (s, cut));
        let after = |len: usize| (cut + len <= bytes.len()).then_some((cut, cut + len));
        found.extend(longest(&self.prefixes, &before));
        found.extend(longest(&self.suffixes, &after));
        found
    }
}

/// Values longer than this are registered as written only: a token is a few kilobytes at most,
/// and the encoded forms of a multi-megabyte value would multiply its index.
const MAX_ENCODED_LEN: usize = 64 * 1024;

/// The ways a server echoes a value it re-encoded, each different from `value` only when
/// the value has a character the encoding changes: JSON as serde and Go write it, JSON with
/// `/` escaped too (PHP, some Java encoders), percent-encoding (a URL in a redirect), HTML,
/// base64, and lower case (a host name).
fn encoded_forms(value: &str) -> Vec<String> {
    let json = json_escape(value);
    let mut forms = vec![
        json.replace('/', "\\/"),
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
        percent_encode(value, false),
        percent_encode(value, true),
        json,
    ];
    forms.extend(html_forms(value));
    forms.extend(base64_forms(value));
    // A host name is printed lower-cased (the URL parser and DNS fold its case), so a token
    // typed into one must go lower-cased too. Only long values: a short `Default` would make
    // every `default` in the report go.
    if value.len() >= FRAGMENT_LEN {
        forms.push(value.to_ascii_lowercase());
    }
    forms.retain(|f| f != value && f.len() >= MIN_SECRET_LEN);
    forms
}

/// `value` in an HTML error page, as Go's `html/template` writes it (`+` too, so a base64
/// token from an `oauth2-proxy` page has no 12-byte piece left verbatim) and as Python's
/// `html.escape` and most others do.
fn html_forms(value: &str) -> [String; 2] {
    let amp = value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let go = amp
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('+', "&#43;");
    let common = amp.replace('"', "&quot;").replace('\'', "&#x27;");
    [go, common]
}

/// The base64 text (standard and URL-safe alphabets) that encodes `value` wherever it falls in
/// an encoded stream (a `Basic` value, a token a server echoes base64-encoded in a body or a
/// cookie): for each of the three alignments, only the characters that depend on the value's
/// bytes alone, so `base64("user:" + value)` contains one of them verbatim.
fn base64_forms(value: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut forms = Vec::new();
    for lead in 0..3usize {
        let mut bytes = vec![0u8; lead];
        bytes.extend_from_slice(value.as_bytes());
        // The first characters mix the lead bytes in; a last partial group mixes in what
        // follows the value in the stream.
        let skip = [0, 2, 3][lead];
        let whole = bytes.len() / 3 * 4;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&bytes);
            // A short core would be matched anywhere (a base64 run in a certificate).
            if let Some(core) = encoded.get(skip..whole).filter(|c| c.len() >= FRAGMENT_LEN) {
                forms.push(core.to_string());
            }
        }
    }
    forms
}

/// The content of a JSON string holding `value` (without the quotes).
fn json_escape(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

/// `value` with every byte outside RFC 3986's unreserved characters written `%XX` (or `%xx`,
/// `lower`: RFC 3986 makes the hex digits' case insignificant, and some encoders write them so).
fn percent_encode(value: &str, lower: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A window of [`FRAGMENT_LEN`] bytes as one exact hash-set key.
/// The bits of a [`FRAGMENT_LEN`]-byte window in a `u128`.
const WINDOW_MASK: u128 = (1u128 << (8 * FRAGMENT_LEN)) - 1;

/// A set of bytes.
#[derive(Clone, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }
    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

/// One bit per bucket of 2^16 (a window maps to its bucket by a multiplicative hash): no false
/// "absent", so the exact set decides every window whose bit is set.
#[derive(Clone, Default)]
struct WindowBits(Vec<u64>);

impl WindowBits {
    const BUCKET_BITS: u32 = 16;

    fn bucket(window: u128) -> usize {
        let folded = (window as u64) ^ ((window >> 64) as u64);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - Self::BUCKET_BITS)) as usize
    }
    fn insert(&mut self, window: u128) {
        if self.0.is_empty() {
            self.0 = vec![0; (1 << Self::BUCKET_BITS) / 64];
        }
        let b = Self::bucket(window);
        self.0[b / 64] |= 1 << (b % 64);
    }
    fn may_contain(&self, window: u128) -> bool {
        let b = Self::bucket(window);
        self.0.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
}

fn window(bytes: &[u8]) -> u128 {
    bytes[..FRAGMENT_LEN]
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

/// Where truncation may have cut a secret: around every cut mark. (Not the start and end of
/// every string: a target named `good` is not a cut `good-token`.)
fn cuts(text: &str) -> Vec<usize> {
    let mut at = Vec::new();
    for (i, c) in text.char_indices().filter(|(_, c)| CUT_MARKS.contains(c)) {
        at.push(i);
        // A cut made in bytes that split a character leaves U+FFFD before the mark (lossy
        // UTF-8 decoding): the secret's prefix ends before it.
        let mut before = i;
        while text[..before].ends_with(char::REPLACEMENT_CHARACTER) {
            before -= char::REPLACEMENT_CHARACTER.len_utf8();
            at.push(before);
        }
        at.push(i + c.len_utf8());
    }
    at
}

/// `text` with the (merged) byte ranges replaced by one [`REDACTED`] each. Ranges are widened
/// to character boundaries, since a window of bytes may start inside a character.
fn replace_ranges(text: &str, ranges: Vec<(usize, usize)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in merge_ranges(ranges) {
        let start = floor_boundary(text, start.max(at));
        let end = ceil_boundary(text, end);
        if end <= at {
            continue;
        }
        out.push_str(&text[at..start.max(at)]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i.min(text.len())
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

/// GitLab token prefixes (<https://docs.gitlab.com/security/tokens/#token-prefixes>): a word
/// that starts with one is a credential whatever we know about it.
const GITLAB_TOKEN_PREFIXES: &[&str] = &[
    "glpat-",
    "gldt-",
    "glrt-",
    "glrtr-",
    "glcbt-",
    "glptt-",
    "glft-",
    "glimt-",
    "glagent-",
    "gloas-",
    "glsoat-",
    "glffct-",
    "glwt-",
    "GR1348941",
];

/// Masks what is a credential whatever we know: `Bearer <token>` and `Basic <token>` header
/// values, agent tokens `ci:<id>:<token>` / `pat:<id>:<token>`, GitLab tokens (`glpat-…`),
/// JWTs (`eyJ…`), and the body of a PEM `PRIVATE KEY` block (to its end, or to the end of the
/// text when the block was cut). What identifies the kind (`Bearer `, `ci:42:`, `glpat-`) stays.
pub fn redact_patterns(text: &str) -> String {
    let text = redact_pem_keys(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let boundary = prev.is_none_or(|p| !p.is_ascii_alphanumeric());
        if let Some((keep, skip)) = boundary.then(|| pattern_at(rest)).flatten() {
            out.push_str(&rest[..keep]);
            out.push_str(REDACTED);
            rest = &rest[skip..];
            prev = Some(']');
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        prev = Some(c);
    }
    out
}

/// When a credential starts at the beginning of `s`: (bytes kept verbatim, bytes consumed).
fn pattern_at(s: &str) -> Option<(usize, usize)> {
    for prefix in ["ci:", "pat:"] {
        if let Some(after) = s.strip_prefix(prefix) {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && after[digits..].starts_with(':') {
                let keep = prefix.len() + digits + 1;
                return nonempty(keep, token_len(&s[keep..]));
            }
        }
    }
    for scheme in ["bearer ", "basic "] {
        if s.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            let value = &s[scheme.len()..];
            let len = token_len(value);
            // "Bearer token", "Basic authentication": words, not credentials.
            let credential = len >= 6
                && value[..len]
                    .bytes()
                    .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
            return credential.then_some((scheme.len(), scheme.len() + len));
        }
    }
    for prefix in GITLAB_TOKEN_PREFIXES {
        if let Some(after) = s.strip_prefix(prefix) {
            return nonempty(prefix.len(), token_len(after));
        }
    }
    if s.starts_with("eyJ") && token_len(s) >= FRAGMENT_LEN {
        return Some((0, token_len(s)));
    }
    None
}

fn nonempty(keep: usize, secret: usize) -> Option<(usize, usize)> {
    (secret > 0).then_some((keep, keep + secret))
}

/// Length of the credential-shaped word at the start of `s`.
fn token_len(s: &str) -> usize {
    s.find(|c: char| c.is_whitespace() || "\"',;}[])<>\\…".contains(c))
        .unwrap_or(s.len())
}

/// How much of one quoted input (a status line, a header, an error a server returned, a name
/// it said) evidence keeps, in characters.
pub const QUOTE_CHARS: usize = 300;

/// Text that came from outside, fit to quote in a report: secret-shaped patterns and URL
/// passwords are redacted **first**, then the text is cut to `max` characters with a `…` and
/// how much was left out. Redacting before cutting means no cut can halve a `Bearer …` or a JWT
/// into something no pattern recognises; the run's registered secrets (and their fragments at
/// the `…`) are removed later by [`Scrubber::scrub_report`] as everywhere.
pub fn quote(text: &str, max: usize) -> String {
    let clean = redact_url_password(&redact_patterns(text));
    let total = clean.chars().count();
    if total <= max {
        return clean;
    }
    let kept: String = clean.chars().take(max).collect();
    format!("{kept}… ({} more characters)", total - max)
}

/// How much of one name from the input (a cluster, user or context name, a command, a
/// `NO_PROXY` entry, a scheme, a flag's value) a sentence keeps, in characters.
pub const NAME_CHARS: usize = 80;

/// Text that came from outside, set in a sentence between single quotes: [`quote`]d (redacted,
/// then cut), then its `\`, `'` and control characters escaped, so the reader sees where the
/// input begins and ends and a newline in it cannot forge a line of the report. This, not
/// `Debug`, is how input is quoted: `Debug` escapes but redacts nothing.
pub fn quoted(text: &str, max: usize) -> String {
    let mut out = String::from("'");
    for c in quote(text, max).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The longest line of a program's output kept by [`redact_output_line`], in characters.
const OUTPUT_LINE_CHARS: usize = 200;

/// A line a program printed (a credential plugin's stderr or prompt, a tool's unreadable
/// version), fit for evidence: besides what [`Scrubber::scrub`] removes later, every word that
/// looks like a credential we cannot know (24 or more token characters with a digit: keys,
/// session ids, tokens the program fetched itself) becomes [`REDACTED`], and the line is cut to
/// [`OUTPUT_LINE_CHARS`]. Only for such output: a report's own text has long words that are not
/// secrets (fingerprints, resource versions).
pub fn redact_output_line(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if looks_like_credential(word) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    if out.chars().count() <= OUTPUT_LINE_CHARS {
        return out;
    }
    // Cut with the mark the scrubber looks for: a registered secret (a proxy password, without
    // the `@` that would have let its URL be masked) cut to a prefix too short to be a fragment
    // goes only when the cut is marked.
    let mut kept: String = out.chars().take(OUTPUT_LINE_CHARS - 1).collect();
    kept.push(CUT_MARKS[0]);
    kept
}

/// A character of a credential-shaped word (base64, base64url, JWT and opaque token alphabets).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+/=_.-".contains(c)
}

/// Whether `word` looks like a credential nobody told us about: 24 or more token characters,
/// a digit among them (keys, session ids, opaque tokens; not words of prose). The rule
/// [`redact_output_line`] applies to each word a program printed.
pub fn looks_like_credential(word: &str) -> bool {
    word.chars().count() >= 24
        && word.chars().all(is_token_char)
        && word.chars().any(|c| c.is_ascii_digit())
}

/// The body of every `-----BEGIN … PRIVATE KEY-----` block replaced by [`REDACTED`], up to
/// its `-----END` line or, for a block cut short, the end of the text.
fn redact_pem_keys(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    const KEY_END: &str = "PRIVATE KEY-----";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(begin) = rest.find(BEGIN) {
        let line_end = rest[begin..].find('\n').map_or(rest.len(), |i| begin + i);
        let Some(key) = rest[begin..line_end.max(begin)]
            .find(KEY_END)
            .or_else(|| rest[begin..].find(KEY_END).filter(|&i| i < 80))
        else {
            out.push_str(&rest[..begin + BEGIN.len()]);
            rest = &rest[begin + BEGIN.len()..];
            continue;
        };
        let body_start = begin + key + KEY_END.len();
        let body_end = rest[body_start..]
            .find("-----END")
            .map_or(rest.len(), |i| body_start + i);
        out.push_str(&rest[..body_start]);
        if !rest[body_start..body_end].trim().is_empty() {
            out.push_str(REDACTED);
        }
        rest = &rest[body_end..];
    }
    out.push_str(rest);
    out
}

/// Masks the password of every `scheme://user:password@host` in `text`, keeping the user:
/// `http://bob:hunter2@proxy:3128` → `http://bob:***@proxy:3128`. The user information ends at
/// the **last** `@` before whitespace, so a password with an unencoded `/`, `?` or `#` is masked
/// whole. A lone URL without a scheme (`bob:hunter2@proxy:3128`, which curl and Go accept in
/// `HTTPS_PROXY`) is handled too. Text without credentials comes back unchanged.
pub fn redact_url_password(text: &str) -> String {
    if !text.contains('@') {
        return text.to_string();
    }
    if !text.contains("://") {
        let is_lone_url = !text.chars().any(char::is_whitespace);
        if !is_lone_url {
            return text.to_string();
        }
        return mask_userinfo(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let word_start = rest[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| ends_url(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        if !is_scheme_before(&rest[word_start..at]) {
            // `ci:pw://@proxy`, `ci:pw@127://…`: a `://` typed into a URL without a scheme,
            // whose whole word is then read as `user:password@host`.
            let word_end = rest[at..].find(ends_url).map_or(rest.len(), |i| at + i);
            out.push_str(&rest[..word_start]);
            out.push_str(&mask_userinfo(&rest[word_start..word_end]));
            rest = &rest[word_end..];
            continue;
        }
        let authority_start = at + "://".len();
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        let len = url_len(rest);
        out.push_str(&mask_userinfo(&rest[..len]));
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// Whether `c` ends a URL in free text: whitespace or a quoting character.
fn ends_url(c: char) -> bool {
    matches!(c, '"' | '<' | '>' | '`') || c.is_whitespace()
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// Whether `before` (the text of a word up to a `://`) ends in a scheme that starts a URL: a
/// letter then letters, digits, `+`, `-` or `.`, not preceded by a `:` or `@`. In
/// `ci:pw://@proxy`, `ci:pw@127://x` or `http://ci:pa://ss@proxy` the `://` was typed into
/// user information or a host, and what precedes it is not a scheme.
fn is_scheme_before(before: &str) -> bool {
    let start = scheme_start(before);
    let scheme = &before[start..];
    scheme.starts_with(|c: char| c.is_ascii_alphabetic()) && !before[..start].ends_with([':', '@'])
}

/// Where the run of scheme characters that ends `before` starts (a character boundary: what
/// precedes it may be `é`).
fn scheme_start(before: &str) -> usize {
    before
        .char_indices()
        .rev()
        .find(|&(_, c)| !is_scheme_char(c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Length in bytes of the URL at the start of `s` (after its `scheme://`): up to whitespace, a
/// quoting character or the next URL (a `://` after a real scheme, see [`is_scheme_before`]).
fn url_len(s: &str) -> usize {
    let end = s.find(ends_url).unwrap_or(s.len());
    let mut from = 0;
    while let Some(i) = s[from..end].find("://") {
        let next = from + i;
        if is_scheme_before(&s[..next]) {
            // Stop before the next URL's scheme word.
            return scheme_start(&s[..next]);
        }
        from = next + "://".len();
    }
    end
}

/// `url` (`user:password@host:port/path`, no scheme) with what may be a password masked (see
/// [`suspected_password`]), and then any other in what follows it: `http:@@//ci:pw@proxy` (an
/// `@` typed into the scheme) holds a second `user:password@` after the first `@`.
fn mask_userinfo(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(p) = suspected_password(rest) {
        out.push_str(&rest[..p.start]);
        out.push_str(URL_PASSWORD_MASK);
        // `p.end` is the `@`: the next round starts after it, so the loop ends.
        out.push('@');
        rest = &rest[p.end + 1..];
    }
    out.push_str(rest);
    out
}

/// The bytes of `url` (after its `scheme://`) that may be a password: from the first `:` before
/// the `@` of [`userinfo_end`] (skipping a `:port/` ) to that `@`. Also where Go would read the
/// `@` as part of the path (`http://c/i:pw@proxy`, a user mistyped): such text was meant as a
/// password, so it is treated as one, masked and registered, whatever the URL's reading.
pub(crate) fn suspected_password(url: &str) -> Option<std::ops::Range<usize>> {
    let at = userinfo_end(url)?;
    let before = &url[..at];
    let mut from = 0;
    while let Some(colon) = before[from..].find(':') {
        let start = from + colon + 1;
        if start == at {
            return None;
        }
        if !is_port_path(&before[start..]) {
            return Some(start..at);
        }
        from = start;
    }
    None
}

/// The `@` that ends the user information of `url` (`user:password@host/path`, no scheme), if
/// there is one: the last `@` before the first `/`, `?` or `#`, as Go's `net/url` (kubectl)
/// reads it, so an `@` in the path or query is not in the password; failing that the last `@`
/// of all, so that a password with an unencoded `/`, `?` or `#` is still seen as one whole.
pub(crate) fn userinfo_end(url: &str) -> Option<usize> {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    url[..authority_end].rfind('@').or_else(|| url.rfind('@'))
}

/// `6443/api/x` after `host:` is a port and a path with an `@` in it, not a password.
fn is_port_path(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    (1..=5).contains(&digits) && s[digits..].starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_input_is_redacted_cut_escaped_and_visibly_delimited() {
        assert_eq!(quoted("ctx-a", NAME_CHARS), "'ctx-a'");
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJlMTIzNDU2";
        for secret_shaped in [
            format!("Bearer {jwt}"),
            "glpat-abcdefghij0123456789".to_string(),
            "http://bob:hunter2@proxy:3128".to_string(),
        ] {
            let q = quoted(&format!("kubectl {secret_shaped}"), NAME_CHARS);
            assert!(q.starts_with("'kubectl ") && q.ends_with('\''), "{q}");
            for leaked in ["eyJhbG", "abcdefghij0123", "hunter2"] {
                assert!(!q.contains(leaked), "{q}");
            }
        }
        // A newline cannot start a line of its own; a quote inside cannot end the quote.
        assert_eq!(quoted("a\nb's\\c", NAME_CHARS), "'a\\nb\\'s\\\\c'");
        let long = quoted(&"x".repeat(200), NAME_CHARS);
        assert!(long.ends_with("… (120 more characters)'"), "{long}");
    }

    #[test]
    fn a_quote_is_redacted_before_it_is_cut() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJlMTIzNDU2";
        // The cut falls inside the token: cut first, "Bearer eyJhbGc…" would be no pattern.
        let hostile = format!("{} Bearer {token} {}", "x".repeat(290), "y".repeat(20_000));
        let q = quote(&hostile, QUOTE_CHARS);
        assert!(q.chars().count() < QUOTE_CHARS + 40, "{}", q.len());
        assert!(q.contains("… (") && q.contains("more characters)"), "{q}");
        assert!(!q.contains("eyJhbG") && !q.contains("Bearer eyJ"), "{q}");
        assert_eq!(quote("HTTP/1.1 200 OK", QUOTE_CHARS), "HTTP/1.1 200 OK");
        assert_eq!(
            quote("http://bob:hunter2@proxy:3128", 300),
            "http://bob:***@proxy:3128"
        );
    }
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
    fn fragments_of_a_secret_are_removed_wherever_they_appear() {
        let s = scrubber();
        // 12 characters from the middle of the token, inside other text.
        let middle = &TOKEN[3..15];
        let out = s.scrub(&format!("echo {middle} here"));
        assert!(!out.contains(middle), "{out}");
        assert!(out.starts_with("echo ") && out.ends_with(" here"), "{out}");
        // 11 characters in the middle of a line are not a fragment: nothing to cut there.
        let short = &TOKEN[3..14];
        assert_eq!(s.scrub(&format!("x {short} y")), format!("x {short} y"));
    }

    /// The rolling window and the bucket filter skip no offset: every 12-byte piece of the
    /// token, at every position of a text (first, middle, last window), and a short secret
    /// at every position, are removed.
    #[test]
    fn every_window_at_every_offset_is_found() {
        let mut s = scrubber();
        s.add("shortpw1");
        let filler = "x".repeat(FRAGMENT_LEN + 3);
        for start in 0..=TOKEN.len() - FRAGMENT_LEN {
            let piece = &TOKEN[start..start + FRAGMENT_LEN];
            for at in 0..=filler.len() {
                let text = format!("{}{piece}{}", &filler[..at], &filler[at..]);
                assert!(!s.scrub(&text).contains(piece), "{start} at {at}");
            }
        }
        for at in 0..=filler.len() {
            let text = format!("{}shortpw1{}", &filler[..at], &filler[at..]);
            assert!(!s.scrub(&text).contains("shortpw1"), "at {at}");
        }
    }

    #[test]
    fn a_prefix_cut_by_truncation_is_removed() {
        let s = scrubber();
        for len in MIN_SECRET_LEN..TOKEN.len() {
            let cut = &TOKEN[..len];
            for text in [format!("body: x {cut}… (cut)"), format!("body: {cut}…")] {
                let out = s.scrub(&text);
                assert!(!out.contains(cut), "{len}: {out}");
            }
            let tail = &TOKEN[TOKEN.len() - len..];
            let out = s.scrub(&format!("…{tail} rest"));
            assert!(!out.contains(tail), "{len}: {out}");
        }
    }

    #[test]
    fn re_encoded_echoes_are_removed() {
        // A `/` or `+` every few characters: once escaped or percent-encoded, no 12-byte piece
        // of the value is left verbatim.
        let token = "Zq7K/x0+Cana/ryTo+k9f3/e7a1=b5c/Esc\\ap\"e<&>";
        let mut s = Scrubber::new();
        s.add(token);
        let json = serde_json::to_string(token).expect("json");
        let escaped = [
            json.trim_matches('"').to_string(),
            json.trim_matches('"').replace('/', "\\/"),
            json.trim_matches('"')
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026"),
            percent_encode(token, false),
            percent_encode(token, true),
        ];
        for echoed in escaped {
            let out = s.scrub(&format!("body: {echoed} end"));
            assert_eq!(out, "body: [REDACTED] end", "{echoed}");
        }
        // A value every encoding leaves alone is registered once.
        let mut plain = Scrubber::new();
        plain.add(TOKEN);
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn a_long_secret_lower_cased_is_removed_and_a_short_one_is_not() {
        let mut s = Scrubber::new();
        s.add("AbCdEfCanaryT0kenXyZ12");
        s.add("Default");
        assert_eq!(
            s.scrub("config.tls abcdefcanaryt0kenxyz12:9: ok"),
            "config.tls [REDACTED]:9: ok"
        );
        assert_eq!(s.scrub("namespace default"), "namespace default");
    }

    #[test]
    fn a_prefix_cut_inside_a_character_is_removed() {
        // Response::excerpt cuts the body in bytes; a cut inside `ü` decodes to U+FFFD before
        // the `…`.
        let password = "Zuriüch-canary-pw";
        let mut s = Scrubber::new();
        s.add(password);
        let body = format!("{}{password}", "x".repeat(10));
        let response = crate::net::http::Response {
            status: 200,
            headers: Vec::new(),
            body: bytes::Bytes::from(body),
            elapsed: std::time::Duration::ZERO,
            shared: false,
        };
        let excerpt = response.excerpt(15);
        assert!(excerpt.contains("Zuri\u{FFFD}…"), "{excerpt}");
        let out = s.scrub(&excerpt);
        assert!(!out.contains("Zuri"), "{out}");
    }

    #[test]
    fn registration_is_linear_in_the_secret_length() {
        // A 4 MB multi-line value: the old per-line registration took 71 s on it.
        let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkw\n";
        let huge: String = line.repeat(4 * 1024 * 1024 / line.len());
        let mut s = Scrubber::new();
        s.add(&huge);
        assert_eq!(s.len(), 2, "the value and its collapsed form");
        let out = s.scrub(&format!("x {} y", &huge[1000..1100]));
        assert!(!out.contains("QUJDREVGR0hJ"), "{out}");
    }

    #[test]
    fn patterns_are_redacted_whatever_we_know() {
        let s = Scrubber::new();
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let cases = [
            (
                "Authorization: Bearer s3cr3t-T0ken",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "Proxy-Authorization: Basic dXNlcjpwYXNz",
                "Proxy-Authorization: Basic [REDACTED]",
            ),
            (
                "token glpat-abcdefABCDEF1234 end",
                "token glpat-[REDACTED] end",
            ),
            ("job glcbt-64_xyz", "job glcbt-[REDACTED]"),
            ("ci:42:abcDEF123", "ci:42:[REDACTED]"),
            ("pat:7:glpat-x", "pat:7:[REDACTED]"),
        ];
        for (text, want) in cases {
            assert_eq!(s.scrub(text), want);
        }
        assert_eq!(s.scrub(&format!("id {jwt} end")), "id [REDACTED] end");
        assert_eq!(s.scrub(&format!("cut {}…", &jwt[..20])), "cut [REDACTED]…");
        // Words, not credentials.
        for text in [
            "a bearer token",
            "Basic authentication",
            "Basic realm=\"x\"",
        ] {
            assert_eq!(s.scrub(text), text);
        }
    }

    #[test]
    fn opaque_words_of_program_output_are_redacted_with_the_one_marker() {
        let line =
            "session AKIAIOSFODNN7EXAMPLEKEY0123456789 expired; see aws-configure-documentation";
        assert_eq!(
            redact_output_line(line),
            "session [REDACTED] expired; see aws-configure-documentation"
        );
        assert_eq!(redact_output_line(&"x".repeat(500)).chars().count(), 200);
    }

    #[test]
    fn a_program_line_cut_short_keeps_no_prefix_of_a_password() {
        // A plugin quoting the proxy-url it was given: the cut falls inside the password, before
        // the `@` that lets the URL be masked, and leaves fewer bytes than a fragment.
        let s = scrubber();
        for kept in MIN_SECRET_LEN..FRAGMENT_LEN {
            let head = format!("{} proxy http://ci:", "x".repeat(60));
            let pad = "y".repeat(OUTPUT_LINE_CHARS - 1 - head.len() - kept);
            let line = format!("{pad}{head}{PROXY_PASSWORD}@127.0.0.1:3128 refused");
            let out = s.scrub(&redact_output_line(&line));
            assert!(!out.contains(&PROXY_PASSWORD[..kept]), "{kept}: {out}");
            assert!(out.ends_with("ci:[REDACTED]…"), "{kept}: {out}");
        }
    }

    #[test]
    fn an_html_escaped_secret_is_removed() {
        let token = "Zq7K+x0+Cana'ryTo+k9f3+e7a1&b5c\"E<s>c";
        let mut s = Scrubber::new();
        s.add(token);
        let go = "Zq7K&#43;x0&#43;Cana&#39;ryTo&#43;k9f3&#43;e7a1&amp;b5c&#34;E&lt;s&gt;c";
        let python = "Zq7K+x0+Cana&#x27;ryTo+k9f3+e7a1&amp;b5c&quot;E&lt;s&gt;c";
        for echoed in [go, python] {
            assert_eq!(s.scrub(&format!("<p>{echoed}</p>")), "<p>[REDACTED]</p>");
        }
    }

    #[test]
    fn a_base64_encoded_secret_is_removed_at_every_alignment() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let token = "Zq7K/x0+CanaryTok?9f3e7a1b5c>>";
        let mut s = Scrubber::new();
        s.add(token);
        for lead in ["", "u", "ci", "ci:", "user:"] {
            for engine in [&STANDARD, &URL_SAFE] {
                let encoded = engine.encode(format!("{lead}{token}"));
                let out = s.scrub(&format!("body: {encoded} end"));
                assert!(out.contains(REDACTED), "{lead:?}: {out}");
                assert!(!out.contains(&encoded[8..20]), "{lead:?}: {out}");
            }
        }
        // A base64 text that is not one of a secret is left alone.
        let other = STANDARD.encode("a certificate's bytes, not a secret");
        assert_eq!(s.scrub(&other), other);
    }

    #[test]
    fn pem_private_key_blocks_are_redacted_even_when_cut() {
        let s = Scrubber::new();
        let pem =
            "-----BEGIN RSA PRIVATE KEY----- MIIEowIBAAKCAQEAsecret -----END RSA PRIVATE KEY-----";
        assert_eq!(
            s.scrub(pem),
            "-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----"
        );
        let cut = "ca: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq";
        assert_eq!(s.scrub(cut), "ca: -----BEGIN PRIVATE KEY-----[REDACTED]");
        let cert = "-----BEGIN CERTIFICATE----- MIIB -----END CERTIFICATE-----";
        assert_eq!(s.scrub(cert), cert);
    }

    #[test]
    fn url_passwords_with_reserved_characters_are_masked_whole() {
        for pw in ["p#ss", "p?ss", "p/ss", "p'ss", "p@ss"] {
            let url = format!("http://bob:{pw}word@proxy:3128/x");
            assert_eq!(
                redact_url_password(&url),
                "http://bob:***@proxy:3128/x",
                "{pw}"
            );
        }
        assert_eq!(
            redact_url_password("https://host:6443/api/@x"),
            "https://host:6443/api/@x"
        );
        // An `@` after the host is in the path or query: the host stays readable.
        for url in ["https://u:pw@host/api/@x", "https://u:pw@host/?q=a@b"] {
            let want = url.replace(":pw@", ":***@");
            assert_eq!(redact_url_password(url), want);
        }
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
        assert!(one_line.starts_with("bad key line") && one_line.ends_with(REDACTED));
        assert!(!one_line.contains("MIIEvQIBADAN"), "{one_line}");
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
        // A `/` typed into the user: still a password in intent, masked.
        assert_eq!(
            redact_url_password("see http://c/i:hunter2@proxy:3128 here"),
            "see http://c/i:***@proxy:3128 here"
        );
        assert_eq!(
            redact_url_password("http://h:6443/a:hunter2@x"),
            "http://h:6443/a:***@x"
        );
    }

    #[test]
    fn a_scheme_typed_into_user_information_does_not_hide_the_password() {
        for (text, want) in [
            // No scheme, a `://` typed into it: the whole word is `user:password@host`.
            (
                "HTTPS_PROXY=ci:hunter2://@proxy:3128: no scheme",
                "HTTPS_PROXY=ci:***@proxy:3128: no scheme",
            ),
            ("ci:hunter2@127://0.0.1:9", "ci:***@127://0.0.1:9"),
            ("ci:hunter2@proxy:3128://", "ci:***@proxy:3128://"),
            // A whitespace of more than one byte before it.
            ("x\u{3000}ci:hunter2://@proxy", "x\u{3000}ci:***@proxy"),
            // A `://` in a password is no second URL.
            (
                "http://ci:hun://ter2@proxy:3128",
                "http://ci:***@proxy:3128",
            ),
            // An `@` typed into the scheme: the second user's password goes too.
            ("http:@@//ci:hunter2@proxy", "http:***@//ci:***@proxy"),
        ] {
            assert_eq!(redact_url_password(text), want, "{text}");
        }
        // A character of more than one byte before the second URL's scheme.
        assert_eq!(
            redact_url_password("http://a/éhttp://u:pw@h"),
            "http://a/éhttp://u:***@h"
        );
        // A URL in another's query is a second URL, masked on its own.
        assert_eq!(
            redact_url_password("https://a/?next=https://u:pw@c x"),
            "https://a/?next=https://u:***@c x"
        );
    }

    /// Every text of up to 4 pieces from URL delimiters, multi-byte characters (`é`, an
    /// ideographic space, the cut mark, U+FFFD) and letters, alone, after `http://` and before
    /// a URL with a password: the redaction point and the URL parser never panic (a slice inside
    /// `é` once did, in `url_len`). 163,000 texts, a few seconds.
    #[test]
    fn no_text_of_tricky_characters_panics_the_redaction() {
        let atoms = [
            "é", "@", ":", "/", "://", " ", "\u{3000}", "…", "a", "?", "#", "[", "%", "\u{FFFD}",
            "1",
        ];
        let mut s = Scrubber::new();
        s.add("a:é@/");
        s.add("éé…a");
        let n = atoms.len();
        let mut count = 0;
        for len in 1..=4u32 {
            for mut i in 0..n.pow(len) {
                let mut text = String::new();
                for _ in 0..len {
                    text.push_str(atoms[i % n]);
                    i /= n;
                }
                for t in [
                    text.clone(),
                    format!("http://{text}"),
                    format!("{text}http://u:p@h"),
                ] {
                    let _ = quote(&t, 3);
                    let _ = redact_output_line(&t);
                    let _ = s.scrub(&t);
                    let _ = crate::targets::url::display_raw(&t);
                    let _ = crate::targets::url::secrets_of(&t);
                    count += 1;
                }
            }
        }
        assert_eq!(count, 3 * (15 + 225 + 3375 + 50625));
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
            "see https://a/x@y and http://b:8080/@c",
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
        let report = RunReport {
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
        let report = scrubber().scrub_report(report);
        let debug = format!("{report:?}");
        for canary in [TOKEN, JOB_TOKEN, PROXY_PASSWORD, KEY_LINE, "canary"] {
            assert!(!debug.contains(canary), "{canary} survived in {debug}");
        }
        assert_eq!(report.targets[0].server, "https://bob:***@api:6443");
        assert_eq!(report.checks[0].summary, "summary [REDACTED]");
    }
}
