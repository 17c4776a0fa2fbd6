//! The only module that talks to the Docker Engine (through `bollard`).
//!
//! Everything above it sees plain types: image and container names, tar
//! archives as bytes, exit codes, lines of output. Every bollard error is
//! turned here into an [`Error::Engine`] naming the operation and the object,
//! so no other module needs to know the engine's vocabulary.

mod labels;
mod owned;
pub mod owner;
mod registry;
pub mod sweep;

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

pub use labels::{Labels, RunId, LABEL_EPHEMERAL, LABEL_KIND, LABEL_MANAGED, LABEL_RUN};
pub use owned::{engine_unresponsive, Owned};
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
}

/// A container's attached stdin. The container's first process reads it
/// and ends, stopping the container, when it closes: when the container is
/// removed, and also when this process dies without removing it (a SIGKILL,
/// a crash), so that nothing runaway outlives the run.
struct Lifeline {
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    /// The attach's output half; held so the connection stays open.
    _output: std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
                + Send,
        >,
    >,
}

/// The first process of every container: it idles while its stdin (the
/// lifeline) is open, and keeps idling after `keep` (`--keep`: the container
/// outlives the run for debugging). Shell builtins and `sleep` only.
const IDLE_SCRIPT: &str =
    "while read -r word; do if [ \"$word\" = keep ]; then while :; do sleep 3600; done; fi; done";

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

