//! The datum cache: a datum that an earlier run processed successfully and
//! that has not changed since is skipped, and its output reused, as the
//! platform skips such a datum ("skipped" state) and processes only what
//! changed.
//!
//! A datum's key hashes what its output can depend on: the job's part (the
//! whole spec, the build cache key, so the source and the builder image, the
//! run image's id, the run phase's command, stdin and network) and the
//! datum's own part (each input's name, repo, matched path, and every file's
//! path and content). Stricter than the platform, which keeps skipping after
//! a spec update without `--reprocess`: locally, any change to the spec runs
//! the datums again.
//!
//! Entries live on the host, beside the logs (the outputs end up on the host
//! anyway, so this works the same with a remote engine): one folder per key
//! holding the datum's output tree. An entry is written whole into a
//! temporary folder and renamed into place, and only after the whole job
//! succeeded, so a failed or interrupted run is never served. The cache of a
//! scope is bounded in bytes, least recently used out first.
//!
//! Content hashes of input files are remembered by path, size, times and
//! inode (as git's index does), so a rerun reads only files that changed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::datum::Datum;
use crate::error::{IoContext, Result};
use crate::text::hex;

use super::cache::CacheOptions;

/// Bumped when the layout of an entry or the key changes.
const FORMAT: &str = "pachbuild datum cache v1";

/// Bytes of datum outputs kept per scope unless told otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// File name of the remembered content hashes, in the cache's root.
const HASHES_FILE: &str = "file-hashes.json";
/// Remembered hashes at most; beyond, only those used by the last run stay.
const MAX_REMEMBERED: usize = 200_000;
/// A file changed this recently may change again within the same time
/// stamp: its hash is not remembered.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The part of every datum's key that the job gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey(String);

/// What the job's datums depend on besides their own files.
#[derive(Debug, Clone, Copy)]
pub struct JobInputs<'a> {
    /// The spec, serialized (any change runs every datum again).
    pub spec_json: &'a str,
    /// The build cache key (source and builder image); empty without a build.
    pub build_key: &'a str,
    /// The id of the image the datums run in.
    pub run_image_id: &'a str,
    pub command: &'a [String],
    pub stdin: &'a [String],
    pub network: bool,
}

impl JobKey {
    pub fn new(job: &JobInputs<'_>) -> JobKey {
        let mut key = Sha256::new();
        key.update(FORMAT.as_bytes());
        for (name, value) in [
            ("spec", job.spec_json),
            ("build", job.build_key),
            ("run-image", job.run_image_id),
            ("network", if job.network { "on" } else { "off" }),
            // How datums are run: a harness that runs them differently
            // (isolation, retries) does not reuse what an older one made.
            ("worker", super::worker::WORKER_SCRIPT),
        ] {
            key.update(format!("\n{name}\0{}\0", value.len()).as_bytes());
            key.update(value.as_bytes());
        }
        for (name, list) in [("cmd", job.command), ("stdin", job.stdin)] {
            key.update(format!("\n{name}\0{}", list.len()).as_bytes());
            for item in list {
                key.update(format!("\0{}\0", item.len()).as_bytes());
                key.update(item.as_bytes());
            }
        }
        JobKey(hex(&key.finalize()))
    }
}

/// The key of one datum of a job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DatumKey(String);

impl DatumKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What is remembered of a file whose content was hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
    inode: u64,
    sha256: String,
}

/// Content hashes of input files, remembered across runs.
#[derive(Debug, Default)]
pub struct FileHashes {
    path: Option<PathBuf>,
    known: BTreeMap<PathBuf, Remembered>,
    used: BTreeMap<PathBuf, Remembered>,
    changed: bool,
}

impl FileHashes {
    /// Hashes remembered in `root` (none when the file is missing or
    /// unreadable: they are only a shortcut).
    pub fn load(root: &Path) -> FileHashes {
        let path = root.join(HASHES_FILE);
        let known = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        FileHashes {
            path: Some(path),
            known,
            ..FileHashes::default()
        }
    }

