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
            // xtask lives at <root>/xtask.
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
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

    /// Where logs and default outputs go: Cargo's target folder of this
    /// workspace (never inside `--root`, which may be a source tree).
    pub fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("target")
            })
            .join("pachbuild")
    }

    pub fn builders_dir(&self) -> PathBuf {
        self.root.join("builders")
    }

    pub async fn engine(&self) -> Result<Engine> {
        Engine::connect().await
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
