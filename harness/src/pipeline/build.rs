//! The build phase: `sh ./build.sh` in the builder image, with the source at
//! `/pfs/source` and an empty `/pfs/out`, as the platform runs it, or its
//! output taken from the build cache when nothing it depends on changed.
//!
//! The source goes into a volume in one streamed upload and the build writes
//! straight into another volume: the output never travels through the host,
//! and the run phase mounts both volumes as they are.

use std::path::PathBuf;

use crate::engine::{ContainerSpec, Engine, ExecSpec, Labels, Owned, VolumeMount};
use crate::error::{Error, Result};
use crate::output::{Entry, Tree};
use crate::staging;
use crate::trust::CONTAINER_BUNDLE_DIR;

use super::cache::{cache_key, BuildCache, CacheEntry, CacheKey};
use super::log::{LineSink, PhaseLog};
use super::{Phase, PhaseFailure, Prepared, RunOptions};

/// Where the source volume is mounted in the build container; the build
/// gets a copy at `/pfs/source`, so that nothing it writes there reaches
/// the run phase's (pristine) source.
const SOURCE_VOLUME_DIR: &str = "/.pachbuild/source";

/// Runs in the image's working directory: copies the source into place, runs
/// `sh ./build.sh`, and on success gives the output the platform's modes (no
/// exec bits: its file system keeps none).
const BUILD_SCRIPT: &str = r#"fail() { echo "pachbuild: $*" >&2; exit 213; }
mkdir -p /pfs/source || fail "cannot make /pfs/source"
cp -R /.pachbuild/source/. /pfs/source/ || fail "cannot copy the source to /pfs/source"
sh ./build.sh
code=$?
if [ "$code" -eq 0 ]; then
  find /pfs/out -type d -exec chmod 0755 {} + || fail "cannot reset the modes of /pfs/out"
  find /pfs/out -type f -exec chmod 0644 {} + || fail "cannot reset the modes of /pfs/out"
fi
exit "$code"
"#;

/// What the build phase will do: reuse a cache entry, or build into fresh
/// volumes. Known before anything runs, so that the run phase's workers can
/// start (mounting the volumes) while the build runs. The plan owns fresh
/// volumes until [`BuildPlan::store`] hands them to the cache or
/// [`BuildPlan::discard`] removes them, after everything that mounts them.
#[derive(Debug)]
pub enum BuildPlan {
    /// An ordinary pipeline: no build phase.
    Absent,
    Reused {
        key: CacheKey,
        entry: CacheEntry,
    },
    Fresh {
        key: CacheKey,
        source: Box<Owned>,
        build: Box<Owned>,
    },
}

impl BuildPlan {
    /// The volumes the run phase mounts.
    pub fn entry(&self) -> CacheEntry {
        match self {
            BuildPlan::Absent => CacheEntry {
                source_volume: String::new(),
                build_volume: String::new(),
            },
            BuildPlan::Reused { entry, .. } => entry.clone(),
            BuildPlan::Fresh { source, build, .. } => CacheEntry {
                source_volume: source.id().to_string(),
                build_volume: build.id().to_string(),
            },
        }
    }

    pub fn reuses(&self) -> bool {
        matches!(self, BuildPlan::Reused { .. })
    }

    /// Whether the run phase's `/pfs/build` is known before anything runs:
    /// a reused build, or none at all.
    pub fn output_known(&self) -> bool {
        matches!(self, BuildPlan::Reused { .. } | BuildPlan::Absent)
    }

    /// The build cache key (what the build depends on); empty without one.
    pub fn key_text(&self) -> &str {
        match self {
            BuildPlan::Absent => "",
            BuildPlan::Reused { key, .. } | BuildPlan::Fresh { key, .. } => key.as_str(),
        }
    }

    /// After a successful build: the volumes become the cache entry of the
    /// key. Returns the plan's leftovers (volumes no entry holds: another run
    /// stored the same key first, or the cache keeps nothing), to discard
    /// once the run phase is over, and the volumes of entries that left the
    /// cache, to remove with `cache::remove_stale`.
    pub async fn store(
        self,
        engine: &Engine,
        options: &RunOptions,
        pipeline: &str,
    ) -> Result<(Option<BuildPlan>, Vec<String>)> {
        match self {
            BuildPlan::Reused { .. } | BuildPlan::Absent => Ok((None, Vec::new())),
            BuildPlan::Fresh { key, source, build } => {
                let cache = BuildCache::new(engine, &options.cache, &options.run);
                let committed = cache.commit(&key, *source, *build, pipeline).await?;
                let leftovers = committed.leftovers.map(|(source, build)| BuildPlan::Fresh {
                    key,
                    source: Box::new(source),
                    build: Box::new(build),
                });
                Ok((leftovers, committed.stale))
            }
        }
    }

    /// Removes fresh volumes (or keeps them, with `--keep`).
    pub async fn discard(self, keep: bool, kept: &mut Vec<String>) {
        if let BuildPlan::Fresh { source, build, .. } = self {
            source.finish(keep, kept).await;
            build.finish(keep, kept).await;
        }
    }
}

