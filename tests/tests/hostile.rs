//! Hostile user code, inputs and engine faults (issue 14), on a real engine:
//! each scenario is a defect a probe of the command line found, pinned so
//! that it stays fixed. The pure parts (log lines, symlink walks, YAML
//! nesting) have unit tests beside their code; the datum isolation is a
//! pipeline fixture (`tests/fixtures/pipelines/datum-isolation`).
//!
//! A custom test main builds the `shtest` builder once (ephemeral), runs the
//! scenarios and prints `N passed, M failed`. An argument filters by name.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use e2e::process::{
    assert_no_panic, gone_within, objects_of, run_id_of, run_until, signal, xtask_process,
    xtask_process_with_prefix,
};
use e2e::proxy::Proxy;
use e2e::{engine, ephemeral_runner, fixtures_root, Scenario};
use harness::engine::{Engine, RunId};

/// A build pipeline on the shtest builder in a temporary folder: `main.sh`
/// is the datum's program, input repo `data` (glob `glob`) holds `files`.
fn pipeline(main: &str, glob: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("source")).unwrap();
    std::fs::write(root.join("source/main.sh"), main).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    for (name, content) in files {
        let path = root.join("data").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    std::fs::write(
        root.join("pipeline.json"),
        format!(
            r#"{{"pipeline": {{"name": "hostile"}},
  "transform": {{"build": {{"language": "shtest", "path": "./source"}}}},
  "input": {{"pfs": {{"repo": "data", "glob": "{glob}"}}}}}}"#
        ),
    )
    .unwrap();
    dir
}

/// `cargo xtask run` of such a pipeline, writing `<dir>/out`.
fn run_command(dir: &Path) -> std::process::Command {
    let mut command = xtask_process(&fixtures_root());
    command
        .args(["run", "--datum-tries", "1"])
        .arg(dir.join("pipeline.json"))
        .arg("--input")
        .arg(format!("data={}", dir.join("data").display()))
        .arg("--out")
        .arg(dir.join("out"));
    command
}

