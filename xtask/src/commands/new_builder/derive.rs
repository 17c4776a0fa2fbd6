//! `--from LANG`: a new builder made from an existing one. Everything in
//! the builder's folder but `target/` is copied with its mode; what names the
//! old builder is renamed:
//!
//! - `Dockerfile`, `README.md`, `builder.yaml`: image names
//!   (`base-OLD:`, `OLD-build:`), the folder (`builders/OLD`), the title and
//!   comments (`pachbuild OLD builder`, `# OLD builder`, `# The OLD builder`),
//!   and the language (`language: OLD`, `"language": "OLD"`);
//! - fixture specs (`fixtures/*/pipeline.{json,yaml,yml}`): the language;
//! - other Dockerfiles (a fixture's custom builder extending this one): the
//!   image names.
//!
//! Scripts are copied unchanged: their messages are what the fixtures
//! expect. The version is kept. With `--base`, the old upstream image is
//! replaced wherever those three files name it, and so is the Dockerfile's
//! default `BASE_IMAGE`.

use std::path::Path;

use harness::builder::meta::{BuilderMeta, METADATA_FILE};
use harness::error::IoContext;
use harness::{Error, Result};

use super::FileEntry;

/// Top-level folders never copied.
const NOT_COPIED: &[&str] = &["target"];

