//! Fault tests (issue 11) on the real engine: the engine unreachable at
//! start or going away mid-build and mid-run (a proxy between the tool and
//! the engine that the test cuts), SIGINT and SIGTERM in each phase, and a
//! failed image build. Each checks the message, the exit code, and that
//! nothing of the run is left once the engine is back.
//!
//! A custom test main builds the `shtest` builder once (ephemeral), runs the
//! scenarios and prints `N passed, M failed`. An argument filters by name.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use e2e::process::{
    assert_no_panic, gone_within, objects_of, run_id_of, run_until, signal, xtask_process,
};
use e2e::proxy::Proxy;
use e2e::{engine, fixtures_root, TEST_PREFIX as PREFIX};
use harness::engine::Engine;

// ----- a pipeline whose build or datum is slow ---------------------------------

/// A copy of the `stdin` pipeline fixture; `hook` (a build step) and `main`
/// (the datum's program) are shell scripts.
fn slow_pipeline(hook: Option<&str>, main: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fixtures_root().join("pipelines/stdin"), copy.path());
    let source = copy.path().join("source");
    std::fs::write(source.join("main.sh"), main).unwrap();
    if let Some(hook) = hook {
        std::fs::write(source.join("build-hook.sh"), hook).unwrap();
    }
    copy
}

/// `cargo xtask run` of such a copy.
fn run_command(copy: &tempfile::TempDir) -> std::process::Command {
    let mut command = xtask_process(&fixtures_root());
    command
        .args(["run", "--jobs", "1", "--datum-tries", "1"])
        .arg(copy.path().join("pipeline.json"))
        .arg("--out")
        .arg(copy.path().join("out"));
    command
}

const SLOW_BUILD: &str = "echo hook-started; sleep 60\n";
const SLOW_DATUM: &str = "echo datum-started; sleep 60\n";
const QUICK_DATUM: &str = "echo \"args: $*\" > /pfs/out/args.txt\n";

/// A run of a quick pipeline succeeds and leaves nothing.
fn a_run_works() {
    let copy = slow_pipeline(None, QUICK_DATUM);
    let outcome = run_until(
        run_command(&copy),
        "\u{0}",
        Duration::from_secs(120),
        |_| {},
    );
    assert_eq!(
        outcome.code(),
        Some(0),
        "the next run fails:\n{}",
        outcome.stderr
    );
    let (rt, engine) = engine();
    let run = run_id_of(&outcome.stderr);
    assert_eq!(objects_of(&engine, &rt, &run), Vec::<String>::new());
}

// ----- a builder whose image build is slow or fails -------------------------------

/// A copy of the shtest builder under a root of its own, whose Dockerfile
/// gets `extra` at the end. Its version (so its tag) is this process's, so
/// that it never replaces the shared shtest image.
fn builder_copy(extra: &str) -> (tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("builders/shtest");
    copy_dir(&fixtures_root().join("builders/shtest"), &dir);
    let version = format!("0.0.1-faults{}", std::process::id());
    let meta = std::fs::read_to_string(dir.join("builder.yaml"))
        .unwrap()
        .replace("version: 0.0.1", &format!("version: {version}"));
    std::fs::write(dir.join("builder.yaml"), meta).unwrap();
    set_dockerfile_tail(root.path(), extra);
    (root, format!("{PREFIX}/shtest-build:{version}"))
}

fn set_dockerfile_tail(root: &Path, extra: &str) {
    let original =
        std::fs::read_to_string(fixtures_root().join("builders/shtest/Dockerfile")).unwrap();
    std::fs::write(
        root.join("builders/shtest/Dockerfile"),
        format!("{original}{extra}"),
    )
    .unwrap();
}

fn build_builder_command(root: &Path) -> std::process::Command {
    let mut command = xtask_process(root);
    command.args(["build-builder", "shtest", "--verbose"]);
    command
}