fn output_of(command: &mut std::process::Command) -> (i32, String) {
    let out = command.output().expect("xtask runs");
    let text = format!(
        "{}\n[stdout]\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_no_panic(&text);
    (out.status.code().unwrap_or(-1), text)
}

/// Containers of run `run` that still run.
fn running_of(engine: &Engine, rt: &tokio::runtime::Runtime, run: &str) -> Vec<String> {
    rt.block_on(async {
        let found = engine
            .find_labelled(&format!("{}={run}", harness::engine::LABEL_RUN))
            .await
            .unwrap();
        let mut running = Vec::new();
        for (id, name) in found.containers {
            if engine.container_running(&id).await.unwrap() {
                running.push(name);
            }
        }
        running
    })
}

fn clean_run(run: &str) {
    let cleaned = e2e::xtask().args(["clean", "--run", run]).output().unwrap();
    assert!(cleaned.status.success(), "{cleaned:?}");
}

// ----- 1. a fixture names an image of ours -------------------------------------

/// `fixture.yaml` `images[].tag` naming an existing image (here the shared
/// builder's own tag): the fixture's image is built under a name of its run,
/// the existing image keeps its tag and id, and nothing of the fixture's is
/// left.
fn a_fixture_image_never_replaces_an_image_of_ours() {
    let existing = e2e::shtest_image().to_string();
    let (rt, engine) = engine();
    let before = rt.block_on(engine.image(&existing)).unwrap().unwrap().id;

    let copy = tempfile::tempdir().unwrap();
    e2e::copy_dir(&fixtures_root().join("pipelines/ordinary"), copy.path());
    let fixture = std::fs::read_to_string(copy.path().join("fixture.yaml")).unwrap();
    let spec = std::fs::read_to_string(copy.path().join("pipeline.json")).unwrap();
    let old_tag = "example.org/pachbuild-ordinary-app:1";
    std::fs::write(
        copy.path().join("fixture.yaml"),
        fixture.replace(old_tag, &existing),
    )
    .unwrap();
    std::fs::write(
        copy.path().join("pipeline.json"),
        spec.replace(old_tag, &existing),
    )
    .unwrap();

    let mut command = xtask_process(&fixtures_root());
    command
        .arg("test-builder")
        .arg("--fixture")
        .arg(copy.path());
    let (code, text) = output_of(&mut command);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");

    let after = rt.block_on(engine.image(&existing)).unwrap();
    assert_eq!(
        after.map(|i| i.id),
        Some(before),
        "{existing} was replaced or removed:\n{text}"
    );
    let left = rt
        .block_on(engine.find_labelled(&format!(
            "{}={}",
            harness::engine::owner::LABEL_SESSION,
            e2e::session()
        )))
        .unwrap();
    let fixture_images: Vec<_> = left
        .images
        .iter()
        .filter(|(_, tag)| tag.starts_with("pachbuild-fixture/"))
        .collect();
    assert!(
        fixture_images.is_empty(),
        "fixture images left: {fixture_images:?}"
    );
}

// ----- 2. input symlinks that leave the input folder ----------------------------

fn input_symlinks_out_of_the_folder_are_left_out() {
    let dir = pipeline(
        "find /pfs/data | sort > /pfs/out/seen\n",
        "/",
        &[("a.txt", "a")],
    );
    let data = dir.path().join("data");
    symlink("/proc/self/environ", data.join("environ")).unwrap();
    symlink("/etc/ssl/certs", data.join("certs")).unwrap();
    symlink("a.txt", data.join("alias")).unwrap();
    let (code, text) = output_of(&mut run_command(dir.path()));
    assert_eq!(code, 0, "{text}");
    let seen = std::fs::read_to_string(dir.path().join("out/seen")).unwrap();
    assert_eq!(
        seen, "/pfs/data\n/pfs/data/a.txt\n/pfs/data/alias\n",
        "{text}"
    );
    for name in ["environ", "certs"] {
        assert!(
            text.contains(&format!("`{name}` is a symlink to"))
                && text.contains("outside the input folder"),
            "no warning for {name}:\n{text}"
        );
    }
}

// ----- 3. a run killed outright leaves no runaway container ---------------------

fn an_orphaned_container_stops_itself() {
    let dir = pipeline(
        "echo spinning >&2\nwhile :; do :; done\n",
        "/*",
        &[("1", "1")],
    );
    let mut command = run_command(dir.path());
    command.arg("--no-cache");
    let outcome = run_until(command, "spinning", Duration::from_secs(120), |pid| {
        signal(pid, "KILL")
    });
    let stderr = &outcome.stderr;
    assert!(outcome.acted_at.is_some(), "never spun:\n{stderr}");
    let run = run_id_of(stderr);
    let (rt, engine) = engine();
    let running = gone_within(Duration::from_secs(15), || running_of(&engine, &rt, &run));
    clean_run(&run);
    assert!(
        running.is_empty(),
        "still running 15 s after the tool was killed: {running:?}"
    );
}

// ----- 4. memory does not grow with the data ------------------------------------

/// Runs `command` to its end; returns its exit code, its output, and its
/// peak resident size in MiB (`VmHWM`, read as it runs: the peak so far).
fn run_measured(mut command: std::process::Command) -> (i32, String, u64) {
    let mut child = command.spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let mut peak_kib = 0u64;
    let code = loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(exit) = child.try_wait().unwrap() {
            break exit.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!("{}\n[stdout]\n{}", err.join().unwrap(), out.join().unwrap());
    assert_no_panic(&text);
    (code, text, peak_kib / 1024)
}

fn memory_stays_flat_with_large_data() {
    const BIG: u64 = 256 * 1024 * 1024;
    let dir = pipeline(
        "head -c 268435456 /dev/zero > /pfs/out/written\ncmp -n 268435456 /pfs/data/input /dev/zero\n",
        "/",
        &[],
    );
    // Sparse files: large to the tool, cheap to make.
    for path in [dir.path().join("data/input"), dir.path().join("source/big")] {
        std::fs::File::create(&path).unwrap().set_len(BIG).unwrap();
    }
    let mut command = run_command(dir.path());
    command.arg("--no-cache");
    let (code, text, peak_mib) = run_measured(command);
    assert_eq!(code, 0, "{text}");
    let written = std::fs::metadata(dir.path().join("out/written"))
        .unwrap()
        .len();
    assert_eq!(written, BIG);
    assert!(
        peak_mib < 100,
        "the tool held {peak_mib} MiB for 3 × 256 MiB of data:\n{text}"
    );
    eprintln!("peak resident size: {peak_mib} MiB");
}

// ----- 5. the engine stalls ----------------------------------------------------

/// The engine stops answering mid-run; SIGINT then ends the tool within
/// seconds, saying what may be left and how to remove it; the run's
/// containers stop with the tool, and `clean --run` removes the rest.
fn an_interrupt_while_the_engine_stalls() {
    let proxy = Arc::new(Proxy::start());
    let dir = pipeline("echo begun >&2\nsleep 300\n", "/*", &[("1", "1")]);
    let mut command = run_command(dir.path());
    command
        .env("DOCKER_HOST", proxy.host())
        .args(["--jobs", "1", "--no-cache"]);
    let stalling = proxy.clone();
    let outcome = run_until(command, "begun", Duration::from_secs(120), move |pid| {
        stalling.stall();
        std::thread::sleep(Duration::from_secs(1));
        signal(pid, "INT");
    });
    let stderr = &outcome.stderr;
    let acted = outcome
        .acted_at
        .unwrap_or_else(|| panic!("never began:\n{stderr}"));
    let run = run_id_of(stderr);
    proxy.resume();
    assert_eq!(outcome.code(), Some(130), "{stderr}");
    assert_no_panic(stderr);
    // One connection attempt of 10 s, not one per object, nor an hour.
    let waited = acted.elapsed();
    assert!(waited < Duration::from_secs(30), "{waited:?}:\n{stderr}");
    let clean = format!("cargo xtask clean --run {run}");
    assert!(stderr.contains(&clean), "no `{clean}`:\n{stderr}");
    let (rt, engine) = engine();
    let running = gone_within(Duration::from_secs(15), || running_of(&engine, &rt, &run));
    clean_run(&run);
    assert!(running.is_empty(), "still running: {running:?}");
    let left = gone_within(Duration::from_secs(5), || objects_of(&engine, &rt, &run));
    assert!(left.is_empty(), "left after clean --run: {left:?}");
}

// ----- 6. runs writing one output folder at once -------------------------------

fn parallel_runs_to_one_output_folder_take_turns() {
    let files: Vec<(String, String)> = (0..4).map(|i| (format!("{i}"), format!("{i}"))).collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = pipeline(
        "d=/pfs/out/$(basename \"$data\"); mkdir -p \"$d\"; i=0\nwhile [ $i -lt 250 ]; do echo $i > \"$d/$i\"; i=$((i + 1)); done\n",
        "/*",
        &refs,
    );
    let children: Vec<_> = (0..5)
        .map(|_| {
            let mut command = run_command(dir.path());
            command.stdout(std::process::Stdio::piped());
            command.stderr(std::process::Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.status.success(), "a run failed:\n{text}");
        assert!(text.contains("(1000 files)"), "{text}");
    }
    let count = walk_files(&dir.path().join("out"));
    assert_eq!(count, 1000);
    let scratch: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pachbuild-output"))
        .collect();
    assert!(scratch.is_empty(), "left beside the output: {scratch:?}");
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

// ----- 10. interrupts ----------------------------------------------------------

/// SIGINT while a long synchronous step runs (hashing an 8 GiB source file
/// for the build cache): the tool stops within moments, with 130.
fn an_interrupt_during_hashing_is_served_at_once() {
    let dir = pipeline("true\n", "/*", &[("1", "1")]);
    let big = dir.path().join("source/huge");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(8 * 1024 * 1024 * 1024)
        .unwrap();
    let outcome = run_until(
        run_command(dir.path()),
        "(run ",
        Duration::from_secs(120),
        |pid| {
            std::thread::sleep(Duration::from_millis(300));
            signal(pid, "INT");
        },
    );
    let stderr = &outcome.stderr;
    let acted = outcome
        .acted_at
        .unwrap_or_else(|| panic!("never started:\n{stderr}"));
    let waited = acted.elapsed();
    assert_eq!(outcome.code(), Some(130), "{stderr}");
    assert!(
        waited < Duration::from_secs(3),
        "the interrupt took {waited:?}:\n{stderr}"
    );
    let run = run_id_of(stderr);
    let (rt, engine) = engine();
    let left = gone_within(Duration::from_secs(5), || objects_of(&engine, &rt, &run));
    assert!(left.is_empty(), "left: {left:?}");
}

/// The processes whose parent is `pid`, with their names.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.get(1) == Some(&pid.to_string().as_str()) {
            let name = head.split_once(" (").map(|(_, n)| n).unwrap_or("");
            let child: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            found.push((child, name.to_string()));
        }
    }
    found
}

/// SIGINT while a base image is made from Debian packages: mmdebstrap and
/// everything it started are stopped, and its scratch folder is removed.
fn an_interrupted_base_leaves_no_process_and_no_scratch() {
    let seen: Arc<std::sync::Mutex<Option<(u32, PathBuf)>>> = Arc::default();
    let record = seen.clone();
    // A prefix of its own: no base of this name exists, so one is made.
    let prefix = format!("pachbuild-test-base-{}", std::process::id());
    let mut command = xtask_process_with_prefix(&fixtures_root(), &prefix);
    command.args(["base", "shtest", "--base-from", "debian"]);
    let outcome = run_until(
        command,
        "mmdebstrap",
        Duration::from_secs(300),
        move |pid| {
            // Let mmdebstrap get going (it starts apt and friends).
            std::thread::sleep(Duration::from_secs(3));
            let mmdebstrap = children_of(pid)
                .into_iter()
                .find(|(_, name)| name == "mmdebstrap")
                .map(|(child, _)| child);
            if let Some(child) = mmdebstrap {
                let environ = std::fs::read(format!("/proc/{child}/environ")).unwrap_or_default();
                let scratch = environ
                    .split(|&b| b == 0)
                    .find_map(|v| v.strip_prefix(b"TMPDIR="))
                    .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()));
                if let Some(scratch) = scratch {
                    *record.lock().unwrap() = Some((child, scratch));
                }
            }
            signal(pid, "INT");
        },
    );
    let stderr = &outcome.stderr;
    assert_eq!(outcome.code(), Some(130), "{stderr}");
    let (group, scratch) = seen
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| panic!("mmdebstrap was not seen running:\n{stderr}"));
    let left = gone_within(Duration::from_secs(8), || {
        let alive =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group as i32), None).is_ok();
        let mut left = Vec::new();
        if alive {
            left.push(format!("process group {group}"));
        }
        if scratch.exists() {
            left.push(scratch.display().to_string());
        }
        left
    });
    assert!(left.is_empty(), "left: {left:?}\n{stderr}");
}

