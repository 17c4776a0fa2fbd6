//! Tidy: fast checks of the workspace's own sources, as rust-analyzer's
//! `tidy` test. No engine, no build: each rule reads files and fails naming
//! the file and line that break it.
//!
//! - only `harness/src/engine/` imports `bollard`, only `harness/src/yaml.rs`
//!   imports `serde_yaml_ng`;
//! - label keys are defined in `harness/src/engine/labels.rs` alone, and every
//!   key a file mentions (docs, scripts, tests) is one it defines;
//! - every dependency a member declares is used by its sources, and every
//!   `[workspace.dependencies]` entry by a member;
//! - what ARCHITECTURE.md names (modules, files, items) exists;
//! - CI (`.ci/run`) runs README.md's test command, so these checks run there.

use std::collections::BTreeSet;
use std::path::Path;

use e2e::repo_root;

const LABELS_RS: &str = "harness/src/engine/labels.rs";
/// Label keys start with this (spelled in two parts so this file holds none).
const LABEL_PREFIX: &str = concat!("io.", "pachbuild.");

// ----- the files ---------------------------------------------------------------

/// Every file of the repository (paths relative to its root, `/`-separated),
/// without build outputs and git's folder.
fn repo_files() -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                if name != "target" && name != ".git" {
                    walk(root, &path, out);
                }
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let root = repo_root();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Rust file split in two: its code with comments and literals blanked
/// (lines kept), and its string literals with the line each starts on.
struct Rust {
    code: String,
    strings: Vec<(usize, String)>,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A small lexer: enough of Rust's comments, strings, raw strings and char
/// literals (told from lifetimes) that text inside them is never taken for
/// code, nor code for text.
fn lex(text: &str) -> Rust {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut strings = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Blanks `chars[from..to]` in the code, keeping line breaks.
    let blank = |code: &mut String, line: &mut usize, from: usize, to: usize| {
        for &c in &chars[from..to] {
            if c == '\n' {
                *line += 1;
                code.push('\n');
            } else {
                code.push(' ');
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank(&mut code, &mut line, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < chars.len() && depth > 0 {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 1;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 1;
                }
                j += 1;
            }
            blank(&mut code, &mut line, i, j);
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let j = j.min(chars.len() - 1);
            strings.push((line, chars[i + 1..j].iter().collect()));
            blank(&mut code, &mut line, i, j + 1);
            i = j + 1;
        } else if c == 'r'
            && (!prev_ident
                || (i >= 1 && chars[i - 1] == 'b' && (i < 2 || !is_ident(chars[i - 2]))))
            && matches!(next, Some('"') | Some('#'))
        {
            // r"…", r#"…"#, br"…": ends at a quote followed by as many #.
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            let open = i + 1 + hashes;
            if chars.get(open) != Some(&'"') {
                // A raw identifier (r#type), not a string.
                code.push(c);
                i += 1;
                continue;
            }
            let mut j = open + 1;
            let end = loop {
                if j >= chars.len() {
                    break chars.len();
                }
                if chars[j] == '"'
                    && chars[j + 1..].iter().take_while(|&&c| c == '#').count() >= hashes
                {
                    break j;
                }
                j += 1;
            };
            strings.push((line, chars[open + 1..end].iter().collect()));
            let stop = (end + 1 + hashes).min(chars.len());
            blank(&mut code, &mut line, i, stop);
            i = stop;
        } else if c == '\'' && !prev_ident {
            // A char literal ('a', '\n', '"'), else a lifetime or label.
            let end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|p| i + 2 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut code, &mut line, i, end + 1);
                    i = end + 1;
                }
                None => {
                    code.push(c);
                    i += 1;
                }
            }
        } else {
            if c == '\n' {
                line += 1;
            }
            code.push(c);
            i += 1;
        }
    }
    Rust { code, strings }
}

/// The lines (1-based) where `code` uses the crate `name` as a path root:
/// `name::…`, `use name…`, `extern crate name`.
fn crate_uses(code: &str, name: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(name) {
            let start = from + at;
            let end = start + name.len();
            from = end;
            let before = &line[..start];
            let after = line[end..].trim_start();
            if before.chars().next_back().is_some_and(is_ident)
                || line[end..].chars().next().is_some_and(is_ident)
            {
                continue;
            }
            let before = before.trim_end();
            if let Some(path) = before.strip_suffix("::") {
                // `a::name` is a module of `a`; only `::name` is the crate.
                if !path.chars().next_back().is_some_and(is_ident) {
                    found.push(n + 1);
                }
                continue;
            }
            if after.starts_with("::")
                || before.ends_with("use")
                || before.ends_with("extern crate")
            {
                found.push(n + 1);
            }
        }
    }
    found
}

