//! Containers: started with a lifeline, files in and out as archives,
//! commands run in them, removal.

use super::*;

/// A container's attached stdin. The container's first process reads it
/// and ends, stopping the container, when it closes: when the container is
/// removed, and also when this process dies without removing it (a SIGKILL,
/// a crash), so that nothing runaway outlives the run.
pub(super) struct Lifeline {
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

impl Engine {
    // ----- containers ---------------------------------------------------

    /// Creates and starts a long-lived container; commands run in it with
    /// [`Engine::exec`]. Returns its id. Call [`Engine::remove_container`]
    /// when done (the run's label lets a later clean-up find it otherwise).
    pub async fn start_container(&self, spec: &ContainerSpec) -> Result<String> {
        let _timed = timed("start container", &spec.image);
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
            .map_err(|e| engine_err(Operation::CreateContainer, &spec.image, e))?;
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
                return Err(engine_err(Operation::AttachContainer, &spec.image, e));
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
            return Err(engine_err(Operation::StartContainer, &spec.image, e));
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
        let _timed = timed("upload to", container);
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
        let _timed = timed("upload to", container);
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
        let _timed = timed("download from", container);
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
                    Operation::CopyOut {
                        path: path.to_string(),
                    },
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
        let what = Operation::CopyOut {
            path: path.to_string(),
        };
        let short_id = short(container).to_string();
        Box::pin(
            self.docker
                .download_from_container(container, Some(options))
                .map(move |chunk| chunk.map_err(|e| engine_err(what.clone(), &short_id, e))),
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
        let _timed = timed("exec in", container);
        let what = Operation::Exec {
            command: spec.cmd.join(" "),
        };
        let (exec, started) = self
            .start_exec(container, spec, spec.stdin.is_some(), &what)
            .await?;
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
            .inspect_exec(&exec)
            .await
            .map_err(|e| engine_err(what, short(container), e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    /// Creates and starts an exec of `spec` with its output attached (and
    /// its stdin when `stdin`); returns the exec's id and the attachment.
    async fn start_exec(
        &self,
        container: &str,
        spec: &ExecSpec,
        stdin: bool,
        what: &Operation,
    ) -> Result<(String, StartExecResults)> {
        let options = CreateExecOptions {
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(container, options)
            .await
            .map_err(|e| engine_err(what.clone(), short(container), e))?;
        let started = self
            .docker
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .map_err(|e| engine_err(what.clone(), short(container), e))?;
        Ok((exec.id, started))
    }

    /// Starts a command with its stdin open for writing, for a conversation
    /// (the worker loop of a job). Read its output with
    /// [`ExecSession::next_output`], write with [`ExecSession::send`], then
    /// [`ExecSession::finish`] for the exit code.
    pub async fn exec_session(&self, container: &str, spec: &ExecSpec) -> Result<ExecSession> {
        let _timed = timed("start exec in", container);
        let what = Operation::Exec {
            command: spec.cmd.first().cloned().unwrap_or_default(),
        };
        let (exec, started) = self.start_exec(container, spec, true, &what).await?;
        match started {
            StartExecResults::Attached { output, input } => Ok(ExecSession {
                docker: self.docker.clone(),
                exec,
                container: short(container).to_string(),
                what,
                output,
                input: Some(input),
            }),
            StartExecResults::Detached => Err(EngineError::new(
                what,
                short(container),
                Failure::Failed,
                "the engine did not attach to the command",
            )
            .into()),
        }
    }

    /// The mounts of a container (`type:destination`), to prove that no
    /// host folder is bind-mounted.
    pub async fn container_mounts(&self, container: &str) -> Result<Vec<String>> {
        let _timed = timed("inspect container", container);
        let inspect = self
            .docker
            .inspect_container(container, None::<q::InspectContainerOptions>)
            .await
            .map_err(|e| engine_err(Operation::InspectContainer, short(container), e))?;
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
        let _timed = timed("inspect container", container);
        match self
            .docker
            .inspect_container(container, None::<q::InspectContainerOptions>)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(engine_err(Operation::InspectContainer, short(container), e)),
        }
    }

    /// Whether the container runs (false when it stopped or is gone).
    pub async fn container_running(&self, container: &str) -> Result<bool> {
        match self
            .docker
            .inspect_container(container, None::<q::InspectContainerOptions>)
            .await
        {
            Ok(found) => Ok(found.state.and_then(|s| s.running).unwrap_or(false)),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(engine_err(Operation::InspectContainer, short(container), e)),
        }
    }

    /// Removes a container, running or not; one already gone is not an error.
    pub async fn remove_container(&self, container: &str) -> Result<()> {
        let _timed = timed("remove container", container);
        let options = q::RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let removed = match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_err(Operation::RemoveContainer, short(container), e)),
        };
        self.drop_lifeline(container);
        removed
    }
}

/// A command running in a container with its stdin open: see
/// [`Engine::exec_session`].
pub struct ExecSession {
    docker: Docker,
    exec: String,
    container: String,
    what: Operation,
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
        let input = self.input.as_mut().ok_or_else(|| {
            EngineError::new(
                self.what.clone(),
                &self.container,
                Failure::Failed,
                "its input is already closed",
            )
        })?;
        let written = async {
            input.write_all(bytes).await?;
            input.flush().await
        }
        .await;
        written.map_err(|e| {
            EngineError::new(
                self.what.clone(),
                &self.container,
                Failure::Unreachable,
                format!("cannot write to its input: {e}"),
            )
            .into()
        })
    }

    /// The next piece of output, or `None` when the command closed its
    /// output (it ended).
    pub async fn next_output(&mut self) -> Result<Option<(Stream, Bytes)>> {
        while let Some(item) = self.output.next().await {
            match item.map_err(|e| engine_err(self.what.clone(), &self.container, e))? {
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
            .map_err(|e| engine_err(self.what.clone(), &self.container, e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }
}

fn upload_err(path: &str, container: &str, e: bollard::errors::Error) -> Error {
    engine_err(
        Operation::CopyInto {
            path: path.to_string(),
        },
        short(container),
        e,
    )
}

fn forward(
    item: std::result::Result<LogOutput, bollard::errors::Error>,
    output: &mut (dyn FnMut(Stream, &[u8]) + Send),
    what: &Operation,
    container: &str,
) -> Result<()> {
    match item.map_err(|e| engine_err(what.clone(), short(container), e))? {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            output(Stream::Stdout, &message)
        }
        LogOutput::StdErr { message } => output(Stream::Stderr, &message),
        LogOutput::StdIn { .. } => {}
    }
    Ok(())
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
    fn unique_names_are_clean_and_distinct() {
        let a = unique_name("build phase/x");
        let b = unique_name("build phase/x");
        assert_ne!(a, b);
        assert!(a.starts_with("build-phase-x-"));
    }
}
