//! Builder images: a tar build context made in memory from the builder's
//! folder, built by the engine on a provided base, and reused while its
//! inputs (Dockerfile, scripts, base id, build arguments) are unchanged.

use std::collections::HashMap;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use crate::builder::base::{Base, LABEL_BASE_IMAGE, LABEL_BASE_SOURCE};
use crate::builder::meta::BuilderMeta;
use crate::engine::{Engine, Labels, RunId};
use crate::error::{Error, IoContext, Result};
use crate::progress::{Event, Progress};

pub use crate::engine::labels::LABEL_INPUTS_HASH;

/// Folders of a builder that never go into its build context.
const NOT_IN_CONTEXT: &[&str] = &["fixtures", "target", ".git"];

/// A builder image ready to run.
#[derive(Debug, Clone)]
pub struct BuilderImage {
    pub image: String,
    pub id: String,
    pub reused: bool,
}

/// The files of a build context: (path in the context, unix mode, contents).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub files: Vec<(String, u32, Vec<u8>)>,
}

impl Context {
    /// Reads the builder folder (all but fixtures), sorted, so the same
    /// folder always makes the same context and hash.
    pub fn from_dir(dir: &Path) -> Result<Context> {
        let mut files = Vec::new();
        collect(dir, dir, &mut files)?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Context { files })
    }

    /// A gzip-compressed tar of the context.
    pub fn to_tar_gz(&self) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (path, mode, contents) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, path, contents.as_slice())
                .map_err(|e| Error::io("cannot add to the build context", path, e))?;
        }
        let encoder = builder
            .into_inner()
            .map_err(|e| Error::io("cannot finish the build context", "(memory)", e))?;
        encoder
            .finish()
            .map_err(|e| Error::io("cannot compress the build context", "(memory)", e))
    }

    fn hash_into(&self, hasher: &mut Sha256) {
        for (path, mode, contents) in &self.files {
            hasher.update(path.as_bytes());
            hasher.update(mode.to_le_bytes());
            hasher.update((contents.len() as u64).to_le_bytes());
            hasher.update(contents);
        }
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_path("cannot read", dir)?;
    for entry in entries {
        let entry = entry.with_path("cannot read", dir)?;
        let path = entry.path();
        let name = entry.file_name();
        if dir == root && NOT_IN_CONTEXT.iter().any(|n| name == *n) {
            continue;
        }
        let meta = std::fs::metadata(&path).with_path("cannot read", &path)?;
        if meta.is_dir() {
            collect(root, &path, out)?;
        } else if meta.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let contents = std::fs::read(&path).with_path("cannot read", &path)?;
            out.push((to_context_path(relative), unix_mode(&meta), contents));
        }
    }
    Ok(())
}

fn to_context_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(unix)]
fn unix_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    // Keep the exec bits the scripts have in git; nothing else matters.
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(not(unix))]
fn unix_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// Build arguments every builder receives.
pub fn build_args(meta: &BuilderMeta, base: &Base, revision: &str) -> HashMap<String, String> {
    HashMap::from([
        ("BASE_IMAGE".to_string(), base.image.clone()),
        ("BUILDER_VERSION".to_string(), meta.version.clone()),
        ("REVISION".to_string(), revision.to_string()),
    ])
}

/// Build arguments that only label the image: a new value alone does not
/// make an image stale. A commit that changes nothing in a builder keeps its
/// image, and so the build outputs cached on it (`--rebuild` relabels).
const LABEL_ONLY_ARGS: [&str; 1] = ["REVISION"];

/// The hash of everything an image is built from.
pub fn inputs_hash(context: &Context, base_id: &str, args: &HashMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    context.hash_into(&mut hasher);
    hasher.update(base_id.as_bytes());
    let mut args: Vec<_> = args
        .iter()
        .filter(|(k, _)| !LABEL_ONLY_ARGS.contains(&k.as_str()))
        .collect();
    args.sort();
    for (k, v) in args {
        hasher.update(k.as_bytes());
        hasher.update(b"=");
        hasher.update(v.as_bytes());
        hasher.update(b"\n");
    }
    crate::text::hex(&hasher.finalize()[..12])
}

/// Options for [`ensure`].
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// The tag to give the image.
    pub tag: String,
    /// The source revision recorded in the OCI label.
    pub revision: String,
    pub run: RunId,
    /// Build even when an image with the same inputs exists.
    pub rebuild: bool,
    /// Mark the image as made only for this run (tests).
    pub ephemeral: bool,
}

