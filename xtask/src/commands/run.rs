//! `cargo xtask run SPEC`: runs a build pipeline locally, then prints a
//! table of its datums (and `--json` / `--junit` for CI).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use harness::pipeline::{self, OutputDir, Prepared, Report};
use harness::runner::{load_spec_for, Runner};
use harness::spec::Input;
use harness::{Error, Result};

use crate::cli::RunArgs;
use crate::commands::pipeline_runner_options;
use crate::context::Context;
use crate::report::{hints, shell_line, Build, Case, Results, Status};

/// The marker file earlier versions wrote into the output folder; a folder
/// holding one is still taken as made by a run (and the marker goes with
/// the next run's replacement).
const LEGACY_OUT_MARKER: &str = ".pachbuild-output";

/// The list of output folders runs made (one absolute path a line), kept
/// under `target/pachbuild/`: nothing but the pipeline's output is written
/// into an output folder.
const OWNED_OUTPUTS: &str = "outputs.txt";

pub async fn run(context: &Context, args: &RunArgs) -> Result<i32> {
    let started = std::time::Instant::now();
    // Everything that needs no engine comes first: bad input starts nothing.
    let options = pipeline_runner_options(context, &args.pipeline);
    let builders_dir = context.builders_dir();
    let language = fixture_language(&builders_dir, &args.spec);
    let (loaded, resolved) = load_spec_for(
        &builders_dir,
        &context.prefix,
        &args.spec,
        language.as_deref(),
    )
    .map_err(|e| hints::unknown_language(e, &args.spec, &builders_dir))?;
    for (warning, text) in harness::spec::fields::notes(&loaded.spec) {
        let kind = if warning { "warning" } else { "note" };
        errln!("{kind}: {}: {text}", loaded.path.display());
    }
    // Only a build pipeline has an entry point to bypass.
    let command_warning = loaded
        .spec
        .transform
        .build
        .is_some()
        .then(|| hints::command_warning(&loaded.spec.transform.cmd, &loaded.spec.transform.stdin))
        .flatten();
    if let Some(warning) = &command_warning {
        errln!("warning: {}: {warning}", loaded.path.display());
    }
    let repos = input_repos(&loaded.spec.input, &loaded.dir, &args.inputs)?;
    let input = loaded.spec.input.clone();
    let prepared = pipeline::prepare(loaded, resolved, &repos)?;
    harness::pipeline::settings::check_secrets(&prepared, &options.datums.secrets)?;
    if prepared.datums.is_empty() {
        let notes = input
            .as_ref()
            .map(|input| harness::datum::explain_empty(input, &repos))
            .unwrap_or_default();
        if !args.list_datums {
            // A job of no datums runs nothing: said before anything starts.
            let problem = if notes.is_empty() {
                "the inputs make no datums, so nothing would run".to_string()
            } else {
                format!("the inputs make no datums: {}", notes.join("; "))
            };
            return Err(Error::invalid(
                &prepared.loaded.path,
                "input",
                problem,
                "change the glob so that it matches files of the input's folder, or add files \
                 there (or name another folder with `--input NAME=DIR`); `--list-datums` shows \
                 the datums a spec makes",
            ));
        }
        for note in notes {
            errln!("warning: no datums: {note}");
        }
    }
    if args.list_datums {
        // The run prints these when it starts; a listing shows them too.
        for warning in &prepared.source.warnings {
            errln!("warning: {}: {warning}", prepared.source.root.display());
        }
        for warning in &prepared.input_warnings {
            errln!("warning: {warning}");
        }
        if args.report.json {
            let json = harness::datum::to_json(&prepared.datums);
            outln!(
                "{}",
                serde_json::to_string_pretty(&json).expect("JSON of plain values")
            );
        } else {
            print_datums(&prepared);
        }
        return Ok(0);
    }
    if let Some(wanted) = &args.datum {
        harness::datum::find(&prepared.datums, wanted).map_err(|e| {
            Error::Usage(format!(
                "--datum {wanted}: {e}\n  fix: give one of the ids or numbers above \
                 (`--list-datums` lists them)"
            ))
        })?;
    }
    let out_dir = args.out.clone().unwrap_or_else(|| {
        context
            .root
            .join("target/pachbuild/out")
            .join(&prepared.pipeline_name)
    });
    check_out_apart(&out_dir, &prepared, &repos)?;
    let owned = context.target_dir().join(OWNED_OUTPUTS);
    check_out_dir(&out_dir, &owned)?;

    let mut options = options;
    // Assembled beside its final place, so that keeping it is a rename.
    if let Some(parent) = absolute(&out_dir).parent() {
        options.scratch_dir = parent.to_path_buf();
    }
    let runner = Runner::connect(context.builders_dir(), options).await?;
    let build = if prepared.resolved.has_build {
        format!("build in {}", prepared.resolved.builder_image)
    } else {
        "no build (an ordinary pipeline)".to_string()
    };
    let ui = crate::ui::ui();
    ui.status(&format!(
        "{}: {build}, run `{}` in {} over {} datum(s) (run {})",
        prepared.pipeline_name,
        prepared.resolved.command.join(" "),
        prepared.resolved.run_image,
        args.datum.as_ref().map_or(prepared.datums.len(), |_| 1),
        runner.run_id(),
    ));
    // Which phase the run is in, from the labels of its lines: an error
    // names it when the engine goes away.
    let mut phase = if prepared.resolved.has_build {
        "build phase"
    } else {
        "run phase"
    };
    let result = runner
        .run(
            &prepared,
            args.datum.clone(),
            &prepared.pipeline_name,
            &mut |label, line| {
                phase = match label {
                    "image" => "image build",
                    "build" => "build phase",
                    l if l.starts_with("datum ") => "run phase",
                    _ => phase,
                };
                // On a terminal a bar shows the image build's steps.
                if label != "image" || !ui.draws() || ui.verbose() {
                    ui.status(&format!("{label} | {line}"));
                }
            },
        )
        .await;
    ui.clear();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let e = crate::commands::engine_lost(e, phase, runner.engine(), runner.run_id()).await;
            return Err(e);
        }
    };
    for warning in &report.warnings {
        errln!("warning: {warning}");
    }
    for (_, id) in &report.datums_recovered {
        errln!("note: datum {id} failed and err_cmd recovered it: the output has nothing of it");
    }
    if !report.kept.is_empty() {
        errln!("kept for debugging (remove with `cargo xtask clean`):");
        for object in &report.kept {
            errln!("  {object}");
        }
        errln!("  logs in {}", runner.log_dir().display());
    }
    ui.status(&report.timings_line(started.elapsed()));

    let mut results = Results::new("run", ("PIPELINE", "DATUM"));
    results.cases = datum_cases(&prepared, args, &report, command_warning);
    results.elapsed = started.elapsed();
    let out = crate::commands::Out::Stderr;
    let code = match report.output {
        Ok(output) => {
            let files = output.files;
            replace_out_dir(&out_dir, output, &owned)?;
            args.report.emit(&results, out)?;
            args.report.out().line(format_args!(
                "output: {} ({files} files)",
                out_dir.display()
            ));
            0
        }
        Err(ref failure) => {
            args.report.emit(&results, out)?;
            errln!("error: {failure}");
            for more in &report.more_failures {
                errln!("error: {more}");
            }
            if !report.more_failures.is_empty() {
                errln!("{} datums failed", report.more_failures.len() + 1);
            }
            harness::error::exit::FAILED
        }
    };
    Ok(code)
}

