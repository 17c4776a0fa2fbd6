//! `builder.yaml` as `validate` sees it: every problem reported at once,
//! each on the line of its field ([`yaml_line`]), and the checks complete
//! enough to prove something about the image.

use std::path::Path;

use super::{Problem, SCRIPTS};
use crate::builder::meta::BuilderMeta;
use crate::error::Error;

/// Every problem of `builder.yaml` (at `path`, in the builder folder `dir`).
pub(super) fn check(dir: &Path, path: &Path, text: &str, problems: &mut Vec<Problem>) {
    let meta: BuilderMeta = match crate::yaml::from_yaml_str(text, path) {
        Ok(meta) => meta,
        Err(Error::Syntax { line, message, .. }) => {
            problems.push(Problem::new(
                path,
                Some(line),
                "builder-yaml",
                message,
                "correct the YAML (fields: language, version, description, base.upstream, base.debian, provides, checks)",
            ));
            return;
        }
        Err(other) => {
            problems.push(Problem::new(
                path,
                None,
                "builder-yaml",
                other.to_string(),
                "correct builder.yaml",
            ));
            return;
        }
    };
    for error in meta.problems(path) {
        match error {
            Error::Invalid {
                field,
                problem,
                fix,
                ..
            } => problems.push(Problem::new(
                path,
                yaml_line(text, &field),
                "builder-yaml",
                format!("`{field}`: {problem}"),
                fix,
            )),
            other => problems.push(Problem::new(
                path,
                None,
                "builder-yaml",
                other.to_string(),
                "correct builder.yaml",
            )),
        }
    }
    if let Some(folder) = dir.file_name().map(|n| n.to_string_lossy()) {
        if meta.language != folder {
            problems.push(Problem::new(
                path,
                yaml_line(text, "language"),
                "builder-yaml",
                format!("`language` is {:?} but the folder is named {folder:?}: commands find a builder by its folder", meta.language),
                "give the folder and `language` the same name",
            ));
        }
    }
    let checks_line = yaml_line(text, "checks");
    let checks = &meta.checks;
    if checks.commands.is_empty() {
        problems.push(Problem::new(
            path,
            yaml_line(text, "checks.commands").or(checks_line),
            "checks-commands",
            "`checks.commands` is empty: nothing proves that the image's tools work",
            "list commands that must succeed in the image, e.g. `python3 --version`",
        ));
    }
    for script in SCRIPTS {
        let listed = checks
            .files
            .iter()
            .any(|f| f.path.rsplit('/').next() == Some(*script));
        if !listed {
            problems.push(Problem::new(
                path,
                yaml_line(text, "checks.files").or(checks_line),
                "checks-files",
                format!(
                    "`checks.files` does not list {script}: nothing proves that the image holds it"
                ),
                format!(
                    "add `- path: /app/{script}` (its path in the image) with `mode: \"0755\"`"
                ),
            ));
        }
    }
    for (i, file) in checks.files.iter().enumerate() {
        if !file.path.starts_with('/') {
            problems.push(Problem::new(
                path,
                yaml_line(text, &format!("checks.files[{i}].path")),
                "checks-files",
                format!(
                    "`checks.files[{i}].path` {:?} is not an absolute path",
                    file.path
                ),
                "name the file by its absolute path in the image, e.g. /app/build.sh",
            ));
        }
    }
    if checks.labels.is_empty() {
        problems.push(Problem::new(
            path,
            yaml_line(text, "checks.labels").or(checks_line),
            "checks-labels",
            "`checks.labels` is empty: nothing proves that the image says what it is",
            "list labels the Dockerfile sets, e.g. `org.opencontainers.image.title` and `org.opencontainers.image.version`",
        ));
    }
}

