//! Shared helpers for the end-to-end tests in `tests/tests/`.
//!
//! These tests need a real Docker engine. When none answers they fail with a
//! message that says so; they never skip silently.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub mod process;
pub mod proxy;

use harness::engine::{Engine, RunId};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The test fixtures: the test builders (`builders/shtest`) and pipelines.
pub fn fixtures_root() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// A runtime and a connected engine, for tests that are not async.
pub fn engine() -> (tokio::runtime::Runtime, Engine) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let engine = rt.block_on(require_engine());
    (rt, engine)
}

/// A connected engine, or a panic that names what is missing and how to fix it.
pub async fn require_engine() -> Engine {
    match Engine::connect().await {
        Ok(engine) => engine,
        Err(e) => panic!(
            "this end-to-end test needs a Docker engine and none is reachable:\n{e}\n\
             (CI starts one in .ci/run; locally start dockerd or set DOCKER_HOST)"
        ),
    }
}

/// The `xtask` binary, built once if `cargo test` did not build it already.
pub fn xtask_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "xtask"])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building xtask failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("debug").join("xtask")
        })
        .clone()
}

/// A command running `cargo xtask` (the built binary), from the repo root.
/// The session of this test binary: every command it runs carries it, so
/// that what a failed test left can be swept without touching anyone else's.
pub fn session() -> &'static str {
    static SESSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SESSION.get_or_init(|| format!("test-{}", RunId::new()))
}

/// The containers of this test binary's session on the engine (the engine
/// is shared: other runs' containers come and go).
pub async fn session_containers(engine: &Engine) -> Vec<(String, String)> {
    engine
        .find_labelled(&format!(
            "{}={}",
            harness::engine::labels::LABEL_SESSION,
            session()
        ))
        .await
        .expect("list the session's containers")
        .containers
}

/// Removes what the commands of this test binary left (their processes are
/// over), and nothing else.
pub async fn sweep_session(engine: &Engine) -> Result<Vec<String>, harness::Error> {
    let options = harness::engine::sweep::SweepOptions {
        session: Some(session().to_string()),
        ..Default::default()
    };
    Ok(harness::engine::sweep::sweep(engine, &options)
        .await?
        .removed)
}

pub fn xtask() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::from_std(xtask_std());
    command.timeout(std::time::Duration::from_secs(1500));
    command
}

/// [`xtask`] as a plain `std` command (to give it a terminal of its own).
pub fn xtask_std() -> std::process::Command {
    let mut command = std::process::Command::new(xtask_binary());
    // Each command's build cache goes with it (nothing of the user's cache is
    // read or evicted); tests of the cache name a scope of their own.
    command
        .current_dir(repo_root())
        .env_remove("PACHBUILD_ROOT")
        .env_remove("PACHBUILD_CACHE_SCOPE")
        .env("PACHBUILD_CACHE_ENTRIES", "0")
        .env(harness::engine::owner::SESSION_ENV, session());
    command
}

/// Runs `body` with a fresh run id, then removes whatever that run made on
/// the engine, also when `body` panics; the panic is then passed on.
pub async fn with_cleanup<F, Fut>(body: F)
where
    F: FnOnce(Engine, RunId) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let engine = require_engine().await;
    let run = RunId::new();
    let outcome = tokio::spawn(body(engine.clone(), run.clone())).await;
    let cleaned = engine.clean_up_run(&run).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    cleaned.expect("clean-up after the test");
}

/// Removes an image when dropped, also when the test panics.
pub struct ImageGuard(pub String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let image = self.0.clone();
        // A thread of its own: drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async {
                if let Ok(engine) = Engine::connect().await {
                    let _ = engine.remove_image(&image).await;
                }
            });
        })
        .join();
    }
}

/// The image name prefix every end-to-end test uses, apart from the user's.
pub const TEST_PREFIX: &str = "pachbuild-test";

/// A runner whose bases and builder images are made under [`TEST_PREFIX`]
/// and labelled ephemeral to `run`, so `engine.clean_up_run(run)` removes them.
pub fn ephemeral_runner(
    engine: &Engine,
    builders_dir: &Path,
    run: &RunId,
) -> harness::runner::Runner {
    let options = harness::runner::RunnerOptions {
        run: run.clone(),
        prefix: TEST_PREFIX.into(),
        base: harness::builder::BaseOptions {
            ephemeral: true,
            ..harness::builder::BaseOptions::default()
        },
        ephemeral_images: true,
        // Build cache entries of their own, removed with the run.
        cache: harness::pipeline::CacheOptions {
            scope: format!("test-{run}"),
            ephemeral: true,
            ..harness::pipeline::CacheOptions::default()
        },
        ..harness::runner::RunnerOptions::default()
    };
    harness::runner::Runner::with_engine(engine.clone(), builders_dir, options)
        .expect("runner options are valid")
}

