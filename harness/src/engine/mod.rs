//! The only module that talks to the Docker Engine (through `bollard`).
//!
//! Everything above it sees plain types: image and container names, tar
//! archives as bytes, exit codes, lines of output. Every bollard error is
//! turned here into an [`EngineError`] naming the operation, the object and
//! the kind of failure, so no other module needs to know the engine's
//! vocabulary. The calls are grouped by what they act on: `images.rs`,
//! `containers.rs` (with the lifeline and exec sessions), `volumes.rs`
//! (with finding and removing what a run made), `registry.rs` (pushes).

mod containers;
mod error;
mod images;
pub mod labels;
mod owned;
pub mod owner;
mod registry;
pub mod sweep;
mod volumes;

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters as q;
use bollard::Docker;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::image_ref::ImageRef;
use crate::text::short_id as short;

pub use containers::ExecSession;
use containers::Lifeline;
use error::{engine_err, is_not_found};
pub use error::{EngineError, Failure, Operation};
pub use labels::{Labels, RunId, LABEL_EPHEMERAL, LABEL_KIND, LABEL_MANAGED, LABEL_RUN};
pub use owned::{clean_up_now, engine_unresponsive, Owned};
pub use registry::PushAuth;

/// How long a request may wait for the engine's answer to begin.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The same for requests that send a large body first.
const BULK_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where bollard looks when `DOCKER_HOST` is unset.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    /// For requests the engine answers at once: a stalled engine (one that
    /// accepts connections and never answers) fails them after
    /// [`REQUEST_TIMEOUT`] instead of hanging.
    docker: Docker,
    /// For requests whose answer comes only once a large body is sent
    /// (uploads, image imports and builds).
    bulk: Docker,
    host: String,
    /// The stdin of each container this process started (see
    /// [`Engine::start_container`]), by id.
    lifelines: std::sync::Arc<std::sync::Mutex<HashMap<String, Lifeline>>>,
    /// Where warnings of clean-ups (which happen away from any caller) go.
    progress: crate::progress::Progress,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("host", &self.host).finish()
    }
}

/// What `doctor` reports about the engine.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub host: String,
    pub version: String,
    pub api_version: String,
    pub os_arch: String,
}

/// What we need to know of an image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    pub size: u64,
    pub working_dir: String,
}

/// A container to create. Containers are kept alive by an idle shell loop
/// and commands run in them as execs, so that state outside `/pfs` persists
/// from one command to the next, as on the platform's workers.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub image: String,
    /// Environment for every command run in the container (`KEY=value`).
    pub env: Vec<String>,
    /// Network access; a run phase gets none unless asked.
    pub network: bool,
    pub labels: Labels,
    /// Human-readable name prefix; a unique suffix is added.
    pub name_hint: String,
    /// Named volumes to mount (never host folders: a remote engine has none
    /// of ours, and user code must not reach the host).
    pub mounts: Vec<VolumeMount>,
    /// Limits and privileges; none by default.
    pub sandbox: Sandbox,
}

/// What a container may use and do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Memory, bytes (swap included: no more than this).
    pub memory: Option<i64>,
    /// CPUs, in billionths.
    pub nano_cpus: Option<i64>,
    /// Processes at once.
    pub pids: Option<i64>,
    /// Drop every capability but the few a normal program needs (owning and
    /// reading files as root, switching users, signalling its processes).
    pub drop_capabilities: bool,
    /// `no-new-privileges`: setuid programs gain nothing.
    pub no_new_privileges: bool,
}

/// The capabilities a sandboxed container keeps.
pub const KEPT_CAPABILITIES: [&str; 7] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
];

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

/// What we need to know of a volume.
#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// How a volume removal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeRemoval {
    Removed,
    /// There was no such volume.
    Gone,
    /// A container (maybe another run's) still uses it; it was left.
    InUse,
}

/// A byte stream for a request body (a tar archive being written).
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

/// A byte stream of a response (a tar archive being read).
pub type ArchiveStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes>> + Send + 'static>>;

/// One command to run in a container.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    /// Added to the container's environment (`KEY=value`).
    pub env: Vec<String>,
    /// Working directory; the image's own when `None`.
    pub working_dir: Option<String>,
    /// Bytes fed to the command's standard input, then closed.
    pub stdin: Option<Vec<u8>>,
    /// The user to run as; the image's own when `None`.
    pub user: Option<String>,
}

