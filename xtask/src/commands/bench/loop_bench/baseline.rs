//! The baseline: the `docker` command line. The shell script
//! `xtask/bench/loop/docker-baseline.sh` runs a pipeline with it; a bare
//! `docker exec` into an idle container gives the engine's floor.
//!
//! Every container made here carries `io.pachbuild.bench=<this bench's
//! id>`, a label no one else uses, so that [`Sweep`] may remove whatever of
//! them is left, and nothing else.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use harness::engine::labels::LABEL_BENCH;
use harness::error::IoContext;
use harness::text::short_id as short;
use harness::{Error, Result};

use super::fixtures::{Pipeline, INPUT};
use super::process;
use super::timings::{self, Timings};

/// The script, beside this crate's sources.
const SCRIPT: &str = "bench/loop/docker-baseline.sh";

/// The `docker` command line, checked to be there and to reach an engine.
#[derive(Debug, Clone)]
pub struct Docker {
    /// The engine's version, as `docker version` reports it.
    pub server_version: String,
}

impl Docker {
    pub fn connect() -> Result<Docker> {
        let output = docker(&["version", "--format", "{{.Server.Version}}"])?;
        if !output.status.success() {
            let reason = String::from_utf8_lossy(&output.stderr);
            let reason = reason
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no answer")
                .trim()
                .to_string();
            return Err(Error::NoEngine {
                looked: std::env::var("DOCKER_HOST")
                    .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string()),
                reason: format!("`docker version`: {reason}"),
                fix: "start the engine (`sudo systemctl start docker`, or `dockerd`), or point DOCKER_HOST at one; `cargo xtask doctor` checks".to_string(),
            });
        }
        Ok(Docker {
            server_version: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        })
    }

    /// Fails unless the engine has `image`.
    pub fn require_image(&self, image: &str) -> Result<()> {
        let output = docker(&["image", "inspect", "--format", "{{.Id}}", image])?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Failed(format!(
                "bench loop: the engine has no image {image}\n  fix: `cargo xtask build-builder python`"
            )))
        }
    }
}

/// Runs `docker ARGS` and returns its output; a missing `docker` is an
/// error saying how to get it.
fn docker(args: &[&str]) -> Result<Output> {
    Command::new("docker").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Failed(
                "bench loop: the `docker` command line is not on PATH: the baseline is made with it\n  fix: install it (Debian: `sudo apt-get install docker.io`; elsewhere the docker-ce-cli package) or add its folder to PATH".to_string(),
            )
        } else {
            Error::Failed(format!("bench loop: cannot run `docker`: {e}"))
        }
    })
}

/// The baseline script, with what every run of it shares.
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub image: String,
    /// Mounted into the build container; none when the host has none.
    pub ca_bundle: Option<PathBuf>,
    /// The value of [`LABEL_BENCH`] on its containers.
    pub run_id: String,
    pub logs: PathBuf,
}

/// One run of the script.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    /// The whole script, from spawn to exit.
    pub wall: Duration,
    /// Its `timings:` line.
    pub timings: Option<Timings>,
}

impl ScriptRun {
    /// The script's run phase and merge (what follows its build phase);
    /// the whole script when it printed no timings.
    pub fn after_build(&self) -> f64 {
        let t = self.timings.as_ref();
        match (
            t.and_then(|t| t.get("datums")),
            t.and_then(|t| t.get("merge")),
        ) {
            (Some(datums), Some(merge)) => datums + merge,
            _ => self.wall.as_secs_f64(),
        }
    }
}

impl Script {
    /// The script beside this crate's sources.
    pub fn path() -> Result<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Failed(format!(
                "bench loop: the baseline script {} is missing\n  fix: restore it (`git checkout -- xtask/{SCRIPT}`)",
                path.display()
            )))
        }
    }

    /// The script's arguments for `pipeline`, its output into `out`.
    pub fn args(&self, pipeline: &Pipeline, out: &Path) -> Vec<OsString> {
        vec![
            self.path.clone().into(),
            self.image.clone().into(),
            pipeline.source.clone().into(),
            pipeline.input.clone().into(),
            out.into(),
            pipeline.name.clone().into(),
            INPUT.into(),
            self.ca_bundle.clone().unwrap_or_default().into(),
            self.run_id.clone().into(),
        ]
    }

    /// Runs the script (`sh`, its output to `<logs>/<label>.log`).
    pub async fn run(&self, pipeline: &Pipeline, out: &Path, label: &str) -> Result<ScriptRun> {
        let log = self.logs.join(format!("baseline-{label}.log"));
        let mut command = tokio::process::Command::new("sh");
        command.args(self.args(pipeline, out));
        let done = process::run_logged(command, &log).await?;
        if !done.status.success() {
            return Err(process::failed(
                &format!("the docker-CLI baseline ({})", self.path.display()),
                &process::describe_status(&done.status),
                &log,
            ));
        }
        let text = std::fs::read(&log).with_path("cannot read the log", &log)?;
        Ok(ScriptRun {
            wall: done.wall,
            timings: timings::find(&String::from_utf8_lossy(&text)),
        })
    }
}

