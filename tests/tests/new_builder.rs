//! End-to-end tests of `cargo xtask new-builder`: a builder scaffolded into
//! a temporary copy of `builders/` must build, validate and pass its
//! fixtures unchanged, by running exactly the commands `new-builder` prints.
//! Once from the generic template, once `--from go`.
//!
//! Images are made under the `pachbuild-test` prefix with a name unique to
//! the run, and removed at the end (also when a test fails) by
//! [`ImageGuard`]s; containers are removed by the commands themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e::{repo_root, xtask, ImageGuard};
use harness::builder::BuilderMeta;
use predicates::prelude::*;

const PREFIX: &str = "pachbuild-test";

/// A builder name no other run (or test) uses.
fn unique_name(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("nb{kind}-{}-{}", std::process::id(), nanos % 100_000)
}

/// A temporary repository root holding a copy of `builders/` (without any
/// `target/` folders).
fn root_with_builders() -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("pachbuild-new-builder-")
        .tempdir()
        .unwrap();
    copy_dir(&repo_root().join("builders"), &root.path().join("builders"));
    root
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            // Copies the permission bits too.
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The names of the entries of `builders` (hidden ones too), sorted.
fn builder_names(builders: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(builders)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `cargo xtask` on the temporary root, with the test prefix.
fn cli(root: &Path) -> assert_cmd::Command {
    let mut command = xtask();
    command
        .env("PACHBUILD_ROOT", root)
        .env("PACHBUILD_PREFIX", PREFIX);
    command
}

/// Every file under `dir` with its mode and contents.
fn tree_state(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut state = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(dir).unwrap().to_path_buf();
            if meta.is_dir() {
                state.insert(relative, (meta.permissions().mode(), Vec::new()));
                stack.push(path);
            } else {
                let contents = std::fs::read(&path).unwrap();
                state.insert(relative, (meta.permissions().mode(), contents));
            }
        }
    }
    state
}

/// The commands under "next steps:" in `new-builder`'s output, as
/// arguments after `cargo xtask`.
fn next_steps(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| *l != "next steps:")
        .filter_map(|l| l.trim_start().strip_prefix("cargo xtask "))
        .map(|l| {
            let command = l.split('#').next().unwrap_or("");
            command.split_whitespace().map(str::to_string).collect()
        })
        .collect()
}

/// Scaffolds `name` (with `extra` arguments), then runs the printed next
/// steps: build-builder, validate, test-builder. Returns test-builder's output.
fn scaffold_and_prove(root: &Path, name: &str, extra: &[&str]) -> String {
    let assert = cli(root)
        .args(["new-builder", name])
        .args(extra)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("builders/{name}/")));
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let steps = next_steps(&stdout);
    let root_arg = root.display().to_string();
    let expected: Vec<Vec<String>> = ["build-builder", "validate", "test-builder"]
        .iter()
        .map(|command| {
            // The root and prefix are not the defaults: the commands name them.
            ["--root", &root_arg, "--prefix", PREFIX, command, name]
                .map(str::to_string)
                .to_vec()
        })
        .collect();
    assert_eq!(steps, expected, "the next steps printed:\n{stdout}");

    let dir = root.join("builders").join(name);
    let meta = BuilderMeta::load(&dir).unwrap();
    assert_eq!(meta.language, name);
    for script in ["build.sh", "run.sh"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(script))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{script}");
    }

    let mut output = String::new();
    for step in &steps {
        let assert = cli(root).args(step).assert().success();
        output = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
        if step[4] == "validate" {
            assert!(output.contains("0 problem(s)"), "{output}");
        }
    }
    output
}

/// Removes the images a scaffolded builder `name` gets, in an order the
/// engine accepts (the builder image before its base), also on panic.
fn image_guards(name: &str, version: &str) -> (ImageGuard, ImageGuard) {
    // Dropped in reverse order of declaration: the builder image first.
    let base = ImageGuard(format!("{PREFIX}/base-{name}:bookworm"));
    let builder = ImageGuard(format!("{PREFIX}/{name}-build:{version}"));
    (base, builder)
}