/// The default language of a spec inside `builders/<lang>/fixtures/`: a
/// fixture's spec may leave it out (`test-builder` fills it in), and the
/// rerun command of a failing fixture datum runs such a spec.
fn fixture_language(builders_dir: &Path, spec: &Path) -> Option<String> {
    let spec = std::fs::canonicalize(spec).ok()?;
    let builders = std::fs::canonicalize(builders_dir).ok()?;
    let mut parts = spec.strip_prefix(&builders).ok()?.components();
    let language = parts.next()?.as_os_str().to_string_lossy().into_owned();
    (parts.next()?.as_os_str() == "fixtures").then_some(language)
}

/// A case for the build, then one per datum of the job, in datum order.
fn datum_cases(
    prepared: &Prepared,
    args: &RunArgs,
    report: &Report,
    command_warning: Option<String>,
) -> Vec<Case> {
    let suite = &prepared.pipeline_name;
    let failure = report.output.as_ref().err();
    let build_failed = failure.is_some_and(|f| f.phase == pipeline::Phase::Build);
    let mut build = Case::new(
        suite,
        "build",
        if build_failed {
            Status::Failed
        } else {
            Status::Passed
        },
    );
    build.build = Some(Build {
        seconds: report.build_time.as_secs_f64(),
        reused: report.build_reused,
    });
    if let (true, Some(failure)) = (build_failed, failure) {
        build = build.with_failure(failure);
        build.message = Some(first_line(&failure.to_string()));
    }
    // An ordinary pipeline (no build) has no build case.
    let mut cases = if prepared.resolved.has_build {
        vec![build]
    } else {
        Vec::new()
    };
    let failures: Vec<&pipeline::PhaseFailure> =
        failure.into_iter().chain(&report.more_failures).collect();
    let recovered: BTreeSet<&str> = report
        .datums_recovered
        .iter()
        .map(|(_, id)| id.as_str())
        .collect();
    let selected: Vec<(usize, &harness::datum::Datum)> = match &args.datum {
        Some(wanted) => harness::datum::find(&prepared.datums, wanted)
            .ok()
            .and_then(|d| {
                let index = prepared.datums.iter().position(|x| std::ptr::eq(x, d))?;
                Some(vec![(index, d)])
            })
            .unwrap_or_default(),
        None => prepared.datums.iter().enumerate().collect(),
    };
    let times: BTreeMap<&str, f64> = report
        .datum_times
        .iter()
        .map(|(id, d)| (id.as_str(), d.as_secs_f64()))
        .collect();
    for (index, datum) in selected {
        let id = datum.id();
        let name = format!("{} {id} {}", index + 1, datum.describe());
        let failed_here = failures
            .iter()
            .copied()
            .find(|f| f.datum.as_ref().is_some_and(|(_, d)| *d == id));
        let case = match (failed_here, times.get(id.as_str())) {
            (Some(failure), _) => {
                let mut case = Case::new(suite, name, Status::Failed).with_failure(failure);
                case.run_seconds = times.get(id.as_str()).copied();
                case.message = Some(first_line(&failure.to_string()));
                case.rerun = Some(rerun_command(args, &id));
                case.hints.extend(command_warning.clone());
                case
            }
            (None, Some(&seconds)) => {
                let mut case = Case::new(suite, name, Status::Passed);
                if recovered.contains(id.as_str()) {
                    case.note = Some("failed, recovered by err_cmd: no output".into());
                }
                case.run_seconds = Some(seconds);
                case
            }
            (None, None) if report.datums_reused.contains(&id) => {
                Case::new(suite, name, Status::Skipped).note("unchanged, output reused")
            }
            (None, None) => Case::new(suite, name, Status::Skipped).note(if build_failed {
                "not run: the build failed"
            } else {
                "not run: the job stopped at a failure"
            }),
        };
        cases.push(case);
    }
    cases
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// The command that reruns only datum `id`, with the inputs and the
/// options that change what a datum does.
fn rerun_command(args: &RunArgs, id: &str) -> String {
    let mut words: Vec<String> = vec!["cargo".into(), "xtask".into(), "run".into()];
    words.push(args.spec.display().to_string());
    for input in &args.inputs {
        words.push("--input".into());
        words.push(input.clone());
    }
    if args.pipeline.network {
        words.push("--network".into());
    }
    words.push("--datum".into());
    words.push(id.to_string());
    shell_line(&words)
}

fn print_datums(prepared: &Prepared) {
    outln!(
        "{} datum(s) for {}:",
        prepared.datums.len(),
        prepared.pipeline_name
    );
    for (index, datum) in prepared.datums.iter().enumerate() {
        outln!(
            "{:>4}  {}  {}  ({} files)",
            index + 1,
            datum.id(),
            datum.describe(),
            datum.file_count()
        );
    }
}

/// Repo name → folder: `inputs/<repo>/` beside the spec, overridden by
/// `--input NAME=DIR` where NAME is an input's name or a repo.
fn input_repos(
    input: &Option<Input>,
    spec_dir: &Path,
    overrides: &[String],
) -> Result<BTreeMap<String, PathBuf>> {
    let mut named = Vec::new();
    if let Some(input) = input {
        pfs_inputs(input, &mut named);
    }
    let mut repos: BTreeMap<String, PathBuf> = named
        .iter()
        .map(|(_, repo)| (repo.clone(), spec_dir.join("inputs").join(repo)))
        .collect();
    for pair in overrides {
        let Some((name, dir)) = pair.split_once('=') else {
            return Err(Error::Usage(format!(
                "--input {pair:?}: expected NAME=DIR\n  fix: e.g. --input images=./data/images"
            )));
        };
        let repo = named
            .iter()
            .find(|(input, repo)| input == name || repo == name)
            .map(|(_, repo)| repo.clone())
            .ok_or_else(|| {
                let known: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
                Error::Usage(format!(
                    "--input {name}=…: the spec has no input or repo named {name:?} (its inputs: {}){}",
                    known.join(", "),
                    hints::nearest(name, known.iter().copied())
                        .map(|n| format!("\n  fix: did you mean `--input {n}=…`?"))
                        .unwrap_or_else(|| "\n  fix: name one of those inputs (or its repo)"
                            .to_string())
                ))
            })?;
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--input {name}={}: no such folder\n  fix: name the folder that holds the \
                 files of input `{name}`",
                dir.display()
            )));
        }
        repos.insert(repo, dir);
    }
    Ok(repos)
}

