//! Running a build pipeline as the platform would: the build phase (or its
//! cached output), then the run phase, each datum once, on parallel workers.
//!
//! [`prepare`] does everything that needs no engine (spec rules, source set,
//! datum plan), so bad input fails before any container starts; [`execute`]
//! then runs the phases:
//! - `build`: the build phase, into engine volumes that become a cache entry;
//! - `cache`: the build cache (keys, entries, bounds);
//! - `datum_cache`: outputs of datums processed before, skipped when
//!   unchanged (as the platform does);
//! - `run`: the run phase: workers, datum dispatch, ordered logs, outputs;
//! - `worker`: one run container and its one-exec-per-datum script;
//! - `log`: phase logs.

mod build;
pub mod cache;
pub mod datum_cache;
pub mod log;
mod run;
pub mod settings;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::datum::{self, Datum};
use crate::engine::{Engine, RunId};
use crate::error::{IoContext, Result};
use crate::output;
use crate::source::{self, SourceSet};
use crate::spec::parse::LoadedSpec;
use crate::spec::resolve::Resolved;
use crate::trust::Trust;

use self::log::LineSink;
use self::worker::WorkerVolumes;
pub use cache::{CacheEntry, CacheOptions};

/// A pipeline with every check done and every choice made.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub loaded: LoadedSpec,
    pub resolved: Resolved,
    pub pipeline_name: String,
    pub source: SourceSet,
    pub datums: Vec<Datum>,
    /// What the walks of the input folders left out, and why.
    pub input_warnings: Vec<String>,
}

/// Selects the source and plans the datums of a spec that
/// [`crate::runner::load_spec_for`] loaded (which checks the client's rules
/// once, before resolving). `repos` maps each repo name to the folder
/// holding its data.
pub fn prepare(
    loaded: LoadedSpec,
    resolved: Resolved,
    repos: &BTreeMap<String, PathBuf>,
) -> Result<Prepared> {
    let source = if resolved.has_build {
        source::collect_source(&resolved.build_path)?
    } else {
        // An ordinary pipeline has no source to build.
        SourceSet {
            root: resolved.build_path.clone(),
            files: Vec::new(),
            warnings: Vec::new(),
        }
    };
    let input = loaded.spec.input.clone().unwrap_or_default();
    let (datums, input_warnings) = datum::plan_with_warnings(&input, repos)?;
    let pipeline_name = loaded
        .spec
        .pipeline
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    Ok(Prepared {
        loaded,
        resolved,
        pipeline_name,
        source,
        datums,
        input_warnings,
    })
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run: RunId,
    /// Run only this datum (id, id prefix or 1-based index).
    pub datum: Option<String>,
    /// Two datums writing one path is an error instead of a warning.
    pub strict_outputs: bool,
    /// Leave the containers (and the job's volume) for debugging.
    pub keep: bool,
    /// CA bundle and proxy for the build phase.
    pub trust: Trust,
    /// Network for the run phase (off unless asked).
    pub run_network: bool,
    /// Where phase logs are written (kept after the run).
    pub log_dir: PathBuf,
    /// Workers (run containers) at most; `parallelism_spec.constant` caps it.
    pub jobs: usize,
    /// The build cache.
    pub cache: CacheOptions,
    /// Where the output is assembled (a temporary folder inside it); on the
    /// file system of its final place, so that keeping it is a rename.
    pub scratch_dir: PathBuf,
    /// Command-line choices about datums (tries, keep going, secrets).
    pub datums: DatumOptions,
    /// Where datums, phases and transfers are reported.
    pub progress: crate::progress::Progress,
}

/// Command-line choices about how datums run.
#[derive(Debug, Clone, Default)]
pub struct DatumOptions {
    /// Tries of a failing datum, instead of the spec's `datum_tries`.
    pub tries: Option<u32>,
    /// Run every datum and report every failure, instead of stopping at
    /// the first.
    pub keep_going: bool,
    /// Where each secret of `transform.secrets` is (`--secret NAME=PATH`): a
    /// folder of one file per key, or a file of `KEY=VALUE` lines.
    pub secrets: BTreeMap<String, PathBuf>,
    /// Memory of each container, bytes (default: [`default_memory`]).
    pub memory: Option<u64>,
    /// CPUs of each container (default: no limit beyond the spec's
    /// `resource_limits.cpu`).
    pub cpus: Option<f64>,
    /// The user the datums run as, instead of `transform.user`.
    pub user: Option<String>,
    /// Each phase's time limit (`--timeout`); the build phase has
    /// [`DEFAULT_BUILD_TIMEOUT`] without it.
    pub phase_timeout: Option<Duration>,
    /// Each datum's time limit, instead of the spec's `datum_timeout`.
    pub datum_timeout: Option<Duration>,
}

