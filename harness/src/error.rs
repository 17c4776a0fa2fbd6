//! One error type for the whole harness, with the exit code each kind maps to.
//!
//! Every variant carries enough context to be printed on its own, as one line
//! a user can act on: the file and field for bad input, where we looked for
//! the engine, the operation and object for engine failures.

use std::path::PathBuf;

/// Exit codes shared by every command (documented in README.md).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// A fixture, a build or a datum failed.
    pub const FAILED: i32 = 1;
    /// Bad input: a spec, a metadata file, a flag.
    pub const BAD_INPUT: i32 = 2;
    /// No Docker engine could be reached.
    pub const NO_ENGINE: i32 = 3;
}

/// A harness error. `Display` gives a complete, user-facing message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of an input file is wrong. Names the file, the field and the fix.
    #[error("{}: `{field}`: {problem}\n  fix: {fix}", file.display())]
    Invalid {
        file: PathBuf,
        field: String,
        problem: String,
        fix: String,
    },

    /// An input file cannot be parsed at all, or a field has the wrong type.
    #[error("{}:{line}:{column}: {message}\n  fix: {}", file.display(), syntax_fix(message))]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A command-line argument or other input that is not a file field.
    #[error("{0}")]
    Usage(String),

    /// No engine answered.
    #[error("no Docker engine reachable at {looked}: {reason}; fix: {fix}")]
    NoEngine {
        looked: String,
        reason: String,
        fix: String,
    },

    /// The engine refused or failed an operation (its kind says how).
    #[error(transparent)]
    Engine(Box<crate::engine::EngineError>),

    /// A file-system operation on a named path failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A pipeline phase, a datum or a fixture failed; the message says which.
    #[error("{0}")]
    Failed(String),

    /// SIGINT or SIGTERM stopped the work (see [`crate::interrupt`]).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. } | Error::Syntax { .. } | Error::Usage(_) => exit::BAD_INPUT,
            Error::NoEngine { .. } => exit::NO_ENGINE,
            Error::Engine(_) | Error::Io { .. } | Error::Failed(_) => exit::FAILED,
            // The shell's convention: 128 + the signal's number.
            Error::Interrupted => 128 + i32::from(crate::interrupt::requested().unwrap_or(2)),
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            file: file.into(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// How to fix what a parser said (the parser's message names the field).
fn syntax_fix(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "remove that field or correct its spelling (the message lists the fields this file takes)"
    } else if message.contains("missing field") {
        "add the field the message names"
    } else if message.contains("invalid type")
        || message.contains("invalid value")
        || message.contains("unknown variant")
    {
        "give the field a value of the type or one of the values the message expects"
    } else if message.contains("levels deep") {
        "flatten the document: a spec or metadata file needs a few levels, not hundreds"
    } else if message.contains("UTF-8") {
        "save the file as UTF-8 text"
    } else {
        "correct the syntax at that line and column (an unclosed bracket or quote, a \
         missing or extra comma, or YAML indented with tabs)"
    }
}

/// Result with the harness [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the path to an `io::Result`, so no I/O error reaches the user without it.
pub trait IoContext<T> {
    fn with_path(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_path(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_file_field_and_fix() {
        let e = Error::invalid(
            "a/pipeline.json",
            "transform.build",
            "is empty",
            "add `language`",
        );
        let text = e.to_string();
        assert!(text.contains("a/pipeline.json"), "{text}");
        assert!(text.contains("`transform.build`"), "{text}");
        assert!(text.contains("fix: add `language`"), "{text}");
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
    }

    #[test]
    fn exit_codes_by_kind() {
        let no_engine = Error::NoEngine {
            looked: "unix:///var/run/docker.sock".into(),
            reason: "not found".into(),
            fix: "start dockerd".into(),
        };
        assert_eq!(no_engine.exit_code(), exit::NO_ENGINE);
        assert_eq!(Error::Failed("x".into()).exit_code(), exit::FAILED);
        assert_eq!(Error::Usage("x".into()).exit_code(), exit::BAD_INPUT);
    }
}
