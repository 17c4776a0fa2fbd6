//! Unit tests of `new-builder`: the rendered files (snapshots), the renaming
//! of `--from`, the checks of the arguments, and the all-or-nothing write.
//! Snapshots are in `xtask/src/commands/snapshots/`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use harness::builder::meta::BuilderMeta;
use harness::Error;

use super::*;

// ----- helpers -----------------------------------------------------------------

fn repo_builders() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("builders")
}

fn text(files: &[FileEntry], path: &str) -> String {
    let file = files
        .iter()
        .find(|f| f.path == Path::new(path))
        .unwrap_or_else(|| panic!("{path} was not generated"));
    String::from_utf8(file.contents.clone()).unwrap()
}

fn meta_of(files: &[FileEntry]) -> BuilderMeta {
    harness::yaml::from_yaml_str(&text(files, "builder.yaml"), Path::new("builder.yaml")).unwrap()
}

/// Every file as `=== path (mode)` and its contents.
fn listing(files: &[FileEntry]) -> String {
    let mut out = String::new();
    for file in files {
        out.push_str(&format!(
            "=== {} ({:04o})\n{}",
            file.path.display(),
            file.mode,
            String::from_utf8_lossy(&file.contents)
        ));
        if !file.contents.ends_with(b"\n") {
            out.push_str("\n[no newline at end]\n");
        }
    }
    out
}

/// Snapshots with versions (`0.1.0`, `3.11.9`) and temporary paths replaced.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
            filters => vec![
                (r"\b\d+\.\d+\.\d+\b", "[version]"),
                (r"/tmp/[^\s:]+", "[tmp]"),
            ],
        }, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

/// The state of a folder: every entry (hidden ones too) with its mode and contents.
fn tree_state(dir: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut state = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(dir).unwrap().to_path_buf();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                state.insert(relative, (mode, None));
                stack.push(path);
            } else {
                state.insert(relative, (mode, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    state
}

fn args(name: &str) -> NewBuilderArgs {
    NewBuilderArgs {
        name: name.into(),
        from: None,
        base: None,
        force: false,
    }
}

/// A `builders/` folder with one small builder, `old`, in it.
fn builders_with_old() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = template::render("old", None);
    install_plain(dir.path(), "old", &files, false).unwrap();
    dir
}

/// `install` with the real rename and no interrupt.
fn install_plain(
    dir: &Path,
    name: &str,
    files: &[FileEntry],
    force: bool,
) -> harness::Result<PathBuf> {
    install_with(dir, name, files, force, &mut |a, b| std::fs::rename(a, b))
}

fn install_with(
    dir: &Path,
    name: &str,
    files: &[FileEntry],
    force: bool,
    rename: &mut dyn FnMut(&Path, &Path) -> io::Result<()>,
) -> harness::Result<PathBuf> {
    install::install(
        dir,
        name,
        files,
        force,
        install::Hooks {
            rename,
            interrupted: &|| false,
        },
    )
}

fn rename_failing_at(call: usize) -> impl FnMut(&Path, &Path) -> io::Result<()> {
    let mut calls = 0;
    move |from, to| {
        calls += 1;
        if calls == call {
            Err(io::Error::other("injected failure"))
        } else {
            std::fs::rename(from, to)
        }
    }
}

// ----- the generic template ----------------------------------------------------------

#[test]
fn generic_template_snapshot() {
    let files = template::render("demo", None);
    let tree = tree_lines(&files).join("\n");
    snapshot!(
        "new_builder_generic",
        format!("builders/demo/\n{tree}\n\n{}", listing(&files))
    );
}

#[test]
fn the_template_list_matches_the_templates_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/generic");
    let on_disk: Vec<PathBuf> = tree_state(&root)
        .into_iter()
        .filter(|(_, (_, contents))| contents.is_some())
        .map(|(path, _)| path)
        .collect();
    let mut listed: Vec<PathBuf> = template::GENERIC
        .iter()
        .map(|t| PathBuf::from(t.path))
        .collect();
    listed.sort();
    assert_eq!(
        listed, on_disk,
        "add new template files to GENERIC in template.rs"
    );
}

#[test]
fn every_placeholder_is_known() {
    for name in ["demo", "a.b-c_d"] {
        for file in template::render(name, Some("ruby:3.2")) {
            let text = String::from_utf8(file.contents).unwrap();
            assert!(
                !text.contains("{{"),
                "{}: an unknown placeholder is left:\n{text}",
                file.path.display()
            );
        }
    }
}

