//! The peak memory of a command: `cargo xtask bench loop --rss-probe REPORT
//! -- COMMAND...` (hidden) runs COMMAND, waits for it, and writes its exit,
//! its wall-clock time and `getrusage(RUSAGE_CHILDREN)`'s `ru_maxrss` to
//! REPORT (JSON).
//!
//! A process of its own, so that the children it has waited for are
//! COMMAND and COMMAND's own children only: `ru_maxrss` of
//! `RUSAGE_CHILDREN` is the largest of them, and the bench itself runs
//! many commands (docker CLI calls, earlier runs) that would hide a smaller
//! peak.

use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use nix::sys::resource::{getrusage, UsageWho};
use serde::{Deserialize, Serialize};

use harness::error::{exit, IoContext};
use harness::{Error, Result};

/// What the probe found out about its command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The exit code (none when a signal ended it).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Wall-clock seconds from spawn to exit.
    pub wall_s: f64,
    /// Peak resident memory (KiB) of the command and the children it waited for.
    pub max_rss_kib: u64,
}

impl ProbeReport {
    pub fn read(path: &Path) -> Result<ProbeReport> {
        let text = std::fs::read_to_string(path).with_path("cannot read the probe report", path)?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Failed(format!(
                "bench loop: the probe report {} is not valid: {e}",
                path.display()
            ))
        })
    }

    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// `exited with code 2`, `was killed by signal 9`.
    pub fn describe_exit(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended abnormally".to_string(),
        }
    }
}

/// The probe's own run: `command` (program and arguments) with stdin,
/// stdout and stderr inherited.
pub fn run_probe(report: &Path, command: &[OsString]) -> Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    let Some((program, args)) = command.split_first() else {
        return Err(Error::Usage(
            "--rss-probe REPORT needs the command after `--`".to_string(),
        ));
    };
    let started = Instant::now();
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| {
            Error::Failed(format!(
                "rss probe: cannot start {}: {e}",
                Path::new(program).display()
            ))
        })?;
    let wall = started.elapsed();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)
        .map_err(|e| Error::Failed(format!("rss probe: getrusage: {e}")))?;
    let result = ProbeReport {
        code: status.code(),
        signal: status.signal(),
        wall_s: wall.as_secs_f64(),
        // KiB on Linux.
        max_rss_kib: u64::try_from(usage.max_rss()).unwrap_or(0),
    };
    let text = serde_json::to_string(&result)
        .map_err(|e| Error::Failed(format!("rss probe: cannot write the report: {e}")))?;
    std::fs::write(report, text).with_path("cannot write the probe report", report)?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_exit_time_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.json");
        // dd holds one block of 64 MiB.
        let command: Vec<OsString> = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(run_probe(&report, &command).unwrap(), exit::OK);
        let r = ProbeReport::read(&report).unwrap();
        assert!(r.succeeded(), "{r:?}");
        assert!(r.wall_s > 0.0);
        assert!(r.max_rss_kib >= 64 * 1024, "{r:?}");

        let command: Vec<OsString> = ["sh", "-c", "exit 4"].iter().map(OsString::from).collect();
        run_probe(&report, &command).unwrap();
        let r = ProbeReport::read(&report).unwrap();
        assert_eq!(r.code, Some(4));
        assert_eq!(r.describe_exit(), "exited with code 4");
    }

    #[test]
    fn bad_commands_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.json");
        assert!(run_probe(&report, &[]).is_err());
        let err = run_probe(&report, &[OsString::from("/nonexistent/x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot start /nonexistent/x"), "{err}");
        std::fs::write(&report, "{").unwrap();
        assert!(ProbeReport::read(&report).is_err());
    }
}