/// Looks the build up in the cache; on a miss, makes its volumes.
pub async fn plan(engine: &Engine, prepared: &Prepared, options: &RunOptions) -> Result<BuildPlan> {
    if !prepared.resolved.has_build {
        return Ok(BuildPlan::Absent);
    }
    let image = &prepared.resolved.builder_image;
    let image_id = engine
        .image(image)
        .await?
        .ok_or_else(|| Error::Failed(format!("the builder image {image} is not on the engine")))?
        .id;
    let key = cache_key(&prepared.source, &image_id)?;
    let cache = BuildCache::new(engine, &options.cache, &options.run);
    if let Some(entry) = cache.lookup(&key).await? {
        return Ok(BuildPlan::Reused { key, entry });
    }
    let (source, build) = cache.new_volumes(&key).await?;
    Ok(BuildPlan::Fresh {
        key,
        source: Box::new(source),
        build: Box::new(build),
    })
}

/// Runs the build phase of `plan` (nothing, when it reuses an entry).
pub async fn run(
    engine: &Engine,
    prepared: &Prepared,
    options: &RunOptions,
    plan: &BuildPlan,
    kept: &mut Vec<String>,
    sink: LineSink<'_>,
) -> Result<std::result::Result<(), PhaseFailure>> {
    if matches!(plan, BuildPlan::Absent) {
        return Ok(Ok(()));
    }
    let image = &prepared.resolved.builder_image;
    let mut log = PhaseLog::create(&options.log_dir, "build.log", "build")?;
    if plan.reuses() {
        log.note(
            &format!(
                "build phase: reused the build output of an earlier run (same source and {image}; --no-cache builds again)"
            ),
            sink,
        );
        log.finish(sink);
        return Ok(Ok(()));
    }
    let entry = plan.entry();
    log.note(&format!("build phase: `sh ./build.sh` in {image}"), sink);
    let container = engine
        .start_container(&ContainerSpec {
            image: image.clone(),
            env: options.trust.env(),
            network: true,
            labels: Labels::for_run(&options.run, "build-phase"),
            name_hint: format!("pachbuild-{}-build", prepared.pipeline_name),
            mounts: vec![
                VolumeMount {
                    volume: entry.source_volume.clone(),
                    target: SOURCE_VOLUME_DIR.into(),
                    read_only: false,
                },
                VolumeMount {
                    volume: entry.build_volume.clone(),
                    target: "/pfs/out".into(),
                    read_only: false,
                },
            ],
            sandbox: options.sandbox(Phase::Build),
        })
        .await?;
    let container = Owned::container(engine, container).with_role("build phase");
    let ran = async {
        if let Some((_, bundle)) = &options.trust.bundle {
            let tree = Tree::from([(
                PathBuf::from("ca-certificates.crt"),
                Entry::file(bundle.clone()),
            )]);
            let tar = staging::tar_tree(&tree, CONTAINER_BUNDLE_DIR.trim_start_matches('/'))?;
            engine.upload(container.id(), "/", tar).await?;
        }
        let source = &prepared.source;
        let (body, writer) = staging::stream_files(&source.root, &source.files, "")?.into_parts();
        let body = options.progress.count_sent("source", body);
        let sent = engine
            .upload_stream(container.id(), SOURCE_VOLUME_DIR, body)
            .await;
        writer.finish(sent).await?;
        let exec = ExecSpec {
            cmd: vec![
                "sh".into(),
                "-c".into(),
                BUILD_SCRIPT.into(),
                "pachbuild-build".into(),
            ],
            ..ExecSpec::default()
        };
        let mut to_log = |stream, bytes: &[u8]| log.write(stream, bytes, sink);
        let running = engine.exec(container.id(), &exec, &mut to_log);
        // Past the limit the exec is dropped; the container goes below.
        match tokio::time::timeout(options.datums.build_timeout(), running).await {
            Ok(code) => code.map(Some),
            Err(_) => Ok(None),
        }
    }
    .await;
    log.finish(sink);
    container.finish(options.keep, kept).await;
    let Some(code) = ran? else {
        let why = format!(
            "killed: the build phase ran past its time limit ({}; `--timeout` sets it)",
            super::settings::duration_text(options.datums.build_timeout())
        );
        log.note(&why, sink);
        return Ok(Err(PhaseFailure {
            phase: Phase::Build,
            datum: None,
            exit_code: -1,
            why: Some(why),
            log_path: log.path.clone(),
            tail: log.tail(),
        }));
    };
    if code != 0 {
        log.note(&format!("build.sh exited with code {code}"), sink);
        return Ok(Err(PhaseFailure {
            phase: Phase::Build,
            datum: None,
            exit_code: code,
            why: None,
            log_path: log.path.clone(),
            tail: log.tail(),
        }));
    }
    Ok(Ok(()))
}
