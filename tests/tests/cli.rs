//! End-to-end tests of what the command line tells people: the summary
//! tables, `--junit` and `--json`, `--bless`, `--fixture NAME`, hints,
//! clean output folders, help, `--version` and completions. The `shtest`
//! builder of `tests/fixtures/builders` is built once (ephemeral) and
//! removed at the end, as in `pipelines.rs`. An argument filters scenarios.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use assert_cmd::Command;
use e2e::{fixtures_root, xtask, TEST_PREFIX};

fn pipeline(name: &str) -> PathBuf {
    fixtures_root().join("pipelines").join(name)
}

/// `cargo xtask` against the test builders.
fn cli() -> Command {
    let mut command = xtask();
    command
        .env("PACHBUILD_ROOT", fixtures_root())
        .env_remove("UPDATE_EXPECTED")
        .args(["--prefix", TEST_PREFIX]);
    command
}

/// `cargo xtask` where no engine answers.
fn offline() -> Command {
    let mut command = cli();
    command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    command
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(command: &mut Command) -> Ran {
    let output = command.output().expect("xtask runs");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A copy of `cross` whose expected output is wrong in two ways.
fn cross_with_wrong_expected(into: &Path) -> PathBuf {
    let dir = into.join("cross");
    copy_dir(&pipeline("cross"), &dir);
    std::fs::write(dir.join("expected/a-1.txt"), "A uno\n").unwrap();
    std::fs::remove_file(dir.join("expected/b-3.txt")).unwrap();
    dir
}

/// A copy of `datum-fails` that fails for real (no expect_failure), its bad
/// datum as a Python program missing a module would.
fn missing_module(into: &Path) -> PathBuf {
    let dir = into.join("missing-module");
    copy_dir(&pipeline("datum-fails"), &dir);
    std::fs::remove_file(dir.join("fixture.yaml")).unwrap();
    std::fs::write(
        dir.join("source/main.sh"),
        "if [ \"$(cat \"$numbers\")\" = bad ]; then echo \"ModuleNotFoundError: No module named 'yaml'\" >&2; exit 1; fi\ncp \"$numbers\" /pfs/out/\n",
    )
    .unwrap();
    dir
}

/// The summary table of a command's output, with times, paths and column
/// padding made stable.
fn stable_table(text: &str) -> String {
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("BUILDER") && !l.starts_with("PIPELINE"))
        .take_while(|l| !l.is_empty() && !l.starts_with("failed: "))
        .collect();
    let mut lines = Vec::new();
    for line in table {
        let words: Vec<String> = line
            .split("  ")
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| {
                let w = if w.contains("/logs/") {
                    "[LOG]".to_string()
                } else {
                    w.to_string()
                };
                // 1.2s built → [T] built
                w.split(' ')
                    .map(|part| {
                        let is_time =
                            part.ends_with('s') && part[..part.len() - 1].parse::<f64>().is_ok();
                        if is_time {
                            "[T]"
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.push(words.join(" | "));
    }
    lines.join("\n")
}

// ----- scenarios ------------------------------------------------------------

fn test_builder_summarises_and_reports_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    let cross = cross_with_wrong_expected(dir.path());
    let failing = missing_module(dir.path());
    let junit = dir.path().join("reports/junit.xml");
    let ran = run(cli()
        .args(["test-builder", "shtest", "--fixture", "hello", "--fixture"])
        .arg(&cross)
        .arg("--fixture")
        .arg(&failing)
        .arg("--junit")
        .arg(&junit)
        .arg("--json"));
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);

    // stdout is the JSON document alone.
    let json: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", ran.stdout, ran.stderr));
    assert_eq!(json["schema"], "pachbuild.results/1");
    assert_eq!(json["command"], "test-builder");
    assert_eq!(
        (json["passed"].as_u64(), json["failed"].as_u64()),
        (Some(1), Some(2))
    );
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[0]["name"], "hello");
    assert_eq!(cases[0]["status"], "passed");
    assert_eq!(cases[0]["datums"]["ran"], 6);
    assert!(cases[0]["build"]["seconds"].as_f64().is_some());
    let diff = &cases[1]["diff"];
    assert_eq!(diff["extra"], serde_json::json!(["b-3.txt"]));
    assert_eq!(diff["different"][0]["path"], "a-1.txt");
    assert!(diff["different"][0]["unified"]
        .as_str()
        .unwrap()
        .contains("-A uno\n+A one"));
    let failed = &cases[2];
    assert_eq!(failed["status"], "failed");
    let log = PathBuf::from(failed["log"].as_str().unwrap());
    assert!(log.is_file(), "{}", log.display());
    assert!(failed["hints"][0]
        .as_str()
        .unwrap()
        .contains("requirements.txt"));
    let rerun = failed["rerun"].as_str().unwrap();
    assert!(
        rerun.starts_with("cargo xtask run ")
            && rerun.contains("missing-module/pipeline.json --datum "),
        "{rerun}"
    );

    // The people's view went to stderr: the table, the failures, the closing line.
    assert!(ran.stderr.contains("-A uno"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("hint: Python cannot import `yaml`"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("rerun only this datum: cargo xtask run"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.trim_end().ends_with("1 passed, 2 failed"),
        "{}",
        ran.stderr
    );
    insta::assert_snapshot!("test_builder_table", stable_table(&ran.stderr));

    // The JUnit file: one case per fixture, failures with their message.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.attribute("tests"), Some("3"));
    assert_eq!(root.attribute("failures"), Some("2"));
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(failures[0]
        .attribute("message")
        .unwrap()
        .contains("differs from expected/"));
    assert!(failures[1]
        .text()
        .unwrap()
        .contains("No module named 'yaml'"));

    // The rerun command runs that datum alone.
    let words: Vec<&str> = rerun.split(' ').skip(2).collect();
    let again = run(cli().args(&words));
    assert_eq!(again.code, Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("datum 1/1"), "{}", again.stderr);
}

fn bless_writes_the_output_into_expected() {
    let dir = tempfile::tempdir().unwrap();
    let cross = cross_with_wrong_expected(dir.path());
    let ran = run(cli()
        .args(["test-builder", "--fixture"])
        .arg(&cross)
        .env("UPDATE_EXPECTED", "1"));
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("+A one"),
        "the diff is shown first: {}",
        ran.stderr
    );
    assert!(ran.stderr.contains("blessed "), "{}", ran.stderr);
    assert!(
        ran.stdout.contains("blessed: expected/ rewritten"),
        "{}",
        ran.stdout
    );
    let expected = harness::output::read_tree(&cross.join("expected")).unwrap();
    let original = harness::output::read_tree(&pipeline("cross").join("expected")).unwrap();
    assert_eq!(expected, original);
    let again = run(cli().args(["test-builder", "--fixture"]).arg(&cross));
    assert_eq!(again.code, Some(0), "{}", again.stdout);
}

fn run_reports_each_datum() {
    let dir = tempfile::tempdir().unwrap();
    let failing = missing_module(dir.path());
    let junit = dir.path().join("run.xml");
    let ran = run(cli()
        .args(["run", "--jobs", "1", "--json", "--junit"])
        .arg(&junit)
        .arg(failing.join("pipeline.json")));
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", ran.stdout, ran.stderr));
    assert_eq!(json["command"], "run");
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4, "build and 3 datums: {cases:#?}");
    assert_eq!(cases[0]["name"], "build");
    assert_eq!(cases[0]["status"], "passed");
    let bad = cases
        .iter()
        .find(|c| c["status"] == "failed")
        .expect("a failed datum");
    assert!(bad["name"].as_str().unwrap().contains("numbers:/bad.txt"));
    let rerun = bad["rerun"].as_str().unwrap();
    assert!(rerun.contains(" --datum "), "{rerun}");
    assert!(bad["hints"][0]
        .as_str()
        .unwrap()
        .contains("requirements.txt"));
    assert!(ran.stderr.contains("PIPELINE"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("rerun only this datum: "),
        "{}",
        ran.stderr
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().attribute("tests"), Some("4"));
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
}

fn the_output_folder_holds_only_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for _ in 0..2 {
        let ran = run(cli()
            .arg("run")
            .arg(pipeline("cross").join("pipeline.json"))
            .arg("--out")
            .arg(&out));
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        assert!(ran.stdout.starts_with("output: "), "{}", ran.stdout);
        assert!(ran.stderr.contains("PIPELINE  DATUM"), "{}", ran.stderr);
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a-1.txt", "a-2.txt", "a-3.txt", "b-1.txt", "b-2.txt", "b-3.txt"]
    );
    // A folder of the user's is never replaced.
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("keep.txt"), "mine").unwrap();
    let ran = run(cli()
        .arg("run")
        .arg(pipeline("cross").join("pipeline.json"))
        .arg("--out")
        .arg(&mine));
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
}

fn hints_where_users_trip() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let spec = dir.path().join("p.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "x"}, "transform": {"build": {"language": "shtset", "path": "src"}},
            "input": {"pfs": {"repo": "d", "glob": "/"}}}"#,
    )
    .unwrap();
    let ran = run(offline().arg("run").arg(&spec));
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("did you mean `shtest`? the builders here: shtest"),
        "{}",
        ran.stderr
    );

    // A command that bypasses run.sh is warned about (before anything runs).
    std::fs::create_dir_all(dir.path().join("inputs/d")).unwrap();
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "x"}, "transform": {"cmd": ["sh", "main.sh"], "build": {"language": "shtest", "path": "src"}},
            "input": {"pfs": {"repo": "d", "glob": "/"}}}"#,
    )
    .unwrap();
    let ran = run(offline().args(["run", "--list-datums"]).arg(&spec));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("does not run /pfs/build/run.sh"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("can't open file '/app/main.sh'"),
        "{}",
        ran.stderr
    );

    // Conflicting flags are refused.
    let ran = run(offline()
        .args(["run", "--list-datums", "--datum", "1"])
        .arg(pipeline("cross").join("pipeline.json")));
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(ran.stderr.contains("cannot be used with"), "{}", ran.stderr);

    // A fixture name that does not exist lists those that do.
    let ran = run(offline().args(["test-builder", "--fixture", "helo"]));
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("did you mean `hello`?") && ran.stderr.contains("shtest/hello"),
        "{}",
        ran.stderr
    );
}

