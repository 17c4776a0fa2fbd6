//! End-to-end tests of `cargo xtask run` and `cargo xtask test-builder` on a
//! real engine, with the small `shtest` builder of `tests/fixtures/builders`.
//!
//! A custom test main builds the builder image once (labelled ephemeral, so
//! the final clean-up removes it), runs each scenario, and prints
//! `N passed, M failed`. An argument filters scenarios by name.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use assert_cmd::Command;
use e2e::process::run_id_of;
use e2e::{fixtures_root, require_engine, xtask, TEST_PREFIX as PREFIX};
use harness::engine::labels::{LABEL_CACHE_SCOPE, LABEL_KIND, LABEL_RUN};
use harness::engine::RunId;
use predicates::prelude::*;

fn pipeline(name: &str) -> PathBuf {
    fixtures_root().join("pipelines").join(name)
}

/// `cargo xtask` against the test builders.
fn cli() -> Command {
    let mut command = xtask();
    command
        .env("PACHBUILD_ROOT", fixtures_root())
        .args(["--prefix", PREFIX]);
    command
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

/// Containers of this test binary's session: the engine is shared, and
/// other runs may start or end containers at any time.
fn session_containers() -> Vec<(String, String)> {
    runtime().block_on(async { e2e::session_containers(&require_engine().await).await })
}

/// Containers of one run (other users of the engine are left out).
fn containers_of(run: &str) -> Vec<(String, String)> {
    runtime().block_on(async {
        require_engine()
            .await
            .find_labelled(&format!("{LABEL_RUN}={run}"))
            .await
            .unwrap()
            .containers
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ----- scenarios ------------------------------------------------------------

fn every_pipeline_fixture_passes() {
    let mut command = cli();
    command.arg("test-builder");
    for name in [
        "cross",
        "nested-glob",
        "stdin",
        "env",
        "build-fails",
        "datum-fails",
        "worker-state",
        "overlap",
        "datum-semantics",
        "datum-timeout",
        "files-and-env",
        "working-dir",
        "ordinary",
        "sandbox",
        "run-as-user",
        "join",
        "group",
        "datum-isolation",
    ] {
        command.arg("--fixture").arg(pipeline(name));
    }
    command
        .assert()
        .success()
        .stdout(predicate::str::contains("18 passed, 0 failed"));
}

fn a_wrong_expected_output_fails_with_a_diff() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&pipeline("cross"), copy.path());
    std::fs::write(copy.path().join("expected/a-1.txt"), "A uno\n").unwrap();
    std::fs::remove_file(copy.path().join("expected/b-3.txt")).unwrap();
    cli()
        .arg("test-builder")
        .arg("--fixture")
        .arg(copy.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL"))
        .stdout(predicate::str::contains("-A uno"))
        .stdout(predicate::str::contains("+A one"))
        .stdout(predicate::str::contains("extra files"))
        .stdout(predicate::str::contains("b-3.txt"))
        .stdout(predicate::str::contains("0 passed, 1 failed"));
}

fn run_writes_the_merged_output() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("result");
    cli()
        .args(["run"])
        .arg(pipeline("cross").join("pipeline.json"))
        .arg("--out")
        .arg(&out_dir)
        .assert()
        .success()
        .stderr(predicate::str::contains("build | shtest: build done"))
        .stderr(predicate::str::contains("datum 6/6"));
    for (file, text) in [("a-1.txt", "A one\n"), ("b-3.txt", "B three\n")] {
        assert_eq!(read(&out_dir.join(file)), text);
    }
    // A second run replaces the output it made: one datum this time, so the
    // other files of the first must go; a stray file and a changed one too.
    std::fs::write(out_dir.join("stray.txt"), "not from a run\n").unwrap();
    std::fs::write(out_dir.join("b-1.txt"), "stale\n").unwrap();
    cli()
        .args(["run", "--datum", "2"])
        .arg(pipeline("cross").join("pipeline.json"))
        .arg("--out")
        .arg(&out_dir)
        .assert()
        .success();
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["b-1.txt"], "only the second run's output is left");
    assert_eq!(read(&out_dir.join("b-1.txt")), "B one\n");
}

fn list_datums_needs_no_engine_and_runs_nothing() {
    cli()
        .args(["run", "--list-datums"])
        .arg(pipeline("cross").join("pipeline.json"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .success()
        .stdout(predicate::str::contains("6 datum(s) for pairs"))
        .stdout(predicate::str::contains(
            "letters:/a.txt × numbers(digits):/1.txt",
        ))
        .stdout(predicate::str::contains(
            "letters:/b.txt × numbers(digits):/3.txt",
        ));
}

fn one_datum_runs_alone() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("one");
    cli()
        .args(["run", "--datum", "2"])
        .arg(pipeline("cross").join("pipeline.json"))
        .arg("--out")
        .arg(&out_dir)
        .assert()
        .success()
        .stderr(predicate::str::contains("datum 1/1"));
    let files: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(
        files,
        ["b-1.txt"],
        "datum 2 of a cross: its first input varies fastest"
    );
    cli()
        .args(["run", "--datum", "zzzz"])
        .arg(pipeline("cross").join("pipeline.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("zzzz"));
}

fn keep_leaves_containers_and_says_where() {
    let assert = cli()
        .args(["run", "--keep", "--jobs", "1"])
        .arg(pipeline("stdin").join("pipeline.json"))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("kept for debugging"), "{stderr}");
    assert!(stderr.contains("logs in "), "{stderr}");
    let run = run_id_of(&stderr);
    let kept = containers_of(&run);
    assert_eq!(
        kept.len(),
        2,
        "a build and a run container are kept: {kept:?}"
    );
    assert!(stderr.contains("  volume pachbuild-job-"), "{stderr}");
    runtime().block_on(async { e2e::remove_kept(&require_engine().await, &stderr).await });
    assert!(containers_of(&run).is_empty());
}

/// Runs last: `clean` also removes the ephemeral images the tests share.
fn clean_removes_what_runs_left_and_never_a_live_run() {
    // A live run, its datum sleeping (stopped at the end with SIGINT).
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&pipeline("stdin"), copy.path());
    std::fs::write(
        copy.path().join("source/main.sh"),
        "echo started; sleep 60\n",
    )
    .unwrap();
    let mut live = std::process::Command::new(e2e::xtask_binary())
        .env("PACHBUILD_ROOT", fixtures_root())
        .env("PACHBUILD_CACHE_ENTRIES", "0")
        .env(harness::engine::owner::SESSION_ENV, e2e::session())
        .args(["--prefix", PREFIX, "run", "--jobs", "1"])
        .arg(copy.path().join("pipeline.json"))
        .arg("--out")
        .arg(copy.path().join("out"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = {
        use std::io::{BufRead, BufReader};
        BufReader::new(live.stderr.take().unwrap()).lines()
    };
    let mut seen = String::new();
    let mut lines = lines.map_while(|l| l.ok());
    for line in lines.by_ref() {
        seen.push_str(&line);
        seen.push('\n');
        if line.ends_with("| started") {
            break;
        }
    }
    let live_run = run_id_of(&seen);
    assert_eq!(containers_of(&live_run).len(), 1, "{seen}");

    // A finished run whose objects stay (--keep).
    let assert = cli()
        .args(["run", "--keep", "--jobs", "1"])
        .arg(pipeline("stdin").join("pipeline.json"))
        .assert()
        .success();
    let kept = run_id_of(&String::from_utf8_lossy(&assert.get_output().stderr));
    assert_eq!(containers_of(&kept).len(), 2);

    let cleaned = cli().arg("clean").assert().success();
    let said = String::from_utf8_lossy(&cleaned.get_output().stdout).into_owned();
    assert!(said.contains(&format!("(run {kept}, run-phase)")), "{said}");
    assert!(said.contains("removed volume pachbuild-job-"), "{said}");
    assert!(
        said.contains(&format!(
            "left the objects of run {live_run}: it is still running"
        )),
        "{said}"
    );
    assert!(containers_of(&kept).is_empty());
    assert_eq!(
        containers_of(&live_run).len(),
        1,
        "clean touched a live run"
    );
    // Named, a live run is still left alone.
    cli()
        .args(["clean", "--run", &live_run])
        .assert()
        .success()
        .stdout(predicate::str::contains("it is still running"));
    assert_eq!(
        containers_of(&live_run).len(),
        1,
        "clean --run touched a live run"
    );

    // The live run was not disturbed: interrupted, it cleans up after itself.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &live.id().to_string()])
        .status();
    let rest: Vec<String> = lines.collect();
    assert_eq!(
        live.wait().unwrap().code(),
        Some(130),
        "{seen}{}",
        rest.join("\n")
    );
    assert!(containers_of(&live_run).is_empty());
    cli()
        .args(["clean", "--run", &kept])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to clean"));
}

fn a_failing_build_shows_its_log_tail() {
    let assert = cli()
        .args(["run"])
        .arg(pipeline("build-fails").join("pipeline.json"))
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("the build phase failed with exit code"),
        "{stderr}"
    );
    assert!(
        stderr.contains("| shtest: checking /pfs/source/main.sh"),
        "{stderr}"
    );
    assert!(stderr.contains("Syntax error"), "{stderr}");
    let log = stderr
        .lines()
        .find_map(|l| l.strip_prefix("full log: "))
        .expect("the log path is printed");
    assert!(read(Path::new(log)).contains("Syntax error"));
}

fn a_failing_datum_is_named() {
    cli()
        .args(["run"])
        .arg(pipeline("datum-fails").join("pipeline.json"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("failed on datum"))
        .stderr(predicate::str::contains(
            "(numbers:/bad.txt) with exit code 3",
        ))
        .stderr(predicate::str::contains(
            "refusing bad input /pfs/numbers/bad.txt",
        ));
}

fn strict_outputs_make_overlaps_an_error() {
    cli()
        .args(["run", "--strict-outputs"])
        .arg(pipeline("overlap").join("pipeline.json"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("all.txt"))
        .stderr(predicate::str::contains("parts:/p1"))
        .stderr(predicate::str::contains("parts:/p2"));
}

fn bad_specs_exit_2_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let spec = dir.path().join("p.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "x"}, "transform": {"build": {"language": "shtest", "image": "a:1", "path": "src"}},
            "input": {"pfs": {"repo": "d", "glob": "/"}}}"#,
    )
    .unwrap();
    let before = session_containers();
    cli()
        .arg("run")
        .arg(&spec)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("p.json"))
        .stderr(predicate::str::contains("transform.build"))
        .stderr(predicate::str::contains("fix:"));
    std::fs::write(&spec, "{\n  \"pipeline\": {\"name\": \"x\"},\n  oops\n}").unwrap();
    cli()
        .arg("run")
        .arg(&spec)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("p.json:3:"));
    assert_eq!(session_containers(), before);
}

fn a_remote_engine_over_tcp_works_without_bind_mounts() {
    let rt = runtime();
    let port = rt.block_on(async { start_tcp_proxy().await });
    let out = tempfile::tempdir().unwrap();
    let assert = cli()
        .args(["run", "--keep", "--jobs", "1"])
        .arg(pipeline("nested-glob").join("pipeline.yaml"))
        .arg("--out")
        .arg(out.path().join("o"))
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(
        read(&out.path().join("o/a.list")),
        "./a/sub/y.txt\n./a/x.txt\n"
    );
    let kept = containers_of(&run_id_of(&stderr));
    rt.block_on(async {
        let engine = require_engine().await;
        assert_eq!(kept.len(), 2, "{stderr}");
        for (_, name) in kept {
            let mounts = engine.container_mounts(&name).await.unwrap();
            assert!(
                mounts.iter().all(|m| !m.starts_with("bind:")),
                "{name} has bind mounts: {mounts:?}"
            );
        }
        e2e::remove_kept(&engine, &stderr).await;
    });
}

fn an_interrupted_run_leaves_nothing_behind() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&pipeline("stdin"), copy.path());
    std::fs::write(
        copy.path().join("source/main.sh"),
        "echo started; sleep 120\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(e2e::xtask_binary())
        .env("PACHBUILD_ROOT", fixtures_root())
        .args(["--prefix", PREFIX, "run"])
        .arg(copy.path().join("pipeline.json"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run phase has started, then interrupt.
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.ends_with("| started") {
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
            }
        }
        (child.wait().unwrap(), seen)
    });
    let (status, seen) = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    let run = run_id_of(&seen);
    assert!(
        containers_of(&run).is_empty(),
        "containers left after an interrupt"
    );
    let volumes = runtime().block_on(async {
        require_engine()
            .await
            .volumes_labelled(&format!("{LABEL_RUN}={run}"))
            .await
            .unwrap()
    });
    assert!(
        volumes.is_empty(),
        "volumes left after an interrupt: {volumes:?}"
    );
}