/// The Rust files under the folders `dirs` (relative to the repo root).
fn rust_files_under<'a>(files: &'a [String], dirs: &[&str]) -> Vec<&'a String> {
    files
        .iter()
        .filter(|f| f.ends_with(".rs"))
        .filter(|f| {
            dirs.iter()
                .any(|d| f.starts_with(&format!("{d}/")) || f == d)
        })
        .collect()
}

fn report(rule: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{rule}:\n  {}\n",
        problems.join("\n  ")
    );
}

// ----- files small enough to read ------------------------------------------------

/// The most lines of code (not blank, not comments, tests apart) a file of
/// the library may hold: past it, it does several jobs and is split.
const MAX_CODE_LINES: usize = 800;

#[test]
fn no_library_file_holds_more_than_800_lines_of_code() {
    let mut problems = Vec::new();
    for file in repo_files()
        .iter()
        .filter(|f| f.starts_with("harness/src/") && f.ends_with(".rs"))
    {
        let text = read(file);
        // Unit tests sit at the end, in `mod tests`.
        let library = text
            .find("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |at| &text[..at]);
        let code = lex(library).code;
        let lines = code.lines().filter(|l| !l.trim().is_empty()).count();
        if lines > MAX_CODE_LINES {
            problems.push(format!(
                "{file}: {lines} lines of code (at most {MAX_CODE_LINES}): split it by job"
            ));
        }
    }
    report("files too large", problems);
}

// ----- one module for each outside dependency ------------------------------------

fn only_module_imports(name: &str, allowed: &str) -> Vec<String> {
    let files = repo_files();
    let mut problems = Vec::new();
    for file in files.iter().filter(|f| f.ends_with(".rs")) {
        if file.starts_with(allowed) {
            continue;
        }
        for line in crate_uses(&lex(&read(file)).code, name) {
            problems.push(format!("{file}:{line}: uses `{name}` (only {allowed} may)"));
        }
    }
    problems
}

#[test]
fn only_the_engine_module_imports_bollard() {
    report(
        "engine access outside harness::engine",
        only_module_imports("bollard", "harness/src/engine/"),
    );
}

#[test]
fn only_the_yaml_module_imports_serde_yaml_ng() {
    report(
        "YAML parsed outside harness::yaml",
        only_module_imports("serde_yaml_ng", "harness/src/yaml.rs"),
    );
}

// ----- labels ------------------------------------------------------------------

/// The label keys mentioned in `text` (`io.pachbuild.<key>`), with their lines.
fn label_keys(text: &str) -> Vec<(usize, String)> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(LABEL_PREFIX) {
            let start = from + at;
            let rest = &line[start + LABEL_PREFIX.len()..];
            let len = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len());
            if len > 0 {
                keys.push((n + 1, format!("{LABEL_PREFIX}{}", &rest[..len])));
            }
            from = start + LABEL_PREFIX.len();
        }
    }
    keys
}

/// The keys labels.rs defines: its string literals that are a whole key.
fn defined_labels() -> BTreeSet<String> {
    lex(&read(LABELS_RS))
        .strings
        .into_iter()
        .filter_map(|(_, s)| {
            let keys = label_keys(&s);
            (keys.len() == 1 && keys[0].1 == s).then_some(s)
        })
        .collect()
}

#[test]
fn label_keys_are_defined_in_labels_rs_only() {
    let files = repo_files();
    let mut problems = Vec::new();
    // Code (not tests or docs) names a label by its constant.
    for file in rust_files_under(&files, &["harness/src", "xtask/src", "tests/src"]) {
        if file == LABELS_RS {
            continue;
        }
        for (line, text) in lex(&read(file)).strings {
            if text.contains(LABEL_PREFIX) {
                problems.push(format!(
                    "{file}:{line}: a label key written out ({text:?}); define it in {LABELS_RS} and use its constant"
                ));
            }
        }
    }
    report("label keys outside labels.rs", problems);
}

#[test]
fn every_label_key_mentioned_is_one_labels_rs_defines() {
    let defined = defined_labels();
    assert!(
        defined.len() > 5,
        "{LABELS_RS} defines only {defined:?}: the tidy test no longer reads it right"
    );
    let mut problems = Vec::new();
    // Docs, scripts, workflows, tests and comments: a key they name that the
    // tools do not set is a doc out of date or a check that never matches.
    for file in repo_files() {
        let Ok(text) = std::fs::read_to_string(repo_root().join(&file)) else {
            continue; // not text
        };
        for (line, key) in label_keys(&text) {
            if !defined.contains(&key) {
                problems.push(format!(
                    "{file}:{line}: {key} is not a label of {LABELS_RS}"
                ));
            }
        }
    }
    report("unknown label keys", problems);
}

// ----- dependencies ------------------------------------------------------------

