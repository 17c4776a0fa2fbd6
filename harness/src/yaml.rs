//! The one place that parses YAML (`serde_yaml_ng`, the maintained successor
//! of the archived `serde_yaml`). JSON goes through `serde_json` beside it so
//! that both report syntax errors the same way: file, line, column.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};

/// Parses YAML text; errors name `file` with line and column.
pub fn from_yaml_str<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T> {
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

/// Both parsers append " at line L column C"; we print the location first.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        let err = from_yaml_str::<BTreeMap<String, String>>("a: b\nc: [d\n", Path::new("x.yaml"))
            .unwrap_err();
        match err {
            Error::Syntax { file, line, .. } => {
                assert_eq!(file, Path::new("x.yaml"));
                assert!(line >= 2, "line {line}");
            }
            other => panic!("unexpected {other:?}"),
        }
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
}
