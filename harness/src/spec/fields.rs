//! Every field of the platform's pipeline spec that the model keeps aside
//! (`unknown` maps), and what a local run does with it: honoured, or named
//! in one line as having no local meaning. Never silently dropped. A field
//! the platform does not know is a warning naming the nearest known one.

use super::model::PipelineSpec;
use super::validate::unknown_fields;

/// What a local run does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    /// Honoured, as the note says.
    Honoured(&'static str),
    /// No local meaning, for the reason given.
    Ignored(&'static str),
}

use Local::{Honoured, Ignored};

/// Top-level fields the model does not hold.
const TOP: &[(&str, Local)] = &[
    (
        "metadata",
        Ignored("Kubernetes annotations and labels of the pipeline's pods"),
    ),
    ("tf_job", Ignored("a TensorFlow job on the cluster")),
    (
        "hashtree_spec",
        Ignored("how the cluster shards its file system"),
    ),
    (
        "resource_requests",
        Ignored("scheduling on cluster nodes; see `resource_limits` for local limits"),
    ),
    (
        "resource_limits",
        Honoured("`memory` and `cpu` become each container's limits (`--memory` overrides)"),
    ),
    (
        "sidecar_resource_limits",
        Ignored("the platform's sidecar container"),
    ),
    (
        "output_branch",
        Ignored("the output goes to a folder (`--out`), not a branch"),
    ),
    (
        "egress",
        Ignored("the output stays in the local folder; nothing is copied out"),
    ),
    ("standby", Ignored("a local job runs once and ends")),
    ("cache_size", Ignored("the platform's worker cache")),
    (
        "enable_stats",
        Ignored("the platform's stats; `run` prints timings and keeps logs"),
    ),
    (
        "service",
        Ignored("a long-running service on the cluster; test its code as an ordinary pipeline"),
    ),
    (
        "spout",
        Ignored("a spout runs forever and pushes data in; test its code as an ordinary pipeline"),
    ),
    ("max_queue_size", Ignored("the platform's datum queue")),
    (
        "chunk_spec",
        Ignored("how the platform splits work between pods; local workers take datums one by one"),
    ),
    ("scheduling_spec", Ignored("Kubernetes scheduling")),
    ("pod_spec", Ignored("a Kubernetes pod patch")),
    ("pod_patch", Ignored("a Kubernetes pod patch")),
    (
        "s3_out",
        Ignored("the S3 gateway; the code writes to /pfs/out"),
    ),
    (
        "reprocess",
        Ignored("every local run processes what changed; `--reprocess` runs every datum"),
    ),
    (
        "reprocess_spec",
        Ignored("every local run processes what changed; `--reprocess` runs every datum"),
    ),
    (
        "salt",
        Honoured("part of the spec, so a new salt runs every datum again"),
    ),
    ("spec_commit", Ignored("set by the platform")),
    ("update", Ignored("a flag of `pachctl create pipeline`")),
    (
        "autoscaling",
        Ignored("pods on the cluster; `--jobs` sets local workers"),
    ),
];

const TRANSFORM: &[(&str, Local)] = &[
    (
        "image_pull_secrets",
        Ignored("images come from the local engine"),
    ),
    (
        "debug",
        Ignored("the platform's debug logging; `run` keeps every log"),
    ),
];

const PFS: &[(&str, Local)] = &[
    ("s3", Ignored("the S3 gateway; inputs are files under /pfs")),
    (
        "commit",
        Ignored("the input is a folder (`--input NAME=DIR`), not a commit"),
    ),
    ("trigger", Ignored("the platform's branch triggers")),
    ("outer_join", Honoured("join")),
    ("join_on", Honoured("join")),
    ("group_by", Honoured("group")),
];

const CRON: &[(&str, Local)] = &[
    ("repo", Ignored("a local cron input has one tick file")),
    ("start", Ignored("a local cron input has one tick file")),
    ("overwrite", Ignored("a local cron input has one tick file")),
];

const INPUT: &[(&str, Local)] = &[(
    "git",
    Ignored("a git input starts a job per push; put the repository's files in a folder and use a pfs input"),
)];

const BUILD: &[(&str, Local)] = &[];
const NAME: &[(&str, Local)] = &[];

/// Known fields at each place, for the nearest-name hint.
const KNOWN_TOP: &[&str] = &[
    "pipeline",
    "description",
    "transform",
    "input",
    "parallelism_spec",
    "datum_tries",
    "datum_timeout",
    "job_timeout",
];
const KNOWN_TRANSFORM: &[&str] = &[
    "image",
    "cmd",
    "stdin",
    "env",
    "build",
    "err_cmd",
    "err_stdin",
    "accept_return_code",
    "working_dir",
    "user",
    "secrets",
];
const KNOWN_PFS: &[&str] = &[
    "name",
    "repo",
    "glob",
    "branch",
    "empty_files",
    "lazy",
    "join_on",
    "outer_join",
    "group_by",
];
const KNOWN_INPUT: &[&str] = &["pfs", "cross", "union", "cron", "join", "group"];
const KNOWN_BUILD: &[&str] = &["path", "language", "image"];
const KNOWN_CRON: &[&str] = &["name", "spec"];

/// A line for each field kept aside in `spec`, and for fields honoured
/// differently than on the platform: `(is_warning, text)`.
pub fn notes(spec: &PipelineSpec) -> Vec<(bool, String)> {
    let mut notes: Vec<(bool, String)> = unknown_fields(spec)
        .into_iter()
        .filter_map(|path| explain(&path))
        .collect();
    // Modelled fields with no (full) local meaning.
    if spec.spout.is_some() {
        notes.push((
            false,
            format!("`spout` has no local meaning: {}", spout_why()),
        ));
    }
    if let Some(coefficient) = spec.parallelism_spec.as_ref().and_then(|p| p.coefficient) {
        notes.push((
            false,
            format!(
                "`parallelism_spec.coefficient` ({coefficient}) has no local meaning: workers per \
                 cluster node; `--jobs` sets local workers"
            ),
        ));
    }
    if spec.input.as_ref().is_some_and(has_lazy) {
        notes.push((
            false,
            "`lazy` inputs are copied into /pfs locally (the platform gives named pipes, \
             read once, in order)"
                .to_string(),
        ));
    }
    notes
}

fn spout_why() -> &'static str {
    TOP.iter()
        .find_map(|(name, local)| match (name, local) {
            (&"spout", Ignored(why)) => Some(*why),
            _ => None,
        })
        .unwrap_or_default()
}

