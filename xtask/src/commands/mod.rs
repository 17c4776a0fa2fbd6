//! One module per sub-command.

pub mod base;
pub mod bench;
pub mod build_builder;
mod clean;
mod doctor;
pub mod new_builder;
pub mod publish;
mod run;
pub mod test_builder;
pub mod validate;

use harness::engine::{Engine, RunId};
use harness::error::exit;
use harness::{Error, Result};

use crate::cli::Command;
use crate::context::Context;

/// Runs a command; returns the exit code for a run that did not fail with an error.
pub async fn dispatch(command: Command, context: &Context) -> Result<i32> {
    if matches!(
        command,
        Command::Run(_)
            | Command::TestBuilder(_)
            | Command::Validate(_)
            | Command::Publish(_)
            | Command::Bench(_)
    ) {
        // This run's logs will be the newest of the ones kept.
        prune_logs(&context.target_dir().join("logs"), KEPT_LOG_RUNS - 1);
    }
    match command {
        Command::Completions(args) => {
            completions(args.shell);
            Ok(0)
        }
        Command::Doctor => doctor::run(context).await,
        Command::Base(args) => base::run(context, &args).await,
        Command::Clean(args) => clean::run(context, &args).await,
        Command::BuildBuilder(args) => build_builder::run(context, &args).await,
        Command::Run(args) => run::run(context, &args).await,
        Command::TestBuilder(args) => test_builder::run(context, &args).await,
        Command::Validate(args) => validate::run(context, &args).await,
        Command::NewBuilder(args) => new_builder::run(context, &args).await,
        Command::Bench(args) => bench::run(context, &args).await,
        Command::Publish(args) => publish::run(context, &args).await,
    }
}

/// Where a command's report lines go: stdout, or stderr when stdout is kept
/// for a machine-readable document (`publish --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Stdout,
    Stderr,
}

impl Out {
    pub fn line(self, text: impl std::fmt::Display) {
        match self {
            Out::Stdout => outln!("{text}"),
            Out::Stderr => errln!("{text}"),
        }
    }

    /// A line of how things go (a fixture that passed): left out with `--quiet`.
    pub fn status(self, text: impl std::fmt::Display) {
        if !crate::ui::ui().quiet() {
            self.line(text);
        }
    }
}

/// Runner options from the command line's shared flags.
pub fn runner_options(
    context: &Context,
    base: &crate::cli::BaseSourceArgs,
) -> harness::runner::RunnerOptions {
    harness::runner::RunnerOptions {
        run: context.run.clone(),
        prefix: context.prefix.clone(),
        base: base::base_options(base),
        log_root: context.target_dir().join("logs"),
        progress: crate::ui::ui().progress(),
        ..Default::default()
    }
}

/// Runner options for commands that run pipelines.
pub fn pipeline_runner_options(
    context: &Context,
    args: &crate::cli::PipelineArgs,
) -> harness::runner::RunnerOptions {
    use harness::trust::BundleChoice;
    harness::runner::RunnerOptions {
        bundle: match (&args.ca_bundle, args.no_ca_bundle) {
            (_, true) => BundleChoice::Off,
            (Some(path), false) => BundleChoice::Path(path.clone()),
            (None, false) => BundleChoice::Auto,
        },
        keep: args.keep,
        strict_outputs: args.strict_outputs,
        run_network: args.network,
        jobs: args
            .jobs
            .map_or_else(harness::pipeline::default_jobs, usize::from),
        cache: harness::pipeline::CacheOptions {
            read: !args.no_cache,
            scope: args.cache.cache_scope.clone(),
            max_entries: usize::from(args.cache.cache_entries),
            ephemeral: false,
            datum_dir: Some(datum_cache_dir(context)),
            reprocess: args.reprocess,
            ..harness::pipeline::CacheOptions::default()
        },
        scratch_dir: context.target_dir().join("tmp"),
        datums: harness::pipeline::DatumOptions {
            tries: args.datum_tries,
            keep_going: args.keep_going,
            secrets: args.secrets.iter().cloned().collect(),
            memory: args.memory,
            cpus: args.cpus,
            user: args.user.clone(),
            phase_timeout: args.timeout,
            datum_timeout: args.datum_timeout,
        },
        ..runner_options(context, &args.base)
    }
}

/// The logs of this many runs are kept under `target/pachbuild/logs/`.
pub const KEPT_LOG_RUNS: usize = 20;

/// Removes the log folders of all but the `keep` newest runs (by the time
/// their folder last changed). Best effort: a folder that cannot be removed
/// is left.
pub fn prune_logs(logs: &std::path::Path, keep: usize) -> usize {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return 0;
    };
    let mut runs: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let changed = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (changed, e.path())
        })
        .collect();
    // Newest first; equal times by name, newest name first (run ids sort by time).
    runs.sort_by(|a, b| b.cmp(a));
    runs.iter()
        .skip(keep)
        .filter(|(_, dir)| std::fs::remove_dir_all(dir).is_ok())
        .count()
}

/// Prints the completion script of `shell` for the `xtask` binary.
fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    let mut command = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut command, "xtask", &mut std::io::stdout());
}

/// Where the datum cache keeps datum outputs, beside the logs.
pub fn datum_cache_dir(context: &Context) -> std::path::PathBuf {
    context.target_dir().join("datum-cache")
}

/// A command that failed while its engine went away: when `error` is a
/// failure (exit 1) and the engine no longer answers, the error says so,
/// names the phase and the engine, and how to remove what the run left
/// there once it is back (exit 3). Any other error is returned as it is.
pub async fn engine_lost(error: Error, phase: &str, engine: &Engine, run: &RunId) -> Error {
    if error.exit_code() != exit::FAILED {
        return error;
    }
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        Engine::connect_to(engine.host()),
    )
    .await;
    if matches!(probe, Ok(Ok(_))) {
        return error;
    }
    Error::NoEngine {
        looked: engine.host().to_string(),
        reason: format!(
            "it went away during the {phase} ({}); what this run made there may be left",
            brief(&error)
        ),
        fix: if phase == "image build" {
            // Step images carry no label of the run: the warning above names them.
            "once the engine is back, remove the step images named above, and rerun".to_string()
        } else {
            format!("once the engine is back, `cargo xtask clean --run {run}` removes what this run left")
        },
    }
}

/// One line of an error: an engine operation can be a whole shell script.
fn brief(error: &Error) -> String {
    let text = match error {
        Error::Engine(e) => {
            // `run `<script>` in container`: the script is left out.
            let operation = match &e.operation {
                harness::engine::Operation::Exec { command }
                    if command.contains('\n') || command.chars().count() > 50 =>
                {
                    "run `…` in container".to_string()
                }
                other => other.to_string(),
            };
            format!("{operation} {}: {}", e.object, e.message)
        }
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_log_folders_are_kept() {
        let logs = tempfile::tempdir().unwrap();
        let base = std::time::SystemTime::now() - std::time::Duration::from_secs(1000);
        for i in 0..5u64 {
            let dir = logs.path().join(format!("run-{i}"));
            std::fs::create_dir_all(dir.join("fixture")).unwrap();
            let when = base + std::time::Duration::from_secs(i * 10);
            std::fs::File::open(&dir)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        std::fs::write(logs.path().join("not-a-run.txt"), "x").unwrap();
        assert_eq!(prune_logs(logs.path(), 3), 2);
        let mut left: Vec<String> = std::fs::read_dir(logs.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["not-a-run.txt", "run-2", "run-3", "run-4"]);
        assert_eq!(prune_logs(&logs.path().join("none"), 3), 0);
    }
}
