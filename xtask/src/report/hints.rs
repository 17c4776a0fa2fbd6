//! Hints where users trip: a misspelt name, a dependency the build did not
//! install, a command that bypasses the builder's entry point. Pure: text
//! in, text out (the callers read the files).

use std::path::Path;

use harness::spec::resolve::DEFAULT_COMMAND;
use harness::Error;

/// The nearest name, with the same rule as the harness's own hints.
pub use harness::text::nearest;

/// `did you mean `x`?` or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates)
        .map(|n| format!("did you mean `{n}`? "))
        .unwrap_or_default()
}

/// What a failing phase's log says about a dependency the build did not
/// install, as hints (one per missing module, in order, at most 5).
pub fn log_hints(log: &str) -> Vec<String> {
    let mut hints: Vec<String> = Vec::new();
    let mut push = |hint: String| {
        if !hints.contains(&hint) && hints.len() < 5 {
            hints.push(hint);
        }
    };
    for line in log.lines() {
        let line = line.trim();
        if let Some(module) = python_missing(line) {
            let top = module.split('.').next().unwrap_or(&module).to_string();
            push(format!(
                "Python cannot import `{module}`: the build did not install it. Add the package that provides `{top}` to requirements.txt (e.g. `{top}`; some packages install under another name) so the build phase installs it"
            ));
        } else if let Some(package) = go_missing(line) {
            push(format!(
                "Go cannot find the package `{package}`: add its module to go.mod (`go get {package}`, and commit go.sum), or vendor it (`go mod vendor`); the build has no network for modules go.mod does not name"
            ));
        } else if let Some(krate) = rust_missing(line) {
            push(format!(
                "Rust cannot find the crate `{krate}`: add it under [dependencies] in Cargo.toml (`cargo add {krate}`), and commit Cargo.lock"
            ));
        }
    }
    hints
}

/// `ModuleNotFoundError: No module named 'x'` (and Python 2's `ImportError`).
fn python_missing(line: &str) -> Option<String> {
    let rest = line
        .split_once("ModuleNotFoundError: No module named ")
        .or_else(|| line.split_once("ImportError: No module named "))?
        .1;
    let name = rest.trim().trim_matches(|c| c == '\'' || c == '"');
    (!name.is_empty()).then(|| name.to_string())
}

/// `no required module provides package x`, `cannot find package "x"`,
/// `missing go.sum entry for module providing package x`.
fn go_missing(line: &str) -> Option<String> {
    let rest = [
        "no required module provides package ",
        "missing go.sum entry for module providing package ",
        "cannot find package ",
    ]
    .iter()
    .find_map(|marker| line.split_once(marker).map(|(_, rest)| rest))?;
    let name = rest
        .split(|c: char| c.is_whitespace() || c == ';' || c == ')')
        .next()?
        .trim_matches('"');
    (!name.is_empty() && !name.starts_with('.')).then(|| name.to_string())
}

/// `error[E0463]: can't find crate for `x``, `error[E0432]: unresolved
/// import `x``, `error[E0433]: ... use of undeclared crate or module `x``,
/// `no matching package named `x` found`.
fn rust_missing(line: &str) -> Option<String> {
    let after = |marker: &str| -> Option<String> {
        let rest = line.split_once(marker)?.1;
        let name = rest.trim_start().strip_prefix('`')?.split('`').next()?;
        let top = name.split("::").next()?.to_string();
        (!top.is_empty() && !matches!(top.as_str(), "crate" | "self" | "super")).then_some(top)
    };
    after("can't find crate for")
        .or_else(|| {
            line.contains("error[E0432]")
                .then(|| after("unresolved import"))
                .flatten()
        })
        .or_else(|| after("use of undeclared crate or module"))
        .or_else(|| after("use of unresolved module or unlinked crate"))
        .or_else(|| after("no matching package named"))
}

/// [`log_hints`] for a log file (its last MiB; none when it cannot be read).
pub fn log_file_hints(path: &Path) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 1024 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > TAIL {
        let _ = file.seek(SeekFrom::Start(len - TAIL));
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    log_hints(&String::from_utf8_lossy(&bytes))
}

/// A warning for a build pipeline whose command does not run the builder's
/// entry point, `/pfs/build/run.sh` (neither in `cmd` nor in `stdin`).
pub fn command_warning(cmd: &[String], stdin: &[String]) -> Option<String> {
    let entry = DEFAULT_COMMAND[1];
    if cmd.is_empty() || cmd.iter().chain(stdin).any(|part| part.contains(entry)) {
        return None;
    }
    let shown = cmd.join(" ");
    let example = match cmd.iter().skip(1).find(|a| !a.starts_with('-')) {
        Some(file) if cmd.len() > 1 => format!(
            ", so e.g. `{shown}` fails with \"can't open file '/app/{file}'\" (or \"No such file\")"
        ),
        _ => String::new(),
    };
    Some(format!(
        "transform.cmd `{shown}` does not run {entry}: the command starts in the image's working directory (/app in the official builders), not in your source (/pfs/source), and without what run.sh sets up{example}\n  fix: leave `cmd` out (it defaults to `{}`), or put your arguments after the entry point: `\"cmd\": [\"sh\", \"{entry}\", \"--your-flag\"]` (run.sh passes them to your program)",
        DEFAULT_COMMAND.join(" ")
    ))
}