fn has_lazy(input: &super::model::Input) -> bool {
    input.pfs_inputs().iter().any(|p| p.lazy)
}

fn explain(path: &str) -> Option<(bool, String)> {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => (parent, key),
        None => ("", path),
    };
    let last_parent = parent.rsplit('.').next().unwrap_or("");
    let (table, known): (&[(&str, Local)], &[&str]) = match last_parent {
        "" => (TOP, KNOWN_TOP),
        "transform" => (TRANSFORM, KNOWN_TRANSFORM),
        "pfs" => (PFS, KNOWN_PFS),
        "cron" => (CRON, KNOWN_CRON),
        "build" => (BUILD, KNOWN_BUILD),
        "pipeline" => (NAME, &["name"]),
        // parallelism_spec, secrets: their own small sets.
        "parallelism_spec" => (&[], &["constant", "coefficient"]),
        p if p.starts_with("input") || p.ends_with(']') => (INPUT, KNOWN_INPUT),
        _ => (&[], &[]),
    };
    match table.iter().find(|(name, _)| *name == key) {
        Some((_, Honoured(_))) => None,
        Some((_, Ignored(why))) => Some((false, format!("`{path}` has no local meaning: {why}"))),
        None => {
            let mut all: Vec<&str> = known.to_vec();
            all.extend(table.iter().map(|(name, _)| *name));
            let hint = crate::text::nearest(key, all)
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            Some((
                true,
                format!(
                    "`{path}` is not a field of the platform's pipeline spec{hint}; it is ignored"
                ),
            ))
        }
    }
}

/// `resource_limits.memory` in bytes and `resource_limits.cpu` in CPUs.
pub fn resource_limits(spec: &PipelineSpec) -> (Option<u64>, Option<f64>) {
    let Some(limits) = spec.unknown.get("resource_limits") else {
        return (None, None);
    };
    let memory = limits
        .get("memory")
        .and_then(|m| m.as_str())
        .and_then(kubernetes_quantity);
    let cpu = limits.get("cpu").and_then(|c| {
        c.as_f64()
            .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
    });
    (memory, cpu.filter(|c| *c > 0.0))
}

/// A Kubernetes memory quantity (`512Mi`, `2G`, `1e9`) in bytes.
fn kubernetes_quantity(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: f64 = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    let n: f64 = number.parse().ok()?;
    (n >= 0.0).then_some((n * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::parse_spec;
    use std::path::Path;

    fn notes_of(json: &str) -> Vec<(bool, String)> {
        notes(&parse_spec(json, Path::new("p.json")).unwrap())
    }

    #[test]
    fn platform_fields_are_named_and_typos_get_the_nearest_name() {
        let got = notes_of(
            r#"{"pipeline": {"name": "p"}, "transform": {"image": "x", "cmd": ["a"],
                "image_pull_secrets": ["s"], "wokring_dir": "/a"},
                "standby": true, "resource_limits": {"memory": "1Gi"},
                "datum_trie": 2, "parallelism_spec": {"coefficient": 2},
                "input": {"pfs": {"repo": "a", "glob": "/", "s3": true, "glbo": "/"}}}"#,
        );
        let text: Vec<String> = got.iter().map(|(w, t)| format!("{w} {t}")).collect();
        let text = text.join("\n");
        assert!(
            text.contains("false `standby` has no local meaning"),
            "{text}"
        );
        assert!(
            text.contains("false `transform.image_pull_secrets` has no local meaning"),
            "{text}"
        );
        assert!(text.contains("true `datum_trie` is not a field of the platform's pipeline spec (did you mean `datum_tries`?)"), "{text}");
        assert!(text.contains("(did you mean `working_dir`?)"), "{text}");
        assert!(
            text.contains("false `input.pfs.s3` has no local meaning"),
            "{text}"
        );
        assert!(text.contains("`input.pfs.glbo` is not a field of the platform's pipeline spec (did you mean `glob`?)"), "{text}");
        assert!(
            text.contains("false `parallelism_spec.coefficient` (2) has no local meaning"),
            "{text}"
        );
        // Honoured fields are not mentioned.
        assert!(!text.contains("resource_limits"), "{text}");
    }

    #[test]
    fn resource_limits_become_numbers() {
        let spec = parse_spec(
            r#"{"resource_limits": {"memory": "512Mi", "cpu": 1.5}}"#,
            Path::new("p.json"),
        )
        .unwrap();
        assert_eq!(resource_limits(&spec), (Some(512 << 20), Some(1.5)));
        assert_eq!(kubernetes_quantity("2G"), Some(2_000_000_000));
        assert_eq!(kubernetes_quantity("lots"), None);
        assert_eq!(crate::text::nearest("zzzzzz", ["glob"]), None);
    }
}