/// Removes the objects a `--keep` run listed on stderr
/// (`  container <id>`, `  volume <name>`), containers first.
pub async fn remove_kept(engine: &Engine, stderr: &str) {
    let listed = |kind: &str| -> Vec<String> {
        stderr
            .lines()
            .filter_map(|l| l.trim().strip_prefix(kind))
            .filter_map(|rest| rest.split_whitespace().next().map(String::from))
            .collect()
    };
    for id in listed("container ") {
        engine
            .remove_container(&id)
            .await
            .expect("remove a kept container");
    }
    for name in listed("volume ") {
        engine
            .remove_volume(&name)
            .await
            .expect("remove a kept volume");
    }
}

/// Prints the lines of an image build worth seeing in a test log.
pub fn print_setup_line(label: &str, line: &str) {
    if line.starts_with("Step ") || line.starts_with("base: ") {
        eprintln!("setup {label} | {line}");
    }
}

/// Copies the tree `from` into `to` (made when missing); symlinks stay
/// symlinks, files keep their permission bits.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A named end-to-end scenario of a test binary that runs its own `main`.
pub type Scenario = (&'static str, fn());

/// The scenarios the command line names (all when it names none), or `None`
/// when it asks only for their names (`--list`, printed here as libtest does).
pub fn select_scenarios(all: &'static [Scenario]) -> Option<Vec<&'static Scenario>> {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Scenario> = all
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return None;
    }
    Some(selected)
}

/// Runs each scenario, a panic failing only it; prints `test NAME ... ok`
/// or `FAILED` with its time. Returns (passed, failed).
pub fn run_scenarios(selected: &[&Scenario]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for (name, scenario) in selected {
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(scenario);
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({seconds:.1}s)");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED ({seconds:.1}s)");
            }
        }
    }
    (passed, failed)
}

/// The sandbox of one end-to-end test binary on a shared engine: the run
/// its own objects carry (the `shtest` builder image and its base, built
/// once, ephemeral), and their clean-up when dropped, with what the
/// commands of its session left (their processes are over by then). Every
/// `xtask` the tests start carries the binary's session ([`session`]), so
/// nothing of anyone else's is touched.
pub struct Sandbox {
    pub rt: tokio::runtime::Runtime,
    pub engine: Engine,
    pub run: RunId,
}

/// The tag of the shared `shtest` builder image, once a [`Sandbox`] made it.
pub fn shtest_image() -> &'static str {
    SHTEST_IMAGE
        .get()
        .map(String::as_str)
        .expect("the sandbox built the shtest builder")
}

static SHTEST_IMAGE: OnceLock<String> = OnceLock::new();

impl Sandbox {
    /// Connects to the engine (or fails saying what is missing) and builds
    /// the `shtest` builder of `tests/fixtures/builders`.
    pub fn with_shtest() -> Sandbox {
        let (rt, engine) = engine();
        let run = RunId::new();
        let builders = fixtures_root().join("builders");
        let runner = ephemeral_runner(&engine, &builders, &run);
        let (_, builder) = rt
            .block_on(runner.ensure_builder("shtest", &mut |line| print_setup_line("shtest", line)))
            .expect("the shtest builder image builds");
        let _ = SHTEST_IMAGE.set(builder.image);
        assert!(xtask_binary().is_file(), "the xtask binary is built");
        Sandbox { rt, engine, run }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.rt.block_on(async {
            // Another user's test may have built on our base meanwhile (a
            // shared engine): then it stays, and that is not our failure.
            match self.engine.clean_up_run(&self.run).await {
                Ok(removed) => eprintln!("removed {} test image(s)", removed.images.len()),
                Err(e) => eprintln!("warning: clean-up: {e}"),
            }
            let swept = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                sweep_session(&self.engine),
            )
            .await;
            if let Ok(Ok(left)) = swept {
                if !left.is_empty() {
                    eprintln!("removed what the scenarios' commands left: {left:?}");
                }
            }
        });
    }
}

/// The `main` of a test binary of scenarios on the `shtest` builder: runs
/// the scenarios the command line names in a [`Sandbox`], removes what it
/// made, and prints `N passed, M failed`.
pub fn run_suite(all: &'static [Scenario]) -> std::process::ExitCode {
    let Some(selected) = select_scenarios(all) else {
        return std::process::ExitCode::SUCCESS;
    };
    let sandbox = Sandbox::with_shtest();
    let (passed, failed) = run_scenarios(&selected);
    drop(sandbox);
    println!("\n{passed} passed, {failed} failed");
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
