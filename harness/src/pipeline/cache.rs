//! The build cache: a build output is reused while nothing the build phase
//! depends on has changed.
//!
//! The key hashes the source set after `.pachignore` (paths and content, not
//! times) and the builder image's id; the build phase sees nothing else of
//! the spec (it runs `sh ./build.sh` with no arguments). An entry lives on
//! the engine, so it works the same on a remote engine: two named volumes,
//! the source and the build output, and a third, empty one, the *marker*,
//! whose name is derived from the key and whose labels name the other two.
//! The marker is made only after a build succeeded and its output was
//! normalised, so a failed or interrupted build is never served. The cache
//! keeps the newest `max_entries` entries of its scope (oldest out first).

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::engine::owner::{self, LABEL_OWNER};
use crate::engine::{Engine, Labels, Owned, RunId, VolumeRemoval, LABEL_KIND, LABEL_RUN};
use crate::error::{IoContext, Result};
use crate::source::SourceSet;
use crate::text::hex;

/// Bumped when the layout of an entry changes: old entries then never match.
const FORMAT: &str = "pachbuild build cache v1";

use crate::engine::labels::{
    LABEL_CACHE_BUILD as LABEL_BUILD_VOLUME, LABEL_CACHE_CREATED as LABEL_CREATED,
    LABEL_CACHE_PIPELINE as LABEL_PIPELINE, LABEL_CACHE_SOURCE as LABEL_SOURCE_VOLUME,
    LABEL_MADE_BY_RUN as LABEL_MADE_BY,
};
pub use crate::engine::labels::{LABEL_CACHE_KEY, LABEL_CACHE_SCOPE};

/// Kinds (`io.pachbuild.kind`) of cache volumes.
pub const KIND_MARKER: &str = "build-cache";
pub const KIND_SOURCE: &str = "cached-source";
pub const KIND_BUILD: &str = "cached-build";

/// Entries kept per scope unless told otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 10;

/// The hash of everything a build depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn short(&self) -> &str {
        &self.0[..16]
    }
}

/// The key of a build of `source` in the image `builder_image_id`. Reads
/// every source file (through a small buffer).
pub fn cache_key(source: &SourceSet, builder_image_id: &str) -> Result<CacheKey> {
    let mut key = Sha256::new();
    key.update(FORMAT.as_bytes());
    key.update(b"\nimage\0");
    key.update(builder_image_id.as_bytes());
    let mut buf = vec![0u8; 64 * 1024];
    for rel in &source.files {
        let path = source.source_path(rel);
        let mut file = std::fs::File::open(&path).with_path("read", &path)?;
        let mut content = Sha256::new();
        let mut size = 0u64;
        loop {
            crate::interrupt::check()?;
            let n = file.read(&mut buf).with_path("read", &path)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            content.update(&buf[..n]);
        }
        key.update(b"\nfile\0");
        key.update(rel.to_string_lossy().as_bytes());
        key.update(b"\0");
        key.update(size.to_le_bytes());
        key.update(content.finalize());
    }
    Ok(CacheKey(hex(&key.finalize())))
}

/// Where a cache's entries live and how many it keeps.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Read the cache (`--no-cache` turns this off; the new build is still
    /// stored).
    pub read: bool,
    /// Entries of different scopes never meet (tests use their own).
    pub scope: String,
    /// Entries kept in the scope, oldest out first. With 0 nothing is
    /// stored: a build's volumes last only as long as its run.
    pub max_entries: usize,
    /// Entries belong to the run and go with its clean-up (tests).
    pub ephemeral: bool,
    /// Where the datum cache keeps datum outputs (on the host); `None`:
    /// every datum runs. Off too when `read` is off or `max_entries` is 0.
    pub datum_dir: Option<std::path::PathBuf>,
    /// Bytes of datum outputs the datum cache keeps per scope.
    pub datum_max_bytes: u64,
    /// Run every datum again, even those whose output the datum cache has
    /// (the build may still be reused); new outputs are still stored.
    pub reprocess: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            read: true,
            scope: "default".into(),
            max_entries: DEFAULT_MAX_ENTRIES,
            ephemeral: false,
            datum_dir: None,
            datum_max_bytes: super::datum_cache::DEFAULT_MAX_BYTES,
            reprocess: false,
        }
    }
}

/// A build output and its source, on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub source_volume: String,
    pub build_volume: String,
}

/// The cache of one run.
#[derive(Debug)]
pub struct BuildCache<'a> {
    engine: &'a Engine,
    options: &'a CacheOptions,
    run: &'a RunId,
}