/// Builds the builder in `dir` on `base`, or reuses the image when its
/// inputs have not changed. `progress` receives the build's output lines.
pub async fn ensure(
    engine: &Engine,
    dir: &Path,
    meta: &BuilderMeta,
    base: &Base,
    options: &ImageOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<BuilderImage> {
    let args = build_args(meta, base, &options.revision);
    let labels = Labels::for_run(&options.run, "builder")
        .with(LABEL_BASE_SOURCE, &base.source.to_string())
        .with(LABEL_BASE_IMAGE, &base.image);
    build_or_reuse(engine, dir, &base.id, &args, labels, options, progress).await
}

/// Builds the Dockerfile folder `dir` as `options.tag` with `args`, or
/// reuses the image when the folder, `base_id` and `args` are unchanged.
/// Used for builders and for fixture-local images.
pub async fn build_or_reuse(
    engine: &Engine,
    dir: &Path,
    base_id: &str,
    args: &HashMap<String, String>,
    labels: Labels,
    options: &ImageOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<BuilderImage> {
    let dockerfile = dir.join("Dockerfile");
    if !dockerfile.is_file() {
        return Err(Error::invalid(
            &dockerfile,
            "Dockerfile",
            "the folder has no Dockerfile",
            "add one that starts with `ARG BASE_IMAGE` and `FROM ${BASE_IMAGE}`",
        ));
    }
    let context = Context::from_dir(dir)?;
    let hash = inputs_hash(&context, base_id, args);
    let previous = engine.image(&options.tag).await?;
    if let Some(found) = &previous {
        if !options.rebuild && found.labels.get(LABEL_INPUTS_HASH) == Some(&hash) {
            return Ok(BuilderImage {
                image: options.tag.clone(),
                id: found.id.clone(),
                reused: true,
            });
        }
    }
    let mut labels = labels.with(LABEL_INPUTS_HASH, &hash);
    if options.ephemeral {
        labels = labels.ephemeral();
    }
    let tar = context.to_tar_gz()?;
    // What the build makes on its way (step containers, step images) is
    // removed if it does not finish: on a failure here, on an interrupt
    // (the future dropped) by the guard.
    let guard = StepObjects::new(engine);
    let built = {
        let trace = guard.trace.clone();
        let events = engine.progress();
        let mut tracing = |line: &str| {
            if let Ok(mut trace) = trace.lock() {
                trace.line(line);
            }
            if let Some((step, steps, instruction)) = parse_step(line) {
                events.emit(Event::BuildStep {
                    image: options.tag.clone(),
                    step,
                    steps,
                    instruction: instruction.to_string(),
                });
            }
            progress(line);
        };
        let built = engine
            .build_image(tar, &options.tag, args, &labels, &mut tracing)
            .await;
        events.emit(Event::BuildDone {
            image: options.tag.clone(),
        });
        built
    };
    let id = match built {
        Ok(id) => {
            guard.disarm();
            id
        }
        Err(e) => {
            let trace = guard.take();
            remove_step_objects(engine, &trace).await;
            return Err(build_error(e, &dockerfile, dir, &trace));
        }
    };
    remove_replaced(engine, previous, &id).await;
    Ok(BuilderImage {
        image: options.tag.clone(),
        id,
        reused: false,
    })
}

/// `Step 3/9 : RUN make` as (3, 9, "RUN make").
pub fn parse_step(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.trim().strip_prefix("Step ")?;
    let (numbers, instruction) = rest.split_once(" : ")?;
    let (step, steps) = numbers.split_once('/')?;
    Some((step.parse().ok()?, steps.parse().ok()?, instruction.trim()))
}

/// What an image build made, read from its output (the classic builder's
/// `Step N/M : ...`, `---> Running in <id>`, `---> <id>`): the containers
/// of its steps, and the images of the steps it did not take from the
/// cache (nor the `FROM` image).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildTrace {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    /// The step running last (`Step 9/17 : COPY a /app/`).
    pub step: Option<String>,
    cached: bool,
    from: bool,
}

impl BuildTrace {
    /// Reads one line of the build's output.
    pub fn line(&mut self, line: &str) {
        let text = line.trim();
        if text.starts_with("Step ") {
            self.from = text
                .split_once(" : ")
                .is_some_and(|(_, i)| i.trim_start().to_ascii_uppercase().starts_with("FROM "));
            self.cached = false;
            self.step = Some(text.to_string());
        } else if let Some(id) = text.strip_prefix("---> Running in ") {
            self.containers.push(id.trim().to_string());
        } else if text == "---> Using cache" {
            self.cached = true;
        } else if let Some(id) = text.strip_prefix("---> ") {
            let id = id.trim();
            let is_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit());
            if is_id && !self.cached && !self.from {
                self.images.push(id.to_string());
            }
        }
    }
}

