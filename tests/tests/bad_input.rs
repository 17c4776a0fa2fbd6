//! Bad input (issue 11): one table of cases, each a command line run against
//! a fresh temporary folder holding a copy of the `shtest` builder (the
//! root, `root/builders/shtest`) and, when the case names one, a copy of a
//! pipeline of `tests/fixtures/pipelines` (at `p/`), broken by the case's
//! edits. Every case checks its exit code, that stderr names the file and
//! the field or argument and says how to fix it, that nothing panicked,
//! that no container of this session was left behind, and that every file
//! of the folder (but the run's own `root/target/`) is byte-identical
//! afterwards.
//!
//! A case that needs no engine runs with `DOCKER_HOST` pointing nowhere, so
//! a command that reaches for the engine before refusing bad input shows
//! up as exit code 3. Adding a case is one line in [`CASES`];
//! `BAD_INPUT=name` runs the cases whose names contain `name`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{
    ephemeral_runner, print_setup_line, repo_root, require_engine, session_containers, xtask,
    TEST_PREFIX,
};
use harness::engine::RunId;

/// One change to the temporary folder, made before the command runs.
/// Paths are relative to the folder.
#[derive(Clone, Copy)]
enum Edit {
    Write(&'static str, &'static str),
    Remove(&'static str),
    Link(&'static str, &'static str),
    Fifo(&'static str),
    Chmod(&'static str, u32),
    Replace(&'static str, &'static str, &'static str),
    Setup(fn(&Path)),
}
use e2e::copy_dir;
use Edit::*;

/// One bad input.
struct Case {
    name: &'static str,
    /// A pipeline of `tests/fixtures/pipelines` copied to `p/`; "" for none.
    pipeline: &'static str,
    edits: &'static [Edit],
    args: &'static [&'static str],
    code: i32,
    /// What the output must hold: file, field or argument, and the fix.
    /// Errors go to stderr; `validate`'s findings and `--list-datums` go
    /// to stdout, so both are searched.
    stderr: &'static [&'static str],
    /// The case may use the engine (a build or a datum that fails).
    engine: bool,
    /// A known gap: the case asserts today's behaviour, which should change.
    gap: Option<&'static str>,
}

const fn c(
    name: &'static str,
    pipeline: &'static str,
    edits: &'static [Edit],
    args: &'static [&'static str],
    code: i32,
    stderr: &'static [&'static str],
) -> Case {
    Case {
        name,
        pipeline,
        edits,
        args,
        code,
        stderr,
        engine: false,
        gap: None,
    }
}

impl Case {
    const fn engine(mut self) -> Self {
        self.engine = true;
        self
    }

    // Marks a known gap; none is open today, the marker stays for the next.
    #[allow(dead_code)]
    const fn gap(mut self, why: &'static str) -> Self {
        self.gap = Some(why);
        self
    }
}

const LIST: &[&str] = &["run", "p/s.json", "--list-datums"];
const LISTY: &[&str] = &["run", "p/s.yaml", "--list-datums"];
const LISTP: &[&str] = &["run", "p/pipeline.json", "--list-datums"];
const STATIC: &[&str] = &["validate", "shtest", "--static-only"];
const FIXTURE: &[&str] = &["test-builder", "--fixture", "p"];
const BUILDER: &str = "root/builders/shtest";

