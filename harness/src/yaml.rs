//! The one place that parses YAML (`serde_yaml_ng`, the maintained successor
//! of the archived `serde_yaml`). JSON goes through `serde_json` beside it so
//! that both report syntax errors the same way: file, line, column.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};

/// How deep `[`/`{` may nest in a YAML document. The parser takes time
/// quadratic in the depth (minutes for 200,000 levels, during which nothing
/// else happens), and it refuses more than 128 levels of data anyway.
const MAX_FLOW_DEPTH: usize = 256;

/// The largest spec or metadata file read.
const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

/// Parses YAML text; errors name `file` with line and column.
pub fn from_yaml_str<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T> {
    check_flow_depth(text, file)?;
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        Error::Syntax {
            file: file.to_path_buf(),
            line,
            column,
            message: strip_location(&e.to_string()),
        }
    })
}

/// Refuses a document whose flow collections nest deeper than
/// [`MAX_FLOW_DEPTH`], in one pass, before the parser sees it. Quoted text
/// and comments are skipped; a bracket inside plain text counts, which errs
/// only on documents no spec resembles.
fn check_flow_depth(text: &str, file: &Path) -> Result<()> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    let mut previous = '\n';
    while let Some(c) = chars.next() {
        column += 1;
        match (quote, c) {
            (_, '\n') => {
                line += 1;
                column = 0;
            }
            (Some('"'), '\\') => {
                chars.next();
                column += 1;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(Error::Syntax {
                        file: file.to_path_buf(),
                        line,
                        column,
                        message: format!(
                            "`[` and `{{` nest more than {MAX_FLOW_DEPTH} levels deep here"
                        ),
                    });
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    Ok(())
}

/// Parses JSON text; errors name `file` with line and column.
pub fn from_json_str<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Syntax {
        file: file.to_path_buf(),
        // serde_json says column 0 (and line 0) for errors it cannot place
        // in the text, such as a document of the wrong type; places are 1-based.
        line: e.line().max(1),
        column: e.column().max(1),
        message: strip_location(&e.to_string()),
    })
}

/// Reads and parses a file as JSON when it ends in `.json`, else as YAML.
pub fn read_document<T: DeserializeOwned>(file: &Path) -> Result<T> {
    let size = std::fs::metadata(file)
        .with_path("cannot read", file)?
        .len();
    if size > MAX_DOCUMENT_BYTES {
        return Err(Error::Usage(format!(
            "{}: the file is {} MiB; a spec or metadata file is a few KiB (at most {} MiB \
             are read)\n  fix: name the right file",
            file.display(),
            size / (1024 * 1024),
            MAX_DOCUMENT_BYTES / (1024 * 1024)
        )));
    }
    let text = std::fs::read_to_string(file).with_path("cannot read", file)?;
    if file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        from_json_str(&text, file)
    } else {
        from_yaml_str(&text, file)
    }
}

/// Serialises a value as YAML (used by the scaffolder and reports).
pub fn to_yaml_string<T: serde::Serialize>(value: &T) -> String {
    serde_yaml_ng::to_string(value).expect("plain data always serialises to YAML")
}

/// Both parsers put " at line L column C" after the problem; we print the
/// location first, so it goes. YAML may add a context with a place of its own
/// (", while parsing a flow sequence at line 2 column 4"): that one stays,
/// as it says where the unclosed sequence began.
fn strip_location(message: &str) -> String {
    const AT: &str = " at line ";
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(at) = message.find(AT) else {
        return message.to_string();
    };
    let rest = &message[at + AT.len()..];
    let line = digits(rest);
    let Some(after) = rest[line..].strip_prefix(" column ") else {
        return message.to_string();
    };
    let column = digits(after);
    if line == 0 || column == 0 {
        return message.to_string();
    }
    format!("{}{}", &message[..at], &after[column..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        // The mistake is the second `:` of line 2, in column 5.
        let err = from_yaml_str::<BTreeMap<String, String>>("a: b\nc: d: e\n", Path::new("x.yaml"))
            .unwrap_err();
        match &err {
            Error::Syntax {
                file, line, column, ..
            } => {
                assert_eq!(file, Path::new("x.yaml"));
                assert_eq!((*line, *column), (2, 5));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with("x.yaml:2:5: mapping values are not allowed in this context\n"),
            "{text}"
        );
    }

    #[test]
    fn yaml_errors_say_once_where_and_where_an_unclosed_bracket_began() {
        // libyaml notices the missing `]` at the end of the text. (Into a
        // map of strings, the sequence would be a type error first.)
        let err =
            from_yaml_str::<serde_json::Value>("a: b\nc: [d\n", Path::new("x.yaml")).unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text.lines().next().unwrap(),
            "x.yaml:3:1: did not find expected ',' or ']', while parsing a flow sequence at line 2 column 4"
        );
    }

    #[test]
    fn json_errors_never_point_at_column_zero() {
        // Found by the property tests: `[]` was reported at `p.json:1:0`.
        for text in ["[]", "\"x\"", "{\"a\": 1}\n"] {
            let err =
                from_json_str::<BTreeMap<String, bool>>(text, Path::new("p.json")).unwrap_err();
            assert!(
                matches!(err, Error::Syntax { line, column, .. } if line >= 1 && column >= 1),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn json_syntax_error_has_line_and_column() {
        let err = from_json_str::<serde_json::Value>("{\n  \"a\": 1,\n}", Path::new("p.json"))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("p.json:3:1: "), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let depth = 200_000;
        let text = format!("input: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let err = from_yaml_str::<serde_yaml_ng::Value>(&text, Path::new("p.yaml")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("p.yaml:1:"), "{shown}");
        assert!(shown.contains("nest more than 256 levels"), "{shown}");
        // Brackets in quotes and comments do not count; 200 levels parse.
        let quoted = format!(
            "a: \"{}\"  # {}\nb: {}{}\n",
            "[".repeat(999),
            "{".repeat(999),
            "[".repeat(100),
            "]".repeat(100)
        );
        from_yaml_str::<serde_yaml_ng::Value>(&quoted, Path::new("p.yaml")).unwrap();
    }
}