#[test]
fn the_generic_builder_yaml_is_valid_and_checks_the_conventions() {
    let files = template::render("demo", None);
    let meta = meta_of(&files);
    assert!(meta.problems(Path::new("builder.yaml")).is_empty());
    assert_eq!(meta.language, "demo");
    assert_eq!(meta.version, template::INITIAL_VERSION);
    assert_eq!(meta.base.upstream, "debian:bookworm-slim");
    assert_eq!(meta.base.debian.suite, "bookworm");
    assert_eq!(meta.base.debian.variant, "minbase");
    assert!(meta.base.debian.packages.is_empty());
    let files_checked: Vec<(&str, Option<&str>)> = meta
        .checks
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode.as_deref()))
        .collect();
    assert_eq!(
        files_checked,
        [
            ("/app/build.sh", Some("0755")),
            ("/app/run.sh", Some("0755"))
        ]
    );
    for label in ["title", "description", "version", "revision", "source"] {
        let label = format!("org.opencontainers.image.{label}");
        assert!(meta.checks.labels.contains(&label), "{label}");
        assert!(
            text(&files, "Dockerfile").contains(&format!("{label}=")),
            "{label}"
        );
    }
    let dockerfile = text(&files, "Dockerfile");
    assert!(
        dockerfile.contains("\nARG BASE_IMAGE=pachbuild/base-demo:bookworm\nFROM ${BASE_IMAGE}\n")
    );
    assert!(dockerfile.contains("ARG BUILDER_VERSION"));
    assert!(dockerfile.contains("ARG REVISION"));
    assert!(dockerfile.contains("WORKDIR /app"));
    for script in ["build.sh", "run.sh"] {
        let entry = files.iter().find(|f| f.path == Path::new(script)).unwrap();
        assert_eq!(entry.mode, 0o755, "{script}");
        let body = text(&files, script);
        assert!(body.starts_with("#!/bin/sh\n"), "{script}");
        assert!(body.contains("\nset -eu\n"), "{script}");
    }
    assert!(text(&files, "run.sh").ends_with("cd /pfs/source\nexec sh /pfs/build/main.sh \"$@\"\n"));
}

#[test]
fn base_sets_the_upstream_and_the_dockerfile_default() {
    let files = template::render("demo", Some("ruby:3.2.2-slim-bookworm"));
    let meta = meta_of(&files);
    assert_eq!(meta.base.upstream, "ruby:3.2.2-slim-bookworm");
    assert_eq!(meta.base.debian.suite, "bookworm");
    let dockerfile = text(&files, "Dockerfile");
    assert!(dockerfile.contains("\nARG BASE_IMAGE=ruby:3.2.2-slim-bookworm\n"));
    assert!(!dockerfile.contains("ARG BASE_IMAGE=pachbuild"));
}

#[test]
fn names_with_dots_give_valid_pipeline_names() {
    let files = template::render("c.99", None);
    let spec: serde_json::Value =
        serde_json::from_str(&text(&files, "fixtures/hello/pipeline.json")).unwrap();
    let name = spec["pipeline"]["name"].as_str().unwrap();
    assert_eq!(name, "hello-c-99");
    assert!(harness::spec::validate::is_valid_name(name));
    assert_eq!(spec["transform"]["build"]["language"], "c.99");
    assert!(text(&files, "fixtures/hello/expected/ada.txt").starts_with("pipeline hello-c-99,"));
}

#[test]
fn names_that_plain_yaml_reads_as_other_things_are_quoted() {
    assert_eq!(yaml_scalar("python"), "python");
    assert_eq!(yaml_scalar("c.99"), "c.99");
    for name in ["123", "1.5", "null", "true", "1e3", "0x1f"] {
        assert_eq!(yaml_scalar(name), format!("\"{name}\""), "{name}");
        assert!(check_name(name).is_ok(), "{name}");
        let files = template::render(name, None);
        assert_eq!(meta_of(&files).language, name);
        // And a builder made from it can be renamed back and forth.
        let meta = meta_of(&files);
        let dir = tempfile::tempdir().unwrap();
        let renamed = derive::rename(files, &meta, "plain", None, dir.path()).unwrap();
        assert_eq!(meta_of(&renamed).language, "plain");
        let meta = meta_of(&renamed);
        let back = derive::rename(renamed, &meta, name, None, dir.path()).unwrap();
        assert_eq!(meta_of(&back).language, name);
    }
}

