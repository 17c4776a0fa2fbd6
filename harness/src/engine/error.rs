//! Engine errors: which operation failed on which object, what kind of
//! failure it was (callers decide on the kind, never on the words), a
//! message a user can act on, and bollard's error as the source.

use std::fmt;

use super::REQUEST_TIMEOUT;

/// An operation on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Version,
    InspectImage,
    PullImage,
    ImportImage,
    BuildImage,
    RemoveImage,
    /// Tag the image `source` as the object.
    TagImage {
        source: String,
    },
    RemoveReference,
    PushImage,
    CreateContainer,
    AttachContainer,
    StartContainer,
    InspectContainer,
    RemoveContainer,
    /// Unpack an archive into `path` of the container.
    CopyInto {
        path: String,
    },
    /// Read `path` of the container as an archive.
    CopyOut {
        path: String,
    },
    /// Run `command` in the container.
    Exec {
        command: String,
    },
    CreateVolume,
    InspectVolume,
    RemoveVolume,
    ListVolumes,
    ListContainers,
    ListImages,
}

impl fmt::Display for Operation {
    /// As the start of a sentence whose object follows: "build image x".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Version => f.write_str("ask the version of"),
            Operation::InspectImage => f.write_str("inspect image"),
            Operation::PullImage => f.write_str("pull image"),
            Operation::ImportImage => f.write_str("import root file system as"),
            Operation::BuildImage => f.write_str("build image"),
            Operation::RemoveImage => f.write_str("remove image"),
            Operation::TagImage { source } => write!(f, "tag image {source} as"),
            Operation::RemoveReference => f.write_str("remove the reference"),
            Operation::PushImage => f.write_str("push image"),
            Operation::CreateContainer => f.write_str("create a container from image"),
            Operation::AttachContainer => f.write_str("attach to a container from image"),
            Operation::StartContainer => f.write_str("start a container from image"),
            Operation::InspectContainer => f.write_str("inspect container"),
            Operation::RemoveContainer => f.write_str("remove container"),
            Operation::CopyInto { path } => write!(f, "copy files into {path} of container"),
            Operation::CopyOut { path } => write!(f, "copy {path} out of container"),
            Operation::Exec { command } => write!(f, "run `{command}` in container"),
            Operation::CreateVolume => f.write_str("create volume"),
            Operation::InspectVolume => f.write_str("inspect volume"),
            Operation::RemoveVolume => f.write_str("remove volume"),
            Operation::ListVolumes => f.write_str("list volumes labelled"),
            Operation::ListContainers => f.write_str("list containers labelled"),
            Operation::ListImages => f.write_str("list images labelled"),
        }
    }
}

/// What kind of failure it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The object does not exist (404).
    NotFound,
    /// The object is in a state that forbids it (409: in use, being removed).
    Conflict,
    /// The engine did not answer in time (stalled, or overloaded).
    Timeout,
    /// No connection to the engine (it went away, or nothing listens).
    Unreachable,
    /// The work itself failed (an image build's step, a push the registry
    /// refused), or the engine refused the request.
    Failed,
}

/// An operation on an object that the engine failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {object}: {message}")]
pub struct EngineError {
    pub operation: Operation,
    pub object: String,
    pub failure: Failure,
    /// What happened, in words a user can act on.
    pub message: String,
    #[source]
    source: Option<bollard::errors::Error>,
}

impl EngineError {
    /// An error found by us rather than returned by bollard.
    pub fn new(
        operation: Operation,
        object: impl Into<String>,
        failure: Failure,
        message: impl Into<String>,
    ) -> EngineError {
        EngineError {
            operation,
            object: object.into(),
            failure,
            message: message.into(),
            source: None,
        }
    }

    /// Translates bollard's error: its kind, and a message that says what
    /// it means (hyper's wording says nothing to a user).
    pub(super) fn from_bollard(
        operation: Operation,
        object: &str,
        e: bollard::errors::Error,
    ) -> EngineError {
        use bollard::errors::Error as B;
        let (failure, message) = match &e {
            B::DockerResponseServerError {
                message,
                status_code,
            } => match status_code {
                404 => (Failure::NotFound, format!("not found ({message})")),
                409 => (Failure::Conflict, format!("conflict ({message})")),
                _ => (Failure::Failed, message.clone()),
            },
            B::DockerStreamError { error } => (Failure::Failed, error.clone()),
            B::RequestTimeoutError => (
                Failure::Timeout,
                format!(
                    "the engine did not answer within {} s (it is stalled or overloaded; \
                     `docker info` tells whether it answers at all)",
                    REQUEST_TIMEOUT.as_secs()
                ),
            ),
            B::HyperLegacyError { err } if err.is_connect() => (
                Failure::Unreachable,
                "cannot connect to the engine (it went away, or nothing listens there)".to_string(),
            ),
            B::HyperLegacyError { err } => (
                Failure::Unreachable,
                format!("the connection to the engine failed ({err})"),
            ),
            other => (Failure::Failed, other.to_string()),
        };
        EngineError {
            operation,
            object: object.to_string(),
            failure,
            message,
            source: Some(e),
        }
    }

    /// The same error with another message (a caller that knows more).
    pub fn with_message(mut self, message: impl Into<String>) -> EngineError {
        self.message = message.into();
        self
    }

    pub fn is_not_found(&self) -> bool {
        self.failure == Failure::NotFound
    }

    pub fn is_conflict(&self) -> bool {
        self.failure == Failure::Conflict
    }

    pub fn is_timeout(&self) -> bool {
        self.failure == Failure::Timeout
    }

    pub fn is_unreachable(&self) -> bool {
        self.failure == Failure::Unreachable
    }
}

impl From<EngineError> for crate::Error {
    fn from(e: EngineError) -> Self {
        crate::Error::Engine(Box::new(e))
    }
}

/// `e` as our error, for `operation` on `object`.
pub(super) fn engine_err(
    operation: Operation,
    object: &str,
    e: bollard::errors::Error,
) -> crate::Error {
    EngineError::from_bollard(operation, object, e).into()
}

/// Whether bollard says the object does not exist.
pub(super) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages_come_from_the_status() {
        let gone = EngineError::from_bollard(
            Operation::RemoveContainer,
            "abc",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "No such container: abc".into(),
            },
        );
        assert!(gone.is_not_found());
        assert_eq!(
            gone.to_string(),
            "remove container abc: not found (No such container: abc)"
        );
        assert!(std::error::Error::source(&gone).is_some());
        let stalled = EngineError::from_bollard(
            Operation::CopyOut {
                path: "/pfs/out".into(),
            },
            "abc",
            bollard::errors::Error::RequestTimeoutError,
        );
        assert!(stalled.is_timeout());
        assert!(stalled
            .to_string()
            .starts_with("copy /pfs/out out of container abc: the engine did not answer"));
    }
}