/// How long a build phase may run unless `--timeout` says otherwise.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl DatumOptions {
    /// The build phase's time limit.
    pub fn build_timeout(&self) -> Duration {
        self.phase_timeout.unwrap_or(DEFAULT_BUILD_TIMEOUT)
    }
}

/// Processes a phase's container may run at once.
pub const PIDS_LIMIT: i64 = 4096;

/// A sane share of the machine for one container: half its memory, at
/// least 512 MiB (the workers of a job each get this much).
pub fn default_memory() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(4 << 20);
    (total_kib * 1024 / 2).max(512 << 20)
}

impl RunOptions {
    /// The limits of a phase's container: memory, processes, no new
    /// privileges; the run phase also drops capabilities (the build phase
    /// keeps the image's: package tools may need them).
    pub fn sandbox(&self, phase: Phase) -> crate::engine::Sandbox {
        let memory = self.datums.memory.unwrap_or_else(default_memory);
        crate::engine::Sandbox {
            memory: i64::try_from(memory).ok(),
            nano_cpus: self.datums.cpus.map(|c| (c * 1e9) as i64),
            pids: Some(PIDS_LIMIT),
            drop_capabilities: phase == Phase::Run,
            no_new_privileges: true,
        }
    }
}

/// The number of cores: the default number of workers.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Which phase failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Build,
    Run,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Build => "build",
            Phase::Run => "run",
        })
    }
}

/// A phase whose command exited non-zero.
#[derive(Debug, Clone)]
pub struct PhaseFailure {
    pub phase: Phase,
    /// The failing datum (`describe()` form) and its id, in the run phase.
    pub datum: Option<(String, String)>,
    pub exit_code: i64,
    /// How it failed beyond the code: `after 3 tries`, a time limit.
    pub why: Option<String>,
    pub log_path: PathBuf,
    pub tail: Vec<String>,
}

impl fmt::Display for PhaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.phase, &self.datum) {
            (Phase::Run, Some((described, id))) => write!(
                f,
                "the run phase failed on datum {id} ({described}) with exit code {}",
                self.exit_code
            )?,
            _ => write!(
                f,
                "the {} phase failed with exit code {}",
                self.phase, self.exit_code
            )?,
        }
        if let Some(why) = &self.why {
            write!(f, " ({why})")?;
        }
        writeln!(f, "; last lines of its log:")?;
        for line in &self.tail {
            writeln!(f, "  | {line}")?;
        }
        write!(f, "full log: {}", self.log_path.display())?;
        if let (Phase::Run, Some((_, id))) = (&self.phase, &self.datum) {
            write!(
                f,
                "\nrerun only this datum: the same command with `--datum {id}`"
            )?;
        }
        Ok(())
    }
}

/// The merged output of a run, in a temporary folder that goes away with
/// this value unless [`OutputDir::persist`] moves it into place.
#[derive(Debug)]
pub struct OutputDir {
    scratch: tempfile::TempDir,
    merged: PathBuf,
    /// Files in the output.
    pub files: usize,
}

impl OutputDir {
    fn new(scratch_dir: &Path) -> Result<OutputDir> {
        std::fs::create_dir_all(scratch_dir).with_path("create folder", scratch_dir)?;
        let scratch = tempfile::Builder::new()
            .prefix(".pachbuild-output-")
            .tempdir_in(scratch_dir)
            .with_path("create a temporary folder in", scratch_dir)?;
        let merged = scratch.path().join("merged");
        std::fs::create_dir_all(&merged).with_path("create folder", &merged)?;
        Ok(OutputDir {
            scratch,
            merged,
            files: 0,
        })
    }