/// A piece of a command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Objects the tools made on the engine, found by label.
#[derive(Debug, Clone, Default)]
pub struct Leftovers {
    /// (id, name) of containers.
    pub containers: Vec<(String, String)>,
    /// (id, first tag) of images.
    pub images: Vec<(String, String)>,
    /// Names of volumes.
    pub volumes: Vec<String>,
}

impl Engine {
    /// Connects through `DOCKER_HOST` when set, else the local socket, and
    /// negotiates the API version. Fails with [`Error::NoEngine`] (exit 3)
    /// when nothing answers.
    pub async fn connect() -> Result<Engine> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Engine::connect_to(&host).await
    }

    /// [`Engine::connect`] to the engine at `host` (`unix://…`, `tcp://…`).
    pub async fn connect_to(host: &str) -> Result<Engine> {
        let host = host.to_string();
        let no_engine = |reason: String| Error::NoEngine {
            looked: host.clone(),
            reason,
            fix: if host.starts_with("unix://") {
                "start the Docker engine (e.g. `sudo systemctl start docker`, or `sudo dockerd &`), or point DOCKER_HOST at one".to_string()
            } else {
                "check that the engine at DOCKER_HOST is running and reachable, or unset DOCKER_HOST to use the local socket".to_string()
            },
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if !std::path::Path::new(path).exists() {
                return Err(no_engine(format!("the socket {path} does not exist")));
            }
        }
        let docker = Docker::connect_with_host(&host)
            .map_err(|e| no_engine(e.to_string()))?
            .with_timeout(REQUEST_TIMEOUT);
        // A short ping first, so that a dead engine costs seconds, not minutes.
        match tokio::time::timeout(Duration::from_secs(10), docker.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let text = e.to_string();
                // hyper's wording says nothing to a user; say what it means.
                let reason = if text.contains("(Connect)") {
                    "cannot connect (nothing listens there, or the host is unreachable)".to_string()
                } else {
                    text
                };
                return Err(no_engine(reason));
            }
            Err(_) => return Err(no_engine("no answer within 10 seconds".to_string())),
        }
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| no_engine(format!("API version negotiation failed: {e}")))?;
        let bulk = docker.clone().with_timeout(BULK_REQUEST_TIMEOUT);
        Ok(Engine {
            docker,
            bulk,
            host,
            lifelines: Default::default(),
            progress: Default::default(),
        })
    }

    /// The same engine, reporting to `progress`.
    pub fn with_progress(mut self, progress: crate::progress::Progress) -> Engine {
        self.progress = progress;
        self
    }

    /// Where warnings of this engine's users go.
    pub fn progress(&self) -> &crate::progress::Progress {
        &self.progress
    }

    /// Where this engine was reached.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the engine runs on this machine (bind mounts and host paths
    /// would work). The harness never relies on it; `doctor` reports it.
    pub fn is_local(&self) -> bool {
        self.host.starts_with("unix://")
    }

    /// Engine and API versions.
    pub async fn info(&self) -> Result<EngineInfo> {
        let _timed = timed("version", "the engine");
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| engine_err(Operation::Version, "the engine", e))?;
        Ok(EngineInfo {
            host: self.host.clone(),
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            os_arch: format!(
                "{}/{}",
                v.os.unwrap_or_default(),
                v.arch.unwrap_or_default()
            ),
        })
    }
}

/// Times one engine call for `-v`: when dropped (the call returned, failed
/// or was cancelled), a debug event names the operation, the object and the
/// time it took. Costs nothing but a clock read when nobody listens.
struct Timed {
    call: Option<(&'static str, String)>,
    started: std::time::Instant,
}

fn timed(operation: &'static str, object: &str) -> Timed {
    Timed {
        call: tracing::enabled!(target: "harness::engine", tracing::Level::DEBUG)
            .then(|| (operation, object.to_string())),
        started: std::time::Instant::now(),
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        if let Some((operation, object)) = &self.call {
            let ms = self.started.elapsed().as_secs_f64() * 1000.0;
            tracing::debug!(target: "harness::engine", "engine: {operation} {object}: {ms:.1} ms");
        }
    }
}