/// An idle container for timing bare `docker exec`s; removed when dropped.
#[derive(Debug)]
pub struct FloorContainer {
    id: String,
}

impl FloorContainer {
    pub fn start(image: &str, run_id: &str) -> Result<FloorContainer> {
        let label = format!("{LABEL_BENCH}={run_id}");
        let output = docker(&[
            "run",
            "--detach",
            "--rm",
            "--network",
            "none",
            "--label",
            &label,
            image,
            "sleep",
            "infinity",
        ])?;
        if !output.status.success() {
            return Err(Error::Failed(format!(
                "bench loop: cannot start an idle container of {image}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(FloorContainer {
            id: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        })
    }

    /// One `docker exec <container> true`, timed.
    pub fn exec_true(&self) -> Result<Duration> {
        let started = Instant::now();
        let output = docker(&["exec", &self.id, "true"])?;
        let elapsed = started.elapsed();
        if output.status.success() {
            Ok(elapsed)
        } else {
            Err(Error::Failed(format!(
                "bench loop: `docker exec {} true` failed: {}",
                short(&self.id),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }
}

impl Drop for FloorContainer {
    fn drop(&mut self) {
        if let Ok(output) = docker(&["rm", "--force", &self.id]) {
            if !output.status.success() {
                errln!(
                    "warning: bench loop: cannot remove the idle container {}: {}",
                    short(&self.id),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
    }
}

/// When dropped, removes any container left with this bench's own label
/// (a baseline run stopped half-way).
#[derive(Debug)]
pub struct Sweep {
    pub run_id: String,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let filter = format!("label={LABEL_BENCH}={}", self.run_id);
        let Ok(output) = docker(&["ps", "--all", "--quiet", "--filter", &filter]) else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return;
        }
        let mut args = vec!["rm", "--force"];
        args.extend(ids.iter().map(String::as_str));
        match docker(&args) {
            Ok(o) if o.status.success() => {}
            _ => errln!(
                "warning: bench loop: containers left with the label {LABEL_BENCH}={}; remove them with `docker rm -f $(docker ps -aq --filter {filter})`",
                self.run_id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_arguments_are_in_order() {
        let script = Script {
            path: "/r/xtask/bench/loop/docker-baseline.sh".into(),
            image: "pachbuild/python-build:0.1.0".into(),
            ca_bundle: None,
            run_id: "loop-1".into(),
            logs: "/l".into(),
        };
        let p = Pipeline {
            name: "bench-loop-six".into(),
            spec: "/w/pipeline.json".into(),
            source: "/w/source".into(),
            input: "/w/inputs/data".into(),
            datums: 5,
        };
        let args: Vec<String> = script
            .args(&p, Path::new("/t/out"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "/r/xtask/bench/loop/docker-baseline.sh",
                "pachbuild/python-build:0.1.0",
                "/w/source",
                "/w/inputs/data",
                "/t/out",
                "bench-loop-six",
                "data",
                "",
                "loop-1"
            ]
        );
    }

    #[test]
    fn the_run_phase_is_what_follows_the_build() {
        let run = ScriptRun {
            wall: Duration::from_secs(10),
            timings: timings::parse_line(
                "timings: build=4.000s datums=5.500s merge=0.250s total=9.750s",
            ),
        };
        assert!((run.after_build() - 5.75).abs() < 1e-9);
        let run = ScriptRun {
            wall: Duration::from_secs(10),
            timings: None,
        };
        assert!((run.after_build() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_script_is_there_and_shellcheck_clean() {
        let path = Script::path().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"));
        assert!(text.contains("--rm --label"));
        match Command::new("shellcheck").arg(&path).output() {
            Ok(output) => assert!(
                output.status.success(),
                "shellcheck {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&output.stdout)
            ),
            Err(_) => errln!("shellcheck is not installed: skipped"),
        }
    }

    #[test]
    fn the_script_refuses_bad_arguments() {
        // No engine needed: it stops before running anything.
        let path = Script::path().unwrap();
        let output = Command::new("sh")
            .arg(&path)
            .arg("only-one")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage: docker-baseline"));
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_string_lossy().into_owned();
        let output = Command::new("sh")
            .arg(&path)
            .args([
                "img",
                &d,
                &format!("{d}/nope"),
                &format!("{d}/out"),
                "p",
                "data",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let err = String::from_utf8_lossy(&output.stderr);
        // Either docker is missing or the input folder is: both said.
        assert!(err.contains("docker-baseline: error:"), "{err}");
    }
}
