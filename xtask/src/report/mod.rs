//! What `test-builder`, `validate` and `run` found, case by case (a
//! fixture, a validation check, a datum): the summary table printed at the
//! end, the JUnit file of `--junit FILE` and the JSON document of `--json`.
//! Pure: built from the commands' results, no engine.

pub mod hints;
pub mod junit;
pub mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use harness::output::DirDiff;
use harness::{Error, Result};

use crate::commands::Out;

/// The version of the JSON document's shape (README, "Results as JSON").
pub const JSON_SCHEMA: &str = "pachbuild.results/1";

/// Lines of a failing phase's log kept with a case.
pub const LOG_TAIL_LINES: usize = 20;

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    /// Not run: its result was reused, a tool is missing, or an earlier
    /// failure stopped the job (the note says which).
    Skipped,
}

/// The build phase (or image build) of a case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Build {
    pub seconds: f64,
    /// The build output (or image) came from the cache.
    pub reused: bool,
}

/// The datums of a case's job: how many ran (until a failure stopped the
/// job, if one did) and how many were skipped with their output reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Datums {
    pub ran: usize,
    pub reused: usize,
}

/// One fixture, validation check or datum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// The builder (`test-builder`, `validate`) or the pipeline (`run`).
    pub suite: String,
    /// The fixture, the check, or the datum (`<number> <id>`, or `build`).
    pub name: String,
    pub status: Status,
    /// A word on the status: `failed as expected`, `reused`, `blessed`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The run phase (or check), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datums: Option<Datums>,
    /// The log of what failed (or of the case, when it has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// Why it failed, as printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last lines of the failing phase's log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    /// How the output differs from `expected/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<DirDiff>,
    /// What to try, from the log and the spec.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// The command that reruns only this (a failing datum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
}

impl Case {
    pub fn new(suite: impl Into<String>, name: impl Into<String>, status: Status) -> Case {
        Case {
            suite: suite.into(),
            name: name.into(),
            status,
            note: None,
            build: None,
            run_seconds: None,
            datums: None,
            log: None,
            message: None,
            log_tail: Vec::new(),
            diff: None,
            hints: Vec::new(),
            rerun: None,
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Case {
        self.note = Some(note.into());
        self
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Failed
    }

    /// The build phase from a pipeline report.
    pub fn with_report(mut self, report: &harness::pipeline::Report) -> Case {
        self.build = Some(Build {
            seconds: report.build_time.as_secs_f64(),
            reused: report.build_reused,
        });
        if !report.datum_times.is_empty() || !report.datums_reused.is_empty() {
            self.run_seconds = Some(report.datums_time.as_secs_f64());
            self.datums = Some(Datums {
                ran: report.datum_times.len(),
                reused: report.datums_reused.len(),
            });
        }
        self
    }

    /// The log, its tail and the hints of a failed phase.
    pub fn with_failure(mut self, failure: &harness::pipeline::PhaseFailure) -> Case {
        self.log = Some(failure.log_path.clone());
        self.log_tail = harness::text::last(&failure.tail, LOG_TAIL_LINES).to_vec();
        self.hints.extend(hints::log_file_hints(&failure.log_path));
        self
    }
}

/// Every case of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// `test-builder`, `validate`, `run`.
    pub command: &'static str,
    /// The headers of the suite and name columns (`BUILDER`, `FIXTURE`).
    pub columns: (&'static str, &'static str),
    pub cases: Vec<Case>,
    pub elapsed: Duration,
}

impl Results {
    pub fn new(command: &'static str, columns: (&'static str, &'static str)) -> Results {
        Results {
            command,
            columns,
            cases: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn count(&self, status: Status) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }

    pub fn passed(&self) -> usize {
        self.count(Status::Passed)
    }

    pub fn failed(&self) -> usize {
        self.count(Status::Failed)
    }

    pub fn skipped(&self) -> usize {
        self.count(Status::Skipped)
    }

    pub fn ok(&self) -> bool {
        self.failed() == 0
    }

    /// The `--json` document.
    pub fn to_json(&self) -> String {
        let document = serde_json::json!({
            "schema": JSON_SCHEMA,
            "command": self.command,
            "ok": self.ok(),
            "passed": self.passed(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "seconds": round(self.elapsed.as_secs_f64()),
            "cases": self.cases,
        });
        serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".into())
    }

    /// The summary: the table, then for each failure what to read and what
    /// to try. Paths are shown relative to `cwd` when inside it.
    pub fn summary(&self, cwd: &Path) -> String {
        let mut text = table::render(self, cwd);
        for case in self.cases.iter().filter(|c| c.failed()) {
            text.push_str(&format!("\nfailed: {} {}", case.suite, case.name));
            if let Some(message) = &case.message {
                let first = message.lines().next().unwrap_or("");
                let first = first
                    .trim_end_matches("; last lines of its log:")
                    .trim_end_matches(':');
                text.push_str(&format!(": {first}"));
            }
            if let Some(diff) = &case.diff {
                text.push_str(&format!("\n  output vs expected/: {}", diff.counts()));
            }
            if let Some(log) = &case.log {
                text.push_str(&format!("\n  log: {}", table::shown_path(log, cwd)));
            }
            for hint in &case.hints {
                text.push_str(&format!("\n  hint: {}", hint.replace('\n', "\n  ")));
            }
            if let Some(rerun) = &case.rerun {
                text.push_str(&format!("\n  rerun only this datum: {rerun}"));
            }
        }
        text
    }
}

fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// `--junit FILE` and `--json`, for the commands that report cases.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReportArgs {
    /// Also write the results as a JUnit XML file (one test case per
    /// fixture, validation check or datum; failures carry their message and
    /// log tail), for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print the results as one JSON document on stdout (schema in
    /// README.md, "Results for CI"); every other line goes to stderr. With
    /// `run --list-datums`: the datums as JSON instead.
    #[arg(long)]
    pub json: bool,
}

impl ReportArgs {
    /// Where the command's own lines go: stderr when stdout holds the JSON.
    pub fn out(&self) -> Out {
        if self.json {
            Out::Stderr
        } else {
            Out::Stdout
        }
    }