/// The dependencies of each `[…dependencies]` table of a Cargo.toml:
/// (table, name, line).
fn declared_dependencies(manifest: &str) -> Vec<(String, String, usize)> {
    let mut table = String::new();
    let mut out = Vec::new();
    for (n, line) in read(manifest).lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            table = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        if !table.ends_with("dependencies") || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line
            .split(['=', '.', ' '])
            .next()
            .unwrap_or_default()
            .trim_matches('"');
        if !key.is_empty() {
            out.push((table.clone(), key.to_string(), n + 1));
        }
    }
    out
}

/// The workspace's members, from the root Cargo.toml.
fn members() -> Vec<String> {
    let root = read("Cargo.toml");
    let list = root
        .lines()
        .find_map(|l| l.trim().strip_prefix("members"))
        .expect("Cargo.toml lists the workspace members");
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_declared_dependency_is_used() {
    let files = repo_files();
    let mut problems = Vec::new();
    let members = members();
    assert!(members.len() >= 3, "members: {members:?}");
    for member in &members {
        let manifest = format!("{member}/Cargo.toml");
        let code_in = |dirs: &[&str]| -> Vec<(String, String)> {
            let dirs: Vec<String> = dirs.iter().map(|d| format!("{member}/{d}")).collect();
            let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
            rust_files_under(&files, &dirs)
                .into_iter()
                .map(|f| (f.clone(), lex(&read(f)).code))
                .collect()
        };
        let library = code_in(&["src", "build.rs"]);
        let all = code_in(&["src", "build.rs", "tests", "benches", "examples"]);
        for (table, name, line) in declared_dependencies(&manifest) {
            // Normal dependencies serve the crate itself; dev ones may serve tests.
            let sources = if table == "dev-dependencies" {
                &all
            } else {
                &library
            };
            let ident = name.replace('-', "_");
            let used = sources
                .iter()
                .any(|(_, code)| !crate_uses(code, &ident).is_empty());
            if !used {
                let hint = if table != "dev-dependencies"
                    && all
                        .iter()
                        .any(|(_, code)| !crate_uses(code, &ident).is_empty())
                {
                    " (only its tests use it: a dev-dependency)"
                } else {
                    ""
                };
                problems.push(format!(
                    "{manifest}:{line}: [{table}] {name} is not used by the sources of {member}/{hint}"
                ));
            }
        }
    }
    report("unused dependencies", problems);
}

#[test]
fn every_workspace_dependency_is_used_by_a_member() {
    let used: BTreeSet<String> = members()
        .iter()
        .flat_map(|m| declared_dependencies(&format!("{m}/Cargo.toml")))
        .map(|(_, name, _)| name)
        .collect();
    let problems = declared_dependencies("Cargo.toml")
        .into_iter()
        .filter(|(table, name, _)| table == "workspace.dependencies" && !used.contains(name))
        .map(|(_, name, line)| format!("Cargo.toml:{line}: {name} is used by no member"))
        .collect();
    report("unused workspace dependencies", problems);
}

// ----- ARCHITECTURE.md -----------------------------------------------------------

/// The `code` spans of a Markdown text, with their lines.
fn code_spans(text: &str) -> Vec<(usize, String)> {
    let mut spans = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut parts = line.split('`');
        parts.next();
        while let (Some(inside), Some(_)) = (parts.next(), parts.next()) {
            spans.push((n + 1, inside.to_string()));
        }
    }
    spans
}

/// Folders that tools make at run time: named in the docs, absent in a checkout.
const MADE_AT_RUN_TIME: &[&str] = &["target/", "proptest-regressions/"];