    /// The sha256 of `path`'s content, read only when the file changed since
    /// it was last hashed.
    pub fn hash(&mut self, path: &Path) -> Result<String> {
        let meta = std::fs::metadata(path).with_path("read", path)?;
        let stamp = Stamp::of(&meta);
        if let Some(r) = self.known.get(path) {
            if stamp.matches(r) {
                let r = r.clone();
                let sha256 = r.sha256.clone();
                self.used.insert(path.to_path_buf(), r);
                return Ok(sha256);
            }
        }
        let sha256 = hash_file(path)?;
        let recent = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_none_or(|age| age < RACY_WINDOW);
        if !recent {
            let r = Remembered {
                size: stamp.size,
                modified_ns: stamp.modified_ns,
                changed_ns: stamp.changed_ns,
                inode: stamp.inode,
                sha256: sha256.clone(),
            };
            self.known.insert(path.to_path_buf(), r.clone());
            self.used.insert(path.to_path_buf(), r);
            self.changed = true;
        }
        Ok(sha256)
    }

    /// Writes the hashes back when new ones were learnt (best effort: they
    /// are only a shortcut, and another run may write them at the same time).
    pub fn save(mut self) {
        let Some(path) = self.path.take() else { return };
        if !self.changed {
            return;
        }
        let known = if self.known.len() > MAX_REMEMBERED {
            std::mem::take(&mut self.used)
        } else {
            std::mem::take(&mut self.known)
        };
        let Ok(bytes) = serde_json::to_vec(&known) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write as _;
            if tmp.write_all(&bytes).is_ok() {
                let _ = tmp.persist(&path);
            }
        }
    }
}

/// Size, times and inode of a file.
struct Stamp {
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Stamp {
            size: meta.size(),
            modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
            changed_ns: ns(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
        }
    }

    fn matches(&self, r: &Remembered) -> bool {
        self.size == r.size
            && self.modified_ns == r.modified_ns
            && self.changed_ns == r.changed_ns
            && self.inode == r.inode
    }
}

