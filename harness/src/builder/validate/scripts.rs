//! The checks of `build.sh` and `run.sh`: exec bit, an `sh` shebang,
//! `set -e`, arguments forwarded (`run.sh`), `run.sh` copied into
//! `/pfs/out` (`build.sh`). The platform runs both with `sh`, so they are
//! read as POSIX sh (with `super::shell`).

use std::collections::HashMap;
use std::path::Path;

use super::shell::{assignment, expand, shell_commands, shell_lines, unquote, ShellLine};
use super::{file_name, Problem};

/// Every check of the script `script` (`build.sh` or `run.sh`) at `path`.
pub(super) fn check(path: &Path, script: &str, text: &str, problems: &mut Vec<Problem>) {
    check_script(path, text, problems);
    let lines = shell_lines(text);
    match script {
        "run.sh" => check_forwards_arguments(path, &lines, problems),
        _ => check_copies_run_sh(path, &lines, problems),
    }
}

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

#[cfg(test)]
mod tests {
    use crate::builder::validate::static_checks;
    use crate::builder::validate::testing::*;

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
}
