//! The report sinks: job log ([`console`]), JUnit ([`junit`]) and JSON ([`json`]), all written
//! from the same finished, already scrubbed report: each takes only a [`ScrubbedReport`], which
//! only the scrubber makes.
//!
//! Owns: where each report goes ([`ReportSinks`]), the rule that every requested sink is
//! attempted even when another failed (spec §3; nextest's reporter stops at the first failure,
//! we do not), creating a report file's parent folders, and the sink error type. Reports are
//! rendered in memory first, so a failure never leaves half a JUnit file behind.
//!
//! Must not: look at the environment, decide colour (the caller passes [`ConsoleOptions`]),
//! scrub secrets (the engine's `Scrubber::scrub_report` makes the [`ScrubbedReport`] they take), or decide
//! the exit status (a sink error is the tool's own breakage: `main` maps it to 3).

pub mod console;
pub mod json;
pub mod junit;

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::secret::ScrubbedReport;

pub use console::{ColorChoice, ConsoleOptions, Styles, resolve_color};
pub use junit::JunitOptions;

/// Which stream the job-log summary goes to when nothing forces it elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleStream {
    #[default]
    Stdout,
    Stderr,
}

/// Where the JSON report goes: `--json -` is stdout, anything else a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonDestination {
    Stdout,
    File(PathBuf),
}

impl JsonDestination {
    /// Reads a `--json` value: `-` means stdout.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            JsonDestination::Stdout
        } else {
            JsonDestination::File(PathBuf::from(arg))
        }
    }
}

/// Every report the run was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportSinks {
    /// The preferred stream for the job-log summary; see [`ReportSinks::console_stream`].
    pub console: ConsoleStream,
    /// `--junit PATH`.
    pub junit: Option<PathBuf>,
    /// `--json PATH` or `--json -`.
    pub json: Option<JsonDestination>,
    /// How the JUnit report writes warnings (`--fail-on warn` makes them failures).
    pub junit_options: junit::JunitOptions,
}

impl ReportSinks {
    /// The stream the summary really goes to: stderr whenever JSON goes to stdout, so that
    /// stdout stays pure JSON. Use this stream's tty-ness when resolving colour.
    pub fn console_stream(&self) -> ConsoleStream {
        match self.json {
            Some(JsonDestination::Stdout) => ConsoleStream::Stderr,
            _ => self.console,
        }
    }
}

/// Which report an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Console,
    Junit,
    Json,
}

impl fmt::Display for ReportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReportFormat::Console => "job-log",
            ReportFormat::Junit => "junit",
            ReportFormat::Json => "json",
        })
    }
}

/// Where a report was being written when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    Stderr,
    File(PathBuf),
    /// A writer handed to a format's own `write` function, whose name that function cannot know.
    Writer,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Stdout => f.write_str("stdout"),
            Destination::Stderr => f.write_str("stderr"),
            Destination::File(path) => write!(f, "{}", path.display()),
            Destination::Writer => f.write_str("the output"),
        }
    }
}

