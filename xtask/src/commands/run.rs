//! `cargo xtask run SPEC`: runs a build pipeline locally.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::pipeline::{self, OutputDir, Prepared};
use harness::runner::{load_spec_for, Runner};
use harness::spec::Input;
use harness::{Error, Result};

use crate::cli::RunArgs;
use crate::commands::pipeline_runner_options;
use crate::context::Context;

/// Marks an output folder as ours, so a later run may replace it.
const OUT_MARKER: &str = ".pachbuild-output";

pub async fn run(context: &Context, args: &RunArgs) -> Result<i32> {
    // Everything that needs no engine comes first: bad input starts nothing.
    let options = pipeline_runner_options(context, &args.pipeline);
    let (loaded, resolved) =
        load_spec_for(&context.builders_dir(), &context.prefix, &args.spec, None)?;
    for (warning, text) in harness::spec::fields::notes(&loaded.spec) {
        let kind = if warning { "warning" } else { "note" };
        eprintln!("{kind}: {}: {text}", loaded.path.display());
    }
    let repos = input_repos(&loaded.spec.input, &loaded.dir, &args.inputs)?;
    let input = loaded.spec.input.clone();
    let prepared = pipeline::prepare(loaded, resolved, &repos)?;
    if prepared.datums.is_empty() {
        if let Some(input) = &input {
            for note in harness::datum::explain_empty(input, &repos) {
                eprintln!("warning: no datums: {note}");
            }
        }
    }
    if args.list_datums {
        if args.json {
            let json = harness::datum::to_json(&prepared.datums);
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("JSON of plain values")
            );
        } else {
            print_datums(&prepared);
        }
        return Ok(0);
    }
    if let Some(wanted) = &args.datum {
        harness::datum::find(&prepared.datums, wanted)?;
    }
    let out_dir = args.out.clone().unwrap_or_else(|| {
        context
            .root
            .join("target/pachbuild/out")
            .join(&prepared.pipeline_name)
    });
    check_out_dir(&out_dir)?;

    let started = std::time::Instant::now();
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
    eprintln!(
        "{}: {build}, run `{}` in {} over {} datum(s) (run {})",
        prepared.pipeline_name,
        prepared.resolved.command.join(" "),
        prepared.resolved.run_image,
        args.datum.as_ref().map_or(prepared.datums.len(), |_| 1),
        runner.run_id(),
    );
    let report = runner
        .run(
            &prepared,
            args.datum.clone(),
            &prepared.pipeline_name,
            &mut |label, line| eprintln!("{label} | {line}"),
        )
        .await?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for (_, id) in &report.datums_recovered {
        eprintln!("note: datum {id} failed and err_cmd recovered it: the output has nothing of it");
    }
    if !report.kept.is_empty() {
        eprintln!("kept for debugging (remove with `cargo xtask clean`):");
        for object in &report.kept {
            eprintln!("  {object}");
        }
        eprintln!("  logs in {}", runner.log_dir().display());
    }
    eprintln!("{}", report.timings_line(started.elapsed()));
    match report.output {
        Ok(out) => {
            let files = out.files;
            replace_out_dir(&out_dir, out)?;
            println!("output: {} ({files} files)", out_dir.display());
            Ok(0)
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            for more in &report.more_failures {
                eprintln!("error: {more}");
            }
            if !report.more_failures.is_empty() {
                eprintln!("{} datums failed", report.more_failures.len() + 1);
            }
            Ok(harness::error::exit::FAILED)
        }
    }
}

fn print_datums(prepared: &Prepared) {
    println!(
        "{} datum(s) for {}:",
        prepared.datums.len(),
        prepared.pipeline_name
    );
    for (index, datum) in prepared.datums.iter().enumerate() {
        println!(
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
                    "--input {name}=…: the spec has no input or repo named {name:?} (its inputs: {})",
                    known.join(", ")
                ))
            })?;
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--input {name}={}: no such folder",
                dir.display()
            )));
        }
        repos.insert(repo, dir);
    }
    Ok(repos)
}

fn pfs_inputs(input: &Input, out: &mut Vec<(String, String)>) {
    if let Some(pfs) = &input.pfs {
        out.push((pfs.input_name().to_string(), pfs.repo.clone()));
    }
    for children in [&input.cross, &input.union, &input.join, &input.group]
        .into_iter()
        .flatten()
    {
        for child in children {
            pfs_inputs(child, out);
        }
    }
}

fn check_out_dir(dir: &Path) -> Result<()> {
    let empty_or_ours = match std::fs::read_dir(dir) {
        Err(_) => true,
        Ok(mut entries) => entries.next().is_none() || dir.join(OUT_MARKER).is_file(),
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

fn replace_out_dir(dir: &Path, out: OutputDir) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("cannot clear", dir, e))?;
    }
    out.persist(dir)?;
    std::fs::write(
        dir.join(OUT_MARKER),
        "made by `cargo xtask run`; replaced by the next run\n",
    )
    .map_err(|e| Error::io("cannot write", dir.join(OUT_MARKER), e))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