    /// An output holding `tree` (tests, and callers with outputs of their own).
    pub fn from_tree(tree: &output::Tree, scratch_dir: &Path) -> Result<OutputDir> {
        let mut out = OutputDir::new(scratch_dir)?;
        std::fs::remove_dir(&out.merged).with_path("remove", &out.merged)?;
        output::write_tree(tree, &out.merged)?;
        out.files = tree
            .values()
            .filter(|e| matches!(e, output::Entry::File { .. }))
            .count();
        Ok(out)
    }

    /// Where each datum's output is put before the merge (`<index>/`).
    fn datums_dir(&self) -> PathBuf {
        self.scratch.path().join("datums")
    }

    /// The output tree.
    pub fn path(&self) -> &Path {
        &self.merged
    }

    /// Moves the output to `dest` (which must not exist), by renaming when
    /// both are on one file system.
    pub fn persist(self, dest: &Path) -> Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_path("create folder", parent)?;
        }
        if std::fs::rename(&self.merged, dest).is_ok() {
            return Ok(());
        }
        copy_dir(&self.merged, dest)
    }
}

/// Copies a tree (symlinks as symlinks).
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_path("create folder", to)?;
    for entry in std::fs::read_dir(from).with_path("read folder", from)? {
        let entry = entry.with_path("read folder", from)?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().with_path("read", &src)?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&src).with_path("read symlink", &src)?;
            output::replace_with_symlink(&target, &dst)?;
        } else if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).with_path("write", &dst)?;
        }
    }
    Ok(())
}

/// What a run produced.
#[derive(Debug)]
pub struct Report {
    /// The merged output, when every phase succeeded.
    pub output: std::result::Result<OutputDir, PhaseFailure>,
    /// Things the user should know (ignored files, overlapping outputs).
    pub warnings: Vec<String>,
    /// Objects left for debugging (`--keep`): `container <id>`, `volume <name>`.
    pub kept: Vec<String>,
    /// The build phase's time (looking the cache up, when it was reused).
    pub build_time: Duration,
    /// The build output came from the cache.
    pub build_reused: bool,
    /// A build pipeline (false: an ordinary one, with no build phase).
    pub has_build: bool,
    /// From the end of the build phase to the start of the first datum:
    /// starting workers and sending the inputs.
    pub handoff_time: Option<Duration>,
    /// Each datum's time as the job waits for it (staging, the command,
    /// collecting its output), in datum order.
    pub datum_times: Vec<(String, Duration)>,
    /// From the first datum's start to the last one's end.
    pub datums_time: Duration,
    /// Workers the run phase used.
    pub workers: usize,
    /// The ids of the datums skipped: unchanged since an earlier run, their
    /// outputs reused.
    pub datums_reused: std::collections::BTreeSet<String>,
    /// Datums that failed and that `err_cmd` recovered (index, id): the job
    /// goes on without their output, as on the platform.
    pub datums_recovered: Vec<(usize, String)>,
    /// Failures after the first, in datum order (`--keep-going`).
    pub more_failures: Vec<PhaseFailure>,
    /// The build cache entry the run phase used (source and build volumes).
    pub build_entry: Option<CacheEntry>,
}

impl Report {
    /// A report of a run that produced `output` and nothing else of note.
    pub fn with_output(output: std::result::Result<OutputDir, PhaseFailure>) -> Report {
        Report {
            output,
            ..Report::new(Vec::new())
        }
    }

    fn new(warnings: Vec<String>) -> Report {
        Report {
            output: Err(PhaseFailure {
                phase: Phase::Build,
                datum: None,
                exit_code: -1,
                why: None,
                log_path: PathBuf::new(),
                tail: Vec::new(),
            }),
            warnings,
            kept: Vec::new(),
            build_time: Duration::ZERO,
            build_reused: false,
            has_build: true,
            handoff_time: None,
            datum_times: Vec::new(),
            datums_time: Duration::ZERO,
            workers: 0,
            datums_reused: Default::default(),
            datums_recovered: Vec::new(),
            more_failures: Vec::new(),
            build_entry: None,
        }
    }