/// `cargo xtask` with a build cache of its own scope, kept between commands.
fn cached_cli(scope: &str, entries: u32) -> Command {
    let mut command = cli();
    command
        .env("PACHBUILD_CACHE_SCOPE", scope)
        .env("PACHBUILD_CACHE_ENTRIES", entries.to_string());
    command
}

/// Volumes of a cache scope: (markers, data volumes).
fn cache_volumes(scope: &str) -> (Vec<String>, Vec<String>) {
    runtime().block_on(async {
        let volumes = require_engine()
            .await
            .volumes_labelled(&format!("{LABEL_CACHE_SCOPE}={scope}"))
            .await
            .unwrap();
        let (markers, data): (Vec<_>, Vec<_>) = volumes
            .into_iter()
            .partition(|v| v.labels.get(LABEL_KIND).map(String::as_str) == Some("build-cache"));
        (
            markers.into_iter().map(|v| v.name).collect(),
            data.into_iter().map(|v| v.name).collect(),
        )
    })
}

fn a_rerun_with_nothing_changed_reuses_the_build() {
    let scope = format!("e2e-{}", RunId::new());
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&pipeline("cross"), copy.path());
    let spec = copy.path().join("pipeline.json");
    let out = copy.path().join("out");
    let run = |extra: &[&str]| {
        let assert = cached_cli(&scope, 3)
            .arg("run")
            .arg(&spec)
            .args(extra)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
        String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
    };
    let first = run(&[]);
    assert!(first.contains("build | shtest: build done"), "{first}");
    assert!(first.contains("(built)"), "{first}");
    let first_output = read(&out.join("a-1.txt"));

    let second = run(&[]);
    assert!(
        second.contains("reused the build output of an earlier run"),
        "{second}"
    );
    assert!(second.contains("(reused)"), "{second}");
    assert!(!second.contains("shtest: build done"), "{second}");
    assert_eq!(read(&out.join("a-1.txt")), first_output);

    // Content changes rebuild; times alone do not.
    let main = copy.path().join("source/main.sh");
    let text = read(&main);
    std::fs::write(&main, &text).unwrap();
    assert!(run(&[]).contains("(reused)"));
    std::fs::write(&main, format!("{text}\n# changed\n")).unwrap();
    assert!(run(&[]).contains("(built)"));
    assert!(run(&["--no-cache"]).contains("(built)"));
    assert!(run(&[]).contains("(reused)"));

    // Two entries (before and after the change), three volumes each at most.
    let (markers, data) = cache_volumes(&scope);
    assert_eq!(markers.len(), 2, "{markers:?}");
    assert_eq!(data.len(), 4, "{data:?}");
    cached_cli(&scope, 3)
        .args(["clean", "--cache"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed 2 entries"));
    assert_eq!(cache_volumes(&scope), (vec![], vec![]));
}

fn a_failed_build_is_never_cached_and_the_cache_is_bounded() {
    let scope = format!("e2e-{}", RunId::new());
    cached_cli(&scope, 1)
        .arg("run")
        .arg(pipeline("build-fails").join("pipeline.json"))
        .assert()
        .code(1);
    assert_eq!(
        cache_volumes(&scope),
        (vec![], vec![]),
        "a failed build left volumes"
    );
    for name in ["cross", "env"] {
        let out = tempfile::tempdir().unwrap();
        cached_cli(&scope, 1)
            .arg("run")
            .arg(pipeline(name).join("pipeline.json"))
            .arg("--out")
            .arg(out.path().join("o"))
            .assert()
            .success();
    }
    let (markers, data) = cache_volumes(&scope);
    assert_eq!((markers.len(), data.len()), (1, 2), "{markers:?} {data:?}");
    cached_cli(&scope, 1)
        .args(["clean", "--cache"])
        .assert()
        .success();
    assert_eq!(cache_volumes(&scope), (vec![], vec![]));
}

/// The `reused-datums=N` of a run's timings line.
fn reused_datums(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.split("reused-datums=").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reused-datums in:\n{stderr}"))
}

fn unchanged_datums_are_skipped_and_their_outputs_reused() {
    let scope = format!("e2e-{}", RunId::new());
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&pipeline("cross"), copy.path());
    let spec = copy.path().join("pipeline.json");
    let out = copy.path().join("out");
    let run = |extra: &[&str]| {
        let _ = std::fs::remove_dir_all(&out);
        let assert = cached_cli(&scope, 3)
            .arg("run")
            .arg(&spec)
            .args(extra)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        (stderr, harness::output::read_tree(&out).unwrap())
    };
    let (first, expected) = run(&[]);
    assert_eq!(reused_datums(&first), 0, "{first}");

    // Nothing changed: no datum runs, no container starts, same output.
    let (second, tree) = run(&[]);
    assert_eq!(reused_datums(&second), 6, "{second}");
    assert!(second.contains("workers=0"), "{second}");
    assert!(second.contains("datum 4/6"), "{second}");
    assert!(
        second.contains("skipped: unchanged since an earlier run"),
        "{second}"
    );
    assert_eq!(tree, expected);

    // One input file changed: only the datums holding it run, numbered in
    // the job; the merged output has the new content and the old ones.
    let letter = copy.path().join("inputs/letters/a.txt");
    std::fs::write(&letter, "A changed\n").unwrap();
    let (third, tree) = run(&[]);
    assert_eq!(reused_datums(&third), 3, "{third}");
    assert!(third.contains("datum 1/6"), "{third}");
    assert_eq!(tree.len(), expected.len());
    assert_ne!(tree, expected);
    assert_eq!(
        read(&out.join("b-1.txt")),
        read(&pipeline("cross").join("expected/b-1.txt"))
    );
    assert!(
        read(&out.join("a-1.txt")).starts_with("A changed"),
        "{third}"
    );

    // --reprocess runs every datum; --no-cache too.
    assert_eq!(reused_datums(&run(&["--reprocess"]).0), 0);
    assert_eq!(reused_datums(&run(&["--no-cache"]).0), 0);
    assert_eq!(reused_datums(&run(&[]).0), 6);

    // A failing job stores nothing.
    let failing = || {
        let assert = cached_cli(&scope, 3)
            .arg("run")
            .arg(pipeline("datum-fails").join("pipeline.json"))
            .assert()
            .code(1);
        String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
    };
    failing();
    let again = failing();
    assert!(!again.contains("skipped: unchanged"), "{again}");

    cached_cli(&scope, 3)
        .args(["clean", "--cache"])
        .assert()
        .success()
        .stdout(predicate::str::contains("datum cache (scope"));
    assert_eq!(
        reused_datums(&run(&[]).0),
        0,
        "clean --cache empties the datum cache"
    );
    cached_cli(&scope, 3)
        .args(["clean", "--cache"])
        .assert()
        .success();
}

