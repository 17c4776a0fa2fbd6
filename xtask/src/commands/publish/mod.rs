//! `cargo xtask publish --registry HOST[:PORT][/NAMESPACE] [LANG...]`:
//! builds (or reuses) each builder's image, runs `validate` and the
//! builder's fixtures on it, and pushes only the builders whose checks all
//! passed, as `<registry>/<lang>-build:<version>` (and `latest` with
//! `--latest`).
//!
//! Safe to run twice: what the registry holds is read through its HTTP API
//! first; a tag that holds this very image is left alone, one that holds
//! another image is refused unless `--force`. Bad input (registry, version,
//! a dirty tree) stops it before anything runs; every other failure is
//! reported per builder, and the summary says which builders were
//! published and which were not.

pub mod git;
mod report;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use harness::builder::release::{self, ReleaseLabels, OCI_SOURCE};
use harness::builder::{BuilderImage, BuilderMeta};
use harness::engine::{Engine, PushAuth};
use harness::error::exit;
use harness::registry::credentials::{self, Lookup};
use harness::registry::{check_version, Credentials, Registry, RegistryClient};
use harness::runner::Runner;
use harness::{Error, Result};

use crate::commands::build_builder::print_build_line;
use crate::commands::test_builder::{fixture_count, run_builder_fixtures, Mode};
use crate::commands::validate::validate_builder;
use crate::commands::{pipeline_runner_options, Out};
use crate::context::Context;

use self::git::GitState;
use self::report::{Action, BuilderResult, Planned, Published, Report, Stage};

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Builders to publish (all when none is named).
    #[arg(value_name = "LANG")]
    pub languages: Vec<String>,
    /// Where to publish: HOST[:PORT][/NAMESPACE], e.g. `ghcr.io/my-org` or
    /// `127.0.0.1:5000` (plain HTTP on loopback, HTTPS elsewhere).
    #[arg(long, value_name = "HOST[:PORT][/NAMESPACE]")]
    pub registry: String,
    /// The version (tag) to publish instead of each builder's own from builder.yaml.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Also move the `latest` tag to the published images.
    #[arg(long)]
    pub latest: bool,
    /// Replace a version the registry already holds as another image
    /// (versions are immutable otherwise).
    #[arg(long)]
    pub force: bool,
    /// Publish from a work tree with uncommitted changes (the revision label
    /// then ends in `-dirty`).
    #[arg(long)]
    pub allow_dirty: bool,
    /// Print what would be built, tested and pushed; build, test, push and
    /// contact nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as one JSON document on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: crate::cli::PipelineArgs,
}

/// One builder to publish, with its version and references.
struct Target {
    dir: PathBuf,
    meta: BuilderMeta,
    version: String,
    /// The name in the registry: `<lang>-build`.
    name: String,
    /// Tags to push: the version, then `latest` with `--latest`.
    tags: Vec<String>,
}

