//! Ours: the `cargo xtask` binary under test (the one running this bench,
//! `target/<profile>/xtask`), run as a subprocess exactly as a user runs it.
//! [`command_line`] is the one place where its command lines are made.
//!
//! Every run goes through the rss probe (`bench loop --rss-probe`), which
//! times it from spawn to exit and reads its peak memory; its output goes to
//! a log file of its own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use harness::error::IoContext;
use harness::{Error, Result};

use super::fixtures::{Pipeline, INPUT};
use super::probe::ProbeReport;
use super::process;
use super::timings::{self, Timings};
use crate::context::Context;

/// The image prefix when none is given (`--prefix`, `PACHBUILD_PREFIX`).
const DEFAULT_PREFIX: &str = "pachbuild";
/// The build cache scope of the bench's runs (when the command line has
/// scopes): its entries neither evict nor meet the user's.
pub const CACHE_SCOPE: &str = "bench-loop";

/// The flags of the command line under test that the bench uses and that
/// are newer than some versions of it; found from its `--help`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// `run --no-cache`
    pub run_no_cache: bool,
    /// `test-builder --jobs N`
    pub test_builder_jobs: bool,
    /// `run --cache-scope NAME` (used when there; not needed)
    pub run_cache_scope: bool,
    /// `--reprocess` of `run` and `test-builder` (used when there: a command
    /// line without it has no datum cache, so every datum runs anyway)
    pub reprocess: bool,
}

impl Caps {
    pub fn from_help(run_help: &str, test_builder_help: &str) -> Caps {
        Caps {
            run_no_cache: help_has_flag(run_help, "--no-cache"),
            test_builder_jobs: help_has_flag(test_builder_help, "--jobs"),
            run_cache_scope: help_has_flag(run_help, "--cache-scope"),
            reprocess: help_has_flag(run_help, "--reprocess")
                && help_has_flag(test_builder_help, "--reprocess"),
        }
    }

    /// The flags this command line lacks, as `run --no-cache`.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.run_no_cache {
            missing.push("run --no-cache");
        }
        if !self.test_builder_jobs {
            missing.push("test-builder --jobs");
        }
        missing
    }
}

/// Whether `help` (a `--help` text) lists `flag` (whole, not as the start
/// of a longer flag).
pub fn help_has_flag(help: &str, flag: &str) -> bool {
    let part_of_flag = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        !before.is_some_and(part_of_flag) && !after.is_some_and(part_of_flag)
    })
}

/// A command of ours.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// `build-builder LANG [base flags]`
    BuildBuilder {
        language: &'a str,
        base: &'a [OsString],
    },
    /// `run SPEC --out DIR --input data=DIR [--no-cache] [--cache-scope bench-loop]`
    Run {
        pipeline: &'a Pipeline,
        out: &'a Path,
        /// With `--no-cache`: the build phase and every datum run whatever
        /// is cached.
        cold: bool,
        /// With `--reprocess`: every datum runs (the build may be reused).
        reprocess: bool,
    },
    /// `test-builder LANG [--jobs N]`
    /// `test-builder LANG [--jobs N] [--reprocess]`: every datum runs.
    TestBuilder {
        language: &'a str,
        jobs: Option<u32>,
    },
}