#[rustfmt::skip]
static CASES: &[Case] = &[
    // --- pipeline specs: syntax ---------------------------------------------------------
    c("json-truncated", "cross", &[Write("p/s.json", "{\"pipeline\": {\"name\": \"x\"")], LIST, 2, &["p/s.json:1:", "EOF", "fix:"]),
    c("json-trailing-comma", "cross", &[Write("p/s.json", "{\"pipeline\": {\"name\": \"x\",}}")], LIST, 2, &["p/s.json:1:", "trailing comma", "fix:"]),
    c("json-not-an-object", "cross", &[Write("p/s.json", "[1, 2]")], LIST, 2, &["p/s.json:1:", "fix:"]),
    c("json-empty-file", "cross", &[Write("p/s.json", "")], LIST, 2, &["p/s.json", "empty", "fix:"]),
    c("json-two-documents", "cross", &[Write("p/s.json", "{\"pipeline\": {\"name\": \"a\"}}\n{\"pipeline\": {\"name\": \"b\"}}")], LIST, 2, &["p/s.json", "several", "fix:"]),
    c("json-not-utf8", "cross", &[Setup(spec_not_utf8)], LIST, 2, &["p/s.json:1:", "UTF-8", "fix:"]),
    c("yaml-unclosed-flow", "cross", &[Write("p/s.yaml", "pipeline:\n  name: [x\n")], LISTY, 2, &["p/s.yaml:", "pipeline.name", "fix:"]),
    c("yaml-bad-indent", "cross", &[Write("p/s.yaml", "pipeline:\n  name: x\n   foo: 1\n")], LISTY, 2, &["p/s.yaml:3:", "fix:"]),
    c("yaml-tab-indent", "cross", &[Write("p/s.yaml", "pipeline:\n\tname: x\n")], LISTY, 2, &["p/s.yaml:2:", "fix:"]),
    // --- pipeline specs: wrong types ------------------------------------------------------
    c("name-is-a-number", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": 5}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json:1:", "pipeline.name", "integer", "fix:"]),
    c("glob-is-a-number", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": 3}}}"#)], LIST, 2, &["p/s.json:1:", "input.pfs.glob", "fix:"]),
    c("input-is-a-string", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": "letters"}"#)], LIST, 2, &["p/s.json:1:", "input", "fix:"]),
    c("cmd-is-a-string", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}, "cmd": "sh x"}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json:1:", "transform.cmd", "fix:"]),
    c("yaml-datum-tries-text", "cross", &[Write("p/s.yaml", "pipeline: {name: a}\ntransform: {build: {language: shtest, path: ./source}}\ninput: {pfs: {repo: letters, glob: /*}}\ndatum_tries: many\n")], LISTY, 2, &["p/s.yaml:4:", "datum_tries", "fix:"]),
    // --- pipeline specs: the platform's rules ----------------------------------------------
    c("name-empty", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": ""}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`pipeline.name`", "fix:"]),
    c("name-bad-characters", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "my pipe!"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`pipeline.name`", "fix:", "such as `my-pipe`"]),
    c("no-pipeline-field", "cross", &[Write("p/s.json", r#"{"transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`pipeline.name`", "fix:"]),
    c("unknown-language", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtset", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`transform.build.language`", "shtset", "fix:", "shtest"]),
    c("build-language-and-image", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "image": "me/b:1", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`transform.build`", "both", "fix:"]),
    c("build-neither", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"langauge": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`transform.build`", "langauge", "fix:"]),
    c("no-input", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}}"#)], LIST, 2, &["p/s.json", "`input`", "fix:"]),
    c("build-and-spout", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "spout": {}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`spout`", "fix:"]),
    c("input-two-kinds", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}, "cron": {"name": "t", "spec": "@every 1m"}}}"#)], LIST, 2, &["p/s.json", "`input`", "exactly one", "fix:"]),
    c("input-empty-node", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {}}"#)], LIST, 2, &["p/s.json", "`input`", "fix:"]),
    c("cross-empty", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"cross": []}}"#)], LIST, 2, &["p/s.json", "`input.cross`", "fix:"]),
    c("pfs-no-repo", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`input.pfs.repo`", "fix:"]),
    c("pfs-repo-bad-characters", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "my letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`input.pfs.repo`", "fix:"]),
    c("pfs-no-glob", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters"}}}"#)], LIST, 2, &["p/s.json", "`input.pfs.glob`", "fix:"]),
    c("glob-does-not-parse", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/[a"}}}"#)], LIST, 2, &["p/s.json", "`input.pfs.glob`", "never closed", "fix:"]),
    c("glob-matches-nothing", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/nothing*"}}}"#)], &["run", "p/s.json"], 2, &["p/s.json", "`input`", "/nothing*", "matched nothing", "fix:"]),
    c("duplicate-input-names", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"cross": [{"pfs": {"repo": "letters", "glob": "/*"}}, {"pfs": {"repo": "letters", "glob": "/*"}}]}}"#)], LIST, 2, &["p/s.json", "`input.cross[1].pfs.repo`", "fix:"]),
    c("reserved-input-name", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "name": "source", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "input.pfs", "source", "fix:"]),
    c("join-without-join-on", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"join": [{"pfs": {"repo": "letters", "glob": "/(*)"}}, {"pfs": {"repo": "digits", "glob": "/(*)", "join_on": "$1"}}]}}"#)], LIST, 2, &["p/s.json", "`input.join[0].pfs.join_on`", "fix:"]),
    c("join-on-missing-group", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"join": [{"pfs": {"repo": "letters", "glob": "/(*)", "join_on": "$2"}}, {"pfs": {"repo": "digits", "glob": "/(*)", "join_on": "$1"}}]}}"#)], LIST, 2, &["p/s.json", "`input.join[0].pfs.join_on`", "capture group 2", "fix:"]),
    c("group-without-group-by", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"group": [{"pfs": {"repo": "letters", "glob": "/*"}}]}}"#)], LIST, 2, &["p/s.json", "`input.group[0].pfs.group_by`", "fix:"]),
    c("cron-without-spec", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"cron": {"name": "tick"}}}"#)], LIST, 2, &["p/s.json", "`input.cron.spec`", "fix:"]),
    c("datum-tries-negative", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}, "datum_tries": -1}"#)], LIST, 2, &["p/s.json", "`datum_tries`", "fix:"]),
    c("datum-timeout-not-a-duration", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}, "datum_timeout": "5 minutes"}"#)], LIST, 2, &["p/s.json", "`datum_timeout`", "fix:"]),
    c("accept-return-code-300", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}, "accept_return_code": [300]}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`transform.accept_return_code[0]`", "fix:"]),
    c("err-stdin-without-err-cmd", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}, "err_stdin": ["x"]}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`transform.err_stdin`", "fix:"]),
    c("secret-env-var-without-key", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}, "secrets": [{"name": "s", "env_var": "S"}]}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "`transform.secrets[0].key`", "fix:"]),
    c("build-path-missing", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./nowhere"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "transform.build.path", "nowhere", "fix:"]),
    c("build-path-is-a-file", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source/main.sh"}}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["main.sh", "transform.build.path", "fix:"]),
    c("ordinary-without-image", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"cmd": ["sh", "x"]}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], LIST, 2, &["p/s.json", "transform.image", "fix:"]),
    c("pachignore-bad-glob", "cross", &[Write("p/source/.pachignore", "[oops\n")], LISTP, 2, &[".pachignore", "line 1", "fix:"]),
    c("secret-without-value", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}, "secrets": [{"name": "s", "mount_path": "/s"}]}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], &["run", "p/s.json"], 2, &["p/s.json", "`transform.secrets[0]`", "fix:", "--secret s=PATH"]).engine(),
    c("secret-without-value-offline", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}, "secrets": [{"name": "s", "mount_path": "/s"}]}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], &["run", "p/s.json"], 2, &["s.json", "transform.secrets[0]", "--secret s=PATH"]),
    // --- command-line arguments ---------------------------------------------------------
    c("unknown-builder", "", &[], &["test-builder", "nosuch"], 2, &["\"nosuch\"", "builders/nosuch", "fix:", "shtest"]),
    c("validate-unknown-builder", "", &[], &["validate", "nosuch", "--static-only"], 2, &["\"nosuch\"", "builders/nosuch", "fix:"]),
    c("input-without-equals", "cross", &[], &["run", "p/pipeline.json", "--input", "letters"], 2, &["--input \"letters\"", "NAME=DIR", "fix:"]),
    c("input-unknown-name", "cross", &[], &["run", "p/pipeline.json", "--input", "leters=p/inputs/letters"], 2, &["--input leters=", "letters", "fix:"]),
    c("input-unknown-name-far", "cross", &[], &["run", "p/pipeline.json", "--input", "zzz=p/inputs/letters"], 2, &["--input zzz=", "letters, numbers", "fix:"]),
    c("input-folder-missing", "cross", &[], &["run", "p/pipeline.json", "--input", "letters=p/nowhere"], 2, &["--input letters=p/nowhere", "no such folder", "fix:"]),
    c("secret-folder-missing", "cross", &[Write("p/s.json", r#"{"pipeline": {"name": "a"}, "transform": {"build": {"language": "shtest", "path": "./source"}, "secrets": [{"name": "s", "mount_path": "/s"}]}, "input": {"pfs": {"repo": "letters", "glob": "/*"}}}"#)], &["run", "p/s.json", "--secret", "s=p/nowhere"], 2, &["p/nowhere", "fix:"]).engine(),
    c("spec-missing", "cross", &[], &["run", "p/nope.json"], 2, &["p/nope.json", "fix:"]),
    c("out-inside-source", "cross", &[], &["run", "p/pipeline.json", "--out", "p/source/out"], 2, &["--out p/source/out", "source", "fix:"]),
    c("out-inside-input", "cross", &[], &["run", "p/pipeline.json", "--out", "p/inputs/letters/out"], 2, &["--out p/inputs/letters/out", "letters", "fix:"]),
    c("out-is-an-input", "cross", &[], &["run", "p/pipeline.json", "--out", "p/inputs/digits"], 2, &["--out p/inputs/digits", "fix:"]),
    c("out-holds-the-spec-folder", "cross", &[], &["run", "p/pipeline.json", "--out", "."], 2, &["--out .", "fix:"]),
    c("datum-unknown", "cross", &[], &["run", "p/pipeline.json", "--datum", "deadbeef"], 2, &["--datum deadbeef", "fix:", "7d94f61c21c5"]),
    c("datum-with-list-datums", "cross", &[], &["run", "p/pipeline.json", "--datum", "1", "--list-datums"], 2, &["--datum", "--list-datums"]),
    c("jobs-zero", "cross", &[], &["run", "p/pipeline.json", "--jobs", "0"], 2, &["--jobs", "1..=256"]),
    c("unknown-flag", "cross", &[], &["run", "p/pipeline.json", "--frobnicate"], 2, &["--frobnicate"]),
    c("fixture-unknown", "", &[], &["test-builder", "--fixture", "nosuch"], 2, &["--fixture nosuch", "fix:", "shtest/hello"]),
    // --- fixtures ---------------------------------------------------------------------------
    c("fixture-no-spec", "cross", &[Remove("p/pipeline.json")], FIXTURE, 2, &["p/pipeline.json", "no pipeline spec", "fix:"]),
    c("fixture-yaml-unknown-key", "cross", &[Write("p/fixture.yaml", "descriptoin: x\n")], FIXTURE, 2, &["p/fixture.yaml:1:", "descriptoin", "fix:"]),
    c("fixture-yaml-expect-failure-text", "cross", &[Write("p/fixture.yaml", "expect_failure: yes\n")], FIXTURE, 2, &["p/fixture.yaml:1:", "expect_failure", "fix:"]),
    c("fixture-yaml-unknown-phase", "cross", &[Write("p/fixture.yaml", "expect_failure:\n  phase: later\n")], FIXTURE, 2, &["p/fixture.yaml:2:", "expect_failure.phase", "fix:"]),
    c("fixture-yaml-images-number", "cross", &[Write("p/fixture.yaml", "images: 3\n")], FIXTURE, 2, &["p/fixture.yaml:1:", "images", "fix:"]),
    c("fixture-yaml-syntax", "cross", &[Write("p/fixture.yaml", "description: [\n")], FIXTURE, 2, &["p/fixture.yaml:", "fix:"]),
    // --- builder folders (`validate` reports its findings as a failed check: 1) --------
    c("builder-no-run-sh", "", &[Remove("root/builders/shtest/run.sh")], STATIC, 1, &["shtest/run.sh", "no run.sh", "fix:"]),
    c("builder-no-build-sh", "", &[Remove("root/builders/shtest/build.sh")], STATIC, 1, &["shtest/build.sh", "no build.sh", "fix:"]),
    c("builder-run-sh-not-executable", "", &[Chmod("root/builders/shtest/run.sh", 0o644)], STATIC, 1, &["shtest/run.sh", "not executable", "fix:"]),
    c("builder-build-sh-no-shebang", "", &[Replace("root/builders/shtest/build.sh", "#!/bin/sh\n", "")], STATIC, 1, &["shtest/build.sh:1", "shebang", "fix:"]),
    c("builder-yaml-missing-version", "", &[Replace("root/builders/shtest/builder.yaml", "version: 0.0.1\n", "")], STATIC, 1, &["shtest/builder.yaml", "version", "fix:"]),
    c("builder-yaml-version-list", "", &[Replace("root/builders/shtest/builder.yaml", "version: 0.0.1", "version: [1]")], STATIC, 1, &["shtest/builder.yaml:4", "version", "fix:"]),
    c("builder-yaml-unknown-field", "", &[Write("root/builders/shtest/builder.yaml", "language: shtest\nversion: 0.0.1\ncolour: red\nbase: {upstream: debian:bookworm-slim}\n")], STATIC, 1, &["shtest/builder.yaml:3", "colour", "fix:"]),
    c("builder-yaml-language-mismatch", "", &[Replace("root/builders/shtest/builder.yaml", "language: shtest", "language: other")], STATIC, 1, &["shtest/builder.yaml", "language", "fix:"]),
    c("builder-no-builder-yaml", "", &[Remove("root/builders/shtest/builder.yaml")], STATIC, 1, &["shtest/builder.yaml", "fix:"]),
    c("builder-dockerfile-no-base-arg", "", &[Replace("root/builders/shtest/Dockerfile", "ARG BASE_IMAGE=pachbuild-test/base-shtest:bookworm\nFROM ${BASE_IMAGE}", "FROM debian:bookworm-slim")], STATIC, 1, &["shtest/Dockerfile:1", "BASE_IMAGE", "fix:"]),
    c("builder-no-dockerfile", "", &[Remove("root/builders/shtest/Dockerfile")], STATIC, 1, &["shtest/Dockerfile", "fix:"]),
    c("test-builder-yaml-missing-version", "", &[Replace("root/builders/shtest/builder.yaml", "version: 0.0.1\n", "")], &["test-builder", "shtest"], 2, &["shtest/builder.yaml:", "version", "fix:"]),
    c("test-builder-failing-copy", "", &[Replace("root/builders/shtest/Dockerfile", "COPY build.sh run.sh /app/", "COPY build.sh run.sh missing.sh /app/")], &["test-builder", "shtest"], 1, &["missing.sh", "shtest/Dockerfile", "fix:"]).engine(),
    // --- file-system surprises in sources and inputs ------------------------------------
    c("source-symlink-loop", "cross", &[Link("p/source/loop", "loop")], LISTP, 0, &["`loop`", "left out"]),
    c("source-symlink-to-parent", "cross", &[Link("p/source/up", "..")], LISTP, 0, &["`up`", "left out"]),
    c("source-symlink-out-of-build-path", "cross", &[Link("p/source/passwd", "/etc/passwd")], LISTP, 0, &["`passwd`", "outside the build path", "left out"]),
    c("source-fifo", "cross", &[Fifo("p/source/fifo")], LISTP, 0, &["`fifo`", "not a regular file", "left out"]),
    c("source-device-link", "cross", &[Link("p/source/null", "/dev/null")], LISTP, 0, &["`null`", "/dev/null", "left out"]),
    c("source-non-utf8-name", "cross", &[Setup(source_non_utf8)], LISTP, 2, &["p/source/bad", "UTF-8", "fix:"]),
    c("input-symlink-loop", "cross", &[Link("p/inputs/letters/self", ".")], LISTP, 2, &["p/inputs/letters/self", "symlink loop", "fix:"]),
    // A symlink of an input that leads nowhere, or out of its folder (the
    // tool's environment, host files), is left out with a warning naming it.
    c("input-broken-symlink", "cross", &[Link("p/inputs/letters/gone.txt", "nowhere.txt")], LISTP, 0, &["`gone.txt` is a symlink to `nowhere.txt`, which does not exist; it is left out"]),
    c("input-symlink-out-of-folder", "cross", &[Link("p/inputs/letters/passwd", "/etc/passwd")], LISTP, 0, &["`passwd` is a symlink to `/etc/passwd`, outside the input folder"]),
    c("input-non-utf8-name", "cross", &[Setup(input_non_utf8)], LISTP, 2, &["p/inputs/letters/bad", "UTF-8", "fix:"]),
    // Fifos and devices in an input are not data: skipped, as the platform's upload skips them.
    c("input-fifo", "cross", &[Fifo("p/inputs/letters/fifo")], LISTP, 0, &["letters:/b.txt"]),
    c("input-device-link", "cross", &[Link("p/inputs/letters/null", "/dev/null")], LISTP, 0, &["letters:/b.txt"]),
    c("empty-files", "cross", &[Write("p/inputs/letters/empty.txt", ""), Write("p/source/empty.sh", "")], LISTP, 0, &["letters:/empty.txt"]),
    c("ten-thousand-input-files", "cross", &[Setup(ten_thousand_files)], &["run", "p/pipeline.json", "--list-datums", "--json"], 0, &[]),
    c("several-hundred-mb-input", "cross", &[Setup(big_input)], LISTP, 0, &["letters:/big.bin"]),
    // --- failing builds and datums (the engine runs them: 1, not 2) ---------------------
    c("datum-fails", "datum-fails", &[], &["run", "p/pipeline.json", "--datum-tries", "1", "--out", "out"], 1, &["numbers:/bad.txt", "refusing bad input", "--datum"]).engine(),
    c("build-fails", "build-fails", &[], &["run", "p/pipeline.json", "--out", "out"], 1, &["Syntax error", "build"]).engine(),
];

fn spec_not_utf8(dir: &Path) {
    std::fs::write(
        dir.join("p/s.json"),
        b"{\"pipeline\": {\"name\": \"\xff\"}}",
    )
    .unwrap();
}

fn non_utf8_name(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"bad\xff.txt");
    std::fs::write(dir.join(name), "x\n").unwrap();
}

fn source_non_utf8(dir: &Path) {
    non_utf8_name(&dir.join("p/source"));
}

fn input_non_utf8(dir: &Path) {
    non_utf8_name(&dir.join("p/inputs/letters"));
}

fn ten_thousand_files(dir: &Path) {
    let many = dir.join("p/inputs/letters/many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..10_000 {
        std::fs::write(many.join(format!("{i:05}.txt")), format!("{i}\n")).unwrap();
    }
}

fn big_input(dir: &Path) {
    // 300 MB, written for real (a sparse file would spare the disk a test
    // means to load).
    use std::io::Write;
    let mut file = std::fs::File::create(dir.join("p/inputs/letters/big.bin")).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..300 {
        file.write_all(&chunk).unwrap();
    }
}

fn apply(dir: &Path, edit: &Edit) {
    match *edit {
        Write(path, text) => {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Remove(path) => {
            let path = dir.join(path);
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
        Link(path, target) => std::os::unix::fs::symlink(target, dir.join(path)).unwrap(),
        Fifo(path) => {
            let status = std::process::Command::new("mkfifo")
                .arg(dir.join(path))
                .status()
                .unwrap();
            assert!(status.success(), "mkfifo {path}");
        }
        Chmod(path, mode) => {
            std::fs::set_permissions(dir.join(path), std::fs::Permissions::from_mode(mode)).unwrap()
        }
        Replace(path, from, to) => {
            let path = dir.join(path);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(from), "{} holds no {from:?}", path.display());
            std::fs::write(&path, text.replace(from, to)).unwrap();
        }
        Setup(setup) => setup(dir),
    }
}

/// Every entry under `dir` (but `root/target`, the run's own) with its
/// kind, mode and a hash of its content or link target. Fifos are not read.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new("root/target") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            let what = if meta.is_dir() {
                walk(root, &path, out);
                format!("dir {mode:o}")
            } else if meta.is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_file() {
                let mut hasher = std::hash::DefaultHasher::new();
                std::fs::read(&path).unwrap().hash(&mut hasher);
                format!("file {mode:o} {} {:x}", meta.len(), hasher.finish())
            } else {
                format!("special {mode:o}")
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs one case; the problems found, empty when it passed.
fn run_case(
    case: &Case,
    rt: &tokio::runtime::Runtime,
    engine: &harness::engine::Engine,
) -> (Vec<String>, String) {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = tmp.path();
    let fixtures = repo_root().join("tests/fixtures");
    copy_dir(&fixtures.join("builders/shtest"), &dir.join(BUILDER));
    if !case.pipeline.is_empty() {
        copy_dir(
            &fixtures.join("pipelines").join(case.pipeline),
            &dir.join("p"),
        );
    }
    for edit in case.edits {
        apply(dir, edit);
    }
    let before = snapshot(dir);
    let containers_before = rt.block_on(session_containers(engine));

    let mut command = xtask();
    command
        .current_dir(dir)
        .env("PACHBUILD_ROOT", dir.join("root"))
        .env("PACHBUILD_PREFIX", TEST_PREFIX)
        .env_remove("UPDATE_EXPECTED")
        .env_remove("RUST_BACKTRACE")
        .timeout(Duration::from_secs(300))
        .args(case.args);
    if !case.engine {
        command.env(
            "DOCKER_HOST",
            "unix:///nonexistent/pachbuild-bad-input.sock",
        );
    }
    let output = command.output().expect("xtask runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();

    let mut problems = Vec::new();
    if output.status.code() != Some(case.code) {
        problems.push(format!(
            "exit code {:?}, expected {}",
            output.status.code(),
            case.code
        ));
    }
    let both = format!("{stderr}\n{stdout}");
    for wanted in case.stderr {
        if !both.contains(wanted) {
            problems.push(format!("the output lacks {wanted:?}"));
        }
    }
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if stderr.contains(bad) || stdout.contains(bad) {
            problems.push(format!("the output holds {bad:?}"));
        }
    }
    let containers_after = rt.block_on(session_containers(engine));
    let new: Vec<_> = containers_after
        .iter()
        .filter(|c| !containers_before.contains(c))
        .collect();
    if !new.is_empty() {
        problems.push(format!("containers left behind: {new:?}"));
    }
    let after = snapshot(dir);
    if before != after {
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .take(5)
            .map(|k| format!("{}: {:?} -> {:?}", k.display(), before.get(k), after.get(k)))
            .collect();
        problems.push(format!("the folder changed: {}", changed.join("; ")));
    }
    (problems, both)
}

#[test]
fn bad_input_table() {
    let started = Instant::now();
    let filter = std::env::var("BAD_INPUT").unwrap_or_default();
    let selected: Vec<&Case> = CASES
        .iter()
        .filter(|c| c.name.contains(filter.as_str()))
        .collect();
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "two cases share a name");

    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let engine = rt.block_on(require_engine());
    assert!(e2e::xtask_binary().is_file());
    // The engine cases run with the shtest builder image, built once here
    // (ephemeral) and removed at the end.
    let run_id = RunId::new();
    if selected.iter().any(|c| c.engine) {
        let runner = ephemeral_runner(
            &engine,
            &repo_root().join("tests/fixtures/builders"),
            &run_id,
        );
        rt.block_on(runner.ensure_builder("shtest", &mut |line| print_setup_line("shtest", line)))
            .expect("the shtest builder image builds");
    }

    let mut failures = Vec::new();
    for case in &selected {
        let case_started = Instant::now();
        let (problems, stderr) = run_case(case, &rt, &engine);
        let gap = case
            .gap
            .map(|g| format!(" (known gap: {g})"))
            .unwrap_or_default();
        eprintln!(
            "{:<40} {} {:.1}s{gap}",
            case.name,
            if problems.is_empty() {
                "ok    "
            } else {
                "FAILED"
            },
            case_started.elapsed().as_secs_f64()
        );
        if !problems.is_empty() {
            failures.push(format!(
                "--- {}: {}\n{}",
                case.name,
                problems.join("; "),
                stderr.trim_end()
            ));
        }
    }
    rt.block_on(async {
        let _ = engine.clean_up_run(&run_id).await;
        if !failures.is_empty() {
            let _ =
                tokio::time::timeout(Duration::from_secs(60), e2e::sweep_session(&engine)).await;
        }
    });
    eprintln!(
        "{} case(s), {} failed, {:.1}s",
        selected.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad-input case(s) failed:\n{}",
        failures.len(),
        selected.len(),
        failures.join("\n")
    );
}
