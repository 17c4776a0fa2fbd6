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

use harness::Result;

use crate::cli::Command;
use crate::context::Context;

/// Runs a command; returns the exit code for a run that did not fail with an error.
pub async fn dispatch(command: Command, context: &Context) -> Result<i32> {
    match command {
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
            Out::Stdout => println!("{text}"),
            Out::Stderr => eprintln!("{text}"),
        }
    }
}

/// Runner options from the command line's shared flags.
pub fn runner_options(
    context: &Context,
    base: &crate::cli::BaseSourceArgs,
) -> harness::runner::RunnerOptions {
    harness::runner::RunnerOptions {
        prefix: context.prefix.clone(),
        base: base::base_options(context, base),
        log_root: context.target_dir().join("logs"),
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
            user: args.user.clone(),
            phase_timeout: args.timeout,
            datum_timeout: args.datum_timeout,
        },
        ..runner_options(context, &args.base)
    }
}

/// Where the datum cache keeps datum outputs, beside the logs.
pub fn datum_cache_dir(context: &Context) -> std::path::PathBuf {
    context.target_dir().join("datum-cache")
}
