//! The run phase's workers. Like the platform's, a worker is one container
//! that lives for the whole job and runs datums one after another, so state
//! outside `/pfs` persists from one datum to the next.
//!
//! All of it happens on the engine, in one round trip per datum:
//! - `/pfs/source` and `/pfs/build` are the build's volumes, mounted
//!   read-only (nothing is copied, and a datum cannot spoil the cache);
//! - the inputs of every datum of the job are sent once, as one streamed
//!   archive, into the job volume (`/.pachbuild/job/in/<datum>/<input>/`),
//!   which every worker of the job mounts;
//! - each datum is one exec of [`DATUM_SCRIPT`]: it resets `/pfs` (all but
//!   source and build), copies the datum's inputs into place, runs the
//!   command, and moves `/pfs/out` to `/.pachbuild/job/out/<datum>/`;
//! - at the end the job's outputs come back in one streamed download.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::datum::Datum;
use crate::engine::{ContainerSpec, Engine, ExecSpec, Labels, Owned, VolumeMount};
use crate::error::Result;
use crate::staging;
use crate::stream;

use super::log::{LineSink, PhaseLog};
use super::{Phase, PhaseFailure, Prepared, RunOptions};

/// Where the job volume is mounted in a worker.
pub const JOB_DIR: &str = "/.pachbuild/job";

/// Exit code of the datum script when it could not stage or collect (the
/// command's own codes are passed through).
const WORKER_FAILED: i64 = 213;

