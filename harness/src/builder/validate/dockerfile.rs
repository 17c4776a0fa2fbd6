//! The Dockerfile: read into instructions (continuations joined, comments
//! dropped), then checked: the base comes in as the `BASE_IMAGE` build
//! argument and the final stage is built on it, and every image it names
//! (FROM, `COPY --from`, argument defaults) is pinned.

use std::collections::HashMap;
use std::path::Path;

use super::pinning::check_pinned;
use super::shell::unquote;
use super::{Problem, BASE_ARG};

/// One Dockerfile instruction: the line it starts on, its keyword
/// (uppercase) and its arguments (continuations joined, comments dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        // Comment lines are dropped, also inside a continued instruction.
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (code, continues) = match trimmed.strip_suffix('\\') {
            Some(c) => (c, true),
            None => (trimmed, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        joined.push_str(code);
        joined.push(' ');
        if continues {
            pending = Some((start, joined));
            continue;
        }
        if let Some(instruction) = instruction(start, &joined) {
            out.push(instruction);
        }
    }
    if let Some((start, joined)) = pending {
        out.extend(instruction(start, &joined));
    }
    out
}

fn instruction(line: usize, text: &str) -> Option<Instruction> {
    let text = text.trim();
    let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    (!keyword.is_empty()).then(|| Instruction {
        line,
        keyword: keyword.to_ascii_uppercase(),
        args: args.trim().to_string(),
    })
}

/// Whether an image reference in FROM is the base argument:
/// `$BASE_IMAGE`, `${BASE_IMAGE}` or `${BASE_IMAGE:-default}`.
fn is_base_reference(image: &str) -> bool {
    image == format!("${BASE_ARG}")
        || image == format!("${{{BASE_ARG}}}")
        || (image.starts_with(&format!("${{{BASE_ARG}:")) && image.ends_with('}'))
}