#[test]
fn a_generic_builder_builds_validates_and_passes_its_fixture() {
    let root = root_with_builders();
    let name = unique_name("gen");
    let (_base, _builder) = image_guards(&name, "0.1.0");
    let output = scaffold_and_prove(root.path(), &name, &[]);
    assert!(output.contains(&format!("PASS {name}/hello")), "{output}");
    assert!(output.contains("1 passed, 0 failed"), "{output}");
    let meta = BuilderMeta::load(&root.path().join("builders").join(&name)).unwrap();
    assert_eq!(meta.version, "0.1.0", "the image guard's tag");
}

#[test]
fn a_builder_from_go_builds_validates_and_passes_every_fixture() {
    let root = root_with_builders();
    let name = unique_name("go");
    let version = BuilderMeta::load(&root.path().join("builders/go"))
        .unwrap()
        .version;
    // The base is named after the language: the go recipe under the new name.
    let (_base, _builder) = image_guards(&name, &version);
    let output = scaffold_and_prove(root.path(), &name, &["--from", "go"]);
    let fixtures = std::fs::read_dir(root.path().join("builders/go/fixtures"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert!(fixtures >= 8, "{fixtures}");
    assert!(
        output.contains(&format!("{fixtures} passed, 0 failed")),
        "{output}"
    );
    let meta = BuilderMeta::load(&root.path().join("builders").join(&name)).unwrap();
    assert_eq!(meta.version, version);
}

#[test]
fn bad_input_exits_2_and_leaves_the_tree_as_it_was() {
    let root = root_with_builders();
    let builders = root.path().join("builders");
    let before = tree_state(&builders);
    let known = format!("builders here: {}", builder_names(&builders).join(", "));
    let cases: &[(&[&str], &str)] = &[
        (&["new-builder", "Bad_Name"], "not a valid builder name"),
        (&["new-builder", "a/b"], "not a valid builder name"),
        (&["new-builder", "python"], "already exists"),
        (&["new-builder", "x", "--from", "cobol"], &known),
        (&["new-builder", "x", "--base", "debian"], "not pinned"),
        (
            &["new-builder", "x", "--base", "debian:latest"],
            "not pinned",
        ),
        (
            &["new-builder", "x", "--from", "go", "--base", "a b"],
            "not an image reference",
        ),
    ];
    for (args, message) in cases {
        cli(root.path())
            .args(*args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(*message))
            .stderr(predicate::str::contains("fix:"))
            .stderr(predicate::str::contains("panicked").not());
        assert_eq!(tree_state(&builders), before, "{args:?}");
    }
    // A root without builders/ is refused too, and nothing is created there.
    let empty = tempfile::tempdir().unwrap();
    cli(empty.path())
        .args(["new-builder", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--root"));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn force_replaces_an_existing_builder_and_nothing_else() {
    let root = root_with_builders();
    let builders = root.path().join("builders");
    let name = unique_name("force");
    let mut wanted = builder_names(&builders);
    cli(root.path())
        .args(["new-builder", &name, "--from", "python"])
        .assert()
        .success();
    std::fs::write(builders.join(&name).join("stale.txt"), "old").unwrap();
    cli(root.path())
        .args(["new-builder", &name])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert!(builders.join(&name).join("stale.txt").exists());
    cli(root.path())
        .args(["new-builder", &name, "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains("replacing"));
    assert!(!builders.join(&name).join("stale.txt").exists());
    let meta = BuilderMeta::load(&builders.join(&name)).unwrap();
    assert_eq!(meta.base.upstream, "debian:bookworm-slim");
    // Only the builders that were there, and the new one: no temporary folder.
    wanted.push(name.clone());
    wanted.sort();
    assert_eq!(builder_names(&builders), wanted);
}
