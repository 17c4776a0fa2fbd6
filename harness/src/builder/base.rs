//! Base images: reuse a local one whose recipe hash matches, else pull the
//! upstream image when a registry answers, else make one from Debian
//! packages with `mmdebstrap` and import it through the engine.

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::builder::meta::BuilderMeta;
use crate::engine::{Engine, ImageInfo, Labels, RunId};
use crate::error::{Error, IoContext, Result};
use crate::progress::Event;
use crate::text::{shell_quote, short_id};

pub use crate::engine::labels::{LABEL_BASE_IMAGE, LABEL_BASE_SOURCE, LABEL_RECIPE_HASH};

/// How long a pull may take before we fall back to the Debian recipe.
const PULL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a base comes from: the pinned upstream image, or Debian packages.
/// What `--base-from` forces and what a base records
/// ([`LABEL_BASE_SOURCE`]), under the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseSource {
    Upstream,
    Debian,
}

impl BaseSource {
    /// Every source, in the order they are tried.
    pub const ALL: [BaseSource; 2] = [BaseSource::Upstream, BaseSource::Debian];

    /// The name on the command line and in the label.
    pub fn as_str(self) -> &'static str {
        match self {
            BaseSource::Upstream => "upstream",
            BaseSource::Debian => "debian",
        }
    }

    /// The source named `name`, as [`BaseSource::as_str`] names it.
    pub fn from_name(name: &str) -> Option<BaseSource> {
        BaseSource::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for BaseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A base image ready to build on.
#[derive(Debug, Clone)]
pub struct Base {
    /// The reference to pass as `BASE_IMAGE`.
    pub image: String,
    pub id: String,
    pub source: BaseSource,
    /// True when an existing image was reused rather than pulled or made.
    pub reused: bool,
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.reused { "reused" } else { "made" };
        write!(
            f,
            "{} ({} base, {how}, {})",
            self.image,
            self.source,
            short_id(&self.id)
        )
    }
}

/// Options for [`provide`].
#[derive(Debug, Clone)]
pub struct BaseOptions {
    pub force: Option<BaseSource>,
    /// Debian mirror for mmdebstrap.
    pub mirror: String,
    /// Mark a base made here as made only for this run (tests), so that the
    /// run's clean-up removes it.
    pub ephemeral: bool,
}

impl Default for BaseOptions {
    fn default() -> Self {
        BaseOptions {
            force: None,
            mirror: "http://deb.debian.org/debian".into(),
            ephemeral: false,
        }
    }
}