/// Every problem of the Dockerfile at `path` (its pinning included).
pub(super) fn check(path: &Path, text: &str, problems: &mut Vec<Problem>) {
    let instructions = dockerfile_instructions(text);
    // ARGs before the first FROM: the only ones a FROM can use.
    let mut global_args: HashMap<String, (usize, Option<String>)> = HashMap::new();
    // (stage name, built on the base argument, line of its FROM)
    let mut stages: Vec<(Option<String>, bool, usize)> = Vec::new();
    let fix_base = format!(
        "put `ARG {BASE_ARG}=<pinned image>` before the first FROM and build on `FROM ${{{BASE_ARG}}}`, so a user can pass another base with `--build-arg {BASE_ARG}=...`"
    );
    for ins in &instructions {
        match ins.keyword.as_str() {
            "ARG" => {
                for declaration in ins.args.split_whitespace() {
                    let (name, default) = match declaration.split_once('=') {
                        Some((n, d)) => (n, Some(unquote(d))),
                        None => (declaration, None),
                    };
                    if stages.is_empty() {
                        global_args.insert(name.to_string(), (ins.line, default));
                    } else if name == BASE_ARG && !global_args.contains_key(BASE_ARG) {
                        problems.push(Problem::new(
                            path,
                            Some(ins.line),
                            "base-arg",
                            format!("`ARG {BASE_ARG}` comes after the first FROM, where no FROM can use it"),
                            fix_base.clone(),
                        ));
                    }
                }
            }
            "FROM" => {
                let words: Vec<&str> = ins
                    .args
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let Some(image) = words.first().copied() else {
                    problems.push(Problem::new(
                        path,
                        Some(ins.line),
                        "base-arg",
                        "FROM names no image",
                        fix_base.clone(),
                    ));
                    continue;
                };
                let name = match words.get(1) {
                    Some(a) if a.eq_ignore_ascii_case("as") => {
                        words.get(2).map(|n| n.to_ascii_lowercase())
                    }
                    _ => None,
                };
                let earlier = stages
                    .iter()
                    .find(|(n, _, _)| n.as_deref() == Some(&image.to_ascii_lowercase()));
                let on_base = if is_base_reference(image) {
                    if !global_args.contains_key(BASE_ARG) {
                        problems.push(Problem::new(
                            path,
                            Some(ins.line),
                            "base-arg",
                            format!("FROM uses ${{{BASE_ARG}}}, but no `ARG {BASE_ARG}` comes before the first FROM"),
                            fix_base.clone(),
                        ));
                    }
                    true
                } else if let Some((_, on_base, _)) = earlier {
                    *on_base
                } else if image.contains('$') {
                    // Another argument: check its default when it has one.
                    let arg = image.trim_start_matches('$');
                    let arg = arg.trim_start_matches('{').trim_end_matches('}');
                    if let Some((line, Some(default))) = global_args.get(arg) {
                        check_pinned(path, *line, default, problems);
                    }
                    false
                } else {
                    check_pinned(path, ins.line, image, problems);
                    false
                };
                stages.push((name, on_base, ins.line));
            }
            "COPY" | "ADD" => {
                for word in ins.args.split_whitespace() {
                    if let Some(from) = word.strip_prefix("--from=") {
                        let from = unquote(from);
                        let is_stage = stages
                            .iter()
                            .any(|(n, _, _)| n.as_deref() == Some(&from.to_ascii_lowercase()))
                            || from.parse::<usize>().is_ok()
                            || from.contains('$');
                        if !is_stage {
                            check_pinned(path, ins.line, &from, problems);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    match global_args.get(BASE_ARG) {
        Some((line, Some(default))) if !default.is_empty() => {
            check_pinned(path, *line, default, problems)
        }
        _ => {}
    }
    match stages.last() {
        None => problems.push(Problem::new(
            path,
            None,
            "base-arg",
            "the Dockerfile has no FROM",
            fix_base,
        )),
        Some((_, false, line)) => {
            let message = if stages.iter().any(|(_, on_base, _)| *on_base) {
                format!("the final stage is not built on ${{{BASE_ARG}}}: the builder image would ignore the base it is given")
            } else {
                format!("the base is fixed in the Dockerfile instead of taken as the build argument {BASE_ARG}")
            };
            problems.push(Problem::new(
                path,
                Some(*line),
                "base-arg",
                message,
                fix_base,
            ));
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::builder::validate::testing::*;

    #[test]
    fn dockerfile_must_take_its_base_as_an_argument() {
        let (_root, dir) = good();
        let fixed = DOCKERFILE.replace("FROM ${BASE_IMAGE}", "FROM debian:bookworm-slim");
        write(&dir, "Dockerfile", &fixed, false);
        assert_eq!(found(&dir), one("Dockerfile", Some(3), "base-arg"));

        let no_arg = DOCKERFILE.replace("ARG BASE_IMAGE=pachbuild/base-x:bookworm\n", "");
        write(&dir, "Dockerfile", &no_arg, false);
        assert_eq!(found(&dir), one("Dockerfile", Some(2), "base-arg"));

        let late_arg = "FROM debian:12\nARG BASE_IMAGE\nFROM $BASE_IMAGE\n";
        write(&dir, "Dockerfile", late_arg, false);
        let problems = found(&dir);
        assert!(
            problems.contains(&("Dockerfile".into(), Some(2), "base-arg")),
            "{problems:?}"
        );
        assert!(
            problems.contains(&("Dockerfile".into(), Some(3), "base-arg")),
            "{problems:?}"
        );

        write(&dir, "Dockerfile", "# nothing\n", false);
        assert_eq!(found(&dir), one("Dockerfile", None, "base-arg"));

        let multi_stage = "ARG BASE_IMAGE\nFROM debian:12 AS tools\nRUN true\nFROM ${BASE_IMAGE} AS final\nCOPY --from=tools /x /x\n";
        write(&dir, "Dockerfile", multi_stage, false);
        assert_eq!(found(&dir), []);
        let wrong_final =
            "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS b\nFROM --platform=linux/amd64 debian:12\n";
        write(&dir, "Dockerfile", wrong_final, false);
        assert_eq!(found(&dir), one("Dockerfile", Some(3), "base-arg"));
        let on_stage = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS b\nFROM b\n";
        write(&dir, "Dockerfile", on_stage, false);
        assert_eq!(found(&dir), []);
    }
}
