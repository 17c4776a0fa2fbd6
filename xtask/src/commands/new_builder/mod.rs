//! `cargo xtask new-builder NAME [--from LANG] [--base IMAGE] [--force]`:
//! scaffolds `builders/NAME/`, a builder that builds, validates and passes
//! its fixture as generated.
//!
//! The work is split so that everything but the last step is pure:
//! - [`template`] renders the generic template (embedded in the binary from
//!   `xtask/templates/generic/`);
//! - [`derive`] copies an existing builder and renames what names it;
//! - [`install`] writes the files into a temporary folder beside the target
//!   and renames it into place, so that either everything is written or
//!   nothing is.

mod derive;
mod install;
mod template;

use std::path::{Component, Path, PathBuf};

use harness::builder::meta::{is_image_name_component, BuilderMeta, METADATA_FILE};
use harness::error::exit;
use harness::text::{shell_word, suggest_name};
use harness::{Error, Result};

use crate::context::Context;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cargo xtask new-builder ruby                       # the generic template: a working shell-script builder
  cargo xtask new-builder py-ml --from python        # a copy of the python builder, renamed
  cargo xtask new-builder ruby --base ruby:3.2-slim-bookworm")]
pub struct NewBuilderArgs {
    /// The new builder's name: its folder `builders/NAME`, its `language` and
    /// its image names (lowercase letters, digits, `-`, `_`, `.`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Start from this existing builder (its scripts and fixtures) instead of
    /// the generic template.
    #[arg(long, value_name = "LANG")]
    pub from: Option<String>,
    /// The base image, pinned to a tag: builder.yaml's `base.upstream` and the
    /// Dockerfile's default `BASE_IMAGE`.
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// Replace `builders/NAME` when it exists (its files are deleted).
    #[arg(long)]
    pub force: bool,
}

/// One file of a builder: its path inside the builder's folder, its
/// contents and its permission bits (e.g. `0o755`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
}

impl FileEntry {
    fn new(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        FileEntry {
            path: path.into(),
            contents: contents.into(),
            mode,
        }
    }
}

/// What will be written, and where it came from (for the summary).
#[derive(Debug)]
struct Plan {
    files: Vec<FileEntry>,
    origin: String,
}

pub async fn run(context: &Context, args: &NewBuilderArgs) -> Result<i32> {
    let builders_dir = context.builders_dir();
    let plan = plan(&builders_dir, args)?;
    let interrupt = InterruptFlag::watch();
    let installed = install::install(
        &builders_dir,
        &args.name,
        &plan.files,
        args.force,
        install::Hooks {
            rename: &mut |from, to| std::fs::rename(from, to),
            interrupted: &|| interrupt.is_set(),
        },
    );
    match installed {
        Ok(target) => {
            print_summary(context, args, &plan, &target);
            Ok(exit::OK)
        }
        Err(_) if interrupt.is_set() => {
            errln!(
                "\ninterrupted: nothing was written, {} is as it was",
                builders_dir.display()
            );
            Ok(130)
        }
        Err(e) => Err(e),
    }
}