#[test]
fn substitute_leaves_unknown_and_unclosed_placeholders() {
    let values = vec![("a", "1".to_string())];
    assert_eq!(
        template::substitute("x{{a}}y{{b}}z{{a", &values),
        "x1y{{b}}z{{a"
    );
    assert_eq!(template::substitute("${X} {{a}}}", &values), "${X} 1}");
}

// ----- --from ----------------------------------------------------------------------------

/// What renaming changed: for each changed file, its changed lines as
/// `-old` / `+new` (renaming never adds or removes lines).
fn changes(before: &[FileEntry], after: &[FileEntry]) -> String {
    let mut out = String::new();
    assert_eq!(before.len(), after.len(), "files were added or lost");
    for (old, new) in before.iter().zip(after) {
        assert_eq!(old.path, new.path);
        assert_eq!(old.mode, new.mode, "{}: mode", old.path.display());
        if old.contents == new.contents {
            continue;
        }
        let old_text = String::from_utf8_lossy(&old.contents);
        let new_text = String::from_utf8_lossy(&new.contents);
        let (old_lines, new_lines): (Vec<&str>, Vec<&str>) = (
            old_text.split('\n').collect(),
            new_text.split('\n').collect(),
        );
        assert_eq!(old_lines.len(), new_lines.len(), "{}", old.path.display());
        out.push_str(&format!("=== {}\n", old.path.display()));
        for (number, (a, b)) in old_lines.iter().zip(&new_lines).enumerate() {
            if a != b {
                out.push_str(&format!("{:>3} -{a}\n    +{b}\n", number + 1));
            }
        }
    }
    out
}

#[test]
fn from_python_snapshot() {
    let dir = repo_builders().join("python");
    let meta = BuilderMeta::load(&dir).unwrap();
    let original = derive::read_builder(&dir).unwrap();
    let renamed = derive::rename(original.clone(), &meta, "demo", None, &dir).unwrap();
    // Every file is there, with its mode; scripts are unchanged.
    for script in ["build.sh", "run.sh"] {
        let old = original
            .iter()
            .find(|f| f.path == Path::new(script))
            .unwrap();
        let new = renamed
            .iter()
            .find(|f| f.path == Path::new(script))
            .unwrap();
        assert_eq!(old, new, "{script}");
        assert_eq!(new.mode, 0o755, "{script}");
    }
    let renamed_meta = meta_of(&renamed);
    assert_eq!(renamed_meta.language, "demo");
    assert_eq!(renamed_meta.version, meta.version);
    assert_eq!(renamed_meta.base, meta.base);
    assert_eq!(renamed_meta.checks, meta.checks);
    snapshot!("new_builder_from_python", changes(&original, &renamed));
}

#[test]
fn from_go_with_base_sets_the_upstream_everywhere() {
    let dir = repo_builders().join("go");
    let meta = BuilderMeta::load(&dir).unwrap();
    let original = derive::read_builder(&dir).unwrap();
    let renamed =
        derive::rename(original, &meta, "go2", Some("golang:1.22.5-bookworm"), &dir).unwrap();
    let dockerfile = text(&renamed, "Dockerfile");
    assert!(
        dockerfile.contains("\nARG BASE_IMAGE=golang:1.22.5-bookworm\n"),
        "{dockerfile}"
    );
    assert!(!dockerfile.contains(&meta.base.upstream), "{dockerfile}");
    assert!(
        dockerfile.contains("title=\"pachbuild go2 builder\""),
        "{dockerfile}"
    );
    // The go build cache folder is not an image name: left alone.
    assert!(
        dockerfile.contains("/var/cache/pachbuild/go-build"),
        "{dockerfile}"
    );
    let meta2 = meta_of(&renamed);
    assert_eq!(meta2.base.upstream, "golang:1.22.5-bookworm");
    assert_eq!(meta2.base.debian, meta.base.debian);
    let readme = text(&renamed, "README.md");
    assert!(readme.starts_with("# go2 builder\n"));
    assert!(readme.contains("`golang:1.22.5-bookworm`"));
    assert!(readme.contains("-t pachbuild/go2-build:"));
    // Prose about the language and Go's own files stay as they were.
    assert!(readme.contains("(The upstream go builder ran from"));
    assert!(readme.contains("`go mod vendor`"));
    // Specs that name the language name the new one; the others default to it.
    let specs: Vec<String> = renamed
        .iter()
        .filter(|f| f.path.ends_with("pipeline.json"))
        .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
        .collect();
    assert!(
        specs
            .iter()
            .filter(|s| s.contains("\"language\": \"go2\""))
            .count()
            >= 5
    );
    assert!(!specs.iter().any(|s| s.contains("\"language\": \"go\"")));
}

