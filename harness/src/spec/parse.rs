//! Reading a pipeline spec from a file or from stdin.
//!
//! JSON when the file name ends in `.json`, YAML otherwise (the platform's
//! client did the same); stdin has no name, so it is tried as JSON, then as
//! YAML. Syntax errors go through [`crate::yaml`] so that every one of them
//! names the file, the line and the column. Fields the model does not know are
//! kept in its `unknown` maps rather than rejected: real specs carry many
//! fields that a local run has no use for.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::model::PipelineSpec;
use crate::error::{Error, IoContext, Result};
use crate::yaml;

/// The `path` that means "read the spec from stdin" (the client's convention).
pub const STDIN_PATH: &str = "-";

/// The name stdin goes by in messages and in [`LoadedSpec::path`].
pub const STDIN_NAME: &str = "<stdin>";

/// A parsed spec together with where it came from.
///
/// `dir` matters because `transform.build.path` is relative to the spec's
/// folder (or to the current directory for a spec read from stdin).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSpec {
    /// The spec file as given (or [`STDIN_NAME`]); used to name it in messages.
    pub path: PathBuf,
    /// The folder `transform.build.path` is relative to.
    pub dir: PathBuf,
    /// The spec itself.
    pub spec: PipelineSpec,
}

/// Loads a spec from `path`, or from stdin when `path` is `-`.
pub fn load_spec(path: &Path) -> Result<LoadedSpec> {
    if path == Path::new(STDIN_PATH) {
        let dir = std::env::current_dir().with_path("cannot read current directory", ".")?;
        return load_spec_from_reader(std::io::stdin().lock(), dir);
    }
    // A spec that is not there (or not a file) is bad input, not a failure.
    let bytes = std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ if path.is_dir() => "is a folder, not a spec file".to_string(),
            _ => e.to_string(),
        };
        Error::Usage(format!(
            "{}: cannot read the pipeline spec: {why}\n  fix: name a pipeline spec file \
             (JSON or YAML), or `-` to read it from stdin",
            path.display()
        ))
    })?;
    let text = utf8_text(bytes, path)?;
    let spec = parse_spec(&text, path)?;
    Ok(LoadedSpec {
        path: path.to_path_buf(),
        dir: spec_dir(path),
        spec,
    })
}

/// Loads a spec from a reader with no file name (stdin), relative to `dir`.
///
/// Separate from [`load_spec`] so that the stdin path can be tested without a
/// real stdin.
pub fn load_spec_from_reader(mut reader: impl Read, dir: PathBuf) -> Result<LoadedSpec> {
    let name = Path::new(STDIN_NAME);
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .with_path("cannot read", name)?;
    let text = utf8_text(bytes, name)?;
    let spec = parse_spec_guess(&text, name)?;
    Ok(LoadedSpec {
        path: name.to_path_buf(),
        dir,
        spec,
    })
}

/// Parses spec text: JSON when `file` ends in `.json`, else YAML.
///
/// `file` is only used to choose the format and to name it in errors.
pub fn parse_spec(text: &str, file: &Path) -> Result<PipelineSpec> {
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        parse_json(text, file)
    } else {
        parse_yaml(text, file)
    }
}

/// Parses text of unknown format: JSON first, then YAML.
///
/// When both fail, the error of the format the text looks like is returned
/// (a JSON error for text that starts with `{`), since that is the one that
/// points at the real mistake.
pub fn parse_spec_guess(text: &str, file: &Path) -> Result<PipelineSpec> {
    let json_err = match parse_json(text, file) {
        Ok(spec) => return Ok(spec),
        // Not a syntax problem (several documents, empty): no use trying YAML.
        Err(e @ Error::Invalid { .. }) => return Err(e),
        Err(e) => e,
    };
    match parse_yaml(text, file) {
        Ok(spec) => Ok(spec),
        Err(yaml_err) => {
            if strip_bom(text).trim_start().starts_with('{') {
                Err(json_err)
            } else {
                Err(yaml_err)
            }
        }
    }
}

/// The text of a spec; bytes that are not UTF-8 are bad input (a syntax
/// error at the first such byte), not a failure to read.
fn utf8_text(bytes: Vec<u8>, file: &Path) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // `good` is valid UTF-8 by construction.
        let good = std::str::from_utf8(good).unwrap_or_default();
        let line_start = good.rfind('\n').map_or(0, |i| i + 1);
        Error::Syntax {
            file: file.to_path_buf(),
            line: good.matches('\n').count() + 1,
            column: good[line_start..].chars().count() + 1,
            message: "the spec is not UTF-8 text; save it as UTF-8".to_string(),
        }
    })
}

