//! The rules the platform's client enforced before it ran a build pipeline,
//! plus the few a local run adds (a glob must parse; every input of a
//! `join` or `group` has the key it is joined or grouped by, made of capture
//! groups its glob has). A spec without `transform.build` is an ordinary
//! pipeline (`transform.image` runs `transform.cmd`).
//!
//! Every problem is an [`Error::Invalid`] naming the dotted field path, what is
//! wrong and what to write instead, so a user can fix the spec from the
//! message alone. [`problems`] lists them all (a user fixes a spec in one go);
//! [`validate`] stops at the first (for callers that only need yes or no).

use super::model::{Build, Input, Lists, PfsInput, PipelineSpec};
use super::parse::LoadedSpec;
use super::resolve::build_path;
use crate::error::{Error, Result};

/// Input names a build pipeline reserves: it mounts its own `/pfs/build` and
/// `/pfs/source` beside the user's inputs.
pub const RESERVED_INPUT_NAMES: [&str; 2] = ["build", "source"];

/// Checks the spec and returns its first problem, if any.
pub fn validate(loaded: &LoadedSpec) -> Result<()> {
    match problems(loaded).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every problem of the spec: name, build, input shapes, input names, build path.
pub fn problems(loaded: &LoadedSpec) -> Vec<Error> {
    let mut c = Checker {
        file: loaded,
        out: Vec::new(),
    };
    let spec = &loaded.spec;
    c.pipeline_name(spec);
    match &spec.transform.build {
        // An ordinary pipeline: `resolve` names a missing image or command.
        None => {
            if spec.input.is_none() && spec.spout.is_none() {
                c.push(
                    "input",
                    "the pipeline has no input: its code runs once per datum of an input",
                    "add an input, e.g. `\"input\": {\"pfs\": {\"repo\": \"data\", \"glob\": \"/*\"}}`",
                );
            }
        }
        Some(build) => {
            if let Err(e) = builder_choice(&loaded.path, build) {
                c.out.push(e);
            }
            if spec.input.is_none() {
                c.push(
                    "input",
                    "a build pipeline needs an input: its code runs once per datum of that input",
                    "add an input, e.g. `\"input\": {\"pfs\": {\"repo\": \"data\", \"glob\": \"/*\"}}`",
                );
            }
            if spec.spout.is_some() {
                c.push(
                    "spout",
                    "a build pipeline cannot be a spout (the platform's client refused the pair)",
                    "remove `spout`, or remove `transform.build` and build the spout's image yourself",
                );
            }
        }
    }
    if let Some(input) = &spec.input {
        c.input(input, "input");
        c.names(input, "input");
    }
    if spec.transform.build.is_some() {
        c.build_path(loaded);
    }
    c.datum_rules(spec);
    c.out
}

/// Dotted paths of every field in the spec that the model does not know.
///
/// Unknown fields are not errors (real specs carry many that a local run
/// ignores), but a caller can warn about them: a typo such as `langauge`
/// otherwise surfaces only as "neither `language` nor `image`".
pub fn unknown_fields(spec: &PipelineSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |prefix: &str, keys: &super::model::Unknown| {
        for key in keys.keys() {
            out.push(if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            });
        }
    };
    add("", &spec.unknown);
    if let Some(p) = &spec.pipeline {
        add("pipeline", &p.unknown);
    }
    add("transform", &spec.transform.unknown);
    if let Some(p) = &spec.parallelism_spec {
        add("parallelism_spec", &p.unknown);
    }
    if let Some(b) = &spec.transform.build {
        add("transform.build", &b.unknown);
    }
    if let Some(input) = &spec.input {
        input.visit("input", &mut |at| {
            add(&at.path, &at.input.unknown);
            if let Some(p) = &at.input.pfs {
                add(&format!("{}.pfs", at.path), &p.unknown);
            }
            if let Some(c) = &at.input.cron {
                add(&format!("{}.cron", at.path), &c.unknown);
            }
        });
    }
    out
}

