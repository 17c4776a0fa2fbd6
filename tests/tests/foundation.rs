//! The foundation on a real engine: connecting, `doctor`, and making a base
//! image offline from Debian packages, reusing it, running a command in it.

use std::collections::BTreeMap;

use e2e::{with_cleanup, xtask};
use harness::builder::base::{self, BaseOptions, BaseSource, LABEL_RECIPE_HASH};
use harness::builder::meta::{BaseSpec, BuilderMeta, DebianRecipe, ImageChecks};
use harness::engine::{ContainerSpec, ExecSpec, Labels, Stream};
use predicates::prelude::*;

/// A small recipe: Debian's essential set (has `sh` and `sleep`), nothing else.
fn tiny_builder(language: &str) -> BuilderMeta {
    BuilderMeta {
        language: language.into(),
        version: "0.0.1".into(),
        description: "test".into(),
        base: BaseSpec {
            upstream: "debian:bookworm-slim".into(),
            debian: DebianRecipe {
                suite: "bookworm".into(),
                variant: "essential".into(),
                packages: vec![],
                setup: vec!["echo made-by-recipe > /etc/pachbuild-test".into()],
                env: BTreeMap::from([("PACHBUILD_TEST".into(), "yes".into())]),
            },
        },
        provides: BTreeMap::new(),
        checks: ImageChecks::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_made_from_debian_packages_runs_commands_and_is_reused() {
    with_cleanup(|engine, run| async move {
        let meta = tiny_builder(&format!("t{}", run.as_str()));
        let options = BaseOptions {
            force: Some(BaseSource::Debian),
            ephemeral: true,
            ..BaseOptions::default()
        };
        let made = base::provide(&engine, &meta, "pachbuild-test", &run, &options, &mut |l| {
            eprintln!("{l}")
        })
        .await
        .unwrap();
        assert_eq!(made.source, BaseSource::Debian);
        assert!(!made.reused);
        let image = engine
            .image(&made.image)
            .await
            .unwrap()
            .expect("the base exists");
        assert_eq!(
            image.labels.get(LABEL_RECIPE_HASH),
            Some(&meta.base.debian.hash())
        );

        // Reused on the second call, without forcing a source.
        let options = BaseOptions {
            force: None,
            ..options
        };
        let again = base::provide(&engine, &meta, "pachbuild-test", &run, &options, &mut |l| {
            eprintln!("{l}")
        })
        .await
        .unwrap();
        assert!(again.reused, "second call must reuse {}", made.image);
        assert_eq!(again.id, made.id);

        // A command runs in it, with the recipe's setup and environment.
        let container = engine
            .start_container(&ContainerSpec {
                image: made.image.clone(),
                labels: Labels::for_run(&run, "test"),
                name_hint: "pachbuild-test".into(),
                ..ContainerSpec::default()
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        let code = engine
            .exec(
                &container,
                &ExecSpec {
                    cmd: vec![
                        "sh".into(),
                        "-c".into(),
                        "cat /etc/pachbuild-test; echo $PACHBUILD_TEST; cat".into(),
                    ],
                    stdin: Some(b"from-stdin\n".to_vec()),
                    ..ExecSpec::default()
                },
                &mut |stream, bytes| {
                    if stream == Stream::Stdout {
                        out.extend_from_slice(bytes)
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!(code, 0);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "made-by-recipe\nyes\nfrom-stdin\n"
        );

        // A failing command reports its exit code.
        let code = engine
            .exec(
                &container,
                &ExecSpec {
                    cmd: vec!["sh".into(), "-c".into(), "exit 7".into()],
                    ..ExecSpec::default()
                },
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(code, 7);

        // Clean-up of the run removes the container and the ephemeral base.
        let removed = engine.clean_up_run(&run).await.unwrap();
        assert_eq!(removed.containers.len(), 1);
        assert_eq!(removed.images.len(), 1);
        assert!(engine.image(&made.image).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_is_an_error_naming_it() {
    let engine = e2e::require_engine().await;
    let err = engine
        .start_container(&ContainerSpec {
            image: "pachbuild-test/does-not-exist:1".into(),
            name_hint: "pachbuild-test".into(),
            ..ContainerSpec::default()
        })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pachbuild-test/does-not-exist:1"), "{text}");
    assert_eq!(err.exit_code(), 1);
}

#[test]
fn doctor_without_an_engine_says_where_it_looked_and_exits_3() {
    xtask()
        .arg("doctor")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("MISSING engine"))
        .stdout(predicate::str::contains("/nonexistent/docker.sock"))
        .stdout(predicate::str::contains("fix:"));
}

/// A repository root holding one tiny builder; returns (root, language).
fn tiny_root() -> (tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    let language = format!("tiny{}", std::process::id());
    let dir = root.path().join("builders").join(&language);
    std::fs::create_dir_all(&dir).unwrap();
    let meta = tiny_builder(&language);
    std::fs::write(
        dir.join("builder.yaml"),
        harness::yaml::to_yaml_string(&meta),
    )
    .unwrap();
    (root, language)
}

#[test]
fn a_command_that_needs_the_engine_exits_3_with_one_clear_line() {
    let (root, _) = tiny_root();
    xtask()
        .args(["base"])
        .env("PACHBUILD_ROOT", root.path())
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "no Docker engine reachable at tcp://127.0.0.1:9",
        ))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn doctor_with_an_engine_reports_it_and_exits_0() {
    // No builders, so no base is needed and nothing this machine may lack
    // (mmdebstrap, the linters) is required: the engine alone decides.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("builders")).unwrap();
    xtask()
        .arg("doctor")
        .env("PACHBUILD_ROOT", root.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok      engine       Docker"))
        .stdout(predicate::str::contains("API 1."))
        .stdout(predicate::str::contains("CA bundle"))
        .stdout(predicate::str::contains("MISSING").not());
}

#[test]
fn doctor_exits_1_when_a_base_must_be_made_and_mmdebstrap_is_missing() {
    // A builder whose base is nowhere (no recipe base, an upstream no one
    // has), and a PATH without mmdebstrap.
    let root = tempfile::tempdir().unwrap();
    let language = format!("tinydoc{}", std::process::id());
    let dir = root.path().join("builders").join(&language);
    std::fs::create_dir_all(&dir).unwrap();
    let mut meta = tiny_builder(&language);
    meta.base.upstream = "pachbuild-test/no-such-upstream:never".into();
    std::fs::write(
        dir.join("builder.yaml"),
        harness::yaml::to_yaml_string(&meta),
    )
    .unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    xtask()
        .arg("doctor")
        .env("PACHBUILD_ROOT", root.path())
        .env("PATH", empty_path.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("ok      engine       Docker"))
        .stdout(predicate::str::contains(format!("warn    base {language}")))
        .stdout(predicate::str::contains("MISSING mmdebstrap"));
}

#[test]
fn base_command_makes_then_reuses_a_base_offline() {
    let (root, language) = tiny_root();
    let image = tiny_builder(&language).base_image("pachbuild-test");
    let _remove_at_end = e2e::ImageGuard(image.clone());
    let run = |expect: &'static str| {
        xtask()
            .args([
                "--prefix",
                "pachbuild-test",
                "base",
                "--base-from",
                "debian",
                &language,
            ])
            .env("PACHBUILD_ROOT", root.path())
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "{language}: {image} (debian base, {expect}"
            )));
    };
    run("made");
    run("reused");
}