/// An unknown `transform.build.language` error, with the builders that
/// exist and the nearest name added to its fix; other errors unchanged.
pub fn unknown_language(error: Error, spec: &Path, builders_dir: &Path) -> Error {
    let Error::Invalid {
        file,
        field,
        problem,
        fix,
    } = error
    else {
        return error;
    };
    if field != "transform.build.language" {
        return Error::Invalid {
            file,
            field,
            problem,
            fix,
        };
    }
    let wanted = harness::spec::parse::load_spec(spec)
        .ok()
        .and_then(|l| l.spec.transform.build.and_then(|b| b.language))
        .unwrap_or_default();
    let known = builder_names(builders_dir);
    let fix = format!(
        "{}the builders here: {}; {fix}",
        did_you_mean(&wanted, known.iter().map(String::as_str)),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    );
    Error::Invalid {
        file,
        field,
        problem,
        fix,
    }
}

/// The names of the builder folders (those holding builder.yaml).
pub fn builder_names(builders_dir: &Path) -> Vec<String> {
    harness::builder::meta::builder_dirs(builders_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_only_when_near() {
        let builders = ["go", "python", "rust"];
        assert_eq!(did_you_mean("pyhton", builders), "did you mean `python`? ");
        assert_eq!(did_you_mean("cobol", builders), "");
    }

    #[test]
    fn missing_python_modules_point_at_requirements() {
        let log = "Traceback (most recent call last):\n  File \"/pfs/source/main.py\", line 1, in <module>\n    import yaml.loader\nModuleNotFoundError: No module named 'yaml'\n";
        let hints = log_hints(log);
        assert_eq!(hints.len(), 1, "{hints:?}");
        assert!(hints[0].contains("`yaml`"), "{hints:?}");
        assert!(hints[0].contains("requirements.txt"), "{hints:?}");
        let dotted = log_hints("ModuleNotFoundError: No module named 'google.protobuf'");
        assert!(dotted[0].contains("provides `google`"), "{dotted:?}");
        assert!(log_hints("ImportError: No module named requests")[0].contains("`requests`"));
    }

    #[test]
    fn missing_go_packages_point_at_go_mod() {
        for line in [
            "main.go:4:2: no required module provides package github.com/x/y; to add it:",
            "main.go:4:2: cannot find package \"github.com/x/y\" in any of:",
            "main.go:4:2: missing go.sum entry for module providing package github.com/x/y (imported by m)",
        ] {
            let hints = log_hints(line);
            assert_eq!(hints.len(), 1, "{line}: {hints:?}");
            assert!(hints[0].contains("`github.com/x/y`"), "{hints:?}");
            assert!(hints[0].contains("go.mod") && hints[0].contains("vendor"));
        }
    }

    #[test]
    fn missing_rust_crates_point_at_cargo_toml() {
        for line in [
            "error[E0463]: can't find crate for `serde`",
            "error[E0432]: unresolved import `serde`",
            "error[E0433]: failed to resolve: use of undeclared crate or module `serde`",
            "error[E0432]: unresolved import `serde::Deserialize`",
            "error: no matching package named `serde` found",
        ] {
            let hints = log_hints(line);
            assert_eq!(hints.len(), 1, "{line}: {hints:?}");
            assert!(hints[0].contains("`serde`") && hints[0].contains("Cargo.toml"));
        }
        // A module of the crate itself is not a dependency.
        assert!(log_hints("error[E0432]: unresolved import `crate::foo`").is_empty());
    }

    #[test]
    fn ordinary_failures_give_no_hint_and_hints_are_not_repeated() {
        assert!(log_hints("Traceback\nValueError: bad\nexit 1\n").is_empty());
        let twice =
            "ModuleNotFoundError: No module named 'a'\nModuleNotFoundError: No module named 'a'\n";
        assert_eq!(log_hints(twice).len(), 1);
    }

    #[test]
    fn a_command_without_the_entry_point_is_warned_about() {
        let cmd = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let warning = command_warning(&cmd(&["python3", "main.py"]), &[]).unwrap();
        assert!(warning.contains("/pfs/build/run.sh"), "{warning}");
        assert!(
            warning.contains("can't open file '/app/main.py'"),
            "{warning}"
        );
        assert!(warning.contains("working directory"), "{warning}");
        assert!(warning.contains("fix: leave `cmd` out"), "{warning}");
        assert_eq!(command_warning(&[], &[]), None);
        assert_eq!(
            command_warning(&cmd(&["sh", "/pfs/build/run.sh", "--x"]), &[]),
            None
        );
        assert_eq!(
            command_warning(&cmd(&["sh"]), &cmd(&["sh /pfs/build/run.sh extra"])),
            None
        );
        assert!(command_warning(&cmd(&["sh"]), &cmd(&["echo hi"])).is_some());
    }

    #[test]
    fn an_unknown_language_lists_the_builders_and_the_nearest() {
        let root = tempfile::tempdir().unwrap();
        for lang in ["go", "python", "rust"] {
            let dir = root.path().join("builders").join(lang);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("builder.yaml"), "language: x\n").unwrap();
        }
        let spec = root.path().join("p.json");
        std::fs::write(
            &spec,
            r#"{"pipeline": {"name": "x"}, "transform": {"build": {"language": "pyhton"}}}"#,
        )
        .unwrap();
        let error = Error::invalid(
            &spec,
            "transform.build.language",
            "`pyhton` is not an official builder of this harness",
            "use an official language",
        );
        let shown = unknown_language(error, &spec, &root.path().join("builders")).to_string();
        assert!(
            shown.contains("did you mean `python`? the builders here: go, python, rust; use an official language"),
            "{shown}"
        );
        let other = Error::Usage("x".into());
        assert_eq!(unknown_language(other, &spec, root.path()).to_string(), "x");
    }
}