/// A pipeline or input name the platform accepts: ASCII letters, digits, `-`
/// and `_`, not empty.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_name_char)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The field's value when it is set to something; the platform's protobufs
/// make an empty string the same as an absent one.
pub(crate) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Exactly one of `language` and `image`, as the client required (its docs
/// said `language` was optional with `transform.image` as fallback; the client
/// refused that, and so do we).
pub(crate) fn builder_choice(file: &std::path::Path, build: &Build) -> Result<()> {
    match (non_empty(&build.language), non_empty(&build.image)) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        (None, None) => {
            let mut problem =
                "sets neither `language` nor `image`, so there is no builder to use".to_string();
            if !build.unknown.is_empty() {
                let keys: Vec<String> = build.unknown.keys().map(|k| format!("`{k}`")).collect();
                problem.push_str(&format!(
                    " (it has {}, which `transform.build` does not know)",
                    keys.join(", ")
                ));
            }
            Err(Error::invalid(
                file,
                "transform.build",
                problem,
                "set `language` to an official builder (e.g. `python` or `go`), or `image` to a \
                 builder image of your own; `transform.image` is the image the code runs in, \
                 not a builder",
            ))
        }
        (Some(language), Some(image)) => Err(Error::invalid(
            file,
            "transform.build",
            format!(
                "sets both `language` (`{language}`) and `image` (`{image}`); a build uses one builder"
            ),
            "keep `language` for an official builder, or `image` for a builder of your own, \
             and delete the other",
        )),
    }
}

/// A name the platform would accept in place of `name`.
fn suggest_name(name: &str) -> String {
    crate::text::suggest_name(name, is_name_char, "my-pipeline")
}

fn bad_chars(name: &str) -> String {
    let mut bad: Vec<char> = name.chars().filter(|c| !is_name_char(*c)).collect();
    bad.sort_unstable();
    bad.dedup();
    bad.iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kinds of combination an input node sits in.
#[derive(Debug, Clone, Copy)]
struct Within {
    join: bool,
    group: bool,
}

struct Checker<'a> {
    file: &'a LoadedSpec,
    out: Vec<Error>,
}

