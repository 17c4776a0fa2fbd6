//! `cargo xtask bench builders`: the run-phase time per datum of our python
//! builder and of a baseline built like the upstream one, side by side.
//!
//! For each workload and builder, the harness runs the pipeline once (build
//! phase, then the run phase over every datum, as `cargo xtask run` does);
//! its datum times are the first worker's samples. The other workers replay
//! the run phase over the same build volumes, timing each whole datum as the
//! harness does (from handing it to the worker process to its end marker:
//! staging, the command, collecting), so the build phase (slow, networked)
//! runs once. In our replays, each datum is followed by the program's
//! imports alone and a bare exec, each an exec of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::builder::image::{self, ImageOptions};
use harness::builder::Base;
use harness::engine::{Engine, ExecSpec, RunId};
use harness::error::exit;
use harness::pipeline::worker::StandaloneWorker;
use harness::pipeline::{self, CacheEntry, OutputDir, Prepared, RunOptions};
use harness::runner::Runner;
use harness::trust::Trust;
use harness::{Error, Result};

use super::stats::Samples;
use super::table::{self, BenchReport, ImageSize, SideResult, WorkloadResult};
use super::workload::{self, Side, Workload, Written};
use super::BenchArgs;
use crate::commands::build_builder::print_build_line;
use crate::commands::runner_options;
use crate::context::Context;

/// The baseline builder's folder, beside this crate's sources.
const BASELINE_DIR: &str = "bench/python-upstream";
/// The baseline image's name (after the prefix) and tag.
const BASELINE_NAME: &str = "bench-python-upstream";
const BASELINE_VERSION: &str = "0.1.0";
/// Imports-alone and bare-exec samples per workload when nothing is
/// replayed (`--runs 1`).
const PROBE_REPEATS: usize = 5;
/// Lines of a failing command's output shown in the error.
const TAIL_LINES: usize = 15;

pub async fn run(context: &Context, args: &BenchArgs) -> Result<i32> {
    let scratch = Scratch::create(&context.run)?;
    let mut options = runner_options(context, &args.base);
    // One worker, so that a container's first datum is its fresh sample; and
    // a real build phase each time, so that its time means something.
    options.jobs = 1;
    options.cache.read = false;
    let runner = Runner::connect(context.builders_dir(), options).await?;
    let result = bench(&runner, context, args, scratch.path()).await;
    // Containers of this run and the baseline image (ephemeral) go; our
    // builder image stays: it is the product, and a cache.
    if let Err(e) = runner.clean_up().await {
        errln!("warning: clean-up incomplete: {e}\n  run `cargo xtask clean` to finish it");
    }
    drop(scratch);
    let report = result?;
    print!("{}", table::render(&report));
    Ok(exit::OK)
}

async fn bench(
    runner: &Runner,
    context: &Context,
    args: &BenchArgs,
    scratch: &Path,
) -> Result<BenchReport> {
    let verbose = crate::ui::ui().verbose();
    let engine = runner.engine();

    let (base, ours) = runner
        .ensure_builder("python", &mut |line| {
            print_build_line("python", line, verbose)
        })
        .await?;
    let how = if ours.reused { "reused" } else { "built" };
    errln!("bench: ours: {} ({how}) on {base}", ours.image);
    let baseline = build_baseline(runner, context, &base, verbose).await?;
    errln!("bench: upstream-style: {baseline} (built for this run, removed at the end)");
    errln!(
        "bench: logs of the harness runs: {}",
        runner.log_dir().display()
    );

    let mut report = BenchReport {
        datums: args.datums,
        runs: args.runs,
        ..BenchReport::default()
    };
    for w in workload::all() {
        let written = workload::write(&w, &scratch.join(w.slug), args.datums, &baseline)?;
        let (result, floor) = bench_workload(runner, &w, &written, args).await?;
        report.exec_floor.extend(floor.values().iter().copied());
        report.workloads.push(result);
    }

    for (role, image) in [("ours", ours.image.as_str()), ("upstream-style", &baseline)] {
        let size = |name: &str| {
            let name = name.to_string();
            async move { Ok::<u64, Error>(engine.image(&name).await?.map_or(0, |i| i.size)) }
        };
        report.images.push(ImageSize {
            role: role.to_string(),
            image: image.to_string(),
            bytes: size(image).await?,
            base: base.image.clone(),
            base_bytes: size(&base.image).await?,
        });
    }
    Ok(report)
}