/// Set when SIGINT or SIGTERM arrives while the files are written. Creating
/// it installs tokio's handlers at once, so that a signal no longer ends the
/// process in the middle of the write: the write stops cleanly instead.
struct InterruptFlag {
    set: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl InterruptFlag {
    fn watch() -> InterruptFlag {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::signal::unix::{signal, SignalKind};
        let set = std::sync::Arc::new(AtomicBool::new(false));
        let watcher = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                let flag = set.clone();
                Some(tokio::spawn(async move {
                    tokio::select! {
                        _ = int.recv() => {},
                        _ = term.recv() => {},
                    }
                    flag.store(true, Ordering::SeqCst);
                }))
            }
            _ => None,
        };
        InterruptFlag { set, watcher }
    }

    fn is_set(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for InterruptFlag {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

/// Checks the arguments and renders the files; writes nothing.
fn plan(builders_dir: &Path, args: &NewBuilderArgs) -> Result<Plan> {
    check_name(&args.name)?;
    if let Some(base) = &args.base {
        check_base_reference(base)?;
    }
    if !builders_dir.is_dir() {
        return Err(Error::Usage(format!(
            "{} does not exist: new builders are made in the `builders/` folder of the repository\n  fix: run from the repository, or pass --root DIR (the folder holding builders/)",
            builders_dir.display()
        )));
    }
    let target = builders_dir.join(&args.name);
    if target.symlink_metadata().is_ok() && !args.force {
        return Err(install::clash(&target));
    }
    let (files, origin) = match &args.from {
        None => (
            template::render(&args.name, args.base.as_deref()),
            "the generic template (a shell-script builder)".to_string(),
        ),
        Some(from) => {
            let dir = find_builder(builders_dir, from)?;
            if from == &args.name {
                return Err(Error::Usage(format!(
                    "--from {from} names the builder being made\n  fix: give the new builder another name"
                )));
            }
            let meta = BuilderMeta::load(&dir)?;
            let files = derive::read_builder(&dir)?;
            let files = derive::rename(files, &meta, &args.name, args.base.as_deref(), &dir)?;
            (files, format!("the {from} builder"))
        }
    };
    check_rendered(&files, builders_dir, args)?;
    Ok(Plan { files, origin })
}

/// NAME is an image name component: it becomes `<prefix>/NAME-build` and
/// `<prefix>/base-NAME`.
fn check_name(name: &str) -> Result<()> {
    if is_image_name_component(name) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{name:?} is not a valid builder name: it names the folder builders/{name} and the images `<prefix>/{name}-build` and `<prefix>/base-{name}`, so it must be a valid image name component\n  fix: use lowercase letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit, e.g. `{}`",
        suggest_name(
            &name.to_ascii_lowercase(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c),
            "my-lang"
        )
    )))
}

/// `--base` goes into YAML and a Dockerfile: only the characters of an image
/// reference are accepted (whether it is pinned is checked on the result).
fn check_base_reference(base: &str) -> Result<()> {
    let ok = !base.is_empty()
        && base.len() <= 255
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && base.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "--base {base:?} is not an image reference\n  fix: name an image pinned to a tag, e.g. `debian:bookworm-slim` or `python:3.11.9-slim-bookworm`"
    )))
}

/// `text` as a YAML scalar that reads back as that string: plain when it
/// can be (`python`), quoted when plain YAML would read something else
/// (`123`, `1.5`, `null`, `true`). Builder names hold no quotes or backslashes.
pub fn yaml_scalar(text: &str) -> String {
    let plain: Option<serde_json::Value> =
        harness::yaml::from_yaml_str(text, Path::new("(name)")).ok();
    if plain == Some(serde_json::Value::String(text.to_string())) {
        text.to_string()
    } else {
        format!("\"{text}\"")
    }
}