pub async fn run(context: &Context, args: &PublishArgs) -> Result<i32> {
    // Everything that is bad input is found here, before anything runs.
    let registry = Registry::parse(&args.registry)?;
    if let Some(version) = &args.version {
        check_version(version, "--version")?;
    }
    let mut targets = Vec::new();
    for (dir, meta) in context.builders(&args.languages)? {
        let version = match &args.version {
            Some(v) => v.clone(),
            None => {
                let whence = format!("`version` in {}", dir.join("builder.yaml").display());
                check_version(&meta.version, &whence)?;
                meta.version.clone()
            }
        };
        let mut tags = vec![version.clone()];
        if args.latest {
            tags.push("latest".to_string());
        }
        targets.push(Target {
            name: format!("{}-build", meta.language),
            dir,
            meta,
            version,
            tags,
        });
    }
    let git = GitState::read(&context.root);
    if !args.allow_dirty {
        if let Some(why) = git.refusal(&context.root) {
            return Err(Error::Usage(format!("publish refused: {why}")));
        }
    }
    let lookup = Lookup {
        run_helpers: !args.dry_run,
        ..Lookup::from_process()
    };
    let credentials = credentials::resolve(&registry, &lookup)?;
    let out = if args.json { Out::Stderr } else { Out::Stdout };

    if args.dry_run {
        return dry_run(
            &registry,
            &git,
            credentials.as_ref(),
            &targets,
            context,
            out,
        );
    }

    // The engine first (exit 3 without one), then the registry: both answer
    // in seconds, before minutes of builds and fixtures.
    let mut options = pipeline_runner_options(context, &args.pipeline);
    let at_once = options.jobs;
    options.jobs = 1;
    let runner = Runner::connect(context.builders_dir(), options).await?;
    let client = RegistryClient::new(&registry, credentials.clone());
    let mut report = Report {
        registry: registry.to_string(),
        revision: git.revision(),
        builders: targets
            .iter()
            .map(|t| {
                BuilderResult::new(
                    &t.meta.language,
                    &t.version,
                    &t.meta.builder_image(&context.prefix),
                )
            })
            .collect(),
    };
    let result = match client.check().await {
        Err(e) => {
            // Nothing can be published: say so for each builder.
            for builder in &mut report.builders {
                builder.fail(Stage::Registry, e.to_string());
            }
            Ok(())
        }
        Ok(()) => {
            out.line(format_args!(
                "registry {} answers at {}{}",
                registry,
                client.base(),
                credentials
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ));
            let session = Session {
                registry: &registry,
                client: &client,
                credentials: credentials.as_ref(),
                runner: &runner,
                git: &git,
                root: &context.root,
                args,
                at_once,
                out,
            };
            session.publish_all(&targets, &mut report).await
        }
    };
    if !args.pipeline.keep {
        if let Err(e) = runner.clean_up().await {
            errln!("warning: clean-up incomplete: {e}\n  run `cargo xtask clean` to finish it");
        }
    }
    result?;
    for line in report.summary() {
        out.line(line);
    }
    if args.json {
        outln!("{}", report.to_json());
    }
    Ok(if report.ok() { exit::OK } else { exit::FAILED })
}

