//! Commands the tests watch as they run: started as plain processes (so
//! that a test can signal them and read their lines as they come), and the
//! engine objects of their runs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::engine::Engine;

/// `xtask` as `e2e::xtask()` sets it up (session, no shared cache), but a
/// plain process, so that the test can signal it and read it line by line.
pub fn xtask_process(root: &Path) -> std::process::Command {
    xtask_process_with_prefix(root, crate::TEST_PREFIX)
}

/// [`xtask_process`] with image names under `prefix`.
pub fn xtask_process_with_prefix(root: &Path, prefix: &str) -> std::process::Command {
    let mut command = std::process::Command::new(crate::xtask_binary());
    command
        .current_dir(crate::repo_root())
        .env("PACHBUILD_ROOT", root)
        .env_remove("PACHBUILD_CACHE_SCOPE")
        .env_remove("DOCKER_HOST")
        .env("PACHBUILD_CACHE_ENTRIES", "0")
        .env(harness::engine::owner::SESSION_ENV, crate::session())
        .args(["--prefix", prefix])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// What a finished command said and how it ended.
pub struct Outcome {
    pub status: ExitStatus,
    pub stderr: String,
    /// When `on_marker` ran (the first line containing the marker).
    pub acted_at: Option<Instant>,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `command`; the first time a line of its stderr contains `marker`,
/// calls `on_marker` with the process id. A command that never shows the
/// marker is killed after `limit`.
pub fn run_until(
    mut command: std::process::Command,
    marker: &str,
    limit: Duration,
    on_marker: impl FnOnce(u32) + Send + 'static,
) -> Outcome {
    let mut child = command.spawn().expect("xtask starts");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let marker = marker.to_string();
    let acted = Arc::new(Mutex::new(None));
    let acted_in = acted.clone();
    let err_reader = std::thread::spawn(move || {
        let mut on_marker = Some(on_marker);
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.contains(&marker) {
                if let Some(act) = on_marker.take() {
                    act(pid);
                    *acted_in.lock().unwrap() = Some(Instant::now());
                }
            }
        }
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = err_reader.join().unwrap();
    let stdout = out_reader.join().unwrap();
    let acted_at = *acted.lock().unwrap();
    Outcome {
        status,
        stderr: format!("{stderr}\n[stdout]\n{stdout}"),
        acted_at,
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The run id a `cargo xtask run` printed on stderr.
pub fn run_id_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.rsplit_once("(run ")
                .map(|(_, id)| id.trim_end_matches(')').to_string())
        })
        .unwrap_or_else(|| panic!("no run id in:\n{stderr}"))
}

/// Containers and volumes labelled with run `run`.
pub fn objects_of(engine: &Engine, rt: &tokio::runtime::Runtime, run: &str) -> Vec<String> {
    rt.block_on(async {
        let found = engine
            .find_labelled(&format!("{}={run}", harness::engine::LABEL_RUN))
            .await
            .unwrap();
        let mut all: Vec<String> = found
            .containers
            .into_iter()
            .map(|(id, name)| format!("container {name} ({})", &id[..12]))
            .collect();
        all.extend(found.volumes.into_iter().map(|v| format!("volume {v}")));
        all
    })
}

/// Polls until `left()` is empty, for at most `limit`; returns what is left.
pub fn gone_within(limit: Duration, mut left: impl FnMut() -> Vec<String>) -> Vec<String> {
    let until = Instant::now() + limit;
    loop {
        let now = left();
        if now.is_empty() || Instant::now() > until {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "a panic:\n{stderr}"
    );
}