/// The arguments (after the program) of `step`, and the flags it asked for
/// that `caps` say this command line lacks (left out).
pub fn command_line(global: &[OsString], caps: Caps, step: &Step) -> (Vec<OsString>, Vec<String>) {
    let mut args: Vec<OsString> = global.to_vec();
    let mut missing = Vec::new();
    match *step {
        Step::BuildBuilder { language, base } => {
            args.extend(["build-builder".into(), language.into()]);
            args.extend(base.iter().cloned());
        }
        Step::Run {
            pipeline,
            out,
            cold,
            reprocess,
        } => {
            args.extend([
                "run".into(),
                pipeline.spec.clone().into(),
                "--out".into(),
                out.into(),
                "--input".into(),
                {
                    let mut pair = OsString::from(format!("{INPUT}="));
                    pair.push(&pipeline.input);
                    pair
                },
            ]);
            if caps.run_cache_scope {
                args.extend(["--cache-scope".into(), CACHE_SCOPE.into()]);
            }
            if cold {
                if caps.run_no_cache {
                    args.push("--no-cache".into());
                } else {
                    missing.push("run --no-cache".to_string());
                }
            }
            if reprocess && caps.reprocess {
                args.push("--reprocess".into());
            }
        }
        Step::TestBuilder { language, jobs } => {
            args.extend(["test-builder".into(), language.into()]);
            if caps.reprocess {
                args.push("--reprocess".into());
            }
            if let Some(jobs) = jobs {
                if caps.test_builder_jobs {
                    args.extend(["--jobs".into(), jobs.to_string().into()]);
                } else {
                    missing.push("test-builder --jobs".to_string());
                }
            }
        }
    }
    (args, missing)
}

