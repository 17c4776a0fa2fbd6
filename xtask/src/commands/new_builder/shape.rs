//! The shape every builder shares (`xtask/templates/shape/`), checked
//! against each builder under `builders/` and against what the generic
//! template renders: a builder whose Dockerfile or scripts drift from the
//! others fails here, naming the file and line, rather than behaving
//! differently in an image.

use std::path::Path;

use super::template;

/// A shape: its file name under `xtask/templates/shape/`, and its text.
struct Shape(&'static str, &'static str);

macro_rules! shape {
    ($file:literal) => {
        Shape(
            $file,
            include_str!(concat!("../../../templates/shape/", $file)),
        )
    };
}

const DOCKERFILE: Shape = shape!("Dockerfile.shape");
const BUILD_SH: Shape = shape!("build.sh.shape");
const RUN_SH: Shape = shape!("run.sh.shape");
const RUN_BINARY_SH: Shape = shape!("run-binary.sh.shape");

/// Builders whose build output is one executable, `main`: their `run.sh`
/// is `run-binary.sh.shape` with their name, line for line.
const BINARY_BUILDERS: [&str; 2] = ["go", "rust"];

/// A line of a shape that stands for any lines.
const GAP: &str = "…";

/// Whether `line` matches `pattern`, where `…` stands for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut pieces = pattern.split(GAP);
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Checks `text` (the file `file`) against `shape` for the builder `name`.
/// `Err` says which line drifted and what the shape has there.
fn check(shape: &Shape, name: &str, file: &str, text: &str) -> Result<(), String> {
    let Shape(shape_file, shape) = shape;
    let shape = shape.replace("{name}", name);
    let patterns: Vec<(usize, &str)> = shape.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let lines: Vec<&str> = text.lines().collect();
    let mut at = 0; // the next line of `text` to match
                    // Runs of pattern lines between gaps: each run matches consecutive lines,
                    // the first at the top, every other at the first place it fits after
                    // the run before.
    let runs: Vec<&[(usize, &str)]> = patterns.split(|(_, p)| *p == GAP).collect();
    for (i, run) in runs.iter().enumerate() {
        let after_gap = i > 0;
        if run.is_empty() {
            continue;
        }
        let fits = |start: usize| {
            run.iter().enumerate().all(|(k, (_, p))| {
                lines
                    .get(start + k)
                    .is_some_and(|line| line_matches(p, line))
            })
        };
        let start = if after_gap {
            (at..=lines.len()).find(|&s| fits(s))
        } else {
            fits(at).then_some(at)
        };
        match start {
            Some(start) => at = start + run.len(),
            None => {
                // Name the first line that differs from where the run
                // should start (after a gap: where its first line is).
                let from = if after_gap {
                    (at..lines.len())
                        .find(|&s| line_matches(run[0].1, lines[s]))
                        .unwrap_or(at)
                } else {
                    at
                };
                let (k, (shape_line, pattern)) = run
                    .iter()
                    .enumerate()
                    .find(|(k, (_, p))| !lines.get(from + k).is_some_and(|l| line_matches(p, l)))
                    .unwrap_or((0, &run[0]));
                let found = lines
                    .get(from + k)
                    .map_or("the end of the file".to_string(), |l| format!("`{l}`"));
                return Err(format!(
                    "{file}:{}: {found} drifted from the shared shape: expected `{pattern}` \
                     (xtask/templates/shape/{shape_file}:{shape_line})",
                    from + k + 1
                ));
            }
        }
    }
    let open_end = runs.len() > 1 && runs.last().is_some_and(|r| r.is_empty());
    if !open_end && at < lines.len() {
        return Err(format!(
            "{file}:{}: `{}` drifted from the shared shape: expected the end of the file",
            at + 1,
            lines[at]
        ));
    }
    Ok(())
}

/// The shapes a builder's files must have: (file name, shape).
fn shapes_of(name: &str) -> Vec<(&'static str, Shape)> {
    let mut shapes = vec![
        ("Dockerfile", DOCKERFILE),
        ("build.sh", BUILD_SH),
        ("run.sh", RUN_SH),
    ];
    if BINARY_BUILDERS.contains(&name) {
        shapes.push(("run.sh", RUN_BINARY_SH));
    }
    shapes
}

#[test]
fn every_builder_has_the_shared_shape() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../builders");
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("builder.yaml").is_file() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for (file, shape) in shapes_of(&name) {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let shown = format!("builders/{name}/{file}");
            if let Err(problem) = check(&shape, &name, &shown, &text) {
                problems.push(problem);
            }
        }
        checked.push(name);
    }
    checked.sort();
    assert!(
        BINARY_BUILDERS
            .iter()
            .all(|b| checked.iter().any(|c| c == b)),
        "{checked:?}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_new_builder_has_the_shared_shape() {
    let files = template::render("demo", None);
    for (file, shape) in shapes_of("demo") {
        let rendered = files
            .iter()
            .find(|f| f.path == Path::new(file))
            .unwrap_or_else(|| panic!("the template has no {file}"));
        let text = String::from_utf8(rendered.contents.clone()).unwrap();
        check(&shape, "demo", &format!("(template) {file}"), &text).unwrap();
    }
}

#[test]
fn a_drift_names_the_file_and_line() {
    let shape = &Shape("s", "a\n…\nb {name}\nc…d\n");
    assert_eq!(check(shape, "x", "f", "a\nb x\ncXXd\n"), Ok(()));
    assert_eq!(check(shape, "x", "f", "a\n1\n2\nb x\ncd\n"), Ok(()));
    let err = check(shape, "x", "f", "a\nb x\nc\n").unwrap_err();
    assert!(err.starts_with("f:3: `c` drifted"), "{err}");
    assert!(err.contains("expected `c…d`"), "{err}");
    assert!(err.contains("(xtask/templates/shape/s:4)"), "{err}");
    let err = check(shape, "x", "f", "z\nb x\ncd\n").unwrap_err();
    assert!(err.starts_with("f:1: `z` drifted"), "{err}");
    let err = check(shape, "x", "f", "a\nb y\ncd\n").unwrap_err();
    assert!(err.contains("expected `b x`"), "{err}");
    let err = check(shape, "x", "f", "a\nb x\ncd\nmore\n").unwrap_err();
    assert!(err.starts_with("f:4: `more`"), "{err}");
    let err = check(shape, "x", "f", "a\nb x\n").unwrap_err();
    assert!(err.contains("the end of the file"), "{err}");
    assert!(line_matches("exec … \"$@\"", "exec \"$bin\" \"$@\""));
    assert!(!line_matches("ab…ba", "aba"));
}
