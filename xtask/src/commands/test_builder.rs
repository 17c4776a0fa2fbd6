//! `cargo xtask test-builder [LANG...] [--fixture NAME|DIR]...`: runs
//! fixtures against builder images, prints one line per fixture as it ends,
//! then the summary table and `N passed, M failed`. `--bless` writes the
//! output of a fixture that differs into its `expected/`; `--junit` and
//! `--json` report for CI.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt;

use harness::builder::BuilderMeta;
use harness::error::exit;
use harness::fixture::Fixture;
use harness::runner::{FixtureOutcome, Runner};
use harness::{Error, Result};

use crate::cli::TestBuilderArgs;
use crate::commands::build_builder::print_build_line;
use crate::commands::{pipeline_runner_options, Out};
use crate::context::Context;
use crate::report::{hints, shell_line, Case, Results, Status};

/// One fixture to run, with the builder it belongs to.
struct Planned {
    label: String,
    fixture: Fixture,
    language: Option<String>,
    /// A warning about the spec (a command that bypasses run.sh).
    warning: Option<String>,
}

/// How fixtures run and report.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub verbose: bool,
    /// Fixtures at once.
    pub at_once: usize,
    /// Write the output of a fixture that differs into its `expected/`.
    pub bless: bool,
    pub out: Out,
}

pub async fn run(context: &Context, args: &TestBuilderArgs) -> Result<i32> {
    let started = Instant::now();
    let planned = plan(context, args)?;
    if planned.is_empty() {
        return Err(Error::Usage(
            "no fixtures to run\n  fix: add fixtures under builders/<lang>/fixtures/, or pass --fixture NAME|DIR".into(),
        ));
    }
    let out = args.report.out();
    let mut options = pipeline_runner_options(context, &args.pipeline);
    // Fixtures run side by side, `--jobs` at once, each on one worker: small
    // jobs gain more from running together than from splitting.
    let mode = Mode {
        verbose: crate::ui::ui().verbose(),
        at_once: options.jobs,
        bless: args.bless,
        out,
    };
    options.jobs = 1;
    let runner = Runner::connect(context.builders_dir(), options).await?;
    let result = run_all(&context.builders_dir(), &runner, &planned, mode).await;
    if !args.pipeline.keep {
        if let Err(e) = runner.clean_up().await {
            errln!("warning: {e}");
        }
    }
    let mut results = Results::new("test-builder", ("BUILDER", "FIXTURE"));
    results.cases = result?;
    results.elapsed = started.elapsed();
    args.report.emit(&results, out)?;
    out.line(format_args!(
        "{} passed, {} failed",
        results.passed(),
        results.failed()
    ));
    Ok(if results.ok() { exit::OK } else { exit::FAILED })
}

fn plan(context: &Context, args: &TestBuilderArgs) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    if args.fixtures.is_empty() {
        for (dir, meta) in context.builders(&args.languages)? {
            planned.extend(builder_fixtures(&dir, &meta)?);
        }
    } else {
        // With --fixture, a named builder (at most one) is the default
        // language of fixture folders, and where fixture names are looked up.
        let language = match args.languages.as_slice() {
            [] => None,
            [one] => Some(
                context.builders(std::slice::from_ref(one))?[0]
                    .1
                    .language
                    .clone(),
            ),
            _ => {
                return Err(Error::Usage(
                    "with --fixture, name at most one builder (the fixtures' default language)"
                        .into(),
                ))
            }
        };
        for given in &args.fixtures {
            planned.push(find_fixture(context, given, language.as_deref())?);
        }
    }
    for item in &planned {
        if let Some(warning) = &item.warning {
            errln!("warning: {}: {warning}", item.label);
        }
    }
    Ok(planned)
}

