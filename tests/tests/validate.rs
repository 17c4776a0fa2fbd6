//! End-to-end tests of `cargo xtask validate`: the static checks on the
//! official builders and on a broken copy of one (no engine needed), and the
//! image checks with the small `shtest` builder of `tests/fixtures/builders`
//! (on the engine; its images are removed at the end, also on failure).

use std::path::{Path, PathBuf};

use e2e::{repo_root, require_engine, xtask, ImageGuard};

use e2e::copy_dir;
use harness::engine::LABEL_KIND;
use predicates::prelude::*;

const PREFIX: &str = "pachbuild-test";
/// The images the shtest builder makes with [`PREFIX`] (see its builder.yaml).
const SHTEST_BASE: &str = "pachbuild-test/base-shtest:bookworm";
const SHTEST_IMAGE: &str = "pachbuild-test/shtest-build:0.0.1";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces `from` (which must be there) with `to` in a file.
fn edit(path: &Path, from: &str, to: &str) {
    let text = read(path);
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// The 1-based line of the first line of `path` that contains `needle`.
fn line_of(path: &Path, needle: &str) -> usize {
    read(path)
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{} has no line with {needle:?}", path.display()))
        + 1
}

/// `file:line: ` as validate prints it for a file outside the current folder.
fn at(path: &Path, line: usize) -> String {
    format!("{}:{line}: ", path.display())
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_official_builders_pass_the_static_checks_without_an_engine() {
    xtask()
        .args(["validate", "--static-only"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .success()
        .stdout(predicate::str::contains("python: ok (static checks"))
        .stdout(predicate::str::contains("go: ok (static checks"))
        .stdout(predicate::str::contains("rust: ok (static checks"))
        .stdout(predicate::str::contains(
            "validate: 0 problem(s) in 3 builder(s)",
        ));
}

#[test]
fn unknown_builders_are_bad_input() {
    xtask()
        .args(["validate", "--static-only", "python", "cobol"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("no builder \"cobol\""))
        .stderr(predicate::str::contains("python"))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn a_broken_builder_reports_every_problem_with_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let root_path = std::fs::canonicalize(root.path()).unwrap();
    let dir = root_path.join("builders/python");
    copy_dir(&repo_root().join("builders/python"), &dir);
    let (dockerfile, build, run, meta) = (
        dir.join("Dockerfile"),
        dir.join("build.sh"),
        dir.join("run.sh"),
        dir.join("builder.yaml"),
    );
    edit(&dockerfile, "FROM ${BASE_IMAGE}", "FROM python:latest");
    edit(&build, "set -eu\n", "");
    edit(
        &build,
        "cp \"$here/run.sh\" \"$out/run.sh\"",
        "cp \"$here/run.sh\" /tmp/run.sh",
    );
    edit(
        &run,
        "exec python3 main.py \"$@\"",
        "exec python3 main.py $*",
    );
    set_mode(&run, 0o644);
    edit(
        &meta,
        "upstream: python:3.11.9-slim-bookworm",
        "upstream: python",
    );
    edit(&meta, "    - python3 -m pip --version\n", "");
    edit(
        &meta,
        "  labels:\n",
        "  labels:\n    - org.example.missing:latest\n",
    );
    std::fs::remove_dir_all(dir.join("fixtures")).unwrap();

    let from_line = line_of(&dockerfile, "FROM python:latest");
    let assert = xtask()
        .args(["validate", "--static-only", "python"])
        .env("PACHBUILD_ROOT", &root_path)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("panicked").not());
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for expected in [
        format!(
            "{}the image `python:latest` is tagged `latest`",
            at(&dockerfile, from_line)
        ),
        format!(
            "{}the base is fixed in the Dockerfile",
            at(&dockerfile, from_line)
        ),
        format!(
            "{}`base.upstream`: \"python\" is not pinned",
            at(&meta, line_of(&meta, "upstream: python"))
        ),
        format!(
            "{}mentions an image tagged `latest`",
            at(&meta, line_of(&meta, "org.example.missing:latest"))
        ),
        format!(
            "{}run.sh passes its arguments on split or joined",
            at(&run, line_of(&run, "exec python3 main.py $*"))
        ),
        format!("{}: run.sh is not executable (mode 0644)", run.display()),
        format!("{}: build.sh has no `set -e`", build.display()),
        format!(
            "{}: build.sh does not copy run.sh into /pfs/out",
            build.display()
        ),
        format!(
            "{}: the builder has no fixtures/ folder",
            dir.join("fixtures").display()
        ),
        // Every problem carries its fix.
        "(fix: `chmod +x run.sh`".to_string(),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("python: ") && stdout.contains(" problem(s) (static checks"),
        "{stdout}"
    );
    assert!(stdout.contains(" problem(s) in 1 builder(s)"), "{stdout}");
    // The unchanged checks still pass: nothing about build.sh's exec bit,
    // the scripts' shebangs, or checks.files.
    for absent in [
        "build.sh is not executable",
        "does not start with a `#!`",
        "the shebang names",
        "checks.files",
    ] {
        assert!(
            !stdout.contains(absent),
            "unexpected {absent:?} in:\n{stdout}"
        );
    }
}

// ----- image checks on the engine --------------------------------------------

const GOOD_CHECKS: &str = "\
checks:
  commands:
    - sh -c true
    - test -d /app
  files:
    - path: /app/build.sh
      mode: \"0755\"
    - path: /app/run.sh
      mode: \"0755\"
  labels:
    - io.pachbuild.base-source
";

const BAD_CHECKS: &str = "\
checks:
  commands:
    - sh -c true
    - echo checking the impossible >&2; exit 3
  files:
    - path: /app/build.sh
      mode: \"0700\"
    - path: /app/run.sh
    - path: /app/missing.sh
  labels:
    - io.pachbuild.base-source
    - org.example.missing
";

/// A copy of the shtest builder under `<root>/builders/shtest`, with `checks`
/// replaced (the rest of builder.yaml, so its base, is unchanged) and a
/// fixture, so that it is complete. Returns its builder.yaml.
fn shtest_copy(root: &Path, checks: &str) -> PathBuf {
    let dir = root.join("builders/shtest");
    copy_dir(&repo_root().join("tests/fixtures/builders/shtest"), &dir);
    copy_dir(
        &repo_root().join("tests/fixtures/pipelines/cross"),
        &dir.join("fixtures/cross"),
    );
    let meta = dir.join("builder.yaml");
    let text = read(&meta);
    // Everything before `checks:` (which comes last), then the new checks.
    let head = text
        .find("\nchecks:")
        .map_or(text.as_str(), |i| &text[..=i]);
    std::fs::write(&meta, format!("{}\n{checks}", head.trim_end())).unwrap();
    meta
}

fn validate_shtest(root: &Path) -> assert_cmd::assert::Assert {
    xtask()
        .args([
            "--prefix",
            PREFIX,
            "validate",
            "--base-from",
            "debian",
            "shtest",
        ])
        .env("PACHBUILD_ROOT", root)
        .assert()
}

/// The image checks' containers of this test binary's session (the engine
/// is shared: another `validate` may be running beside it).
fn containers_of_validate() -> Vec<(String, String)> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let engine = require_engine().await;
        let ours = e2e::session_containers(&engine).await;
        engine
            .find_labelled(&format!("{LABEL_KIND}=validate"))
            .await
            .unwrap()
            .containers
            .into_iter()
            .filter(|c| ours.contains(c))
            .collect()
    })
}

/// One test, so that the two builds of the same image name never overlap.
#[test]
fn image_checks_run_against_the_built_image() {
    // Dropped in reverse order: the builder image first, then its base.
    let _base = ImageGuard(SHTEST_BASE.into());
    let _image = ImageGuard(SHTEST_IMAGE.into());

    // A complete builder whose image meets its checks.
    let good = tempfile::tempdir().unwrap();
    let good_root = std::fs::canonicalize(good.path()).unwrap();
    shtest_copy(&good_root, GOOD_CHECKS);
    validate_shtest(&good_root)
        .success()
        .stdout(predicate::str::contains(format!(
            "shtest: ok (static checks, shellcheck, hadolint, image {SHTEST_IMAGE} (built): 2 command(s), 2 file(s), 1 label(s))"
        )))
        .stdout(predicate::str::contains("validate: 0 problem(s) in 1 builder(s)"));

    // The same builder asking for what the image does not have.
    let bad = tempfile::tempdir().unwrap();
    let bad_root = std::fs::canonicalize(bad.path()).unwrap();
    let meta = shtest_copy(&bad_root, BAD_CHECKS);
    let assert = validate_shtest(&bad_root)
        .code(1)
        .stderr(predicate::str::contains("panicked").not());
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for expected in [
        format!(
            "{}`echo checking the impossible >&2; exit 3` failed in the image (exit code 3):",
            at(&meta, line_of(&meta, "exit 3"))
        ),
        "| checking the impossible".to_string(),
        format!(
            "{}`/app/build.sh` has mode 0755 in the image; builder.yaml expects 0700",
            at(&meta, line_of(&meta, "- path: /app/build.sh"))
        ),
        format!(
            "{}`/app/missing.sh` does not exist in the image",
            at(&meta, line_of(&meta, "- path: /app/missing.sh"))
        ),
        format!(
            "{}the image has no label `org.example.missing`",
            at(&meta, line_of(&meta, "- org.example.missing"))
        ),
        "shtest: 4 problem(s)".to_string(),
        "validate: 4 problem(s) in 1 builder(s)".to_string(),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(containers_of_validate(), [], "validate left containers");
}