impl<'a> BuildCache<'a> {
    pub fn new(engine: &'a Engine, options: &'a CacheOptions, run: &'a RunId) -> Self {
        BuildCache {
            engine,
            options,
            run,
        }
    }

    fn marker_name(&self, key: &CacheKey) -> String {
        format!(
            "pachbuild-cache-{}-{}",
            name_safe(&self.options.scope),
            &key.as_str()[..32]
        )
    }

    fn labels(&self, kind: &str, key: &CacheKey) -> Labels {
        let labels = Labels::default()
            .with(LABEL_KIND, kind)
            .with(LABEL_CACHE_KEY, key.as_str())
            .with(LABEL_CACHE_SCOPE, &self.options.scope)
            .with(LABEL_MADE_BY, self.run.as_str())
            .owned();
        // An entry of an ephemeral cache goes with the run's clean-up.
        if self.options.ephemeral || self.options.max_entries == 0 {
            labels.with(LABEL_RUN, self.run.as_str())
        } else {
            labels
        }
    }

    /// The entry for `key`, when the cache may be read and holds a whole one.
    pub async fn lookup(&self, key: &CacheKey) -> Result<Option<CacheEntry>> {
        if !self.options.read || self.options.max_entries == 0 {
            return Ok(None);
        }
        let Some(marker) = self.engine.volume(&self.marker_name(key)).await? else {
            return Ok(None);
        };
        let entry = match (
            marker.labels.get(LABEL_SOURCE_VOLUME),
            marker.labels.get(LABEL_BUILD_VOLUME),
        ) {
            (Some(s), Some(b)) if marker.labels.get(LABEL_CACHE_KEY) == Some(&key.0) => {
                CacheEntry {
                    source_volume: s.clone(),
                    build_volume: b.clone(),
                }
            }
            _ => return Ok(None),
        };
        // A volume removed by hand makes the entry useless: forget it.
        for volume in [&entry.source_volume, &entry.build_volume] {
            if self.engine.volume(volume).await?.is_none() {
                let _ = self.engine.remove_volume(&marker.name).await?;
                return Ok(None);
            }
        }
        Ok(Some(entry))
    }

    /// Two fresh volumes for a build of `key`: source and build output.
    /// They are removed when dropped, unless [`BuildCache::commit`] took them.
    pub async fn new_volumes(&self, key: &CacheKey) -> Result<(Owned, Owned)> {
        let mut made = Vec::new();
        for (kind, role) in [(KIND_SOURCE, "source"), (KIND_BUILD, "build")] {
            let name = format!(
                "pachbuild-{role}-{}-{}-{}",
                key.short(),
                self.run,
                unique_suffix()
            );
            self.engine
                .create_volume(&name, &self.labels(kind, key))
                .await?;
            made.push(Owned::volume(self.engine, name));
        }
        let build = made.pop().expect("two volumes");
        let source = made.pop().expect("two volumes");
        Ok((source, build))
    }

    /// Records a successful build: the volumes become the entry of `key`
    /// (replacing an older entry of the same key), and the oldest entries
    /// beyond the bound leave the cache. Only their markers go now: their
    /// volumes, which can take a while to delete, are returned in
    /// [`Committed::stale`] for [`remove_stale`] to remove off the critical
    /// path. When another run stored the same key at the same moment, its
    /// entry stands and ours comes back in [`Committed::leftovers`].
    pub async fn commit(
        &self,
        key: &CacheKey,
        source: Owned,
        build: Owned,
        pipeline: &str,
    ) -> Result<Committed> {
        if self.options.max_entries == 0 {
            return Ok(Committed {
                leftovers: Some((source, build)),
                stale: Vec::new(),
            });
        }
        let mut stale = Vec::new();
        let marker = self.marker_name(key);
        if let Some(old) = self.engine.volume(&marker).await? {
            stale.extend(self.retire(&old.name, &old.labels).await?);
        }
        let labels = self
            .labels(KIND_MARKER, key)
            .with(LABEL_SOURCE_VOLUME, source.id())
            .with(LABEL_BUILD_VOLUME, build.id())
            .with(LABEL_CREATED, &now_millis().to_string())
            .with(LABEL_PIPELINE, pipeline);
        self.engine.create_volume(&marker, &labels).await?;
        // Creating an existing volume returns it: check that it is ours.
        let stored = self.engine.volume(&marker).await?;
        let ours = stored
            .as_ref()
            .and_then(|m| m.labels.get(LABEL_BUILD_VOLUME))
            .is_some_and(|b| b == build.id());
        if !ours {
            return Ok(Committed {
                leftovers: Some((source, build)),
                stale,
            });
        }
        source.release();
        build.release();
        stale.extend(self.evict().await?);
        Ok(Committed {
            leftovers: None,
            stale,
        })
    }