/// What an image build printed: the intermediate containers (`Running in
/// <id>`) and the images each step made (`---> <id>`, not `Using cache`).
fn build_objects(stderr: &str) -> (Vec<String>, Vec<String>) {
    let mut containers = Vec::new();
    let mut images = Vec::new();
    let mut cached = false;
    let mut from_step = false;
    // Only the build's own lines (`  shtest | ...`), not an error's tail.
    for line in stderr.lines() {
        let Some(text) = line.strip_prefix("  shtest | ") else {
            continue;
        };
        let text = text.trim();
        if text.starts_with("Step ") {
            from_step = text.contains(": FROM ");
            cached = false;
        } else if let Some(id) = text.strip_prefix("---> Running in ") {
            containers.push(id.trim().to_string());
        } else if text == "---> Using cache" {
            cached = true;
        } else if let Some(id) = text.strip_prefix("---> ") {
            let id = id.trim();
            if !cached && !from_step && id.chars().all(|c| c.is_ascii_hexdigit()) {
                images.push(id.to_string());
            }
        }
    }
    (containers, images)
}

/// Which of `containers` and `images` the engine still has.
fn still_there(containers: &[String], images: &[String]) -> Vec<String> {
    let (rt, engine) = engine();
    rt.block_on(async {
        let mut left = Vec::new();
        for c in containers {
            if engine.container_exists(c).await.unwrap() {
                left.push(format!("container {c}"));
            }
        }
        for i in images {
            if engine.image(i).await.unwrap().is_some() {
                left.push(format!("image {i}"));
            }
        }
        left
    })
}

fn remove_image(tag: &str) {
    let (rt, engine) = engine();
    rt.block_on(engine.remove_image(tag)).unwrap();
}

/// The proxy itself works (else the cut tests prove nothing), is cut, and
/// comes back.
fn the_proxy_cuts_and_reopens() {
    let proxy = Proxy::start();
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let engine = Engine::connect_to(&proxy.host())
            .await
            .expect("through the proxy");
        engine.info().await.expect("the engine answers");
    });
    proxy.cut();
    let gone = rt.block_on(Engine::connect_to(&proxy.host()));
    assert!(gone.is_err(), "the cut proxy still answers");
    proxy.reopen();
    rt.block_on(Engine::connect_to(&proxy.host()))
        .expect("the proxy is back");
}

// ----- the engine unreachable or going away ---------------------------------------

fn the_engine_unreachable_at_start_exits_3() {
    let proxy = Proxy::start();
    proxy.cut();
    let copy = slow_pipeline(None, QUICK_DATUM);
    for host in [proxy.host(), "unix:///nonexistent/docker.sock".to_string()] {
        let mut command = run_command(&copy);
        command.env("DOCKER_HOST", &host);
        let outcome = run_until(command, "\u{0}", Duration::from_secs(60), |_| {});
        assert_eq!(outcome.code(), Some(3), "{}", outcome.stderr);
        assert!(outcome.stderr.contains(&host), "{}", outcome.stderr);
        assert!(outcome.stderr.contains("fix:"), "{}", outcome.stderr);
        assert_no_panic(&outcome.stderr);
    }
}

/// The engine goes away while `marker` shows: the error names `phase` and
/// the engine, then with the engine back `clean --run` leaves nothing.
fn engine_goes_away(copy: &tempfile::TempDir, marker: &str, phase: &str) {
    let proxy = Arc::new(Proxy::start());
    let mut command = run_command(copy);
    command.env("DOCKER_HOST", proxy.host());
    let outcome = run_until(command, marker, Duration::from_secs(120), proxy.cutter());
    let stderr = &outcome.stderr;
    assert!(
        outcome.acted_at.is_some(),
        "never reached {marker}:\n{stderr}"
    );
    assert_no_panic(stderr);
    assert_eq!(outcome.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(phase),
        "the error names no {phase}:\n{stderr}"
    );
    assert!(
        stderr.contains(&proxy.host()),
        "the error names no engine:\n{stderr}"
    );
    let run = run_id_of(stderr);
    let (rt, engine) = engine();
    // The engine is back (the real socket). The tool could not remove what
    // it made (so this test proves something); it must say how to.
    let left = objects_of(&engine, &rt, &run);
    assert!(!left.is_empty(), "nothing left to clean:\n{stderr}");
    let clean = format!("cargo xtask clean --run {run}");
    assert!(stderr.contains(&clean), "no `{clean}`:\n{stderr}");
    let cleaned = e2e::xtask()
        .args(["clean", "--run", &run])
        .output()
        .unwrap();
    assert!(cleaned.status.success(), "{cleaned:?}");
    let left = gone_within(Duration::from_secs(5), || objects_of(&engine, &rt, &run));
    assert!(left.is_empty(), "left after clean --run: {left:?}");
    a_run_works();
}

