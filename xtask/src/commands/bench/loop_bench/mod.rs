//! `cargo xtask bench loop`: the developer's loop with our command line,
//! timed as a user waits for it (the wall-clock time of the whole `cargo
//! xtask` process, measured from outside), side by side with the same work
//! done with the `docker` command line (`xtask/bench/loop/docker-baseline.sh`).
//!
//! Rows (see `xtask/bench/README.md`):
//! 1. `run` of a python pipeline with one dependency and 5 datums, cold
//!    (`--no-cache`), against the docker-CLI script; outputs compared;
//! 2. the same run again, nothing changed (the build reused, every datum
//!    skipped as the platform skips unchanged datums), against row 1's; and
//!    with `--reprocess` (every datum runs);
//! 3. tiny datums (no dependencies), time per datum, build reused and every
//!    datum run (`--reprocess`), against the script's run phase; and
//!    against a bare `docker exec` (the floor);
//! 4. numpy+pandas: from the end of the build phase to the first datum (the
//!    run's `timings:` line), and the unchanged rerun (and `--reprocess`)
//!    against the cold run;
//! 5. peak memory of `cargo xtask run` staging a big input datum
//!    (`--reprocess`), and the numpy+pandas build output;
//! 6. `test-builder python --reprocess` with its default jobs against
//!    `--jobs 1`.
//!
//! Each measurement is repeated (`--reps`), ours and its baseline in turn;
//! the table gives medians and goes to `target/pachbuild/bench/loop.txt`.

mod baseline;
mod compare;
mod fixtures;
mod ours;
mod probe;
mod process;
mod report;
mod timings;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::error::{exit, IoContext};
use harness::{Error, Result};

use self::baseline::{Docker, FloorContainer, Script, Sweep};
use self::fixtures::Pipeline;
use self::ours::{Caps, Measured, Ours, Step};
use self::report::{Figure, Machine, Report, Row, Target, Unit};
use super::stats::Samples;
use super::BenchArgs;
use crate::context::Context;

/// `bench loop`'s own flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LoopArgs {
    /// `loop`: repetitions of each measurement (the table gives medians).
    #[arg(long, value_name = "N", conflicts_with = "quick",
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub reps: Option<u32>,
    /// `loop`: the smallest setting: 1 repetition, 10 tiny datums instead of
    /// 100, a 64 MiB input instead of 1 GiB, no numpy+pandas.
    #[arg(long)]
    pub quick: bool,
    /// Internal: run the command after `--` and write its exit, wall time
    /// and peak memory to REPORT (JSON).
    #[arg(long, hide = true, value_name = "REPORT", requires = "probe_command")]
    pub rss_probe: Option<PathBuf>,
    /// The command of --rss-probe.
    #[arg(
        last = true,
        hide = true,
        value_name = "COMMAND",
        requires = "rss_probe"
    )]
    pub probe_command: Vec<OsString>,
}

/// The python pipeline with one dependency: its datums.
const SIX_DATUMS: u32 = 5;
/// The numpy+pandas pipeline: its datums.
const NUMPY_DATUMS: u32 = 5;
/// Targets of the rows.
const COLD_RATIO: f64 = 0.8;
const WARM_RATIO: f64 = 0.25;
const PER_DATUM_RATIO: f64 = 0.2;
const HANDOFF_MAX_S: f64 = 1.0;
const NUMPY_WARM_RATIO: f64 = 0.1;
const RSS_MAX_MIB: f64 = 100.0;
/// `docker exec ... true` samples per repetition.
const FLOOR_EXECS: u32 = 10;
const MIB: u64 = 1 << 20;
/// The timings line `cargo xtask run` is expected to print on stderr.
pub const TIMINGS_FORMAT: &str =
    "timings: build=12.345s (built|reused) handoff=0.412s datums=0.601s total=13.400s";

/// How a run of ours treats the caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--no-cache`: the build phase and every datum run.
    Cold,
    /// Nothing asked: a rerun reuses the build and skips unchanged datums.
    Warm,
    /// `--reprocess`: the build reused, every datum runs.
    Reprocess,
}

/// How much to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub reps: u32,
    pub quick: bool,
    /// Row 3's datums.
    pub tiny_datums: u32,
    /// Row 5's input.
    pub big_bytes: u64,
    /// Rows 4 and 5's numpy+pandas.
    pub numpy: bool,
}