/// The folder a spec file lives in; `.` for a bare file name.
fn spec_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Editors on some systems save a byte-order mark, which neither parser takes.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn empty_spec(file: &Path) -> Error {
    Error::invalid(
        file,
        "pipeline",
        "the spec is empty",
        "write a pipeline spec: at least `pipeline.name`, `transform.build` and `input`",
    )
}

fn several_documents(file: &Path) -> Error {
    Error::invalid(
        file,
        "pipeline",
        "the file holds several pipeline specs; this harness runs one pipeline at a time",
        "put each pipeline in a file of its own and run them one by one",
    )
}

/// JSON, allowing for the platform's habit of several specs in one file: a
/// second document is reported as such, not as "trailing characters". Syntax
/// is checked before types so that a broken file gets a syntax error.
fn parse_json(text: &str, file: &Path) -> Result<PipelineSpec> {
    let text = strip_bom(text);
    if text.trim().is_empty() {
        return Err(empty_spec(file));
    }
    if let Err(syntax) = yaml::from_json_str::<serde_json::Value>(text, file) {
        let documents = serde_json::Deserializer::from_str(text)
            .into_iter::<serde_json::Value>()
            .take_while(|d| d.is_ok())
            .take(2)
            .count();
        return Err(if documents > 1 {
            several_documents(file)
        } else {
            syntax
        });
    }
    yaml::from_json_str(text, file).map_err(|e| with_field_path(e, text))
}

/// serde_json's type errors do not say which field they are about; this
/// adds the dotted path of the value at the error's place (the text is
/// valid JSON by then), as the YAML parser's errors have it.
fn with_field_path(error: Error, text: &str) -> Error {
    match error {
        Error::Syntax {
            file,
            line,
            column,
            message,
        } => {
            let message = match json_path_at(text, line, column) {
                Some(path) if !path.is_empty() => format!("{path}: {message}"),
                _ => message,
            };
            Error::Syntax {
                file,
                line,
                column,
                message,
            }
        }
        other => other,
    }
}

/// The dotted path (`input.cross[1].pfs.glob`) of the value that ends at
/// `line`:`column` (1-based) of valid JSON `text`.
fn json_path_at(text: &str, line: usize, column: usize) -> Option<String> {
    enum Level {
        Object(Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Level> = Vec::new();
    let (mut at_line, mut at_column) = (1, 0);
    let mut chars = text.chars();
    let mut expecting_key = false;
    let mut last = ' ';
    while let Some(ch) = chars.next() {
        if ch == '\n' {
            at_line += 1;
            at_column = 0;
        } else {
            at_column += 1;
        }
        if (at_line, at_column) >= (line, column) {
            break;
        }
        match ch {
            '{' => {
                stack.push(Level::Object(None));
                expecting_key = true;
            }
            '[' => {
                stack.push(Level::Array(0));
                expecting_key = false;
            }
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Level::Object(_)) => expecting_key = true,
                Some(Level::Array(i)) => *i += 1,
                None => {}
            },
            '"' => {
                let mut string = String::new();
                let mut escaped = false;
                for c in chars.by_ref() {
                    at_column += 1;
                    if escaped {
                        escaped = false;
                        string.push(c);
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    } else {
                        string.push(c);
                    }
                }
                if expecting_key {
                    if let Some(Level::Object(key)) = stack.last_mut() {
                        *key = Some(string);
                    }
                    expecting_key = false;
                }
            }
            _ => {}
        }
        if !ch.is_whitespace() {
            last = ch;
        }
    }
    // An error right after `{` or `[` is about that container, not its first item.
    if matches!(last, '{' | '[') {
        stack.pop();
    }
    let mut path = String::new();
    for level in &stack {
        match level {
            Level::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Level::Object(None) => {}
            Level::Array(i) => path.push_str(&format!("[{i}]")),
        }
    }
    Some(path)
}

/// YAML; a `---` separated stream of specs is reported as such.
fn parse_yaml(text: &str, file: &Path) -> Result<PipelineSpec> {
    let text = strip_bom(text);
    if is_blank_yaml(text) {
        return Err(empty_spec(file));
    }
    yaml::from_yaml_str(text, file).map_err(|e| match e {
        Error::Syntax { ref message, .. } if message.contains("more than one document") => {
            several_documents(file)
        }
        other => other,
    })
}

