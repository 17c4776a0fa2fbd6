//! Running a build pipeline as the platform would: the build phase, then the
//! run phase once per datum, in one container per phase.
//!
//! [`prepare`] does everything that needs no engine (spec rules, source set,
//! datum plan), so bad input fails before any container starts; [`execute`]
//! then runs the phases.

pub mod log;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::datum::{self, Datum};
use crate::engine::{ContainerSpec, Engine, ExecSpec, Labels, RunId};
use crate::error::{Error, Result};
use crate::output::{self, Entry, Tree};
use crate::source::{self, SourceSet};
use crate::spec::parse::LoadedSpec;
use crate::spec::resolve::Resolved;
use crate::staging;
use crate::trust::{Trust, CONTAINER_BUNDLE_DIR};

use self::log::{LineSink, PhaseLog};

/// A pipeline with every check done and every choice made.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub loaded: LoadedSpec,
    pub resolved: Resolved,
    pub pipeline_name: String,
    pub source: SourceSet,
    pub datums: Vec<Datum>,
}

/// Checks the spec, selects the source and plans the datums. `repos` maps
/// each repo name to the folder holding its data.
pub fn prepare(
    loaded: LoadedSpec,
    resolved: Resolved,
    repos: &BTreeMap<String, PathBuf>,
) -> Result<Prepared> {
    crate::spec::validate::validate(&loaded)?;
    let source = source::collect_source(&resolved.build_path)?;
    let input = loaded.spec.input.clone().unwrap_or_default();
    let datums = datum::plan(&input, repos)?;
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
    /// Leave the containers for debugging.
    pub keep: bool,
    /// CA bundle and proxy for the build phase.
    pub trust: Trust,
    /// Network for the run phase (off unless asked).
    pub run_network: bool,
    /// Where phase logs are written (kept after the run).
    pub log_dir: PathBuf,
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
        writeln!(f, "; last lines of its log:")?;
        for line in &self.tail {
            writeln!(f, "  | {line}")?;
        }
        write!(f, "full log: {}", self.log_path.display())
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// The merged output, when every phase succeeded.
    pub output: std::result::Result<Tree, PhaseFailure>,
    /// Things the user should know (ignored files, overlapping outputs).
    pub warnings: Vec<String>,
    /// Containers left for debugging (`--keep`).
    pub kept: Vec<String>,
    pub build_time: Duration,
    /// Time of each datum's command, in run order.
    pub datum_times: Vec<(String, Duration)>,
    /// The build output, as staged into `/pfs/build`.
    pub build_output: Tree,
}

/// Runs the build phase, then the run phase for each datum (or the chosen one).
pub async fn execute(
    engine: &Engine,
    prepared: &Prepared,
    options: &RunOptions,
    sink: LineSink<'_>,
) -> Result<Report> {
    let selected: Vec<&Datum> = match &options.datum {
        Some(wanted) => vec![datum::find(&prepared.datums, wanted)?],
        None => prepared.datums.iter().collect(),
    };
    let mut report = Report {
        output: Ok(Tree::new()),
        warnings: prepared.source.warnings.clone(),
        kept: Vec::new(),
        build_time: Duration::ZERO,
        datum_times: Vec::new(),
        build_output: Tree::new(),
    };

    let source_tar =
        staging::tar_files(&prepared.source.root, &prepared.source.files, "pfs/source")?;

    // ----- build phase -----
    let started = Instant::now();
    let build = build_phase(
        engine,
        prepared,
        options,
        &source_tar,
        &mut report.kept,
        sink,
    )
    .await?;
    report.build_time = started.elapsed();
    let build_output = match build {
        Ok(tree) => tree,
        Err(failure) => {
            report.output = Err(failure);
            return Ok(report);
        }
    };
    report.build_output = build_output;

    // ----- run phase -----
    let outputs = run_phase(
        engine,
        prepared,
        options,
        &selected,
        &source_tar,
        &mut report,
        sink,
    )
    .await?;
    if report.output.is_err() {
        return Ok(report);
    }
    let merged = output::merge(outputs, options.strict_outputs)?;
    report.warnings.extend(merged.warnings);
    report.output = Ok(merged.tree);
    Ok(report)
}

fn labels(options: &RunOptions, kind: &str) -> Labels {
    Labels::for_run(&options.run, kind)
}

