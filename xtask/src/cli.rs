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
        false
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
    /// Remove every container and test image the tools left on the engine.
    Clean(CleanArgs),
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
    /// Also remove base and builder images (they are kept as a cache otherwise).
    #[arg(long)]
    pub all: bool,
}