// ----- clean-up owned by the runner ------------------------------------------------

/// A runner dropped without its clean-up (a caller that returned early)
/// still removes the images made only for its run.
fn a_dropped_runner_removes_the_images_of_its_run() {
    let (rt, engine) = engine();
    let run = RunId::new();
    let fixture =
        harness::fixture::Fixture::load(&fixtures_root().join("pipelines/ordinary")).unwrap();
    {
        let runner = ephemeral_runner(&engine, &fixtures_root().join("builders"), &run);
        let outcome = rt
            .block_on(runner.run_fixture(&fixture, None, &mut |_, _| {}))
            .unwrap();
        assert!(outcome.verdict.is_ok(), "{:?}", outcome.verdict);
        let made = rt
            .block_on(engine.find_labelled(&format!("{}={run}", harness::engine::LABEL_RUN)))
            .unwrap();
        assert!(
            !made.images.is_empty(),
            "the fixture made no image of the run"
        );
    }
    let left = rt
        .block_on(engine.find_labelled(&format!("{}={run}", harness::engine::LABEL_RUN)))
        .unwrap();
    assert!(
        left.images.is_empty() && left.containers.is_empty() && left.volumes.is_empty(),
        "left by a dropped runner: {left:?}"
    );
}

const SCENARIOS: &[Scenario] = &[
    (
        "a_fixture_image_never_replaces_an_image_of_ours",
        a_fixture_image_never_replaces_an_image_of_ours,
    ),
    (
        "input_symlinks_out_of_the_folder_are_left_out",
        input_symlinks_out_of_the_folder_are_left_out,
    ),
    (
        "an_orphaned_container_stops_itself",
        an_orphaned_container_stops_itself,
    ),
    (
        "memory_stays_flat_with_large_data",
        memory_stays_flat_with_large_data,
    ),
    (
        "an_interrupt_while_the_engine_stalls",
        an_interrupt_while_the_engine_stalls,
    ),
    (
        "parallel_runs_to_one_output_folder_take_turns",
        parallel_runs_to_one_output_folder_take_turns,
    ),
    (
        "an_interrupt_during_hashing_is_served_at_once",
        an_interrupt_during_hashing_is_served_at_once,
    ),
    (
        "an_interrupted_base_leaves_no_process_and_no_scratch",
        an_interrupted_base_leaves_no_process_and_no_scratch,
    ),
    (
        "a_dropped_runner_removes_the_images_of_its_run",
        a_dropped_runner_removes_the_images_of_its_run,
    ),
];

fn main() -> ExitCode {
    e2e::run_suite(SCENARIOS)
}