/// A report could not be written. This is the tool's own breakage, never a finding.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create folder {} for the {format} report: {source}", path.display())]
    CreateDir {
        format: ReportFormat,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the {format} report to {dest}: {source}")]
    Write {
        format: ReportFormat,
        dest: Destination,
        #[source]
        source: io::Error,
    },
    #[error("cannot serialise the {format} report for {dest}: {source}")]
    Serialize {
        format: ReportFormat,
        dest: Destination,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ReportError {
    pub(crate) fn write(format: ReportFormat, source: io::Error) -> Self {
        ReportError::Write {
            format,
            dest: Destination::Writer,
            source,
        }
    }

    pub(crate) fn serialize(
        format: ReportFormat,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ReportError::Serialize {
            format,
            dest: Destination::Writer,
            source: Box::new(source),
        }
    }

    /// The same error, naming where the report was going.
    fn at(self, new_dest: Destination) -> Self {
        match self {
            ReportError::Write { format, source, .. } => ReportError::Write {
                format,
                dest: new_dest,
                source,
            },
            ReportError::Serialize { format, source, .. } => ReportError::Serialize {
                format,
                dest: new_dest,
                source,
            },
            other @ ReportError::CreateDir { .. } => other,
        }
    }

    pub fn format(&self) -> ReportFormat {
        match self {
            ReportError::CreateDir { format, .. }
            | ReportError::Write { format, .. }
            | ReportError::Serialize { format, .. } => *format,
        }
    }
}

/// Writes every requested report, attempting each even when an earlier one failed, and returns
/// the failures (empty when all went well). JUnit and file JSON are rendered in memory and then
/// written, creating parent folders; JSON for stdout goes to `stdout`; the job-log summary goes
/// to [`ReportSinks::console_stream`] (`stderr` when JSON takes stdout).
pub fn write_all(
    report: &ScrubbedReport,
    sinks: &ReportSinks,
    console_options: &ConsoleOptions,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Vec<ReportError> {
    let mut errors = Vec::new();
    if let Some(path) = &sinks.junit {
        errors.extend(
            write_file(path, ReportFormat::Junit, |buf| {
                junit::write(report, sinks.junit_options.clone(), buf)
            })
            .err(),
        );
    }
    match &sinks.json {
        Some(JsonDestination::File(path)) => {
            errors
                .extend(write_file(path, ReportFormat::Json, |buf| json::write(report, buf)).err());
        }
        Some(JsonDestination::Stdout) => {
            let written = write_stream(stdout, Destination::Stdout, ReportFormat::Json, |out| {
                json::write(report, out)
            });
            errors.extend(written.err());
        }
        None => {}
    }
    let console = |out: &mut dyn Write| console::write(report, console_options, out);
    let written = match sinks.console_stream() {
        ConsoleStream::Stdout => {
            write_stream(stdout, Destination::Stdout, ReportFormat::Console, console)
        }
        ConsoleStream::Stderr => {
            write_stream(stderr, Destination::Stderr, ReportFormat::Console, console)
        }
    };
    errors.extend(written.err());
    errors
}

/// Renders into memory, then creates the parent folder and writes the file.
fn write_file(
    path: &Path,
    format: ReportFormat,
    render: impl FnOnce(&mut dyn Write) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let dest = || Destination::File(path.to_path_buf());
    let mut buf = Vec::new();
    render(&mut buf).map_err(|e| e.at(dest()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ReportError::CreateDir {
            format,
            path: parent.to_path_buf(),
            source,
        })?;
    }
    // Non-blocking create: a FIFO put at the path fails at once instead of hanging the run.
    crate::env::create_report_file(path)
        .and_then(|mut file| file.write_all(&buf))
        .map_err(|source| ReportError::Write {
            format,
            dest: dest(),
            source,
        })
}

/// Writes to a stream and flushes it.
fn write_stream(
    out: &mut dyn Write,
    dest: Destination,
    format: ReportFormat,
    render: impl FnOnce(&mut dyn Write) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    // Rendered into memory, then written at once: stdout is line-buffered, and a fleet's
    // summary is thousands of lines, each a system call of its own otherwise.
    let mut buf = Vec::new();
    render(&mut buf).map_err(|e| e.at(dest.clone()))?;
    (out.write_all(&buf))
        .and_then(|()| out.flush())
        .map_err(|source| ReportError::Write {
            format,
            dest,
            source,
        })
}

/// Report text made safe for one log line or XML attribute: [`clean_text`], newlines and
/// tabs as spaces.
pub(crate) fn one_line(text: &str) -> String {
    clean_text(text).replace(['\n', '\t'], " ")
}

/// Text made safe for a job log or an XML file: ANSI escape sequences removed, `\r` dropped
/// (GitLab treats a bare `\r` as "clear the line"), other control characters and the
/// non-characters XML 1.0 forbids replaced by U+FFFD. Newlines and tabs are kept.
pub(crate) fn clean_text(text: &str) -> Cow<'_, str> {
    let needs_cleaning = text
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_xml_nonchar(c));
    if !needs_cleaning {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => skip_escape_sequence(&mut chars),
            '\r' => {}
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_xml_nonchar(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_xml_nonchar(c: char) -> bool {
    matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// Consumes the rest of an escape sequence whose ESC was just read: a CSI (`ESC [` parameters,
/// final byte `@`..`~`), an OSC (`ESC ]` up to BEL or `ESC \`), or an escape with intermediate
/// bytes (`ESC ( B`); any other `ESC x` is two characters.
fn skip_escape_sequence(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            let _ = chars.by_ref().find(|c| ('@'..='~').contains(c));
        }
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                    break;
                }
            }
        }
        // `ESC ( B` and friends: intermediate bytes, then one final byte.
        Some(' '..='/') => {
            let _ = chars.by_ref().find(|c| !(' '..='/').contains(c));
        }
        Some(_) | None => {}
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{CANARIES, canary_report, sample_report};
    use super::*;
    use crate::secret::Scrubber;

    /// The sample report, taken as scrubbed (it carries no secret).
    fn sample() -> ScrubbedReport {
        ScrubbedReport::assumed_for_test(sample_report())
    }

    fn options() -> ConsoleOptions {
        ConsoleOptions {
            styles: Styles::default(),
            sections: true,
            timestamp: 1_700_000_000,
            run_id: "r1".into(),
        }
    }

    #[test]
    fn clean_text_strips_ansi_and_controls() {
        assert_eq!(
            clean_text("plain\nline\ttab"),
            Cow::Borrowed("plain\nline\ttab")
        );
        assert_eq!(
            clean_text("\x1b[31mred\x1b[0m x\r\n\x07\u{FFFF}"),
            "red x\n\u{FFFD}\u{FFFD}"
        );
        assert_eq!(
            clean_text("\x1b[0Ksection_start:1:x\r\x1b[0K"),
            "section_start:1:x"
        );
    }

    #[test]
    fn json_dash_means_stdout() {
        assert_eq!(JsonDestination::from_arg("-"), JsonDestination::Stdout);
        assert_eq!(
            JsonDestination::from_arg("out/r.json"),
            JsonDestination::File(PathBuf::from("out/r.json"))
        );
    }

    #[test]
    fn json_on_stdout_moves_the_console_to_stderr() {
        let report = sample();
        let sinks = ReportSinks {
            json: Some(JsonDestination::Stdout),
            ..ReportSinks::default()
        };
        assert_eq!(sinks.console_stream(), ConsoleStream::Stderr);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let errors = write_all(&report, &sinks, &options(), &mut stdout, &mut stderr);
        assert!(errors.is_empty(), "{errors:?}");
        let json: serde_json::Value = serde_json::from_slice(&stdout).expect("stdout is pure JSON");
        assert_eq!(json["tool"]["name"], "kube-reach");
        assert!(String::from_utf8_lossy(&stderr).contains("section_start:"));
    }

    #[test]
    fn files_are_written_with_parent_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junit_path = dir.path().join("a/b/junit.xml");
        let json_path = dir.path().join("c/report.json");
        let sinks = ReportSinks {
            console: ConsoleStream::Stdout,
            junit: Some(junit_path.clone()),
            json: Some(JsonDestination::File(json_path.clone())),
            ..ReportSinks::default()
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let errors = write_all(&sample(), &sinks, &options(), &mut stdout, &mut stderr);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            std::fs::read_to_string(&junit_path)
                .expect("junit")
                .starts_with("<?xml")
        );
        assert!(
            std::fs::read_to_string(&json_path)
                .expect("json")
                .ends_with("}\n")
        );
        assert!(!stdout.is_empty() && stderr.is_empty());
    }

    #[test]
    fn every_sink_is_attempted_and_errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where a folder should be: the JUnit parent folder cannot be created.
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "").expect("blocker file");
        let junit_path = blocker.join("junit.xml");
        // A folder where the JSON file should be: the write fails.
        let json_path = dir.path().join("is-a-dir");
        std::fs::create_dir(&json_path).expect("dir");
        let sinks = ReportSinks {
            console: ConsoleStream::Stdout,
            junit: Some(junit_path),
            json: Some(JsonDestination::File(json_path.clone())),
            ..ReportSinks::default()
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let errors = write_all(&sample(), &sinks, &options(), &mut stdout, &mut stderr);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let junit_msg = errors[0].to_string();
        assert!(
            junit_msg.starts_with("cannot create folder") && junit_msg.contains("blocker"),
            "{junit_msg}"
        );
        let json_msg = errors[1].to_string();
        assert!(
            json_msg.starts_with("cannot write the json report to"),
            "{json_msg}"
        );
        assert!(
            json_msg.contains(&json_path.display().to_string()),
            "{json_msg}"
        );
        assert!(!stdout.is_empty(), "the console summary is still written");
    }

    #[test]
    fn a_failing_stream_is_reported_and_the_rest_still_written() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let junit_path = dir.path().join("junit.xml");
        let sinks = ReportSinks {
            junit: Some(junit_path.clone()),
            ..ReportSinks::default()
        };
        let errors = write_all(&sample(), &sinks, &options(), &mut Broken, &mut Vec::new());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "cannot write the job-log report to stdout: pipe closed"
        );
        assert!(junit_path.exists());
    }

    #[test]
    fn canary_secrets_reach_no_output() {
        let (report, scrubber): (_, Scrubber) = canary_report();
        let report = scrubber.scrub_report(report);
        let dir = tempfile::tempdir().expect("tempdir");
        let junit_path = dir.path().join("junit.xml");
        let sinks = ReportSinks {
            console: ConsoleStream::Stdout,
            junit: Some(junit_path.clone()),
            json: Some(JsonDestination::Stdout),
            ..ReportSinks::default()
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut colored = options();
        colored.styles.colorize();
        let errors = write_all(&report, &sinks, &colored, &mut stdout, &mut stderr);
        assert!(errors.is_empty(), "{errors:?}");
        let outputs = [
            ("json", String::from_utf8_lossy(&stdout).into_owned()),
            ("console", String::from_utf8_lossy(&stderr).into_owned()),
            (
                "junit",
                std::fs::read_to_string(&junit_path).expect("junit"),
            ),
        ];
        for (name, text) in &outputs {
            for canary in CANARIES {
                assert!(
                    !text.contains(canary),
                    "{canary} leaked into the {name} report:\n{text}"
                );
            }
            assert!(
                text.contains("[REDACTED]"),
                "the {name} report shows where a secret was"
            );
        }
    }
}