/// One datum, in a worker: `$1` is the datum's number in the job, the
/// command follows. Only the command sees the environment we set (the
/// script's own variables are not exported).
const DATUM_SCRIPT: &str = r#"i=$1; shift
fail() { echo "pachbuild worker: $*" >&2; exit 213; }
cwd=$PWD
cd / || fail "cannot enter /"
for d in /pfs/* /pfs/.[!.]* /pfs/..?*; do
  case $d in /pfs/source|/pfs/build) continue ;; esac
  if [ -e "$d" ] || [ -L "$d" ]; then rm -rf "$d" || fail "cannot reset $d"; fi
done
mkdir -p /pfs/out || fail "cannot make /pfs/out"
if [ -d "/.pachbuild/job/in/$i" ]; then
  cp -R "/.pachbuild/job/in/$i/." /pfs/ || fail "cannot stage the datum's inputs"
fi
cd "$cwd" || fail "cannot return to $cwd"
"$@"
code=$?
if [ "$code" -eq 0 ]; then
  mkdir -p /.pachbuild/job/out || fail "cannot collect /pfs/out"
  mv /pfs/out "/.pachbuild/job/out/$i" || fail "cannot collect /pfs/out"
fi
exit "$code"
"#;

/// One datum's run.
#[derive(Debug)]
pub struct DatumRun {
    /// From sending the exec to its end: staging, the command, collecting.
    pub elapsed: Duration,
    /// When the exec was sent.
    pub started: Instant,
    /// `Err` when the command failed.
    pub outcome: std::result::Result<(), PhaseFailure>,
}

/// A run-phase container.
pub struct Worker<'a> {
    engine: &'a Engine,
    prepared: &'a Prepared,
    options: &'a RunOptions,
    container: Owned,
    stdin: Option<Vec<u8>>,
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
            })
            .await?;
        Ok(Worker {
            engine,
            prepared,
            options,
            container: Owned::container(engine, id),
            stdin: (!resolved.stdin.is_empty()).then(|| {
                let mut text = resolved.stdin.join("\n");
                text.push('\n');
                text.into_bytes()
            }),
        })
    }

    /// The container's id (for probes and `--keep`).
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// Sends the inputs of `datums` (numbered as in the job) into the job
    /// volume, as one archive written while it travels.
    pub async fn stage_inputs(&self, datums: &[(usize, &Datum)]) -> Result<()> {
        let (body, writer) = staging::stream_job(datums, "in")?.into_parts();
        let sent = self.engine.upload_stream(self.id(), JOB_DIR, body).await;
        writer.finish(sent).await
    }

    /// Runs datum number `index` of the job; `label` prefixes its lines.
    pub async fn run_datum(
        &self,
        index: usize,
        datum: &Datum,
        label: &str,
        sink: LineSink<'_>,
    ) -> Result<DatumRun> {
        let (prepared, options) = (self.prepared, self.options);
        let resolved = &prepared.resolved;
        let id = datum.id();
        let mut log = PhaseLog::create(&options.log_dir, &format!("datum-{id}.log"), label)?;
        log.note(
            &format!("{} → `{}`", datum.describe(), resolved.command.join(" ")),
            sink,
        );
        let mut env = vec![
            format!("PPS_PIPELINE_NAME={}", prepared.pipeline_name),
            format!("PACH_JOB_ID={}", options.run),
            format!("PACH_DATUM_ID={id}"),
        ];
        env.extend(datum.env().into_iter().map(|(k, v)| format!("{k}={v}")));
        let spec_env = &prepared.loaded.spec.transform.env;
        env.extend(spec_env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut cmd = vec![
            "sh".to_string(),
            "-c".into(),
            DATUM_SCRIPT.into(),
            "pachbuild-datum".into(),
            index.to_string(),
        ];
        cmd.extend(resolved.command.iter().cloned());
        let exec = ExecSpec {
            cmd,
            env,
            working_dir: None,
            stdin: self.stdin.clone(),
        };
        let started = Instant::now();
        let code = self
            .engine
            .exec(self.id(), &exec, &mut |stream, bytes| {
                log.write(stream, bytes, sink)
            })
            .await?;
        let elapsed = started.elapsed();
        log.finish(sink);
        let outcome = if code == 0 {
            Ok(())
        } else {
            log.note(
                &if code == WORKER_FAILED {
                    "the worker could not stage or collect this datum (see above)".to_string()
                } else {
                    format!("the command exited with code {code}")
                },
                sink,
            );
            Err(PhaseFailure {
                phase: Phase::Run,
                datum: Some((datum.describe(), id)),
                exit_code: code,
                log_path: log.path.clone(),
                tail: log.tail(),
            })
        };
        Ok(DatumRun {
            elapsed,
            started,
            outcome,
        })
    }

    /// Downloads the job's outputs (`<datum>/...`) into `dest`, file by file.
    pub async fn collect_outputs(&self, dest: &Path) -> Result<staging::Unpacked> {
        let archive = self
            .engine
            .download_stream(self.id(), &format!("{JOB_DIR}/out"));
        let dest = dest.to_path_buf();
        stream::read_blocking(archive, move |reader| {
            staging::unpack_into(reader, "out", &dest)
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

    /// The script runs in the worker; here it runs in the host's `sh` against
    /// a scratch root, to check that it resets, stages, passes the exit code
    /// through and collects only on success.
    #[test]
    fn the_datum_script_resets_stages_and_collects() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().display().to_string();
        let script = DATUM_SCRIPT
            .replace("/pfs", &format!("{r}/pfs"))
            .replace("/.pachbuild", &format!("{r}/.pachbuild"));
        let write = |p: &str, text: &str| {
            let p = root.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("pfs/source/main.py", "src");
        write("pfs/build/run.sh", "build");
        write("pfs/old/leftover", "x");
        write("pfs/.hidden", "x");
        write(".pachbuild/job/in/3/words/a.txt", "hello");
        let run = |cmd: &str| {
            std::process::Command::new("sh")
                .args(["-c", &script, "pachbuild-datum", "3", "sh", "-c", cmd])
                .status()
                .unwrap()
                .code()
        };
        let code = run(&format!(
            "cat {r}/pfs/words/a.txt > {r}/pfs/out/a.txt; test ! -e {r}/pfs/old"
        ));
        assert_eq!(code, Some(0));
        let out = root.path().join(".pachbuild/job/out/3/a.txt");
        assert_eq!(std::fs::read_to_string(out).unwrap(), "hello");
        assert!(root.path().join("pfs/source/main.py").exists());
        assert!(root.path().join("pfs/build/run.sh").exists());
        assert!(!root.path().join("pfs/.hidden").exists());

        // A failing command: its code comes back and nothing is collected.
        write(".pachbuild/job/in/4/words/b.txt", "b");
        let code = std::process::Command::new("sh")
            .args(["-c", &script, "pachbuild-datum", "4", "sh", "-c", "exit 7"])
            .status()
            .unwrap()
            .code();
        assert_eq!(code, Some(7));
        assert!(!root.path().join(".pachbuild/job/out/4").exists());
    }
}
