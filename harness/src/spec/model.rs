//! The data model of a pipeline spec: the subset of the platform's spec that
//! build pipelines use. Fields we do not model land in `unknown` maps so that
//! a real spec with extra fields still loads (they are kept out of the way).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Any field of the spec that we do not model.
pub type Unknown = BTreeMap<String, serde_json::Value>;

/// A whole pipeline spec (`pipeline.json` or `pipeline.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineSpec {
    #[serde(default)]
    pub pipeline: Option<PipelineName>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub transform: Transform,
    #[serde(default)]
    pub input: Option<Input>,
    #[serde(default)]
    pub spout: Option<serde_json::Value>,
    #[serde(default)]
    pub parallelism_spec: Option<ParallelismSpec>,
    /// Tries of a failing datum before the job fails (platform default 3).
    #[serde(default)]
    pub datum_tries: Option<i64>,
    /// A datum's time limit, as a Go duration (`30s`, `1h2m`).
    #[serde(default)]
    pub datum_timeout: Option<String>,
    /// The job's time limit, as a Go duration.
    #[serde(default)]
    pub job_timeout: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `parallelism_spec`: how many workers the platform starts for the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParallelismSpec {
    /// Exactly this many workers; locally, at most this many.
    #[serde(default)]
    pub constant: Option<u64>,
    /// Workers per cluster node: no bound locally (one node).
    #[serde(default)]
    pub coefficient: Option<f64>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `pipeline: { name }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineName {
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `transform`: what runs, in which image, with which environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub stdin: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<Build>,
    /// Run after a datum's last failed try; exit 0 recovers the datum.
    #[serde(default)]
    pub err_cmd: Vec<String>,
    #[serde(default)]
    pub err_stdin: Vec<String>,
    /// Exit codes that count as success.
    #[serde(default)]
    pub accept_return_code: Vec<i64>,
    /// The command's working directory (default: the image's).
    #[serde(default)]
    pub working_dir: Option<String>,
    /// The user the command runs as (default: the image's).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub secrets: Vec<Secret>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `transform.secrets[]`: a Kubernetes secret, as a file tree or one key in
/// an environment variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mount_path: Option<String>,
    #[serde(default)]
    pub env_var: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `transform.build`: where the source is and which builder turns it into a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Build {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// One node of the input tree. Exactly one of the fields is set in a valid spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Input {
    #[serde(default)]
    pub pfs: Option<PfsInput>,
    #[serde(default)]
    pub cross: Option<Vec<Input>>,
    #[serde(default)]
    pub union: Option<Vec<Input>>,
    #[serde(default)]
    pub cron: Option<CronInput>,
    #[serde(default)]
    pub join: Option<Vec<Input>>,
    #[serde(default)]
    pub group: Option<Vec<Input>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `input.pfs`: a repo (a folder of files locally) split into datums by a glob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PfsInput {
    #[serde(default)]
    pub repo: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub glob: String,
    #[serde(default)]
    pub branch: Option<String>,
    /// The datum's files appear empty (the code needs only their names).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_files: bool,
    /// The platform streams files through named pipes; locally they are copied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy: bool,
    /// Inside a `join`: the key (capture groups of the glob, `$1`…) that
    /// pairs this input's datums with the other inputs'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_on: Option<String>,
    /// Inside a `join`: keep this input's datums that pair with nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outer_join: bool,
    /// Inside a `group`: the key (capture groups of the glob) that gathers
    /// this input's datums with every other datum of the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl PfsInput {
    /// The input's name: its `name`, else its repo (the platform's rule).
    pub fn input_name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.repo)
    }
}

/// `input.cron`: a tick input. Locally it is one datum holding one tick file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CronInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub spec: String,
    #[serde(flatten)]
    pub unknown: Unknown,
}