/// Builds the baseline on the same base as our builder, as an image of this
/// run only (the run's clean-up removes it).
async fn build_baseline(
    runner: &Runner,
    context: &Context,
    base: &Base,
    verbose: bool,
) -> Result<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(BASELINE_DIR);
    let mut meta = runner.builder_meta("python").ok_or_else(|| {
        Error::Failed(format!(
            "no python builder in {}: the bench compares it with its baseline",
            context.builders_dir().display()
        ))
    })?;
    meta.version = BASELINE_VERSION.to_string();
    let options = ImageOptions {
        tag: format!("{}/{BASELINE_NAME}:{BASELINE_VERSION}", context.prefix),
        revision: image::git_revision(&context.root),
        run: runner.run_id().clone(),
        // Never reuse a leftover of an interrupted run: it would carry that
        // run's label, and this run's clean-up would leave it.
        rebuild: true,
        ephemeral: true,
    };
    // Its steps are the same at every run: shown only with --verbose.
    let built = image::ensure(runner.engine(), &dir, &meta, base, &options, &mut |line| {
        if verbose {
            errln!("  upstream-style | {line}");
        }
    })
    .await?;
    Ok(built.image)
}

/// Both builders on one workload: a harness run each, replays, probes.
async fn bench_workload(
    runner: &Runner,
    w: &Workload,
    written: &Written,
    args: &BenchArgs,
) -> Result<(WorkloadResult, Samples)> {
    let engine = runner.engine();
    let mut result = WorkloadResult {
        name: w.name.to_string(),
        imports_code: w.imports.to_string(),
        ..WorkloadResult::default()
    };
    let mut staged = Vec::new();
    for side in [Side::Ours, Side::Upstream] {
        let (loaded, resolved) = runner.load(written.spec(side), None)?;
        let repos = BTreeMap::from([written.repo.clone()]);
        let prepared = pipeline::prepare(loaded, resolved, &repos)?;
        let what = format!("{} with {}", w.name, side.label());
        let report = runner
            .run(
                &prepared,
                None,
                &workload::pipeline_name(w, side),
                &mut |label, line| {
                    if crate::ui::ui().verbose() {
                        errln!("  {label} | {line}");
                    }
                },
            )
            .await?;
        let out = report
            .output
            .as_ref()
            .map_err(|failure| Error::Failed(format!("bench {what}: {failure}")))?;
        check_outputs(&what, out, prepared.datums.len())?;
        let entry = report.build_entry.clone().ok_or_else(|| {
            Error::Failed(format!("bench {what}: the run reported no build output"))
        })?;
        let target = side_mut(&mut result, side);
        target.build_time = report.build_time;
        let times: Vec<Duration> = report.datum_times.iter().map(|(_, d)| *d).collect();
        errln!(
            "bench: {what}: build phase {:.1} s; run 1/{}: {}",
            report.build_time.as_secs_f64(),
            args.runs,
            seconds_list(&times)
        );
        add_datum_times(target, times);
        let mut staged_run = StagedRun::new(side, what, prepared, entry, runner);
        side_mut(&mut result, side).build_output_bytes =
            build_output_bytes(engine, &staged_run).await?;
        staged_run.options.cache.read = true;
        staged.push(staged_run);
    }

    // The program's imports alone, and a bare exec, in our run image with
    // our build output: after each datum of our replays, so that they share
    // the machine's slow and quick spells with the datums they are compared
    // with (a shared machine has both).
    let mut env = vec!["PYTHONDONTWRITEBYTECODE=1".to_string()];
    if w.has_requirements() {
        env.push("PYTHONPATH=/pfs/build/site-packages".to_string());
    }
    let probes = [
        ExecSpec {
            cmd: vec!["python3".into(), "-c".into(), w.imports.into()],
            env,
            working_dir: Some("/pfs/source".into()),
            stdin: None,
            user: None,
        },
        ExecSpec {
            cmd: vec!["true".into()],
            ..ExecSpec::default()
        },
    ];
    let mut probed = vec![Samples::new(); probes.len()];

    // Replays, ours and upstream in turn, for the same reason.
    for index in 2..=args.runs {
        for s in &staged {
            let probes: &[ExecSpec] = if s.side == Side::Ours { &probes } else { &[] };
            let (times, samples) = replay(engine, s, true, probes, 0).await?;
            errln!(
                "bench: {}: run {index}/{}: {}",
                s.what,
                args.runs,
                seconds_list(&times)
            );
            add_datum_times(side_mut(&mut result, s.side), times);
            add_probe_times(&mut probed, samples);
        }
    }
    if args.runs < 2 {
        // No replay of ours: a container for the probes alone.
        errln!("bench: {}: imports alone", w.name);
        let (_, samples) = replay(engine, &staged[0], false, &probes, PROBE_REPEATS).await?;
        add_probe_times(&mut probed, samples);
    }
    let floor = probed.pop().unwrap_or_default();
    result.imports = probed.pop().unwrap_or_default();
    Ok((result, floor))
}

