//! Fixtures: a pipeline spec, its source, its input data and the exact
//! output the run must leave (or the failure it must end in). The format is
//! in DESIGN.md; `fixture.yaml` is optional.
//!
//! ```text
//! <fixture>/
//!   pipeline.json | pipeline.yaml
//!   source/            where transform.build.path points
//!   inputs/<repo>/...  the data of each pfs input
//!   expected/          the exact output tree (absent = no output)
//!   fixture.yaml       description; expect_failure {phase, message, datum}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::output::{self, Tree};
use crate::pipeline::{Phase, PhaseFailure, Report};

/// The optional `fixture.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureConfig {
    /// One line saying what the fixture proves.
    #[serde(default)]
    pub description: String,
    /// The run must fail this way instead of producing `expected/`.
    #[serde(default)]
    pub expect_failure: Option<ExpectFailure>,
    /// Images built from folders of the fixture before it runs, e.g. a
    /// custom builder named by `transform.build.image`.
    #[serde(default)]
    pub images: Vec<FixtureImage>,
}

/// An image a fixture builds for itself. Its Dockerfile receives the
/// official builder image of the fixture's language as `BASE_IMAGE`, so a
/// custom builder can extend the official one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureImage {
    /// The tag the spec uses.
    pub tag: String,
    /// The folder holding the Dockerfile, relative to the fixture.
    pub context: PathBuf,
}

/// An expected failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectFailure {
    /// `build` or `run`.
    pub phase: ExpectedPhase,
    /// Text that must appear in the failing phase's log.
    pub message: String,
    /// Run phase: text that must appear in the failing datum's description
    /// (`<input>:<matched path>`), e.g. `numbers:/bad.txt`.
    #[serde(default)]
    pub datum: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedPhase {
    Build,
    Run,
}

/// A fixture folder.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub spec_path: PathBuf,
    pub config: FixtureConfig,
}

impl Fixture {
    /// Reads the fixture in `dir`.
    pub fn load(dir: &Path) -> Result<Fixture> {
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "{}: no such fixture folder\n  fix: pass a folder holding pipeline.json (or .yaml), source/ and expected/",
                dir.display()
            )));
        }
        let spec_path = ["pipeline.json", "pipeline.yaml", "pipeline.yml"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::invalid(
                    dir.join("pipeline.json"),
                    "pipeline.json",
                    "the fixture has no pipeline spec",
                    "add pipeline.json or pipeline.yaml with transform.build and an input",
                )
            })?;
        let config_path = dir.join("fixture.yaml");
        let config = if config_path.is_file() {
            crate::yaml::read_document(&config_path)?
        } else {
            FixtureConfig::default()
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Fixture {
            name,
            dir: dir.to_path_buf(),
            spec_path,
            config,
        })
    }

    /// Every fixture under `<builder>/fixtures/`, sorted by name.
    pub fn discover(builder_dir: &Path) -> Result<Vec<Fixture>> {
        let root = builder_dir.join("fixtures");
        if !root.is_dir() {
            return Ok(Vec::new());
        }
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .with_path("cannot list fixtures in", &root)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        dirs.iter().map(|d| Fixture::load(d)).collect()
    }

    /// Repo name → folder, for every folder under `inputs/`.
    pub fn repos(&self) -> Result<BTreeMap<String, PathBuf>> {
        repos_in(&self.dir.join("inputs"))
    }

    /// The expected output tree (`expected/`; empty when absent).
    pub fn expected(&self) -> Result<Tree> {
        let dir = self.dir.join("expected");
        if dir.is_dir() {
            output::read_tree(&dir)
        } else {
            Ok(Tree::new())
        }
    }

    /// Whether the run's report is what the fixture expects. `Err` holds a
    /// readable account of the difference.
    pub fn judge(&self, report: &Report) -> Result<std::result::Result<(), String>> {
        Ok(self.verdict(report)?.result)
    }

    /// [`Fixture::judge`], with the output's difference from `expected/`
    /// kept apart for reports.
    pub fn verdict(&self, report: &Report) -> Result<Verdict> {
        let (result, diff) = match (&self.config.expect_failure, &report.output) {
            (None, Ok(actual)) => {
                // From disk, file by file: an output may be larger than memory.
                let diff = self.compare_output(actual.path())?;
                if diff.is_empty() {
                    (Ok(()), None)
                } else {
                    (
                        Err(format!("the output differs from expected/:\n{diff}")),
                        Some(diff),
                    )
                }
            }
            (None, Err(failure)) => (Err(failure.to_string()), None),
            (Some(expect), Ok(_)) => (
                Err(format!(
                    "expected the {} phase to fail with {:?}, but the pipeline succeeded",
                    phase_name(expect.phase),
                    expect.message
                )),
                None,
            ),
            (Some(expect), Err(failure)) => (judge_failure(expect, failure), None),
        };
        Ok(Verdict { result, diff })
    }

    /// How the output folder `actual` differs from `expected/` (empty when
    /// it does not).
    pub fn compare_output(&self, actual: &Path) -> Result<output::DirDiff> {
        output::compare_dirs(&self.dir.join("expected"), actual)
    }

    /// Makes `expected/` a copy of the output folder `actual` (`--bless`):
    /// the new tree is written beside the old one and swapped in, so an
    /// error leaves the old one whole. An empty output leaves no `expected/`.
    pub fn bless(&self, actual: &Path) -> Result<()> {
        let expected = self.dir.join("expected");
        let fresh = self.dir.join(".expected.new");
        let old = self.dir.join(".expected.old");
        for leftover in [&fresh, &old] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).with_path("remove", leftover)?;
            }
        }
        output::copy_dir(actual, &fresh)?;
        if expected.exists() {
            std::fs::rename(&expected, &old).with_path("move aside", &expected)?;
        }
        let has_files = std::fs::read_dir(&fresh)
            .with_path("read folder", &fresh)?
            .next()
            .is_some();
        if has_files {
            std::fs::rename(&fresh, &expected).with_path("write", &expected)?;
        } else {
            std::fs::remove_dir_all(&fresh).with_path("remove", &fresh)?;
        }
        if old.exists() {
            std::fs::remove_dir_all(&old).with_path("remove", &old)?;
        }
        Ok(())
    }
}

