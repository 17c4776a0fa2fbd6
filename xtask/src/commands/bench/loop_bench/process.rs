//! Commands the bench runs: each in a process group of its own, its output
//! to a log file, timed from spawn to exit. A command whose run is dropped
//! (the bench failed or was interrupted) gets SIGTERM, so that `cargo xtask
//! run` cleans up what it made on the engine, and is waited for a while.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use harness::error::IoContext;
use harness::{Error, Result};

/// How long a dropped command may take to clean up after SIGTERM before it
/// gets SIGKILL.
const GRACE: Duration = Duration::from_secs(20);
/// Lines of a failed command's log shown in the error.
pub const TAIL_LINES: usize = 15;

/// A finished command.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// From spawn to exit.
    pub wall: Duration,
}

/// Runs `command` (stdin closed, stdout and stderr to `log`) and waits for it.
pub async fn run_logged(mut command: tokio::process::Command, log: &Path) -> Result<Finished> {
    let file = std::fs::File::create(log).with_path("cannot create the log", log)?;
    let err = file.try_clone().with_path("cannot open the log", log)?;
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0);
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let started = Instant::now();
    let child = command.spawn().map_err(|e| {
        Error::Failed(format!(
            "bench loop: cannot start `{program}`: {e}\n  fix: check that it exists and is executable"
        ))
    })?;
    let mut group = Group { child, done: false };
    let status = group
        .child
        .wait()
        .await
        .map_err(|e| Error::Failed(format!("bench loop: waiting for `{program}`: {e}")))?;
    let wall = started.elapsed();
    group.done = true;
    Ok(Finished { status, wall })
}

/// A running command's process group; stopped when dropped before the
/// command finished.
struct Group {
    child: tokio::process::Child,
    done: bool,
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(pid) = self.child.id() else {
            return;
        };
        let group = Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.try_wait();
    }
}

/// The last `n` non-empty lines of a log, for an error message.
pub fn log_tail(log: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(log).unwrap_or_default();
    harness::text::last_lines(&String::from_utf8_lossy(&text), n)
}

/// `what` failed: the tail of its log and where the log is.
pub fn failed(what: &str, how: &str, log: &Path) -> Error {
    let message = format!("bench loop: {what} {how}");
    let mut message = super::super::with_tail(message, &log_tail(log, TAIL_LINES));
    message.push_str(&format!("\n  full log: {}", log.display()));
    Error::Failed(message)
}

/// `exited with code 2`, `was killed by signal 9`.
pub fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended abnormally".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let done = run_logged(command, &log).await.unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(describe_status(&done.status), "exited with code 3");
        let tail = log_tail(&log, 5);
        assert_eq!(tail.len(), 2, "{tail:?}");
        let err = failed("`sh`", &describe_status(&done.status), &log).to_string();
        assert!(err.contains("`sh` exited with code 3; last lines"), "{err}");
        assert!(err.contains("full log: "), "{err}");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let command = tokio::process::Command::new("/nonexistent/pachbuild-bench");
        let err = run_logged(command, &dir.path().join("x.log"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot start `/nonexistent/pachbuild-bench`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_dropped_run_stops_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let marker = dir.path().join("child.pid");
        let mut command = tokio::process::Command::new("sh");
        command.args([
            "-c",
            &format!("sleep 30 & echo $! > {}; wait", marker.display()),
        ]);
        let run = run_logged(command, &log);
        // Dropped after a short while: the shell and its sleep both stop.
        let _ = tokio::time::timeout(Duration::from_millis(500), run).await;
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init.
            stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")
        });
        assert!(gone, "the grandchild {pid} is still running");
    }
}