impl Settings {
    pub fn new(args: &LoopArgs) -> Settings {
        if args.quick {
            Settings {
                reps: 1,
                quick: true,
                tiny_datums: 10,
                big_bytes: 64 * MIB,
                numpy: false,
            }
        } else {
            Settings {
                reps: args.reps.unwrap_or(3),
                quick: false,
                tiny_datums: 100,
                big_bytes: 1024 * MIB,
                numpy: true,
            }
        }
    }
}

/// Everything measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    pub six_cold: Samples,
    pub six_cold_baseline: Samples,
    pub six_warm: Samples,
    /// Reruns with `--reprocess`: the build reused, every datum run.
    pub six_reprocess: Samples,
    /// Per datum.
    pub tiny: Samples,
    /// Per datum, the script's run phase.
    pub tiny_baseline: Samples,
    pub floor: Samples,
    pub numpy_cold: Samples,
    pub numpy_warm: Samples,
    pub numpy_reprocess: Samples,
    pub handoff: Samples,
    /// Runs that printed no `handoff=`.
    pub handoff_missing: u32,
    pub big_rss_kib: Option<u64>,
    pub numpy_rss_kib: Option<u64>,
    pub test_builder: Samples,
    pub test_builder_one_job: Samples,
    /// Pairs of outputs compared equal.
    pub outputs_compared: u32,
    /// Flags the bench wanted and this command line lacks.
    pub missing_flags: BTreeSet<String>,
}

pub async fn run(context: &Context, args: &BenchArgs) -> Result<i32> {
    let l = &args.loop_args;
    if let Some(report) = &l.rss_probe {
        return probe::run_probe(report, &l.probe_command);
    }
    let settings = Settings::new(l);
    let started = Instant::now();

    // What the bench needs, before anything runs.
    let docker = Docker::connect()?;
    let script_path = Script::path()?;
    let bench_dir = context.target_dir().join("bench");
    std::fs::create_dir_all(&bench_dir).with_path("cannot create the folder", &bench_dir)?;
    // Printed: without the `xtask/..` of the default target folder.
    let bench_dir = std::fs::canonicalize(&bench_dir).unwrap_or(bench_dir);
    let logs = bench_dir.join("loop-logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs).with_path("cannot clear the logs of the last run", &logs)?;
    }
    std::fs::create_dir_all(&logs).with_path("cannot create the folder", &logs)?;
    let scratch = tempfile::Builder::new()
        .prefix("pachbuild-bench-loop-")
        .tempdir()
        .map_err(|e| Error::Failed(format!("bench loop: cannot create a temporary folder: {e}")))?;
    let run_id = format!("loop-{}", context.run);
    let _sweep = Sweep {
        run_id: run_id.clone(),
    };
    let ours = Ours::discover(context, &logs, scratch.path())?;
    for flag in ours.caps.missing() {
        errln!("bench loop: note: this command line has no `{flag}`: left out, and said so in the table");
    }
    errln!(
        "bench loop: ours is {}; logs in {}",
        ours.exe().display(),
        logs.display()
    );

    // The builder image, as `cargo xtask build-builder python` makes it
    // (reused when its inputs are unchanged); the baseline runs the same.
    let python = context.builders(&["python".to_string()])?;
    let image = python
        .first()
        .map(|(_, meta)| meta.builder_image(&context.prefix))
        .ok_or_else(|| Error::Failed("bench loop: no python builder".to_string()))?;
    let base = base_flags(&args.base);
    errln!("bench loop: builder image {image} (`cargo xtask build-builder python`)");
    ours.run(
        &Step::BuildBuilder {
            language: "python",
            base: &base,
        },
        "build-builder",
    )
    .await?;
    docker.require_image(&image)?;

    let script = Script {
        path: script_path,
        image: image.clone(),
        ca_bundle: harness::trust::host_bundle_path(),
        run_id,
        logs: logs.clone(),
    };
    let mut bench = Bench {
        ours: &ours,
        script: &script,
        scratch: scratch.path(),
        settings: settings.clone(),
        results: Results::default(),
        verbose: crate::ui::ui().verbose(),
    };
    let outcome = bench.all().await;
    // The bench's build cache entries are its own: they go with it.
    match context.engine().await {
        Ok(engine) => {
            if let Err(e) = harness::pipeline::cache::clear(&engine, Some(ours::CACHE_SCOPE)).await
            {
                errln!("warning: the bench's build cache stays: {e}");
            }
        }
        Err(e) => errln!("warning: the bench's build cache stays: {e}"),
    }
    let datums = crate::commands::datum_cache_dir(context);
    if let Err(e) = harness::pipeline::datum_cache::clear(&datums, Some(ours::CACHE_SCOPE)) {
        errln!("warning: the bench's datum cache stays: {e}");
    }
    outcome?;
    let results = bench.results;

    let report = Report {
        header: header(&settings, &docker, &ours, &image),
        rows: rows(&results, &settings),
        notes: notes(&results, &settings, ours.caps, &logs, started.elapsed()),
    };
    let text = report::render(&report);
    let table = bench_dir.join("loop.txt");
    std::fs::write(&table, &text).with_path("cannot write", &table)?;
    print!("{text}");
    errln!("bench loop: table written to {}", table.display());
    Ok(exit::OK)
}