/// `cargo xtask run /tmp/x/pipeline.json --out ...`, for messages.
pub fn display(args: &[OsString]) -> String {
    let mut text = String::from("cargo xtask");
    for arg in args {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// One finished command of ours.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Wall-clock time of the whole process.
    pub wall: Duration,
    /// Its peak resident memory, KiB.
    pub max_rss_kib: u64,
    /// Its `timings:` line, when it printed one.
    pub timings: Option<Timings>,
}

/// Names another `xtask` binary to measure (a release build, another
/// checkout's); this one by default. This one stays the probe.
pub const XTASK_ENV: &str = "PACHBUILD_BENCH_XTASK";

/// The command line under test.
#[derive(Debug)]
pub struct Ours {
    /// The binary measured.
    exe: PathBuf,
    /// This binary: it runs the rss probe.
    probe: PathBuf,
    /// `CARGO_TARGET_DIR` for another binary, so that its logs come here.
    target: Option<PathBuf>,
    global: Vec<OsString>,
    pub caps: Caps,
    logs: PathBuf,
    scratch: PathBuf,
    count: AtomicU32,
}

impl Ours {
    /// This very binary, or the one [`XTASK_ENV`] names; its flags from its
    /// `--help`. Logs go to `logs`, probe reports to `scratch`.
    pub fn discover(context: &Context, logs: &Path, scratch: &Path) -> Result<Ours> {
        let probe = std::env::current_exe().map_err(|e| {
            Error::Failed(format!("bench loop: cannot find this program's path: {e}"))
        })?;
        let other = std::env::var_os(XTASK_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(path) = &other {
            if !path.is_file() {
                return Err(Error::Usage(format!(
                    "{XTASK_ENV}={}: no such file\n  fix: name a built `xtask` binary, or unset it to measure this one",
                    path.display()
                )));
            }
        }
        let exe = other.clone().unwrap_or_else(|| probe.clone());
        let help = |command: &str| -> Result<String> {
            let output = std::process::Command::new(&exe)
                .args([command, "--help"])
                .output()
                .map_err(|e| {
                    Error::Failed(format!("bench loop: cannot run {}: {e}", exe.display()))
                })?;
            if !output.status.success() {
                return Err(Error::Failed(format!(
                    "bench loop: `{} {command} --help` failed: {}",
                    exe.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        };
        let caps = Caps::from_help(&help("run")?, &help("test-builder")?);
        Ok(Ours {
            global: global_args(context, other.is_some()),
            target: other
                .is_some()
                .then(|| context.target_dir().parent().map(Path::to_path_buf))
                .flatten(),
            exe,
            probe,
            caps,
            logs: logs.to_path_buf(),
            scratch: scratch.to_path_buf(),
            count: AtomicU32::new(0),
        })
    }

    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The arguments of `step` and the flags left out (see [`command_line`]).
    pub fn command_line(&self, step: &Step) -> (Vec<OsString>, Vec<String>) {
        command_line(&self.global, self.caps, step)
    }

    /// Runs `step`; its output goes to `<logs>/<n>-<label>.log`. A command
    /// that fails is an error naming it, with the end of its log.
    pub async fn run(&self, step: &Step<'_>, label: &str) -> Result<Measured> {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let log = self.logs.join(format!("{n:03}-ours-{label}.log"));
        let report = self.scratch.join(format!("probe-{n:03}.json"));
        let (args, _) = self.command_line(step);
        let mut command = tokio::process::Command::new(&self.probe);
        if let Some(target) = &self.target {
            command.env("CARGO_TARGET_DIR", target);
        }
        command
            .args(["bench", "loop", "--rss-probe"])
            .arg(&report)
            .arg("--")
            .arg(&self.exe)
            .args(&args);
        let what = format!("`{}`", display(&args));
        let probe = process::run_logged(command, &log).await?;
        if !probe.status.success() || !report.is_file() {
            return Err(process::failed(
                &format!("the rss probe of {what}"),
                &process::describe_status(&probe.status),
                &log,
            ));
        }
        let result = ProbeReport::read(&report)?;
        let _ = std::fs::remove_file(&report);
        let text = std::fs::read(&log).with_path("cannot read the log", &log)?;
        let text = String::from_utf8_lossy(&text);
        if !result.succeeded() {
            let mut error = process::failed(&what, &result.describe_exit(), &log);
            if let (Error::Failed(message), Some(hint)) = (&mut error, removed_under_us(&text)) {
                message.push_str("\n  ");
                message.push_str(hint);
            }
            return Err(error);
        }
        Ok(Measured {
            wall: Duration::from_secs_f64(result.wall_s),
            max_rss_kib: result.max_rss_kib,
            timings: timings::find(&text),
        })
    }
}

/// A hint when a run's log says that its containers went away under it
/// (`cargo xtask clean` removes every container of the tools, also those
/// of runs in progress).
pub fn removed_under_us(log: &str) -> Option<&'static str> {
    let signs = [
        "No such container",
        "is already in progress",
        "exited with code 137",
    ];
    signs.iter().any(|s| log.contains(s)).then_some(
        "hint: its containers were removed or killed while it ran: was `cargo xtask clean` (or `docker rm`) run meanwhile on this engine? Run the bench again when nothing else cleans",
    )
}

/// `--prefix` and `--root` when this bench was given others than the
/// defaults (`PACHBUILD_PREFIX` and `PACHBUILD_ROOT` reach the commands
/// anyway, as their environment); `--root` always for another binary,
/// whose default is its own checkout.
fn global_args(context: &Context, other_binary: bool) -> Vec<OsString> {
    let mut args = Vec::new();
    if context.prefix != DEFAULT_PREFIX {
        args.extend(["--prefix".into(), context.prefix.clone().into()]);
    }
    let default_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    if other_binary || Some(context.root.as_path()) != default_root {
        args.extend(["--root".into(), context.root.clone().into()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn pipeline() -> Pipeline {
        Pipeline {
            name: "p".into(),
            spec: "/w/six/pipeline.json".into(),
            source: "/w/six/source".into(),
            input: "/w/six/inputs/data".into(),
            datums: 5,
        }
    }

    #[test]
    fn flags_are_found_in_help() {
        let help = "Options:\n      --no-cache-dir  x\n      --jobs <N>  y\n  -j, --jobsworth\n";
        assert!(!help_has_flag(help, "--no-cache"));
        assert!(help_has_flag(help, "--jobs"));
        assert!(help_has_flag("      --no-cache\n", "--no-cache"));
        assert!(help_has_flag("[--no-cache]", "--no-cache"));
        assert!(!help_has_flag("--no-cache_x", "--no-cache"));
        assert!(!help_has_flag("", "--jobs"));
        let caps = Caps::from_help("--no-cache  Ignore the cache", "--verbose");
        assert_eq!(
            caps,
            Caps {
                run_no_cache: true,
                test_builder_jobs: false,
                run_cache_scope: false,
                reprocess: false,
            }
        );
        assert!(Caps::from_help("--reprocess", "--reprocess").reprocess);
        assert!(!Caps::from_help("--reprocess", "").reprocess);
        assert!(Caps::from_help("--cache-scope <NAME>", "").run_cache_scope);
        assert_eq!(caps.missing(), ["test-builder --jobs"]);
        assert_eq!(Caps::default().missing().len(), 2);
    }

    #[test]
    fn run_command_lines() {
        let p = pipeline();
        let out = Path::new("/t/out-1");
        let all = Caps {
            run_no_cache: true,
            test_builder_jobs: true,
            run_cache_scope: false,
            reprocess: true,
        };
        let cold = Step::Run {
            pipeline: &p,
            out,
            cold: true,
            reprocess: false,
        };
        let (args, missing) = command_line(&[], all, &cold);
        assert_eq!(
            strings(&args),
            [
                "run",
                "/w/six/pipeline.json",
                "--out",
                "/t/out-1",
                "--input",
                "data=/w/six/inputs/data",
                "--no-cache"
            ]
        );
        assert!(missing.is_empty());
        let scoped = Caps {
            run_cache_scope: true,
            ..all
        };
        let (with_scope, _) = command_line(&[], scoped, &cold);
        assert_eq!(
            strings(&with_scope)[6..],
            ["--cache-scope", "bench-loop", "--no-cache"]
        );
        assert_eq!(
            display(&args),
            "cargo xtask run /w/six/pipeline.json --out /t/out-1 --input data=/w/six/inputs/data --no-cache"
        );
        // Without the flag in this CLI: left out, and said so.
        let (args, missing) = command_line(&[], Caps::default(), &cold);
        assert_eq!(args.len(), 6);
        assert_eq!(missing, ["run --no-cache"]);
        // Warm runs ask for nothing.
        let warm = Step::Run {
            pipeline: &p,
            out,
            cold: false,
            reprocess: false,
        };
        let (args, missing) =
            command_line(&["--prefix".into(), "me".into()], Caps::default(), &warm);
        assert_eq!(strings(&args)[..3], ["--prefix", "me", "run"]);
        assert!(missing.is_empty());
        // Reprocessing runs say so when the command line can.
        let again = Step::Run {
            pipeline: &p,
            out,
            cold: false,
            reprocess: true,
        };
        let (args, _) = command_line(&[], all, &again);
        assert_eq!(strings(&args).last().unwrap(), "--reprocess");
        let (args, _) = command_line(&[], Caps::default(), &again);
        assert_eq!(args.len(), 6);
    }

    #[test]
    fn containers_removed_under_a_run_are_recognised() {
        for log in [
            "error: copy files into / of container 44408fd4ba83: not found (No such container: 44408fd4ba83)",
            "warning: remove container e3ab: conflict (removal of container e3ab is already in progress)",
            "  | build.sh exited with code 137",
        ] {
            assert!(removed_under_us(log).is_some(), "{log}");
        }
        assert_eq!(
            removed_under_us("datum 1/5 | Traceback ...\nexited with code 1"),
            None
        );
    }

    #[test]
    fn other_command_lines() {
        let all = Caps {
            run_no_cache: true,
            test_builder_jobs: true,
            run_cache_scope: true,
            reprocess: false,
        };
        let one = Step::TestBuilder {
            language: "python",
            jobs: Some(1),
        };
        let (args, missing) = command_line(&[], all, &one);
        assert_eq!(strings(&args), ["test-builder", "python", "--jobs", "1"]);
        assert!(missing.is_empty());
        let (args, missing) = command_line(&[], Caps::default(), &one);
        assert_eq!(strings(&args), ["test-builder", "python"]);
        assert_eq!(missing, ["test-builder --jobs"]);
        let default = Step::TestBuilder {
            language: "python",
            jobs: None,
        };
        let (args, missing) = command_line(&[], Caps::default(), &default);
        assert_eq!(strings(&args), ["test-builder", "python"]);
        assert!(missing.is_empty());
        let base = ["--base-from".into(), "debian".into()];
        let build = Step::BuildBuilder {
            language: "python",
            base: &base,
        };
        let (args, _) = command_line(&[], all, &build);
        assert_eq!(
            strings(&args),
            ["build-builder", "python", "--base-from", "debian"]
        );
    }
}