fn validate_reports_each_check() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("validate.xml");
    let ran = run(offline()
        .args(["validate", "shtest", "--static-only", "--json", "--junit"])
        .arg(&junit));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let checks: Vec<&str> = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "static checks",
            "shellcheck",
            "hadolint",
            "image build",
            "image checks"
        ]
    );
    assert_eq!(json["cases"][3]["status"], "skipped");
    assert!(ran.stderr.contains("BUILDER  CHECK"), "{}", ran.stderr);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().attribute("tests"), Some("5"));
    assert_eq!(doc.root_element().attribute("failures"), Some("0"));
}

fn help_version_and_completions() {
    let ran = run(offline().arg("--help"));
    assert_eq!(ran.code, Some(0));
    for command in ["run ", "test-builder ", "validate ", "completions "] {
        assert!(
            ran.stdout.contains(&format!("  {command}")),
            "{}",
            ran.stdout
        );
    }
    let ran = run(offline().args(["run", "--help"]));
    assert!(ran.stdout.contains("Examples:"), "{}", ran.stdout);
    assert!(ran.stdout.contains("--junit <FILE>"), "{}", ran.stdout);
    let ran = run(offline().arg("--version"));
    assert_eq!(ran.code, Some(0));
    assert!(
        ran.stdout.starts_with("cargo xtask 0.") && ran.stdout.contains("(git "),
        "{}",
        ran.stdout
    );
    let ran = run(offline().args(["completions", "bash"]));
    assert_eq!(ran.code, Some(0));
    assert!(ran.stdout.contains("_xtask()"), "{}", ran.stdout);
    assert!(ran.stdout.contains("test-builder"));
}

// ----- main -------------------------------------------------------------------

use e2e::copy_dir;
use e2e::Scenario;

const SCENARIOS: &[Scenario] = &[
    ("hints_where_users_trip", hints_where_users_trip),
    ("validate_reports_each_check", validate_reports_each_check),
    ("help_version_and_completions", help_version_and_completions),
    (
        "test_builder_summarises_and_reports_for_ci",
        test_builder_summarises_and_reports_for_ci,
    ),
    (
        "bless_writes_the_output_into_expected",
        bless_writes_the_output_into_expected,
    ),
    ("run_reports_each_datum", run_reports_each_datum),
    (
        "the_output_folder_holds_only_the_output",
        the_output_folder_holds_only_the_output,
    ),
];

fn main() -> ExitCode {
    e2e::run_suite(SCENARIOS)
}
