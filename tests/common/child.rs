//! The one way the test suites run a program to completion (kube-reach, kubectl, openssl,
//! xmllint, `ip`, the netns self-test's own binary): under a hard time limit, with what it
//! prints captured up to a bound. A hung child, or one whose output stays open or floods, fails
//! its test instead of hanging the suite or filling memory. (Long-running daemons a test starts
//! and stops itself are spawned where they are managed.)

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Exit code (None if killed by a signal), stdout, stderr.
pub type Finished = (Option<i32>, String, String);

/// The most a child may print on each stream; more fails the test.
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// How long the output may stay open after the child ended (a grandchild holding it).
const OUTPUT_GRACE: Duration = Duration::from_secs(10);

/// Runs `cmd` with piped output; kills it and panics after `limit`. Panics as well when a
/// stream exceeds [`MAX_OUTPUT`] or stays open [`OUTPUT_GRACE`] after the child ended.
pub fn run_bounded(cmd: Command, limit: Duration) -> Finished {
    try_run_bounded(cmd, limit).unwrap_or_else(|why| panic!("{why}"))
}

/// [`run_bounded`] that says what went wrong instead of panicking, for code that runs while a
/// test unwinds (cleanup).
pub fn try_run_bounded(mut cmd: Command, limit: Duration) -> Result<Finished, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{program} does not start: {e}"))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(format!("{program}: no pipes"));
    };
    let (out, err) = (drain(stdout), drain(stderr));
    let deadline = Instant::now() + limit;
    // Polled from 1 ms up to 20 ms: most children (`ip`, `dig`) end within milliseconds, and the
    // netns suite runs thousands of them.
    let mut pause = Duration::from_millis(1);
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{program} did not finish within {limit:?}"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let until = Instant::now() + OUTPUT_GRACE;
    let stdout = collect(&out, until, &program, "stdout")?;
    let stderr = collect(&err, until, &program, "stderr")?;
    Ok((code, stdout, stderr))
}

/// What one stream printed, kept up to [`MAX_OUTPUT`], and whether it printed more.
type Captured = (Vec<u8>, bool);

/// Reads `pipe` to its end on a thread of its own: the first [`MAX_OUTPUT`] bytes are kept,
/// the rest read and dropped (so the child never blocks on a full pipe).
fn drain(pipe: impl Read + Send + 'static) -> mpsc::Receiver<Captured> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut pipe = pipe;
        let mut kept = Vec::new();
        let _ = (&mut pipe)
            .take(MAX_OUTPUT as u64 + 1)
            .read_to_end(&mut kept);
        let flooded = kept.len() > MAX_OUTPUT;
        kept.truncate(MAX_OUTPUT);
        if flooded {
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        }
        let _ = tx.send((kept, flooded));
    });
    rx
}

fn collect(
    rx: &mpsc::Receiver<Captured>,
    until: Instant,
    program: &str,
    name: &str,
) -> Result<String, String> {
    let wait = until.saturating_duration_since(Instant::now());
    let (kept, flooded) = rx
        .recv_timeout(wait)
        .map_err(|_| format!("{program}'s {name} stayed open {OUTPUT_GRACE:?} after it ended"))?;
    if flooded {
        return Err(format!(
            "{program} printed more than {MAX_OUTPUT} bytes on {name}"
        ));
    }
    Ok(String::from_utf8_lossy(&kept).into_owned())
}

#[cfg(test)]
mod self_test {
    use std::process::Command;
    use std::time::Duration;

    use super::{MAX_OUTPUT, run_bounded};

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn output_and_exit_code_are_captured() {
        let (code, out, err) = run_bounded(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
        );
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Some(3), "out\n", "err\n")
        );
    }

    #[test]
    #[should_panic(expected = "did not finish within")]
    fn a_child_that_hangs_fails_at_the_limit() {
        run_bounded(sh("exec sleep 30"), Duration::from_millis(300));
    }

    #[test]
    #[should_panic(expected = "printed more than")]
    fn a_child_that_floods_its_output_fails() {
        let bytes = MAX_OUTPUT + 1;
        run_bounded(
            sh(&format!("head -c {bytes} /dev/zero")),
            Duration::from_secs(30),
        );
    }
}