impl Checker<'_> {
    fn push(
        &mut self,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.out
            .push(Error::invalid(&self.file.path, field, problem, fix));
    }

    /// Tries, time limits, accepted codes and secrets: the fields that
    /// shape how each datum runs.
    fn datum_rules(&mut self, spec: &PipelineSpec) {
        if let Some(tries) = spec.datum_tries {
            if tries < 0 {
                self.push(
                    "datum_tries",
                    format!("is {tries}; a datum is tried at least once"),
                    "set `datum_tries` to 1 or more (0 or absent means the platform's default, 3)",
                );
            }
        }
        for (field, value) in [
            ("datum_timeout", &spec.datum_timeout),
            ("job_timeout", &spec.job_timeout),
        ] {
            if let Some(text) = non_empty(value) {
                if let Err(why) = super::duration::parse_go_duration(text) {
                    self.push(
                        field,
                        format!("`{text}` is not a duration: {why}"),
                        format!("write `{field}` as the platform does, e.g. `\"30s\"`, `\"5m\"` or `\"1h30m\"`"),
                    );
                }
            }
        }
        for (i, code) in spec.transform.accept_return_code.iter().enumerate() {
            if !(0..=255).contains(code) {
                self.push(
                    format!("transform.accept_return_code[{i}]"),
                    format!("{code} is not an exit code a process can return"),
                    "list exit codes between 0 and 255",
                );
            }
        }
        if !spec.transform.err_stdin.is_empty() && spec.transform.err_cmd.is_empty() {
            self.push(
                "transform.err_stdin",
                "is set but `transform.err_cmd` is not, so nothing reads it",
                "add `err_cmd` (e.g. `[\"sh\"]`), or remove `err_stdin`",
            );
        }
        for (i, secret) in spec.transform.secrets.iter().enumerate() {
            let field = format!("transform.secrets[{i}]");
            if secret.name.trim().is_empty() {
                self.push(
                    format!("{field}.name"),
                    "is empty: a secret is found by its name",
                    "set `name` (locally, `--secret NAME=PATH` gives its contents)",
                );
            }
            match (
                non_empty(&secret.env_var),
                non_empty(&secret.key),
                non_empty(&secret.mount_path),
            ) {
                (Some(_), None, _) => self.push(
                    format!("{field}.key"),
                    "is missing: `env_var` takes the value of one key of the secret",
                    "set `key` to the secret's key to put in the variable",
                ),
                (None, _, None) => self.push(
                    field,
                    "has neither `env_var` nor `mount_path`, so the code never sees it",
                    "set `mount_path` (a folder of one file per key) or `env_var` with `key`",
                ),
                _ => {}
            }
        }
    }

    fn pipeline_name(&mut self, spec: &PipelineSpec) {
        let name = spec
            .pipeline
            .as_ref()
            .map(|p| p.name.as_str())
            .unwrap_or("");
        if name.is_empty() {
            self.push(
                "pipeline.name",
                "the pipeline has no name",
                "add `\"pipeline\": {\"name\": \"my-pipeline\"}` (letters, digits, `-` and `_`)",
            );
        } else if !is_valid_name(name) {
            self.push(
                "pipeline.name",
                format!(
                    "`{name}` holds {}, but a pipeline name may hold only letters, digits, `-` and `_`",
                    bad_chars(name)
                ),
                format!("use a name such as `{}`", suggest_name(name)),
            );
        }
    }

    /// The shape of each input node; names are checked in [`Checker::names`].
    fn input(&mut self, input: &Input, path: &str) {
        input.visit(path, &mut |at| {
            let within = Within {
                join: at.is_within("join"),
                group: at.is_within("group"),
            };
            self.node(at.input, &at.path, within);
        });
    }

    /// One node of [`Checker::input`], below the `join`s and `group`s of `within`.
    fn node(&mut self, input: &Input, path: &str, within: Within) {
        match input.kind() {
            Ok(_) => {}
            Err(set) if set.is_empty() => {
                let mut problem =
                    "sets none of `pfs`, `cross`, `union`, `cron`, `join`, `group`".to_string();
                if !input.unknown.is_empty() {
                    let keys: Vec<String> =
                        input.unknown.keys().map(|k| format!("`{k}`")).collect();
                    problem.push_str(&format!(
                        " (it has {}, which this harness does not know)",
                        keys.join(", ")
                    ));
                }
                self.push(
                    path,
                    problem,
                    "give it exactly one, e.g. `\"pfs\": {\"repo\": \"data\", \"glob\": \"/*\"}`",
                );
            }
            Err(set) => {
                let list: Vec<String> = set.iter().map(|k| format!("`{k}`")).collect();
                self.push(
                    path,
                    format!(
                        "sets {}; an input node holds exactly one kind",
                        list.join(" and ")
                    ),
                    "split them: to combine inputs, list them under one `cross` or `union`",
                );
            }
        }

        if let Some(pfs) = &input.pfs {
            if pfs.repo.trim().is_empty() {
                self.push(
                    format!("{path}.pfs.repo"),
                    "the pfs input has no `repo`",
                    "name the repo its files come from, e.g. `\"repo\": \"data\"` \
                     (locally, the folder `inputs/data`)",
                );
            } else if !is_valid_name(&pfs.repo) {
                self.push(
                    format!("{path}.pfs.repo"),
                    format!(
                        "`{}` holds {}, but a repo name may hold only letters, digits, `-` and `_`",
                        pfs.repo,
                        bad_chars(&pfs.repo)
                    ),
                    format!("use a repo named e.g. `{}`", suggest_name(&pfs.repo)),
                );
            }
            if pfs.glob.trim().is_empty() {
                self.push(
                    format!("{path}.pfs.glob"),
                    "the pfs input has no `glob`, so it cannot be split into datums",
                    "add a glob: `\"glob\": \"/\"` makes the whole repo one datum, \
                     `\"glob\": \"/*\"` makes each top-level file or folder a datum",
                );
            } else {
                self.keys(pfs, path, within);
            }
        }
        if let Some(cron) = &input.cron {
            if cron.name.trim().is_empty() {
                self.push(
                    format!("{path}.cron.name"),
                    "the cron input has no `name`",
                    "add one, e.g. `\"name\": \"tick\"`; the tick file appears under `/pfs/<name>`",
                );
            }
            if cron.spec.trim().is_empty() {
                self.push(
                    format!("{path}.cron.spec"),
                    "the cron input has no `spec`",
                    "add a schedule, e.g. `\"spec\": \"@every 60s\"`",
                );
            }
        }
        for (kind, list) in input.children() {
            if list.is_empty() {
                self.push(
                    format!("{path}.{kind}"),
                    format!("`{kind}` is empty"),
                    format!("list at least one input in `{kind}`, or replace it with a single `pfs` input"),
                );
            }
        }
    }

    /// The glob parses, and the input has the keys the `join`s and `group`s
    /// above it need, made of capture groups the glob has (a `$n` the glob
    /// lacks is always empty on the platform, which joins or groups
    /// everything under one key).
    fn keys(&mut self, pfs: &PfsInput, path: &str, within: Within) {
        let glob =
            match crate::datum::glob::clean(&pfs.glob).map(|g| crate::datum::glob::Glob::new(&g)) {
                Some(Ok(glob)) => glob,
                Some(Err(e)) => {
                    self.push(
                    format!("{path}.pfs.glob"),
                    format!("the glob `{}` does not parse: {e}", pfs.glob),
                    "fix the pattern: `?` one character, `*` any characters but `/`, `**` any, \
                     `[a-z]` a class, `{a,b}` alternatives, `(…)` a capture group; \
                     write `\\` before a character to take it literally",
                );
                    return;
                }
                None => return,
            };
        let groups = glob.group_count();
        for (field, kind, needed, value) in [
            ("join_on", "join", within.join, &pfs.join_on),
            ("group_by", "group", within.group, &pfs.group_by),
        ] {
            let field_path = format!("{path}.pfs.{field}");
            match non_empty(value) {
                None if needed => {
                    let example = if groups == 0 {
                        format!(
                            "add a capture group to the glob, e.g. `\"glob\": \"/(*)\"`, and set \
                             `\"{field}\": \"$1\"`"
                        )
                    } else {
                        format!("set e.g. `\"{field}\": \"$1\"` (the glob `{}` has {groups} capture group(s))", pfs.glob)
                    };
                    self.push(
                        field_path,
                        format!(
                            "the input is inside a `{kind}` but has no `{field}`, so nothing \
                             says which of its datums go together"
                        ),
                        example,
                    );
                }
                Some(template) => {
                    let missing: Vec<usize> = crate::datum::glob::references(template)
                        .into_iter()
                        .filter(|n| *n > groups)
                        .collect();
                    if let Some(n) = missing.first() {
                        self.push(
                            field_path,
                            format!(
                                "`{template}` uses capture group {n}, but the glob `{}` has {}; \
                                 the key would always be empty",
                                pfs.glob,
                                match groups {
                                    0 => "none".to_string(),
                                    1 => "only 1".to_string(),
                                    g => format!("only {g}"),
                                }
                            ),
                            "put the part of the path to match in parentheses in the glob, \
                             e.g. `/(*).txt`, and refer to it as `$1`; groups are numbered by \
                             their opening parenthesis",
                        );
                    }
                }
                None => {}
            }
        }
    }

    /// Input names, as the platform checked them: names that can appear in the
    /// same datum must differ (they would be mounted at the same `/pfs/<name>`),
    /// but the branches of a `union` never meet in one datum, so they may share
    /// a name (the platform's docs recommend it). Each name is compared with
    /// the names kept before it that can meet it.
    fn names(&mut self, input: &Input, path: &str) {
        // Kept names: the name, the field that named it, where its node is.
        let mut kept: Vec<(String, String, Lists)> = Vec::new();
        input.visit(path, &mut |at| {
            let mut named = Vec::new();
            if let Some(pfs) = &at.input.pfs {
                // The same rule as `PfsInput::input_name`, which the runner uses.
                named.push(match pfs.name.as_deref().filter(|n| !n.is_empty()) {
                    Some(n) => (n, format!("{}.pfs.name", at.path), true),
                    None => (pfs.repo.as_str(), format!("{}.pfs.repo", at.path), false),
                });
            }
            if let Some(cron) = &at.input.cron {
                named.push((cron.name.as_str(), format!("{}.cron.name", at.path), true));
            }
            for (name, field, explicit) in named {
                let first = kept
                    .iter()
                    .find(|(n, _, above)| n == name && at.meets(above))
                    .map(|(_, f, _)| f.as_str());
                if self.one_name(name, &field, explicit, first) {
                    kept.push((name.to_string(), field, at.above.clone()));
                }
            }
        });
    }

    /// `explicit`: the name comes from a `name` field, not from the repo (the
    /// repo's own format is checked with the repo, so it is not reported twice).
    /// `first`: the field of the first kept name that can meet this one and
    /// is the same. True when the name is kept (it is good).
    fn one_name(&mut self, name: &str, field: &str, explicit: bool, first: Option<&str>) -> bool {
        if name.trim().is_empty() {
            return false; // reported as a missing repo or cron name
        }
        if RESERVED_INPUT_NAMES.contains(&name) {
            let fix = if explicit {
                format!("rename the input, e.g. `\"name\": \"{name}_data\"`")
            } else {
                format!(
                    "keep the repo and give the input another name: `\"name\": \"{name}_data\"`"
                )
            };
            self.push(
                field,
                format!(
                    "the input is named `{name}`, but a build pipeline mounts its own \
                     `/pfs/build` and `/pfs/source`, so no input may be named `build` or `source`"
                ),
                fix,
            );
            return false;
        }
        if explicit && !is_valid_name(name) {
            self.push(
                field,
                format!(
                    "`{name}` holds {}, but an input name may hold only letters, digits, `-` and `_`",
                    bad_chars(name)
                ),
                format!("use a name such as `{}`", suggest_name(name)),
            );
            return false;
        }
        if let Some(first) = first {
            self.push(
                field,
                format!(
                    "the name `{name}` is also used by `{first}`; both would be mounted at \
                     `/pfs/{name}` in the same datum"
                ),
                "give one of them another `name` (only the branches of a `union` may share a name)",
            );
            return false;
        }
        true
    }

    fn build_path(&mut self, loaded: &LoadedSpec) {
        let path = build_path(loaded);
        let shown = path.display();
        let base = if loaded.path == std::path::Path::new(super::parse::STDIN_NAME) {
            "the current directory, since the spec came on stdin".to_string()
        } else {
            format!("the spec's folder `{}`", loaded.dir.display())
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => self.push(
                "transform.build.path",
                format!("`{shown}` is a file, but the build path must be the folder of the code"),
                format!("point `transform.build.path` at the folder, relative to {base}"),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.push(
                "transform.build.path",
                format!("the build path `{shown}` does not exist"),
                format!(
                    "create it, or set `transform.build.path` to the folder of the code, \
                     relative to {base} (default `.`)"
                ),
            ),
            Err(e) => self.push(
                "transform.build.path",
                format!("cannot read the build path `{shown}`: {e}"),
                "make the folder readable, or point `transform.build.path` at another one",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::parse_spec;
    use std::path::{Path, PathBuf};

    /// A spec in `dir` (a real folder, so that the build path check passes).
    fn loaded(json: &str, dir: &Path) -> LoadedSpec {
        LoadedSpec {
            path: dir.join("pipeline.json"),
            dir: dir.to_path_buf(),
            spec: parse_spec(json, Path::new("pipeline.json")).unwrap(),
        }
    }

    /// A valid build spec with `input` replaced.
    fn with_input(input: &str) -> String {
        format!(
            r#"{{"pipeline": {{"name": "p"}}, "transform": {{"build": {{"language": "python"}}}}, "input": {input}}}"#
        )
    }

    fn fields(errors: &[Error]) -> Vec<String> {
        errors
            .iter()
            .map(|e| match e {
                Error::Invalid { field, .. } => field.clone(),
                other => panic!("not an Invalid error: {other:?}"),
            })
            .collect()
    }

    fn check(json: &str) -> Vec<Error> {
        let tmp = tempfile::tempdir().unwrap();
        problems(&loaded(json, tmp.path()))
    }

    fn only(json: &str, field: &str) -> String {
        let errors = check(json);
        assert_eq!(fields(&errors), [field], "{errors:?}");
        errors[0].to_string()
    }

    const PFS: &str = r#"{"pfs": {"repo": "data", "glob": "/*"}}"#;

    #[test]
    fn a_good_spec_has_no_problems() {
        assert!(check(&with_input(PFS)).is_empty());
        let tmp = tempfile::tempdir().unwrap();
        assert!(validate(&loaded(&with_input(PFS), tmp.path())).is_ok());
    }

    #[test]
    fn validate_returns_the_first_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = r#"{"transform": {"build": {}}, "input": {}}"#;
        let l = loaded(spec, tmp.path());
        let all = problems(&l);
        assert!(all.len() >= 3, "{all:?}");
        let first = validate(&l).unwrap_err();
        assert_eq!(first.to_string(), all[0].to_string());
    }

    #[test]
    fn pipeline_name_is_required_and_must_be_valid() {
        let spec = r#"{"transform": {"build": {"language": "go"}}, "input": {"pfs": {"repo": "a", "glob": "/"}}}"#;
        let text = only(spec, "pipeline.name");
        assert!(text.contains("no name"), "{text}");
        let spec = with_input(PFS).replace(r#""name": "p""#, r#""name": "my pipe.v2""#);
        let text = only(&spec, "pipeline.name");
        assert!(text.contains("' '") && text.contains("'.'"), "{text}");
        assert!(text.contains("`my-pipe-v2`"), "{text}");
        for good in ["a", "A_b-9", "edges"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "a/b", "é", "a.b"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn an_ordinary_pipeline_is_valid_and_needs_an_input() {
        let spec = r#"{"pipeline": {"name": "p"}, "transform": {"image": "x", "cmd": ["a"]}, "input": {"pfs": {"repo": "a", "glob": "/"}}}"#;
        assert!(check(spec).is_empty());
        let no_input = r#"{"pipeline": {"name": "p"}, "transform": {"image": "x", "cmd": ["a"]}}"#;
        let text = only(no_input, "input");
        assert!(text.contains("no input"), "{text}");
    }

    #[test]
    fn a_build_needs_an_input() {
        let spec = r#"{"pipeline": {"name": "p"}, "transform": {"build": {"language": "go"}}}"#;
        let text = only(spec, "input");
        assert!(text.contains("needs an input"), "{text}");
    }

    #[test]
    fn a_build_cannot_be_a_spout() {
        let spec = with_input(PFS).replace(r#""input""#, r#""spout": {}, "input""#);
        only(&spec, "spout");
    }

    #[test]
    fn exactly_one_of_language_and_image() {
        let neither = with_input(PFS).replace(r#"{"language": "python"}"#, r#"{"path": "."}"#);
        let text = only(&neither, "transform.build");
        assert!(text.contains("neither `language` nor `image`"), "{text}");
        // An empty string is the same as an absent field.
        let empty = with_input(PFS).replace(r#""language": "python""#, r#""language": """#);
        only(&empty, "transform.build");
        let both = with_input(PFS).replace(
            r#"{"language": "python"}"#,
            r#"{"language": "python", "image": "me/builder:1"}"#,
        );
        let text = only(&both, "transform.build");
        assert!(
            text.contains("both") && text.contains("me/builder:1"),
            "{text}"
        );
        let image = with_input(PFS).replace(r#""language": "python""#, r#""image": "me/b:1""#);
        assert!(check(&image).is_empty());
    }

    #[test]
    fn a_misspelt_build_field_is_named() {
        let spec = with_input(PFS).replace(r#""language""#, r#""langauge""#);
        let text = only(&spec, "transform.build");
        assert!(text.contains("`langauge`"), "{text}");
        let parsed = parse_spec(&spec, Path::new("p.json")).unwrap();
        assert_eq!(unknown_fields(&parsed), ["transform.build.langauge"]);
    }

    #[test]
    fn reserved_names_at_any_depth() {
        let spec = with_input(r#"{"pfs": {"repo": "build", "glob": "/"}}"#);
        let text = only(&spec, "input.pfs.repo");
        assert!(text.contains("`\"name\": \"build_data\"`"), "{text}");
        let spec = with_input(
            r#"{"cross": [{"pfs": {"repo": "a", "glob": "/"}},
                {"union": [{"pfs": {"repo": "b", "glob": "/"}}, {"pfs": {"repo": "c", "name": "source", "glob": "/"}}]}]}"#,
        );
        only(&spec, "input.cross[1].union[1].pfs.name");
        // A repo named `source` is fine once the input has another name.
        let spec = with_input(r#"{"pfs": {"repo": "source", "name": "src", "glob": "/"}}"#);
        assert!(check(&spec).is_empty());
        let spec = with_input(r#"{"cron": {"name": "build", "spec": "@every 1m"}}"#);
        only(&spec, "input.cron.name");
    }

    #[test]
    fn reserved_names_inside_join_and_group_too() {
        let spec = with_input(
            r#"{"join": [{"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}}, {"pfs": {"repo": "source", "glob": "/(*)", "join_on": "$1"}}]}"#,
        );
        assert_eq!(fields(&check(&spec)), ["input.join[1].pfs.repo"]);
        let spec = with_input(
            r#"{"group": [{"pfs": {"repo": "build", "glob": "/(*)", "group_by": "$1"}}]}"#,
        );
        assert_eq!(fields(&check(&spec)), ["input.group[0].pfs.repo"]);
    }

    #[test]
    fn pfs_needs_repo_and_glob() {
        let spec = with_input(r#"{"cross": [{"pfs": {"glob": "/"}}, {"pfs": {"repo": "b"}}]}"#);
        let errors = check(&spec);
        assert_eq!(
            fields(&errors),
            ["input.cross[0].pfs.repo", "input.cross[1].pfs.glob"]
        );
        assert!(
            errors[1].to_string().contains("`\"glob\": \"/*\"`"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn repo_and_input_names_must_be_valid() {
        let spec = with_input(r#"{"pfs": {"repo": "my data", "glob": "/"}}"#);
        only(&spec, "input.pfs.repo");
        let spec = with_input(r#"{"pfs": {"repo": "a", "name": "x/y", "glob": "/"}}"#);
        only(&spec, "input.pfs.name");
    }

    #[test]
    fn an_input_node_sets_exactly_one_kind() {
        let text = only(&with_input("{}"), "input");
        assert!(text.contains("none of"), "{text}");
        let text = only(&with_input(r#"{"git": {"url": "x"}}"#), "input");
        assert!(text.contains("`git`"), "{text}");
        let spec = with_input(
            r#"{"pfs": {"repo": "a", "glob": "/"}, "cross": [{"pfs": {"repo": "b", "glob": "/"}}]}"#,
        );
        let text = only(&spec, "input");
        assert!(text.contains("`pfs` and `cross`"), "{text}");
        let spec = with_input(r#"{"union": [{"pfs": {"repo": "a", "glob": "/"}}, {}]}"#);
        only(&spec, "input.union[1]");
    }

    #[test]
    fn join_and_group_inputs_need_their_keys() {
        let good = with_input(
            r#"{"join": [{"pfs": {"repo": "a", "glob": "/(*).txt", "join_on": "$1"}},
                         {"pfs": {"repo": "b", "glob": "/*/(*).txt", "join_on": "$1", "outer_join": true}}]}"#,
        );
        assert!(check(&good).is_empty(), "{:?}", check(&good));
        let good = with_input(
            r#"{"group": [{"pfs": {"repo": "a", "glob": "/*-(*)-lab*.txt", "group_by": "$1"}}]}"#,
        );
        assert!(check(&good).is_empty());

        let spec = with_input(
            r#"{"join": [{"pfs": {"repo": "a", "glob": "/(*)"}}, {"pfs": {"repo": "b", "glob": "/*", "join_on": "$1"}}]}"#,
        );
        let errors = check(&spec);
        assert_eq!(
            fields(&errors),
            ["input.join[0].pfs.join_on", "input.join[1].pfs.join_on"]
        );
        assert!(
            errors[0].to_string().contains("no `join_on`"),
            "{}",
            errors[0]
        );
        assert!(errors[1].to_string().contains("has none"), "{}", errors[1]);
        assert_eq!(errors[0].exit_code(), crate::error::exit::BAD_INPUT);

        // Every input below a group needs `group_by`, also through a join.
        let spec = with_input(
            r#"{"group": [{"join": [{"pfs": {"repo": "a", "glob": "/(?)(?)", "join_on": "$1$2", "group_by": "$3"}},
                                    {"pfs": {"repo": "b", "glob": "/(?)(?)", "join_on": "$2$1"}}]}]}"#,
        );
        assert_eq!(
            fields(&check(&spec)),
            [
                "input.group[0].join[0].pfs.group_by",
                "input.group[0].join[1].pfs.group_by"
            ]
        );
        // Outside a join the keys are not needed (the platform ignores them).
        assert!(check(&with_input(r#"{"pfs": {"repo": "a", "glob": "/*"}}"#)).is_empty());
    }

    #[test]
    fn globs_must_parse() {
        let text = only(
            &with_input(r#"{"pfs": {"repo": "a", "glob": "/[a"}}"#),
            "input.pfs.glob",
        );
        assert!(text.contains("never closed"), "{text}");
        only(
            &with_input(r#"{"pfs": {"repo": "a", "glob": "/^(x)"}}"#),
            "input.pfs.glob",
        );
    }

    #[test]
    fn cross_and_union_need_elements() {
        only(&with_input(r#"{"cross": []}"#), "input.cross");
        only(
            &with_input(r#"{"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"union": []}]}"#),
            "input.cross[1].union",
        );
    }

    #[test]
    fn cron_needs_name_and_spec() {
        let errors = check(&with_input(r#"{"cron": {}}"#));
        assert_eq!(fields(&errors), ["input.cron.name", "input.cron.spec"]);
        assert!(check(&with_input(
            r#"{"cron": {"name": "tick", "spec": "@every 1m"}}"#
        ))
        .is_empty());
    }

    #[test]
    fn crossed_inputs_need_distinct_names() {
        let spec = with_input(
            r#"{"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "name": "a", "glob": "/"}}]}"#,
        );
        let text = only(&spec, "input.cross[1].pfs.name");
        assert!(text.contains("`input.cross[0].pfs.repo`"), "{text}");
        assert!(text.contains("/pfs/a"), "{text}");
    }

    #[test]
    fn union_branches_may_share_a_name_but_not_with_what_they_are_crossed_with() {
        let shared = r#"{"union": [{"pfs": {"repo": "a", "name": "c", "glob": "/*"}}, {"pfs": {"repo": "b", "name": "c", "glob": "/*"}}]}"#;
        assert!(check(&with_input(shared)).is_empty());
        let crossed = with_input(&format!(
            r#"{{"cross": [{shared}, {{"pfs": {{"repo": "c", "glob": "/"}}}}]}}"#
        ));
        only(&crossed, "input.cross[1].pfs.repo");
        // Inside one union branch, a cross still needs distinct names.
        let inner = with_input(
            r#"{"union": [{"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "a", "glob": "/*"}}]}]}"#,
        );
        only(&inner, "input.union[0].cross[1].pfs.repo");
    }

    #[test]
    fn build_path_must_exist_and_be_a_folder() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("source")).unwrap();
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        let with_path = |p: &str| {
            with_input(PFS).replace(
                r#""language": "python""#,
                &format!(r#""language": "python", "path": "{p}""#),
            )
        };
        assert!(problems(&loaded(&with_path("./source"), tmp.path())).is_empty());
        assert!(problems(&loaded(&with_path(""), tmp.path())).is_empty());
        let errors = problems(&loaded(&with_path("./missing"), tmp.path()));
        assert_eq!(fields(&errors), ["transform.build.path"]);
        let text = errors[0].to_string();
        assert!(text.contains("does not exist"), "{text}");
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        let errors = problems(&loaded(&with_path("file"), tmp.path()));
        assert!(errors[0].to_string().contains("is a file"), "{}", errors[0]);
    }

    #[test]
    fn build_path_of_a_stdin_spec_is_relative_to_the_current_directory() {
        let spec = with_input(PFS).replace(
            r#""language": "python""#,
            r#""language": "python", "path": "nope""#,
        );
        let l = LoadedSpec {
            path: PathBuf::from(crate::spec::parse::STDIN_NAME),
            dir: PathBuf::from("/nonexistent-dir"),
            spec: parse_spec(&spec, Path::new("p.json")).unwrap(),
        };
        let errors = problems(&l);
        assert_eq!(fields(&errors), ["transform.build.path"]);
        assert!(errors[0].to_string().contains("stdin"), "{}", errors[0]);
    }

    #[test]
    fn every_problem_is_reported_in_one_go() {
        let spec = r#"{"pipeline": {"name": "a b"}, "transform": {"build": {"language": "go", "image": "x", "path": "nope"}},
            "spout": {}, "input": {"cross": [{"pfs": {"repo": "build"}}, {"join": []}]}}"#;
        let errors = check(spec);
        assert_eq!(
            fields(&errors),
            [
                "pipeline.name",
                "transform.build",
                "spout",
                "input.cross[0].pfs.glob",
                "input.cross[1].join",
                "input.cross[0].pfs.repo",
                "transform.build.path",
            ]
        );
        for e in &errors {
            assert!(e.to_string().contains("fix: "), "{e}");
            assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
        }
    }
}
