//! `cargo xtask validate`: the checks of a builder folder.
//!
//! Three layers, each reporting every problem it finds (never only the first):
//!
//! - [`static_checks`]: the folder itself, with no tool and no engine: the
//!   files a builder needs, its scripts (exec bit, `sh` shebang, `set -e`,
//!   arguments forwarded, `run.sh` copied into `/pfs/out`), its Dockerfile
//!   (base taken as the `BASE_IMAGE` argument, no `latest` or untagged
//!   images), its `builder.yaml` (parses, fields valid, image checks
//!   complete) and its fixtures;
//! - [`linters`]: `shellcheck` on the scripts and `hadolint` on the
//!   Dockerfile, when they are installed; a missing tool is a note, not a
//!   problem;
//! - [`image_checks`]: the built image against `builder.yaml`'s `checks`
//!   (commands that must succeed, files with their modes, labels).
//!
//! A [`Problem`] names the file, the line when there is one, and the fix.
//!
//! The parts: `shell` reads shell scripts (logical lines, commands, words)
//! and `scripts` checks `build.sh` and `run.sh` with it; `dockerfile` reads
//! and checks the Dockerfile; `pinning` finds unpinned images; `metadata`
//! checks `builder.yaml` and finds a field's line; `linters` runs and reads
//! shellcheck and hadolint; `image` checks a built image. This file holds
//! what they share and the folder-level checks (files, fixtures).

mod dockerfile;
mod image;
mod linters;
mod metadata;
mod pinning;
mod scripts;
mod shell;
#[cfg(test)]
pub(crate) mod testing;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::builder::meta::METADATA_FILE;

pub use image::{image_checks, COMMAND_TIMEOUT};
pub use linters::{linters, linters_with, Lint};
pub use metadata::yaml_line;

/// The files every builder folder must have.
pub const REQUIRED_FILES: &[&str] = &["Dockerfile", "build.sh", "run.sh", METADATA_FILE];

/// The scripts of a builder.
pub const SCRIPTS: &[&str] = &["build.sh", "run.sh"];

/// The build argument that carries a builder's base image.
pub const BASE_ARG: &str = "BASE_IMAGE";

/// Spec file names a fixture may have (as `harness::fixture` accepts them).
const FIXTURE_SPECS: &[&str] = &["pipeline.json", "pipeline.yaml", "pipeline.yml"];

/// One thing wrong with a builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file at fault (or the folder, when a file is missing from it).
    pub file: PathBuf,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// Which check found it (a short stable name, e.g. `set-e`, `shellcheck`).
    pub check: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    pub fn new(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            line,
            check,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The same problem with its file named relative to `base` when it lies
    /// under it (for shorter, clickable output).
    pub fn relative_to(&self, base: &Path) -> Problem {
        let mut problem = self.clone();
        if let Ok(relative) = self.file.strip_prefix(base) {
            if !relative.as_os_str().is_empty() {
                problem.file = relative.to_path_buf();
            }
        }
        problem
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file.display())?,
            None => write!(f, "{}: ", self.file.display())?,
        }
        write!(f, "{} (fix: {})", self.message, self.fix)
    }
}

/// Every static problem of the builder folder `dir`, sorted by file and line.
/// Needs no tool and no engine.
pub fn static_checks(dir: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !dir.is_dir() {
        problems.push(Problem::new(
            dir,
            None,
            "files",
            "the builder folder does not exist",
            "create it, or scaffold one with `cargo xtask new-builder NAME`",
        ));
        return problems;
    }
    check_required_files(dir, &mut problems);
    for script in SCRIPTS {
        let path = dir.join(script);
        if let Some(text) = read_text(&path, &mut problems) {
            scripts::check(&path, script, &text, &mut problems);
        }
    }
    let dockerfile = dir.join("Dockerfile");
    if let Some(text) = read_text(&dockerfile, &mut problems) {
        dockerfile::check(&dockerfile, &text, &mut problems);
        pinning::check_latest_mentions(&dockerfile, &text, &mut problems);
    }
    let metadata = dir.join(METADATA_FILE);
    if let Some(text) = read_text(&metadata, &mut problems) {
        metadata::check(dir, &metadata, &text, &mut problems);
        pinning::check_latest_mentions(&metadata, &text, &mut problems);
    }
    check_fixtures(dir, &mut problems);
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems
}

fn check_required_files(dir: &Path, problems: &mut Vec<Problem>) {
    for name in REQUIRED_FILES {
        let path = dir.join(name);
        if path.is_file() {
            continue;
        }
        let fix = match *name {
            "Dockerfile" => "add a Dockerfile that starts with `ARG BASE_IMAGE=<pinned image>` and `FROM ${BASE_IMAGE}` and copies build.sh and run.sh into its WORKDIR",
            "build.sh" => "add build.sh: the build phase runs `sh ./build.sh` in the image's WORKDIR with the source in /pfs/source; it must copy run.sh into /pfs/out",
            "run.sh" => "add run.sh: the run phase runs `sh /pfs/build/run.sh ARGS...`; it should `exec` the user's program with \"$@\"",
            _ => "add builder.yaml (see builders/python/builder.yaml), or scaffold a builder with `cargo xtask new-builder NAME`",
        };
        problems.push(Problem::new(
            path,
            None,
            "files",
            format!("the builder has no {name}"),
            fix,
        ));
    }
}

