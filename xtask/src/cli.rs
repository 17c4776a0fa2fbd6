//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use harness::builder::BaseSource;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about = "Make, validate and test builder images for build pipelines",
    long_about = "Make, validate and test builder images for build pipelines, and run build \
                  pipelines locally as the platform would. `cargo xtask COMMAND --help` \
                  explains a command, with examples.",
    after_help = AFTER_HELP,
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Examples:
  cargo xtask doctor                      what this machine has and lacks
  cargo xtask test-builder python         build the python builder, run its fixtures
  cargo xtask run path/to/pipeline.json   run your own build pipeline locally

Exit codes: 0 success, 1 a build, fixture or pipeline failed, 2 bad input, 3 no Docker engine.
Logs and default outputs go to target/pachbuild/ (the last 20 runs' logs are kept).";

impl Cli {
    /// Whether the user asked to keep containers (then an interrupt leaves them too).
    pub fn keeps_objects(&self) -> bool {
        match &self.command {
            Command::Run(args) => args.pipeline.keep,
            Command::TestBuilder(args) => args.pipeline.keep,
            Command::Publish(args) => args.pipeline.keep,
            _ => false,
        }
    }
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The repository root (holding `builders/`); found from the xtask crate by default.
    #[arg(long, global = true, env = "PACHBUILD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Prefix of image names: `<prefix>/<lang>-build:<version>`.
    #[arg(
        long,
        global = true,
        env = "PACHBUILD_PREFIX",
        default_value = "pachbuild"
    )]
    pub prefix: String,
    /// Show details: every line of image builds and phase logs, and each
    /// engine call with its time (`-vv`: the libraries' details too).
    #[arg(long, short, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print only errors, warnings and the final result (no progress or logs).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Colors: auto (on a terminal, unless NO_COLOR is set), always or never.
    /// Progress bars are drawn when stderr is a terminal and CI is unset;
    /// otherwise progress is plain lines, with no control sequences.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    pub color: crate::ui::ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the engine, base images, tools, CA bundle and proxy settings.
    #[command(after_help = "Example:\n  cargo xtask doctor")]
    Doctor,
    /// Provide each builder's base image: reuse, pull, or make it from Debian packages.
    ///
    /// A base made locally from the same recipe is reused; else the pinned
    /// upstream image is pulled; else it is made from Debian packages with
    /// mmdebstrap (no registry needed).
    #[command(
        after_help = "Examples:\n  cargo xtask base                        every builder's base\n  cargo xtask base python --base-from debian"
    )]
    Base(BaseArgs),
    /// Remove what finished runs left on the engine (containers, volumes, test images).
    ///
    /// A live run's objects are never touched, whoever started it. With
    /// PACHBUILD_SESSION set, only that session's objects are removed.
    #[command(
        after_help = "Examples:\n  cargo xtask clean                        what finished runs left\n  cargo xtask clean --run 20240101-120000-ab12   only that run's\n  cargo xtask clean --cache               empty the build and datum caches"
    )]
    Clean(CleanArgs),
    /// Build builder images (and their bases), reusing unchanged ones.
    #[command(
        after_help = "Examples:\n  cargo xtask build-builder               every builder\n  cargo xtask build-builder go --rebuild"
    )]
    BuildBuilder(BuildBuilderArgs),
    /// Run a build pipeline locally, as the platform would.
    ///
    /// The build phase runs in the builder image (or its output comes from
    /// the build cache), then the run phase once per datum; datums unchanged
    /// since an earlier run are skipped and their outputs reused. Ends with a
    /// table of the datums (time, result, log of a failure, and the command
    /// that reruns only a failing datum).
    #[command(
        after_help = "Examples:\n  cargo xtask run pipeline.json --list-datums          the datums, nothing run\n  cargo xtask run pipeline.json                        inputs from inputs/<repo>/ beside the spec\n  cargo xtask run pipeline.json --input images=~/data/images --datum 3\n  cargo xtask run pipeline.json --json --junit target/run.xml   for CI"
    )]
    Run(RunArgs),
    /// Run the fixtures of builders and compare their outputs with expected/.
    ///
    /// Runs every fixture of the named builders (all when none is named), or
    /// the fixtures named with --fixture. Ends with a table (build and run
    /// times, datums, the log of each failure) and `N passed, M failed`.
    #[command(
        after_help = "Examples:\n  cargo xtask test-builder python                     every python fixture\n  cargo xtask test-builder python --fixture hello     one, by name\n  cargo xtask test-builder --fixture path/to/fixture  a fixture folder\n  cargo xtask test-builder go --bless                 accept changed outputs into expected/\n  cargo xtask test-builder --junit target/junit.xml   for CI"
    )]
    TestBuilder(TestBuilderArgs),
    /// Check builder folders statically, then their images against builder.yaml.
    ///
    /// Files, scripts, Dockerfile and builder.yaml are checked with file and
    /// line; shellcheck and hadolint run when installed; then the image is
    /// built (or reused) and checked. Every problem is reported.
    #[command(
        after_help = "Examples:\n  cargo xtask validate                    every builder\n  cargo xtask validate rust --static-only no engine needed\n  cargo xtask validate --junit target/validate.xml"
    )]
    Validate(crate::commands::validate::ValidateArgs),
    /// Scaffold a new builder that builds, validates and passes its fixture.
    #[command(
        after_help = "Examples:\n  cargo xtask new-builder ruby --base ruby:3.3-slim-bookworm\n  cargo xtask new-builder pypy --from python"
    )]
    NewBuilder(crate::commands::new_builder::NewBuilderArgs),
    /// Benchmarks, printed side by side with their baselines.
    #[command(
        after_help = "Examples:\n  cargo xtask bench builders --datums 5 --runs 3\n  cargo xtask bench loop --quick"
    )]
    Bench(crate::commands::bench::BenchArgs),
    /// Build, validate and test builders, then push those that passed to a registry.
    #[command(
        after_help = "Examples:\n  cargo xtask publish --registry 127.0.0.1:5000 --dry-run\n  cargo xtask publish --registry ghcr.io/my-org python --latest --json"
    )]
    Publish(crate::commands::publish::PublishArgs),
    /// Print a shell completion script for the `xtask` binary.
    ///
    /// The script completes the command `xtask`: put target/debug/xtask on
    /// your PATH, or `alias xtask='cargo xtask'` (bash and zsh complete
    /// aliases by their name).
    #[command(
        after_help = "Examples:\n  cargo xtask completions bash > ~/.local/share/bash-completion/completions/xtask\n  cargo xtask completions zsh > ~/.zfunc/_xtask\n  cargo xtask completions fish > ~/.config/fish/completions/xtask.fish"
    )]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct BuildBuilderArgs {
    /// Builders to build (all when none is named).
    #[arg(value_name = "LANG")]
    pub languages: Vec<String>,
    /// Build even when an image with the same inputs exists.
    #[arg(long)]
    pub rebuild: bool,
    #[command(flatten)]
    pub base: BaseSourceArgs,
}