fn the_engine_going_away_in_a_build_phase() {
    let copy = slow_pipeline(Some(SLOW_BUILD), QUICK_DATUM);
    engine_goes_away(&copy, "hook-started", "build phase");
}

fn the_engine_going_away_in_a_run_phase() {
    let copy = slow_pipeline(None, SLOW_DATUM);
    engine_goes_away(&copy, "datum-started", "run phase");
}

/// The engine goes away during an image build: the error names it; the
/// step images the build made cannot be removed then and carry no label of
/// the run, so the tool lists how many it left; the test removes them.
fn the_engine_going_away_in_an_image_build() {
    let (root, tag) = builder_copy("RUN echo slow-step-started-$((40 + 2)) && sleep 60\n");
    let _guard = e2e::ImageGuard(tag.clone());
    let proxy = Arc::new(Proxy::start());
    let mut command = build_builder_command(root.path());
    command.env("DOCKER_HOST", proxy.host());
    let outcome = run_until(
        command,
        "slow-step-started-42",
        Duration::from_secs(120),
        proxy.cutter(),
    );
    let stderr = &outcome.stderr;
    assert!(outcome.acted_at.is_some(), "no slow step:\n{stderr}");
    assert_no_panic(stderr);
    assert_eq!(outcome.code(), Some(3), "{stderr}");
    assert!(stderr.contains("during the image build"), "{stderr}");
    assert!(stderr.contains(&proxy.host()), "{stderr}");
    let (containers, images) = build_objects(stderr);
    if !images.is_empty() {
        let newest_first: Vec<&str> = images.iter().rev().map(String::as_str).collect();
        let rmi = format!("`docker rmi {}`", newest_first.join(" "));
        assert!(
            stderr.contains(&rmi),
            "the step images left are not reported ({rmi}):\n{stderr}"
        );
    }
    // The engine is back: it cancelled the build and removed its container.
    let left = gone_within(Duration::from_secs(10), || still_there(&containers, &[]));
    assert!(left.is_empty(), "the engine kept {left:?}");
    let (rt, engine) = engine();
    rt.block_on(async {
        for image in images.iter().rev() {
            engine.remove_untagged_image(image).await.unwrap();
        }
    });
}

// ----- signals -----------------------------------------------------------------------

fn expected_code(sig: &str) -> i32 {
    match sig {
        "INT" => 130,
        "TERM" => 143,
        _ => unreachable!(),
    }
}

/// `run` of `copy`, signalled with `sig` at `marker`: it exits 130/143 and
/// every object of the run is gone within 5 s of the signal.
fn signalled_run(copy: &tempfile::TempDir, marker: &str, sig: &'static str) {
    let outcome = run_until(
        run_command(copy),
        marker,
        Duration::from_secs(120),
        move |pid| signal(pid, sig),
    );
    let stderr = &outcome.stderr;
    let acted = outcome
        .acted_at
        .unwrap_or_else(|| panic!("never reached {marker}:\n{stderr}"));
    assert_eq!(
        outcome.code(),
        Some(expected_code(sig)),
        "SIG{sig}:\n{stderr}"
    );
    assert_no_panic(stderr);
    let run = run_id_of(stderr);
    let (rt, engine) = engine();
    let left = gone_within(
        Duration::from_secs(5).saturating_sub(acted.elapsed()),
        || objects_of(&engine, &rt, &run),
    );
    assert!(
        left.is_empty(),
        "SIG{sig}: left 5 s after: {left:?}\n{stderr}"
    );
}

fn signals_during_a_build_phase() {
    let copy = slow_pipeline(Some(SLOW_BUILD), QUICK_DATUM);
    for sig in ["INT", "TERM"] {
        signalled_run(&copy, "hook-started", sig);
    }
    a_run_works();
}

fn signals_during_a_run_phase() {
    let copy = slow_pipeline(None, SLOW_DATUM);
    for sig in ["INT", "TERM"] {
        signalled_run(&copy, "datum-started", sig);
    }
    a_run_works();
}

