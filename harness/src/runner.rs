//! The library's front door: a [`Runner`] builds builder images on demand
//! and runs pipeline specs and fixtures against them.
//!
//! ```no_run
//! # async fn example() -> harness::Result<()> {
//! use harness::runner::{Runner, RunnerOptions};
//!
//! let runner = Runner::connect("builders", RunnerOptions::default()).await?;
//! let fixture = harness::fixture::Fixture::load("builders/python/fixtures/hello".as_ref())?;
//! let outcome = runner.run_fixture(&fixture, Some("python"), &mut |_, line| println!("{line}")).await?;
//! assert!(outcome.verdict.is_ok(), "{:?}", outcome.verdict);
//! runner.clean_up().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use crate::builder::image::{self, BuilderImage, ImageOptions};
use crate::builder::{base, Base, BaseOptions, BuilderMeta};
use crate::engine::{Engine, RunId};
use crate::error::{Error, Result};
use crate::fixture::{Fixture, FixtureImage};
use crate::pipeline::{self, log::LineSink, CacheOptions, Prepared, Report, RunOptions};
use crate::spec::parse::{load_spec, LoadedSpec};
use crate::spec::resolve::{resolve, Resolved};
use crate::trust::{BundleChoice, Trust};

/// How a [`Runner`] works.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The run: every object made on the engine is labelled with it, and
    /// the runner's clean-up removes them.
    pub run: RunId,
    /// Image name prefix of the official builders (and their bases).
    pub prefix: String,
    /// Where base images come from.
    pub base: BaseOptions,
    /// The CA bundle build phases receive.
    pub bundle: BundleChoice,
    /// Phase logs go to `<log_root>/<run id>/`.
    pub log_root: PathBuf,
    /// Leave containers for debugging.
    pub keep: bool,
    /// Overlapping datum outputs are errors.
    pub strict_outputs: bool,
    /// Network in the run phase.
    pub run_network: bool,
    /// Images built by this runner are removed with its clean-up (tests).
    pub ephemeral_images: bool,
    /// Build builder images even when an identical one exists.
    pub rebuild: bool,
    /// Workers per job (run containers at once).
    pub jobs: usize,
    /// The build cache.
    pub cache: CacheOptions,
    /// Where outputs are assembled before they are judged or moved into
    /// place (temporary folders inside it).
    pub scratch_dir: PathBuf,
    /// Tries, keep going, secrets.
    pub datums: pipeline::DatumOptions,
    /// Where progress and warnings go (nowhere by default).
    pub progress: crate::progress::Progress,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            run: RunId::new(),
            prefix: "pachbuild".into(),
            base: BaseOptions::default(),
            bundle: BundleChoice::Auto,
            log_root: std::env::temp_dir().join("pachbuild-logs"),
            keep: false,
            strict_outputs: false,
            run_network: false,
            ephemeral_images: false,
            rebuild: false,
            jobs: pipeline::default_jobs(),
            cache: CacheOptions::default(),
            scratch_dir: std::env::temp_dir(),
            datums: pipeline::DatumOptions::default(),
            progress: Default::default(),
        }
    }
}

/// The result of one fixture.
#[derive(Debug)]
pub struct FixtureOutcome {
    pub report: Report,
    /// `Ok` when the fixture passed; else why not, readably.
    pub verdict: std::result::Result<(), String>,
    /// How the output differs from `expected/`, when that is why it failed.
    pub diff: Option<crate::output::DirDiff>,
}

/// Builds builder images and runs pipelines on one engine, as one run.
pub struct Runner {
    engine: Engine,
    builders_dir: PathBuf,
    options: RunnerOptions,
    run: RunId,
    trust: Trust,
    images: Mutex<HashMap<String, (Base, BuilderImage)>>,
    /// Whether [`Runner::clean_up`] ran; if not, and images only for this
    /// run were made (`made_ephemeral`), dropping the runner does it.
    cleaned: std::sync::atomic::AtomicBool,
    made_ephemeral: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("run", &self.run)
            .field("builders_dir", &self.builders_dir)
            .finish()
    }
}

impl Runner {
    /// Connects to the engine. `builders_dir` holds `<lang>/builder.yaml`.
    pub async fn connect(builders_dir: impl AsRef<Path>, options: RunnerOptions) -> Result<Runner> {
        let engine = Engine::connect().await?;
        Runner::with_engine(engine, builders_dir, options)
    }

