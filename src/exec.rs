//! Bounded child processes: the job's own tools (`kubectl version`, `helm version`), run the way
//! client-go runs credential plugins (no TTY, stdin closed, the job's environment), each in a
//! process group of its own that is killed, grandchildren included, when `timeout` passes.
//! Output is capped, so a chatty or hostile program cannot exhaust memory, and a program that
//! never exits cannot hang the run. Knows nothing about what the program means.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// At most this much of each output stream is kept.
pub const OUTPUT_CAP: usize = 64 * 1024;
/// How often a running child is polled for its exit.
const POLL: Duration = Duration::from_millis(10);
/// Tries to start a program whose file is momentarily busy (see [`spawn`]).
const SPAWN_ATTEMPTS: u32 = 20;
/// How long output is still read after a child killed at the timeout, so that what its group
/// wrote before the kill is kept.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// How a child ended and what it printed (both streams capped at [`OUTPUT_CAP`]).
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it (our kill at the timeout included).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Killed because it did not exit within the timeout.
    pub timed_out: bool,
}

/// The program could not be started at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {program}: {source}")]
pub struct SpawnError {
    pub program: String,
    #[source]
    pub source: std::io::Error,
}

/// The first executable file called `name` in `path_var` (a `PATH` value), the way a shell
/// finds it; `None` when there is none.
pub fn which(name: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `program args` with exactly `env` as its environment, stdin closed, and kills its
/// process group after `timeout`. Blocking: call it from `spawn_blocking`.
pub fn run(
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Finished, SpawnError> {
    let started = Instant::now();
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: the kill at the timeout reaches what a script started, too.
        .process_group(0);
    let mut child = spawn(&mut command).map_err(|source| SpawnError {
        program: program.display().to_string(),
        source,
    })?;
    let stdout = capture(child.stdout.take());
    let stderr = capture(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(POLL),
            Ok(None) | Err(_) => {
                timed_out = true;
                kill_group(child.id());
                let _ = child.kill();
                break child.wait().ok().and_then(|s| s.code());
            }
        }
    };
    // What is left of the group goes too, which closes its ends of the pipes.
    kill_group(child.id());
    // Output still in the pipes is read to its end, as Go's `exec.Cmd.Wait` (kubectl's) does:
    // taking it at once lost the tail of a plugin's answer when the reader thread was not
    // scheduled in time. A grandchild that left the group can hold a pipe open: the wait ends
    // at the timeout (at least [`DRAIN_GRACE`] after the exit) with what arrived so far.
    let drain_until = (started + timeout).max(Instant::now() + DRAIN_GRACE);
    Ok(Finished {
        status,
        stdout: stdout.finish(drain_until),
        stderr: stderr.finish(drain_until),
        timed_out,
    })
}

/// Spawns `command`, retrying a few times on `ETXTBSY`: a program file that was just written
/// (a wrapper script an earlier job step made) can still be open for writing in a child that
/// another thread forked and that has not reached its own exec yet. Bounded: at most
/// [`SPAWN_ATTEMPTS`] tries, [`POLL`] apart.
fn spawn(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempt = 1;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < SPAWN_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(POLL);
            }
            other => return other,
        }
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals that process group; it has no memory
        // effects in this process. The group is the child's own (process_group(0) above).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

type Buffer = Arc<Mutex<Vec<u8>>>;

/// One output stream being read on a thread of its own.
struct Capture {
    buffer: Buffer,
    /// Disconnected when the reading thread ends: the stream reached its end (or failed).
    ended: mpsc::Receiver<()>,
}