/// Options shared by the commands that run pipelines.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Leave containers, volumes and logs for debugging, and print where they are.
    #[arg(long)]
    pub keep: bool,
    /// Make two datums writing the same output path an error (the platform appends them).
    #[arg(long)]
    pub strict_outputs: bool,
    /// CA bundle for build containers (default: the host's, when present).
    #[arg(long, value_name = "PATH", conflicts_with = "no_ca_bundle")]
    pub ca_bundle: Option<PathBuf>,
    /// Give build containers no CA bundle.
    #[arg(long)]
    pub no_ca_bundle: bool,
    /// Give the run phase network access (it has none by default).
    #[arg(long)]
    pub network: bool,
    /// Run datums on N workers at once (default: the number of cores);
    /// the spec's `parallelism_spec.constant` caps it. `test-builder` runs N
    /// fixtures at once instead.
    #[arg(long, short = 'j', value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Run the build phase and every datum even when the caches have their
    /// outputs (the new outputs replace the cached ones).
    #[arg(long)]
    pub no_cache: bool,
    /// Run every datum again, even those that have not changed since an
    /// earlier run (by default they are skipped and their outputs reused, as
    /// the platform does); the build output may still be reused.
    #[arg(long)]
    pub reprocess: bool,
    /// Tries of a failing datum (default: the spec's `datum_tries`, else the
    /// platform's 3); `--datum-tries 1` for quick feedback.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub datum_tries: Option<u32>,
    /// Run every datum and report every failure at the end (default: stop at
    /// the first failing datum).
    #[arg(long)]
    pub keep_going: bool,
    /// The contents of a secret of `transform.secrets`: a folder of one file
    /// per key, or a file of KEY=VALUE lines. Repeat for each secret.
    #[arg(long = "secret", value_name = "NAME=PATH", value_parser = parse_secret)]
    pub secrets: Vec<(String, PathBuf)>,
    /// Memory of each container (build phase, each worker), e.g. `2g`,
    /// `512m` (default: half the machine's memory). A datum past it fails as
    /// out of memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPUs of each container, e.g. `1.5` (default: no limit, or the
    /// spec's `resource_limits.cpu`).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Run the datums as this user (name or uid[:gid]) instead of the spec's
    /// `transform.user` or the image's.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Time limit of each phase, e.g. `10m` (default: 30m for the build
    /// phase, none for the run phase beyond the spec's `job_timeout`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Time limit of each datum, instead of the spec's `datum_timeout`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub datum_timeout: Option<std::time::Duration>,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub base: BaseSourceArgs,
}

