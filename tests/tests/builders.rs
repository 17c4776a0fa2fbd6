//! The official builders, end to end: their bases are made offline, their
//! images built, and every fixture of `builders/*/fixtures` run through
//! `cargo xtask test-builder`, as a newcomer's first command would; then
//! `cargo xtask validate` checks each folder and image.
//!
//! Images are made under the `pachbuild-test` prefix and labelled ephemeral,
//! so the clean-up at the end removes them and the user's own images are
//! never touched.

use std::process::ExitCode;

use e2e::{
    ephemeral_runner, print_setup_line, repo_root, require_engine, xtask, TEST_PREFIX as PREFIX,
};
use harness::engine::RunId;
use predicates::prelude::*;

fn official_builders() -> Vec<String> {
    let mut names: Vec<String> =
        harness::builder::meta::builder_dirs(&repo_root().join("builders"))
            .expect("builders/ lists")
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
    names.sort();
    names
}

fn fixture_count(language: &str) -> usize {
    std::fs::read_dir(repo_root().join("builders").join(language).join("fixtures"))
        .map(|entries| {
            entries
                .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
                .count()
        })
        .unwrap_or(0)
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        println!("official_builders_pass_their_fixtures: test");
        return ExitCode::SUCCESS;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filter.is_empty()
        && !filter
            .iter()
            .any(|f| "official_builders_pass_their_fixtures".contains(f.as_str()))
    {
        println!("0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let engine = rt.block_on(require_engine());
    let run = RunId::new();
    let languages = official_builders();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let runner = ephemeral_runner(&engine, &repo_root().join("builders"), &run);
        for language in &languages {
            let started = std::time::Instant::now();
            rt.block_on(
                runner.ensure_builder(language, &mut |line| print_setup_line(language, line)),
            )
            .unwrap_or_else(|e| panic!("building the {language} builder: {e}"));
            eprintln!(
                "setup {language}: base and image in {:.0}s",
                started.elapsed().as_secs_f64()
            );
        }
        let total: usize = languages.iter().map(|l| fixture_count(l)).sum();
        assert!(
            total >= 16,
            "python and go need their fixtures; found {total}"
        );
        xtask()
            .args(["--prefix", PREFIX, "test-builder"])
            .args(&languages)
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "{total} passed, 0 failed"
            )))
            .stdout(predicate::str::contains("(reused)"));
        // Every static check, both linters, and the image checks of each
        // builder.yaml against the images just built.
        xtask()
            .args(["--prefix", PREFIX, "validate"])
            .args(&languages)
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "validate: 0 problem(s) in {} builder(s)",
                languages.len()
            )));
    }));
    let cleaned = rt.block_on(engine.clean_up_run(&run));
    match (&outcome, cleaned) {
        (_, Err(e)) => eprintln!("clean-up failed: {e}"),
        (_, Ok(removed)) => eprintln!("removed {} test image(s)", removed.images.len()),
    }
    let passed = outcome.is_ok();
    println!(
        "test official_builders_pass_their_fixtures ... {}",
        if passed { "ok" } else { "FAILED" }
    );
    println!("\n{} passed, {} failed", passed as u32, (!passed) as u32);
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
