//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Make, validate and test builder images for build pipelines",
    after_help = "Exit codes: 0 success, 1 a build, fixture or pipeline failed, 2 bad input, 3 no Docker engine."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the engine, base images, tools, CA bundle and proxy settings.
    Doctor,
    /// Provide each builder's base image: reuse, pull, or make it from Debian packages.
    Base(BaseArgs),
    /// Remove what runs that are over left on the engine (containers, volumes,
    /// test images); a live run's objects are never touched. With
    /// PACHBUILD_SESSION set, only that session's.
    Clean(CleanArgs),
    /// Build builder images (and their bases), reusing unchanged ones.
    BuildBuilder(BuildBuilderArgs),
    /// Run a build pipeline locally, as the platform would.
    Run(RunArgs),
    /// Run the fixtures of builders (all when none is named) and compare their outputs.
    TestBuilder(TestBuilderArgs),
    /// Check builder folders statically, then their images against builder.yaml.
    Validate(crate::commands::validate::ValidateArgs),
    /// Scaffold a new builder that builds, validates and passes its fixture.
    NewBuilder(crate::commands::new_builder::NewBuilderArgs),
    /// Benchmarks, printed side by side with their baselines.
    Bench(crate::commands::bench::BenchArgs),
    /// Build, validate and test builders, then push those that passed to a registry.
    Publish(crate::commands::publish::PublishArgs),
}

#[derive(Debug, Args)]
pub struct BuildBuilderArgs {
    /// Builders to build (all when none is named).
    #[arg(value_name = "LANG")]
    pub languages: Vec<String>,
    /// Build even when an image with the same inputs exists.
    #[arg(long)]
    pub rebuild: bool,
    /// Print every line of the image build.
    #[arg(long, short)]
    pub verbose: bool,
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
    #[arg(long, value_name = "ID")]
    pub datum: Option<String>,
    /// Print the datums the spec makes and run nothing.
    #[arg(long)]
    pub list_datums: bool,
    /// With --list-datums: print the datums as JSON on stdout, for tools.
    #[arg(long, requires = "list_datums")]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct TestBuilderArgs {
    /// Builders whose fixtures to run (all when none is named and no --fixture is given).
    #[arg(value_name = "LANG")]
    pub languages: Vec<String>,
    /// Run this fixture folder instead (repeatable).
    #[arg(long = "fixture", value_name = "DIR")]
    pub fixtures: Vec<PathBuf>,
    /// Stream every phase's log.
    #[arg(long, short)]
    pub verbose: bool,
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
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub base_from: Option<BaseFromArg>,
    /// Debian mirror used by mmdebstrap.
    #[arg(
        long,
        default_value = "http://deb.debian.org/debian",
        value_name = "URL"
    )]
    pub mirror: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BaseFromArg {
    Upstream,
    Debian,
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

/// `--timeout 10m`: a Go duration, as specs write them.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match harness::spec::duration::parse_go_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a time limit of 0 would stop everything at once".into()),
        Err(why) => Err(format!("{why}; write e.g. `90s`, `10m` or `1h30m`")),
    }
}