#[test]
fn renaming_respects_name_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = template::render("go", None);
    for file in &mut files {
        if file.path == Path::new("README.md") {
            file.contents = b"# go builder\n\
                go.mod, gopher, cargo builder, the go builder, (builders/go.) builders/gopher\n\
                pachbuild/base-go:bookworm pachbuild/base-gopher:x mybase-go:1 pachbuild/go-build:1 /x/go-build\n\
                language: go\nlanguage: gopher\n{\"language\": \"go\"}\n# pachbuild go builder.\n"
                .to_vec();
        }
    }
    let meta = meta_of(&files);
    let renamed = derive::rename(files, &meta, "tinygo", None, dir.path()).unwrap();
    assert_eq!(
        text(&renamed, "README.md"),
        "# tinygo builder\n\
         go.mod, gopher, cargo builder, the go builder, (builders/tinygo.) builders/gopher\n\
         pachbuild/base-tinygo:bookworm pachbuild/base-gopher:x mybase-go:1 pachbuild/tinygo-build:1 /x/go-build\n\
         language: tinygo\nlanguage: gopher\n{\"language\": \"tinygo\"}\n# pachbuild tinygo builder.\n"
    );
}

#[test]
fn read_builder_skips_target_and_keeps_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("target/x")).unwrap();
    std::fs::write(dir.path().join("target/x/big"), "x").unwrap();
    std::fs::create_dir_all(dir.path().join("fixtures/a/target")).unwrap();
    std::fs::write(dir.path().join("fixtures/a/target/kept"), "k").unwrap();
    std::fs::write(dir.path().join("tool.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("tool.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::write(dir.path().join("data"), "d").unwrap();
    std::fs::set_permissions(
        dir.path().join("data"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let files = derive::read_builder(dir.path()).unwrap();
    let seen: Vec<(String, u32)> = files
        .iter()
        .map(|f| (f.path.display().to_string(), f.mode))
        .collect();
    assert_eq!(
        seen,
        [
            ("data".to_string(), 0o644),
            ("fixtures/a/target/kept".to_string(), 0o644),
            ("tool.sh".to_string(), 0o750)
        ]
    );
}

#[test]
fn an_unrenamable_builder_yaml_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = template::render("old", None);
    for file in &mut files {
        if file.path == Path::new("builder.yaml") {
            let text = String::from_utf8(file.contents.clone()).unwrap();
            file.contents = text
                .replace("language: old", "language: 'old'")
                .into_bytes();
        }
    }
    let meta = meta_of(&files);
    let err = derive::rename(files, &meta, "new", None, dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("builder.yaml"), "{message}");
    assert!(message.contains("`language`"), "{message}");
    assert_eq!(err.exit_code(), 2);
}

// ----- the arguments -----------------------------------------------------------------

#[test]
fn bad_names_are_usage_errors_that_create_nothing() {
    let builders = builders_with_old();
    let before = tree_state(builders.path());
    for name in ["", "Ruby", "-x", "x-", "a/b", "..", "a b", "ä", "../escape"] {
        let err = plan(builders.path(), &args(name)).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{name:?}: {err:?}");
        assert_eq!(err.exit_code(), 2);
        let message = err.to_string();
        assert!(message.contains("not a valid builder name"), "{message}");
        assert!(message.contains("fix:"), "{message}");
    }
    assert!(check_name("Ruby 3")
        .unwrap_err()
        .to_string()
        .contains("e.g. `ruby-3`"));
    assert_eq!(tree_state(builders.path()), before);
}

#[test]
fn an_existing_folder_is_a_clash_without_force() {
    let builders = builders_with_old();
    let before = tree_state(builders.path());
    let err = plan(builders.path(), &args("old")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    // Also when install is reached directly (the folder appeared meanwhile).
    let files = template::render("old", None);
    let err = install_plain(builders.path(), "old", &files, false).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    // A file of that name clashes too.
    std::fs::write(builders.path().join("notes"), "mine").unwrap();
    let before_file = tree_state(builders.path());
    assert!(plan(builders.path(), &args("notes")).is_err());
    assert_eq!(tree_state(builders.path()), before_file);
    std::fs::remove_file(builders.path().join("notes")).unwrap();
    assert_eq!(tree_state(builders.path()), before);
}

#[test]
fn unknown_from_names_the_builders_that_exist() {
    let builders = builders_with_old();
    let mut a = args("new");
    a.from = Some("cobol".into());
    let err = plan(builders.path(), &a).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let message = err.to_string();
    assert!(message.contains("\"cobol\""), "{message}");
    assert!(message.contains("builders here: old"), "{message}");
    a.from = Some("../old".into());
    assert_eq!(plan(builders.path(), &a).unwrap_err().exit_code(), 2);
    a.from = Some("new".into());
    a.name = "old".into();
    a.force = true;
    a.from = Some("old".into());
    let err = plan(builders.path(), &a).unwrap_err();
    assert!(
        err.to_string().contains("names the builder being made"),
        "{err}"
    );
}

#[test]
fn bad_bases_are_usage_errors() {
    let builders = builders_with_old();
    for (base, wanted) in [
        ("debian", "not pinned"),
        ("debian:latest", "not pinned"),
        ("x:1 # comment", "not an image reference"),
        ("x:1\nFROM y", "not an image reference"),
        ("", "not an image reference"),
    ] {
        let mut a = args("new");
        a.base = Some(base.into());
        let err = plan(builders.path(), &a).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{base:?}: {err:?}");
        assert!(err.to_string().contains("--base"), "{err}");
        assert!(err.to_string().contains(wanted), "{base:?}: {err}");
    }
    let mut a = args("new");
    a.base = Some("registry.local:5000/team/ruby@sha256:0123abcd".into());
    assert!(plan(builders.path(), &a).is_ok());
}

#[test]
fn a_missing_builders_folder_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = plan(&dir.path().join("builders"), &args("demo")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--root"), "{err}");
    assert!(!dir.path().join("builders").exists());
}

#[test]
fn from_copies_everything_renamed() {
    let builders = builders_with_old();
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(builders.path().join("old/extra.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        builders.path().join("old/extra.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(builders.path().join("old/target/debug")).unwrap();
    std::fs::write(builders.path().join("old/target/debug/x"), "x").unwrap();
    let mut a = args("new");
    a.from = Some("old".into());
    let plan = plan(builders.path(), &a).unwrap();
    let paths: Vec<String> = plan
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert!(paths.contains(&"extra.sh".to_string()));
    assert!(!paths.iter().any(|p| p.starts_with("target")), "{paths:?}");
    let extra = plan
        .files
        .iter()
        .find(|f| f.path == Path::new("extra.sh"))
        .unwrap();
    assert_eq!(extra.mode, 0o755);
    assert_eq!(meta_of(&plan.files).language, "new");
    assert!(text(&plan.files, "fixtures/hello/pipeline.json").contains("\"language\": \"new\""));
}

// ----- writing -------------------------------------------------------------------------

#[test]
fn install_writes_every_file_with_its_mode_and_leaves_nothing_else() {
    use std::os::unix::fs::PermissionsExt;
    let builders = tempfile::tempdir().unwrap();
    let files = template::render("demo", None);
    let target = install_plain(builders.path(), "demo", &files, false).unwrap();
    assert_eq!(target, builders.path().join("demo"));
    let names: Vec<_> = std::fs::read_dir(builders.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["demo"], "no temporary folder is left");
    let state = tree_state(&target);
    for file in &files {
        let (mode, contents) = &state[&file.path];
        assert_eq!(*mode, file.mode, "{}", file.path.display());
        assert_eq!(contents.as_deref(), Some(file.contents.as_slice()));
    }
    for (path, (mode, contents)) in &state {
        if contents.is_none() {
            assert_eq!(*mode, 0o755, "folder {}", path.display());
        }
    }
    let root_mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(root_mode, 0o755);
}

#[test]
fn force_replaces_the_old_folder_entirely() {
    let builders = builders_with_old();
    std::fs::write(builders.path().join("old/stale.txt"), "stale").unwrap();
    let files = template::render("old", Some("debian:bookworm-20240701-slim"));
    install_plain(builders.path(), "old", &files, true).unwrap();
    assert!(!builders.path().join("old/stale.txt").exists());
    assert!(
        std::fs::read_to_string(builders.path().join("old/builder.yaml"))
            .unwrap()
            .contains("upstream: debian:bookworm-20240701-slim")
    );
    let names: Vec<_> = std::fs::read_dir(builders.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["old"],
        "the old folder and the temporary one are gone"
    );
}

#[test]
fn an_interrupted_write_leaves_the_tree_as_it_was() {
    let builders = builders_with_old();
    let before = tree_state(builders.path());
    // The write fails half-way: "x" is a file, so "x/y" cannot be made.
    let mut files = template::render("new", None);
    files.push(FileEntry::new("x", "file", 0o644));
    files.push(FileEntry::new("x/y", "under a file", 0o644));
    let err = install_plain(builders.path(), "new", &files, false).unwrap_err();
    assert!(err.to_string().contains("x"), "{err}");
    assert_eq!(tree_state(builders.path()), before);
    // Same with --force over an existing builder: the old one is untouched.
    let mut files = template::render("old", None);
    files.push(FileEntry::new("x", "file", 0o644));
    files.push(FileEntry::new("x/y", "under a file", 0o644));
    assert!(install_plain(builders.path(), "old", &files, true).is_err());
    assert_eq!(tree_state(builders.path()), before);
}

#[test]
fn a_failing_final_rename_leaves_the_tree_as_it_was() {
    let builders = builders_with_old();
    let before = tree_state(builders.path());
    let files = template::render("new", None);
    let err = install_with(
        builders.path(),
        "new",
        &files,
        false,
        &mut rename_failing_at(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(tree_state(builders.path()), before);
}

#[test]
fn force_puts_the_old_folder_back_when_the_new_one_cannot_be_moved_in() {
    let builders = builders_with_old();
    std::fs::write(builders.path().join("old/mine.txt"), "precious").unwrap();
    let before = tree_state(builders.path());
    let files = template::render("old", None);
    // 1: old → aside (works), 2: new → target (fails), 3: aside → target (works).
    let err = install_with(
        builders.path(),
        "old",
        &files,
        true,
        &mut rename_failing_at(2),
    )
    .unwrap_err();
    assert!(err.to_string().contains("the old one is back"), "{err}");
    assert_eq!(tree_state(builders.path()), before);
    // Moving it aside failing changes nothing either.
    assert!(install_with(
        builders.path(),
        "old",
        &files,
        true,
        &mut rename_failing_at(1)
    )
    .is_err());
    assert_eq!(tree_state(builders.path()), before);
}

#[test]
fn force_keeps_the_old_folder_when_it_cannot_be_put_back() {
    let builders = builders_with_old();
    std::fs::write(builders.path().join("old/mine.txt"), "precious").unwrap();
    let files = template::render("old", None);
    let mut calls = 0;
    let err = install_with(builders.path(), "old", &files, true, &mut |a, b| {
        calls += 1;
        if calls == 1 {
            std::fs::rename(a, b)
        } else {
            Err(io::Error::other("injected failure"))
        }
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("move it back by hand"), "{message}");
    let kept = message
        .lines()
        .find_map(|l| l.strip_prefix("  fix: it is in "))
        .and_then(|l| l.strip_suffix(": move it back by hand"))
        .expect("the message says where the old builder is");
    assert_eq!(
        std::fs::read_to_string(Path::new(kept).join("mine.txt")).unwrap(),
        "precious"
    );
}

// ----- the summary ----------------------------------------------------------------------

#[test]
fn tree_lines_draw_the_files_and_collapse_large_fixture_sets() {
    let files: Vec<FileEntry> = ["a", "d/b", "d/c/e", "z"]
        .iter()
        .map(|p| FileEntry::new(*p, "", 0o644))
        .collect();
    assert_eq!(
        tree_lines(&files),
        [
            "├── a",
            "├── d/",
            "│   ├── b",
            "│   └── c/",
            "│       └── e",
            "└── z"
        ]
    );
    let dir = repo_builders().join("python");
    let files = derive::read_builder(&dir).unwrap();
    let lines = tree_lines(&files);
    assert!(lines.iter().any(|l| l.contains("hello/ (")), "{lines:#?}");
    assert!(lines.len() < 25, "{lines:#?}");
}

#[test]
fn an_interrupt_during_the_write_leaves_the_tree_as_it_was() {
    for force in [false, true] {
        let builders = builders_with_old();
        let before = tree_state(builders.path());
        let files = template::render("old", None);
        let name = if force { "old" } else { "new" };
        // The interrupt arrives after a few files have been written.
        let checks = std::cell::Cell::new(0);
        let err = install::install(
            builders.path(),
            name,
            &files,
            force,
            install::Hooks {
                rename: &mut |a, b| std::fs::rename(a, b),
                interrupted: &|| {
                    checks.set(checks.get() + 1);
                    checks.get() > 3
                },
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("interrupted"), "{err}");
        assert_eq!(tree_state(builders.path()), before, "force: {force}");
    }
}