fn add_probe_times(into: &mut [Samples], from: Vec<Samples>) {
    for (all, some) in into.iter_mut().zip(from) {
        all.extend(some.values().iter().copied());
    }
}

fn side_mut(result: &mut WorkloadResult, side: Side) -> &mut SideResult {
    match side {
        Side::Ours => &mut result.ours,
        Side::Upstream => &mut result.upstream,
    }
}

/// The first datum of a container is its fresh sample, the others warm.
fn add_datum_times(side: &mut SideResult, times: impl IntoIterator<Item = Duration>) {
    let mut times = times.into_iter();
    if let Some(first) = times.next() {
        side.fresh.push(first);
    }
    side.warm.extend(times);
}

/// Datum times for the progress lines: `0.081 0.072 ... s`.
fn seconds_list(times: &[Duration]) -> String {
    let mut text: Vec<String> = times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect();
    text.push("s per datum".to_string());
    text.join(" ")
}

/// Each datum of a workload writes one file; anything else means the
/// program did not run as meant, and its times would mean nothing.
fn check_outputs(what: &str, out: &OutputDir, datums: usize) -> Result<()> {
    let files = out.files;
    if files == datums {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "bench {what}: the run phase left {files} files for {datums} datums (one each was expected)"
        )))
    }
}

/// The size of a build output, as `du` counts it in a worker.
async fn build_output_bytes(engine: &Engine, staged: &StagedRun) -> Result<u64> {
    let worker =
        StandaloneWorker::start(engine, &staged.prepared, &staged.options, &staged.entry).await?;
    let said = worker
        .worker
        .probe_output(vec!["du".into(), "-sk".into(), "/pfs/build".into()])
        .await;
    worker.finish().await;
    let said = said?;
    let kib: u64 = said
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(kib * 1024)
}

/// What a replay of the run phase needs.
struct StagedRun {
    side: Side,
    what: String,
    prepared: Prepared,
    options: RunOptions,
    entry: CacheEntry,
}

impl StagedRun {
    fn new(
        side: Side,
        what: String,
        prepared: Prepared,
        entry: CacheEntry,
        runner: &Runner,
    ) -> Self {
        let options = RunOptions {
            run: runner.run_id().clone(),
            datum: None,
            strict_outputs: false,
            keep: false,
            trust: Trust::default(),
            run_network: false,
            log_dir: runner
                .log_dir()
                .join(format!("replay-{}", prepared.pipeline_name)),
            jobs: 1,
            cache: Default::default(),
            scratch_dir: std::env::temp_dir(),
            datums: Default::default(),
            progress: Default::default(),
        };
        StagedRun {
            side,
            what,
            prepared,
            options,
            entry,
        }
    }
}

/// One worker, exactly as the harness runs the run phase ([`StandaloneWorker`]
/// over the build's volumes); when `datums`, every datum, each followed by one round
/// of the probes; then `rounds` more rounds of the probes. Returns the datum
/// times and, per probe, its times.
async fn replay(
    engine: &Engine,
    staged: &StagedRun,
    datums: bool,
    probes: &[ExecSpec],
    rounds: usize,
) -> Result<(Vec<Duration>, Vec<Samples>)> {
    let prepared = &staged.prepared;
    let worker = StandaloneWorker::start(engine, prepared, &staged.options, &staged.entry).await?;
    let container = &worker.worker;
    let result = async {
        let mut datum_times = Vec::new();
        let mut probe_times = vec![Samples::new(); probes.len()];
        if datums {
            let all: Vec<(usize, &harness::datum::Datum)> =
                prepared.datums.iter().enumerate().collect();
            container.stage_inputs(&all).await?;
            let mut session = container.open_session().await?;
            for (index, datum) in prepared.datums.iter().enumerate() {
                let label = format!("datum {}", index + 1);
                let done = session
                    .run_datum(index, datum, &label, &mut |_, _| {})
                    .await?;
                if let Err(failure) = done.outcome {
                    return Err(Error::Failed(format!("bench {}: {failure}", staged.what)));
                }
                datum_times.push(done.elapsed);
                probe_round(engine, container.id(), staged, probes, &mut probe_times).await?;
            }
            session.close().await?;
        }
        for _ in 0..rounds {
            probe_round(engine, container.id(), staged, probes, &mut probe_times).await?;
        }
        Ok((datum_times, probe_times))
    }
    .await;
    worker.finish().await;
    result
}

