//! `cargo xtask bench <WHAT>`: benchmarks, printed side by side with their
//! baselines. Nothing here asserts on timings: a bench reports, and exits 0
//! unless something failed to run.
//!
//! - `builders`: the run-phase cost per datum of the python builder against
//!   a baseline that works as the upstream builder did (see
//!   `xtask/bench/python-upstream/`), in fresh and warm containers.

mod builders;
mod stats;
mod table;
mod workload;

use clap::ValueEnum;
use harness::Result;

use crate::cli::BaseSourceArgs;
use crate::context::Context;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, value_name = "WHAT")]
    pub what: BenchWhat,
    /// Datums (input files, glob `/*`) of each workload: the first of a run
    /// container is its fresh sample, the others its warm ones.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(2..=100))]
    pub datums: u32,
    /// Run containers per builder and workload (fresh samples); medians are
    /// taken over all of them.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// Stream the logs of image builds and pipeline phases to stderr.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub base: BaseSourceArgs,
}

/// The benchmarks there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchWhat {
    /// Run-phase time per datum: our python builder against the upstream design.
    Builders,
}

pub async fn run(context: &Context, args: &BenchArgs) -> Result<i32> {
    match args.what {
        BenchWhat::Builders => builders::run(context, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> std::result::Result<BenchArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map(|w| w.bench)
    }

    #[test]
    fn defaults_and_flags() {
        let args = parse(&["builders"]).unwrap();
        assert_eq!(args.what, BenchWhat::Builders);
        assert_eq!((args.datums, args.runs), (5, 3));
        let args = parse(&[
            "builders",
            "--datums",
            "8",
            "--runs",
            "1",
            "--base-from",
            "debian",
        ])
        .unwrap();
        assert_eq!((args.datums, args.runs), (8, 1));
        assert!(args.base.base_from.is_some());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["everything"]).is_err());
        assert!(parse(&["builders", "--datums", "1"]).is_err());
        assert!(parse(&["builders", "--datums", "many"]).is_err());
        assert!(parse(&["builders", "--runs", "0"]).is_err());
    }
}
