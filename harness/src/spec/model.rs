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

/// The kinds of input node, as the spec names them, in the order messages
/// list them.
pub const INPUT_KINDS: [&str; 6] = ["pfs", "cross", "union", "cron", "join", "group"];

/// The one kind an input node sets, with what it holds.
#[derive(Debug, Clone, Copy)]
pub enum InputKind<'a> {
    Pfs(&'a PfsInput),
    Cron(&'a CronInput),
    Cross(&'a [Input]),
    Union(&'a [Input]),
    Join(&'a [Input]),
    Group(&'a [Input]),
}

/// An input node met by [`Input::visit`].
#[derive(Debug, Clone)]
pub struct InputAt<'a> {
    pub input: &'a Input,
    /// Its dotted path, e.g. `input.cross[1]`.
    pub path: String,
    /// The lists it sits in, outermost first: their kind and its index in
    /// each (`input.cross[1].join[0]`: `[("cross", 1), ("join", 0)]`).
    pub above: Lists,
}

/// The lists above an input node: each one's kind and the node's index in it.
pub type Lists = Vec<(&'static str, usize)>;

impl InputAt<'_> {
    /// Whether a list of `kind` is above this node (e.g. it is inside a `join`).
    pub fn is_within(&self, kind: &str) -> bool {
        self.above.iter().any(|(k, _)| *k == kind)
    }

    /// Whether the inputs of this node and of the node whose lists are
    /// `other` can be in one datum: always, unless they sit in two branches
    /// of one `union`.
    pub fn meets(&self, other: &[(&'static str, usize)]) -> bool {
        let parted = self.above.iter().zip(other).find(|(a, b)| a != b);
        !matches!(parted, Some((("union", _), ("union", _))))
    }
}

impl Input {
    /// The kinds this node sets, in [`INPUT_KINDS`] order.
    pub fn kinds_set(&self) -> Vec<&'static str> {
        let set = [
            self.pfs.is_some(),
            self.cross.is_some(),
            self.union.is_some(),
            self.cron.is_some(),
            self.join.is_some(),
            self.group.is_some(),
        ];
        INPUT_KINDS
            .into_iter()
            .zip(set)
            .filter_map(|(kind, on)| on.then_some(kind))
            .collect()
    }

    /// The platform's rule: a node sets exactly one kind. That kind, or the
    /// kinds it sets (none, or several) when it breaks the rule.
    pub fn kind(&self) -> Result<InputKind<'_>, Vec<&'static str>> {
        let set = self.kinds_set();
        if set.len() != 1 {
            return Err(set);
        }
        if let Some(pfs) = &self.pfs {
            return Ok(InputKind::Pfs(pfs));
        }
        if let Some(cron) = &self.cron {
            return Ok(InputKind::Cron(cron));
        }
        // Exactly one kind is set and it is not pfs or cron: one list.
        let (kind, list) = self.children()[0];
        Ok(match kind {
            "cross" => InputKind::Cross(list),
            "union" => InputKind::Union(list),
            "join" => InputKind::Join(list),
            _ => InputKind::Group(list),
        })
    }

    /// The lists of inputs below this node, by field name, in the order
    /// `cross`, `union`, `join`, `group`.
    pub fn children(&self) -> Vec<(&'static str, &[Input])> {
        [
            ("cross", &self.cross),
            ("union", &self.union),
            ("join", &self.join),
            ("group", &self.group),
        ]
        .into_iter()
        .filter_map(|(kind, list)| list.as_deref().map(|list| (kind, list)))
        .collect()
    }

    /// Calls `visit` on this node, at `path`, and on every node below it,
    /// parents first and lists in [`Input::children`] order: the one walk of
    /// the input tree, for every check that looks at each node alone.
    pub fn visit<'a>(&'a self, path: &str, visit: &mut dyn FnMut(&InputAt<'a>)) {
        fn walk<'a>(at: InputAt<'a>, visit: &mut dyn FnMut(&InputAt<'a>)) {
            visit(&at);
            for (kind, list) in at.input.children() {
                for (i, child) in list.iter().enumerate() {
                    let mut above = at.above.clone();
                    above.push((kind, i));
                    walk(
                        InputAt {
                            input: child,
                            path: format!("{}.{kind}[{i}]", at.path),
                            above,
                        },
                        visit,
                    );
                }
            }
        }
        let top = InputAt {
            input: self,
            path: path.to_string(),
            above: Vec::new(),
        };
        walk(top, visit);
    }

    /// Every `pfs` input in the tree, in [`Input::visit`] order.
    pub fn pfs_inputs(&self) -> Vec<&PfsInput> {
        let mut out = Vec::new();
        self.visit("input", &mut |at| out.extend(at.input.pfs.as_ref()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfs(repo: &str) -> Input {
        Input {
            pfs: Some(PfsInput {
                repo: repo.into(),
                glob: "/".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn visit_gives_every_node_its_path_and_lists() {
        let tree = Input {
            cross: Some(vec![
                pfs("a"),
                Input {
                    join: Some(vec![pfs("b"), pfs("c")]),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let mut seen = Vec::new();
        tree.visit("input", &mut |at| {
            let kinds: Vec<&str> = at.above.iter().map(|(k, _)| *k).collect();
            seen.push(format!("{} {}", at.path, kinds.join("/")))
        });
        assert_eq!(
            seen,
            [
                "input ",
                "input.cross[0] cross",
                "input.cross[1] cross",
                "input.cross[1].join[0] cross/join",
                "input.cross[1].join[1] cross/join",
            ]
        );
        let repos: Vec<&str> = tree.pfs_inputs().iter().map(|p| p.repo.as_str()).collect();
        assert_eq!(repos, ["a", "b", "c"]);
    }

    #[test]
    fn only_union_branches_never_meet() {
        let node = Input::default();
        let here = InputAt {
            input: &node,
            path: String::new(),
            above: vec![("cross", 0), ("union", 1)],
        };
        assert!(!here.meets(&[("cross", 0), ("union", 0)]));
        assert!(!here.meets(&[("cross", 0), ("union", 0), ("join", 2)]));
        assert!(here.meets(&[("cross", 1)]));
        assert!(here.meets(&[("cross", 0), ("union", 1), ("cross", 0)]));
        assert!(here.meets(&[("cross", 0)]));
        assert!(here.is_within("union") && !here.is_within("join"));
    }

    #[test]
    fn a_node_sets_exactly_one_kind() {
        assert!(matches!(pfs("a").kind(), Ok(InputKind::Pfs(_))));
        let union = Input {
            union: Some(vec![]),
            ..Default::default()
        };
        assert!(matches!(union.kind(), Ok(InputKind::Union(list)) if list.is_empty()));
        assert_eq!(Input::default().kind().unwrap_err(), Vec::<&str>::new());
        let both = Input {
            group: Some(vec![]),
            ..pfs("a")
        };
        assert_eq!(both.kind().unwrap_err(), ["pfs", "group"]);
    }
}