fn signals_during_an_image_build() {
    let (root, tag) = builder_copy("RUN echo slow-step-started-$((40 + 2)) && sleep 60\n");
    let _guard = e2e::ImageGuard(tag.clone());
    for sig in ["INT", "TERM"] {
        let outcome = run_until(
            build_builder_command(root.path()),
            "slow-step-started-42",
            Duration::from_secs(120),
            move |pid| signal(pid, sig),
        );
        let stderr = &outcome.stderr;
        let acted = outcome
            .acted_at
            .unwrap_or_else(|| panic!("no slow step:\n{stderr}"));
        assert_eq!(
            outcome.code(),
            Some(expected_code(sig)),
            "SIG{sig}:\n{stderr}"
        );
        assert_no_panic(stderr);
        let (containers, images) = build_objects(stderr);
        assert!(
            !containers.is_empty(),
            "no intermediate container seen:\n{stderr}"
        );
        let left = gone_within(
            Duration::from_secs(5).saturating_sub(acted.elapsed()),
            || still_there(&containers, &images),
        );
        assert!(
            left.is_empty(),
            "SIG{sig}: left 5 s after: {left:?}\n{stderr}"
        );
        let (rt, engine) = engine();
        assert!(
            rt.block_on(engine.image(&tag)).unwrap().is_none(),
            "{tag} exists"
        );
    }
    // The next build works.
    set_dockerfile_tail(root.path(), "RUN echo quick-step\n");
    let outcome = run_until(
        build_builder_command(root.path()),
        "\u{0}",
        Duration::from_secs(120),
        |_| {},
    );
    assert_eq!(outcome.code(), Some(0), "{}", outcome.stderr);
    remove_image(&tag);
}

// ----- a failed image build ------------------------------------------------------------

fn a_failed_copy_leaves_no_images_and_says_how_to_fix() {
    let (root, tag) = builder_copy("RUN echo before-copy\nCOPY missing-file.txt /app/\n");
    let _guard = e2e::ImageGuard(tag.clone());
    let outcome = run_until(
        build_builder_command(root.path()),
        "\u{0}",
        Duration::from_secs(120),
        |_| {},
    );
    let stderr = &outcome.stderr;
    assert_eq!(outcome.code(), Some(1), "{stderr}");
    assert_no_panic(stderr);
    let dockerfile = root.path().join("builders/shtest/Dockerfile");
    assert!(
        stderr.contains(&dockerfile.display().to_string()),
        "the Dockerfile is not named:\n{stderr}"
    );
    assert!(
        stderr.contains("COPY missing-file.txt /app/"),
        "the step is not named:\n{stderr}"
    );
    assert!(stderr.contains("\n  fix: "), "no fix line:\n{stderr}");
    let (containers, images) = build_objects(stderr);
    assert!(
        !images.is_empty(),
        "the build made no image before failing:\n{stderr}"
    );
    let left = still_there(&containers, &images);
    assert!(left.is_empty(), "the failed build left {left:?}\n{stderr}");
}

// ----- main -------------------------------------------------------------------

use e2e::copy_dir;
use e2e::Scenario;

const SCENARIOS: &[Scenario] = &[
    ("the_proxy_cuts_and_reopens", the_proxy_cuts_and_reopens),
    (
        "the_engine_unreachable_at_start_exits_3",
        the_engine_unreachable_at_start_exits_3,
    ),
    (
        "the_engine_going_away_in_a_build_phase",
        the_engine_going_away_in_a_build_phase,
    ),
    (
        "the_engine_going_away_in_a_run_phase",
        the_engine_going_away_in_a_run_phase,
    ),
    (
        "the_engine_going_away_in_an_image_build",
        the_engine_going_away_in_an_image_build,
    ),
    ("signals_during_a_build_phase", signals_during_a_build_phase),
    ("signals_during_a_run_phase", signals_during_a_run_phase),
    (
        "signals_during_an_image_build",
        signals_during_an_image_build,
    ),
    (
        "a_failed_copy_leaves_no_images_and_says_how_to_fix",
        a_failed_copy_leaves_no_images_and_says_how_to_fix,
    ),
];

fn main() -> ExitCode {
    e2e::run_suite(SCENARIOS)
}