    /// Retires the oldest entries of the scope beyond the bound; returns
    /// their volumes.
    async fn evict(&self) -> Result<Vec<String>> {
        let mut markers = self.markers().await?;
        let mut stale = Vec::new();
        if markers.len() <= self.options.max_entries {
            return Ok(stale);
        }
        markers.sort_by_key(|(_, labels)| created(labels));
        let excess = markers.len() - self.options.max_entries;
        for (name, labels) in markers.into_iter().take(excess) {
            stale.extend(self.retire(&name, &labels).await?);
        }
        Ok(stale)
    }

    /// Removes an entry's marker (it is no longer found) and returns its
    /// volumes.
    async fn retire(
        &self,
        marker: &str,
        labels: &std::collections::HashMap<String, String>,
    ) -> Result<Vec<String>> {
        self.engine.remove_volume(marker).await?;
        Ok([LABEL_SOURCE_VOLUME, LABEL_BUILD_VOLUME]
            .into_iter()
            .filter_map(|k| labels.get(k).cloned())
            .collect())
    }

    async fn markers(&self) -> Result<Vec<(String, std::collections::HashMap<String, String>)>> {
        Ok(self
            .engine
            .volumes_labelled(&format!("{LABEL_CACHE_SCOPE}={}", self.options.scope))
            .await?
            .into_iter()
            .filter(|v| v.labels.get(LABEL_KIND).map(String::as_str) == Some(KIND_MARKER))
            .map(|v| (v.name, v.labels))
            .collect())
    }
}

/// Removes a marker, then its volumes (those in use by a running job are
/// left; [`collect_garbage`] takes them later). Returns the volumes removed.
async fn remove_entry(
    engine: &Engine,
    marker: &str,
    labels: &std::collections::HashMap<String, String>,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    if engine.remove_volume(marker).await? == VolumeRemoval::Removed {
        removed.push(marker.to_string());
    }
    for key in [LABEL_SOURCE_VOLUME, LABEL_BUILD_VOLUME] {
        if let Some(volume) = labels.get(key) {
            if engine.remove_volume(volume).await? == VolumeRemoval::Removed {
                removed.push(volume.clone());
            }
        }
    }
    Ok(removed)
}

/// What [`BuildCache::commit`] did.
#[derive(Debug)]
pub struct Committed {
    /// The build's volumes when no entry holds them: to remove once the
    /// run phase is done with them.
    pub leftovers: Option<(Owned, Owned)>,
    /// Volumes of entries that left the cache, to remove with [`remove_stale`].
    pub stale: Vec<String>,
}

/// Removes the volumes of entries that left the cache. One that a running
/// job still uses is left for `cargo xtask clean` (a warning says so).
pub async fn remove_stale(engine: &Engine, stale: &[String]) {
    for volume in stale {
        match engine.remove_volume(volume).await {
            Ok(VolumeRemoval::InUse) => {
                engine.progress().warn(format!("volume {volume} left the build cache but a job still uses it; `cargo xtask clean` removes it later"))
            }
            Ok(_) => {}
            Err(e) => engine.progress().warn(e.to_string()),
        }
    }
}

/// What [`clear`] did.
#[derive(Debug, Clone, Default)]
pub struct Cleared {
    pub entries: usize,
    pub volumes: Vec<String>,
    /// Volumes a running job still uses.
    pub in_use: Vec<String>,
}

/// Empties the cache: every entry of `scope` (all scopes when `None`), and
/// the volumes of builds that never became entries (an interrupted run).
pub async fn clear(engine: &Engine, scope: Option<&str>) -> Result<Cleared> {
    let mut cleared = Cleared::default();
    let filter = match scope {
        Some(scope) => format!("{LABEL_CACHE_SCOPE}={scope}"),
        None => LABEL_CACHE_SCOPE.to_string(),
    };
    let volumes = engine.volumes_labelled(&filter).await?;
    for marker in volumes
        .iter()
        .filter(|v| v.labels.get(LABEL_KIND).map(String::as_str) == Some(KIND_MARKER))
    {
        cleared.entries += 1;
        cleared
            .volumes
            .extend(remove_entry(engine, &marker.name, &marker.labels).await?);
    }
    for volume in volumes
        .iter()
        .filter(|v| v.labels.get(LABEL_KIND).map(String::as_str) != Some(KIND_MARKER))
    {
        if cleared.volumes.contains(&volume.name) {
            continue;
        }
        match engine.remove_volume(&volume.name).await? {
            VolumeRemoval::Removed => cleared.volumes.push(volume.name.clone()),
            VolumeRemoval::InUse => cleared.in_use.push(volume.name.clone()),
            VolumeRemoval::Gone => {}
        }
    }
    Ok(cleared)
}