/// Where the build cache lives and how much it keeps.
#[derive(Debug, Args, Clone)]
pub struct CacheArgs {
    /// Build cache entries kept (oldest out first); 0 keeps none (nothing
    /// is reused, and a build's volumes go with its run).
    #[arg(
        long,
        value_name = "N",
        env = "PACHBUILD_CACHE_ENTRIES",
        default_value_t = 10
    )]
    pub cache_entries: u16,
    /// Cache scope: entries of different scopes never meet (tests and CI
    /// jobs sharing an engine use their own).
    #[arg(
        long,
        value_name = "NAME",
        env = "PACHBUILD_CACHE_SCOPE",
        default_value = "default"
    )]
    pub cache_scope: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline spec (JSON or YAML), or `-` for stdin.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// The data of an input: its name (or repo) and a folder. Default: `inputs/<repo>/` beside the spec.
    #[arg(long = "input", value_name = "NAME=DIR")]
    pub inputs: Vec<String>,
    /// Where to write the output tree (default: target/pachbuild/out/<pipeline>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only this datum: its id, a unique id prefix, or its number in --list-datums.
    #[arg(long, value_name = "ID", conflicts_with = "list_datums")]
    pub datum: Option<String>,
    /// Print the datums the spec makes and run nothing (needs no engine).
    #[arg(long)]
    pub list_datums: bool,
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct TestBuilderArgs {
    /// Builders whose fixtures to run (all when none is named and no --fixture is given).
    #[arg(value_name = "LANG")]
    pub languages: Vec<String>,
    /// Run this fixture instead (repeatable): a folder, or a fixture's name
    /// (`hello`, `python/hello`) looked up in builders/<lang>/fixtures/.
    #[arg(long = "fixture", value_name = "NAME|DIR")]
    pub fixtures: Vec<PathBuf>,
    /// When a fixture's output differs from expected/, show the diff, then
    /// write the output into expected/ (the fixture then passes). Also env
    /// UPDATE_EXPECTED=1.
    #[arg(long, env = "UPDATE_EXPECTED", value_parser = clap::builder::BoolishValueParser::new())]
    pub bless: bool,
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct BaseArgs {
    /// Builders whose base to provide (all when none is named).
    #[arg(value_name = "LANG")]
    pub languages: Vec<String>,
    #[command(flatten)]
    pub base: BaseSourceArgs,
}

/// Where bases come from; shared by every command that needs a base.
#[derive(Debug, Args, Clone)]
pub struct BaseSourceArgs {
    /// Force one source of base images instead of reuse → upstream → Debian.
    #[arg(long, value_name = "SOURCE", value_parser = base_source())]
    pub base_from: Option<BaseSource>,
    /// Debian mirror used by mmdebstrap.
    #[arg(
        long,
        default_value = "http://deb.debian.org/debian",
        value_name = "URL"
    )]
    pub mirror: String,
}

/// `--base-from`: the harness's own names, offered as clap's possible values.
fn base_source() -> impl clap::builder::TypedValueParser<Value = BaseSource> {
    use clap::builder::TypedValueParser as _;
    let names = BaseSource::ALL.map(BaseSource::as_str);
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| BaseSource::from_name(&name).expect("one of the possible values"))
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Also remove base and builder images (they are kept as a cache otherwise);
    /// with --cache, empty every cache scope.
    #[arg(long)]
    pub all: bool,
    /// Only what run ID left (the id `run` prints in its first line); also
    /// a run made on another machine sharing the engine.
    #[arg(long, value_name = "ID", conflicts_with = "cache")]
    pub run: Option<String>,
    /// Empty the build cache instead (of --cache-scope; of every scope
    /// with --all); nothing else is touched.
    #[arg(long)]
    pub cache: bool,
    #[command(flatten)]
    pub cache_args: CacheArgs,
}