/// The file's text, or `None` when it is missing (already reported) or
/// unreadable (reported here).
fn read_text(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    if !path.is_file() {
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            problems.push(Problem::new(
                path,
                None,
                "files",
                format!("cannot read the file: {e}"),
                "make it readable",
            ));
            None
        }
    }
}

// ----- fixtures ---------------------------------------------------------------

fn check_fixtures(dir: &Path, problems: &mut Vec<Problem>) {
    let root = dir.join("fixtures");
    let fix = "add a fixture: fixtures/<name>/ with pipeline.json, source/, inputs/<repo>/ and expected/ (see builders/python/fixtures/hello)";
    let Ok(entries) = std::fs::read_dir(&root) else {
        problems.push(Problem::new(
            &root,
            None,
            "fixtures",
            "the builder has no fixtures/ folder: nothing proves that it builds and runs code",
            fix,
        ));
        return;
    };
    let mut folders: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut fixtures = 0;
    for folder in &folders {
        if FIXTURE_SPECS.iter().any(|s| folder.join(s).is_file()) {
            fixtures += 1;
        } else {
            problems.push(Problem::new(
                folder,
                None,
                "fixtures",
                "this fixture folder has no pipeline.json (or pipeline.yaml): `test-builder` would fail on it",
                "add the fixture's pipeline spec, or remove the folder",
            ));
        }
    }
    if fixtures == 0 {
        problems.push(Problem::new(
            &root,
            None,
            "fixtures",
            "fixtures/ holds no fixture: nothing proves that the builder builds and runs code",
            fix,
        ));
    }
}

/// The file name of `path` for messages (the whole path when it has none).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::testing::*;
    use super::*;

    #[test]
    fn a_good_builder_passes() {
        let (_root, dir) = good();
        assert_eq!(static_checks(&dir), Vec::<Problem>::new());
    }

    #[test]
    fn display_names_file_line_and_fix() {
        let p = Problem::new("b/run.sh", Some(3), "set-e", "no set -e", "add it");
        assert_eq!(p.to_string(), "b/run.sh:3: no set -e (fix: add it)");
        let p = Problem::new("b/run.sh", None, "set-e", "no set -e", "add it");
        assert_eq!(p.to_string(), "b/run.sh: no set -e (fix: add it)");
        assert_eq!(
            p.relative_to(Path::new("b")).file,
            Path::new("run.sh").to_path_buf()
        );
        assert_eq!(p.relative_to(Path::new("c")).file, p.file);
    }

    #[test]
    fn a_missing_folder_is_one_problem() {
        let root = tempfile::tempdir().unwrap();
        let problems = static_checks(&root.path().join("nope"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].check, "files");
    }

    #[test]
    fn missing_files_are_each_reported() {
        let (_root, dir) = good();
        std::fs::remove_file(dir.join("build.sh")).unwrap();
        std::fs::remove_file(dir.join("Dockerfile")).unwrap();
        let problems = found(&dir);
        assert!(
            problems.contains(&("build.sh".into(), None, "files")),
            "{problems:?}"
        );
        assert!(
            problems.contains(&("Dockerfile".into(), None, "files")),
            "{problems:?}"
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn fixtures_are_required() {
        let (_root, dir) = good();
        write(&dir, "fixtures/empty/source/main.sh", "", false);
        assert_eq!(found(&dir), one("empty", None, "fixtures"));
        std::fs::remove_dir_all(dir.join("fixtures")).unwrap();
        assert_eq!(found(&dir), one("fixtures", None, "fixtures"));
        write(&dir, "fixtures/README.md", "", false);
        assert_eq!(found(&dir), one("fixtures", None, "fixtures"));
    }

    #[test]
    fn every_problem_at_once() {
        let (_root, dir) = good();
        write(&dir, "build.sh", "echo no shebang\n", false);
        write(&dir, "Dockerfile", "FROM python\n", false);
        std::fs::remove_dir_all(dir.join("fixtures")).unwrap();
        let problems = found(&dir);
        let checks: BTreeSet<&str> = problems.iter().map(|p| p.2).collect();
        let expected: BTreeSet<&str> = [
            "exec-bit",
            "shebang",
            "set-e",
            "copy-run-sh",
            "base-arg",
            "pinned-images",
            "fixtures",
        ]
        .into_iter()
        .filter(|c| cfg!(unix) || *c != "exec-bit")
        .collect();
        assert_eq!(checks, expected, "{problems:?}");
    }
}