    /// One line of timings, for people and for benchmarks:
    /// `timings: build=1.234s (built) handoff=0.210s datums=0.530s total=2.100s`.
    pub fn timings_line(&self, total: Duration) -> String {
        let handoff = self
            .handoff_time
            .map_or_else(|| "n/a".to_string(), |d| format!("{:.3}s", d.as_secs_f64()));
        format!(
            "timings: build={:.3}s ({}) handoff={handoff} datums={:.3}s total={:.3}s workers={} reused-datums={}",
            self.build_time.as_secs_f64(),
            match (self.has_build, self.build_reused) {
                (false, _) => "none",
                (true, true) => "reused",
                (true, false) => "built",
            },
            self.datums_time.as_secs_f64(),
            total.as_secs_f64(),
            self.workers,
            self.datums_reused.len()
        )
    }
}

/// Runs the build phase (or takes its output from the cache), then the run
/// phase for each datum (or the chosen one).
pub async fn execute(
    engine: &Engine,
    prepared: &Prepared,
    options: &RunOptions,
    sink: LineSink<'_>,
) -> Result<Report> {
    let selected: Vec<(usize, &Datum)> = match &options.datum {
        Some(wanted) => {
            let chosen = datum::find(&prepared.datums, wanted)?;
            let index = prepared
                .datums
                .iter()
                .position(|d| std::ptr::eq(d, chosen))
                .unwrap_or(0);
            vec![(index, chosen)]
        }
        None => prepared.datums.iter().enumerate().collect(),
    };
    let warnings = prepared.source.warnings.iter();
    let mut report = Report::new(warnings.chain(&prepared.input_warnings).cloned().collect());
    report.has_build = prepared.resolved.has_build;
    let mut out = OutputDir::new(&options.scratch_dir)?;

    // The build's volumes are named before it runs, so the workers start
    // (and receive the inputs) while it runs. The plan owns fresh volumes
    // until the cache takes them, and they go only after the workers.
    // Bad settings (a secret without a value) stop here, before anything runs.
    let settings = settings::DatumSettings::new(prepared, options)?;
    let started = Instant::now();
    options
        .progress
        .emit(crate::progress::Event::Phase("build"));
    let plan = build::plan(engine, prepared, options).await?;

    // Datums an earlier run processed, unchanged since, are skipped.
    let job_cache = match open_datum_cache(engine, prepared, options, &plan, &selected).await {
        Ok(job_cache) => job_cache,
        Err(e) => {
            plan.discard(options.keep, &mut report.kept).await;
            return Err(e);
        }
    };
    let hits: std::collections::BTreeSet<usize> = job_cache
        .as_ref()
        .map(|c| c.hits.keys().copied().collect())
        .unwrap_or_default();
    let reused = |index: &usize| hits.contains(index);
    let announce_skipped = |sink: LineSink<'_>| {
        let total = selected.len();
        for (position, (index, datum)) in selected.iter().enumerate() {
            if reused(index) {
                options.progress.emit(crate::progress::Event::Datum {
                    number: position + 1,
                    total,
                    id: datum.id(),
                    state: crate::progress::DatumState::Reused,
                });
                sink(
                    &format!("datum {}/{total} {}", position + 1, datum.id()),
                    "skipped: unchanged since an earlier run, its output is reused (--reprocess runs it again)",
                );
            }
        }
    };
    report.datums_reused = selected
        .iter()
        .filter(|(i, _)| reused(i))
        .map(|(_, datum)| datum.id())
        .collect();
    let to_run: Vec<(usize, &Datum)> = selected
        .iter()
        .filter(|(i, _)| !reused(i))
        .copied()
        .collect();
    let merge_order: Vec<(String, usize)> = selected
        .iter()
        .map(|(index, datum)| (format!("{} ({})", datum.id(), datum.describe()), *index))
        .collect();
    let ran: Vec<usize> = to_run.iter().map(|(i, _)| *i).collect();
    // Recovered datums are not stored: the platform retries them next time.
    let recovered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let numbers: Vec<usize> = selected
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| !reused(i))
        .map(|(position, _)| position + 1)
        .collect();
    let before_merge = {
        let recovered = recovered.clone();
        move |datums_dir: &Path| -> Result<Vec<String>> {
            let recovered = recovered.lock().map(|r| r.clone()).unwrap_or_default();
            let ran: Vec<usize> = ran.into_iter().filter(|i| !recovered.contains(i)).collect();
            match job_cache {
                Some(job_cache) => job_cache.store_and_fill(&ran, datums_dir),
                None => Ok(Vec::new()),
            }
        }
    };

    if to_run.is_empty() && !selected.is_empty() {
        // Every datum is reused (so is the build, if any: see `open_datum_cache`):
        // no container starts. Reusing a build only prints that it did.
        let _ = build::run(engine, prepared, options, &plan, &mut report.kept, sink).await?;
        report.build_entry = prepared.resolved.has_build.then(|| plan.entry());
        report.build_time = started.elapsed();
        report.build_reused = true;
        announce_skipped(sink);
        let merged = merge_outputs(&out, merge_order, options.strict_outputs, before_merge).await?;
        out.files = merged.files;
        report.warnings.extend(merged.warnings);
        report.output = Ok(out);
        return Ok(report);
    }

    let entry = plan.entry();
    let has_build = prepared.resolved.has_build;
    let volumes = WorkerVolumes {
        source: has_build.then(|| entry.source_volume.clone()),
        build: has_build.then(|| entry.build_volume.clone()),
        job: String::new(),
    };
    let starting_crew = async {
        if to_run.is_empty() {
            Ok(None)
        } else {
            run::Crew::start(engine, prepared, options, &to_run, volumes)
                .await
                .map(Some)
        }
    };
    let building = build::run(engine, prepared, options, &plan, &mut report.kept, sink);
    let (built, crew) = tokio::join!(building, starting_crew);
    report.build_time = started.elapsed();
    let build_end = Instant::now();
    report.build_reused = plan.reuses();
    report.build_entry = has_build.then_some(entry);

    let (keep, kept) = (options.keep, &mut report.kept);
    let failure = match (built, crew) {
        (Ok(Ok(())), Ok(crew)) => Ok(crew),
        (built, crew) => Err((built, crew)),
    };
    let crew = match failure {
        Ok(crew) => crew,
        Err((built, crew)) => {
            // Stop the side that worked, then the volumes, then say why.
            let crew_error = match crew {
                Ok(Some(crew)) => {
                    crew.finish(keep, kept).await;
                    None
                }
                Ok(None) => None,
                Err(e) => Some(e),
            };
            let leftovers = match (&built, crew_error.is_some()) {
                // A good build is kept even when the workers failed to start.
                (Ok(Ok(())), true) => {
                    let (leftovers, stale) =
                        plan.store(engine, options, &prepared.pipeline_name).await?;
                    cache::remove_stale(engine, &stale).await;
                    leftovers
                }
                _ => Some(plan),
            };
            if let Some(leftovers) = leftovers {
                leftovers.discard(keep, kept).await;
            }
            return match (built?, crew_error) {
                (_, Some(e)) => Err(e),
                (Err(failure), None) => {
                    report.output = Err(failure);
                    Ok(report)
                }
                (Ok(()), None) => Ok(report),
            };
        }
    };
    let (leftovers, stale) = plan.store(engine, options, &prepared.pipeline_name).await?;
    announce_skipped(sink);

    // Entries that left the cache are deleted while the datums run.
    let running = async {
        match crew {
            Some(mut crew) => match with_job_timeout(
                run_phase_limit(settings.job_timeout, options.datums.phase_timeout),
                options,
                crew.run(
                    &to_run,
                    (&numbers, selected.len()),
                    options.datums.keep_going,
                    build_end,
                    &mut report,
                    sink,
                ),
            )
            .await
            {
                Ok(None) => {
                    if let Ok(mut r) = recovered.lock() {
                        r.extend(report.datums_recovered.iter().map(|(i, _)| *i));
                    }
                    crew.collect_and_finish(
                        merge_order,
                        before_merge,
                        options,
                        &mut out,
                        &mut report,
                    )
                    .await
                    .map(|()| None)
                }
                other => {
                    crew.finish(options.keep, &mut report.kept).await;
                    other
                }
            },
            None => Ok(None),
        }
    };
    let (outcome, ()) = tokio::join!(running, cache::remove_stale(engine, &stale));
    // Volumes no cache entry holds go only now: the workers used them.
    if let Some(leftovers) = leftovers {
        leftovers.discard(options.keep, &mut report.kept).await;
    }
    report.output = match outcome? {
        Some(failure) => Err(failure),
        None => {
            if out.files == 0 && !selected.is_empty() {
                report.warnings.push(format!(
                    "the job succeeded but its {} datum(s) wrote nothing to /pfs/out: \
                     is the code writing its results somewhere else?",
                    selected.len()
                ));
            }
            Ok(out)
        }
    };
    Ok(report)
}