/// `--base-from` and `--mirror` for `build-builder`, when given.
fn base_flags(base: &crate::cli::BaseSourceArgs) -> Vec<OsString> {
    let mut flags = Vec::new();
    if let Some(from) = base.base_from {
        flags.extend(["--base-from".into(), from.as_str().into()]);
    }
    if base.mirror != "http://deb.debian.org/debian" {
        flags.extend(["--mirror".into(), base.mirror.clone().into()]);
    }
    flags
}

/// The runs, in the order of the rows.
struct Bench<'a> {
    ours: &'a Ours,
    script: &'a Script,
    scratch: &'a Path,
    settings: Settings,
    results: Results,
    verbose: bool,
}

impl Bench<'_> {
    async fn all(&mut self) -> Result<()> {
        self.six().await?;
        self.tiny().await?;
        if self.settings.numpy {
            self.numpy().await?;
        } else {
            errln!("bench loop: 4/6 numpy+pandas: skipped (--quick)");
        }
        self.big().await?;
        self.test_builder().await
    }

    /// Rows 1 and 2: cold against the docker CLI, and warm.
    async fn six(&mut self) -> Result<()> {
        let six = fixtures::write_workload(
            &self.scratch.join("six"),
            "bench-loop-six",
            &fixtures::workload("six")?,
            SIX_DATUMS,
        )?;
        errln!("bench loop: 1-2/6 six, {SIX_DATUMS} datums: warm-up run (fills the cache)");
        self.ours(&six, Mode::Warm, "six-warm-up").await?;
        let reps = self.settings.reps;
        for rep in 1..=reps {
            let (cold, ours_out) = self
                .ours(&six, Mode::Cold, &format!("six-cold-{rep}"))
                .await?;
            let (base, base_out) = self.baseline(&six, &format!("six-{rep}")).await?;
            self.same_outputs(&ours_out, &base_out, "six")?;
            let (warm, _) = self
                .ours(&six, Mode::Warm, &format!("six-warm-{rep}"))
                .await?;
            let (again, _) = self
                .ours(&six, Mode::Reprocess, &format!("six-reprocess-{rep}"))
                .await?;
            errln!(
                "bench loop: 1-2/6 six, rep {rep}/{reps}: cold {} (docker CLI {}), warm {}, --reprocess {}",
                secs(cold.wall),
                secs(base.wall),
                secs(warm.wall),
                secs(again.wall)
            );
            self.results.six_cold.push(cold.wall);
            self.results.six_cold_baseline.push(base.wall);
            self.results.six_warm.push(warm.wall);
            self.results.six_reprocess.push(again.wall);
        }
        Ok(())
    }

    /// Row 3: tiny datums, per datum; the floor.
    async fn tiny(&mut self) -> Result<()> {
        let n = self.settings.tiny_datums;
        let tiny = fixtures::write_workload(
            &self.scratch.join("tiny"),
            "bench-loop-tiny",
            &fixtures::workload("hello")?,
            n,
        )?;
        errln!("bench loop: 3/6 {n} tiny datums: warm-up run");
        self.ours(&tiny, Mode::Warm, "tiny-warm-up").await?;
        let floor = FloorContainer::start(&self.script.image, &self.script.run_id)?;
        let reps = self.settings.reps;
        for rep in 1..=reps {
            let (ours, ours_out) = self
                .ours(&tiny, Mode::Reprocess, &format!("tiny-{rep}"))
                .await?;
            let (base, base_out) = self.baseline(&tiny, &format!("tiny-{rep}")).await?;
            self.same_outputs(&ours_out, &base_out, "tiny")?;
            let mut execs = Samples::new();
            for _ in 0..FLOOR_EXECS {
                execs.push(floor.exec_true()?);
            }
            let per_datum = ours.wall / tiny.datums;
            let base_per_datum =
                Duration::from_secs_f64(base.after_build() / f64::from(tiny.datums));
            errln!(
                "bench loop: 3/6 {n} tiny datums, rep {rep}/{reps}: {}/datum (docker CLI run phase {}/datum; docker exec {})",
                secs(per_datum),
                secs(base_per_datum),
                execs.median().map_or_else(|| "n/a".to_string(), |m| format!("{m:.3} s")),
            );
            self.results.tiny.push(per_datum);
            self.results.tiny_baseline.push(base_per_datum);
            self.results.floor.extend(execs.values().iter().copied());
        }
        drop(floor);
        Ok(())
    }

    /// Row 4 (and 5's numpy+pandas memory).
    async fn numpy(&mut self) -> Result<()> {
        let np = fixtures::write_workload(
            &self.scratch.join("numpy-pandas"),
            "bench-loop-numpy-pandas",
            &fixtures::workload("numpy-pandas")?,
            NUMPY_DATUMS,
        )?;
        errln!("bench loop: 4/6 numpy+pandas: warm-up run (fills the cache)");
        let (warm_up, _) = self.ours(&np, Mode::Warm, "numpy-warm-up").await?;
        self.note_numpy(&warm_up);
        let reps = self.settings.reps;
        for rep in 1..=reps {
            let (cold, _) = self
                .ours(&np, Mode::Cold, &format!("numpy-cold-{rep}"))
                .await?;
            let handoff = cold.timings.as_ref().and_then(|t| t.get("handoff"));
            let build = cold
                .timings
                .as_ref()
                .and_then(|t| Some(format!("{:.3} s ({})", t.get("build")?, t.note("build")?)))
                .unwrap_or_else(|| "n/a".to_string());
            match handoff {
                Some(h) => self.results.handoff.push(Duration::from_secs_f64(h)),
                None => self.results.handoff_missing += 1,
            }
            self.note_numpy(&cold);
            let (warm, _) = self
                .ours(&np, Mode::Warm, &format!("numpy-warm-{rep}"))
                .await?;
            self.note_numpy(&warm);
            let (again, _) = self
                .ours(&np, Mode::Reprocess, &format!("numpy-reprocess-{rep}"))
                .await?;
            self.note_numpy(&again);
            errln!(
                "bench loop: 4/6 numpy+pandas, rep {rep}/{reps}: cold {} (build {build}, handoff {}), warm {}, --reprocess {}",
                secs(cold.wall),
                handoff.map_or_else(|| "n/a".to_string(), |h| format!("{h:.3} s")),
                secs(warm.wall),
                secs(again.wall)
            );
            self.results.numpy_cold.push(cold.wall);
            self.results.numpy_warm.push(warm.wall);
            self.results.numpy_reprocess.push(again.wall);
        }
        Ok(())
    }

    fn note_numpy(&mut self, run: &Measured) {
        let peak = &mut self.results.numpy_rss_kib;
        *peak = Some(peak.unwrap_or(0).max(run.max_rss_kib));
    }

    /// Row 5: one big datum.
    async fn big(&mut self) -> Result<()> {
        let bytes = self.settings.big_bytes;
        errln!("bench loop: 5/6 writing a {} input", size_text(bytes));
        let dir = self.scratch.join("big");
        let big = fixtures::write_big(&dir, "bench-loop-big", bytes)?;
        let (run, out) = self.ours(&big, Mode::Reprocess, "big").await?;
        let size = out.join("size.txt");
        let said = std::fs::read_to_string(&size).with_path("cannot read", &size)?;
        if said != fixtures::big_expected(bytes) {
            return Err(Error::Failed(format!(
                "bench loop: the big-input run saw {:?}, not {bytes} bytes: its datum was not staged whole",
                said.trim()
            )));
        }
        std::fs::remove_dir_all(&dir).with_path("cannot remove", &dir)?;
        errln!(
            "bench loop: 5/6 {} input: peak memory {:.1} MiB, {}",
            size_text(bytes),
            kib_to_mib(run.max_rss_kib),
            secs(run.wall)
        );
        self.results.big_rss_kib = Some(run.max_rss_kib);
        Ok(())
    }

    /// Row 6: default jobs against `--jobs 1`.
    async fn test_builder(&mut self) -> Result<()> {
        let default = Step::TestBuilder {
            language: "python",
            jobs: None,
        };
        let one = Step::TestBuilder {
            language: "python",
            jobs: Some(1),
        };
        let one_job = self.ours.caps.test_builder_jobs;
        if !one_job {
            self.results
                .missing_flags
                .insert("test-builder --jobs".to_string());
        }
        errln!("bench loop: 6/6 test-builder python: warm-up run");
        self.ours_step(&default, "test-builder-warm-up").await?;
        let reps = self.settings.reps;
        for rep in 1..=reps {
            let run = self
                .ours_step(&default, &format!("test-builder-{rep}"))
                .await?;
            self.results.test_builder.push(run.wall);
            let one_text = if one_job {
                let run = self
                    .ours_step(&one, &format!("test-builder-jobs-1-{rep}"))
                    .await?;
                self.results.test_builder_one_job.push(run.wall);
                secs(run.wall)
            } else {
                "n/a (no --jobs)".to_string()
            };
            errln!(
                "bench loop: 6/6 test-builder python, rep {rep}/{reps}: default {}, --jobs 1 {one_text}",
                secs(run.wall)
            );
        }
        Ok(())
    }

    /// A run of ours into a new output folder.
    async fn ours(
        &mut self,
        pipeline: &Pipeline,
        mode: Mode,
        label: &str,
    ) -> Result<(Measured, PathBuf)> {
        let out = self.new_out(&format!("ours-{label}"));
        let step = Step::Run {
            pipeline,
            out: &out,
            cold: mode == Mode::Cold,
            reprocess: mode == Mode::Reprocess,
        };
        let run = self.ours_step(&step, label).await?;
        Ok((run, out))
    }

    async fn ours_step(&mut self, step: &Step<'_>, label: &str) -> Result<Measured> {
        let (args, missing) = self.ours.command_line(step);
        self.results.missing_flags.extend(missing);
        if self.verbose {
            errln!("bench loop: {}", ours::display(&args));
        }
        self.ours.run(step, label).await
    }

    /// A run of the docker-CLI script into a new output folder.
    async fn baseline(
        &mut self,
        pipeline: &Pipeline,
        label: &str,
    ) -> Result<(baseline::ScriptRun, PathBuf)> {
        let out = self.new_out(&format!("baseline-{label}"));
        if self.verbose {
            errln!(
                "bench loop: sh {}",
                self.script
                    .args(pipeline, &out)
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let run = self.script.run(pipeline, &out, label).await?;
        Ok((run, out))
    }

    /// The output folder of a run (labels are unique within a bench).
    fn new_out(&self, what: &str) -> PathBuf {
        self.scratch.join("out").join(what)
    }

    /// Ours and the baseline left the same files; both folders go.
    fn same_outputs(&mut self, ours: &Path, base: &Path, what: &str) -> Result<()> {
        let found = compare::differences(ours, base)?;
        if !found.is_empty() {
            let shown: Vec<&str> = found.iter().take(10).map(String::as_str).collect();
            return Err(Error::Failed(format!(
                "bench loop: {what}: our output and the docker-CLI baseline's differ ({} difference(s)):\n  {}",
                found.len(),
                shown.join("\n  ")
            )));
        }
        self.results.outputs_compared += 1;
        for dir in [ours, base] {
            std::fs::remove_dir_all(dir).with_path("cannot remove", dir)?;
        }
        Ok(())
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `1 GiB`, `64 MiB`.
pub fn size_text(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else {
        format!("{} MiB", bytes.div_ceil(MIB))
    }
}

/// The rows of the table.
pub fn rows(r: &Results, s: &Settings) -> Vec<Row> {
    let quick = "skipped (--quick)";
    let numpy = |samples: &Samples| {
        if s.numpy {
            Figure::median(samples, "n/a")
        } else {
            Figure::missing(quick)
        }
    };
    let handoff = if !s.numpy {
        Figure::missing(quick)
    } else if r.handoff.len() == 0 {
        Figure::missing("n/a (no timings)")
    } else {
        Figure::median(&r.handoff, "n/a")
    };
    let mib = |kib: Option<u64>, why: &str| {
        kib.map_or_else(|| Figure::missing(why), |k| Figure::Value(kib_to_mib(k)))
    };
    let one_job =
        if r.test_builder_one_job.len() == 0 && r.missing_flags.contains("test-builder --jobs") {
            Figure::missing("n/a (no --jobs)")
        } else {
            Figure::median(&r.test_builder_one_job, "n/a")
        };
    let none = || Figure::missing("-");
    vec![
        Row::new(
            format!("1 run: six, {SIX_DATUMS} datums, cold (baseline: docker CLI)"),
            Unit::Seconds,
            Figure::median(&r.six_cold, "n/a"),
            Figure::median(&r.six_cold_baseline, "n/a"),
            Target::RatioAtMost(COLD_RATIO),
        ),
        Row::new(
            "2 rerun unchanged (baseline: row 1 cold)",
            Unit::Seconds,
            Figure::median(&r.six_warm, "n/a"),
            Figure::median(&r.six_cold, "n/a"),
            Target::RatioAtMost(WARM_RATIO),
        ),
        Row::new(
            "2 the same with --reprocess: every datum runs",
            Unit::Seconds,
            Figure::median(&r.six_reprocess, "n/a"),
            Figure::median(&r.six_cold, "n/a"),
            Target::None,
        ),
        Row::new(
            format!(
                "3 {} tiny datums, --reprocess (baseline: docker run each)",
                s.tiny_datums
            ),
            Unit::PerDatum,
            Figure::median(&r.tiny, "n/a"),
            Figure::median(&r.tiny_baseline, "n/a"),
            Target::RatioAtMost(PER_DATUM_RATIO),
        ),
        Row::new(
            "3 the same (baseline: bare docker exec)",
            Unit::PerDatum,
            Figure::median(&r.tiny, "n/a"),
            Figure::median(&r.floor, "n/a"),
            Target::None,
        ),
        Row::new(
            "4 numpy+pandas: build end to first datum",
            Unit::Seconds,
            handoff,
            none(),
            Target::AtMost(HANDOFF_MAX_S),
        ),
        Row::new(
            "4 numpy+pandas rerun (baseline: its cold run)",
            Unit::Seconds,
            numpy(&r.numpy_warm),
            numpy(&r.numpy_cold),
            Target::RatioAtMost(NUMPY_WARM_RATIO),
        ),
        Row::new(
            "4 the same with --reprocess: every datum runs",
            Unit::Seconds,
            numpy(&r.numpy_reprocess),
            numpy(&r.numpy_cold),
            Target::None,
        ),
        Row::new(
            format!("5 peak memory, {} input datum", size_text(s.big_bytes)),
            Unit::Mib,
            mib(r.big_rss_kib, "n/a"),
            none(),
            Target::Below(RSS_MAX_MIB),
        ),
        Row::new(
            "5 peak memory, numpy+pandas build output",
            Unit::Mib,
            mib(r.numpy_rss_kib, if s.numpy { "n/a" } else { quick }),
            none(),
            Target::Below(RSS_MAX_MIB),
        ),
        Row::new(
            "6 test-builder python --reprocess (baseline: --jobs 1)",
            Unit::Seconds,
            Figure::median(&r.test_builder, "n/a"),
            one_job,
            Target::None,
        ),
    ]
}

fn header(s: &Settings, docker: &Docker, ours: &Ours, image: &str) -> Vec<String> {
    vec![
        format!(
            "cargo xtask bench loop{}: wall-clock time of whole commands, as a user waits for them (row 5: peak memory); medians of {}, ours and baseline in turn",
            if s.quick { " --quick" } else { "" },
            count(s.reps, "repetition"),
        ),
        format!(
            "machine: {}; docker engine {}",
            Machine::this().describe(),
            docker.server_version
        ),
        format!("ours: {}; image: {image}", ours.exe().display()),
    ]
}

fn notes(r: &Results, s: &Settings, caps: Caps, logs: &Path, took: Duration) -> Vec<String> {
    let mut notes = vec![
        "ratio = ours / baseline. Baselines: rows 1 and 3, xtask/bench/loop/docker-baseline.sh (one `docker run` for the build phase, one per datum); row 3 counts its run phase and merge, ours the whole run (build reused, every datum run), divided by the datums".to_string(),
        "rows 2 and 4, rerun unchanged: the build output is reused and every datum is skipped, its output reused, as the platform skips datums a previous job processed (`--reprocess` runs them: the rows below them)".to_string(),
    ];
    if r.outputs_compared > 0 {
        notes.push(format!(
            "outputs of ours and the docker-CLI baseline: equal byte for byte in all {} pairs",
            r.outputs_compared
        ));
    }
    if let (Some(ours), Some(floor)) = (r.tiny.median(), r.floor.median()) {
        notes.push(format!(
            "row 3: ours per datum is {:.1}x a bare `docker exec <container> true` through the docker CLI ({floor:.3} s, median of {}, the CLI's start-up included), the engine's floor",
            ours / floor,
            r.floor.len()
        ));
    }
    if s.numpy && r.handoff.len() == 0 {
        notes.push(format!(
            "row 4: `cargo xtask run` printed no `handoff=` on stderr (expected: `{TIMINGS_FORMAT}`)"
        ));
    } else if r.handoff_missing > 0 {
        notes.push(format!(
            "row 4: {} run(s) printed no `handoff=`",
            r.handoff_missing
        ));
    }
    notes.push("row 5: peak resident memory (getrusage RUSAGE_CHILDREN ru_maxrss) of the `xtask` process and the children it waited for".to_string());
    for flag in &r.missing_flags {
        let effect = match flag.as_str() {
            "run --no-cache" => "the cold runs (rows 1, 2's baseline, 4) ran without it",
            "test-builder --jobs" => "row 6 has no --jobs 1 figure",
            _ => "left out",
        };
        notes.push(format!("this command line has no `{flag}`: {effect}"));
    }
    if caps.missing().is_empty() && r.missing_flags.is_empty() {
        notes.push(format!(
            "flags used: run --no-cache, test-builder --jobs{}",
            if caps.reprocess { ", --reprocess" } else { "" }
        ));
    }
    if caps.run_cache_scope {
        notes.push(format!(
            "runs of ours use the build cache scope `{}` (--cache-scope): the bench's entries stay apart from yours and are removed at its end",
            ours::CACHE_SCOPE
        ));
    }
    notes.push(
        "ours is the built binary run directly; `cargo xtask` adds cargo's own up-to-date check before it".to_string(),
    );
    notes.push(format!(
        "the bench took {:.0} s; logs of every command: {}",
        took.as_secs_f64(),
        logs.display()
    ));
    notes
}

fn count(n: u32, noun: &str) -> String {
    super::table::count(n, noun)
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::Met;

    fn samples(secs: &[f64]) -> Samples {
        secs.iter().map(|s| Duration::from_secs_f64(*s)).collect()
    }

    fn settings(quick: bool) -> Settings {
        Settings::new(&LoopArgs {
            quick,
            ..LoopArgs::default()
        })
    }

    #[test]
    fn settings_follow_the_flags() {
        let full = settings(false);
        assert_eq!(
            full,
            Settings {
                reps: 3,
                quick: false,
                tiny_datums: 100,
                big_bytes: 1 << 30,
                numpy: true
            }
        );
        let quick = settings(true);
        assert_eq!((quick.reps, quick.tiny_datums), (1, 10));
        assert_eq!(quick.big_bytes, 64 << 20);
        assert!(!quick.numpy);
        let five = Settings::new(&LoopArgs {
            reps: Some(5),
            ..LoopArgs::default()
        });
        assert_eq!(five.reps, 5);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size_text(1 << 30), "1 GiB");
        assert_eq!(size_text(64 << 20), "64 MiB");
        assert_eq!(size_text(1), "1 MiB");
    }

    fn full_results() -> Results {
        Results {
            six_cold: samples(&[2.0, 2.2, 2.1]),
            six_cold_baseline: samples(&[2.5, 2.4, 2.6]),
            six_warm: samples(&[0.4, 0.5, 0.6]),
            six_reprocess: samples(&[0.5, 0.6, 0.7]),
            tiny: samples(&[0.04, 0.05, 0.06]),
            tiny_baseline: samples(&[0.3, 0.3, 0.3]),
            floor: samples(&[0.06, 0.05, 0.07]),
            numpy_cold: samples(&[40.0, 42.0, 41.0]),
            numpy_warm: samples(&[3.0, 3.5, 5.0]),
            numpy_reprocess: samples(&[4.0, 4.5, 6.0]),
            handoff: samples(&[0.4, 0.5, 0.6]),
            handoff_missing: 0,
            big_rss_kib: Some(40 * 1024),
            numpy_rss_kib: Some(120 * 1024),
            test_builder: samples(&[8.0, 9.0, 10.0]),
            test_builder_one_job: samples(&[14.0, 15.0, 16.0]),
            outputs_compared: 6,
            missing_flags: BTreeSet::new(),
        }
    }

    #[test]
    fn rows_hold_medians_and_verdicts() {
        let rows = rows(&full_results(), &settings(false));
        assert_eq!(rows.len(), 11);
        let met: Vec<Met> = rows.iter().map(Row::met).collect();
        assert_eq!(
            met,
            [
                Met::No,       // 2.1 / 2.5 = 0.84 > 0.8
                Met::Yes,      // 0.5 / 2.1 = 0.24 <= 0.25
                Met::NoTarget, // --reprocess
                Met::Yes,      // 0.05 / 0.3 <= 0.2
                Met::NoTarget, // against the floor
                Met::Yes,      // handoff 0.5 s <= 1 s
                Met::Yes,      // 3.5 / 41 <= 0.1
                Met::NoTarget, // --reprocess
                Met::Yes,      // 40 MiB < 100
                Met::No,       // 120 MiB
                Met::NoTarget, // jobs
            ]
        );
        assert!((rows[1].ratio().unwrap() - 0.5 / 2.1).abs() < 1e-9);
        assert!((rows[2].ratio().unwrap() - 0.6 / 2.1).abs() < 1e-9);
        assert_eq!(
            rows[3].workload,
            "3 100 tiny datums, --reprocess (baseline: docker run each)"
        );
        assert_eq!(rows[8].workload, "5 peak memory, 1 GiB input datum");
    }

    #[test]
    fn quick_rows_say_what_was_skipped() {
        let mut r = full_results();
        r.handoff = Samples::new();
        r.numpy_cold = Samples::new();
        r.numpy_warm = Samples::new();
        r.numpy_reprocess = Samples::new();
        r.numpy_rss_kib = None;
        let rows = rows(&r, &settings(true));
        assert_eq!(rows[5].ours, Figure::missing("skipped (--quick)"));
        assert_eq!(rows[6].ours, Figure::missing("skipped (--quick)"));
        assert_eq!(rows[6].baseline, Figure::missing("skipped (--quick)"));
        assert_eq!(rows[7].ours, Figure::missing("skipped (--quick)"));
        assert_eq!(rows[9].ours, Figure::missing("skipped (--quick)"));
        assert_eq!(rows[5].met(), Met::Unknown);
        assert_eq!(rows[8].workload, "5 peak memory, 64 MiB input datum");
    }

    #[test]
    fn missing_timings_and_flags_are_said() {
        let mut r = full_results();
        r.handoff = Samples::new();
        r.handoff_missing = 3;
        r.test_builder_one_job = Samples::new();
        r.missing_flags = ["run --no-cache", "test-builder --jobs"]
            .map(String::from)
            .into();
        let s = settings(false);
        let rows = rows(&r, &s);
        assert_eq!(rows[5].ours, Figure::missing("n/a (no timings)"));
        assert_eq!(rows[10].baseline, Figure::missing("n/a (no --jobs)"));
        let notes = notes(
            &r,
            &s,
            Caps::default(),
            Path::new("/l"),
            Duration::from_secs(61),
        );
        let text = notes.join("\n");
        for wanted in [
            "printed no `handoff=` on stderr (expected: `timings: build=12.345s (built|reused) handoff=0.412s",
            "no `run --no-cache`: the cold runs",
            "no `test-builder --jobs`: row 6 has no --jobs 1 figure",
            "equal byte for byte in all 6 pairs",
            "0.8x a bare `docker exec <container> true`",
            "the bench took 61 s; logs of every command: /l",
        ] {
            assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
        }
    }

    #[test]
    fn base_flags_are_forwarded_when_given() {
        let mut base = crate::cli::BaseSourceArgs {
            base_from: None,
            mirror: "http://deb.debian.org/debian".to_string(),
        };
        assert!(base_flags(&base).is_empty());
        base.base_from = Some(harness::builder::BaseSource::Debian);
        base.mirror = "http://m/debian".to_string();
        let flags: Vec<String> = base_flags(&base)
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            flags,
            ["--base-from", "debian", "--mirror", "http://m/debian"]
        );
    }
}
