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

/// Label holding the hash of everything the image was built from.
pub const LABEL_INPUTS_HASH: &str = "io.pachbuild.inputs-hash";

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
    hasher
        .finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
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
    let id = engine
        .build_image(tar, &options.tag, args, &labels, progress)
        .await
        .map_err(|e| with_dockerfile_fix(e, &dockerfile))?;
    remove_replaced(engine, previous, &id).await;
    Ok(BuilderImage {
        image: options.tag.clone(),
        id,
        reused: false,
    })
}

/// A build whose `COPY` or `ADD` names a file the builder's folder lacks
/// says which Dockerfile and how to fix it (the engine only says "file not
/// found in build context").
fn with_dockerfile_fix(error: Error, dockerfile: &Path) -> Error {
    match error {
        Error::Engine {
            operation,
            object,
            message,
        } if message.contains("COPY failed") || message.contains("not found in build context") => {
            Error::Engine {
                operation,
                object,
                message: format!(
                    "{message}\n  in {}\n  fix: add the missing file to the builder's folder, \
                     or remove it from the Dockerfile's COPY/ADD line",
                    dockerfile.display()
                ),
            }
        }
        other => other,
    }
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

    fn write(dir: &Path, path: &str, text: &str, exec: bool) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

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
