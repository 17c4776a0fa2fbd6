//! `cargo xtask validate [LANG...] [--static-only]`: checks each builder
//! folder statically (files, scripts, Dockerfile, builder.yaml, fixtures),
//! lints it with `shellcheck` and `hadolint` when they are installed, then
//! (unless `--static-only`) builds or reuses its image and runs the image
//! checks of `builder.yaml` against it. Every problem is printed, grouped per
//! builder, with file and line; exit 1 when there is any.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use harness::builder::meta::METADATA_FILE;
use harness::builder::validate::{image_checks, linters, static_checks, Lint, Problem};
use harness::builder::BuilderMeta;
use harness::error::exit;
use harness::runner::Runner;
use harness::{Error, Result};

use crate::commands::build_builder::print_build_line;
use crate::commands::{runner_options, Out};
use crate::context::Context;
use crate::report::{Case, Status};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Builders to validate (all folders under builders/ when none is named).
    #[arg(value_name = "LANG")]
    pub languages: Vec<String>,
    /// Only the static checks and linters: build no image, need no engine.
    #[arg(long)]
    pub static_only: bool,
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
    #[command(flatten)]
    pub base: crate::cli::BaseSourceArgs,
}

/// What validating one builder found.
struct Outcome {
    problems: Vec<Problem>,
    /// What was checked, for the summary line of a builder.
    checked: Vec<String>,
    /// The image build: seconds, and whether the image was reused.
    image: Option<(f64, bool)>,
}

/// The checks of a builder, as reported (one test case each).
const STATIC: &str = "static checks";
const IMAGE_BUILD: &str = "image build";
const IMAGE_CHECKS: &str = "image checks";

/// Which reported check a problem belongs to.
fn check_group(problem: &Problem) -> &'static str {
    match problem.check {
        "shellcheck" => "shellcheck",
        "hadolint" => "hadolint",
        "image-build" => IMAGE_BUILD,
        c if c.starts_with("image-") => IMAGE_CHECKS,
        _ => STATIC,
    }
}