/// Each probe once, timed.
async fn probe_round(
    engine: &Engine,
    container: &str,
    staged: &StagedRun,
    probes: &[ExecSpec],
    times: &mut [Samples],
) -> Result<()> {
    for (probe, samples) in probes.iter().zip(times.iter_mut()) {
        let (code, elapsed, tail) = timed_exec(engine, container, probe).await?;
        if code != 0 {
            return Err(command_failed(
                &format!("{}: `{}`", staged.what, probe.cmd.join(" ")),
                code,
                &tail,
            ));
        }
        samples.push(elapsed);
    }
    Ok(())
}

/// Runs `exec`; returns its exit code, its time and the tail of its output.
async fn timed_exec(
    engine: &Engine,
    container: &str,
    exec: &ExecSpec,
) -> Result<(i64, Duration, Vec<String>)> {
    let mut tail = Tail::default();
    let started = Instant::now();
    let code = engine
        .exec(container, exec, &mut |_, bytes| tail.push(bytes))
        .await?;
    let elapsed = started.elapsed();
    Ok((code, elapsed, tail.lines(TAIL_LINES)))
}

fn command_failed(what: &str, code: i64, tail: &[String]) -> Error {
    let message = format!("bench {what}: exited with code {code}");
    Error::Failed(super::with_tail(message, tail))
}

/// The end of a command's output, bounded in memory.
#[derive(Debug, Default)]
struct Tail(Vec<u8>);

impl Tail {
    const KEEP: usize = 16 * 1024;

    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        if self.0.len() > 2 * Self::KEEP {
            let cut = self.0.len() - Self::KEEP;
            self.0.drain(..cut);
        }
    }

    /// The last `n` non-empty lines.
    fn lines(&self, n: usize) -> Vec<String> {
        harness::text::last_lines(&String::from_utf8_lossy(&self.0), n)
    }
}

/// A folder of this run under the system's temporary folder, removed when
/// dropped (also when an interrupt drops the command).
struct Scratch(PathBuf);

impl Scratch {
    fn create(run: &RunId) -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("pachbuild-bench-{run}"));
        std::fs::create_dir(&path)
            .map_err(|e| Error::io("cannot create the temporary folder", &path, e))?;
        Ok(Scratch(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let mut tail = Tail::default();
        tail.push(b"one\ntw");
        tail.push(b"o\n\nthree\n");
        assert_eq!(tail.lines(2), ["two", "three"]);
        assert_eq!(tail.lines(10), ["one", "two", "three"]);
        for i in 0..10_000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        assert!(tail.0.len() <= 2 * Tail::KEEP);
        assert_eq!(tail.lines(1), ["line 9999"]);
    }

    #[test]
    fn first_datum_is_fresh_the_rest_warm() {
        let mut side = SideResult::default();
        add_datum_times(&mut side, [1, 2, 3].map(Duration::from_secs));
        add_datum_times(&mut side, [4].map(Duration::from_secs));
        add_datum_times(&mut side, []);
        assert_eq!(side.fresh.len(), 2);
        assert_eq!(side.warm.len(), 2);
        assert_eq!(side.fresh.median(), Some(2.5));
    }

    #[test]
    fn progress_lists_seconds() {
        let times = [Duration::from_millis(81), Duration::from_millis(1500)];
        assert_eq!(seconds_list(&times), "0.081 1.500 s per datum");
    }

    #[test]
    fn outputs_are_counted() {
        use harness::output::{Entry, Tree};
        let tree = Tree::from([
            (PathBuf::from("a"), Entry::Dir),
            (PathBuf::from("a/1.txt"), Entry::file("x")),
            (PathBuf::from("2.txt"), Entry::file("yz")),
        ]);
        let out = OutputDir::from_tree(&tree, &std::env::temp_dir()).unwrap();
        assert!(check_outputs("t", &out, 2).is_ok());
        let err = check_outputs("t", &out, 3).unwrap_err().to_string();
        assert!(err.contains("2 files for 3 datums"), "{err}");
    }

    #[test]
    fn scratch_is_removed_on_drop() {
        let scratch = Scratch::create(&RunId::new()).unwrap();
        let path = scratch.path().to_path_buf();
        std::fs::write(path.join("f"), "x").unwrap();
        drop(scratch);
        assert!(!path.exists());
    }
}