/// Keys the selected datums and looks them up in the datum cache (`None`
/// when the options keep no datum cache).
async fn open_datum_cache(
    engine: &Engine,
    prepared: &Prepared,
    options: &RunOptions,
    plan: &build::BuildPlan,
    selected: &[(usize, &Datum)],
) -> Result<Option<datum_cache::JobCache>> {
    if options.cache.datum_dir.is_none() || options.cache.max_entries == 0 {
        return Ok(None);
    }
    let resolved = &prepared.resolved;
    // The build key covers the builder image's id already.
    let run_image_id = if resolved.has_build && resolved.run_image == resolved.builder_image {
        "the builder image".to_string()
    } else {
        engine
            .image(&resolved.run_image)
            .await?
            .map_or_else(|| format!("missing {}", resolved.run_image), |i| i.id)
    };
    let spec_json = serde_json::to_string(&prepared.loaded.spec)
        .map_err(|e| crate::Error::Failed(format!("cannot serialize the spec: {e}")))?;
    let job = datum_cache::JobKey::new(&datum_cache::JobInputs {
        spec_json: &spec_json,
        build_key: plan.key_text(),
        run_image_id: &run_image_id,
        command: &resolved.command,
        stdin: &resolved.stdin,
        network: options.run_network,
    });
    // Outputs of datums are looked up only on a reused build (or none): a
    // new build has a new key, so no datum of it was ever stored.
    let look_up = plan.output_known() && options.cache.read && !options.cache.reprocess;
    datum_cache::JobCache::open(
        &options.cache,
        job,
        selected,
        &prepared.pipeline_name,
        look_up,
    )
}

