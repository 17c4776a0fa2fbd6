//! The run phase's workers. Like the platform's, a worker is one container
//! that lives for the whole job and runs datums one after another, so state
//! outside `/pfs` persists from one datum to the next.
//!
//! All of it happens on the engine, with no engine call per datum:
//! - `/pfs/source` and `/pfs/build` are the build's volumes, mounted
//!   read-only (nothing is copied, and a datum cannot spoil the cache);
//! - the inputs of every datum of the job are sent once, as one streamed
//!   archive, into the job volume (`/.pachbuild/job/in/<datum>/<input>/`),
//!   which every worker of the job mounts, with each datum's command line
//!   and environment (`argv/<datum>`) and the command's stdin (`stdin`);
//! - each worker runs [`WORKER_SCRIPT`] as one exec for the whole job, like
//!   the platform's worker process: it reads a datum number per line on its
//!   stdin, resets `/pfs` (all but source and build), copies the datum's
//!   inputs into place, runs the command, moves `/pfs/out` to
//!   `/.pachbuild/job/out/<datum>/`, and ends the datum's output with a
//!   marker line carrying a random token and the exit code;
//! - at the end the job's outputs come back in one streamed download.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::datum::Datum;
use crate::engine::{
    ContainerSpec, Engine, ExecSession, ExecSpec, Labels, Owned, Stream, VolumeMount,
};
use crate::error::{Error, Result};
use crate::staging;
use crate::stream;
use crate::text::shell_quote;

use super::log::{LineSink, PhaseLog};
use super::settings::DatumSettings;
use super::{Phase, PhaseFailure, Prepared, RunOptions};

/// Where the job volume is mounted in a worker.
pub const JOB_DIR: &str = "/.pachbuild/job";