/// The objects of a build in progress; removed when dropped unless disarmed.
struct StepObjects {
    host: String,
    progress: Progress,
    trace: std::sync::Arc<std::sync::Mutex<BuildTrace>>,
    armed: bool,
}

impl StepObjects {
    fn new(engine: &Engine) -> StepObjects {
        StepObjects {
            host: engine.host().to_string(),
            progress: engine.progress().clone(),
            trace: Default::default(),
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }

    /// The trace, the guard disarmed (the caller removes what it lists).
    fn take(mut self) -> BuildTrace {
        self.armed = false;
        self.trace.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Drop for StepObjects {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let trace = self.trace.lock().map(|t| t.clone()).unwrap_or_default();
        if trace.containers.is_empty() && trace.images.is_empty() {
            return;
        }
        // Drop cannot await and the runtime may be going.
        let host = self.host.clone();
        let progress = self.progress.clone();
        crate::engine::clean_up_now(&self.host, move |engine| async move {
            match engine {
                Ok(engine) => remove_step_objects(&engine.with_progress(progress), &trace).await,
                Err(_) if trace.images.is_empty() => {}
                Err(_) => {
                    let ids: Vec<&str> = trace.images.iter().rev().map(String::as_str).collect();
                    progress.warn(format!(
                        "the engine at {host} does not answer: the unfinished image build left {} step image(s) there, with no label of the run: once it is back, `docker rmi {}` removes them",
                        ids.len(),
                        ids.join(" ")
                    ));
                }
            }
        });
    }
}

/// Removes the step containers, then the step images newest first (each
/// the parent of the next), of a build that did not finish. An image still
/// needed (another build took it from the cache since) stays.
/// Step images carry no label of the run, so what cannot be removed now
/// (the engine went away) is named in a warning, with the command that
/// removes it later. (A step container the engine removes itself when it
/// cancels the build.)
async fn remove_step_objects(engine: &Engine, trace: &BuildTrace) {
    let mut failed = None;
    for container in &trace.containers {
        if let Err(e) = engine.remove_container(container).await {
            failed.get_or_insert(e);
        }
    }
    let mut left = Vec::new();
    for image in trace.images.iter().rev() {
        if let Err(e) = engine.remove_untagged_image(image).await {
            failed.get_or_insert(e);
            left.push(image.as_str());
        }
    }
    if let Some(e) = failed {
        let mut text = format!("cannot remove what the unfinished image build made: {e}");
        if !left.is_empty() {
            text.push_str(&format!(
                "\n  it left {} step image(s) on the engine at {}, with no label of the run: once it is back, `docker rmi {}` removes them",
                left.len(),
                engine.host(),
                left.join(" ")
            ));
        }
        engine.progress().warn(text);
    }
}

/// A failed image build's error: the Dockerfile, the failing step, what the
/// engine said, and what to do.
fn build_error(error: Error, dockerfile: &Path, dir: &Path, trace: &BuildTrace) -> Error {
    let Error::Engine(engine_error) = error else {
        return error;
    };
    if engine_error.operation != crate::engine::Operation::BuildImage {
        return Error::Engine(engine_error);
    }
    let message = engine_error.message.clone();
    let step = trace.step.as_deref().unwrap_or("(before the first step)");
    let first = message.lines().next().unwrap_or_default();
    let fix = if first.contains("COPY failed")
        || first.contains("ADD failed")
        || first.contains("not found in build context")
    {
        format!(
            "put the file the step names in {} (the build context: the builder folder but {}), or correct its path in the Dockerfile",
            dir.display(),
            NOT_IN_CONTEXT.join(", ")
        )
    } else if first.contains("returned a non-zero code") {
        "the step's command failed: its output is in the last lines above (`--verbose` shows the whole build); correct it in the Dockerfile".to_string()
    } else {
        "correct the step in the Dockerfile; `--verbose` shows the whole build".to_string()
    };
    // Still a "build image" error: `validate` files it under the Dockerfile.
    let message = format!(
        "failed at {}: {step}\n  {}\n  fix: {fix}",
        dockerfile.display(),
        message.trim_end()
    );
    Error::Engine(Box::new(engine_error.with_message(message)))
}

/// Removes the image a new build took the tag from, so rebuilds leave no
/// dangling images. Best effort: an image still used by a container stays.
pub async fn remove_replaced(
    engine: &Engine,
    previous: Option<crate::engine::ImageInfo>,
    new_id: &str,
) {
    if let Some(old) = previous {
        if old.id != new_id && old.labels.contains_key(crate::engine::LABEL_MANAGED) {
            let _ = engine.remove_image(&old.id).await;
        }
    }
}

/// The git revision of the repository at `root`, or `unknown`.
pub fn git_revision(root: &Path) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::validate::testing::write;

    #[test]
    fn context_skips_fixtures_and_keeps_exec_bits() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", "FROM x", false);
        write(dir.path(), "build.sh", "#!/bin/sh", true);
        write(dir.path(), "fixtures/hello/pipeline.json", "{}", false);
        let context = Context::from_dir(dir.path()).unwrap();
        let names: Vec<(&str, u32)> = context
            .files
            .iter()
            .map(|(p, m, _)| (p.as_str(), *m))
            .collect();
        assert_eq!(names, [("Dockerfile", 0o644), ("build.sh", 0o755)]);

        let tar = context.to_tar_gz().unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar.as_slice()));
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("Dockerfile".to_string(), 0o644),
                ("build.sh".to_string(), 0o755)
            ]
        );
    }

    #[test]
    fn steps_are_read_from_build_lines() {
        assert_eq!(parse_step("Step 3/9 : RUN make"), Some((3, 9, "RUN make")));
        assert_eq!(parse_step(" ---> Running in abc"), None);
        assert_eq!(parse_step("Step x/9 : RUN make"), None);
    }

    #[test]
    fn a_trace_keeps_the_steps_own_objects() {
        let mut trace = BuildTrace::default();
        for line in [
            "Step 1/5 : FROM base",
            " ---> a86b509dcb99",
            "Step 2/5 : ARG X",
            " ---> Using cache",
            " ---> 7e0aef554821",
            "Step 3/5 : RUN true",
            " ---> Running in 66e9831911bf",
            "Removing intermediate container 66e9831911bf",
            " ---> 0ad3595eb60b",
            "Step 4/5 : COPY a /app/",
            " ---> 2f242137c0dc",
            "Step 5/5 : COPY missing /app/",
        ] {
            trace.line(line);
        }
        assert_eq!(trace.containers, ["66e9831911bf"]);
        assert_eq!(trace.images, ["0ad3595eb60b", "2f242137c0dc"]);
        assert_eq!(trace.step.as_deref(), Some("Step 5/5 : COPY missing /app/"));
    }

    #[test]
    fn a_failed_copy_names_the_dockerfile_the_step_and_a_fix() {
        let trace = BuildTrace {
            step: Some("Step 9/9 : COPY missing /app/".into()),
            ..BuildTrace::default()
        };
        let e = crate::engine::EngineError::new(
            crate::engine::Operation::BuildImage,
            "p/x-build:1",
            crate::engine::Failure::Failed,
            "COPY failed: file not found in build context",
        )
        .into();
        let text =
            build_error(e, Path::new("b/x/Dockerfile"), Path::new("b/x"), &trace).to_string();
        assert!(
            text.contains("b/x/Dockerfile: Step 9/9 : COPY missing /app/"),
            "{text}"
        );
        assert!(
            text.contains("\n  fix: put the file the step names in b/x"),
            "{text}"
        );
    }

    #[test]
    fn hash_changes_with_scripts_base_and_args() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", "FROM x", false);
        write(dir.path(), "run.sh", "a", true);
        let c1 = Context::from_dir(dir.path()).unwrap();
        let args = HashMap::from([("A".to_string(), "1".to_string())]);
        let h1 = inputs_hash(&c1, "id1", &args);
        assert_eq!(h1, inputs_hash(&c1, "id1", &args));
        assert_ne!(h1, inputs_hash(&c1, "id2", &args));
        let args2 = HashMap::from([("A".to_string(), "2".to_string())]);
        assert_ne!(h1, inputs_hash(&c1, "id1", &args2));
        // The revision only labels the image.
        let mut relabelled = args.clone();
        relabelled.insert("REVISION".to_string(), "abc123".to_string());
        assert_eq!(h1, inputs_hash(&c1, "id1", &relabelled));
        write(dir.path(), "run.sh", "b", true);
        let c2 = Context::from_dir(dir.path()).unwrap();
        assert_ne!(h1, inputs_hash(&c2, "id1", &args));
        write(dir.path(), "run.sh", "b", false);
        let c3 = Context::from_dir(dir.path()).unwrap();
        assert_ne!(
            inputs_hash(&c2, "id1", &args),
            inputs_hash(&c3, "id1", &args)
        );
    }
}