fn pfs_inputs(input: &Input, out: &mut Vec<(String, String)>) {
    for pfs in input.pfs_inputs() {
        out.push((pfs.input_name().to_string(), pfs.repo.clone()));
    }
}

/// The output folders runs made, from the list under `target/pachbuild/`.
fn owned_outputs(list: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(list)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// `path` made absolute with symlinks resolved, as far as it exists.
fn resolved(path: &Path) -> PathBuf {
    let path = absolute(path);
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.clone(),
        }
    }
    let mut out = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.iter().rev());
    out
}

/// The output folder is neither inside the source or an input folder (the
/// run would read its own output next time, and replacing the folder would
/// change them) nor holds one of them (replacing it would delete them).
fn check_out_apart(
    out_dir: &Path,
    prepared: &Prepared,
    repos: &BTreeMap<String, PathBuf>,
) -> Result<()> {
    let out = resolved(out_dir);
    let mut folders: Vec<(String, &Path)> = Vec::new();
    if prepared.resolved.has_build {
        folders.push((
            "the source (`transform.build.path`)".to_string(),
            &prepared.source.root,
        ));
    }
    for (repo, dir) in repos {
        folders.push((format!("the folder of input repo `{repo}`"), dir));
    }
    for (what, dir) in folders {
        let dir_resolved = resolved(dir);
        let relation = if out.starts_with(&dir_resolved) {
            "is inside"
        } else if dir_resolved.starts_with(&out) {
            "holds"
        } else {
            continue;
        };
        return Err(Error::Usage(format!(
            "--out {}: the output folder {relation} {what}, {}; a run writes only where \
             it reads nothing\n  fix: name a folder outside the source and the inputs \
             (or leave out --out for target/pachbuild/out/<pipeline>)",
            out_dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Whether a run may write `dir`: it does not exist, is empty, or a run made it.
fn check_out_dir(dir: &Path, owned: &Path) -> Result<()> {
    let empty_or_ours = match std::fs::read_dir(dir) {
        Err(_) => true,
        Ok(mut entries) => {
            entries.next().is_none()
                || dir.join(LEGACY_OUT_MARKER).is_file()
                || owned_outputs(owned).contains(&absolute(dir))
        }
    };
    if empty_or_ours {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--out {}: the folder exists and is not empty, and was not made by a run\n  fix: name an empty or new folder",
            dir.display()
        )))
    }
}

/// Moves the output into place and records the folder as made by a run.
///
/// Runs writing one folder at once take turns (a lock per folder, beside
/// the list of owned folders), and the folder is never half written: the
/// old one is moved aside, the new one renamed into place, then the old one
/// removed. A reader sees the old output, the new one, or (for an instant)
/// none.
fn replace_out_dir(dir: &Path, out: OutputDir, owned: &Path) -> Result<()> {
    let locks = owned.with_file_name("locks");
    let _turn = lock(
        &locks.join(format!("out-{}.lock", path_key(&absolute(dir)))),
        || {
            errln!(
                "waiting for another run that writes {} to finish",
                dir.display()
            )
        },
    )?;
    // Another run may have written the folder meanwhile: still ours?
    check_out_dir(dir, owned)?;
    let aside = std::fs::symlink_metadata(dir).is_ok().then(|| {
        let name = format!(
            ".pachbuild-output-replaced-{}-{}",
            std::process::id(),
            dir.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        dir.with_file_name(name)
    });
    if let Some(aside) = &aside {
        std::fs::rename(dir, aside).map_err(|e| Error::io("cannot move aside", dir, e))?;
    }
    if let Err(e) = out.persist(dir) {
        // Put the old output back rather than leave nothing.
        if let Some(aside) = &aside {
            let _ = std::fs::remove_dir_all(dir);
            let _ = std::fs::rename(aside, dir);
        }
        return Err(e);
    }
    if let Some(aside) = &aside {
        if let Err(e) = std::fs::remove_dir_all(aside) {
            errln!(
                "warning: cannot remove the previous output, moved to {}: {e}",
                aside.display()
            );
        }
    }
    let _list = lock(&locks.join("outputs.lock"), || {})?;
    record_owned(owned, &absolute(dir))
}

/// Takes the lock file `path` (made if missing), waiting for it; `waiting`
/// runs once when another process holds it. Released when the file closes.
fn lock(path: &Path, waiting: impl FnOnce()) -> Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("cannot open the lock", path, e))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => waiting(),
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("cannot lock", path, e)),
    }
    // Another run is replacing the folder: a matter of moments.
    tokio::task::block_in_place(|| file.lock()).map_err(|e| Error::io("cannot lock", path, e))?;
    Ok(file)
}