/// True when YAML text holds nothing but comments, blank lines and markers.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const JSON: &str = r#"{
  "pipeline": {"name": "map"},
  "description": "tokenizes pages",
  "transform": {
    "build": {"language": "python", "path": "./source"},
    "cmd": ["python3", "/pfs/source/main.py"],
    "image_pull_secrets": ["x"]
  },
  "input": {"pfs": {"repo": "scraper", "glob": "/*"}},
  "parallelism_spec": {"constant": 2}
}"#;

    #[test]
    fn json_type_errors_name_the_field() {
        for (text, path) in [
            (
                r#"{"pipeline": {"name": 5}}"#,
                "pipeline.name: invalid type",
            ),
            (
                r#"{"pipeline": {"name": "a"}, "input": {"cross": [{"pfs": {"repo": "r", "glob": 3}}]}}"#,
                "input.cross[0].pfs.glob: invalid type",
            ),
            (
                r#"{"transform": {"cmd": "sh x"}}"#,
                "transform.cmd: invalid type",
            ),
            (r#"{"input": "letters"}"#, "input: invalid type"),
        ] {
            let err = parse_spec(text, Path::new("p.json"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(path), "{err}");
            assert!(err.contains("fix: "), "{err}");
        }
    }

    const YAML: &str = "\
pipeline:
  name: map
transform:
  build:
    language: go
  stdin:
    - echo hi
input:
  cross:
    - pfs: {repo: a, glob: /*}
    - pfs: {repo: b, name: bee, glob: /}
";

    #[test]
    fn parses_json_and_keeps_unknown_fields() {
        let spec = parse_spec(JSON, Path::new("p/pipeline.json")).unwrap();
        assert_eq!(spec.pipeline.as_ref().unwrap().name, "map");
        let build = spec.transform.build.as_ref().unwrap();
        assert_eq!(build.language.as_deref(), Some("python"));
        assert_eq!(build.path.as_deref(), Some("./source"));
        assert_eq!(spec.transform.cmd, ["python3", "/pfs/source/main.py"]);
        assert!(spec.transform.unknown.contains_key("image_pull_secrets"));
        assert_eq!(spec.parallelism_spec.as_ref().unwrap().constant, Some(2));
        let pfs = spec.input.as_ref().unwrap().pfs.as_ref().unwrap();
        assert_eq!((pfs.repo.as_str(), pfs.glob.as_str()), ("scraper", "/*"));
    }

    #[test]
    fn parses_yaml() {
        let spec = parse_spec(YAML, Path::new("pipeline.yaml")).unwrap();
        assert_eq!(spec.transform.stdin, ["echo hi"]);
        let cross = spec.input.unwrap().cross.unwrap();
        assert_eq!(cross.len(), 2);
        assert_eq!(cross[1].pfs.as_ref().unwrap().input_name(), "bee");
    }

    #[test]
    fn extension_is_case_insensitive_and_yaml_is_the_default() {
        assert!(parse_spec(JSON, Path::new("P.JSON")).is_ok());
        // YAML is a superset of this JSON, so a `.yml` name parses it too.
        assert!(parse_spec(JSON, Path::new("p.yml")).is_ok());
        // but YAML text in a `.json` file is a JSON syntax error.
        let err = parse_spec(YAML, Path::new("p.json")).unwrap_err();
        assert!(matches!(err, Error::Syntax { line: 1, .. }), "{err}");
    }

    #[test]
    fn json_syntax_error_names_file_line_and_column() {
        let text = "{\n  \"pipeline\": {\"name\": \"x\"},\n  \"input\": {\"pfs\" {}}\n}";
        let err = parse_spec(text, Path::new("dir/p.json")).unwrap_err();
        match &err {
            Error::Syntax {
                file, line, column, ..
            } => {
                assert_eq!(file, Path::new("dir/p.json"));
                // The `{` where a `:` belongs.
                assert_eq!((*line, *column), (3, 19));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().starts_with("dir/p.json:3:"), "{err}");
    }

    #[test]
    fn yaml_syntax_error_names_file_line_and_column() {
        // No comma after `repo: a`: `a glob` reads as one value, and the `:`
        // after it (line 4, column 21) is where that shows.
        let text = "pipeline:\n  name: x\ninput:\n  pfs: {repo: a glob: /*}\n";
        let err = parse_spec(text, Path::new("dir/p.yaml")).unwrap_err();
        match &err {
            Error::Syntax {
                file, line, column, ..
            } => {
                assert_eq!(file, Path::new("dir/p.yaml"));
                assert_eq!((*line, *column), (4, 21));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().starts_with("dir/p.yaml:4:21: "), "{err}");
    }

    #[test]
    fn wrong_type_is_reported_with_location() {
        let text = "pipeline:\n  name: x\ntransform:\n  cmd: python3\n";
        let err = parse_spec(text, Path::new("p.yaml")).unwrap_err();
        match err {
            Error::Syntax { line, message, .. } => {
                assert_eq!(line, 4);
                assert!(message.contains("sequence"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn several_json_documents_are_refused_clearly() {
        let text = format!("{JSON}\n{JSON}\n");
        let err = parse_spec(&text, Path::new("p.json")).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("one pipeline at a time"), "{err}");
        // Garbage after one document stays a syntax error with its place.
        let err = parse_spec(&format!("{JSON} x"), Path::new("p.json")).unwrap_err();
        assert!(matches!(err, Error::Syntax { line: 11, .. }), "{err}");
    }

    #[test]
    fn several_yaml_documents_are_refused_clearly() {
        let text = format!("{YAML}---\n{YAML}");
        let err = parse_spec(&text, Path::new("p.yaml")).unwrap_err();
        assert!(err.to_string().contains("one pipeline at a time"), "{err}");
        // A leading `---` is just one document.
        assert!(parse_spec(&format!("---\n{YAML}"), Path::new("p.yaml")).is_ok());
    }

    #[test]
    fn empty_spec_is_invalid_not_a_crash() {
        for (text, name) in [
            ("", "p.json"),
            ("  \n", "p.yaml"),
            ("# only\n---\n", "p.yaml"),
        ] {
            let err = parse_spec(text, Path::new(name)).unwrap_err();
            assert!(err.to_string().contains("empty"), "{name}: {err}");
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_bad_input_with_its_place() {
        // Found by the property tests: this was an I/O error (exit code 1).
        let bytes = b"pipeline:\n  name: caf\xe9\n".to_vec();
        let err = load_spec_from_reader(Cursor::new(bytes.clone()), ".".into()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Syntax {
                    line: 2,
                    column: 12,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pipeline.yaml");
        std::fs::write(&file, bytes).unwrap();
        let err = load_spec(&file).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:2:12: ", file.display())),
            "{err}"
        );
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let text = format!("\u{feff}{JSON}");
        assert!(parse_spec(&text, Path::new("p.json")).is_ok());
    }

    #[test]
    fn reader_tries_json_then_yaml() {
        let dir = PathBuf::from("/some/where");
        let loaded = load_spec_from_reader(Cursor::new(JSON), dir.clone()).unwrap();
        assert_eq!(loaded.path, Path::new(STDIN_NAME));
        assert_eq!(loaded.dir, dir);
        let loaded = load_spec_from_reader(Cursor::new(YAML), dir).unwrap();
        assert_eq!(loaded.spec.pipeline.unwrap().name, "map");
    }

    #[test]
    fn reader_reports_the_error_of_the_format_it_looks_like() {
        let dir = PathBuf::from(".");
        let err = load_spec_from_reader(Cursor::new("{\"pipeline\": [}"), dir.clone()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("<stdin>:1:"), "{text}");
        assert!(text.contains("expected value"), "{text}");
        let err = load_spec_from_reader(Cursor::new("pipeline: [\n"), dir).unwrap_err();
        assert!(matches!(err, Error::Syntax { .. }), "{err}");
        assert!(err.to_string().starts_with("<stdin>:"), "{err}");
    }

    #[test]
    fn load_spec_sets_dir_to_the_spec_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pipeline.yaml");
        std::fs::write(&file, YAML).unwrap();
        let loaded = load_spec(&file).unwrap();
        assert_eq!(loaded.dir, tmp.path());
        assert_eq!(loaded.path, file);
        assert_eq!(spec_dir(Path::new("pipeline.json")), Path::new("."));
    }

    #[test]
    fn a_missing_spec_is_bad_input_naming_it() {
        let err = load_spec(Path::new("/nonexistent/pipeline.json")).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        assert!(err.to_string().contains("no such file"), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/pipeline.json"),
            "{err}"
        );
    }
}