/// `--secret NAME=PATH`.
fn parse_secret(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!(
            "expected NAME=PATH (the secret's name in the spec, and a folder of one file per key \
             or a file of KEY=VALUE lines), e.g. `--secret db=./secrets/db`; got {text:?}"
        )),
    }
}

/// `--memory 2g`, `512m`, `1048576` (bytes).
fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => lower.split_at(at),
        None => (lower.as_str(), ""),
    };
    let shift = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => {
            return Err(format!(
                "{text:?}: use a number with k, m or g, e.g. `2g` or `512m`"
            ))
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: use a number with k, m or g, e.g. `2g` or `512m`"))?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or("too large")?;
    if bytes < 6 << 20 {
        return Err(format!("{text:?}: a container needs at least 6m"));
    }
    Ok(bytes)
}

/// `--cpus 1.5`.
fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 1024.0 => Ok(n),
        _ => Err(format!(
            "{text:?}: give a number of CPUs above 0, e.g. `1` or `1.5`"
        )),
    }
}

/// `--timeout 10m`: a Go duration, as specs write them.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match harness::spec::duration::parse_go_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a time limit of 0 would stop everything at once".into()),
        Err(why) => Err(format!("{why}; write e.g. `90s`, `10m` or `1h30m`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn help(path: &[&str]) -> String {
        let mut command = Cli::command();
        let mut current = &mut command;
        for name in path {
            current = current.find_subcommand_mut(name).expect("a sub-command");
        }
        current.render_long_help().to_string()
    }

    #[test]
    fn the_command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_flag_is_documented_with_an_example() {
        fn walk(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let documented = arg.get_help().is_some() || arg.get_long_help().is_some();
                assert!(documented, "{path} {} has no help", arg.get_id());
            }
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                assert!(sub.get_about().is_some(), "{path} has no about");
                if sub.get_name() != "help" {
                    let after = sub
                        .get_after_help()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    assert!(
                        after.contains("Example") || path.matches(' ').count() > 1,
                        "{path} has no example"
                    );
                }
                walk(sub, &path);
            }
        }
        walk(&Cli::command(), "cargo xtask");
    }

    #[test]
    fn the_top_level_help_lists_commands_one_line_each() {
        let text = Cli::command().render_help().to_string();
        insta::assert_snapshot!("help_top", text);
        let listed: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        // Every command, and `help`.
        assert_eq!(listed.len(), Cli::command().get_subcommands().count() + 1);
        assert!(listed.iter().all(|l| l.len() <= 100), "{listed:#?}");
    }

    #[test]
    fn help_of_the_reporting_commands() {
        insta::assert_snapshot!("help_run", help(&["run"]));
        insta::assert_snapshot!("help_test_builder", help(&["test-builder"]));
        insta::assert_snapshot!("help_validate", help(&["validate"]));
    }

    #[test]
    fn conflicting_flags_are_refused() {
        let refused = Cli::try_parse_from([
            "cargo xtask",
            "run",
            "p.json",
            "--datum",
            "3",
            "--list-datums",
        ])
        .unwrap_err();
        assert_eq!(refused.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(refused.to_string().contains("--list-datums"), "{refused}");
        assert!(Cli::try_parse_from([
            "cargo xtask",
            "run",
            "p.json",
            "--ca-bundle",
            "x",
            "--no-ca-bundle"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["cargo xtask", "clean", "--run", "x", "--cache"]).is_err());
    }

    #[test]
    fn report_flags_parse_on_the_three_commands() {
        let cli = Cli::try_parse_from([
            "cargo xtask",
            "test-builder",
            "shtest",
            "--fixture",
            "hello",
            "--bless",
            "--junit",
            "j.xml",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::TestBuilder(args) => {
                assert!(args.bless && args.report.json);
                assert_eq!(
                    args.report.junit.as_deref(),
                    Some(std::path::Path::new("j.xml"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["cargo xtask", "validate", "--json"]).is_ok());
        assert!(Cli::try_parse_from(["cargo xtask", "run", "p.json", "--junit", "x"]).is_ok());
        assert!(Cli::try_parse_from(["cargo xtask", "completions", "bash"]).is_ok());
        assert!(Cli::try_parse_from(["cargo xtask", "completions", "tcsh"]).is_err());
    }
}
