//! What every command needs: the repository root, the image prefix, the
//! run's id, and (on demand) a connected engine.

use std::path::{Path, PathBuf};

use harness::builder::BuilderMeta;
use harness::engine::{Engine, RunId};
use harness::{Error, Result};

use crate::cli::GlobalArgs;

pub struct Context {
    pub root: PathBuf,
    pub prefix: String,
    pub run: RunId,
}

impl Context {
    pub fn new(args: &GlobalArgs) -> Result<Context> {
        let root = match &args.root {
            Some(root) => root.clone(),
            None => find_root()?,
        };
        if !harness::builder::meta::is_image_name_component(
            args.prefix.rsplit('/').next().unwrap_or(""),
        ) {
            return Err(Error::Usage(format!(
                "--prefix {:?} is not a valid image name prefix\n  fix: use lowercase letters, digits, `-`, `_`, `.` (and `/` between parts)",
                args.prefix
            )));
        }
        Ok(Context {
            root,
            prefix: args.prefix.clone(),
            run: RunId::new(),
        })
    }

    /// Where logs, caches and default outputs go: `CARGO_TARGET_DIR`, else
    /// the target folder of the workspace cargo runs us from, else of the
    /// repository in use, else the user's cache folder. So they go inside
    /// `--root` only when it is this repository (its `target/`), never into
    /// a `--root` elsewhere, which may be a source tree.
    pub fn target_dir(&self) -> PathBuf {
        if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            return PathBuf::from(dir).join("pachbuild");
        }
        if let Some(workspace) = cargo_workspace() {
            return workspace.join("target").join("pachbuild");
        }
        if is_repo(&self.root) {
            return self.root.join("target").join("pachbuild");
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        cache.join("pachbuild")
    }

    pub fn builders_dir(&self) -> PathBuf {
        self.root.join("builders")
    }

    pub async fn engine(&self) -> Result<Engine> {
        Ok(Engine::connect()
            .await?
            .with_progress(crate::ui::ui().progress()))
    }

    /// The named builders, or all of them when `names` is empty.
    pub fn builders(&self, names: &[String]) -> Result<Vec<(PathBuf, BuilderMeta)>> {
        let dir = self.builders_dir();
        let dirs = if names.is_empty() {
            harness::builder::meta::builder_dirs(&dir)?
        } else {
            names
                .iter()
                .map(|name| {
                    let path = dir.join(name);
                    if path.is_dir() {
                        Ok(path)
                    } else {
                        let known = harness::builder::meta::builder_dirs(&dir)
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                            .collect::<Vec<_>>()
                            .join(", ");
                        Err(Error::Usage(format!(
                            "no builder {name:?}: {} does not exist (builders here: {known})\n  fix: name one of those, or make it with `cargo xtask new-builder {name}`",
                            path.display()
                        )))
                    }
                })
                .collect::<Result<Vec<_>>>()?
        };
        if dirs.is_empty() {
            return Err(Error::Usage(format!(
                "no builders found in {}",
                dir.display()
            )));
        }
        dirs.into_iter()
            .map(|d| BuilderMeta::load(&d).map(|m| (d, m)))
            .collect()
    }
}

/// Whether `dir` is this repository: it holds `builders/` and `xtask/`.
fn is_repo(dir: &Path) -> bool {
    dir.join("builders").is_dir() && dir.join("xtask").is_dir()
}

/// The workspace cargo runs us from (`cargo xtask` sets
/// `CARGO_MANIFEST_DIR` to the xtask crate, or a test crate of the
/// workspace), read at run time: a binary built in one checkout and run from
/// another uses the other's files.
fn cargo_workspace() -> Option<PathBuf> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    manifest
        .ancestors()
        .find(|d| is_repo(d))
        .map(Path::to_path_buf)
}

/// This repository among the current folder and its ancestors.
fn ancestors_repo() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors().find(|d| is_repo(d)).map(Path::to_path_buf)
}

/// The repository holding `builders/`, found at run time: the workspace
/// cargo runs us from, else the current folder's ancestors, else the
/// checkout this binary was built from (an installed binary), if it still
/// exists.
fn find_root() -> Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    cargo_workspace()
        .or_else(ancestors_repo)
        .or_else(|| built_from.filter(|d| is_repo(d)))
        .ok_or_else(|| {
            Error::Usage(
                "cannot find the pachbuild repository (the folder holding builders/)\n  \
                 fix: pass --root DIR or set PACHBUILD_ROOT to a checkout of it"
                    .to_string(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_is_the_folder_with_builders_and_xtask() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_repo(dir.path()));
        std::fs::create_dir(dir.path().join("builders")).unwrap();
        assert!(!is_repo(dir.path()), "fixture roots are not the repository");
        std::fs::create_dir(dir.path().join("xtask")).unwrap();
        assert!(is_repo(dir.path()));
        // This test runs under cargo, from this workspace.
        let found = cargo_workspace().expect("cargo sets CARGO_MANIFEST_DIR");
        assert!(is_repo(&found), "{}", found.display());
    }
}