/// The line of a field of a YAML document, named as `BuilderMeta::problems`
/// names them (`base.debian.suite`, `checks.files[1].mode`). When a part of
/// the path is not found (or is written in flow style), the line of the
/// deepest part found; `None` when not even the first is.
pub fn yaml_line(text: &str, field: &str) -> Option<usize> {
    #[derive(Debug)]
    enum Token<'a> {
        Item,
        Text(&'a str),
    }
    // Block-style lines as (line, indent, token); `- key: v` is an item
    // marker followed by its text two columns further in.
    let mut tokens: Vec<(usize, usize, Token)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') || content.starts_with("---") {
            continue;
        }
        let mut indent = raw.len() - content.len();
        let mut rest = content;
        while let Some(after) = rest.strip_prefix('-') {
            if !(after.is_empty() || after.starts_with(' ')) {
                break;
            }
            tokens.push((i + 1, indent, Token::Item));
            let trimmed = after.trim_start();
            indent += 1 + (after.len() - trimmed.len());
            rest = trimmed;
        }
        if !rest.is_empty() {
            tokens.push((i + 1, indent, Token::Text(rest)));
        }
    }
    let mut segments = Vec::new();
    for part in field.split('.') {
        let (key, mut indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segments.push(Err(key));
        }
        while let Some(end) = indexes.find(']') {
            if let Some(Ok(n)) = indexes.get(1..end).map(str::parse::<usize>) {
                segments.push(Ok(n));
            }
            indexes = &indexes[end + 1..];
        }
    }
    let mut start = 0;
    // The indent of the enclosing node, and whether it is a key (whose
    // sequence may sit at the key's own indent: `key:` then `- item`).
    let mut parent: Option<(usize, bool)> = None;
    let mut found = None;
    for segment in segments {
        let block: Vec<usize> = (start..tokens.len())
            .take_while(|&t| {
                parent.is_none_or(|(p, key)| {
                    tokens[t].1 > p
                        || (key && tokens[t].1 == p && matches!(tokens[t].2, Token::Item))
                })
            })
            .collect();
        let Some(&first) = block.first() else {
            break;
        };
        let child_indent = tokens[first].1;
        let hit = match segment {
            Err(key) => block.iter().copied().find(|&t| {
                tokens[t].1 == child_indent
                    && matches!(tokens[t].2, Token::Text(text)
                        if text.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
            }),
            Ok(n) => block
                .iter()
                .copied()
                .filter(|&t| tokens[t].1 == child_indent && matches!(tokens[t].2, Token::Item))
                .nth(n),
        };
        let Some(t) = hit else {
            break;
        };
        found = Some(tokens[t].0);
        parent = Some((tokens[t].1, matches!(tokens[t].2, Token::Text(_))));
        start = t + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::validate::static_checks;
    use crate::builder::validate::testing::*;

    #[test]
    fn builder_yaml_problems_are_all_reported_with_their_lines() {
        let (_root, dir) = good();
        let text = BUILDER_YAML
            .replace("version: 0.1.0", "version: latest")
            .replace("debian:bookworm-slim", "debian")
            .replace(
                "      mode: \"0755\"\n    - path: /app/run.sh",
                "      mode: \"9\"\n    - path: /app/run.sh",
            );
        write(&dir, "builder.yaml", &text, false);
        let problems = static_checks(&dir);
        let fields: Vec<(Option<usize>, &str)> = problems
            .iter()
            .map(|p| (p.line, p.message.split('`').nth(1).unwrap_or("")))
            .collect();
        assert_eq!(
            fields,
            [
                (Some(2), "version"),
                (Some(4), "base.upstream"),
                (Some(11), "checks.files[0].mode")
            ],
            "{problems:#?}"
        );
    }

    #[test]
    fn builder_yaml_syntax_errors_have_a_line() {
        let (_root, dir) = good();
        write(
            &dir,
            "builder.yaml",
            &BUILDER_YAML.replace("version:", "versoin:"),
            false,
        );
        let problems = found(&dir);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].2, "builder-yaml");
        assert!(problems[0].1.is_some());
        let message = &static_checks(&dir)[0].message;
        assert!(message.contains("versoin"), "{message}");
    }

    #[test]
    fn builder_yaml_checks_must_be_complete() {
        let (_root, dir) = good();
        let text = "\
language: y
version: 0.1.0
base:
  upstream: debian:bookworm-slim
  debian:
    suite: bookworm
checks:
  files:
    - path: app/build.sh
";
        write(&dir, "builder.yaml", text, false);
        let mut problems = found(&dir);
        problems.sort();
        assert_eq!(
            problems,
            [
                ("builder.yaml".to_string(), Some(1), "builder-yaml"),
                ("builder.yaml".to_string(), Some(7), "checks-commands"),
                ("builder.yaml".to_string(), Some(7), "checks-labels"),
                ("builder.yaml".to_string(), Some(8), "checks-files"),
                ("builder.yaml".to_string(), Some(9), "checks-files"),
            ]
        );
    }

    #[test]
    fn yaml_lines_of_fields() {
        let text = "\
# comment
language: x
base:
  upstream: debian
  debian:
    suite: bookworm
checks:
  commands: [a, b]
  files:
    - path: /a
      mode: \"0755\"
    -   path: /b
        mode: \"0700\"
  labels:
  - one
  - two
";
        for (field, line) in [
            ("language", Some(2)),
            ("base.upstream", Some(4)),
            ("base.debian.suite", Some(6)),
            ("checks.commands[1]", Some(8)),
            ("checks.files[0]", Some(10)),
            ("checks.files[1].mode", Some(13)),
            ("checks.files[0].mode", Some(11)),
            ("checks.labels[1]", Some(16)),
            ("checks.labels[2]", Some(14)),
            ("checks.nothing", Some(7)),
            ("suite", None),
            ("nothing.at.all", None),
            ("checks]][", None),
            ("checks[]]", Some(7)),
        ] {
            assert_eq!(yaml_line(text, field), line, "{field}");
        }
        // A sequence at its key's indent ends at the next key.
        let compact = "checks:\n  labels:\n  - one\n  files:\n  - path: /a\n";
        assert_eq!(yaml_line(compact, "checks.labels[0]"), Some(3));
        assert_eq!(yaml_line(compact, "checks.labels[1]"), Some(2));
        assert_eq!(yaml_line(compact, "checks.files[0].path"), Some(5));
    }
}