/// Reads every file of the builder in `dir` (except `target/`), sorted by path.
pub fn read_builder(dir: &Path) -> Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_path("cannot read", dir)? {
        let entry = entry.with_path("cannot read", dir)?;
        let path = entry.path();
        if dir == root && NOT_COPIED.iter().any(|n| entry.file_name() == *n) {
            continue;
        }
        let link = std::fs::symlink_metadata(&path).with_path("cannot read", &path)?;
        // Symbolic links to files are copied as the files they point to.
        let meta = std::fs::metadata(&path).with_path("cannot follow", &path)?;
        if meta.is_dir() {
            if link.file_type().is_symlink() {
                return Err(Error::Usage(format!(
                    "{} is a symbolic link to a folder, which --from does not copy\n  fix: replace it with a folder, or start from the generic template",
                    path.display()
                )));
            }
            collect(root, &path, out)?;
        } else if meta.is_file() {
            let contents = std::fs::read(&path).with_path("cannot read", &path)?;
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push(FileEntry::new(relative, contents, mode_of(&meta)));
        } else {
            return Err(Error::Usage(format!(
                "{} is neither a file nor a folder, which --from does not copy\n  fix: remove it from the builder",
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// A replacement of the old name: `before OLD after` becomes `before NEW after`.
struct Rule {
    before: &'static str,
    after: &'static str,
    /// The match must start a line.
    line_start: bool,
    /// NEW is a plain YAML value: quoted when plain YAML would not read it
    /// as a string (`language: "123"`).
    yaml: bool,
}

const fn rule(before: &'static str, after: &'static str) -> Rule {
    Rule {
        before,
        after,
        line_start: false,
        yaml: false,
    }
}

const YAML_LANGUAGE: Rule = Rule {
    before: "language: ",
    after: "",
    line_start: false,
    yaml: true,
};

/// What names the builder in its Dockerfile, README.md and builder.yaml.
const BUILDER_RULES: &[Rule] = &[
    rule("base-", ":"),
    rule("", "-build:"),
    rule("builders/", ""),
    rule("pachbuild ", " builder"),
    Rule {
        line_start: true,
        ..rule("# ", " builder")
    },
    Rule {
        line_start: true,
        ..rule("# The ", " builder")
    },
    rule("\"language\": \"", "\""),
    rule("language: \"", "\""),
    YAML_LANGUAGE,
];

/// What names the builder's images in other Dockerfiles (a fixture's custom
/// builder that extends this one).
const IMAGE_RULES: &[Rule] = &[rule("base-", ":"), rule("", "-build:")];

/// What names the builder in a fixture's spec.
const SPEC_RULES: &[Rule] = &[
    rule("\"language\": \"", "\""),
    rule("language: \"", "\""),
    YAML_LANGUAGE,
];

/// Renames the builder `meta` (whose files are `files`, read from
/// `source_dir`) to `name`, on `base` when given. Names `source_dir`'s files
/// in errors.
pub fn rename(
    files: Vec<FileEntry>,
    meta: &BuilderMeta,
    name: &str,
    base: Option<&str>,
    source_dir: &Path,
) -> Result<Vec<FileEntry>> {
    let old = meta.language.as_str();
    let mut set_default_base = false;
    let files: Vec<FileEntry> = files
        .into_iter()
        .map(|mut file| {
            let kind = kind_of(&file.path);
            let rules = match kind {
                Kind::Builder => BUILDER_RULES,
                Kind::Spec => SPEC_RULES,
                Kind::OtherDockerfile => IMAGE_RULES,
                Kind::Other => return file,
            };
            let Ok(text) = String::from_utf8(file.contents.clone()) else {
                return file;
            };
            let mut text = rules
                .iter()
                .fold(text, |text, rule| apply(&text, old, name, rule));
            if let (Some(base), Kind::Builder) = (base, kind) {
                text = replace_image(&text, &meta.base.upstream, base);
                if file.path == Path::new("Dockerfile") {
                    let (changed, count) = set_arg_default(&text, "BASE_IMAGE", base);
                    text = changed;
                    set_default_base = count > 0;
                }
            }
            file.contents = text.into_bytes();
            file
        })
        .collect();

    // The renaming must have reached what matters; say so when it did not.
    let yaml_path = source_dir.join(METADATA_FILE);
    let yaml = files
        .iter()
        .find(|f| f.path == Path::new(METADATA_FILE))
        .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
        .unwrap_or_default();
    let renamed: BuilderMeta = harness::yaml::from_yaml_str(&yaml, &yaml_path)?;
    if renamed.language != name {
        return Err(Error::invalid(
            &yaml_path,
            "language",
            format!("could not be renamed from {old:?} to {name:?}"),
            format!("write it on a line of its own, `language: {old}`, or start from the generic template"),
        ));
    }
    if let Some(base) = base {
        if renamed.base.upstream != base {
            return Err(Error::invalid(
                &yaml_path,
                "base.upstream",
                format!("could not be set to {base:?}"),
                format!("write it on a line of its own, `upstream: {}`, or leave --base out and edit it afterwards", meta.base.upstream),
            ));
        }
        if !set_default_base {
            return Err(Error::invalid(
                source_dir.join("Dockerfile"),
                "ARG BASE_IMAGE",
                "has no default that --base could set",
                "start the Dockerfile with `ARG BASE_IMAGE=<image>` and `FROM ${BASE_IMAGE}`",
            ));
        }
    }
    Ok(files)
}

/// Which files name the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `Dockerfile`, `README.md`, `builder.yaml`.
    Builder,
    /// A fixture's pipeline spec.
    Spec,
    /// Any other Dockerfile, e.g. of a fixture's custom builder.
    OtherDockerfile,
    /// Copied unchanged.
    Other,
}

fn kind_of(path: &Path) -> Kind {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    match parts.as_slice() {
        ["Dockerfile" | "README.md" | METADATA_FILE] => Kind::Builder,
        ["fixtures", _, "pipeline.json" | "pipeline.yaml" | "pipeline.yml"] => Kind::Spec,
        [.., "Dockerfile"] => Kind::OtherDockerfile,
        _ => Kind::Other,
    }
}

/// A character that continues a name (or, for `.`, may: see [`continues`]).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// Whether `rest` (the text after a match) continues the name matched:
/// `go.mod` continues `go`, `go.` at the end of a sentence does not.
fn continues(rest: &str) -> bool {
    let mut chars = rest.chars();
    match chars.next() {
        Some('.') => chars.next().is_some_and(|c| c.is_ascii_alphanumeric()),
        Some(c) => is_name_char(c),
        None => false,
    }
}

fn apply(text: &str, old: &str, new: &str, rule: &Rule) -> String {
    let pattern = format!("{}{old}{}", rule.before, rule.after);
    let new = if rule.yaml {
        super::yaml_scalar(new)
    } else {
        new.to_string()
    };
    let check_right = rule.after.chars().last().is_none_or(is_name_char);
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = text[i..].find(&pattern) {
        let start = i + found;
        let end = start + pattern.len();
        let left_ok = if rule.line_start {
            start == 0 || text[..start].ends_with('\n')
        } else {
            text[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !is_name_char(c))
        };
        let right_ok = !check_right || !continues(&text[end..]);
        if left_ok && right_ok {
            out.push_str(&text[i..start]);
            out.push_str(rule.before);
            out.push_str(&new);
            out.push_str(rule.after);
            i = end;
        } else {
            // Not this one: move on by one character.
            let step = text[start..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..start + step]);
            i = start + step;
        }
    }
    out.push_str(&text[i..]);
    out
}

/// Replaces the image reference `old` by `new` where it stands alone (not
/// as part of a longer reference).
fn replace_image(text: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        return text.to_string();
    }
    let is_ref = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = text[i..].find(old) {
        let start = i + found;
        let end = start + old.len();
        let left_ok = text[..start].chars().next_back().is_none_or(|c| !is_ref(c));
        let right_ok = {
            let mut rest = text[end..].chars();
            match rest.next() {
                // A sentence may end right after the reference.
                Some('.' | ':') => !rest.next().is_some_and(is_ref),
                Some(c) => !is_ref(c),
                None => true,
            }
        };
        out.push_str(&text[i..start]);
        out.push_str(if left_ok && right_ok { new } else { old });
        i = end;
    }
    out.push_str(&text[i..]);
    out
}

/// Sets the default of `ARG <arg>=...` lines; returns the text and how many
/// lines were changed.
fn set_arg_default(text: &str, arg: &str, value: &str) -> (String, usize) {
    let prefix = format!("ARG {arg}=");
    let mut count = 0;
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with(&prefix) {
                count += 1;
                let indent = &line[..line.len() - trimmed.len()];
                let ending = if line.ends_with('\r') { "\r" } else { "" };
                format!("{indent}{prefix}{value}{ending}")
            } else {
                line.to_string()
            }
        })
        .collect();
    (lines.join("\n"), count)
}