async fn build_phase(
    engine: &Engine,
    prepared: &Prepared,
    options: &RunOptions,
    source_tar: &[u8],
    kept: &mut Vec<String>,
    sink: LineSink<'_>,
) -> Result<std::result::Result<Tree, PhaseFailure>> {
    let image = &prepared.resolved.builder_image;
    let mut log = PhaseLog::create(&options.log_dir, "build.log", "build")?;
    log.note(&format!("build phase: `sh ./build.sh` in {image}"), sink);
    let container = engine
        .start_container(&ContainerSpec {
            image: image.clone(),
            env: options.trust.env(),
            network: true,
            labels: labels(options, "build-phase"),
            name_hint: format!("pachbuild-{}-build", prepared.pipeline_name),
        })
        .await?;
    let result = async {
        if let Some((_, bundle)) = &options.trust.bundle {
            let tree = Tree::from([(
                PathBuf::from("ca-certificates.crt"),
                Entry::file(bundle.clone()),
            )]);
            let tar = staging::tar_tree(&tree, CONTAINER_BUNDLE_DIR.trim_start_matches('/'))?;
            engine.upload(&container, "/", tar).await?;
        }
        engine.upload(&container, "/", source_tar.to_vec()).await?;
        engine
            .upload(&container, "/", staging::empty_dirs_tar(&["pfs/out"]))
            .await?;
        let exec = ExecSpec {
            cmd: vec!["sh".into(), "./build.sh".into()],
            ..ExecSpec::default()
        };
        let code = engine
            .exec(&container, &exec, &mut |stream, bytes| {
                log.write(stream, bytes, sink)
            })
            .await?;
        log.finish(sink);
        if code != 0 {
            log.note(&format!("build.sh exited with code {code}"), sink);
            return Ok(Err(PhaseFailure {
                phase: Phase::Build,
                datum: None,
                exit_code: code,
                log_path: log.path.clone(),
                tail: log.tail(),
            }));
        }
        let tar = engine.download(&container, "/pfs/out").await?;
        Ok(Ok(staging::tree_from_tar(&tar, "out")?))
    }
    .await;
    finish_container(engine, &container, options.keep, kept).await;
    result
}