/// What [`Fixture::verdict`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Ok` when the fixture passed; else why not, readably.
    pub result: std::result::Result<(), String>,
    /// How the output differs from `expected/`, when the pipeline
    /// succeeded and that is why the fixture failed.
    pub diff: Option<output::DirDiff>,
}

fn phase_name(phase: ExpectedPhase) -> &'static str {
    match phase {
        ExpectedPhase::Build => "build",
        ExpectedPhase::Run => "run",
    }
}

fn judge_failure(
    expect: &ExpectFailure,
    failure: &PhaseFailure,
) -> std::result::Result<(), String> {
    let wanted = match expect.phase {
        ExpectedPhase::Build => Phase::Build,
        ExpectedPhase::Run => Phase::Run,
    };
    if failure.phase != wanted {
        return Err(format!(
            "expected the {} phase to fail, but the {} phase failed:\n{failure}",
            phase_name(expect.phase),
            failure.phase
        ));
    }
    let log = std::fs::read_to_string(&failure.log_path).unwrap_or_default();
    if !log.contains(&expect.message) {
        return Err(format!(
            "the {} phase failed as expected, but its log lacks {:?}:\n{failure}",
            failure.phase, expect.message
        ));
    }
    if let Some(datum) = &expect.datum {
        let described = failure
            .datum
            .as_ref()
            .map(|(d, _)| d.as_str())
            .unwrap_or("");
        if !described.contains(datum.as_str()) {
            return Err(format!(
                "expected datum {datum:?} to fail, but it was {described:?}:\n{failure}"
            ));
        }
    }
    Ok(())
}