#[test]
fn architecture_names_modules_and_files_that_exist() {
    let root = repo_root();
    let text = read("ARCHITECTURE.md");
    let files = repo_files();
    let mut problems = Vec::new();

    // The diagram's modules of the harness.
    for (n, line) in text.lines().enumerate() {
        let Some((_, rest)) = line.split_once("├─ ").or_else(|| line.split_once("└─ "))
        else {
            continue;
        };
        let module = rest.split_whitespace().next().unwrap_or_default();
        let as_file = root.join(format!("harness/src/{module}.rs"));
        let as_dir = root.join(format!("harness/src/{module}/mod.rs"));
        if !as_file.is_file() && !as_dir.is_file() {
            problems.push(format!(
                "ARCHITECTURE.md:{}: module `{module}` is not harness/src/{module}.rs or {module}/mod.rs",
                n + 1
            ));
        }
    }

    let top_level: BTreeSet<&str> = files
        .iter()
        .filter_map(|f| f.split('/').next())
        .filter(|first| files.iter().any(|f| f.starts_with(&format!("{first}/"))))
        .collect();
    for (line, span) in code_spans(&text) {
        let is_path = !span.is_empty()
            && span
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
            && !span.starts_with('/')
            && !MADE_AT_RUN_TIME.iter().any(|m| span.contains(m));
        if is_path && span.contains('/') && top_level.contains(span.split('/').next().unwrap()) {
            // From the repository's root: exactly there.
            if !root.join(&span).exists() {
                problems.push(format!("ARCHITECTURE.md:{line}: `{span}` does not exist"));
            }
        } else if is_path && (span.ends_with(".rs") || span.ends_with('/')) {
            // Relative to the module being described: some file ends so.
            let tail = format!("/{}", span.trim_end_matches('/'));
            let exists = files
                .iter()
                .any(|f| f.ends_with(&tail) || f.contains(&format!("{tail}/")) || *f == tail[1..]);
            if !exists {
                problems.push(format!(
                    "ARCHITECTURE.md:{line}: no file or folder `{span}`"
                ));
            }
        } else if let Some((first, item)) = rust_path_item(&span) {
            // A path into another crate (`MultiProgress::suspend`) is not ours to check.
            let ours = ["harness", "xtask"].contains(&first) || item_is_defined(&files, first);
            if ours && !item_is_defined(&files, item) {
                problems.push(format!(
                    "ARCHITECTURE.md:{line}: `{span}`: no `{item}` is defined in harness or xtask"
                ));
            }
        }
    }
    report("ARCHITECTURE.md names what is not there", problems);
}

/// The first and last segments of a Rust path such as `output::merge_dirs`.
fn rust_path_item(span: &str) -> Option<(&str, &str)> {
    let segments: Vec<&str> = span.split("::").collect();
    let valid = segments.len() > 1
        && segments.iter().all(|s| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && s.chars().all(is_ident)
        });
    valid.then(|| (segments[0], *segments.last().unwrap()))
}

/// Whether `item` is a module, an item or an enum variant of harness or xtask.
fn item_is_defined(files: &[String], item: &str) -> bool {
    let sources = rust_files_under(files, &["harness/src", "xtask/src"]);
    if sources
        .iter()
        .any(|f| f.ends_with(&format!("/{item}.rs")) || f.contains(&format!("/{item}/")))
    {
        return true;
    }
    let keywords = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
    ];
    sources.iter().any(|f| {
        let code = lex(&read(f)).code;
        code.lines().any(|line| {
            let words: Vec<&str> = line
                .split(|c: char| !is_ident(c))
                .filter(|w| !w.is_empty())
                .collect();
            let declared = words
                .windows(2)
                .any(|w| keywords.contains(&w[0]) && w[1] == item);
            // A variant: the line begins with it.
            let trimmed = line.trim_start();
            let variant = trimmed
                .strip_prefix(item)
                .is_some_and(|rest| rest.starts_with([',', '(', ' ', '{']) || rest.is_empty())
                && item.starts_with(|c: char| c.is_uppercase());
            declared || variant
        })
    })
}

// ----- CI ------------------------------------------------------------------------

#[test]
fn ci_runs_the_test_command_of_the_readme() {
    // So this test, among all others, runs in CI.
    let command = read("README.md")
        .lines()
        .find(|l| l.trim_start().starts_with("cargo test"))
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .expect("README.md gives the test command");
    assert!(
        read(".ci/run").lines().any(|l| l.trim() == command),
        ".ci/run does not run README.md's test command `{command}`"
    );
    assert!(
        read(".github/workflows/ci.yml")
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains(".ci/run")),
        ".github/workflows/ci.yml does not run .ci/run"
    );
}

// ----- the tidy test's own reading ---------------------------------------------------

#[test]
fn the_lexer_keeps_text_and_code_apart() {
    let rust = lex(concat!(
        "use a::b; // bollard::x\n",
        "let s = \"bollard::y\"; /* tar::z\n",
        "*/ let r = r#\"tar::q \"still\" \"#; let c = '\"'; fn f<'a>(x: &'a str) {}\n",
        "tar::ok();\n",
    ));
    assert_eq!(crate_uses(&rust.code, "bollard"), Vec::<usize>::new());
    assert_eq!(crate_uses(&rust.code, "tar"), vec![4]);
    assert_eq!(crate_uses(&rust.code, "a"), vec![1]);
    assert_eq!(
        rust.strings,
        vec![
            (2, "bollard::y".to_string()),
            (3, "tar::q \"still\" ".to_string())
        ]
    );
    assert_eq!(rust.code.lines().count(), 4);
    // A module that shares a crate's name is not that crate.
    assert!(crate_uses("crate::engine::tar::x", "tar").is_empty());
    assert_eq!(crate_uses("let x = ::tar::y;", "tar"), vec![1]);
    assert_eq!(crate_uses("use tar;", "tar"), vec![1]);
}