impl Capture {
    /// The text read once the stream has ended, or by `until` if it has not.
    fn finish(&self, until: Instant) -> String {
        let left = until.saturating_duration_since(Instant::now());
        // Nothing is ever sent: the wait ends when the thread drops its sender, or at `until`.
        let _ = self.ended.recv_timeout(left);
        self.buffer
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// Reads `pipe` on a thread into a shared buffer, keeping at most [`OUTPUT_CAP`] bytes and
/// discarding the rest (so the child never blocks on a full pipe).
fn capture(pipe: Option<impl Read + Send + 'static>) -> Capture {
    let buffer = Buffer::default();
    let (sender, ended) = mpsc::channel::<()>();
    if let Some(mut pipe) = pipe {
        let shared = buffer.clone();
        std::thread::spawn(move || {
            let _ended_when_dropped = sender;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = shared.lock() {
                    let room = OUTPUT_CAP.saturating_sub(b.len());
                    b.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        });
    }
    Capture { buffer, ended }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_program_that_never_exits_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let hang = script(dir.path(), "hang", "echo started; sleep 30; echo never");
        let ran = run(&hang, &[], &[], Duration::from_millis(300)).unwrap();
        assert!(ran.timed_out);
        assert_eq!(
            ran.stdout.trim(),
            "started",
            "killed before it printed more"
        );
    }

    #[test]
    fn stdin_is_closed_and_the_environment_is_exactly_what_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let prog = script(
            dir.path(),
            "prog",
            "read line; echo \"read=$? A=$A HOME=${HOME:-unset}\"; echo oops >&2; exit 3",
        );
        let env = [("A".to_string(), "1".to_string())];
        let ran = run(&prog, &[], &env, Duration::from_secs(5)).unwrap();
        assert!(!ran.timed_out);
        assert_eq!(ran.status, Some(3));
        assert_eq!(ran.stdout.trim(), "read=1 A=1 HOME=unset");
        assert_eq!(ran.stderr.trim(), "oops");
    }

    /// A program that starts `escaped` (shell) in a session of its own, which keeps its
    /// stdout, waits until it has left the group (the kill at the exit would reach it before;
    /// bounded by the run's timeout), prints `early` and exits.
    fn leaves_a_writer_behind(dir: &Path, escaped: &str) -> PathBuf {
        let ready = dir.join("ready");
        script(
            dir,
            "prog",
            &format!(
                "setsid sh -c 'touch {0}; {escaped}' &\nwhile [ ! -e {0} ]; do sleep 0.01; done\necho early",
                ready.display()
            ),
        )
    }

    /// Go's `exec.Cmd.Wait` (so kubectl) reads a plugin's output to its end. Taking it the
    /// moment the program exited lost output still on its way: here the whole tail (written by
    /// a process that left the group), before, under load, the end of an ExecCredential.
    #[test]
    fn output_still_in_the_pipe_when_the_program_exits_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let prog = leaves_a_writer_behind(dir.path(), "sleep 0.3; echo late");
        let ran = run(&prog, &[], &[], Duration::from_secs(10)).unwrap();
        assert!(!ran.timed_out);
        assert_eq!(ran.status, Some(0));
        assert_eq!(ran.stdout, "early\nlate\n");
    }

    /// A process that left the group and holds the pipe open forever does not hold the run:
    /// the output is read until the timeout, then taken as it is.
    #[test]
    fn a_pipe_held_open_by_an_escaped_process_ends_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let prog = leaves_a_writer_behind(dir.path(), "exec sleep 3");
        let ran = run(&prog, &[], &[], Duration::from_millis(300)).unwrap();
        assert_eq!(ran.status, Some(0));
        assert_eq!(ran.stdout, "early\n");
    }

    #[test]
    fn output_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let chatty = script(
            dir.path(),
            "chatty",
            "head -c 1000000 /dev/zero | tr '\\0' x",
        );
        let ran = run(&chatty, &[], &[], Duration::from_secs(5)).unwrap();
        assert_eq!(ran.stdout.len(), OUTPUT_CAP);
    }

    #[test]
    fn which_finds_only_executable_files() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "kubectl", "true");
        std::fs::write(dir.path().join("helm"), "not executable").unwrap();
        let path = format!("/nonexistent::{}", dir.path().display());
        assert_eq!(which("kubectl", &path), Some(dir.path().join("kubectl")));
        assert_eq!(which("helm", &path), None);
    }
}