pub async fn run(context: &Context, args: &ValidateArgs) -> Result<i32> {
    let started = std::time::Instant::now();
    let out = args.report.out();
    let dirs = builder_folders(context, &args.languages)?;
    // The engine first: without one, fail at once (exit 3), before any output.
    let runner = if args.static_only {
        None
    } else {
        Some(Runner::connect(context.builders_dir(), runner_options(context, &args.base)).await?)
    };
    let result = validate_all(runner.as_ref(), &dirs, crate::ui::ui().verbose(), out).await;
    if let Some(runner) = &runner {
        if let Err(e) = runner.clean_up().await {
            errln!("warning: clean-up incomplete: {e}\n  run `cargo xtask clean` to finish it");
        }
    }
    let (problems, notes, cases) = result?;
    for note in &notes {
        out.line(format_args!("note: {note}"));
    }
    let mut results = crate::report::Results::new("validate", ("BUILDER", "CHECK"));
    results.cases = cases;
    results.elapsed = started.elapsed();
    args.report.emit(&results, out)?;
    out.line(format_args!(
        "validate: {problems} problem(s) in {} builder(s)",
        dirs.len()
    ));
    Ok(if problems == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// Validates every folder, printing each builder's result as it is known.
/// Returns the number of problems and the notes (skipped linters), once each.
async fn validate_all(
    runner: Option<&Runner>,
    dirs: &[PathBuf],
    verbose: bool,
    out: Out,
) -> Result<(usize, BTreeSet<String>, Vec<Case>)> {
    let mut total = 0;
    let mut notes = BTreeSet::new();
    let mut cases = Vec::new();
    for dir in dirs {
        let (problems, mut more) =
            validate_builder_cases(runner, dir, verbose, out, &mut notes).await?;
        total += problems;
        cases.append(&mut more);
    }
    Ok((total, notes, cases))
}

/// Validates one builder folder (and its image, given a runner), prints its
/// line and its problems to `out`, and returns how many problems it has.
/// Skipped linters are added to `notes`. `publish` runs the same checks.
pub async fn validate_builder(
    runner: Option<&Runner>,
    dir: &Path,
    verbose: bool,
    out: Out,
    notes: &mut BTreeSet<String>,
) -> Result<usize> {
    Ok(validate_builder_cases(runner, dir, verbose, out, notes)
        .await?
        .0)
}

/// [`validate_builder`], with a case per check (static checks, each
/// linter, the image build, the image checks) for the reports.
pub async fn validate_builder_cases(
    runner: Option<&Runner>,
    dir: &Path,
    verbose: bool,
    out: Out,
    notes: &mut BTreeSet<String>,
) -> Result<(usize, Vec<Case>)> {
    let shown_from = std::env::current_dir().unwrap_or_default();
    let name = folder_name(dir);
    let (mut outcome, lint) = check_folder(dir).await?;
    notes.extend(lint.skipped.iter().cloned());
    if let Some(runner) = runner {
        check_image(runner, dir, &name, verbose, &mut outcome).await?;
    }
    // Grouped by file, in line order (stable: checks keep their order on a line).
    outcome
        .problems
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    let status = match outcome.problems.len() {
        0 => "ok".to_string(),
        n => format!("{n} problem(s)"),
    };
    out.line(format_args!(
        "{name}: {status} ({})",
        outcome.checked.join(", ")
    ));
    for problem in &outcome.problems {
        let shown = problem.relative_to(&shown_from).to_string();
        out.line(format_args!("  {}", shown.replace('\n', "\n  ")));
    }
    let cases = check_cases(&name, &outcome, &lint, runner.is_some(), &shown_from);
    Ok((outcome.problems.len(), cases))
}

/// One case per check of a builder.
fn check_cases(
    name: &str,
    outcome: &Outcome,
    lint: &Lint,
    with_image: bool,
    shown_from: &Path,
) -> Vec<Case> {
    let case = |check: &str| -> Case {
        let problems: Vec<String> = outcome
            .problems
            .iter()
            .filter(|p| check_group(p) == check)
            .map(|p| p.relative_to(shown_from).to_string())
            .collect();
        if problems.is_empty() {
            Case::new(name, check, Status::Passed)
        } else {
            let mut case = Case::new(name, check, Status::Failed)
                .note(format!("{} problem(s)", problems.len()));
            case.message = Some(problems.join("\n"));
            case
        }
    };
    let mut cases = vec![case(STATIC)];
    for tool in ["shellcheck", "hadolint"] {
        if lint.ran.contains(&tool) {
            cases.push(case(tool));
        } else {
            let why = lint
                .skipped
                .iter()
                .find(|s| s.contains(tool))
                .map_or_else(|| format!("{tool} did not run"), |s| first_line(s));
            cases.push(Case::new(name, tool, Status::Skipped).note(why));
        }
    }
    if !with_image {
        for check in [IMAGE_BUILD, IMAGE_CHECKS] {
            cases.push(Case::new(name, check, Status::Skipped).note("--static-only"));
        }
        return cases;
    }
    let mut build = case(IMAGE_BUILD);
    match outcome.image {
        Some((seconds, reused)) => build.build = Some(crate::report::Build { seconds, reused }),
        None if !build.failed() => {
            build = Case::new(name, IMAGE_BUILD, Status::Skipped).note("builder.yaml does not load")
        }
        None => {}
    }
    cases.push(build);
    if outcome.image.is_some() {
        cases.push(case(IMAGE_CHECKS));
    } else {
        cases.push(Case::new(name, IMAGE_CHECKS, Status::Skipped).note("no image"));
    }
    cases
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// The static checks and linters of one folder (off the async threads: the
/// linters are processes).
async fn check_folder(dir: &Path) -> Result<(Outcome, Lint)> {
    let owned = dir.to_path_buf();
    let (problems, mut lint) =
        tokio::task::spawn_blocking(move || (static_checks(&owned), linters(&owned)))
            .await
            .map_err(|e| {
                Error::Failed(format!(
                    "the static checks of {} stopped: {e}",
                    dir.display()
                ))
            })?;
    let mut checked = vec!["static checks".to_string()];
    checked.extend(lint.ran.iter().map(|tool| tool.to_string()));
    let mut outcome = Outcome {
        problems,
        checked,
        image: None,
    };
    outcome.problems.append(&mut lint.problems);
    Ok((outcome, lint))
}

/// Builds (or reuses) the builder's image and checks it. A build that fails
/// is a problem of this builder, not the end of the command; only a lost
/// engine is.
async fn check_image(
    runner: &Runner,
    dir: &Path,
    name: &str,
    verbose: bool,
    outcome: &mut Outcome,
) -> Result<()> {
    let meta = match BuilderMeta::load(dir) {
        Ok(meta) => meta,
        Err(_) => {
            outcome
                .checked
                .push("image checks skipped: builder.yaml does not load".into());
            return Ok(());
        }
    };
    let started = std::time::Instant::now();
    let built = runner
        .ensure_builder(name, &mut |line| print_build_line(name, line, verbose))
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let image = match built {
        Ok((_, image)) => image,
        Err(e @ Error::NoEngine { .. }) => return Err(e),
        Err(e) => {
            let file = match &e {
                Error::Engine(e) if e.operation == harness::engine::Operation::BuildImage => {
                    dir.join("Dockerfile")
                }
                Error::Invalid { file, .. } | Error::Syntax { file, .. } => file.clone(),
                _ => dir.join(METADATA_FILE),
            };
            let message = format!("the image could not be made: {e}");
            outcome.problems.push(Problem::new(
                file,
                None,
                "image-build",
                message,
                "see the build output above (`--verbose` shows all of it); `cargo xtask build-builder` builds the image alone",
            ));
            outcome
                .checked
                .push("image checks skipped: no image".into());
            return Ok(());
        }
    };
    outcome.image = Some((seconds, image.reused));
    let problems = image_checks(runner.engine(), dir, &image.image, &meta, runner.run_id()).await?;
    let checks = &meta.checks;
    outcome.checked.push(format!(
        "image {} ({}): {} command(s), {} file(s), {} label(s)",
        image.image,
        if image.reused { "reused" } else { "built" },
        checks.commands.len(),
        checks.files.len(),
        checks.labels.len()
    ));
    outcome.problems.extend(problems);
    Ok(())
}

/// The named builder folders, or every folder under builders/ (also those
/// without a builder.yaml, which is then a problem to report).
fn builder_folders(context: &Context, names: &[String]) -> Result<Vec<PathBuf>> {
    let builders = context.builders_dir();
    let all = || -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&builders)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir() && !folder_name(p).starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    };
    let dirs = if names.is_empty() {
        all()
    } else {
        let mut dirs = Vec::new();
        for name in names {
            let dir = builders.join(name);
            if name.is_empty() || name.contains('/') || !dir.is_dir() {
                let known: Vec<String> = all().iter().map(|d| folder_name(d)).collect();
                return Err(Error::Usage(format!(
                    "no builder {name:?}: {} does not exist (builders here: {})\n  fix: name one of those, or make it with `cargo xtask new-builder {name}`",
                    dir.display(),
                    known.join(", ")
                )));
            }
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    };
    if dirs.is_empty() {
        return Err(Error::Usage(format!(
            "no builders found in {}\n  fix: pass --root (or PACHBUILD_ROOT) pointing at the repository that holds builders/",
            builders.display()
        )));
    }
    // Canonical paths, so problems can be shown relative to the current folder.
    Ok(dirs
        .into_iter()
        .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
        .collect())
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}
