//! Writing a new builder so that either all of it lands or none of it does.
//!
//! The files are written into `<builders>/.new-builder-NAME-XXXXXX/NAME/`, a
//! [`tempfile::TempDir`] beside the target: the same file system, so moving
//! the finished folder into place is one atomic rename, and a write that
//! fails (or a process that unwinds) leaves only the temporary folder, which
//! is deleted when dropped. The finished folder sits one level down so that
//! nothing listing `builders/*/builder.yaml` ever sees a half-made builder.
//!
//! With `--force`, the old folder is first moved into the same temporary
//! folder, then the new one is renamed into place, then the temporary
//! folder (holding the old builder) is deleted. If the second rename fails,
//! the old folder is moved back.
//!
//! An interrupt (SIGINT, SIGTERM) while the files are written stops the
//! write before anything is moved: the temporary folder is deleted and the
//! tree is as it was.

use std::io;
use std::path::{Path, PathBuf};

use harness::error::IoContext;
use harness::{Error, Result};

use super::FileEntry;

/// The error for a target that exists (without `--force`).
pub fn clash(target: &Path) -> Error {
    Error::Usage(format!(
        "{} already exists; nothing was written\n  fix: choose another name, or pass --force to replace it (its files are deleted)",
        target.display()
    ))
}

/// The error when an interrupt stopped the write.
pub const INTERRUPTED: &str = "interrupted before the new builder was moved into place";

/// How [`install`] touches the world beyond writing files; tests replace it.
pub struct Hooks<'a> {
    /// Moves a folder: `std::fs::rename`, or one that fails on purpose.
    pub rename: &'a mut dyn FnMut(&Path, &Path) -> io::Result<()>,
    /// Whether the user interrupted (SIGINT/SIGTERM): checked before each
    /// file and before the first rename, after which the change is made.
    pub interrupted: &'a dyn Fn() -> bool,
}

/// Writes `files` as `<builders_dir>/<name>/` and returns that folder.
pub fn install(
    builders_dir: &Path,
    name: &str,
    files: &[FileEntry],
    force: bool,
    hooks: Hooks<'_>,
) -> Result<PathBuf> {
    let Hooks {
        rename,
        interrupted,
    } = hooks;
    let target = builders_dir.join(name);
    if exists(&target) && !force {
        return Err(clash(&target));
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!(".new-builder-{name}-"))
        .tempdir_in(builders_dir)
        .with_path("cannot create a temporary folder in", builders_dir)?;
    let new = staging.path().join(name);
    write_tree(&new, files, interrupted)?;
    if interrupted() {
        return Err(Error::Failed(INTERRUPTED.into()));
    }

    if !exists(&target) {
        rename(&new, &target).with_path("cannot move the new builder into place at", &target)?;
        close(staging);
        return Ok(target);
    }

    let aside = staging.path().join(format!("{name}.replaced"));
    rename(&target, &aside).with_path("cannot move the old builder aside:", &target)?;
    if let Err(e) = rename(&new, &target) {
        return match rename(&aside, &target) {
            Ok(()) => Err(Error::io(
                "cannot move the new builder into place (the old one is back) at",
                &target,
                e,
            )),
            Err(restore) => {
                // Never delete the only copy of the old builder.
                let kept = staging.keep().join(format!("{name}.replaced"));
                Err(Error::Failed(format!(
                    "cannot move the new builder into place at {}: {e}\n  and the old builder could not be moved back: {restore}\n  fix: it is in {}: move it back by hand",
                    target.display(),
                    kept.display()
                )))
            }
        };
    }
    close(staging);
    Ok(target)
}

fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Deletes the temporary folder (with the replaced builder, if any).
fn close(staging: tempfile::TempDir) {
    let path = staging.path().to_path_buf();
    if let Err(e) = staging.close() {
        errln!(
            "warning: cannot delete the temporary folder {}: {e}\n  fix: delete it by hand",
            path.display()
        );
    }
}

/// Writes every file under `root` with its mode; folders get 0755.
fn write_tree(root: &Path, files: &[FileEntry], interrupted: &dyn Fn() -> bool) -> Result<()> {
    make_dir(root)?;
    for file in files {
        if interrupted() {
            return Err(Error::Failed(INTERRUPTED.into()));
        }
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            make_dir(parent)?;
        }
        std::fs::write(&path, &file.contents).with_path("cannot write", &path)?;
        set_mode(&path, file.mode)?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents, each with mode 0755 whatever the umask.
fn make_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dir(parent)?;
    }
    std::fs::create_dir(dir).with_path("cannot create the folder", dir)?;
    set_mode(dir, 0o755)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_path("cannot set the mode of", path)
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}