    /// Prints the summary to `summary_out`, writes the JUnit file and
    /// prints the JSON document, as asked.
    pub fn emit(&self, results: &Results, summary_out: Out) -> Result<()> {
        let cwd = std::env::current_dir().unwrap_or_default();
        if !results.cases.is_empty() {
            summary_out.line("");
            summary_out.line(results.summary(&cwd));
        }
        if let Some(path) = &self.junit {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create folder", parent, e))?;
            }
            std::fs::write(path, junit::render(results))
                .map_err(|e| Error::io("cannot write the JUnit report", path, e))?;
            summary_out.line(format_args!("JUnit report: {}", path.display()));
        }
        if self.json {
            outln!("{}", results.to_json());
        }
        Ok(())
    }
}

/// A command line as a user would type it (one quoting rule for all).
pub use harness::text::shell_line;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use harness::output::{Difference, FileDiff};

    /// Results of every kind, with fixed times and paths (for snapshots).
    pub fn sample() -> Results {
        let mut results = Results::new("test-builder", ("BUILDER", "FIXTURE"));
        results.elapsed = Duration::from_millis(4321);
        let mut hello = Case::new("shtest", "hello", Status::Passed);
        hello.build = Some(Build {
            seconds: 1.25,
            reused: false,
        });
        hello.run_seconds = Some(0.5);
        hello.datums = Some(Datums { ran: 4, reused: 2 });
        results.cases.push(hello);
        let mut expected =
            Case::new("shtest", "build-fails", Status::Passed).note("failed as expected");
        expected.build = Some(Build {
            seconds: 0.75,
            reused: false,
        });
        results.cases.push(expected);
        let mut diff = Case::new("shtest", "cross", Status::Failed);
        diff.build = Some(Build {
            seconds: 0.05,
            reused: true,
        });
        diff.run_seconds = Some(0.25);
        diff.datums = Some(Datums { ran: 6, reused: 0 });
        diff.message = Some("the output differs from expected/:\n...".into());
        diff.log = Some("/work/repo/target/pachbuild/logs/r1/cross".into());
        diff.diff = Some(DirDiff {
            missing: vec!["b-3.txt".into()],
            extra: vec![],
            different: vec![FileDiff {
                path: "a-1.txt".into(),
                difference: Difference::Text {
                    unified:
                        "--- expected/a-1.txt\n+++ actual/a-1.txt\n@@ -1 +1 @@\n-A uno\n+A one\n"
                            .into(),
                },
            }],
        });
        results.cases.push(diff);
        let mut datum = Case::new("shtest", "picky", Status::Failed);
        datum.build = Some(Build {
            seconds: 0.0625,
            reused: true,
        });
        datum.run_seconds = Some(1.0);
        datum.datums = Some(Datums { ran: 2, reused: 0 });
        datum.message = Some(
            "the run phase failed on datum 8f3a (numbers:/bad.txt) with exit code 3; last lines of its log:".into(),
        );
        datum.log = Some("/work/repo/target/pachbuild/logs/r1/picky/run.log".into());
        datum.log_tail = vec!["ModuleNotFoundError: No module named 'yaml'".into()];
        datum.hints = hints::log_hints(&datum.log_tail[0]);
        datum.rerun = Some(shell_line(&[
            "cargo",
            "xtask",
            "run",
            "tests/fixtures/pipelines/datum-fails/pipeline.json",
            "--datum",
            "8f3a",
        ]));
        results.cases.push(datum);
        results
    }

    #[test]
    fn counts_and_json() {
        let results = sample();
        assert_eq!(
            (results.passed(), results.failed(), results.skipped()),
            (2, 2, 0)
        );
        let value: serde_json::Value = serde_json::from_str(&results.to_json()).unwrap();
        assert_eq!(value["schema"], JSON_SCHEMA);
        assert_eq!(value["command"], "test-builder");
        assert_eq!(value["ok"], false);
        assert_eq!(value["passed"], 2);
        assert_eq!(value["failed"], 2);
        assert_eq!(value["seconds"], 4.321);
        let cases = value["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[0]["status"], "passed");
        assert_eq!(cases[0]["build"]["reused"], false);
        assert_eq!(cases[0]["datums"]["reused"], 2);
        assert!(cases[0].get("message").is_none());
        assert_eq!(cases[1]["note"], "failed as expected");
        assert_eq!(cases[2]["diff"]["missing"][0], "b-3.txt");
        assert_eq!(cases[2]["diff"]["different"][0]["kind"], "text");
        assert!(cases[3]["rerun"]
            .as_str()
            .unwrap()
            .ends_with("--datum 8f3a"));
        assert!(cases[3]["hints"][0]
            .as_str()
            .unwrap()
            .contains("requirements.txt"));
    }

    #[test]
    fn summary_snapshot() {
        insta::assert_snapshot!(sample().summary(Path::new("/work/repo")));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_line(&["run", "a b.json", "--input", "x=it's", "--datum", "3"]),
            r"run 'a b.json' --input 'x=it'\''s' --datum 3"
        );
        assert_eq!(shell_line(&[""]), "''");
    }
}