async fn run_phase(
    engine: &Engine,
    prepared: &Prepared,
    options: &RunOptions,
    selected: &[&Datum],
    source_tar: &[u8],
    report: &mut Report,
    sink: LineSink<'_>,
) -> Result<Vec<(String, Tree)>> {
    let mut outputs = Vec::new();
    if selected.is_empty() {
        return Ok(outputs);
    }
    let container =
        RunContainer::start(engine, prepared, options, source_tar, &report.build_output).await?;
    let result = async {
        let total = selected.len();
        for (index, datum) in selected.iter().enumerate() {
            let label = format!("datum {}/{total} {}", index + 1, datum.id());
            let done = container.run_datum(datum, &label, sink).await?;
            report.datum_times.push((datum.id(), done.elapsed));
            match done.output {
                Ok(tree) => outputs.push((format!("{} ({})", datum.id(), datum.describe()), tree)),
                Err(failure) => {
                    report.output = Err(failure);
                    return Ok(());
                }
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    container.finish(options.keep, &mut report.kept).await;
    result?;
    Ok(outputs)
}

/// A run-phase container: the job's worker. `/pfs/source` and `/pfs/build`
/// are staged once; each [`RunContainer::run_datum`] resets the rest of
/// `/pfs`, stages the datum and runs the command, as the platform does.
/// Public so that benchmarks time exactly what a run does.
pub struct RunContainer<'a> {
    engine: &'a Engine,
    prepared: &'a Prepared,
    options: &'a RunOptions,
    id: String,
    stdin: Option<Vec<u8>>,
}

/// One datum's run.
#[derive(Debug)]
pub struct DatumRun {
    /// The command's time alone (not staging or download).
    pub elapsed: Duration,
    /// The datum's `/pfs/out`, or why the command failed.
    pub output: std::result::Result<Tree, PhaseFailure>,
}

impl<'a> RunContainer<'a> {
    /// Starts the container from the run image and stages the source and
    /// the build output.
    pub async fn start(
        engine: &'a Engine,
        prepared: &'a Prepared,
        options: &'a RunOptions,
        source_tar: &[u8],
        build_output: &Tree,
    ) -> Result<RunContainer<'a>> {
        let resolved = &prepared.resolved;
        let id = engine
            .start_container(&ContainerSpec {
                image: resolved.run_image.clone(),
                env: Vec::new(),
                network: options.run_network,
                labels: labels(options, "run-phase"),
                name_hint: format!("pachbuild-{}-run", prepared.pipeline_name),
            })
            .await?;
        let container = RunContainer {
            engine,
            prepared,
            options,
            id,
            stdin: (!resolved.stdin.is_empty()).then(|| {
                let mut text = resolved.stdin.join("\n");
                text.push('\n');
                text.into_bytes()
            }),
        };
        let staged = async {
            engine
                .upload(&container.id, "/", source_tar.to_vec())
                .await?;
            let build = staging::tar_tree(build_output, "pfs/build")?;
            engine.upload(&container.id, "/", build).await
        }
        .await;
        if let Err(e) = staged {
            container.finish(false, &mut Vec::new()).await;
            return Err(e);
        }
        Ok(container)
    }

    /// The container's id, for extra commands (benchmark probes).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs one datum; `label` prefixes its log lines.
    pub async fn run_datum(
        &self,
        datum: &Datum,
        label: &str,
        sink: LineSink<'_>,
    ) -> Result<DatumRun> {
        let (engine, prepared, options) = (self.engine, self.prepared, self.options);
        let resolved = &prepared.resolved;
        let id = datum.id();
        let mut log = PhaseLog::create(&options.log_dir, &format!("datum-{id}.log"), label)?;
        log.note(
            &format!("{} → `{}`", datum.describe(), resolved.command.join(" ")),
            sink,
        );
        // Only /pfs is reset between datums, as on the platform's workers.
        engine.exec(&self.id, &reset_pfs(), &mut |_, _| {}).await?;
        engine
            .upload(&self.id, "/", staging::tar_datum(datum)?)
            .await?;
        let mut env = vec![
            format!("PPS_PIPELINE_NAME={}", prepared.pipeline_name),
            format!("PACH_JOB_ID={}", options.run),
            format!("PACH_DATUM_ID={id}"),
        ];
        env.extend(datum.env().into_iter().map(|(k, v)| format!("{k}={v}")));
        let spec_env = &prepared.loaded.spec.transform.env;
        env.extend(spec_env.iter().map(|(k, v)| format!("{k}={v}")));
        let exec = ExecSpec {
            cmd: resolved.command.clone(),
            env,
            working_dir: None,
            stdin: self.stdin.clone(),
        };
        let started = Instant::now();
        let code = engine
            .exec(&self.id, &exec, &mut |stream, bytes| {
                log.write(stream, bytes, sink)
            })
            .await?;
        let elapsed = started.elapsed();
        log.finish(sink);
        if code != 0 {
            log.note(&format!("the command exited with code {code}"), sink);
            let failure = PhaseFailure {
                phase: Phase::Run,
                datum: Some((datum.describe(), id)),
                exit_code: code,
                log_path: log.path.clone(),
                tail: log.tail(),
            };
            return Ok(DatumRun {
                elapsed,
                output: Err(failure),
            });
        }
        let tar = engine.download(&self.id, "/pfs/out").await?;
        Ok(DatumRun {
            elapsed,
            output: Ok(staging::tree_from_tar(&tar, "out")?),
        })
    }

    /// Removes the container, or keeps it (and records it) for debugging.
    pub async fn finish(self, keep: bool, kept: &mut Vec<String>) {
        finish_container(self.engine, &self.id, keep, kept).await;
    }
}

/// Empties /pfs but for the source and build, which stay for the whole job.
fn reset_pfs() -> ExecSpec {
    let script = "for d in /pfs/* /pfs/.[!.]*; do case \"$d\" in /pfs/source|/pfs/build|'/pfs/*'|'/pfs/.[!.]*') ;; *) rm -rf \"$d\" ;; esac; done; mkdir -p /pfs/out";
    ExecSpec {
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        working_dir: Some("/".into()),
        ..ExecSpec::default()
    }
}

async fn finish_container(engine: &Engine, container: &str, keep: bool, kept: &mut Vec<String>) {
    if keep {
        kept.push(container.to_string());
    } else if let Err(e) = engine.remove_container(container).await {
        // The run's clean-up (and `cargo xtask clean`) will find it by label.
        eprintln!("warning: {e}");
    }
}