/// The worker process of a job: `$1` is the token of its marker lines. It
/// reads datum numbers on stdin until it closes. Everything it and the
/// command print goes to stdout, in order; the command's stdin is the job's
/// `stdin` file (never the worker's), and only the command sees the
/// environment of its `argv` file.
///
/// For each datum, as the platform's worker does: up to `tries` tries, each
/// with a fresh `/pfs`; exit codes in `accept` count as success; a try past
/// `timeout` seconds is killed (its process group, where `setsid` exists);
/// after the last failed try, the `errargv` command (`err_cmd`) runs, and
/// its exit 0 recovers the datum (without its output). Inputs listed in
/// `empty` appear as empty files. Before the output is collected, a symlink
/// in it that points into an input becomes a copy of that input file's
/// content, as the platform uploads it. The marker line ends the datum:
/// `<token> <datum> <exit code> <tries> <state>`, the state one of `ok`,
/// `failed`, `timeout`, `oom` (the kernel killed a process of the try for
/// memory), `recovered`, `stage`, `collect`.
pub(crate) const WORKER_SCRIPT: &str = r#"token=$1
job=/.pachbuild/job
cwd=$PWD
ready=
sid=
if command -v setsid >/dev/null 2>&1; then sid=setsid; fi
# The job volume is complete only once the first datum is sent (the worker
# starts while it is being filled): read it then.
setup() {
  tries=1 accept= timeout= workdir= empty=
  if [ -f "$job/settings" ]; then . "$job/settings"; fi
  if [ -n "$workdir" ]; then cwd=$workdir; fi
  input=/dev/null
  if [ -f "$job/stdin" ]; then input=$job/stdin; fi
  err_input=/dev/null
  if [ -f "$job/err_stdin" ]; then err_input=$job/err_stdin; fi
  if [ -d "$job/secrets" ]; then cp -R "$job/secrets/." / || echo "pachbuild worker: cannot place the secrets"; fi
  ready=1
}
stage() {
  cd / || return 1
  for d in /pfs/* /pfs/.[!.]* /pfs/..?*; do
    case $d in /pfs/source|/pfs/build) continue ;; esac
    if [ -e "$d" ] || [ -L "$d" ]; then rm -rf "$d" || return 1; fi
  done
  mkdir -p /pfs/out || return 1
  if [ -d "$job/in/$1" ]; then cp -R "$job/in/$1/." /pfs/ || return 1; fi
  for name in $empty; do
    if [ -d "/pfs/$name" ]; then
      find "/pfs/$name" -type f -exec sh -c 'for f; do : >"$f"; done' sh {} + || return 1
    fi
  done
}
# The worker's session: the command runs in a session of its own (setsid),
# so that what it leaves running can be told apart and stopped.
me=
# Only in our containers (the engine's init is their first process): never
# on a machine where this script would run by mistake.
if [ -n "$sid" ] && read -r line </proc/1/comm && [ "$line" = docker-init ] &&
  read -r line </proc/$$/stat; then
  set -- ${line##*) }
  me=$4
fi
# No process of a datum outlives it, as on the platform: after each try,
# every process outside the container's first session (init and its idle
# loop), the worker's, and sessions some other exec leads (a user's `docker
# exec` into a kept container) is killed. Builtins only.
reap() {
  [ -n "$me" ] || return 0
  keep=" 1 $me "
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    set -- ${line##*) }
    if [ "$2" = 0 ]; then keep="$keep$4 "; fi
  done
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    p=${f#/proc/}; p=${p%/stat}
    set -- ${line##*) }
    case $keep in *" $4 "*) ;; *) kill -KILL "$p" 2>/dev/null ;; esac
  done
}
run() {
  if [ -z "$timeout" ]; then
    ( . "$1" && cd "$cwd" && exec $sid "$@" ) <"$2"
    rc=$?
    reap
    return "$rc"
  fi
  ( . "$1" && cd "$cwd" && exec $sid "$@" ) <"$2" &
  pid=$!
  (
    sleep "$timeout"
    : >"$job/timedout-$3"
    if [ -n "$sid" ]; then kill -KILL -"$pid" || kill -KILL "$pid"; else kill -KILL "$pid"; fi
  ) >/dev/null 2>&1 &
  watch=$!
  wait "$pid"
  rc=$?
  kill "$watch" 2>/dev/null
  reap
  return "$rc"
}
# The kernel's count of processes it killed for memory in this container
# (cgroup v2, else v1); empty where neither is readable.
oom_kills() {
  cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null |
    sed -n 's/^oom_kill //p' | head -n 1
}
links() {
  find /pfs/out -type l | while IFS= read -r l; do
    t=$(readlink -f "$l") || continue
    case $t in
      /pfs/out|/pfs/out/*) ;;
      /pfs/*)
        src="$job/in/$1/${t#/pfs/}"
        if [ -e "$src" ]; then rm -f "$l" && cp -R "$src" "$l" || exit 1; fi ;;
    esac
  done
}
while IFS= read -r i; do
  if [ -z "$ready" ]; then setup; fi
  try=1 state=failed code=0
  while :; do
    rm -f "$job/timedout-$i"
    if ! stage "$i"; then
      echo "pachbuild worker: cannot stage datum $i"
      code=213 state=stage
      break
    fi
    oom=$(oom_kills)
    run "$job/argv/$i" "$input" "$i"
    code=$?
    case " $accept " in *" $code "*) code=0 ;; esac
    if [ "$code" -eq 0 ]; then state=ok; break; fi
    state=failed
    if [ -f "$job/timedout-$i" ]; then state=timeout; fi
    if [ "$(oom_kills)" != "$oom" ]; then state=oom; fi
    if [ "$try" -ge "$tries" ]; then break; fi
    echo "pachbuild worker: try $try of $tries failed (exit code $code); trying again with a fresh /pfs"
    try=$((try + 1))
  done
  if [ "$state" = ok ]; then
    if ! { links "$i" && mkdir -p "$job/out" && mv /pfs/out "$job/out/$i"; }; then
      echo "pachbuild worker: cannot collect the output of datum $i"
      code=213 state=collect
    fi
  elif [ "$state" != stage ] && [ -f "$job/errargv/$i" ]; then
    echo "pachbuild worker: running err_cmd"
    if run "$job/errargv/$i" "$err_input" "$i"; then state=recovered; fi
  fi
  printf '\n%s %s %s %s %s\n' "$token" "$i" "$code" "$try" "$state"
done 2>&1
"#;

/// Lines for a command's stdin (`transform.stdin`, `err_stdin`), or none.
fn lines_file(lines: &[String]) -> Option<Vec<u8>> {
    (!lines.is_empty()).then(|| {
        let mut text = lines.join("\n");
        text.push('\n');
        text.into_bytes()
    })
}

/// The `argv/<datum>` file: sets the positional parameters to
/// `env K=V... command args...`.
fn argv_file(env: &[String], command: &[String]) -> Vec<u8> {
    let mut line = String::from("set -- env");
    for word in env.iter().chain(command) {
        line.push(' ');
        line.push_str(&shell_quote(word));
    }
    line.push('\n');
    line.into_bytes()
}

/// A token no program prints by chance.
fn new_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{nanos}-{}-{}", std::process::id(), unique());
    let digest = Sha256::digest(seed.as_bytes());
    format!("pachbuild-datum-end-{}", crate::text::hex(&digest[..12]))
}

/// One datum's run.
#[derive(Debug)]
pub struct DatumRun {
    /// From sending the exec to its end: staging, the command, collecting.
    pub elapsed: Duration,
    /// When the exec was sent.
    pub started: Instant,
    /// `Err` when the command failed.
    pub outcome: std::result::Result<(), PhaseFailure>,
    /// Failed, then recovered by `err_cmd`: no output.
    pub recovered: bool,
}

/// A run-phase container.
pub struct Worker<'a> {
    engine: &'a Engine,
    prepared: &'a Prepared,
    options: &'a RunOptions,
    container: Owned,
    stdin: Option<Vec<u8>>,
    settings: DatumSettings,
}

/// The volumes a worker mounts.
#[derive(Debug, Clone)]
pub struct WorkerVolumes {
    pub source: Option<String>,
    pub build: Option<String>,
    pub job: String,
}

impl<'a> Worker<'a> {
    /// Starts a worker from the run image.
    pub async fn start(
        engine: &'a Engine,
        prepared: &'a Prepared,
        options: &'a RunOptions,
        volumes: &WorkerVolumes,
    ) -> Result<Worker<'a>> {
        let resolved = &prepared.resolved;
        let settings = DatumSettings::new(prepared, options)?;
        let mut mounts = Vec::new();
        for (volume, target) in [
            (&volumes.source, "/pfs/source"),
            (&volumes.build, "/pfs/build"),
        ] {
            if let Some(volume) = volume {
                mounts.push(VolumeMount {
                    volume: volume.clone(),
                    target: target.into(),
                    read_only: true,
                });
            }
        }
        mounts.push(VolumeMount {
            volume: volumes.job.clone(),
            target: JOB_DIR.into(),
            read_only: false,
        });
        let id = engine
            .start_container(&ContainerSpec {
                image: resolved.run_image.clone(),
                env: Vec::new(),
                network: options.run_network,
                labels: Labels::for_run(&options.run, "run-phase"),
                name_hint: format!("pachbuild-{}-run", prepared.pipeline_name),
                mounts,
                sandbox: {
                    let mut sandbox = options.sandbox(Phase::Run);
                    // The spec's resource_limits, unless --memory says otherwise.
                    if let (None, Some(memory)) = (options.datums.memory, settings.memory) {
                        sandbox.memory = i64::try_from(memory).ok();
                    }
                    if options.datums.cpus.is_none() {
                        sandbox.nano_cpus = settings.cpus.map(|c| (c * 1e9) as i64);
                    }
                    sandbox
                },
            })
            .await?;
        let container = Owned::container(engine, id).with_role("run phase worker");
        if let Some(user) = &settings.user {
            // The worker runs as the user: /pfs and the job volume must be
            // its to write, as the platform's are.
            let prepare = ExecSpec {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("mkdir -p /pfs && chmod 1777 /pfs {JOB_DIR}"),
                ],
                user: Some("0".into()),
                ..ExecSpec::default()
            };
            let mut said = Vec::new();
            let code = engine
                .exec(container.id(), &prepare, &mut |_, b| {
                    said.extend_from_slice(b)
                })
                .await?;
            if code != 0 {
                return Err(Error::Failed(format!(
                    "cannot prepare /pfs for user {user}: {}",
                    String::from_utf8_lossy(&said).trim()
                )));
            }
        }
        Ok(Worker {
            engine,
            prepared,
            options,
            container,
            stdin: lines_file(&resolved.stdin),
            settings,
        })
    }

    /// The container's id (for probes and `--keep`).
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// Sends the inputs of `datums` (numbered as in the job), their command
    /// lines and the command's stdin into the job volume, as one archive
    /// written while it travels.
    pub async fn stage_inputs(&self, datums: &[(usize, &Datum)]) -> Result<()> {
        let (prepared, options) = (self.prepared, self.options);
        let settings = &self.settings;
        let mut extra = vec![(PathBuf::from("settings"), settings.settings_file())];
        for (index, datum) in datums {
            let mut env = settings.datum_env(prepared, options, datum);
            let spec_env = &prepared.loaded.spec.transform.env;
            env.extend(spec_env.iter().map(|(k, v)| format!("{k}={v}")));
            extra.push((
                PathBuf::from(format!("argv/{index}")),
                argv_file(&env, &prepared.resolved.command),
            ));
            if !settings.err_cmd.is_empty() {
                extra.push((
                    PathBuf::from(format!("errargv/{index}")),
                    argv_file(&env, &settings.err_cmd),
                ));
            }
        }
        if let Some(stdin) = &self.stdin {
            extra.push((PathBuf::from("stdin"), stdin.clone()));
        }
        if let Some(err_stdin) = lines_file(&settings.err_stdin) {
            extra.push((PathBuf::from("err_stdin"), err_stdin));
        }
        for (path, content) in &settings.secret_files {
            let rel = path.trim_start_matches('/');
            extra.push((Path::new("secrets").join(rel), content.clone()));
        }
        let (body, writer) = staging::stream_job(datums, "in", extra)?.into_parts();
        let body = self.options.progress.count_sent("inputs", body);
        let sent = self.engine.upload_stream(self.id(), JOB_DIR, body).await;
        writer.finish(sent).await
    }

    /// Starts the worker process; datums then run through the session.
    pub async fn open_session(&self) -> Result<Session<'a>> {
        let token = new_token();
        let exec = ExecSpec {
            cmd: vec![
                "sh".into(),
                "-c".into(),
                WORKER_SCRIPT.into(),
                "pachbuild-worker".into(),
                token.clone(),
            ],
            // The platform names each worker's pod; its code sees the name.
            env: vec![format!(
                "PPS_POD_NAME=pipeline-{}-v1-{}",
                self.prepared.pipeline_name,
                &self.id()[..5.min(self.id().len())]
            )],
            user: self.settings.user.clone(),
            ..ExecSpec::default()
        };
        let session = self.engine.exec_session(self.id(), &exec).await?;
        Ok(Session {
            prepared: self.prepared,
            options: self.options,
            container: self.id().to_string(),
            session,
            scanner: MarkerScanner::new(&token),
            settings: self.settings.clone(),
        })
    }

    /// Downloads the job's outputs (`<datum>/...`) into `dest`, file by file.
    pub async fn collect_outputs(&self, dest: &Path) -> Result<staging::Unpacked> {
        let archive = self
            .engine
            .download_stream(self.id(), &format!("{JOB_DIR}/out"));
        let archive = self.options.progress.count_received("outputs", archive);
        let dest = dest.to_path_buf();
        stream::read_blocking(archive, move |reader| {
            staging::unpack_outputs(reader, "out", &dest)
        })
        .await
    }

    /// Runs a probe command in the worker (benchmarks), returning its exit
    /// code and time.
    pub async fn probe(&self, cmd: Vec<String>, env: Vec<String>) -> Result<(i64, Duration)> {
        let exec = ExecSpec {
            cmd,
            env,
            ..ExecSpec::default()
        };
        let started = Instant::now();
        let code = self.engine.exec(self.id(), &exec, &mut |_, _| {}).await?;
        Ok((code, started.elapsed()))
    }

    /// Runs a probe command and returns what it printed on stdout.
    pub async fn probe_output(&self, cmd: Vec<String>) -> Result<String> {
        let exec = ExecSpec {
            cmd,
            ..ExecSpec::default()
        };
        let mut said = Vec::new();
        let code = self
            .engine
            .exec(self.id(), &exec, &mut |stream, bytes| {
                if stream == crate::engine::Stream::Stdout {
                    said.extend_from_slice(bytes);
                }
            })
            .await?;
        if code != 0 {
            return Err(crate::Error::Failed(format!(
                "`{}` exited with code {code} in the worker",
                exec.cmd.join(" ")
            )));
        }
        Ok(String::from_utf8_lossy(&said).into_owned())
    }

    /// Removes the container, or keeps it (recorded in `kept`).
    pub async fn finish(self, keep: bool, kept: &mut Vec<String>) {
        self.container.finish(keep, kept).await;
    }
}

/// A worker process running a job's datums, one at a time.
pub struct Session<'a> {
    prepared: &'a Prepared,
    options: &'a RunOptions,
    container: String,
    session: ExecSession,
    /// Finds the marker lines in the worker's output.
    scanner: MarkerScanner,
    settings: DatumSettings,
}

impl Session<'_> {
    /// Runs datum number `index` of the job; `label` prefixes its lines.
    pub async fn run_datum(
        &mut self,
        index: usize,
        datum: &Datum,
        label: &str,
        sink: LineSink<'_>,
    ) -> Result<DatumRun> {
        let (prepared, options) = (self.prepared, self.options);
        let id = datum.id();
        let mut log = PhaseLog::create(&options.log_dir, &format!("datum-{id}.log"), label)?;
        log.note(
            &format!(
                "{} → `{}`",
                datum.describe(),
                prepared.resolved.command.join(" ")
            ),
            sink,
        );
        let started = Instant::now();
        self.session.send(format!("{index}\n").as_bytes()).await?;
        let marker = self.read_until_marker(index, &mut log, sink).await?;
        let elapsed = started.elapsed();
        log.finish(sink);
        let Marker { code, tries, state } = marker;
        let limit = self.settings.timeout_text();
        let why = match state {
            MarkerState::Ok => None,
            MarkerState::Recovered => {
                log.note(
                    &format!(
                        "failed with exit code {code}{}; err_cmd recovered it: the job goes on without its output, as on the platform",
                        tries_text(tries)
                    ),
                    sink,
                );
                None
            }
            MarkerState::Stage | MarkerState::Collect => {
                Some("the worker could not stage or collect this datum (see above)".to_string())
            }
            MarkerState::Timeout => Some(format!(
                "killed: it ran past datum_timeout ({limit}){}",
                tries_text(tries)
            )),
            MarkerState::OutOfMemory => Some(format!(
                "out of memory: the command passed the container's memory limit ({}) and was killed{}; \
                 give it more with `--memory`",
                memory_text(self.options),
                tries_text(tries)
            )),
            MarkerState::Failed => Some(format!(
                "the command exited with code {code}{}",
                tries_text(tries)
            )),
        };
        let outcome = match why {
            None => Ok(()),
            Some(why) => {
                log.note(&why, sink);
                Err(PhaseFailure {
                    phase: Phase::Run,
                    datum: Some((datum.describe(), id)),
                    exit_code: code,
                    why: Some(why),
                    log_path: log.path.clone(),
                    tail: log.tail(),
                })
            }
        };
        Ok(DatumRun {
            elapsed,
            started,
            outcome,
            recovered: state == MarkerState::Recovered,
        })
    }

    /// Gives the worker's output to the datum's log until its marker line,
    /// and returns the exit code the marker carries.
    async fn read_until_marker(
        &mut self,
        index: usize,
        log: &mut PhaseLog,
        sink: LineSink<'_>,
    ) -> Result<Marker> {
        loop {
            let (output, marker) = self.scanner.take(log.line_open(Stream::Stdout));
            log.write(Stream::Stdout, &output, sink);
            if let Some(marker) = marker {
                return Marker::parse(&marker, index);
            }
            match self.session.next_output().await? {
                Some((_, bytes)) => self.scanner.push(&bytes),
                None => {
                    log.write(Stream::Stdout, &self.scanner.rest(), sink);
                    return Err(Error::Failed(format!(
                        "the worker process in container {} ended during datum {index} \
                         (did the command kill its parent, or the container stop?)",
                        &self.container[..12.min(self.container.len())]
                    )));
                }
            }
        }
    }

    /// Ends the worker process (it reads the end of its input).
    pub async fn close(self) -> Result<()> {
        let mut left = Vec::new();
        let code = self
            .session
            .finish(&mut |_, bytes| left.extend_from_slice(bytes))
            .await?;
        if code != 0 {
            return Err(Error::Failed(format!(
                "the worker process exited with code {code}: {}",
                String::from_utf8_lossy(&left).trim()
            )));
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a worker's output into the datums' output and the marker lines
/// (`\n<token> <datum> <code>\n`) that end each datum.
///
/// Only what could be the start of a marker is held back, so the output
/// streams live. A held newline may end the command's line (`started\n`)
/// or begin the marker: the line before it is shown at once (the newline is
/// "lent" to the log), and the newline is dropped when it turns out to be
/// the command's.
#[derive(Debug)]
struct MarkerScanner {
    /// `\n<token> `: the start of a marker line.
    needle: Vec<u8>,
    /// Output received and not yet given to a datum's log.
    pending: Vec<u8>,
    /// `pending[0]` is a newline already given to the log.
    lent: bool,
}

impl MarkerScanner {
    fn new(token: &str) -> MarkerScanner {
        MarkerScanner {
            needle: format!("\n{token} ").into_bytes(),
            pending: Vec::new(),
            lent: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The output that can go to the log now, and the text of the marker
    /// after the token once it is whole. `line_open`: the log holds an
    /// unfinished line.
    fn take(&mut self, line_open: bool) -> (Vec<u8>, Option<String>) {
        let skip = usize::from(self.lent);
        if let Some(at) = find(&self.pending, &self.needle) {
            let rest = &self.pending[at + self.needle.len()..];
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                return (Vec::new(), None);
            };
            let marker = String::from_utf8_lossy(&rest[..end]).into_owned();
            let output = self.pending[skip.min(at)..at].to_vec();
            self.pending.drain(..at + self.needle.len() + end + 1);
            self.lent = false;
            return (output, Some(marker));
        }
        let keep = (1..self.needle.len().min(self.pending.len() + 1))
            .rev()
            .find(|&k| self.pending.ends_with(&self.needle[..k]))
            .unwrap_or(0);
        let cut = self.pending.len() - keep;
        let mut output = if cut > skip {
            self.pending[skip..cut].to_vec()
        } else {
            Vec::new()
        };
        if cut > 0 {
            self.pending.drain(..cut);
            self.lent = false;
        }
        let open = match output.last() {
            Some(&last) => last != b'\n',
            None => line_open,
        };
        if keep > 0 && !self.lent && open {
            output.push(b'\n');
            self.lent = true;
        }
        (output, None)
    }

    /// What is left when the output ends without a marker.
    fn rest(&mut self) -> Vec<u8> {
        let skip = usize::from(self.lent).min(self.pending.len());
        self.lent = false;
        let rest = self.pending[skip..].to_vec();
        self.pending.clear();
        rest
    }
}

/// `<index> <code>` after the token.
/// How a datum ended, as its marker line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkerState {
    Ok,
    Failed,
    Timeout,
    OutOfMemory,
    Recovered,
    Stage,
    Collect,
}

/// `<datum> <exit code> <tries> <state>` after the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marker {
    code: i64,
    tries: u32,
    state: MarkerState,
}

impl Marker {
    fn parse(marker: &str, index: usize) -> Result<Marker> {
        let garbled = || Error::Failed(format!("the worker's marker is garbled: {marker:?}"));
        let words: Vec<&str> = marker.split_whitespace().collect();
        let [got, code, tries, state] = words[..] else {
            return Err(garbled());
        };
        if got != index.to_string() {
            return Err(Error::Failed(format!(
                "the worker reported datum {got} while datum {index} was running"
            )));
        }
        let state = match state {
            "ok" => MarkerState::Ok,
            "failed" => MarkerState::Failed,
            "timeout" => MarkerState::Timeout,
            "oom" => MarkerState::OutOfMemory,
            "recovered" => MarkerState::Recovered,
            "stage" => MarkerState::Stage,
            "collect" => MarkerState::Collect,
            _ => return Err(garbled()),
        };
        Ok(Marker {
            code: code.parse().map_err(|_| garbled())?,
            tries: tries.parse().map_err(|_| garbled())?,
            state,
        })
    }
}

/// The memory limit of a worker, for messages.
fn memory_text(options: &RunOptions) -> String {
    let bytes = options.datums.memory.unwrap_or_else(super::default_memory);
    format!("{} MiB", bytes >> 20)
}

/// ` after 3 tries` (nothing for one).
fn tries_text(tries: u32) -> String {
    if tries > 1 {
        format!(" after {tries} tries")
    } else {
        String::new()
    }
}

/// A worker with a job volume of its own, over a build's volumes: for
/// callers that replay a job datum by datum (benchmarks).
pub struct StandaloneWorker<'a> {
    pub worker: Worker<'a>,
    job: Owned,
}

impl<'a> StandaloneWorker<'a> {
    pub async fn start(
        engine: &'a Engine,
        prepared: &'a Prepared,
        options: &'a RunOptions,
        entry: &super::CacheEntry,
    ) -> Result<StandaloneWorker<'a>> {
        let name = format!("pachbuild-job-{}-standalone-{}", options.run, unique());
        engine
            .create_volume(&name, &Labels::for_run(&options.run, "job"))
            .await?;
        let job = Owned::volume(engine, name);
        let volumes = WorkerVolumes {
            source: Some(entry.source_volume.clone()),
            build: Some(entry.build_volume.clone()),
            job: job.id().to_string(),
        };
        let worker = Worker::start(engine, prepared, options, &volumes).await?;
        Ok(StandaloneWorker { worker, job })
    }

    /// Removes the worker, then its job volume.
    pub async fn finish(self) {
        self.worker.finish(false, &mut Vec::new()).await;
        self.job.finish(false, &mut Vec::new()).await;
    }
}

/// A number to keep names of one process apart.
pub(crate) fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datum's lines and its marker.
    type DatumLines = (Vec<String>, String);

    /// Lines as a log would show them, fed by a scanner with `chunks`:
    /// the lines of each datum with its marker, and the lines seen once each
    /// chunk was taken.
    fn scan(chunks: &[&[u8]]) -> (Vec<DatumLines>, Vec<Vec<String>>) {
        /// A log: complete lines go out, the rest waits.
        fn give(partial: &mut Vec<u8>, bytes: &[u8], lines: &mut Vec<String>) {
            partial.extend_from_slice(bytes);
            while let Some(n) = partial.iter().position(|&b| b == b'\n') {
                let rest = partial.split_off(n + 1);
                let line = std::mem::replace(partial, rest);
                lines.push(String::from_utf8_lossy(&line[..n]).into_owned());
            }
        }
        let mut scanner = MarkerScanner::new("TOK");
        let (mut datums, mut seen_after) = (Vec::new(), Vec::new());
        let (mut lines, mut partial) = (Vec::new(), Vec::<u8>::new());
        for chunk in chunks {
            scanner.push(chunk);
            loop {
                let (out, marker) = scanner.take(!partial.is_empty());
                give(&mut partial, &out, &mut lines);
                let Some(marker) = marker else { break };
                // The log's finish: an unfinished line shows.
                if !partial.is_empty() {
                    lines.push(String::from_utf8_lossy(&std::mem::take(&mut partial)).into_owned());
                }
                datums.push((std::mem::take(&mut lines), marker));
            }
            seen_after.push(lines.clone());
        }
        (datums, seen_after)
    }

    #[test]
    fn a_finished_line_shows_before_the_datum_ends() {
        let (_, seen) = scan(&[b"started\n", b"more\n", b"\nTOK 1 0\n"]);
        assert_eq!(seen[0], ["started"]);
        assert_eq!(seen[1], ["started", "more"]);
    }

    #[test]
    fn markers_split_anywhere_give_the_same_lines() {
        let stream: &[u8] = b"a\n\nb\nTO\n\nTOK 1 0\nno newline\nTOK 2 3\n\nTOK 3 0\n";
        let expected = vec![
            (
                vec!["a".to_string(), "".into(), "b".into(), "TO".into()],
                "1 0".to_string(),
            ),
            (vec!["no newline".to_string()], "2 3".to_string()),
            (vec![], "3 0".to_string()),
        ];
        assert_eq!(scan(&[stream]).0, expected);
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(scan(&[a, b]).0, expected, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan(&bytes).0, expected, "byte by byte");
    }
    use std::io::Write;

    /// The script runs in the worker; here it runs in the host's `sh` against
    /// a scratch root, to check that it resets, stages, runs each datum with
    /// its own environment and the job's stdin, passes the exit code through
    /// in its marker, and collects only on success.
    #[test]
    fn the_worker_script_runs_datums_from_its_input() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().display().to_string();
        let script = WORKER_SCRIPT
            .replace("/pfs", &format!("{r}/pfs"))
            .replace("/.pachbuild", &format!("{r}/.pachbuild"));
        let write = |p: &str, text: &[u8]| {
            let p = root.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("pfs/source/main.py", b"src");
        write("pfs/build/run.sh", b"build");
        write("pfs/old/leftover", b"x");
        write("pfs/.hidden", b"x");
        write(".pachbuild/job/in/3/words/a.txt", b"hello");
        write(".pachbuild/job/in/4/words/b.txt", b"b");
        write(".pachbuild/job/stdin", b"from stdin\n");
        let copy = format!(
            "cat $words > {r}/pfs/out/a.txt; read line; echo \"$line, $GREETING\"; test ! -e {r}/pfs/old"
        );
        write(
            ".pachbuild/job/argv/3",
            &argv_file(
                &[
                    format!("words={r}/pfs/words/a.txt"),
                    "GREETING=it's me".into(),
                ],
                &["sh".into(), "-c".into(), copy],
            ),
        );
        write(
            ".pachbuild/job/argv/4",
            &argv_file(
                &[],
                &[
                    "sh".into(),
                    "-c".into(),
                    "printf 'no newline'; exit 7".into(),
                ],
            ),
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script, "pachbuild-worker", "TOKEN"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"3\n4\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text,
            "from stdin, it's me\n\nTOKEN 3 0 1 ok\nno newline\nTOKEN 4 7 1 failed\n"
        );
        let collected = root.path().join(".pachbuild/job/out/3/a.txt");
        assert_eq!(std::fs::read_to_string(collected).unwrap(), "hello");
        assert!(root.path().join("pfs/source/main.py").exists());
        assert!(root.path().join("pfs/build/run.sh").exists());
        assert!(!root.path().join("pfs/.hidden").exists());
        assert!(!root.path().join(".pachbuild/job/out/4").exists());
    }

    /// Runs the worker script in the host's `sh` over a scratch root with
    /// `files` (path → content) and datums `input`; returns its stdout.
    fn run_script(files: &[(&str, Vec<u8>)], input: &str) -> (tempfile::TempDir, String) {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().display().to_string();
        let script = WORKER_SCRIPT
            .replace("/pfs", &format!("{r}/pfs"))
            .replace("/.pachbuild", &format!("{r}/.pachbuild"));
        for (path, content) in files {
            let p = root.path().join(path.replace("{r}", &r));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let content = String::from_utf8_lossy(content).replace("{r}", &r);
            std::fs::write(p, content).unwrap();
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script, "pachbuild-worker", "T"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        (root, String::from_utf8(out.stdout).unwrap())
    }

    fn sh(script: &str) -> Vec<u8> {
        argv_file(&[], &["sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn tries_accepted_codes_and_err_cmd_follow_the_settings() {
        let (root, text) = run_script(
            &[
                (".pachbuild/job/settings", b"tries=3\naccept='5'\n".to_vec()),
                // Fails twice (state outside /pfs persists), then succeeds.
                (
                    ".pachbuild/job/argv/1",
                    sh("n=$(cat /tmp/pachbuild-test-tries-$$PPID 2>/dev/null || echo 0); echo x > {r}/pfs/out/f; test -d {r}/pfs/out && ls {r}/pfs | tr '\\n' ' '; echo; exit 1"),
                ),
                (".pachbuild/job/argv/2", sh("exit 5")),
                (".pachbuild/job/argv/3", sh("echo failing; exit 4")),
                (".pachbuild/job/errargv/3", sh("read l; echo \"err: $l\"")),
                (".pachbuild/job/err_stdin", b"from err_stdin\n".to_vec()),
            ],
            "1\n2\n3\n",
        );
        assert!(text.contains("try 1 of 3 failed (exit code 1)"), "{text}");
        assert!(text.contains("T 1 1 3 failed"), "{text}");
        assert!(text.contains("T 2 0 1 ok"), "{text}");
        assert!(
            text.contains("err: from err_stdin\n\nT 3 4 3 recovered"),
            "{text}"
        );
        // Recovered and failed datums leave no output; accepted ones do.
        let out = root.path().join(".pachbuild/job/out");
        assert!(out.join("2").is_dir());
        assert!(!out.join("1").exists() && !out.join("3").exists());
    }

    #[test]
    fn a_datum_past_its_time_limit_is_killed() {
        let started = std::time::Instant::now();
        let (_root, text) = run_script(
            &[
                (".pachbuild/job/settings", b"timeout=0.5\n".to_vec()),
                (
                    ".pachbuild/job/argv/1",
                    sh("echo begun; sleep 30; echo never"),
                ),
                (".pachbuild/job/argv/2", sh("echo quick")),
            ],
            "1\n2\n",
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{text}"
        );
        assert!(text.contains("begun\n"), "{text}");
        assert!(!text.contains("never"), "{text}");
        assert!(text.contains("T 1 137 1 timeout"), "{text}");
        assert!(text.contains("quick\n\nT 2 0 1 ok"), "{text}");
    }

    #[test]
    fn empty_files_working_dir_and_links_into_inputs() {
        let (root, text) = run_script(
            &[
                (
                    ".pachbuild/job/settings",
                    b"empty='big'\nworkdir='{r}/pfs/out'\n".to_vec(),
                ),
                (".pachbuild/job/in/1/big/a.bin", b"real content".to_vec()),
                (".pachbuild/job/in/1/small/b.txt", b"small".to_vec()),
                (
                    ".pachbuild/job/argv/1",
                    sh(
                        "wc -c < {r}/pfs/big/a.bin; cat {r}/pfs/small/b.txt; echo; pwd; \
                        ln -s {r}/pfs/big/a.bin link-a; ln -s ../small/b.txt {r}/pfs/out/link-b; \
                        echo inner > inner; ln -s inner link-inner",
                    ),
                ),
            ],
            "1\n",
        );
        let r = root.path().display().to_string();
        assert!(
            text.starts_with(&format!("0\nsmall\n{r}/pfs/out\n")),
            "{text}"
        );
        let out = root.path().join(".pachbuild/job/out/1");
        // Links into inputs become copies of the real content, even under
        // empty_files; a link inside the output stays a link.
        assert_eq!(std::fs::read(out.join("link-a")).unwrap(), b"real content");
        assert!(!out.join("link-a").is_symlink());
        assert_eq!(std::fs::read(out.join("link-b")).unwrap(), b"small");
        assert!(out.join("link-inner").is_symlink());
    }

    #[test]
    fn markers_are_parsed_and_checked() {
        let ok = Marker::parse("3 0 1 ok", 3).unwrap();
        assert_eq!((ok.code, ok.tries, ok.state), (0, 1, MarkerState::Ok));
        let failed = Marker::parse("3 7 3 failed", 3).unwrap();
        assert_eq!(
            (failed.code, failed.tries, failed.state),
            (7, 3, MarkerState::Failed)
        );
        assert_eq!(
            Marker::parse("3 137 1 timeout", 3).unwrap().state,
            MarkerState::Timeout
        );
        assert!(Marker::parse("4 0 1 ok", 3).is_err());
        assert!(Marker::parse("3 0", 3).is_err());
        assert!(Marker::parse("3 0 1 fine", 3).is_err());
        assert_eq!(find(b"abc\nTOK 1", b"\nTOK "), Some(3));
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn quoting_survives_any_text() {
        let argv = argv_file(
            &["A=x'y \"z\"\n$HOME".into()],
            &["printf".into(), "%s".into()],
        );
        let out = std::process::Command::new("sh")
            .args(["-c", ". /dev/stdin; printf '%s|%s' \"$1\" \"$2\""])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(&argv)?;
                c.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, "env|A=x'y \"z\"\n$HOME");
    }
}
