//! `cargo xtask bench <WHAT>`: benchmarks, printed side by side with their
//! baselines. Nothing here asserts on timings: a bench reports, and exits 0
//! unless something failed to run.
//!
//! - `builders`: the run-phase cost per datum of the python builder against
//!   a baseline that works as the upstream builder did (see
//!   `xtask/bench/python-upstream/`), in fresh and warm containers.
//! - `loop`: the developer's loop (`run` cold and warm, many datums, a heavy
//!   build output, peak memory, `test-builder`), wall-clock time of whole
//!   commands, against the same work done with the `docker` command line.

mod builders;
mod loop_bench;
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
    #[command(flatten)]
    pub base: BaseSourceArgs,
    #[command(flatten)]
    pub loop_args: loop_bench::LoopArgs,
}

/// The benchmarks there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchWhat {
    /// Run-phase time per datum: our python builder against the upstream design.
    Builders,
    /// The developer's loop, whole commands timed: ours against the docker CLI.
    Loop,
}

pub async fn run(context: &Context, args: &BenchArgs) -> Result<i32> {
    check_flags(args)?;
    match args.what {
        BenchWhat::Builders => builders::run(context, args).await,
        BenchWhat::Loop => loop_bench::run(context, args).await,
    }
}

/// `message`, then the last lines of the failed command's output, quoted:
/// how both benches report a command that failed.
fn with_tail(mut message: String, tail: &[String]) -> String {
    if !tail.is_empty() {
        message.push_str("; last lines of its output:");
        for line in tail {
            message.push_str("\n  | ");
            message.push_str(line);
        }
    }
    message
}

/// Each bench's own flags are refused by the other.
fn check_flags(args: &BenchArgs) -> Result<()> {
    let l = &args.loop_args;
    let wrong = match args.what {
        BenchWhat::Builders if l.reps.is_some() || l.quick || l.rss_probe.is_some() => {
            "--reps, --quick"
        }
        BenchWhat::Loop if args.datums != 5 || args.runs != 3 => "--datums, --runs",
        _ => return Ok(()),
    };
    Err(harness::Error::Usage(format!(
        "{wrong}: not flags of `bench {}`\n  fix: `bench builders` takes --datums and --runs, `bench loop` --reps and --quick",
        match args.what {
            BenchWhat::Builders => "builders",
            BenchWhat::Loop => "loop",
        }
    )))
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
    fn loop_flags() {
        let args = parse(&["loop"]).unwrap();
        assert_eq!(args.what, BenchWhat::Loop);
        assert_eq!(args.loop_args.reps, None);
        assert!(!args.loop_args.quick);
        assert!(check_flags(&args).is_ok());
        let args = parse(&["loop", "--reps", "5"]).unwrap();
        assert_eq!(args.loop_args.reps, Some(5));
        assert!(parse(&["loop", "--quick"]).unwrap().loop_args.quick);
        // The probe: a report and a command.
        let args = parse(&[
            "loop",
            "--rss-probe",
            "/t/r.json",
            "--",
            "xtask",
            "run",
            "--out",
            "o",
        ])
        .unwrap();
        assert_eq!(args.loop_args.rss_probe, Some("/t/r.json".into()));
        assert_eq!(args.loop_args.probe_command.len(), 4);
    }

    #[test]
    fn each_bench_refuses_the_others_flags() {
        for bad in [
            &["loop", "--reps", "0"][..],
            &["loop", "--reps", "2", "--quick"],
            &["loop", "--rss-probe", "r.json"],
            &["loop", "--", "xtask"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let err = check_flags(&parse(&["loop", "--datums", "8"]).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("--datums, --runs: not flags of `bench loop`"),
            "{err}"
        );
        let err = check_flags(&parse(&["builders", "--quick"]).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("--reps, --quick: not flags of `bench builders`"),
            "{err}"
        );
        assert!(check_flags(&parse(&["builders", "--runs", "2"]).unwrap()).is_ok());
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