/// Provides the base of a builder, in the order the design gives: as
/// `<prefix>/base-<lang>`, made (when it is) by run `run`. `log` receives
/// progress lines.
pub async fn provide(
    engine: &Engine,
    meta: &BuilderMeta,
    prefix: &str,
    run: &RunId,
    options: &BaseOptions,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<Base> {
    // `return` in the block ends the search with what it found.
    let provided: Result<Base> = async {
        let LocalBases {
            recipe_image,
            recipe: previous,
            recipe_current,
            upstream: upstream_here,
        } = local_bases(engine, meta, prefix).await?;
        if options.force != Some(BaseSource::Upstream) {
            if let Some(found) = &previous {
                if recipe_current {
                    return Ok(Base {
                        image: recipe_image,
                        id: found.id.clone(),
                        source: BaseSource::Debian,
                        reused: true,
                    });
                }
                log(&format!(
                    "{recipe_image} exists but was made from another recipe; remaking it"
                ));
            }
        }

        if options.force != Some(BaseSource::Debian) {
            let upstream = &meta.base.upstream;
            if let Some(found) = upstream_here {
                return Ok(Base {
                    image: upstream.clone(),
                    id: found.id,
                    source: BaseSource::Upstream,
                    reused: true,
                });
            }
            log(&format!("pulling {upstream}"));
            engine.progress().emit(Event::BasePhase {
                builder: meta.language.clone(),
                phase: format!("pulling {upstream}"),
            });
            match engine.pull(upstream, PULL_TIMEOUT).await {
                Ok(()) => {
                    let id = engine
                        .image(upstream)
                        .await?
                        .map(|i| i.id)
                        .unwrap_or_default();
                    return Ok(Base {
                        image: upstream.clone(),
                        id,
                        source: BaseSource::Upstream,
                        reused: false,
                    });
                }
                Err(e) if options.force == Some(BaseSource::Upstream) => return Err(e),
                Err(e) => log(&format!(
                    "no registry: {e}; making the base from Debian packages instead"
                )),
            }
        }

        let id = make_debian_base(engine, meta, &recipe_image, run, options, log).await?;
        crate::builder::image::remove_replaced(engine, previous, &id).await;
        Ok(Base {
            image: recipe_image,
            id,
            source: BaseSource::Debian,
            reused: false,
        })
    }
    .await;
    if !provided.as_ref().is_ok_and(|b| b.reused) {
        engine.progress().emit(Event::BaseDone {
            builder: meta.language.clone(),
        });
    }
    provided
}

/// What the engine holds of a builder's base, as [`provide`] looks at it
/// (and `doctor` reports it).
#[derive(Debug)]
pub struct LocalBases {
    /// `<prefix>/base-<lang>`: the base made from the Debian recipe.
    pub recipe_image: String,
    /// The image under that name, if any.
    pub recipe: Option<ImageInfo>,
    /// Whether it was made from the recipe as it is now (else stale).
    pub recipe_current: bool,
    /// The pinned upstream image, if the engine has it.
    pub upstream: Option<ImageInfo>,
}

/// Looks up the bases of `meta` the engine already has.
pub async fn local_bases(engine: &Engine, meta: &BuilderMeta, prefix: &str) -> Result<LocalBases> {
    let recipe_image = meta.base_image(prefix);
    let recipe = engine.image(&recipe_image).await?;
    let hash = meta.base.debian.hash();
    let recipe_current = recipe
        .as_ref()
        .is_some_and(|found| found.labels.get(LABEL_RECIPE_HASH) == Some(&hash));
    let upstream = engine.image(&meta.base.upstream).await?;
    Ok(LocalBases {
        recipe_image,
        recipe,
        recipe_current,
        upstream,
    })
}

/// Runs mmdebstrap into a temporary folder and imports the tarball.
async fn make_debian_base(
    engine: &Engine,
    meta: &BuilderMeta,
    image: &str,
    run: &RunId,
    options: &BaseOptions,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<String> {
    let recipe = &meta.base.debian;
    let mmdebstrap = which("mmdebstrap").ok_or_else(|| {
        Error::Failed(format!(
            "cannot make {image}: `mmdebstrap` is not installed and no registry gave {}\n  fix: `sudo apt-get install mmdebstrap`, or pass --base-from upstream on a machine that reaches a registry",
            meta.base.upstream
        ))
    })?;
    // mmdebstrap's own scratch folders go inside ours, so an interrupted run
    // leaves nothing in /tmp.
    let scratch = Scratch(
        Some(
            tempfile::Builder::new()
                .prefix("pachbuild-base-")
                .tempdir()
                .map_err(|e| {
                    Error::io(
                        "cannot create a temporary folder in",
                        std::env::temp_dir(),
                        e,
                    )
                })?,
        ),
        engine.progress().clone(),
    );
    let tarball = scratch.path().join("rootfs.tar");
    let mut command = tokio::process::Command::new(mmdebstrap);
    command
        .arg(format!("--variant={}", recipe.variant))
        .arg("--format=tar")
        // Not --quiet: its `I: ...` lines say which phase it is in.
        // Documentation and translations are dead weight in an image.
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright");
    if !recipe.packages.is_empty() {
        command.arg(format!("--include={}", recipe.packages.join(",")));
    }
    for step in &recipe.setup {
        command.arg(format!(
            "--customize-hook=chroot \"$1\" sh -ec {}",
            shell_quote(step)
        ));
    }
    command
        .arg(&recipe.suite)
        .arg(&tarball)
        .arg(&options.mirror)
        .env("TMPDIR", scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: on an interrupt the whole group (apt, dpkg,
        // the hooks) is stopped, not only mmdebstrap itself.
        .process_group(0)
        .kill_on_drop(true);
    log(&format!(
        "making {image} from Debian {} ({} packages) with mmdebstrap",
        recipe.suite,
        recipe.packages.len()
    ));
    let mut child = command.spawn().with_path("cannot run", "mmdebstrap")?;
    // Declared after `scratch`, so dropped first: the group is gone before
    // its folder is removed.
    let _group = child.id().map(ProcessGroup);
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let mut tail: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(phase) = line.strip_prefix("I: ") {
            engine.progress().emit(Event::BasePhase {
                builder: meta.language.clone(),
                phase: phase.trim_end_matches("...").to_string(),
            });
        }
        tail.push(line);
        if tail.len() > 30 {
            tail.remove(0);
        }
    }
    let status = child
        .wait()
        .await
        .with_path("cannot wait for", "mmdebstrap")?;
    if !status.success() {
        return Err(Error::Failed(format!(
            "mmdebstrap failed to make {image} ({status}); its last lines:\n{}",
            tail.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )));
    }
    engine.progress().emit(Event::BasePhase {
        builder: meta.language.clone(),
        phase: format!("importing as {image}"),
    });
    let rootfs = std::fs::read(&tarball).with_path("cannot read", &tarball)?;
    log(&format!(
        "importing {} MB as {image}",
        rootfs.len() / 1_000_000
    ));
    let mut labels = Labels::for_run(run, "base")
        .with(LABEL_RECIPE_HASH, &recipe.hash())
        .with(LABEL_BASE_SOURCE, BaseSource::Debian.as_str())
        .with(crate::engine::labels::LABEL_DEBIAN_SUITE, &recipe.suite)
        .with(
            "org.opencontainers.image.title",
            &format!("pachbuild base for {}", meta.language),
        );
    if options.ephemeral {
        labels = labels.ephemeral();
    }
    let env: Vec<(String, String)> = recipe
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    engine.import_rootfs(rootfs, image, &labels, &env).await
}

/// A process group that is stopped when dropped (SIGTERM, then SIGKILL to
/// what is left after 5 s): an interrupted base leaves no process behind.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.0 as i32);
        if killpg(group, Signal::SIGTERM).is_err() {
            return; // already gone
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // Signal 0 asks only whether any member is left.
        while killpg(group, None).is_ok() {
            if std::time::Instant::now() > deadline {
                let _ = killpg(group, Signal::SIGKILL);
                std::thread::sleep(std::time::Duration::from_millis(200));
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// mmdebstrap's scratch folder, removed when dropped unless it still holds
/// a file system mmdebstrap mounted and could not unmount (it was killed):
/// nothing is removed through a mount; the folder is kept, and said.
struct Scratch(Option<tempfile::TempDir>, crate::progress::Progress);

impl Scratch {
    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mounted = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .any(|point| Path::new(point).starts_with(dir.path()));
        if mounted {
            let kept = dir.keep();
            self.1.warn(format!(
                "{0} still holds file systems mmdebstrap mounted; it is left: \
                 `umount -R {0}`, then `rm -rf {0}`",
                kept.display()
            ));
        }
    }
}

/// The path of an executable on `PATH`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