/// Repo name → folder for each sub-folder of `inputs` (none when absent).
pub fn repos_in(inputs: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut repos = BTreeMap::new();
    if !inputs.is_dir() {
        return Ok(repos);
    }
    for entry in std::fs::read_dir(inputs).with_path("cannot list", inputs)? {
        let path = entry.with_path("cannot list", inputs)?.path();
        if path.is_dir() {
            if let Some(name) = path.file_name() {
                repos.insert(name.to_string_lossy().into_owned(), path);
            }
        }
    }
    Ok(repos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Entry;
    use crate::pipeline::OutputDir;

    fn fixture(dir: &Path, config: &str) -> Fixture {
        std::fs::write(dir.join("pipeline.json"), "{}").unwrap();
        if !config.is_empty() {
            std::fs::write(dir.join("fixture.yaml"), config).unwrap();
        }
        Fixture::load(dir).unwrap()
    }

    fn report(output: std::result::Result<Tree, PhaseFailure>) -> Report {
        let scratch = std::env::temp_dir();
        Report::with_output(output.map(|tree| OutputDir::from_tree(&tree, &scratch).unwrap()))
    }

    fn failure(dir: &Path, phase: Phase, datum: Option<&str>, log: &str) -> PhaseFailure {
        let log_path = dir.join("x.log");
        std::fs::write(&log_path, log).unwrap();
        PhaseFailure {
            phase,
            datum: datum.map(|d| (d.to_string(), "abc".to_string())),
            exit_code: 1,
            why: None,
            log_path,
            tail: vec![],
        }
    }

    #[test]
    fn output_must_equal_expected() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(dir.path(), "description: hi\n");
        std::fs::create_dir_all(dir.path().join("expected")).unwrap();
        std::fs::write(dir.path().join("expected/a.txt"), "1\n").unwrap();
        let good = Tree::from([(PathBuf::from("a.txt"), Entry::file("1\n"))]);
        assert_eq!(f.judge(&report(Ok(good))).unwrap(), Ok(()));
        let bad = Tree::from([(PathBuf::from("a.txt"), Entry::file("2\n"))]);
        let why = f.judge(&report(Ok(bad))).unwrap().unwrap_err();
        assert!(why.contains("a.txt"), "{why}");
    }

    #[test]
    fn expected_failures_check_phase_message_and_datum() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(
            dir.path(),
            "expect_failure:\n  phase: run\n  message: boom\n  datum: \"numbers:/bad.txt\"\n",
        );
        let ok = failure(
            dir.path(),
            Phase::Run,
            Some("numbers:/bad.txt"),
            "x\nboom\n",
        );
        assert_eq!(f.judge(&report(Err(ok))).unwrap(), Ok(()));
        let wrong_datum = failure(dir.path(), Phase::Run, Some("numbers:/a.txt"), "boom");
        assert!(f.judge(&report(Err(wrong_datum))).unwrap().is_err());
        let wrong_phase = failure(dir.path(), Phase::Build, None, "boom");
        assert!(f
            .judge(&report(Err(wrong_phase)))
            .unwrap()
            .unwrap_err()
            .contains("build phase failed"));
        let wrong_message = failure(dir.path(), Phase::Run, Some("numbers:/bad.txt"), "other");
        assert!(f
            .judge(&report(Err(wrong_message)))
            .unwrap()
            .unwrap_err()
            .contains("lacks"));
        assert!(f
            .judge(&report(Ok(Tree::new())))
            .unwrap()
            .unwrap_err()
            .contains("succeeded"));
    }

    #[test]
    fn the_verdict_keeps_the_diff_and_bless_rewrites_expected() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(dir.path(), "");
        std::fs::create_dir_all(dir.path().join("expected/sub")).unwrap();
        std::fs::write(dir.path().join("expected/a.txt"), "1\n").unwrap();
        std::fs::write(dir.path().join("expected/sub/gone.txt"), "g").unwrap();
        let actual = Tree::from([
            (PathBuf::from("a.txt"), Entry::file("2\n")),
            (PathBuf::from("new.bin"), Entry::file(vec![0u8, 1])),
        ]);
        let report = report(Ok(actual));
        let verdict = f.verdict(&report).unwrap();
        let diff = verdict.diff.expect("a diff");
        assert_eq!(diff.missing, [PathBuf::from("sub/gone.txt")]);
        assert_eq!(diff.extra, [PathBuf::from("new.bin")]);
        assert_eq!(diff.different.len(), 1);
        assert!(verdict.result.unwrap_err().contains("+2"));

        let out = report.output.as_ref().unwrap().path();
        f.bless(out).unwrap();
        assert!(f.compare_output(out).unwrap().is_empty());
        assert!(!dir.path().join("expected/sub").exists());
        assert!(!dir.path().join(".expected.new").exists());
        assert_eq!(f.verdict(&report).unwrap().result, Ok(()));

        // An empty output leaves no expected/.
        let empty = tempfile::tempdir().unwrap();
        f.bless(empty.path()).unwrap();
        assert!(!dir.path().join("expected").exists());
    }

    #[test]
    fn unknown_fixture_fields_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pipeline.json"), "{}").unwrap();
        std::fs::write(dir.path().join("fixture.yaml"), "expect_fail: {}\n").unwrap();
        let err = Fixture::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("fixture.yaml"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn fixture_images_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(
            dir.path(),
            "images:\n  - tag: example.org/x:1\n    context: custom-builder\n",
        );
        assert_eq!(f.config.images.len(), 1);
        assert_eq!(f.config.images[0].tag, "example.org/x:1");
        assert_eq!(f.config.images[0].context, Path::new("custom-builder"));
    }

    #[test]
    fn a_folder_without_spec_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Fixture::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no pipeline spec"), "{err}");
    }
}