/// `--fixture` as a folder, else as a fixture name (`hello`, or
/// `python/hello`) under `builders/<lang>/fixtures/`.
fn find_fixture(context: &Context, given: &Path, language: Option<&str>) -> Result<Planned> {
    if given.is_dir() {
        let fixture = Fixture::load(&absolute(given))?;
        return Ok(planned(given.display().to_string(), fixture, language));
    }
    let text = given.to_string_lossy();
    let (builder, name) = match text.split_once('/') {
        Some((builder, name)) if !name.contains('/') && !builder.is_empty() => {
            (Some(builder.to_string()), name.to_string())
        }
        None => (language.map(str::to_string), text.to_string()),
        _ => return Fixture::load(given).map(|f| planned(text.to_string(), f, language)),
    };
    if name.is_empty() || name.starts_with('.') {
        return Fixture::load(given).map(|f| planned(text.to_string(), f, language));
    }
    let searched = match &builder {
        Some(b) => context.builders(std::slice::from_ref(b))?,
        None => context.builders(&[])?,
    };
    let mut known = Vec::new();
    let mut found = Vec::new();
    for (dir, meta) in &searched {
        for fixture in Fixture::discover(dir)? {
            let label = format!("{}/{}", meta.language, fixture.name);
            if fixture.name == name {
                found.push((label.clone(), fixture, meta.language.clone()));
            }
            known.push(label);
        }
    }
    match found.len() {
        1 => {
            let (label, fixture, language) = found.remove(0);
            Ok(planned(label, fixture, Some(&language)))
        }
        0 => Err(Error::Usage(format!(
            "--fixture {text}: no such folder, and no fixture of {} is named {name:?}\n  fix: {}name a folder, or one of: {}",
            builder.as_deref().map_or("any builder".to_string(), |b| format!("the {b} builder")),
            hints::did_you_mean(
                &name,
                known.iter().map(|k| k.rsplit('/').next().unwrap_or(k))
            ),
            if known.is_empty() { "(no fixtures)".to_string() } else { known.join(", ") }
        ))),
        _ => Err(Error::Usage(format!(
            "--fixture {text}: several builders have a fixture named {name:?}: {}\n  fix: name the builder too, e.g. `--fixture {}`",
            found.iter().map(|(l, _, _)| l.as_str()).collect::<Vec<_>>().join(", "),
            found[0].0
        ))),
    }
}

fn planned(label: String, fixture: Fixture, language: Option<&str>) -> Planned {
    let warning = harness::spec::parse::load_spec(&fixture.spec_path)
        .ok()
        .and_then(|l| hints::command_warning(&l.spec.transform.cmd, &l.spec.transform.stdin));
    Planned {
        label,
        fixture,
        language: language.map(str::to_string),
        warning,
    }
}

/// The fixtures of one builder folder (`<dir>/fixtures/*`).
fn builder_fixtures(dir: &Path, meta: &BuilderMeta) -> Result<Vec<Planned>> {
    Ok(Fixture::discover(dir)?
        .into_iter()
        .map(|fixture| {
            let label = format!("{}/{}", meta.language, fixture.name);
            planned(label, fixture, Some(&meta.language))
        })
        .collect())
}

/// How many fixtures a builder folder has.
pub fn fixture_count(dir: &Path) -> Result<usize> {
    Ok(Fixture::discover(dir)?.len())
}

/// Runs every fixture of one builder, as `test-builder LANG` does, printing
/// one line per fixture to `mode.out`, and returns a case per fixture.
/// `publish` runs the same fixtures.
pub async fn run_builder_fixtures(
    runner: &Runner,
    builders_dir: &Path,
    dir: &Path,
    meta: &BuilderMeta,
    mode: Mode,
) -> Result<Vec<Case>> {
    let planned = builder_fixtures(dir, meta)?;
    run_all(builders_dir, runner, &planned, mode).await
}

