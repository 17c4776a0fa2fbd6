//! `cargo xtask test-builder [LANG...] [--fixture DIR]...`: runs fixtures
//! against builder images and prints one line per fixture and a summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt;

use harness::builder::BuilderMeta;
use harness::error::exit;
use harness::fixture::Fixture;
use harness::runner::Runner;
use harness::{Error, Result};

use crate::cli::TestBuilderArgs;
use crate::commands::build_builder::print_build_line;
use crate::commands::{pipeline_runner_options, Out};
use crate::context::Context;

/// One fixture to run, with the builder it belongs to.
struct Planned {
    label: String,
    fixture: Fixture,
    language: Option<String>,
}

pub async fn run(context: &Context, args: &TestBuilderArgs) -> Result<i32> {
    let planned = plan(context, args)?;
    if planned.is_empty() {
        return Err(Error::Usage(
            "no fixtures to run\n  fix: add fixtures under builders/<lang>/fixtures/, or pass --fixture DIR".into(),
        ));
    }
    let mut options = pipeline_runner_options(context, &args.pipeline);
    // Fixtures run side by side, `--jobs` at once, each on one worker: small
    // jobs gain more from running together than from splitting.
    let at_once = options.jobs;
    options.jobs = 1;
    let runner = Runner::connect(context.builders_dir(), options).await?;
    let result = run_all(&runner, &planned, args.verbose, at_once, Out::Stdout).await;
    if !args.pipeline.keep {
        if let Err(e) = runner.clean_up().await {
            eprintln!("warning: {e}");
        }
    }
    let (passed, failed) = result?;
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}

fn plan(context: &Context, args: &TestBuilderArgs) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    if args.fixtures.is_empty() {
        for (dir, meta) in context.builders(&args.languages)? {
            planned.extend(builder_fixtures(&dir, &meta)?);
        }
    } else {
        // With --fixture, a named builder (at most one) is the default language.
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
        for dir in &args.fixtures {
            let fixture = Fixture::load(&absolute(dir))?;
            planned.push(Planned {
                label: dir.display().to_string(),
                fixture,
                language: language.clone(),
            });
        }
    }
    Ok(planned)
}

/// The fixtures of one builder folder (`<dir>/fixtures/*`).
fn builder_fixtures(dir: &Path, meta: &BuilderMeta) -> Result<Vec<Planned>> {
    Ok(Fixture::discover(dir)?
        .into_iter()
        .map(|fixture| Planned {
            label: format!("{}/{}", meta.language, fixture.name),
            fixture,
            language: Some(meta.language.clone()),
        })
        .collect())
}

/// How many fixtures a builder folder has.
pub fn fixture_count(dir: &Path) -> Result<usize> {
    Ok(Fixture::discover(dir)?.len())
}

/// Runs every fixture of one builder, as `test-builder LANG` does, printing
/// one line per fixture to `out`. Returns (passed, failed). `publish` runs
/// the same fixtures.
pub async fn run_builder_fixtures(
    runner: &Runner,
    dir: &Path,
    meta: &BuilderMeta,
    verbose: bool,
    at_once: usize,
    out: Out,
) -> Result<(usize, usize)> {
    let planned = builder_fixtures(dir, meta)?;
    run_all(runner, &planned, verbose, at_once, out).await
}

async fn run_all(
    runner: &Runner,
    planned: &[Planned],
    verbose: bool,
    at_once: usize,
    out: Out,
) -> Result<(usize, usize)> {
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
                print_build_line(language, line, verbose)
            })
            .await?;
        let how = if image.reused { "reused" } else { "built" };
        out.line(format_args!(
            "{language}: {} ({how}) on {base}",
            image.image
        ));
    }

    // Results come back in fixture order whatever finishes first; each
    // fixture's lines are held and printed with its result.
    let results = futures_util::stream::iter(planned.iter().map(|item| async move {
        let started = Instant::now();
        let mut lines: Vec<String> = Vec::new();
        let outcome = runner
            .run_fixture(
                &item.fixture,
                item.language.as_deref(),
                &mut |label, line| {
                    if verbose {
                        lines.push(format!("  {label} | {line}"));
                    }
                },
            )
            .await;
        (item, started.elapsed(), lines, outcome)
    }))
    .buffered(at_once.max(1));
    futures_util::pin_mut!(results);

    let (mut passed, mut failed) = (0, 0);
    while let Some((item, elapsed, lines, outcome)) = results.next().await {
        for line in lines {
            eprintln!("{line}");
        }
        let seconds = elapsed.as_secs_f64();
        let verdict = match outcome {
            Ok(outcome) => {
                for warning in &outcome.report.warnings {
                    eprintln!("  warning: {warning}");
                }
                outcome.verdict
            }
            // A broken fixture (bad spec, missing input) fails that fixture,
            // not the whole run.
            Err(
                e @ (Error::Invalid { .. }
                | Error::Syntax { .. }
                | Error::Usage(_)
                | Error::Failed(_)),
            ) => Err(e.to_string()),
            Err(e) => return Err(e),
        };
        match verdict {
            Ok(()) => {
                passed += 1;
                let note = if item.fixture.config.expect_failure.is_some() {
                    ", failed as expected"
                } else {
                    ""
                };
                out.line(format_args!("PASS {} ({seconds:.1}s{note})", item.label));
            }
            Err(why) => {
                failed += 1;
                out.line(format_args!("FAIL {} ({seconds:.1}s)", item.label));
                for line in why.lines() {
                    out.line(format_args!("     {line}"));
                }
            }
        }
    }
    Ok((passed, failed))
}

fn absolute(dir: &std::path::Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