/// Merges the datums' outputs (`<datums dir>/<index>/`) in datum order into
/// the output tree, after `before_merge` (which may add reused outputs).
pub(crate) async fn merge_outputs(
    out: &OutputDir,
    order: Vec<(String, usize)>,
    strict: bool,
    before_merge: impl FnOnce(&Path) -> Result<Vec<String>> + Send + 'static,
) -> Result<output::MergedDirs> {
    let datums_dir = out.datums_dir();
    let dest = out.merged.clone();
    tokio::task::spawn_blocking(move || {
        let mut warnings = before_merge(&datums_dir)?;
        let ordered: Vec<(String, PathBuf)> = order
            .into_iter()
            .map(|(label, index)| (label, datums_dir.join(index.to_string())))
            .collect();
        let merged = output::merge_dirs(&ordered, &dest, strict);
        let _ = std::fs::remove_dir_all(&datums_dir);
        let mut merged = merged?;
        warnings.append(&mut merged.warnings);
        merged.warnings = warnings;
        Ok(merged)
    })
    .await
    .map_err(|e| crate::Error::Failed(format!("merging the outputs stopped: {e}")))?
}

/// The run phase's limit: the shorter of the spec's `job_timeout` and
/// `--timeout`, and which it is.
fn run_phase_limit(
    job_timeout: Option<Duration>,
    phase_timeout: Option<Duration>,
) -> Option<(Duration, &'static str)> {
    match (job_timeout, phase_timeout) {
        (Some(j), Some(p)) if p <= j => Some((p, "--timeout")),
        (Some(j), _) => Some((j, "job_timeout")),
        (None, Some(p)) => Some((p, "--timeout")),
        (None, None) => None,
    }
}

/// Runs the datums within the run phase's limit, if any; past it, the
/// job fails (the caller then removes the workers, which kills the datums).
async fn with_job_timeout(
    limit: Option<(Duration, &'static str)>,
    options: &RunOptions,
    run: impl std::future::Future<Output = Result<Option<PhaseFailure>>>,
) -> Result<Option<PhaseFailure>> {
    let Some((limit, which)) = limit else {
        return run.await;
    };
    match tokio::time::timeout(limit, run).await {
        Ok(outcome) => outcome,
        Err(_) => Ok(Some(PhaseFailure {
            phase: Phase::Run,
            datum: None,
            exit_code: -1,
            why: Some(format!(
                "killed: the run phase ran past {which} ({}); its datums were stopped",
                settings::duration_text(limit)
            )),
            log_path: options.log_dir.clone(),
            tail: Vec::new(),
        })),
    }
}