/// The folder of the builder `--from` names, or an error listing those that exist.
fn find_builder(builders_dir: &Path, from: &str) -> Result<PathBuf> {
    let dir = builders_dir.join(from);
    if is_image_name_component(from) && dir.join(METADATA_FILE).is_file() {
        return Ok(dir);
    }
    let known: Vec<String> = harness::builder::meta::builder_dirs(builders_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let known = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    Err(Error::Usage(format!(
        "--from {from:?}: there is no such builder in {} (builders here: {known})\n  fix: pass one of those to --from, or leave --from out to start from the generic template",
        builders_dir.display()
    )))
}

/// The rendered builder.yaml must be one `cargo xtask` accepts, with the
/// name and base asked for.
fn check_rendered(files: &[FileEntry], builders_dir: &Path, args: &NewBuilderArgs) -> Result<()> {
    let shown = builders_dir.join(&args.name).join(METADATA_FILE);
    let entry = files
        .iter()
        .find(|f| f.path == Path::new(METADATA_FILE))
        .ok_or_else(|| Error::Failed(format!("{}: was not generated", shown.display())))?;
    let text = String::from_utf8_lossy(&entry.contents);
    let meta: BuilderMeta = harness::yaml::from_yaml_str(&text, &shown)?;
    let mut problems = meta.problems(&shown);
    if let Some(Error::Invalid {
        field,
        problem,
        fix,
        ..
    }) = problems.first()
    {
        if field == "base.upstream" && args.base.is_some() {
            return Err(Error::Usage(format!("--base: {problem}\n  fix: {fix}")));
        }
    }
    if !problems.is_empty() {
        return Err(problems.remove(0));
    }
    for entry in files {
        let safe = entry
            .path
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe || entry.path.as_os_str().is_empty() {
            return Err(Error::Failed(format!(
                "refusing to write {}: not a path inside the builder's folder",
                entry.path.display()
            )));
        }
    }
    Ok(())
}

fn print_summary(context: &Context, args: &NewBuilderArgs, plan: &Plan, target: &Path) {
    let shown = relative_to_cwd(target);
    let replaced = if args.force {
        " (replacing what was there)"
    } else {
        ""
    };
    outln!(
        "created {}/ from {}{replaced}:",
        shown.display(),
        plan.origin
    );
    for line in tree_lines(&plan.files) {
        outln!("  {line}");
    }
    let mut global = String::new();
    if !is_default_root(&context.root) {
        global.push_str(&format!(
            " --root {}",
            shell_word(&context.root.display().to_string())
        ));
    }
    if context.prefix != "pachbuild" {
        global.push_str(&format!(" --prefix {}", shell_word(&context.prefix)));
    }
    let name = &args.name;
    let fixtures = if args.from.is_some() {
        "its fixtures, copied with it"
    } else {
        "fixtures/hello, which passes as generated"
    };
    outln!("\nnext steps:");
    for (command, what) in [
        (
            "build-builder",
            "make its base and build its image".to_string(),
        ),
        (
            "validate",
            "check the folder, then the image against builder.yaml".to_string(),
        ),
        ("test-builder", format!("run {fixtures}")),
    ] {
        let line = format!("cargo xtask{global} {command} {name}");
        outln!("  {line:<w$}  # {what}", w = name.len() + global.len() + 26);
    }
    outln!(
        "then make it yours: {}/README.md says what to change where.",
        shown.display()
    );
}

fn is_default_root(root: &Path) -> bool {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    match (
        default.map(std::fs::canonicalize),
        std::fs::canonicalize(root),
    ) {
        (Some(Ok(a)), Ok(b)) => a == b,
        _ => false,
    }
}

fn relative_to_cwd(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
}

/// The files as a tree. Large trees show each fixture as one line.
fn tree_lines(files: &[FileEntry]) -> Vec<String> {
    let collapse = files.len() > 30;
    let mut paths: Vec<Vec<String>> = Vec::new();
    let mut counts: std::collections::BTreeMap<Vec<String>, usize> = Default::default();
    for file in files {
        let parts: Vec<String> = file
            .path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if collapse && parts.len() >= 3 && parts[0] == "fixtures" {
            *counts.entry(parts[..2].to_vec()).or_default() += 1;
        } else {
            paths.push(parts);
        }
    }
    for (key, count) in &counts {
        let mut key = key.clone();
        if let Some(last) = key.last_mut() {
            last.push_str(&format!("/ ({count} files)"));
        }
        paths.push(key);
    }
    paths.sort();
    paths.dedup();
    // Render: every path's folders first, then the file.
    let mut lines = Vec::new();
    render_level(&paths, 0, "", &mut lines);
    lines
}

fn render_level(paths: &[Vec<String>], depth: usize, indent: &str, lines: &mut Vec<String>) {
    // Group by the component at `depth`, keeping order.
    let mut groups: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    for path in paths.iter().filter(|p| p.len() > depth) {
        let head = &path[depth];
        match groups.last_mut() {
            Some((name, members)) if name == head => members.push(path.clone()),
            _ => groups.push((head.clone(), vec![path.clone()])),
        }
    }
    let count = groups.len();
    for (i, (name, members)) in groups.iter().enumerate() {
        let last = i + 1 == count;
        let is_dir = members.iter().any(|p| p.len() > depth + 1);
        let branch = if last { "└── " } else { "├── " };
        let suffix = if is_dir { "/" } else { "" };
        lines.push(format!("{indent}{branch}{name}{suffix}"));
        if is_dir {
            let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
            render_level(members, depth + 1, &deeper, lines);
        }
    }
}

#[cfg(test)]
mod shape;
#[cfg(test)]
mod tests;