    /// A runner on an engine already connected.
    pub fn with_engine(
        engine: Engine,
        builders_dir: impl AsRef<Path>,
        options: RunnerOptions,
    ) -> Result<Runner> {
        let trust = Trust::from_host(&options.bundle)?;
        Ok(Runner {
            engine: engine.with_progress(options.progress.clone()),
            builders_dir: builders_dir.as_ref().to_path_buf(),
            run: options.run.clone(),
            options,
            trust,
            images: Mutex::new(HashMap::new()),
            cleaned: Default::default(),
            made_ephemeral: Default::default(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn run_id(&self) -> &RunId {
        &self.run
    }

    /// Where this run's logs go.
    pub fn log_dir(&self) -> PathBuf {
        self.options.log_root.join(self.run.as_str())
    }

    /// The metadata of the official builder `language`, if there is one.
    pub fn builder_meta(&self, language: &str) -> Option<BuilderMeta> {
        official_builder(&self.builders_dir, language)
    }

    /// Provides the builder's base, then builds (or reuses) its image.
    pub async fn ensure_builder(
        &self,
        language: &str,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(Base, BuilderImage)> {
        // Held across the whole call: one build per language even when
        // fixtures ask at once, and a cached pair costs no engine call.
        let mut images = self.images.lock().await;
        if let Some(found) = images.get(language) {
            return Ok(found.clone());
        }
        let dir = self.builders_dir.join(language);
        let meta = BuilderMeta::load(&dir)?;
        if self.options.ephemeral_images || self.options.base.ephemeral {
            self.made_ephemeral
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        // Base lines are marked so a caller can show them apart from the
        // (long) image build output.
        let base = base::provide(
            &self.engine,
            &meta,
            &self.options.prefix,
            &self.run,
            &self.options.base,
            &mut |line| progress(&format!("base: {line}")),
        )
        .await?;
        let options = ImageOptions {
            tag: meta.builder_image(&self.options.prefix),
            revision: image::git_revision(&self.builders_dir),
            run: self.run.clone(),
            rebuild: self.options.rebuild,
            ephemeral: self.options.ephemeral_images,
        };
        let built = image::ensure(&self.engine, &dir, &meta, &base, &options, progress).await?;
        images.insert(language.to_string(), (base.clone(), built.clone()));
        Ok((base, built))
    }

    /// Loads and resolves a spec against this runner's builders; see [`load_spec_for`].
    pub fn load(
        &self,
        spec_path: &Path,
        default_language: Option<&str>,
    ) -> Result<(LoadedSpec, Resolved)> {
        load_spec_for(
            &self.builders_dir,
            &self.options.prefix,
            spec_path,
            default_language,
        )
    }

    /// Runs a prepared pipeline: makes the official builder's image when the
    /// spec uses one, checks that other images exist, then runs both phases.
    pub async fn run(
        &self,
        prepared: &Prepared,
        datum: Option<String>,
        log_name: &str,
        sink: LineSink<'_>,
    ) -> Result<Report> {
        if let Some(language) = &prepared.resolved.language {
            if prepared.resolved.builder_image == self.official_image(language) {
                self.ensure_builder(language, &mut |line| sink("image", line))
                    .await?;
            }
        }
        let resolved = &prepared.resolved;
        let images = if resolved.has_build {
            vec![&resolved.builder_image, &resolved.run_image]
        } else {
            vec![&resolved.run_image]
        };
        for image in images {
            if self.engine.image(image).await?.is_none() {
                return Err(Error::invalid(
                    &prepared.loaded.path,
                    if *image == prepared.resolved.run_image { "transform.image" } else { "transform.build.image" },
                    format!("the image {image} is not on the engine (runs never pull images)"),
                    "build or pull it first (`docker pull IMAGE`), or use an official builder with `transform.build.language`",
                ));
            }
        }
        let options = RunOptions {
            run: self.run.clone(),
            datum,
            strict_outputs: self.options.strict_outputs,
            keep: self.options.keep,
            trust: self.trust.clone(),
            run_network: self.options.run_network,
            log_dir: self.log_dir().join(log_name),
            jobs: self.options.jobs,
            cache: self.options.cache.clone(),
            scratch_dir: self.options.scratch_dir.clone(),
            datums: self.options.datums.clone(),
            progress: self.options.progress.scoped(log_name),
        };
        pipeline::execute(&self.engine, prepared, &options, sink).await
    }

    /// Runs one fixture and judges its result.
    pub async fn run_fixture(
        &self,
        fixture: &Fixture,
        default_language: Option<&str>,
        sink: LineSink<'_>,
    ) -> Result<FixtureOutcome> {
        let (loaded, mut resolved) = self.load(&fixture.spec_path, default_language)?;
        let repos: BTreeMap<String, PathBuf> = fixture.repos()?;
        let language = default_language
            .map(str::to_string)
            .or(resolved.language.clone());
        // A fixture's images are made under names of this run only, and the
        // spec is pointed at them: whatever tag `fixture.yaml` names (even
        // one of another image of ours), no image but its own is replaced or
        // removed.
        for (number, wanted) in fixture.config.images.iter().enumerate() {
            let owned_tag = fixture_image_tag(&self.run, &fixture.name, number);
            self.build_fixture_image(fixture, wanted, &owned_tag, language.as_deref(), sink)
                .await?;
            for image in [&mut resolved.builder_image, &mut resolved.run_image] {
                if *image == wanted.tag {
                    *image = owned_tag.clone();
                }
            }
        }
        let prepared = pipeline::prepare(loaded, resolved, &repos)?;
        let report = self.run(&prepared, None, &fixture.name, sink).await?;
        let verdict = fixture.verdict(&report)?;
        Ok(FixtureOutcome {
            report,
            verdict: verdict.result,
            diff: verdict.diff,
        })
    }

    /// Builds an image a fixture asks for, on the official builder image of
    /// `language` (passed as `BASE_IMAGE`). Always ephemeral: it exists only
    /// for the fixture.
    async fn build_fixture_image(
        &self,
        fixture: &Fixture,
        wanted: &FixtureImage,
        tag: &str,
        language: Option<&str>,
        sink: LineSink<'_>,
    ) -> Result<()> {
        let mut args = HashMap::new();
        let mut base_id = String::new();
        if let Some(language) = language {
            let (_, builder) = self
                .ensure_builder(language, &mut |line| sink("image", line))
                .await?;
            args.insert("BASE_IMAGE".to_string(), builder.image.clone());
            base_id = builder.id;
        }
        let options = ImageOptions {
            tag: tag.to_string(),
            revision: image::git_revision(&self.builders_dir),
            run: self.run.clone(),
            rebuild: self.options.rebuild,
            ephemeral: true,
        };
        self.made_ephemeral
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let labels = crate::engine::Labels::for_run(&self.run, "fixture-image");
        let context = fixture.dir.join(&wanted.context);
        image::build_or_reuse(
            &self.engine,
            &context,
            &base_id,
            &args,
            labels,
            &options,
            &mut |line| sink("image", line),
        )
        .await?;
        Ok(())
    }

    /// Removes the containers (and ephemeral images) of this run.
    pub async fn clean_up(&self) -> Result<()> {
        self.cleaned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.engine.clean_up_run(&self.run).await.map(|_| ())
    }

    fn official_image(&self, language: &str) -> String {
        self.builder_meta(language)
            .map(|m| m.builder_image(&self.options.prefix))
            .unwrap_or_default()
    }
}

/// The tag of image `number` of `fixture` in run `run`: a name no one else
/// uses (`pachbuild-fixture/<run>:<number>-<fixture>`).
fn fixture_image_tag(run: &RunId, fixture: &str, number: usize) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    let name: String = crate::text::replace_refused(&fixture.to_ascii_lowercase(), allowed, '-')
        .chars()
        .take(100)
        .collect();
    format!("pachbuild-fixture/{run}:{number}-{name}")
}

/// The runner owns its run's clean-up: a caller that returns early (an
/// error, a panic, an interrupt that drops it) without [`Runner::clean_up`]
/// still leaves nothing of the run (ephemeral images, stray containers),
/// unless it keeps objects for debugging.
impl Drop for Runner {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        // Containers and volumes are removed by their owners
        // (`engine::Owned`); what only the run's clean-up removes is
        // ephemeral images.
        let left =
            self.made_ephemeral.load(Ordering::SeqCst) && !self.cleaned.load(Ordering::SeqCst);
        if !left || self.options.keep || crate::engine::engine_unresponsive() {
            return;
        }
        // As `engine::Owned`: Drop cannot await and the runtime may be going.
        let run = self.run.clone();
        let progress = self.options.progress.clone();
        crate::engine::clean_up_now(self.engine.host(), move |engine| async move {
            let cleaned = match engine {
                Ok(engine) => engine.clean_up_run(&run).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = cleaned {
                progress.warn(format!(
                    "clean-up of run {run} incomplete: {e}; `cargo xtask clean --run {run}` finishes it"
                ));
            }
        });
    }
}

/// The metadata of the official builder `language` in `builders_dir`, if any.
pub fn official_builder(builders_dir: &Path, language: &str) -> Option<BuilderMeta> {
    let dir = builders_dir.join(language);
    dir.join(crate::builder::meta::METADATA_FILE)
        .is_file()
        .then(|| BuilderMeta::load(&dir).ok())
        .flatten()
}

/// Loads a spec, applies the client's rules and resolves its images, with
/// no engine. `default_language` fills `transform.build.language` when the
/// spec names neither a language nor an image (fixtures of
/// `builders/<lang>/` are that builder's).
pub fn load_spec_for(
    builders_dir: &Path,
    prefix: &str,
    spec_path: &Path,
    default_language: Option<&str>,
) -> Result<(LoadedSpec, Resolved)> {
    let mut loaded = load_spec(spec_path)?;
    if let (Some(language), Some(build)) = (default_language, loaded.spec.transform.build.as_mut())
    {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        if blank(&build.language) && blank(&build.image) {
            build.language = Some(language.to_string());
        }
    }
    crate::spec::validate::validate(&loaded)?;
    let resolved = resolve(&loaded, prefix, |lang| {
        official_builder(builders_dir, lang).map(|m| m.version)
    })?;
    Ok((loaded, resolved))
}