/// A file name for `path`: a hash, so any path fits.
fn path_key(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    harness::text::hex(&digest[..10])
}

/// Adds `dir` to the list of output folders (at most 200 kept, newest last).
fn record_owned(list: &Path, dir: &Path) -> Result<()> {
    let mut known = owned_outputs(list);
    known.retain(|d| d != dir);
    known.push(dir.to_path_buf());
    let start = known.len().saturating_sub(200);
    let text: String = known[start..]
        .iter()
        .map(|d| format!("{}\n", d.display()))
        .collect();
    if let Some(parent) = list.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    // Written whole and renamed: a concurrent run reads the old or the new list.
    let temp = list.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temp, text).map_err(|e| Error::io("cannot write", &temp, e))?;
    std::fs::rename(&temp, list).map_err(|e| Error::io("cannot write", list, e))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_folders_are_recorded_outside_them() {
        let target = tempfile::tempdir().unwrap();
        let list = target.path().join("pachbuild").join(OWNED_OUTPUTS);
        let out = target.path().join("out");
        check_out_dir(&out, &list).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("result.txt"), "mine").unwrap();
        let err = check_out_dir(&out, &list).unwrap_err();
        assert!(err.to_string().contains("not made by a run"), "{err}");
        record_owned(&list, &out).unwrap();
        record_owned(&list, &out).unwrap();
        assert_eq!(owned_outputs(&list), std::slice::from_ref(&out));
        check_out_dir(&out, &list).unwrap();
        // Nothing was written into the output folder.
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["result.txt"]);
        // A folder marked by an earlier version is still ours.
        let old = target.path().join("old");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("x"), "").unwrap();
        std::fs::write(old.join(LEGACY_OUT_MARKER), "").unwrap();
        check_out_dir(&old, &list).unwrap();
    }

    #[test]
    fn fixture_specs_get_their_builders_language() {
        let root = tempfile::tempdir().unwrap();
        let builders = root.path().join("builders");
        let fixture = builders.join("python/fixtures/hello");
        std::fs::create_dir_all(&fixture).unwrap();
        std::fs::write(fixture.join("pipeline.json"), "{}").unwrap();
        std::fs::write(root.path().join("p.json"), "{}").unwrap();
        assert_eq!(
            fixture_language(&builders, &fixture.join("pipeline.json")).as_deref(),
            Some("python")
        );
        assert_eq!(
            fixture_language(&builders, &root.path().join("p.json")),
            None
        );
    }
}