async fn run_all(
    builders_dir: &Path,
    runner: &Runner,
    planned: &[Planned],
    mode: Mode,
) -> Result<Vec<Case>> {
    let out = mode.out;
    // Build every needed builder first, so its output doesn't interleave
    // with the fixtures' lines.
    let mut languages: Vec<&str> = planned
        .iter()
        .filter_map(|p| p.language.as_deref())
        .collect();
    languages.dedup();
    for language in languages {
        let (base, image) = runner
            .ensure_builder(language, &mut |line| {
                print_build_line(language, line, mode.verbose)
            })
            .await?;
        let how = if image.reused { "reused" } else { "built" };
        out.status(format_args!(
            "{language}: {} ({how}) on {base}",
            image.image
        ));
    }

    // Results come back in fixture order whatever finishes first; each
    // fixture's lines are held and printed with its result.
    let ui = crate::ui::ui();
    ui.fixtures_start(planned.len());
    let results = futures_util::stream::iter(planned.iter().map(|item| async move {
        let started = Instant::now();
        let mut lines: Vec<String> = Vec::new();
        let outcome = runner
            .run_fixture(
                &item.fixture,
                item.language.as_deref(),
                &mut |label, line| {
                    if mode.verbose {
                        lines.push(format!("  {label} | {line}"));
                    }
                },
            )
            .await;
        (item, started.elapsed(), lines, outcome)
    }))
    .buffered(mode.at_once.max(1));
    futures_util::pin_mut!(results);

    let mut cases = Vec::new();
    while let Some((item, elapsed, lines, outcome)) = results.next().await {
        ui.fixture_done(&item.fixture.name);
        for line in lines {
            ui.status(&line);
        }
        let seconds = elapsed.as_secs_f64();
        let outcome = match outcome {
            Ok(outcome) => Ok(outcome),
            // A broken fixture (bad spec, missing input) fails that fixture,
            // not the whole run.
            Err(
                e @ (Error::Invalid { .. }
                | Error::Syntax { .. }
                | Error::Usage(_)
                | Error::Failed(_)),
            ) => Err(hints::unknown_language(e, &item.fixture.spec_path, builders_dir).to_string()),
            Err(e) => return Err(e),
        };
        let case = judge(runner, item, outcome, mode.bless)?;
        match case.status {
            Status::Failed => {
                out.line(format_args!("FAIL {} ({seconds:.1}s)", item.label));
                for line in case.message.as_deref().unwrap_or("").lines() {
                    out.line(format_args!("     {line}"));
                }
            }
            _ => {
                let note = case
                    .note
                    .as_deref()
                    .map_or_else(String::new, |n| format!(", {n}"));
                out.status(format_args!("PASS {} ({seconds:.1}s{note})", item.label));
            }
        }
        cases.push(case);
    }
    ui.clear();
    Ok(cases)
}

/// The case of one fixture; with `bless`, a fixture whose only fault is
/// its output is blessed (its diff printed first) and passes.
fn judge(
    runner: &Runner,
    item: &Planned,
    outcome: std::result::Result<FixtureOutcome, String>,
    bless: bool,
) -> Result<Case> {
    let suite = item.language.clone().unwrap_or_else(|| "fixtures".into());
    let fixture = &item.fixture;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(message) => {
            let mut case = Case::new(suite, &fixture.name, Status::Failed);
            case.message = Some(message);
            return Ok(case);
        }
    };
    for warning in &outcome.report.warnings {
        errln!("  warning: {warning}");
    }
    let mut case = Case::new(suite, &fixture.name, Status::Passed).with_report(&outcome.report);
    match (&outcome.verdict, &outcome.diff, &outcome.report.output) {
        (Ok(()), _, _) => {
            if fixture.config.expect_failure.is_some() {
                case.note = Some("failed as expected".into());
            }
        }
        (Err(why), Some(_), Ok(actual)) if bless => {
            for line in why.lines() {
                errln!("     {line}");
            }
            fixture.bless(actual.path())?;
            let expected = fixture.dir.join("expected");
            errln!(
                "blessed {}: {} now holds the actual output",
                item.label,
                crate::report::table::shown_path(
                    &expected,
                    &std::env::current_dir().unwrap_or_default()
                )
            );
            case.note = Some("blessed: expected/ rewritten".into());
        }
        (Err(why), diff, output) => {
            case.status = Status::Failed;
            case.message = Some(why.clone());
            case.diff = diff.clone();
            match output {
                Err(failure) => {
                    case = case.with_failure(failure);
                    if let Some((_, id)) = &failure.datum {
                        case.rerun = Some(rerun_fixture_datum(fixture, id));
                    }
                }
                Ok(_) => case.log = Some(runner.log_dir().join(&fixture.name)),
            }
            case.hints.extend(item.warning.clone());
        }
    }
    Ok(case)
}

/// `cargo xtask run <fixture spec> --datum <id>`: the fixture's inputs are
/// where `run` looks by default (`inputs/<repo>/` beside the spec).
fn rerun_fixture_datum(fixture: &Fixture, id: &str) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let spec = crate::report::table::shown_path(&fixture.spec_path, &cwd);
    shell_line(&["cargo", "xtask", "run", &spec, "--datum", id])
}

fn absolute(dir: &std::path::Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