/// A copy of pipeline fixture `name` whose `source/main.sh` is `main`, and
/// whose spec gets `extra` top-level JSON fields.
fn variant(name: &str, main: &str, extra: serde_json::Value) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&pipeline(name), copy.path());
    std::fs::write(copy.path().join("source/main.sh"), main).unwrap();
    let spec_path = copy.path().join("pipeline.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        if k == "transform" {
            for (tk, tv) in v.as_object().unwrap() {
                spec["transform"][tk] = tv.clone();
            }
        } else {
            spec[k] = v.clone();
        }
    }
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    copy
}

fn run_variant(copy: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, String) {
    let output = cli()
        .arg("run")
        .arg(copy.path().join("pipeline.json"))
        .args(args)
        .arg("--out")
        .arg(copy.path().join("out"))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn limits_failures_and_secrets_are_reported_clearly() {
    // Out of memory: named as such, not as exit code 137.
    let hungry = variant(
        "stdin",
        "head -c 400000000 /dev/zero | tail -n 1 > /dev/null\n",
        serde_json::json!({}),
    );
    let (code, stderr) = run_variant(&hungry, &["--memory", "64m", "--datum-tries", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("out of memory"), "{stderr}");
    assert!(stderr.contains("--memory"), "{stderr}");

    // --keep-going: every datum runs, every failure is reported.
    let picky = variant(
        "datum-fails",
        "echo \"refusing $numbers\" >&2; exit 3\n",
        serde_json::json!({}),
    );
    let (code, stderr) = run_variant(&picky, &["--keep-going", "--datum-tries", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    let failed = stderr
        .matches("error: the run phase failed on datum")
        .count();
    assert!(failed >= 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{failed} datums failed")),
        "{stderr}"
    );
    assert!(stderr.contains("rerun only this datum"), "{stderr}");

    // job_timeout stops the job, and says which limit.
    let slow = variant(
        "stdin",
        "sleep 60\n",
        serde_json::json!({"job_timeout": "2s"}),
    );
    let started = std::time::Instant::now();
    let (code, stderr) = run_variant(&slow, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("job_timeout"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");

    // --timeout limits each phase: a build past it, a run phase past it.
    let slow_build = variant(
        "stdin",
        "echo ok > /pfs/out/ok.txt\n",
        serde_json::json!({}),
    );
    std::fs::write(slow_build.path().join("source/build-hook.sh"), "sleep 60\n").unwrap();
    let started = std::time::Instant::now();
    let (code, stderr) = run_variant(&slow_build, &["--timeout", "2s"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the build phase ran past its time limit (2s"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    let (code, stderr) = run_variant(&slow, &["--timeout", "2s"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("ran past --timeout (2s)"), "{stderr}");
    let (code, stderr) = run_variant(&slow, &["--datum-timeout", "1s", "--datum-tries", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("killed: it ran past datum_timeout (1s)"),
        "{stderr}"
    );

    // Secrets: missing is bad input naming the field and the flag; given,
    // as a variable and as files.
    let secretive = variant(
        "stdin",
        "{ echo \"pass=$DB_PASS\"; cat /etc/app-config/mode; } > /pfs/out/secrets.txt\n",
        serde_json::json!({"transform": {"secrets": [
            {"name": "db", "env_var": "DB_PASS", "key": "password"},
            {"name": "config", "mount_path": "/etc/app-config"}
        ]}}),
    );
    let (code, stderr) = run_variant(&secretive, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("transform.secrets[0]"), "{stderr}");
    assert!(stderr.contains("--secret db=PATH"), "{stderr}");
    let db = secretive.path().join("db.env");
    std::fs::write(&db, "password=s3cret\n").unwrap();
    let config = secretive.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("mode"), "production\n").unwrap();
    let (code, stderr) = run_variant(
        &secretive,
        &[
            "--secret",
            &format!("db={}", db.display()),
            "--secret",
            &format!("config={}", config.display()),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        read(&secretive.path().join("out/secrets.txt")),
        "pass=s3cret\nproduction\n"
    );
}

/// Every file under `dir` with its content, for before/after comparisons.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(here) = stack.pop() {
        for entry in std::fs::read_dir(&here).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn user_code_never_writes_into_the_source_or_the_inputs() {
    let copy = variant(
        "cross",
        "echo evil > /pfs/source/main.sh 2>/dev/null || echo 'source is read-only'\n\
         echo evil > \"$letters\"; rm -rf /pfs/numbers; echo evil > /pfs/build/main.sh 2>/dev/null || true\n\
         echo done > \"/pfs/out/$(basename \"$letters\" .txt).txt\"\n",
        serde_json::json!({}),
    );
    // The build tries too: it gets a copy of the source.
    std::fs::write(
        copy.path().join("source/build-hook.sh"),
        "echo evil > /pfs/source/planted.txt; rm -f /pfs/source/build-hook.sh\n",
    )
    .unwrap();
    let (source, inputs) = (copy.path().join("source"), copy.path().join("inputs"));
    let before = (snapshot(&source), snapshot(&inputs));
    let (code, stderr) = run_variant(&copy, &["--jobs", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("source is read-only"), "{stderr}");
    assert_eq!((snapshot(&source), snapshot(&inputs)), before, "{stderr}");
}

/// Outputs that would reach outside `/pfs/out` on the host are refused,
/// naming the entry; a device cannot even be made.
fn escapes_from_the_output_are_refused() {
    for (main, wanted) in [
        ("mkfifo /pfs/out/pipe\n", "the output holds `pipe`, a fifo"),
        (
            "ln -s /etc/passwd /pfs/out/passwd\n",
            "symlink `passwd` → `/etc/passwd`",
        ),
        (
            "ln -s ../../../etc/passwd /pfs/out/up\n",
            "symlink `up` → `../../../etc/passwd`",
        ),
        (
            "mkdir /pfs/out/d; ln -s .. /pfs/out/d/back; ln -s d/back/.. /pfs/out/chain\n",
            "symlink",
        ),
    ] {
        let copy = variant("stdin", main, serde_json::json!({}));
        let (code, stderr) = run_variant(&copy, &["--datum-tries", "1"]);
        assert_eq!(code, Some(1), "{main}: {stderr}");
        assert!(stderr.contains(wanted), "{main}: {stderr}");
        assert!(
            !copy.path().join("out").exists(),
            "{main}: an output was kept"
        );
    }
    // Making a device needs a capability the run phase does not have.
    let copy = variant(
        "stdin",
        "mknod /pfs/out/null c 1 3 2>/dev/null || echo 'mknod refused'\necho ok > /pfs/out/ok.txt\n",
        serde_json::json!({}),
    );
    let (code, stderr) = run_variant(&copy, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("mknod refused"), "{stderr}");
}

fn two_runs_at_once_do_not_interfere() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&pipeline("cross"), copy.path());
    let spec = copy.path().join("pipeline.json");
    let root = tempfile::tempdir().unwrap();
    copy_dir(&fixtures_root(), root.path());
    let start = || {
        let mut command = std::process::Command::new(e2e::xtask_binary());
        command
            .env("PACHBUILD_ROOT", root.path())
            .env("PACHBUILD_CACHE_ENTRIES", "3")
            .env("PACHBUILD_CACHE_SCOPE", format!("e2e-{}", e2e::session()))
            .env(harness::engine::owner::SESSION_ENV, e2e::session())
            .args(["--prefix", PREFIX, "run"])
            .arg(&spec)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Same spec, same default output folder, same cache, at the same time.
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run_a = run_id_of(&String::from_utf8_lossy(&a.stderr));
    let run_b = run_id_of(&String::from_utf8_lossy(&b.stderr));
    assert_ne!(run_a, run_b);
    let out = root.path().join("target/pachbuild/out/pairs");
    let expected = harness::output::read_tree(&pipeline("cross").join("expected")).unwrap();
    assert_eq!(harness::output::read_tree(&out).unwrap(), expected);
    assert!(containers_of(&run_a).is_empty() && containers_of(&run_b).is_empty());
    let mut clean = cli();
    clean
        .env("PACHBUILD_CACHE_SCOPE", format!("e2e-{}", e2e::session()))
        .args(["clean", "--cache"])
        .assert()
        .success();
}

fn outputs_are_identical_whatever_the_number_of_workers() {
    for name in ["cross", "overlap", "worker-state"] {
        let spec = std::fs::read_dir(pipeline(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_stem().is_some_and(|s| s == "pipeline"))
            .unwrap();
        let mut outputs = Vec::new();
        for jobs in ["1", "2", "4"] {
            let out = tempfile::tempdir().unwrap();
            let assert = cli()
                .args(["run", "--jobs", jobs])
                .arg(&spec)
                .arg("--out")
                .arg(out.path().join("o"))
                .assert()
                .success();
            let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
            outputs.push((
                jobs,
                harness::output::read_tree(&out.path().join("o")).unwrap(),
                stderr,
            ));
        }
        let (_, first, _) = &outputs[0];
        for (jobs, tree, stderr) in &outputs[1..] {
            assert_eq!(tree, first, "{name} with --jobs {jobs} differs:\n{stderr}");
        }
        // Lines come in datum order, never interleaved.
        let stderr = &outputs[2].2;
        let numbers: Vec<usize> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("datum "))
            .filter_map(|l| l.split('/').next()?.parse().ok())
            .collect();
        let mut sorted = numbers.clone();
        sorted.sort();
        assert_eq!(numbers, sorted, "{name}: {stderr}");
    }
}

// ----- helpers ----------------------------------------------------------------

/// A TCP listener on loopback that forwards to the local engine's socket:
/// the engine as a remote client sees it. Returns the port.
async fn start_tcp_proxy() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener.into_std().unwrap()).unwrap();
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    break;
                };
                tokio::spawn(async move {
                    if let Ok(mut unix) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    }
                });
            }
        });
    });
    port
}

// ----- main -------------------------------------------------------------------

use e2e::copy_dir;
use e2e::Scenario;

const SCENARIOS: &[Scenario] = &[
    (
        "every_pipeline_fixture_passes",
        every_pipeline_fixture_passes,
    ),
    (
        "a_wrong_expected_output_fails_with_a_diff",
        a_wrong_expected_output_fails_with_a_diff,
    ),
    ("run_writes_the_merged_output", run_writes_the_merged_output),
    (
        "list_datums_needs_no_engine_and_runs_nothing",
        list_datums_needs_no_engine_and_runs_nothing,
    ),
    ("one_datum_runs_alone", one_datum_runs_alone),
    (
        "keep_leaves_containers_and_says_where",
        keep_leaves_containers_and_says_where,
    ),
    (
        "a_failing_build_shows_its_log_tail",
        a_failing_build_shows_its_log_tail,
    ),
    ("a_failing_datum_is_named", a_failing_datum_is_named),
    (
        "strict_outputs_make_overlaps_an_error",
        strict_outputs_make_overlaps_an_error,
    ),
    (
        "bad_specs_exit_2_and_start_nothing",
        bad_specs_exit_2_and_start_nothing,
    ),
    (
        "a_remote_engine_over_tcp_works_without_bind_mounts",
        a_remote_engine_over_tcp_works_without_bind_mounts,
    ),
    (
        "an_interrupted_run_leaves_nothing_behind",
        an_interrupted_run_leaves_nothing_behind,
    ),
    (
        "a_rerun_with_nothing_changed_reuses_the_build",
        a_rerun_with_nothing_changed_reuses_the_build,
    ),
    (
        "a_failed_build_is_never_cached_and_the_cache_is_bounded",
        a_failed_build_is_never_cached_and_the_cache_is_bounded,
    ),
    (
        "outputs_are_identical_whatever_the_number_of_workers",
        outputs_are_identical_whatever_the_number_of_workers,
    ),
    (
        "user_code_never_writes_into_the_source_or_the_inputs",
        user_code_never_writes_into_the_source_or_the_inputs,
    ),
    (
        "escapes_from_the_output_are_refused",
        escapes_from_the_output_are_refused,
    ),
    (
        "two_runs_at_once_do_not_interfere",
        two_runs_at_once_do_not_interfere,
    ),
    (
        "limits_failures_and_secrets_are_reported_clearly",
        limits_failures_and_secrets_are_reported_clearly,
    ),
    (
        "unchanged_datums_are_skipped_and_their_outputs_reused",
        unchanged_datums_are_skipped_and_their_outputs_reused,
    ),
    (
        "clean_removes_what_runs_left_and_never_a_live_run",
        clean_removes_what_runs_left_and_never_a_live_run,
    ),
];

fn main() -> ExitCode {
    e2e::run_suite(SCENARIOS)
}