fn dry_run(
    registry: &Registry,
    git: &GitState,
    credentials: Option<&Credentials>,
    targets: &[Target],
    context: &Context,
    out: Out,
) -> Result<i32> {
    let mut planned = Vec::new();
    for target in targets {
        planned.push(Planned {
            builder: target.meta.language.clone(),
            version: target.version.clone(),
            image: target.meta.builder_image(&context.prefix),
            fixtures: fixture_count(&target.dir)?,
            references: target
                .tags
                .iter()
                .map(|tag| format!("{}:{tag}", registry.image(&target.name)))
                .collect(),
        });
    }
    let credentials = match credentials {
        Some(c) if c.username.is_empty() => format!("from {}", c.source),
        Some(c) => c.to_string(),
        None => "none found (the registry may not need any)".to_string(),
    };
    for line in report::plan_lines(
        &registry.to_string(),
        &git.revision(),
        &credentials,
        &planned,
    ) {
        out.line(line);
    }
    if out == Out::Stderr {
        // --json: the plan as a document too.
        let document = serde_json::json!({
            "dry_run": true,
            "registry": registry.to_string(),
            "revision": git.revision(),
            "builders": planned.iter().map(|p| serde_json::json!({
                "builder": p.builder,
                "version": p.version,
                "image": p.image,
                "fixtures": p.fixtures,
                "references": p.references,
            })).collect::<Vec<_>>(),
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    }
    Ok(exit::OK)
}

/// What publishing needs, held for the run.
struct Session<'a> {
    registry: &'a Registry,
    client: &'a RegistryClient,
    credentials: Option<&'a Credentials>,
    runner: &'a Runner,
    git: &'a GitState,
    root: &'a Path,
    args: &'a PublishArgs,
    at_once: usize,
    out: Out,
}

impl Session<'_> {
    /// Checks every builder, then publishes those that passed. Only a lost
    /// engine stops it; every other failure is recorded for its builder.
    async fn publish_all(&self, targets: &[Target], report: &mut Report) -> Result<()> {
        let mut tested: Vec<Option<BuilderImage>> = Vec::new();
        let mut notes = BTreeSet::new();
        for (target, result) in targets.iter().zip(report.builders.iter_mut()) {
            tested.push(self.check(target, result, &mut notes).await?);
        }
        for note in &notes {
            self.out.line(format_args!("note: {note}"));
        }
        for ((target, result), image) in targets.iter().zip(report.builders.iter_mut()).zip(tested)
        {
            if let Some(image) = image {
                self.publish(target, &image, result).await?;
            }
        }
        Ok(())
    }

    /// Builds or reuses the image, validates it and runs the fixtures, as
    /// `validate` and `test-builder` do. The image when all passed.
    async fn check(
        &self,
        target: &Target,
        result: &mut BuilderResult,
        notes: &mut BTreeSet<String>,
    ) -> Result<Option<BuilderImage>> {
        let language = target.meta.language.clone();
        let verbose = crate::ui::ui().verbose();
        let built = self
            .runner
            .ensure_builder(&language, &mut |line| {
                print_build_line(&language, line, verbose)
            })
            .await;
        // Its line (built or reused, on which base) is printed with the fixtures.
        let image = match built {
            Ok((_, image)) => image,
            Err(e @ Error::NoEngine { .. }) => return Err(e),
            Err(e) => {
                result.fail(Stage::Build, e.to_string());
                self.out
                    .line(format_args!("{language}: the image could not be made: {e}"));
                return Ok(None);
            }
        };
        result.image_id = Some(image.id.clone());
        let problems =
            validate_builder(Some(self.runner), &target.dir, verbose, self.out, notes).await?;
        if problems > 0 {
            result.fail(
                Stage::Validate,
                format!("{problems} problem(s); `cargo xtask validate {language}` shows them"),
            );
            return Ok(None);
        }
        let mode = Mode {
            verbose,
            at_once: self.at_once,
            bless: false,
            out: self.out,
        };
        let outcome = run_builder_fixtures(
            self.runner,
            &self.root.join("builders"),
            &target.dir,
            &target.meta,
            mode,
        )
        .await;
        let (passed, failed) = match outcome {
            Ok(cases) => {
                // The same table as `test-builder`'s, for this builder.
                let mut results =
                    crate::report::Results::new("test-builder", ("BUILDER", "FIXTURE"));
                results.cases = cases;
                if !results.cases.is_empty() {
                    let cwd = std::env::current_dir().unwrap_or_default();
                    self.out.line(results.summary(&cwd));
                }
                (results.passed(), results.failed())
            }
            Err(e @ Error::NoEngine { .. }) => return Err(e),
            Err(e) => {
                result.fail(Stage::Fixtures, e.to_string());
                return Ok(None);
            }
        };
        self.out.line(format_args!(
            "{language}: fixtures {passed} passed, {failed} failed"
        ));
        if failed > 0 || passed == 0 {
            let why = if passed == 0 && failed == 0 {
                "the builder has no fixtures: nothing proves it works".to_string()
            } else {
                format!("{failed} of {} fixture(s) failed; `cargo xtask test-builder {language}` shows them", passed + failed)
            };
            result.fail(Stage::Fixtures, why);
            return Ok(None);
        }
        // The same image must still be there: the fixtures ran on it.
        Ok(Some(image))
    }

    /// Labels, checks what the registry holds and pushes one builder.
    async fn publish(
        &self,
        target: &Target,
        image: &BuilderImage,
        result: &mut BuilderResult,
    ) -> Result<()> {
        let language = &target.meta.language;
        let engine = self.runner.engine();
        let labels = self.labels(engine, target, image).await?;
        let repository = self.registry.repository(&target.name);
        let image_name = self.registry.image(&target.name);
        let first = format!("{image_name}:{}", target.version);
        let release =
            match release::ensure(engine, image, &labels, &first, self.runner.run_id()).await {
                Ok(release) => release,
                Err(e @ Error::NoEngine { .. }) => return Err(e),
                Err(e) => {
                    result.fail(
                        Stage::Push,
                        format!("cannot label the image as {first}: {e}"),
                    );
                    return Ok(());
                }
            };
        let tags = match self.client.tags(&repository).await {
            Ok(tags) => tags,
            Err(e) => {
                result.fail(Stage::Registry, format!("{language}: {e}"));
                return Ok(());
            }
        };
        let local_digests = engine.repo_digests(&release.id).await?;
        for tag in &target.tags {
            let reference = format!("{image_name}:{tag}");
            let held = if tags.contains(tag) {
                match self
                    .held_as(&repository, tag, &release.id, &image_name, &local_digests)
                    .await
                {
                    Ok(held) => held,
                    Err(e) => {
                        result.fail(Stage::Registry, format!("{language}: {e}"));
                        return Ok(());
                    }
                }
            } else {
                Held::Nothing
            };
            let action = match held {
                Held::Same(digest) => {
                    let published = Published {
                        reference,
                        digest,
                        action: Action::Unchanged,
                    };
                    self.out.line(published.line());
                    result.references.push(published);
                    continue;
                }
                Held::Other(digest) if tag != "latest" && !self.args.force => {
                    result.fail(
                        Stage::Immutable,
                        format!(
                            "{reference} is already in the registry as another image ({digest}); versions are immutable, so it was not pushed\n  fix: bump `version` in {}, or pass --force to replace it",
                            target.dir.join("builder.yaml").display()
                        ),
                    );
                    return Ok(());
                }
                Held::Other(_) => Action::Replaced,
                Held::Nothing => Action::Pushed,
            };
            match self.push(&release.id, &reference, &repository, tag).await {
                Ok(digest) => {
                    let published = Published {
                        reference,
                        digest,
                        action,
                    };
                    self.out.line(published.line());
                    result.references.push(published);
                }
                Err(e @ Error::NoEngine { .. }) => return Err(e),
                Err(e) => {
                    result.fail(
                        Stage::Push,
                        format!(
                            "{language}: pushing {reference} to the registry {}: {e}",
                            self.registry
                        ),
                    );
                    return Ok(());
                }
            }
        }
        result.published = true;
        Ok(())
    }

    /// The OCI labels of the release.
    async fn labels(
        &self,
        engine: &Engine,
        target: &Target,
        image: &BuilderImage,
    ) -> Result<ReleaseLabels> {
        let info = engine.image(&image.id).await?;
        let source = info
            .as_ref()
            .and_then(|i| i.labels.get(OCI_SOURCE).cloned())
            .filter(|s| !s.is_empty())
            .or_else(|| git::origin_url(self.root))
            .unwrap_or_else(|| "unknown".to_string());
        let created = engine
            .image_created(&image.id)
            .await?
            .unwrap_or_else(|| "unknown".to_string());
        Ok(ReleaseLabels {
            version: target.version.clone(),
            revision: self.git.revision(),
            source,
            created,
        })
    }

    /// What the registry holds under `tag`: this image, another, or nothing.
    async fn held_as(
        &self,
        repository: &str,
        tag: &str,
        image_id: &str,
        image_name: &str,
        local_digests: &[String],
    ) -> Result<Held> {
        let Some(digest) = self.client.manifest_digest(repository, tag).await? else {
            return Ok(Held::Nothing);
        };
        // Pushed from here before: the engine recorded the same digest.
        if local_digests.contains(&format!("{image_name}@{digest}")) {
            return Ok(Held::Same(digest));
        }
        // Else compare the image itself: the manifest's config is the image id.
        let manifest = self.client.manifest(repository, tag).await?;
        Ok(match manifest {
            Some(m) if m.config_digest.as_deref() == Some(image_id) => Held::Same(m.digest),
            Some(m) => Held::Other(m.digest),
            None => Held::Nothing,
        })
    }

    /// Tags and pushes one reference; checks through the API that the
    /// registry now holds the digest the engine reported.
    async fn push(
        &self,
        image_id: &str,
        reference: &str,
        repository: &str,
        tag: &str,
    ) -> Result<String> {
        let engine = self.runner.engine();
        engine.tag_image(image_id, reference).await?;
        let auth = self.credentials.map(|c| PushAuth {
            username: c.username.clone(),
            password: c.secret().to_string(),
            server: self.registry.server_address(),
        });
        let verbose = crate::ui::ui().verbose();
        let digest = engine
            .push(reference, auth.as_ref(), &mut |line| {
                if verbose {
                    errln!("  push | {line}");
                }
            })
            .await?;
        match self.client.manifest_digest(repository, tag).await? {
            Some(held) if held == digest => Ok(digest),
            Some(held) => Err(Error::Failed(format!(
                "the engine pushed {digest}, but the registry holds {held} under {tag}: another publish may have run at the same time"
            ))),
            None => Err(Error::Failed(format!(
                "the engine reported {digest}, but the registry has no {tag}"
            ))),
        }
    }
}

/// What a registry holds under a tag.
enum Held {
    Nothing,
    Same(String),
    Other(String),
}