fn engine_err(operation: &str, object: &str, e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    let message = match e {
        B::DockerResponseServerError {
            message,
            status_code,
        } => match status_code {
            404 => format!("not found ({message})"),
            409 => format!("conflict ({message})"),
            _ => message,
        },
        B::DockerStreamError { error } => error,
        B::RequestTimeoutError => format!(
            "the engine did not answer within {} s (it is stalled or overloaded; `docker info` \
             tells whether it answers at all)",
            REQUEST_TIMEOUT.as_secs()
        ),
        // hyper's wording says nothing to a user; say what it means.
        B::HyperLegacyError { err } if err.is_connect() => {
            "cannot connect to the engine (it went away, or nothing listens there)".to_string()
        }
        B::HyperLegacyError { err } => format!("the connection to the engine failed ({err})"),
        other => other.to_string(),
    };
    Error::Engine {
        operation: operation.to_string(),
        object: object.to_string(),
        message,
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
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
        })
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
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| engine_err("ask the version of", "the engine", e))?;
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

    // ----- images -------------------------------------------------------

    /// The image, or `None` when the engine has no such image.
    pub async fn image(&self, name: &str) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(name).await {
            Ok(i) => {
                let config = i.config.unwrap_or_default();
                Ok(Some(ImageInfo {
                    id: i.id.unwrap_or_default(),
                    tags: i.repo_tags.unwrap_or_default(),
                    labels: config.labels.unwrap_or_default(),
                    size: i.size.unwrap_or(0).max(0) as u64,
                    working_dir: config.working_dir.unwrap_or_default(),
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err("inspect image", name, e)),
        }
    }

    /// Pulls an image from its registry. Gives up after `timeout`, so that
    /// an unreachable registry costs seconds.
    pub async fn pull(&self, image: &str, timeout: Duration) -> Result<()> {
        let (name, tag) = ImageRef::parse(image).repo_and_tag();
        let options = q::CreateImageOptions {
            from_image: Some(name.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let pulling = self
            .docker
            .create_image(Some(options), None, None)
            .try_for_each(|_| async { Ok(()) });
        match tokio::time::timeout(timeout, pulling).await {
            Ok(result) => result.map_err(|e| engine_err("pull image", image, e)),
            Err(_) => Err(Error::Engine {
                operation: "pull image".into(),
                object: image.into(),
                message: format!("no answer from the registry within {}s", timeout.as_secs()),
            }),
        }
    }

    /// Imports a root file system (an uncompressed tar) as `repo:tag`, with
    /// labels and environment set on the image. Returns the image id.
    pub async fn import_rootfs(
        &self,
        rootfs: Vec<u8>,
        image: &str,
        labels: &Labels,
        env: &[(String, String)],
    ) -> Result<String> {
        let (name, tag) = ImageRef::parse(image).repo_and_tag();
        let mut changes: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("LABEL {k}={}", quote_change(v)))
            .collect();
        changes.extend(
            env.iter()
                .map(|(k, v)| format!("ENV {k}={}", quote_change(v))),
        );
        changes.push("CMD [\"/bin/sh\"]".to_string());
        let options = q::CreateImageOptions {
            from_src: Some("-".to_string()),
            repo: Some(name.to_string()),
            tag: Some(tag.to_string()),
            changes,
            ..Default::default()
        };
        let mut stream = self.bulk.create_image(
            Some(options),
            Some(bollard::body_full(Bytes::from(rootfs))),
            None,
        );
        while let Some(item) = stream.next().await {
            item.map_err(|e| engine_err("import root file system as", image, e))?;
        }
        let info = self.image(image).await?.ok_or_else(|| Error::Engine {
            operation: "import root file system as".into(),
            object: image.into(),
            message: "the engine reported success but has no such image".into(),
        })?;
        Ok(info.id)
    }

    /// Builds an image from a tar build context (classic builder). Each line
    /// of the build's output goes to `progress`. Returns the image id.
    pub async fn build_image(
        &self,
        context: Vec<u8>,
        tag: &str,
        build_args: &HashMap<String, String>,
        labels: &Labels,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let options = q::BuildImageOptions {
            dockerfile: "Dockerfile".to_string(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(build_args.clone()),
            labels: Some(labels.to_hash_map()),
            ..Default::default()
        };
        let mut stream = self.bulk.build_image(
            options,
            None,
            Some(bollard::body_full(Bytes::from(context))),
        );
        let mut last_lines = crate::text::LastLines::new(20);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(build_failed(tag, &detail, &last_lines.to_vec()));
                    }
                    if let Some(text) = info.stream {
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            progress(line);
                            last_lines.push(line.to_string());
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_failed(tag, &error, &last_lines.to_vec()));
                }
                Err(e) => return Err(engine_err("build image", tag, e)),
            }
        }
        let info = self.image(tag).await?.ok_or_else(|| Error::Engine {
            operation: "build image".into(),
            object: tag.into(),
            message: "the build finished but the image is missing".into(),
        })?;
        Ok(info.id)
    }

    /// Removes one image that no tag and no other image needs (a failed
    /// build's step), leaving its parents; never forced. Whether it is
    /// gone: one still in use, tagged or a parent stays (`false`).
    pub async fn remove_untagged_image(&self, id: &str) -> Result<bool> {
        let options = q::RemoveImageOptions {
            force: false,
            noprune: true,
            ..Default::default()
        };
        match self.docker.remove_image(id, Some(options), None).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(false),
            Err(e) => Err(engine_err("remove image", short(id), e)),
        }
    }

    /// Removes an image; an image that is already gone is not an error.
    pub async fn remove_image(&self, image: &str) -> Result<()> {
        let options = q::RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_err("remove image", image, e)),
        }
    }

    // ----- containers ---------------------------------------------------

    /// Creates and starts a long-lived container; commands run in it with
    /// [`Engine::exec`]. Returns its id. Call [`Engine::remove_container`]
    /// when done (the run's label lets a later clean-up find it otherwise).
    pub async fn start_container(&self, spec: &ContainerSpec) -> Result<String> {
        let name = format!("{}-{}", spec.name_hint, spec.labels.run_id().unwrap_or("x"));
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            // Idle until removed, or until this process is gone.
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec![IDLE_SCRIPT.into()]),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.to_hash_map()),
            network_disabled: Some(!spec.network),
            host_config: Some(HostConfig {
                // docker-init reaps the processes user code leaves behind
                // and makes the container stop at once on removal.
                init: Some(true),
                network_mode: Some(if spec.network { "bridge" } else { "none" }.to_string()),
                privileged: Some(false),
                memory: spec.sandbox.memory,
                memory_swap: spec.sandbox.memory,
                nano_cpus: spec.sandbox.nano_cpus,
                pids_limit: spec.sandbox.pids,
                cap_drop: spec
                    .sandbox
                    .drop_capabilities
                    .then(|| vec!["ALL".to_string()]),
                cap_add: spec
                    .sandbox
                    .drop_capabilities
                    .then(|| KEPT_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
                security_opt: spec
                    .sandbox
                    .no_new_privileges
                    .then(|| vec!["no-new-privileges".to_string()]),
                mounts: (!spec.mounts.is_empty()).then(|| {
                    spec.mounts
                        .iter()
                        .map(|m| bollard::models::Mount {
                            target: Some(m.target.clone()),
                            source: Some(m.volume.clone()),
                            typ: Some(bollard::models::MountType::VOLUME),
                            read_only: Some(m.read_only),
                            volume_options: Some(bollard::models::MountVolumeOptions {
                                // Never seed a volume from the image's files.
                                no_copy: Some(true),
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = q::CreateContainerOptions {
            name: Some(unique_name(&name)),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_err("create a container from image", &spec.image, e))?;
        let id = created.id;
        // Attached before the start, so that there is no moment when the
        // container runs without its lifeline.
        let attach = q::AttachContainerOptions {
            stdin: true,
            stream: true,
            ..Default::default()
        };
        let attached = match self.docker.attach_container(&id, Some(attach)).await {
            Ok(attached) => attached,
            Err(e) => {
                let _ = self.remove_container(&id).await;
                return Err(engine_err(
                    "attach to a container from image",
                    &spec.image,
                    e,
                ));
            }
        };
        self.lifelines_lock().insert(
            id.clone(),
            Lifeline {
                input: attached.input,
                _output: attached.output,
            },
        );
        if let Err(e) = self
            .docker
            .start_container(&id, None::<q::StartContainerOptions>)
            .await
        {
            let _ = self.remove_container(&id).await;
            return Err(engine_err("start a container from image", &spec.image, e));
        }
        Ok(id)
    }

    fn lifelines_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lifeline>> {
        // A panic elsewhere while it was held leaves the map usable.
        self.lifelines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets the container `id` outlive this process (`--keep`): its first
    /// process idles on when its lifeline closes.
    pub async fn keep_alive(&self, id: &str) {
        let lifeline = self.lifelines_lock().remove(id);
        if let Some(mut lifeline) = lifeline {
            let _ = lifeline.input.write_all(b"keep\n").await;
            let _ = lifeline.input.flush().await;
            // Give the line time to arrive before the connection closes.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forgets the lifeline of a container that is gone (or going).
    pub fn drop_lifeline(&self, id: &str) {
        self.lifelines_lock().remove(id);
    }

    /// Unpacks a tar archive into the container at `path` (which must exist).
    pub async fn upload(&self, container: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        let options = q::UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.bulk
            .upload_to_container(
                container,
                Some(options),
                bollard::body_full(Bytes::from(tar)),
            )
            .await
            .map_err(|e| upload_err(path, container, e))
    }

    /// [`Engine::upload`] for an archive that is written while it is sent,
    /// so that its size never has to fit in memory.
    pub async fn upload_stream(&self, container: &str, path: &str, tar: BodyStream) -> Result<()> {
        let options = q::UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.bulk
            .upload_to_container(container, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(|e| upload_err(path, container, e))
    }

    /// A tar archive of `path` in the container; its entries start with the
    /// last component of `path` (e.g. `out/` for `/pfs/out`).
    pub async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>> {
        let options = q::DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = self
            .docker
            .download_from_container(container, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                engine_err(
                    &format!("copy {path} out of container"),
                    short(container),
                    e,
                )
            })?;
            tar.extend_from_slice(&chunk);
        }
        Ok(tar)
    }

    /// [`Engine::download`] as a stream of chunks, read as they arrive.
    pub fn download_stream(&self, container: &str, path: &str) -> ArchiveStream {
        let options = q::DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let what = format!("copy {path} out of container");
        let short_id = short(container).to_string();
        Box::pin(
            self.docker
                .download_from_container(container, Some(options))
                .map(move |chunk| chunk.map_err(|e| engine_err(&what, &short_id, e))),
        )
    }

    /// Runs a command in a running container, sending its output to
    /// `output` as it comes. Returns the command's exit code.
    pub async fn exec(
        &self,
        container: &str,
        spec: &ExecSpec,
        output: &mut (dyn FnMut(Stream, &[u8]) + Send),
    ) -> Result<i64> {
        let what = format!("run `{}` in container", spec.cmd.join(" "));
        let options = CreateExecOptions {
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            attach_stdin: Some(spec.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(container, options)
            .await
            .map_err(|e| engine_err(&what, short(container), e))?;
        let started = self
            .docker
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .map_err(|e| engine_err(&what, short(container), e))?;
        if let StartExecResults::Attached {
            output: mut out,
            mut input,
        } = started
        {
            if let Some(bytes) = &spec.stdin {
                // Feed stdin concurrently with reading output, so a command
                // that writes before it reads cannot dead-lock with us.
                let bytes = bytes.clone();
                let feeder = async move {
                    let _ = input.write_all(&bytes).await;
                    let _ = input.shutdown().await;
                };
                let reader = async {
                    while let Some(item) = out.next().await {
                        forward(item, output, &what, container)?;
                    }
                    Ok::<(), Error>(())
                };
                let ((), read) = tokio::join!(feeder, reader);
                read?;
            } else {
                drop(input);
                while let Some(item) = out.next().await {
                    forward(item, output, &what, container)?;
                }
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| engine_err(&what, short(container), e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    /// Starts a command with its stdin open for writing, for a conversation
    /// (the worker loop of a job). Read its output with
    /// [`ExecSession::next_output`], write with [`ExecSession::send`], then
    /// [`ExecSession::finish`] for the exit code.
    pub async fn exec_session(&self, container: &str, spec: &ExecSpec) -> Result<ExecSession> {
        let what = format!(
            "run `{}` in container",
            spec.cmd.first().map_or("", |c| c.as_str())
        );
        let options = CreateExecOptions {
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(container, options)
            .await
            .map_err(|e| engine_err(&what, short(container), e))?;
        let started = self
            .docker
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .map_err(|e| engine_err(&what, short(container), e))?;
        match started {
            StartExecResults::Attached { output, input } => Ok(ExecSession {
                docker: self.docker.clone(),
                exec: exec.id,
                container: short(container).to_string(),
                what,
                output,
                input: Some(input),
            }),
            StartExecResults::Detached => Err(Error::Engine {
                operation: what,
                object: short(container).to_string(),
                message: "the engine did not attach to the command".into(),
            }),
        }
    }

    /// The mounts of a container (`type:destination`), to prove that no
    /// host folder is bind-mounted.
    pub async fn container_mounts(&self, container: &str) -> Result<Vec<String>> {
        let inspect = self
            .docker
            .inspect_container(container, None::<q::InspectContainerOptions>)
            .await
            .map_err(|e| engine_err("inspect container", short(container), e))?;
        Ok(inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let kind = m.typ.map(|t| t.to_string()).unwrap_or_default();
                format!("{kind}:{}", m.destination.unwrap_or_default())
            })
            .collect())
    }

    /// Whether the engine has the container (running or not).
    pub async fn container_exists(&self, container: &str) -> Result<bool> {
        match self
            .docker
            .inspect_container(container, None::<q::InspectContainerOptions>)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(engine_err("inspect container", short(container), e)),
        }
    }

    /// Removes a container, running or not; one already gone is not an error.
    pub async fn remove_container(&self, container: &str) -> Result<()> {
        let options = q::RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let removed = match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_err("remove container", short(container), e)),
        };
        self.drop_lifeline(container);
        removed
    }

    // ----- volumes --------------------------------------------------------

    /// Creates a named volume. Creating one that exists is not an error (the
    /// engine returns the existing one): callers use fresh names.
    pub async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()> {
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.to_hash_map()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(|e| engine_err("create volume", name, e))?;
        Ok(())
    }

    /// The volume, or `None` when the engine has none of that name.
    pub async fn volume(&self, name: &str) -> Result<Option<VolumeInfo>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(VolumeInfo {
                name: v.name,
                labels: v.labels,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err("inspect volume", name, e)),
        }
    }

    /// Volumes carrying label `key=value` (or just `key`).
    pub async fn volumes_labelled(&self, label_filter: &str) -> Result<Vec<VolumeInfo>> {
        let filters = HashMap::from([("label".to_string(), vec![label_filter.to_string()])]);
        let listed = self
            .docker
            .list_volumes(Some(q::ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| engine_err("list volumes labelled", label_filter, e))?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    /// Removes a volume unless a container still uses it.
    pub async fn remove_volume(&self, name: &str) -> Result<VolumeRemoval> {
        match self
            .docker
            .remove_volume(name, None::<q::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(VolumeRemoval::Removed),
            Err(e) if is_not_found(&e) => Ok(VolumeRemoval::Gone),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(VolumeRemoval::InUse),
            Err(e) => Err(engine_err("remove volume", name, e)),
        }
    }

    // ----- finding what we made -----------------------------------------

    /// Containers and images carrying label `key=value` (or just `key`).
    pub async fn find_labelled(&self, label_filter: &str) -> Result<Leftovers> {
        let filters = HashMap::from([("label".to_string(), vec![label_filter.to_string()])]);
        let containers = self
            .docker
            .list_containers(Some(q::ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_err("list containers labelled", label_filter, e))?
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                (c.id.unwrap_or_default(), name)
            })
            .collect();
        let images = self
            .docker
            .list_images(Some(q::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_err("list images labelled", label_filter, e))?
            .into_iter()
            .map(|i| {
                let tag = i
                    .repo_tags
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "<none>".into());
                (i.id, tag)
            })
            .collect();
        let volumes = self
            .volumes_labelled(label_filter)
            .await?
            .into_iter()
            .map(|v| v.name)
            .collect();
        Ok(Leftovers {
            containers,
            images,
            volumes,
        })
    }

    /// Removes every container of a run, and its images when they were made
    /// only for that run (labelled ephemeral). Returns what was removed.
    pub async fn clean_up_run(&self, run: &RunId) -> Result<Leftovers> {
        let found = self.find_labelled(&format!("{LABEL_RUN}={run}")).await?;
        for (id, _) in &found.containers {
            self.remove_container(id).await?;
        }
        let mut removed_images = Vec::new();
        for (id, tag) in found.images {
            if let Some(info) = self.image(&id).await? {
                if info.labels.get(LABEL_EPHEMERAL).map(String::as_str) == Some("true") {
                    self.remove_image(&id).await?;
                    removed_images.push((id, tag));
                }
            }
        }
        // After the containers: a volume in use cannot be removed.
        let mut removed_volumes = Vec::new();
        for volume in found.volumes {
            if self.remove_volume(&volume).await? == VolumeRemoval::Removed {
                removed_volumes.push(volume);
            }
        }
        Ok(Leftovers {
            containers: found.containers,
            images: removed_images,
            volumes: removed_volumes,
        })
    }
}

/// A command running in a container with its stdin open: see
/// [`Engine::exec_session`].
pub struct ExecSession {
    docker: Docker,
    exec: String,
    container: String,
    what: String,
    output: std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
                + Send,
        >,
    >,
    input: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("exec", &self.exec)
            .finish()
    }
}

impl ExecSession {
    /// Writes to the command's stdin.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let input = self.input.as_mut().ok_or_else(|| Error::Engine {
            operation: self.what.clone(),
            object: self.container.clone(),
            message: "its input is already closed".into(),
        })?;
        let written = async {
            input.write_all(bytes).await?;
            input.flush().await
        }
        .await;
        written.map_err(|e| Error::Engine {
            operation: self.what.clone(),
            object: self.container.clone(),
            message: format!("cannot write to its input: {e}"),
        })
    }

    /// The next piece of output, or `None` when the command closed its
    /// output (it ended).
    pub async fn next_output(&mut self) -> Result<Option<(Stream, Bytes)>> {
        while let Some(item) = self.output.next().await {
            match item.map_err(|e| engine_err(&self.what, &self.container, e))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    return Ok(Some((Stream::Stdout, message)))
                }
                LogOutput::StdErr { message } => return Ok(Some((Stream::Stderr, message))),
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(None)
    }

    /// Closes stdin, reads what is left (given to `output`) and returns the
    /// exit code.
    pub async fn finish(mut self, output: &mut (dyn FnMut(Stream, &[u8]) + Send)) -> Result<i64> {
        if let Some(mut input) = self.input.take() {
            let _ = input.shutdown().await;
        }
        while let Some((stream, bytes)) = self.next_output().await? {
            output(stream, &bytes);
        }
        let inspect = self
            .docker
            .inspect_exec(&self.exec)
            .await
            .map_err(|e| engine_err(&self.what, &self.container, e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }
}

fn upload_err(path: &str, container: &str, e: bollard::errors::Error) -> Error {
    engine_err(
        &format!("copy files into {path} of container"),
        short(container),
        e,
    )
}

fn forward(
    item: std::result::Result<LogOutput, bollard::errors::Error>,
    output: &mut (dyn FnMut(Stream, &[u8]) + Send),
    what: &str,
    container: &str,
) -> Result<()> {
    match item.map_err(|e| engine_err(what, short(container), e))? {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            output(Stream::Stdout, &message)
        }
        LogOutput::StdErr { message } => output(Stream::Stderr, &message),
        LogOutput::StdIn { .. } => {}
    }
    Ok(())
}

fn build_failed(tag: &str, detail: &str, last_lines: &[String]) -> Error {
    let mut message = detail.trim().to_string();
    if !last_lines.is_empty() {
        message.push_str("\n  last lines of the build:\n");
        for line in last_lines {
            message.push_str("    ");
            message.push_str(line);
            message.push('\n');
        }
    }
    Error::Engine {
        operation: "build image".into(),
        object: tag.into(),
        message,
    }
}

/// Values in import `changes` are Dockerfile syntax; quote them as JSON strings.
fn quote_change(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
}

/// Container names must be unique on the engine; a counter keeps names of one
/// run apart.
fn unique_name(base: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let clean = crate::text::replace_refused(
        base,
        |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
        '-',
    );
    format!("{clean}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_values_are_quoted() {
        assert_eq!(quote_change("a b\"c"), "\"a b\\\"c\"");
    }

    #[test]
    fn unique_names_are_clean_and_distinct() {
        let a = unique_name("build phase/x");
        let b = unique_name("build phase/x");
        assert_ne!(a, b);
        assert!(a.starts_with("build-phase-x-"));
    }
}