fn hash_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_path("read", path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        crate::interrupt::check()?;
        let n = file.read(&mut buf).with_path("read", path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The key of `datum` in `job`: the job's part, then each input's name,
/// repo and matched path, and each file's path and content.
pub fn datum_key(job: &JobKey, datum: &Datum, hashes: &mut FileHashes) -> Result<DatumKey> {
    let mut key = Sha256::new();
    key.update(job.0.as_bytes());
    for part in &datum.parts {
        key.update(b"\ninput\0");
        for field in [&part.input_name, &part.repo, &part.matched] {
            key.update(format!("{}\0", field.len()).as_bytes());
            key.update(field.as_bytes());
        }
        for rel in &part.files {
            let name = rel.to_string_lossy();
            key.update(format!("\nfile\0{}\0", name.len()).as_bytes());
            key.update(name.as_bytes());
            match part.generated.get(rel) {
                Some(content) => key.update(Sha256::digest(content)),
                None => key.update(hashes.hash(&part.repo_dir.join(rel))?.as_bytes()),
            }
        }
    }
    Ok(DatumKey(hex(&key.finalize())))
}

/// The datum cache of one scope.
#[derive(Debug, Clone)]
pub struct DatumCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// An entry's own file beside its output tree.
const ENTRY_META: &str = "entry.json";
const ENTRY_OUT: &str = "out";

#[derive(Debug, Serialize, Deserialize)]
struct EntryMeta {
    bytes: u64,
    pipeline: String,
    datum: String,
    created: u64,
}

impl DatumCache {
    /// The cache of `scope` under `root`.
    pub fn new(root: &Path, scope: &str, max_bytes: u64) -> DatumCache {
        DatumCache {
            dir: root.join(scope_dir_name(scope)),
            max_bytes,
        }
    }

    fn entry_dir(&self, key: &DatumKey) -> PathBuf {
        self.dir.join(key.as_str())
    }

    /// The output tree of `key`, when an earlier run stored it. Marks the
    /// entry as just used.
    pub fn lookup(&self, key: &DatumKey) -> Option<PathBuf> {
        let entry = self.entry_dir(key);
        if !entry.join(ENTRY_META).is_file() {
            return None;
        }
        // The entry's time says when it was last used (eviction order).
        if let Ok(file) = std::fs::File::open(entry.join(ENTRY_META)) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(entry.join(ENTRY_OUT))
    }

    /// Stores a copy of `output` (a datum's output tree; it may be missing:
    /// the datum wrote nothing) as the entry of `key`. Another run storing
    /// the same key first wins: both outputs are the same datum's.
    pub fn store(&self, key: &DatumKey, output: &Path, pipeline: &str, datum: &str) -> Result<()> {
        let entry = self.entry_dir(key);
        if entry.join(ENTRY_META).is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).with_path("create folder", &self.dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&self.dir)
            .with_path("create a temporary folder in", &self.dir)?;
        let out = tmp.path().join(ENTRY_OUT);
        let bytes = if output.exists() {
            super::copy_dir(output, &out)?;
            tree_bytes(&out)
        } else {
            std::fs::create_dir(&out).with_path("create folder", &out)?;
            0
        };
        let meta = EntryMeta {
            bytes,
            pipeline: pipeline.to_string(),
            datum: datum.to_string(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let meta_path = tmp.path().join(ENTRY_META);
        std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap_or_default())
            .with_path("write", &meta_path)?;
        let made = tmp.keep();
        if std::fs::rename(&made, &entry).is_err() {
            // Stored by another run meanwhile.
            let _ = std::fs::remove_dir_all(&made);
        }
        Ok(())
    }

    /// Removes the least recently used entries until the scope holds at
    /// most its bound. Returns how many went.
    pub fn evict(&self) -> Result<usize> {
        let mut entries = list_entries(&self.dir)?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        entries.sort_by_key(|e| e.used);
        let mut removed = 0;
        for entry in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_dir_all(&entry.dir).is_ok() {
                total = total.saturating_sub(entry.bytes);
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Scope names are free text: the folder's name is made safe.
fn scope_dir_name(scope: &str) -> String {
    let safe = crate::text::replace_refused(
        scope,
        |c| c.is_ascii_alphanumeric() || "-_.".contains(c),
        '_',
    );
    if safe == scope && !safe.starts_with('.') && !safe.is_empty() {
        safe
    } else {
        format!(
            "{}-{}",
            safe.trim_start_matches('.'),
            &hex(&Sha256::digest(scope.as_bytes()))[..8]
        )
    }
}

struct Listed {
    dir: PathBuf,
    bytes: u64,
    used: SystemTime,
}

fn list_entries(dir: &Path) -> Result<Vec<Listed>> {
    let mut entries = Vec::new();
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
        Err(e) => return Err(e).with_path("read folder", dir),
    };
    for item in read {
        let item = item.with_path("read folder", dir)?;
        let meta_path = item.path().join(ENTRY_META);
        let Ok(bytes) = std::fs::read(&meta_path) else {
            continue;
        };
        let Ok(meta) = serde_json::from_slice::<EntryMeta>(&bytes) else {
            continue;
        };
        let used = std::fs::metadata(&meta_path)
            .and_then(|m| m.modified())
            .unwrap_or(UNIX_EPOCH);
        entries.push(Listed {
            dir: item.path(),
            bytes: meta.bytes,
            used,
        });
    }
    Ok(entries)
}

fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(here) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&here) else {
            continue;
        };
        for item in read.flatten() {
            match item.file_type() {
                Ok(t) if t.is_dir() => stack.push(item.path()),
                Ok(_) => total += item.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

/// Empties the datum cache of `scope`, or of every scope. Returns the
/// entries removed.
pub fn clear(root: &Path, scope: Option<&str>) -> Result<usize> {
    let scopes: Vec<PathBuf> = match scope {
        Some(scope) => vec![root.join(scope_dir_name(scope))],
        None => match std::fs::read_dir(root) {
            Ok(read) => read
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_path("read folder", root),
        },
    };
    let mut removed = 0;
    for dir in scopes {
        removed += list_entries(&dir)?.len();
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_path("remove", &dir),
        }
    }
    if scope.is_none() {
        let _ = std::fs::remove_file(root.join(HASHES_FILE));
    }
    Ok(removed)
}

/// The datum cache as one job uses it: the key of each datum it runs, and
/// the outputs found for those it skips.
#[derive(Debug)]
pub struct JobCache {
    cache: DatumCache,
    pipeline: String,
    keys: Keys,
    /// Outputs of unchanged datums, by datum index.
    pub hits: BTreeMap<usize, PathBuf>,
}

/// The key of each datum, by datum index: known, or being computed beside
/// the run (when nothing is looked up, only the storing needs them).
#[derive(Debug)]
enum Keys {
    Known(BTreeMap<usize, DatumKey>),
    Hashing(std::thread::JoinHandle<Result<BTreeMap<usize, DatumKey>>>),
}

impl JobCache {
    /// Keys the `selected` datums (index, datum); `None` when the options
    /// keep no datum cache. With `look_up`, finds the outputs of unchanged
    /// datums first; otherwise (a fresh build, `--no-cache`, `--reprocess`)
    /// the keys are computed while the job runs, for storing its outputs.
    pub fn open(
        options: &CacheOptions,
        job: JobKey,
        selected: &[(usize, &Datum)],
        pipeline: &str,
        look_up: bool,
    ) -> Result<Option<JobCache>> {
        let Some(root) = &options.datum_dir else {
            return Ok(None);
        };
        if options.max_entries == 0 {
            return Ok(None);
        }
        let cache = DatumCache::new(root, &options.scope, options.datum_max_bytes);
        let datums: Vec<(usize, Datum)> = selected
            .iter()
            .map(|(index, datum)| (*index, (*datum).clone()))
            .collect();
        let root = root.clone();
        let compute = move || -> Result<BTreeMap<usize, DatumKey>> {
            let mut hashes = FileHashes::load(&root);
            let mut keys = BTreeMap::new();
            for (index, datum) in &datums {
                keys.insert(*index, datum_key(&job, datum, &mut hashes)?);
            }
            hashes.save();
            Ok(keys)
        };
        let mut hits = BTreeMap::new();
        let keys = if look_up {
            let keys = compute()?;
            for (index, key) in &keys {
                if let Some(found) = cache.lookup(key) {
                    hits.insert(*index, found);
                }
            }
            Keys::Known(keys)
        } else {
            Keys::Hashing(std::thread::spawn(compute))
        };
        Ok(Some(JobCache {
            cache,
            pipeline: pipeline.to_string(),
            keys,
            hits,
        }))
    }

    /// After the job succeeded, before its outputs merge: stores the
    /// outputs of the datums that ran (`<datums_dir>/<index>/`), then puts a
    /// copy of each reused output in its place beside them. Returns
    /// warnings: a cache that cannot keep an output fails nothing.
    pub fn store_and_fill(self, ran: &[usize], datums_dir: &Path) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let keys = match self.keys {
            Keys::Known(keys) => Ok(keys),
            Keys::Hashing(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(crate::Error::Failed("hashing the inputs stopped".into()))),
        };
        match keys {
            Ok(keys) => {
                for index in ran {
                    let Some(key) = keys.get(index) else { continue };
                    let datum = index.to_string();
                    let stored =
                        self.cache
                            .store(key, &datums_dir.join(&datum), &self.pipeline, &datum);
                    if let Err(e) = stored {
                        warnings.push(format!("the datum cache did not keep an output: {e}"));
                    }
                }
                if !ran.is_empty() {
                    if let Err(e) = self.cache.evict() {
                        warnings.push(format!("the datum cache could not drop old entries: {e}"));
                    }
                }
            }
            Err(e) => warnings.push(format!("the datum cache kept nothing: {e}")),
        }
        for (index, found) in &self.hits {
            super::copy_dir(found, &datums_dir.join(index.to_string()))?;
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::DatumPart;

    fn job(spec: &str) -> JobKey {
        JobKey::new(&JobInputs {
            spec_json: spec,
            build_key: "b",
            run_image_id: "sha256:1",
            command: &["sh".into(), "/pfs/build/run.sh".into()],
            stdin: &[],
            network: false,
        })
    }

    fn datum_over(dir: &Path, files: &[&str]) -> Datum {
        Datum {
            parts: vec![DatumPart {
                input_name: "in".into(),
                repo: "in".into(),
                repo_dir: dir.to_path_buf(),
                matched: "/".into(),
                files: files.iter().map(PathBuf::from).collect(),
                generated: BTreeMap::new(),
            }],
        }
    }

    /// Sets a file's times an hour back, out of the racy window.
    fn age(path: &Path) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    #[test]
    fn the_key_follows_content_spec_and_image_not_times() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "one").unwrap();
        let datum = datum_over(dir.path(), &["a"]);
        let mut hashes = FileHashes::default();
        let first = datum_key(&job("{}"), &datum, &mut hashes).unwrap();
        age(&dir.path().join("a"));
        assert_eq!(datum_key(&job("{}"), &datum, &mut hashes).unwrap(), first);
        assert_ne!(datum_key(&job("{ }"), &datum, &mut hashes).unwrap(), first);
        std::fs::write(dir.path().join("a"), "two").unwrap();
        assert_ne!(datum_key(&job("{}"), &datum, &mut hashes).unwrap(), first);
        let other_image = JobKey::new(&JobInputs {
            run_image_id: "sha256:2",
            ..JobInputs {
                spec_json: "{}",
                build_key: "b",
                run_image_id: "",
                command: &["sh".into(), "/pfs/build/run.sh".into()],
                stdin: &[],
                network: false,
            }
        });
        std::fs::write(dir.path().join("a"), "one").unwrap();
        assert_ne!(datum_key(&other_image, &datum, &mut hashes).unwrap(), first);
        assert_eq!(datum_key(&job("{}"), &datum, &mut hashes).unwrap(), first);
    }

    #[test]
    fn remembered_hashes_are_used_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, "one").unwrap();
        age(&file);
        let mut hashes = FileHashes::load(dir.path());
        let one = hashes.hash(&file).unwrap();
        hashes.save();
        let mut hashes = FileHashes::load(dir.path());
        assert_eq!(hashes.known.len(), 1);
        assert_eq!(hashes.hash(&file).unwrap(), one);
        // Same size, new content and time: hashed again.
        std::fs::write(&file, "two").unwrap();
        assert_ne!(hashes.hash(&file).unwrap(), one);
    }

    #[test]
    fn a_file_changed_just_now_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, "one").unwrap();
        let mut hashes = FileHashes::load(dir.path());
        hashes.hash(&file).unwrap();
        assert!(hashes.known.is_empty());
    }

    #[test]
    fn entries_are_stored_whole_found_and_evicted_oldest_first() {
        let root = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir(out.path().join("sub")).unwrap();
        std::fs::write(out.path().join("sub/f"), vec![7u8; 600]).unwrap();
        std::os::unix::fs::symlink("sub/f", out.path().join("link")).unwrap();
        let cache = DatumCache::new(root.path(), "a scope/x", 1000);
        let (k1, k2) = (DatumKey("1".repeat(64)), DatumKey("2".repeat(64)));
        assert!(cache.lookup(&k1).is_none());
        cache.store(&k1, out.path(), "p", "d1").unwrap();
        let found = cache.lookup(&k1).unwrap();
        assert_eq!(std::fs::read(found.join("sub/f")).unwrap().len(), 600);
        assert_eq!(
            std::fs::read_link(found.join("link")).unwrap(),
            Path::new("sub/f")
        );
        // A datum that wrote nothing is an entry too.
        cache
            .store(&k2, &out.path().join("missing"), "p", "d2")
            .unwrap();
        assert!(std::fs::read_dir(cache.lookup(&k2).unwrap())
            .unwrap()
            .next()
            .is_none());
        let small = DatumCache::new(root.path(), "a scope/x", 100);
        let meta = small.entry_dir(&k1).join(ENTRY_META);
        std::fs::File::options()
            .write(true)
            .open(meta)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        assert_eq!(small.evict().unwrap(), 1);
        assert!(small.lookup(&k1).is_none());
        assert!(small.lookup(&k2).is_some());
        assert_eq!(clear(root.path(), Some("a scope/x")).unwrap(), 1);
        assert!(cache.lookup(&k2).is_none());
    }

    #[test]
    fn scope_folder_names_are_safe_and_distinct() {
        assert_eq!(scope_dir_name("default"), "default");
        assert_ne!(scope_dir_name("a/b"), scope_dir_name("a_b"));
        assert!(!scope_dir_name("..").starts_with('.'));
        assert!(!scope_dir_name("a/b").contains('/'));
    }
}