/// Removes cache volumes that no entry names and no container uses: what a
/// killed run left. Returns their names.
pub async fn collect_garbage(engine: &Engine) -> Result<Vec<String>> {
    let volumes = engine.volumes_labelled(LABEL_CACHE_SCOPE).await?;
    let referenced: Vec<&String> = volumes
        .iter()
        .filter(|v| v.labels.get(LABEL_KIND).map(String::as_str) == Some(KIND_MARKER))
        .flat_map(|m| {
            [LABEL_SOURCE_VOLUME, LABEL_BUILD_VOLUME]
                .into_iter()
                .filter_map(|k| m.labels.get(k))
        })
        .collect();
    let mut removed = Vec::new();
    for volume in &volumes {
        let kind = volume.labels.get(LABEL_KIND).map(String::as_str);
        if kind == Some(KIND_MARKER) || referenced.contains(&&volume.name) {
            continue;
        }
        // A build in progress has no marker yet: its run still holds it.
        let owner = volume.labels.get(LABEL_OWNER).map(String::as_str);
        if !matches!(owner::liveness(owner), owner::Liveness::Gone) {
            continue;
        }
        if engine.remove_volume(&volume.name).await? == VolumeRemoval::Removed {
            removed.push(volume.name.clone());
        }
    }
    Ok(removed)
}

fn created(labels: &std::collections::HashMap<String, String>) -> u128 {
    labels
        .get(LABEL_CREATED)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn unique_suffix() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Volume names take `[a-zA-Z0-9_.-]`.
fn name_safe(text: &str) -> String {
    crate::text::replace_refused(
        text,
        |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
        '-',
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn source(dir: &std::path::Path, files: &[&str]) -> SourceSet {
        SourceSet {
            root: dir.to_path_buf(),
            files: files.iter().map(PathBuf::from).collect(),
            warnings: vec![],
        }
    }

    #[test]
    fn the_key_follows_content_paths_and_image_not_times() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.py"), "print(1)").unwrap();
        fs::write(dir.path().join("b.txt"), "b").unwrap();
        let set = source(dir.path(), &["a.py", "b.txt"]);
        let first = cache_key(&set, "sha256:1").unwrap();
        assert_eq!(first.as_str().len(), 64);

        // Same content rewritten (new mtime): same key.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(dir.path().join("a.py"), "print(1)").unwrap();
        assert_eq!(cache_key(&set, "sha256:1").unwrap(), first);

        fs::write(dir.path().join("a.py"), "print(2)").unwrap();
        let changed = cache_key(&set, "sha256:1").unwrap();
        assert_ne!(changed, first);
        assert_ne!(cache_key(&set, "sha256:2").unwrap(), changed);

        // A file left out (.pachignore) changes the key; so does a rename.
        let fewer = source(dir.path(), &["a.py"]);
        assert_ne!(cache_key(&fewer, "sha256:1").unwrap(), changed);
        fs::rename(dir.path().join("b.txt"), dir.path().join("c.txt")).unwrap();
        let renamed = source(dir.path(), &["a.py", "c.txt"]);
        assert_ne!(cache_key(&renamed, "sha256:1").unwrap(), changed);
    }

    #[test]
    fn path_and_content_boundaries_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ab"), "").unwrap();
        fs::write(dir.path().join("a"), "b").unwrap();
        let one = cache_key(&source(dir.path(), &["ab"]), "i").unwrap();
        let two = cache_key(&source(dir.path(), &["a"]), "i").unwrap();
        assert_ne!(one, two);
    }

    #[test]
    fn a_missing_source_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = cache_key(&source(dir.path(), &["gone.py"]), "i").unwrap_err();
        assert!(err.to_string().contains("gone.py"), "{err}");
    }

    #[test]
    fn names_are_engine_safe() {
        assert_eq!(name_safe("a b/c:d_e.f-g"), "a-b-c-d_e.f-g");
    }
}
