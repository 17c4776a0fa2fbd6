//! `cargo xtask publish` against a real registry: Debian's `docker-registry`
//! (the reference implementation of the distribution protocol), started on
//! a free loopback port with its storage in a temporary folder, and stopped
//! at the end (a guard kills it, also when a scenario fails).
//!
//! Images are made under a prefix of this run's own, labelled ephemeral;
//! the bases are the user's `pachbuild/base-*` images when they exist (only
//! tagged under the test prefix, never changed), else made here. Everything
//! named under the test prefix or the test registries is removed at the end.
//!
//! Needs: a Docker engine, `docker-registry` and `htpasswd` (`.ci/run`
//! installs both). A missing one fails the run with the fix; nothing is
//! skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use e2e::copy_dir;
use e2e::{print_setup_line, repo_root, require_engine, xtask};
use harness::builder::meta::builder_dirs;
use harness::builder::BuilderMeta;
use harness::engine::{Engine, RunId};
use predicates::prelude::*;

// ----- the registry ----------------------------------------------------------

/// A `docker-registry` process on 127.0.0.1:<port>, killed on drop.
struct TestRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts one; with `htpasswd`, it wants Basic auth with that user and password.
    fn start(htpasswd: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = htpasswd {
            let line = Command::new("htpasswd")
                .args(["-nbB", user, password])
                .output()
                .unwrap_or_else(|e| {
                    panic!("htpasswd cannot run ({e}): install it (Debian: apache2-utils); .ci/run does")
                });
            assert!(line.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, line.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: pachbuild-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("docker-registry cannot start ({e}): install it (Debian: `apt-get install docker-registry`); .ci/run does")
            });
        let registry = TestRegistry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while http(port, "GET", "/v2/", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on port {port} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// An HTTP answer: status, headers (names lowercased), body.
type Answer = (u16, Vec<(String, String)>, String);

/// A plain HTTP/1.1 exchange with the registry's API, written here (not the
/// harness's client), so the checks do not trust the code they check.
/// Returns (status, headers lowercased, body).
fn http(port: u16, method: &str, path: &str, basic: Option<&str>) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json\r\n"
    );
    if let Some(auth) = basic {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// The registry's tags of `name`, from its tags list.
fn registry_tags(port: u16, name: &str, basic: Option<&str>) -> Vec<String> {
    let (status, _, body) = http(port, "GET", &format!("/v2/{name}/tags/list"), basic).unwrap();
    assert_eq!(status, 200, "tags list of {name}: {body}");
    let value: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    value["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The digest the registry holds under `name:tag`, from a manifest HEAD.
fn registry_digest(port: u16, name: &str, tag: &str, basic: Option<&str>) -> Option<String> {
    let (status, headers, _) =
        http(port, "HEAD", &format!("/v2/{name}/manifests/{tag}"), basic).unwrap();
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "manifest HEAD of {name}:{tag}");
    headers
        .into_iter()
        .find(|(k, _)| k == "docker-content-digest")
        .map(|(_, v)| v)
}

// ----- the run's images --------------------------------------------------------

struct Setup {
    prefix: String,
    /// An empty Docker config folder: the user's own is never read.
    docker_config: tempfile::TempDir,
    /// Registry hosts whose references on the engine are ours to remove.
    registries: Mutex<Vec<String>>,
}

static SETUP: OnceLock<Setup> = OnceLock::new();

fn setup() -> &'static Setup {
    SETUP.get().expect("set up in main")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

fn official() -> Vec<(PathBuf, BuilderMeta)> {
    builder_dirs(&repo_root().join("builders"))
        .expect("builders/ lists")
        .into_iter()
        .map(|d| {
            let meta = BuilderMeta::load(&d).expect("builder.yaml loads");
            (d, meta)
        })
        .collect()
}

/// `cargo xtask --prefix <test prefix> publish` with no credentials of the user's.
fn publish() -> assert_cmd::Command {
    let mut command = xtask();
    command
        .env("DOCKER_CONFIG", setup().docker_config.path())
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .args(["--prefix", &setup().prefix, "publish"]);
    command
}

fn note_registry(registry: &TestRegistry) {
    setup().registries.lock().unwrap().push(registry.host());
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn all_output(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The revision label a publish from this work tree writes.
fn expected_revision() -> String {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let commit = git(&["rev-parse", "HEAD"]);
    if git(&["status", "--porcelain", "--untracked-files=normal"]).is_empty() {
        commit
    } else {
        format!("{commit}-dirty")
    }
}

// ----- scenarios -----------------------------------------------------------------

/// `--dry-run` needs no engine and no registry: both point nowhere here.
fn dry_run_contacts_nothing() {
    let port = free_port();
    let output = publish()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args([
            "--registry",
            &format!("127.0.0.1:{port}/ns"),
            "--dry-run",
            "--allow-dirty",
            "--latest",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = stdout_of(&output);
    for (_, meta) in official() {
        for tag in [meta.version.as_str(), "latest"] {
            let reference = format!("127.0.0.1:{port}/ns/{}-build:{tag}", meta.language);
            assert!(text.contains(&reference), "{reference} in:\n{text}");
        }
    }
    assert!(text.contains("no registry is contacted"), "{text}");
    let output = publish()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args([
            "--registry",
            &format!("127.0.0.1:{port}"),
            "--dry-run",
            "--allow-dirty",
            "--json",
            "python",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let value: serde_json::Value =
        serde_json::from_str(&stdout_of(&output)).expect("--json prints JSON");
    assert_eq!(value["dry_run"], true);
    assert_eq!(value["builders"][0]["builder"], "python");
}

/// Bad versions, registries and a dirty tree stop everything: exit 2, and
/// no engine is asked (DOCKER_HOST points nowhere).
fn bad_input_is_refused_before_anything_runs() {
    let nowhere = "unix:///nonexistent/docker.sock";
    for (args, says) in [
        (vec!["--version", "1.0+build"], "not a valid image tag"),
        (vec!["--version", "latest"], "--latest"),
        (vec!["--version", ".1"], "not a valid image tag"),
    ] {
        publish()
            .env("DOCKER_HOST", nowhere)
            .args(["--registry", "127.0.0.1:5000", "--allow-dirty", "python"])
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
    publish()
        .env("DOCKER_HOST", nowhere)
        .args([
            "--registry",
            "http://127.0.0.1:5000",
            "--allow-dirty",
            "python",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("without a scheme"));
    publish()
        .env("DOCKER_HOST", nowhere)
        .args(["--registry", "127.0.0.1:5000", "--skip-tests", "python"])
        .assert()
        .code(2);
    // A builder whose builder.yaml has a version that is no tag.
    let root = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_root().join("builders/python"),
        &root.path().join("builders/python"),
    );
    let yaml = root.path().join("builders/python/builder.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replace("version: 0.1.0", "version: \"0.1.0+x\""),
    )
    .unwrap();
    publish()
        .env("DOCKER_HOST", nowhere)
        .env("PACHBUILD_ROOT", root.path())
        .args(["--registry", "127.0.0.1:5000", "--allow-dirty", "python"])
        .assert()
        .code(2);
    // A dirty tree (here: a git repository with an uncommitted file).
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(root.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    std::fs::write(&yaml, text).unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "builders"]);
    std::fs::write(root.path().join("builders/python/NOTES"), "uncommitted").unwrap();
    publish()
        .env("DOCKER_HOST", nowhere)
        .env("PACHBUILD_ROOT", root.path())
        .args(["--registry", "127.0.0.1:5000", "--dry-run", "python"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("uncommitted changes"))
        .stderr(predicate::str::contains("NOTES"))
        .stderr(predicate::str::contains("--allow-dirty"));
}

/// Nothing listens on the port: a clear failure in seconds, naming the
/// registry and the builder; nothing was built or tested first.
fn an_unreachable_registry_fails_in_seconds() {
    let port = free_port();
    let started = Instant::now();
    let output = publish()
        .args([
            "--registry",
            &format!("127.0.0.1:{port}"),
            "--allow-dirty",
            "python",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let text = all_output(&output);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("not published: python"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        text.contains("0 published, 1 not published (python)"),
        "{text}"
    );
    assert!(!text.contains("PASS "), "no fixture should run:\n{text}");
}

/// Every official builder, published and checked through the registry's
/// API; python pulled back and run; a second publish is a no-op.
fn every_official_builder_is_published_and_verified() {
    let registry = TestRegistry::start(None);
    note_registry(&registry);
    let host = registry.host();
    let output = publish()
        .args(["--registry", &host, "--allow-dirty", "--latest", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let document: serde_json::Value = serde_json::from_str(&stdout_of(&output))
        .unwrap_or_else(|e| panic!("--json: {e}\n{}", all_output(&output)));
    let builders = official();
    assert_eq!(document["ok"], true);
    assert_eq!(
        document["published"].as_array().unwrap().len(),
        builders.len(),
        "{document}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let revision = expected_revision();
    let engine = runtime().block_on(require_engine());
    for (i, (_, meta)) in builders.iter().enumerate() {
        let entry = &document["builders"][i];
        assert_eq!(entry["builder"], meta.language.as_str());
        let name = format!("{}-build", meta.language);
        let tags = registry_tags(registry.port, &name, None);
        for (j, tag) in [meta.version.as_str(), "latest"].iter().enumerate() {
            assert!(tags.iter().any(|t| t == tag), "{name}:{tag} in {tags:?}");
            let printed = entry["references"][j]["digest"]
                .as_str()
                .unwrap()
                .to_string();
            let held = registry_digest(registry.port, &name, tag, None);
            assert_eq!(held.as_deref(), Some(printed.as_str()), "{name}:{tag}");
            let pinned = format!("{host}/{name}:{tag}@{printed}");
            assert!(stderr.contains(&pinned), "{pinned} printed in:\n{stderr}");
        }
        // The OCI labels of the release.
        let reference = format!("{host}/{name}:{}", meta.version);
        let info = runtime()
            .block_on(engine.image(&reference))
            .unwrap()
            .expect("the release image is on the engine");
        let label = |key: &str| info.labels.get(key).cloned().unwrap_or_default();
        assert_eq!(label("org.opencontainers.image.version"), meta.version);
        assert_eq!(label("org.opencontainers.image.revision"), revision);
        assert!(!label("org.opencontainers.image.source").is_empty());
        assert!(!label("org.opencontainers.image.created").is_empty());
    }

    // Pull python back from the registry and run a fixture on the pulled image.
    let python = builders
        .iter()
        .find(|(_, m)| m.language == "python")
        .unwrap();
    let reference = format!("{host}/python-build:{}", python.1.version);
    let latest = format!("{host}/python-build:latest");
    let digest = document["builders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["builder"] == "python")
        .unwrap()["references"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    runtime().block_on(async {
        engine.untag(&reference).await.unwrap();
        engine.untag(&latest).await.unwrap();
        assert!(engine.image(&reference).await.unwrap().is_none());
        engine
            .pull(&reference, Duration::from_secs(120))
            .await
            .expect("the published image pulls back");
        let digests = engine.repo_digests(&reference).await.unwrap();
        assert!(
            digests.contains(&format!("{host}/python-build@{digest}")),
            "{digests:?}"
        );
    });
    let fixture = tempfile::tempdir().unwrap();
    copy_dir(&python.0.join("fixtures/hello"), fixture.path());
    let spec = fixture.path().join("pipeline.json");
    let text = std::fs::read_to_string(&spec).unwrap();
    let text = text.replace(
        r#""build": { "language": "python", "path": "./source" }"#,
        &format!(r#""build": {{ "image": "{reference}", "path": "./source" }}"#),
    );
    assert!(
        text.contains(&reference),
        "the hello fixture's spec changed shape:\n{text}"
    );
    std::fs::write(&spec, text).unwrap();
    xtask()
        .args(["--prefix", &setup().prefix, "test-builder", "--fixture"])
        .arg(fixture.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("1 passed, 0 failed"));

    // Publishing the same version again changes nothing.
    let output = publish()
        .args(["--registry", &host, "--allow-dirty", "python"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = stdout_of(&output);
    assert!(
        text.contains(&format!("unchanged {reference}@{digest}")),
        "{text}"
    );
    assert!(
        text.contains("already there, nothing pushed: python"),
        "{text}"
    );
    assert_eq!(
        registry_digest(registry.port, "python-build", &python.1.version, None),
        Some(digest)
    );
}

/// A changed builder under the same version is refused; `--force` replaces it.
fn a_changed_image_under_the_same_version_is_refused_unless_forced() {
    let registry = TestRegistry::start(None);
    note_registry(&registry);
    let host = registry.host();
    let output = publish()
        .args(["--registry", &host, "--allow-dirty", "--json", "python"])
        .assert()
        .success()
        .get_output()
        .clone();
    let document: serde_json::Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    let first = document["builders"][0]["references"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The same builder with one change, same version, in a root of its own.
    let root = tempfile::tempdir().unwrap();
    let python = root.path().join("builders/python");
    copy_dir(&repo_root().join("builders/python"), &python);
    let run_sh = python.join("run.sh");
    let mut text = std::fs::read_to_string(&run_sh).unwrap();
    text.push_str("# a change under the same version\n");
    std::fs::write(&run_sh, text).unwrap();
    let version = BuilderMeta::load(&python).unwrap().version;
    let output = publish()
        .env("PACHBUILD_ROOT", root.path())
        .args(["--registry", &host, "--allow-dirty", "python"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let text = all_output(&output);
    assert!(
        text.contains("already in the registry as another image"),
        "{text}"
    );
    assert!(text.contains("--force"), "{text}");
    assert!(
        text.contains("0 published, 1 not published (python)"),
        "{text}"
    );
    assert_eq!(
        registry_digest(registry.port, "python-build", &version, None).as_deref(),
        Some(first.as_str())
    );
    let output = publish()
        .env("PACHBUILD_ROOT", root.path())
        .args(["--registry", &host, "--allow-dirty", "--force", "python"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = stdout_of(&output);
    let held = registry_digest(registry.port, "python-build", &version, None).unwrap();
    assert_ne!(held, first);
    assert!(
        text.contains(&format!(
            "pushed {host}/python-build:{version}@{held} (replaced another image)"
        )),
        "{text}"
    );
}

/// A registry behind Basic auth: wrong credentials fail cleanly and at
/// once (never shown), the right ones (from a Docker config) publish.
fn a_registry_behind_basic_auth() {
    let (user, password) = ("pachbuild-ci", "correct-horse-battery");
    let registry = TestRegistry::start(Some((user, password)));
    note_registry(&registry);
    let host = registry.host();
    let started = Instant::now();
    let output = publish()
        .env("REGISTRY_USERNAME", user)
        .env("REGISTRY_PASSWORD", "wrong-password-not-shown")
        .args(["--registry", &host, "--allow-dirty", "python"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let text = all_output(&output);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(text.contains(&host), "{text}");
    assert!(text.contains("not published: python"), "{text}");
    assert!(
        !text.contains("wrong-password-not-shown"),
        "the password was printed:\n{text}"
    );
    // No credentials at all: the fix names the variables.
    publish()
        .args(["--registry", &host, "--allow-dirty", "python"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("requires credentials"))
        .stdout(predicate::str::contains("REGISTRY_USERNAME"));
    // The right ones, from a Docker config's `auths`.
    let config = tempfile::tempdir().unwrap();
    let auth = harness::registry::Credentials::new(
        user,
        password,
        harness::registry::CredentialsSource::Environment,
    )
    .basic_header();
    let encoded = auth.trim_start_matches("Basic ");
    std::fs::write(
        config.path().join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{encoded}"}}}}}}"#),
    )
    .unwrap();
    let output = publish()
        .env("DOCKER_CONFIG", config.path())
        .args(["--registry", &host, "--allow-dirty", "python"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = all_output(&output);
    assert!(
        !text.contains(password),
        "the password was printed:\n{text}"
    );
    let version = official()
        .into_iter()
        .find(|(_, m)| m.language == "python")
        .unwrap()
        .1
        .version;
    let (status, _, _) = http(registry.port, "GET", "/v2/python-build/tags/list", None).unwrap();
    assert_eq!(status, 401, "the registry wants credentials");
    let tags = registry_tags(registry.port, "python-build", Some(&auth));
    assert!(tags.contains(&version), "{tags:?}");
    let held = registry_digest(registry.port, "python-build", &version, Some(&auth)).unwrap();
    assert!(
        text.contains(&format!("pushed {host}/python-build:{version}@{held}")),
        "{text}"
    );
}

use e2e::Scenario;

const SCENARIOS: &[Scenario] = &[
    ("dry_run_contacts_nothing", dry_run_contacts_nothing),
    (
        "bad_input_is_refused_before_anything_runs",
        bad_input_is_refused_before_anything_runs,
    ),
    (
        "an_unreachable_registry_fails_in_seconds",
        an_unreachable_registry_fails_in_seconds,
    ),
    (
        "every_official_builder_is_published_and_verified",
        every_official_builder_is_published_and_verified,
    ),
    ("a_registry_behind_basic_auth", a_registry_behind_basic_auth),
    // Last: it replaces the python builder image under the test prefix.
    (
        "a_changed_image_under_the_same_version_is_refused_unless_forced",
        a_changed_image_under_the_same_version_is_refused_unless_forced,
    ),
];

// ----- main ------------------------------------------------------------------------

/// Names the user's bases under the test prefix when they were made from the
/// same recipe (a tag: the user's image is not changed). Returns the tags made.
async fn borrow_bases(engine: &Engine, prefix: &str) -> Vec<String> {
    let mut made = Vec::new();
    for (_, meta) in official() {
        let theirs = meta.base_image("pachbuild");
        let Ok(Some(info)) = engine.image(&theirs).await else {
            continue;
        };
        let recipe = info.labels.get(harness::builder::base::LABEL_RECIPE_HASH);
        if recipe == Some(&meta.base.debian.hash()) {
            let ours = meta.base_image(prefix);
            if engine.tag_image(&info.id, &ours).await.is_ok() {
                eprintln!("setup {}: base {theirs} borrowed as {ours}", meta.language);
                made.push(ours);
            }
        }
    }
    made
}

/// Removes every reference under the test prefix or a test registry (all
/// made by this run), and the tags borrowed.
async fn remove_ours(engine: &Engine, prefix: &str, registries: &[String]) {
    let mut names: Vec<String> = Vec::new();
    for (_, meta) in official() {
        names.push(meta.base_image(prefix));
        names.push(meta.builder_image(prefix));
        for host in registries {
            names.push(format!("{host}/{}-build:{}", meta.language, meta.version));
            names.push(format!("{host}/{}-build:latest", meta.language));
        }
    }
    for name in names {
        if let Err(e) = engine.untag(&name).await {
            eprintln!("clean-up: {e}");
        }
    }
    // A release image that lost its tag to a newer one keeps a `repo@digest`
    // of the registry it was pushed to: remove those whose every reference
    // is one of this run's registries.
    let ours = |reference: &String| {
        registries
            .iter()
            .any(|h| reference.starts_with(&format!("{h}/")))
    };
    let releases = engine
        .image_references(&format!("{}=release", harness::engine::LABEL_KIND))
        .await
        .unwrap_or_default();
    for (id, tags, digests) in releases {
        let references: Vec<&String> = tags.iter().chain(digests.iter()).collect();
        if !references.is_empty() && references.iter().all(|r| ours(r)) {
            if let Err(e) = engine.remove_image(&id).await {
                eprintln!("clean-up: {e}");
            }
        }
    }
}

fn main() -> ExitCode {
    let Some(selected) = e2e::select_scenarios(SCENARIOS) else {
        return ExitCode::SUCCESS;
    };
    if selected.is_empty() {
        println!("0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    for (tool, fix) in [
        ("docker-registry", "apt-get install docker-registry"),
        ("htpasswd", "apt-get install apache2-utils"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "these tests need `{tool}`: {fix} (.ci/run installs it)"
        );
    }
    let rt = runtime();
    let run = RunId::new();
    let prefix = format!("pachbuild-test-publish-{run}");
    let engine = rt.block_on(require_engine());
    SETUP
        .set(Setup {
            prefix: prefix.clone(),
            docker_config: tempfile::tempdir().unwrap(),
            registries: Mutex::new(Vec::new()),
        })
        .ok()
        .expect("set up once");
    let borrowed = rt.block_on(borrow_bases(&engine, &prefix));
    // The builder images, ephemeral to this run, built before the scenarios
    // so that `publish` reuses them.
    let setup_result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // As `ephemeral_runner`, under this run's own prefix.
        let options = harness::runner::RunnerOptions {
            run: run.clone(),
            prefix: prefix.clone(),
            base: harness::builder::BaseOptions {
                ephemeral: true,
                ..Default::default()
            },
            ephemeral_images: true,
            ..Default::default()
        };
        let runner = harness::runner::Runner::with_engine(
            engine.clone(),
            repo_root().join("builders"),
            options,
        )
        .expect("runner options are valid");
        for (_, meta) in official() {
            let started = Instant::now();
            let language = meta.language.clone();
            rt.block_on(
                runner.ensure_builder(&language, &mut |line| print_setup_line(&language, line)),
            )
            .unwrap_or_else(|e| panic!("building the {language} builder: {e}"));
            eprintln!(
                "setup {language}: base and image in {:.0}s",
                started.elapsed().as_secs_f64()
            );
        }
    }));

    let (passed, failed) = if setup_result.is_ok() {
        e2e::run_scenarios(&selected)
    } else {
        println!("test setup ... FAILED");
        (0, 1)
    };
    rt.block_on(async {
        let registries = setup().registries.lock().unwrap().clone();
        remove_ours(&engine, &prefix, &registries).await;
        for tag in &borrowed {
            let _ = engine.untag(tag).await;
        }
        match engine.clean_up_run(&run).await {
            Ok(removed) => eprintln!("removed {} test image(s)", removed.images.len()),
            Err(e) => eprintln!("clean-up failed: {e}"),
        }
    });
    println!("\n{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
