//! Output trees: what datums leave in `/pfs/out`, how they merge into the
//! pipeline's output, and how an output compares with a fixture's `expected/`.
//!
//! Paths are relative (`a/b.txt`, no leading `/`). The platform keeps no
//! mode bits and no empty folders, so comparisons look at files only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::text::hex;

/// A file tree in memory, keyed by relative path.
pub type Tree = BTreeMap<PathBuf, Entry>;

/// One entry of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File { contents: Vec<u8>, executable: bool },
    Symlink(PathBuf),
}

impl Entry {
    /// A regular, non-executable file.
    pub fn file(contents: impl Into<Vec<u8>>) -> Self {
        Entry::File {
            contents: contents.into(),
            executable: false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Entry::Dir => "a folder",
            Entry::File { .. } => "a file",
            Entry::Symlink(_) => "a symlink",
        }
    }
}

/// The merged output of all datums, with what a user should know about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub tree: Tree,
    pub warnings: Vec<String>,
}

/// Checks that `path` is a plain relative path (no `..`, no root, not
/// empty), so that writing it cannot escape the destination.
pub fn check_relative(path: &Path) -> Result<()> {
    let mut any = false;
    for c in path.components() {
        match c {
            Component::Normal(_) => any = true,
            _ => {
                return Err(Error::Failed(format!(
                    "refusing path `{}`: only plain relative paths are allowed (no `..`, `.` or leading `/`)",
                    path.display()
                )))
            }
        }
    }
    if any {
        Ok(())
    } else {
        Err(Error::Failed("refusing an empty path".into()))
    }
}

/// Adds a `Dir` entry for every parent of every entry, so that a clash
/// between a file and a folder always shows up at one path.
pub fn with_parents(tree: Tree) -> Result<Tree> {
    let mut out = Tree::new();
    for (path, entry) in tree {
        for parent in path.ancestors().skip(1) {
            if parent.as_os_str().is_empty() {
                break;
            }
            match out.get(parent) {
                None => {
                    out.insert(parent.to_path_buf(), Entry::Dir);
                }
                Some(Entry::Dir) => {}
                Some(other) => {
                    return Err(Error::Failed(format!(
                        "`{}` is {} but `{}` is beneath it",
                        parent.display(),
                        other.kind(),
                        path.display()
                    )))
                }
            }
        }
        match (out.get(&path), &entry) {
            (Some(Entry::Dir), Entry::Dir) => {}
            (Some(Entry::Dir), other) => {
                return Err(Error::Failed(format!(
                    "`{}` is {} but also has entries beneath it",
                    path.display(),
                    other.kind()
                )))
            }
            _ => {
                out.insert(path, entry);
            }
        }
    }
    Ok(out)
}

/// Merges the outputs of datums, given in datum order with a label each.
///
/// Two datums writing the same file get the files appended in the order
/// given, with a warning naming the datums (the platform appends them in no
/// particular order); `strict` makes that an error. A file and a folder at
/// one path, or a clash involving a symlink, is always an error.
pub fn merge(outputs: Vec<(String, Tree)>, strict: bool) -> Result<Merged> {
    let mut tree = Tree::new();
    let mut writers = Writers::default();

    for (label, datum_tree) in outputs {
        let datum_tree = with_parents(datum_tree)
            .map_err(|e| Error::Failed(format!("output of datum {label}: {e}")))?;
        for (path, entry) in datum_tree {
            match (tree.get_mut(&path), entry) {
                (None, entry) => {
                    tree.insert(path.clone(), entry);
                }
                (Some(Entry::Dir), Entry::Dir) => continue,
                (
                    Some(Entry::File {
                        contents,
                        executable,
                    }),
                    Entry::File {
                        contents: more,
                        executable: more_exec,
                    },
                ) => {
                    if strict {
                        return Err(writers.both_write(&path, &label));
                    }
                    contents.extend_from_slice(&more);
                    *executable |= more_exec;
                }
                (Some(existing), entry) => {
                    return Err(writers.kinds_clash(&path, existing.kind(), &label, entry.kind()))
                }
            }
            writers.record(path, &label);
        }
    }
    let warnings = writers.warnings();
    Ok(Merged { tree, warnings })
}

/// The datums that wrote each output path, in order (two or more: a
/// clash), and what a clash says: the same for [`merge`] and [`merge_dirs`].
#[derive(Debug, Default)]
struct Writers(BTreeMap<PathBuf, Vec<String>>);

impl Writers {
    fn record(&mut self, path: PathBuf, label: &str) {
        self.0.entry(path).or_default().push(label.to_string());
    }

    fn first(&self, path: &Path) -> &str {
        self.0
            .get(path)
            .and_then(|w| w.first())
            .map_or("", String::as_str)
    }

    /// Two datums write one file, with `--strict-outputs`.
    fn both_write(&self, path: &Path, label: &str) -> Error {
        Error::Failed(format!(
            "datums {} and {label} both write output file `{}` (strict mode: \
             the platform would append them in no particular order)",
            self.first(path),
            path.display()
        ))
    }

    /// A file and a folder, or a symlink and anything, at one path.
    fn kinds_clash(&self, path: &Path, existing: &str, label: &str, new: &str) -> Error {
        Error::Failed(format!(
            "datum {} writes `{}` as {existing} and datum {label} as {new}; outputs cannot be merged",
            self.first(path),
            path.display()
        ))
    }

    /// A warning for each file that datums appended to.
    fn warnings(self) -> Vec<String> {
        self.0
            .into_iter()
            .filter(|(_, w)| w.len() > 1)
            .map(|(path, w)| {
                format!(
                    "output file `{}` is written by datums {}: appended in that order \
                     (the platform appends in no particular order; --strict-outputs makes this an error)",
                    path.display(),
                    w.join(" and ")
                )
            })
            .collect()
    }
}

/// Writes `tree` under `dest` (created if needed). Refuses paths that could
/// escape `dest`, including writing through a symlink.
pub fn write_tree(tree: &Tree, dest: &Path) -> Result<()> {
    for path in tree.keys() {
        check_relative(path)?;
    }
    // A path beneath a symlink entry would be written wherever it points.
    for (path, entry) in tree {
        if let Entry::Symlink(_) = entry {
            if let Some((inner, _)) = tree
                .range(path.clone()..)
                .skip(1)
                .take_while(|(p, _)| p.starts_with(path))
                .next()
            {
                return Err(Error::Failed(format!(
                    "refusing `{}`: it is beneath the symlink `{}`",
                    inner.display(),
                    path.display()
                )));
            }
        }
    }
    fs::create_dir_all(dest).with_path("create folder", dest)?;
    // Symlinks last, so that nothing is written through one.
    let (links, rest): (Vec<_>, Vec<_>) = tree
        .iter()
        .partition(|(_, e)| matches!(e, Entry::Symlink(_)));
    for (path, entry) in rest.into_iter().chain(links) {
        let target = dest.join(path);
        ensure_no_symlink_parent(dest, path)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).with_path("create folder", parent)?;
        }
        match entry {
            Entry::Dir => {
                fs::create_dir_all(&target).with_path("create folder", &target)?;
            }
            Entry::File {
                contents,
                executable,
            } => {
                remove_if_symlink(&target)?;
                fs::write(&target, contents).with_path("write", &target)?;
                set_mode(&target, if *executable { 0o755 } else { 0o644 })?;
            }
            Entry::Symlink(to) => {
                remove_if_symlink(&target)?;
                make_symlink(to, &target)?;
            }
        }
    }
    Ok(())
}

/// Refuses a path whose parent, under `dest`, is a symlink: writing it would
/// land wherever the link points.
pub(crate) fn ensure_no_symlink_parent(dest: &Path, path: &Path) -> Result<()> {
    let mut at = dest.to_path_buf();
    let parents: Vec<_> = path.components().collect();
    for c in parents.iter().take(parents.len().saturating_sub(1)) {
        at.push(c);
        if let Ok(m) = fs::symlink_metadata(&at) {
            if m.file_type().is_symlink() {
                return Err(Error::Failed(format!(
                    "refusing to write `{}`: {} is a symlink",
                    path.display(),
                    at.display()
                )));
            }
        }
    }
    Ok(())
}

/// Removes `path` when it is a symlink (so that what is written there next
/// lands at `path`, not where the link points).
pub(crate) fn remove_if_symlink(path: &Path) -> Result<()> {
    if let Ok(m) = fs::symlink_metadata(path) {
        if m.file_type().is_symlink() {
            fs::remove_file(path).with_path("remove", path)?;
        }
    }
    Ok(())
}

/// Gives a written file the modes outputs get: 0644, or 0755 when executable.
pub(crate) fn set_file_mode(path: &Path, executable: bool) -> Result<()> {
    set_mode(path, if executable { 0o755 } else { 0o644 })
}

/// Puts a symlink at `at`, replacing a symlink already there.
pub(crate) fn replace_with_symlink(to: &Path, at: &Path) -> Result<()> {
    remove_if_symlink(at)?;
    make_symlink(to, at)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_path("set mode of", path)
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn make_symlink(to: &Path, at: &Path) -> Result<()> {
    std::os::unix::fs::symlink(to, at).with_path("create symlink", at)
}

#[cfg(not(unix))]
fn make_symlink(_to: &Path, at: &Path) -> Result<()> {
    Err(Error::Failed(format!(
        "cannot create symlink {}: not supported on this system",
        at.display()
    )))
}

/// Reads the folder `dir` into a tree (not following symlinks). The folder
/// itself is not an entry.
pub fn read_tree(dir: &Path) -> Result<Tree> {
    let mut tree = Tree::new();
    let meta = fs::metadata(dir).with_path("read", dir)?;
    if !meta.is_dir() {
        return Err(Error::Failed(format!("{} is not a folder", dir.display())));
    }
    read_into(dir, Path::new(""), &mut tree)?;
    Ok(tree)
}

fn read_into(dir: &Path, rel: &Path, tree: &mut Tree) -> Result<()> {
    for entry in fs::read_dir(dir).with_path("read folder", dir)? {
        let entry = entry.with_path("read folder", dir)?;
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let meta = fs::symlink_metadata(&path).with_path("read", &path)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let to = fs::read_link(&path).with_path("read symlink", &path)?;
            tree.insert(rel, Entry::Symlink(to));
        } else if ft.is_dir() {
            tree.insert(rel.clone(), Entry::Dir);
            read_into(&path, &rel, tree)?;
        } else if ft.is_file() {
            let contents = fs::read(&path).with_path("read", &path)?;
            tree.insert(
                rel,
                Entry::File {
                    contents,
                    executable: is_executable(&meta),
                },
            );
        } else {
            return Err(Error::Failed(format!(
                "{}: not a file, folder or symlink (a socket, fifo or device cannot be output)",
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

/// Lines of unified diff shown per file before cutting it short.
const MAX_DIFF_LINES: usize = 200;

/// How an output differs from what was expected: the files missing from
/// it, the files it has that were not expected, and how each file present
/// in both differs. Prints as the readable report (`Display`); serializes
/// for machine-readable results.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirDiff {
    /// Expected, not in the output.
    pub missing: Vec<PathBuf>,
    /// In the output, not expected.
    pub extra: Vec<PathBuf>,
    /// In both, with other contents (or of another kind).
    pub different: Vec<FileDiff>,
}

/// One file present on both sides whose contents differ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    pub path: PathBuf,
    #[serde(flatten)]
    pub difference: Difference,
}

/// How one file differs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Difference {
    /// Both sides are text: a unified diff (`expected/` → `actual/`, 3
    /// lines of context), cut after [`MAX_DIFF_LINES`] lines.
    Text { unified: String },
    /// Either side is binary (or too large to show): sizes and SHA-256 digests.
    Binary {
        expected_bytes: u64,
        actual_bytes: u64,
        expected_sha256: String,
        actual_sha256: String,
        /// Where the bytes first differ, when both were read.
        #[serde(skip_serializing_if = "Option::is_none")]
        first_difference: Option<String>,
    },
    /// A file on one side, a symlink on the other, or two symlinks to
    /// different targets.
    Kind { expected: String, actual: String },
}

impl DirDiff {
    /// The paths only one side has; the caller compares the others.
    fn by_paths<A, B>(expected: &BTreeMap<PathBuf, A>, actual: &BTreeMap<PathBuf, B>) -> DirDiff {
        DirDiff {
            missing: expected
                .keys()
                .filter(|p| !actual.contains_key(*p))
                .cloned()
                .collect(),
            extra: actual
                .keys()
                .filter(|p| !expected.contains_key(*p))
                .cloned()
                .collect(),
            different: Vec::new(),
        }
    }

    /// No difference at all.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.different.is_empty()
    }

    /// One line: `2 missing, 1 extra, 3 different`.
    pub fn counts(&self) -> String {
        format!(
            "{} missing, {} extra, {} different",
            self.missing.len(),
            self.extra.len(),
            self.different.len()
        )
    }
}

impl std::fmt::Display for DirDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut report = String::new();
        if !self.missing.is_empty() {
            let _ = writeln!(report, "missing files (expected, not in the output):");
            for p in &self.missing {
                let _ = writeln!(report, "  {}", p.display());
            }
        }
        if !self.extra.is_empty() {
            let _ = writeln!(report, "extra files (in the output, not expected):");
            for p in &self.extra {
                let _ = writeln!(report, "  {}", p.display());
            }
        }
        for file in &self.different {
            let shown = file.path.display();
            match &file.difference {
                Difference::Text { unified } => {
                    let _ = writeln!(report, "differs: {shown}");
                    for line in unified.lines() {
                        let _ = writeln!(report, "  {line}");
                    }
                }
                Difference::Binary {
                    expected_bytes,
                    actual_bytes,
                    expected_sha256,
                    actual_sha256,
                    first_difference,
                } => {
                    let short = |d: &str| d.chars().take(16).collect::<String>();
                    let _ = write!(
                        report,
                        "differs: {shown} (binary): expected {expected_bytes} bytes (sha256 {}), got {actual_bytes} bytes (sha256 {})",
                        short(expected_sha256),
                        short(actual_sha256)
                    );
                    if let Some(first) = first_difference {
                        let _ = write!(report, "; {first}");
                    }
                    report.push('\n');
                }
                Difference::Kind { expected, actual } => {
                    let _ = writeln!(
                        report,
                        "differs: {shown}: expected {expected}, got {actual}"
                    );
                }
            }
        }
        f.write_str(report.trim_end())
    }
}

/// Compares an output with what was expected. `None` when they hold the
/// same files with the same bytes; otherwise a report listing missing and
/// extra files and how each differing file differs. Folders and the
/// executable bit are ignored: the platform keeps neither empty folders nor
/// mode bits, so a fixture cannot rely on them.
pub fn diff(expected: &Tree, actual: &Tree) -> Option<String> {
    let diff = diff_trees(expected, actual);
    (!diff.is_empty()).then(|| diff.to_string())
}

/// [`diff`], as a [`DirDiff`].
pub fn diff_trees(expected: &Tree, actual: &Tree) -> DirDiff {
    let files = |t: &Tree| -> BTreeMap<PathBuf, Entry> {
        t.iter()
            .filter(|(_, e)| !matches!(e, Entry::Dir))
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    };
    let expected = files(expected);
    let actual = files(actual);
    let mut diff = DirDiff::by_paths(&expected, &actual);
    for (path, want) in &expected {
        let Some(got) = actual.get(path) else {
            continue;
        };
        if let Some(difference) = diff_entry(path, want, got) {
            diff.different.push(FileDiff {
                path: path.clone(),
                difference,
            });
        }
    }
    diff
}

/// Files larger than this are compared by streaming and reported by size
/// and digest, never loaded whole.
const INLINE_LIMIT: u64 = 1024 * 1024;

/// [`diff`] for two folders on disk (`expected/` and an output), reading
/// files through a small buffer: memory does not grow with the output.
pub fn diff_dirs(expected: &Path, actual: &Path) -> Result<Option<String>> {
    let diff = compare_dirs(expected, actual)?;
    Ok((!diff.is_empty()).then(|| diff.to_string()))
}

/// [`diff_dirs`], as a [`DirDiff`] (empty when the folders hold the same
/// files). An absent folder is an empty tree.
pub fn compare_dirs(expected: &Path, actual: &Path) -> Result<DirDiff> {
    let want = list_leaves(expected)?;
    let got = list_leaves(actual)?;
    let mut diff = DirDiff::by_paths(&want, &got);
    for (path, w) in &want {
        let Some(g) = got.get(path) else { continue };
        let (a, b) = (expected.join(path), actual.join(path));
        let difference = match (w, g) {
            (Leaf::File(la), Leaf::File(lb)) => {
                if la == lb && same_contents(&a, &b)? {
                    continue;
                }
                if *la <= INLINE_LIMIT && *lb <= INLINE_LIMIT {
                    let read = |p: &Path| fs::read(p).with_path("read", p);
                    diff_entry(path, &Entry::file(read(&a)?), &Entry::file(read(&b)?))
                } else {
                    Some(Difference::Binary {
                        expected_bytes: *la,
                        actual_bytes: *lb,
                        expected_sha256: file_digest(&a)?,
                        actual_sha256: file_digest(&b)?,
                        first_difference: None,
                    })
                }
            }
            (w, g) => diff_entry(path, &w.as_entry(), &g.as_entry()),
        };
        if let Some(difference) = difference {
            diff.different.push(FileDiff {
                path: path.clone(),
                difference,
            });
        }
    }
    Ok(diff)
}

/// Copies the folder `from` to `to` (which must not exist): files and
/// symlinks, modes not kept.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    crate::pipeline::copy_dir(from, to)
}

/// A file or symlink of a folder on disk, without its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    File(u64),
    Symlink(PathBuf),
}

impl Leaf {
    fn as_entry(&self) -> Entry {
        match self {
            Leaf::File(_) => Entry::file(Vec::new()),
            Leaf::Symlink(to) => Entry::Symlink(to.clone()),
        }
    }
}

/// Every file and symlink under `dir` (folders are not compared).
fn list_leaves(dir: &Path) -> Result<BTreeMap<PathBuf, Leaf>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for entry in fs::read_dir(&here).with_path("read folder", &here)? {
            let entry = entry.with_path("read folder", &here)?;
            let rel = rel.join(entry.file_name());
            let meta = entry.metadata().with_path("read", entry.path())?;
            if meta.file_type().is_symlink() {
                let to = fs::read_link(entry.path()).with_path("read symlink", entry.path())?;
                out.insert(rel, Leaf::Symlink(to));
            } else if meta.is_dir() {
                stack.push(rel);
            } else {
                out.insert(rel, Leaf::File(meta.len()));
            }
        }
    }
    Ok(out)
}

fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    use std::io::Read;
    let open = |p: &Path| fs::File::open(p).with_path("read", p);
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba).with_path("read", a)?;
        let nb = read_full(&mut fb, &mut bb).with_path("read", b)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }

    fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

fn file_digest(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = fs::File::open(path).with_path("read", path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_path("read", path)?;
    Ok(hex(&hasher.finalize()))
}

/// The outcome of [`merge_dirs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedDirs {
    pub files: usize,
    pub warnings: Vec<String>,
}

/// [`merge`] on disk: moves each datum's output folder (in datum order,
/// with a label each) into `dest`, appending files that two datums write,
/// with the same warnings and errors. The datum folders are consumed.
pub fn merge_dirs(outputs: &[(String, PathBuf)], dest: &Path, strict: bool) -> Result<MergedDirs> {
    fs::create_dir_all(dest).with_path("create folder", dest)?;
    let mut writers = Writers::default();
    let mut files = 0;
    for (label, dir) in outputs {
        if !dir.exists() {
            continue;
        }
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let here = dir.join(&rel);
            let mut names: Vec<_> = fs::read_dir(&here)
                .with_path("read folder", &here)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .with_path("read folder", &here)?;
            names.sort();
            for name in names {
                crate::interrupt::check()?;
                let rel = rel.join(name);
                let (src, to) = (dir.join(&rel), dest.join(&rel));
                let new_kind = leaf_kind(&src)?.unwrap_or("a file");
                let old_kind = leaf_kind(&to)?;
                match (old_kind, new_kind) {
                    (None, "a folder") => {
                        fs::create_dir(&to).with_path("create folder", &to)?;
                        stack.push(rel);
                        continue;
                    }
                    (Some("a folder"), "a folder") => {
                        stack.push(rel);
                        continue;
                    }
                    (None, "a symlink") => {
                        let target = fs::read_link(&src).with_path("read symlink", &src)?;
                        make_symlink(&target, &to)?;
                    }
                    (None, _) => {
                        move_file(&src, &to)?;
                        files += 1;
                    }
                    (Some("a file"), "a file") => {
                        if strict {
                            return Err(writers.both_write(&rel, label));
                        }
                        append_file(&src, &to)?;
                    }
                    (Some(existing), new) => {
                        return Err(writers.kinds_clash(&rel, existing, label, new))
                    }
                }
                writers.record(rel, label);
            }
        }
    }
    let warnings = writers.warnings();
    Ok(MergedDirs { files, warnings })
}

fn leaf_kind(path: &Path) -> Result<Option<&'static str>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(Some("a symlink")),
        Ok(m) if m.is_dir() => Ok(Some("a folder")),
        Ok(_) => Ok(Some("a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

fn move_file(src: &Path, to: &Path) -> Result<()> {
    if fs::rename(src, to).is_ok() {
        return Ok(());
    }
    // Another file system: copy (modes come along), then drop the source.
    fs::copy(src, to).with_path("write", to)?;
    fs::remove_file(src).with_path("remove", src)
}

fn append_file(src: &Path, to: &Path) -> Result<()> {
    let mut from = fs::File::open(src).with_path("read", src)?;
    let mut into = fs::OpenOptions::new()
        .append(true)
        .open(to)
        .with_path("append to", to)?;
    std::io::copy(&mut from, &mut into).with_path("append to", to)?;
    let exec =
        |p: &Path| -> Result<bool> { Ok(is_executable(&fs::metadata(p).with_path("read", p)?)) };
    if exec(src)? && !exec(to)? {
        set_mode(to, 0o755)?;
    }
    Ok(())
}

fn diff_entry(path: &Path, want: &Entry, got: &Entry) -> Option<Difference> {
    match (want, got) {
        (Entry::File { contents: a, .. }, Entry::File { contents: b, .. }) => {
            if a == b {
                return None;
            }
            match (as_text(a), as_text(b)) {
                (Some(a), Some(b)) => Some(Difference::Text {
                    unified: text_diff(path, a, b),
                }),
                _ => Some(Difference::Binary {
                    expected_bytes: a.len() as u64,
                    actual_bytes: b.len() as u64,
                    expected_sha256: bytes_digest(a),
                    actual_sha256: bytes_digest(b),
                    first_difference: Some(first_difference(a, b)),
                }),
            }
        }
        (Entry::Symlink(a), Entry::Symlink(b)) if a == b => None,
        _ => Some(Difference::Kind {
            expected: describe(want),
            actual: describe(got),
        }),
    }
}

fn bytes_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

fn describe(e: &Entry) -> String {
    match e {
        Entry::Symlink(to) => format!("a symlink to `{}`", to.display()),
        other => other.kind().to_string(),
    }
}

fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(
            "first difference at byte {i} (expected 0x{:02x}, got 0x{:02x})",
            a[i], b[i]
        ),
        None if a.len() < b.len() => format!(
            "the output has {} extra bytes after the expected {}",
            b.len() - a.len(),
            a.len()
        ),
        None => format!("the output stops after {} of {} bytes", b.len(), a.len()),
    }
}

/// A unified diff of two texts, cut after [`MAX_DIFF_LINES`] lines.
fn text_diff(path: &Path, a: &str, b: &str) -> String {
    let shown = path.display().to_string();
    let diff = similar::TextDiff::from_lines(a, b);
    let body = diff
        .unified_diff()
        .context_radius(3)
        .missing_newline_hint(true)
        .header(&format!("expected/{shown}"), &format!("actual/{shown}"))
        .to_string();
    let lines: Vec<&str> = body.lines().collect();
    let mut out = String::new();
    for line in lines.iter().take(MAX_DIFF_LINES) {
        let _ = writeln!(out, "{line}");
    }
    if lines.len() > MAX_DIFF_LINES {
        let _ = writeln!(out, "... {} more diff lines", lines.len() - MAX_DIFF_LINES);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, Entry)]) -> Tree {
        entries
            .iter()
            .map(|(p, e)| (PathBuf::from(p), e.clone()))
            .collect()
    }

    fn contents(t: &Tree, p: &str) -> Vec<u8> {
        match &t[Path::new(p)] {
            Entry::File { contents, .. } => contents.clone(),
            other => panic!("{p} is {other:?}"),
        }
    }

    #[test]
    fn merge_unions_and_adds_parents() {
        let m = merge(
            vec![
                ("d1".into(), tree(&[("a/x", Entry::file("1"))])),
                (
                    "d2".into(),
                    tree(&[("a/y", Entry::file("2")), ("b", Entry::file("3"))]),
                ),
            ],
            false,
        )
        .unwrap();
        assert!(m.warnings.is_empty());
        assert_eq!(
            m.tree
                .keys()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
            ["a", "a/x", "a/y", "b"]
        );
        assert_eq!(m.tree[Path::new("a")], Entry::Dir);
    }

    #[test]
    fn merge_appends_same_file_in_order_and_warns() {
        let outputs = vec![
            ("d1".into(), tree(&[("n", Entry::file("one\n"))])),
            ("d2".into(), tree(&[("n", Entry::file("two\n"))])),
            ("d3".into(), tree(&[("n", Entry::file("three\n"))])),
        ];
        let m = merge(outputs.clone(), false).unwrap();
        assert_eq!(contents(&m.tree, "n"), b"one\ntwo\nthree\n");
        assert_eq!(m.warnings.len(), 1);
        let w = &m.warnings[0];
        assert!(
            w.contains("`n`") && w.contains("d1") && w.contains("d2"),
            "{w}"
        );

        let e = merge(outputs, true).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("d1") && text.contains("d2") && text.contains("`n`"),
            "{text}"
        );
        assert_eq!(e.exit_code(), crate::error::exit::FAILED);
    }

    #[test]
    fn merge_refuses_file_folder_clash() {
        for strict in [false, true] {
            let e = merge(
                vec![
                    ("d1".into(), tree(&[("a", Entry::file("x"))])),
                    ("d2".into(), tree(&[("a/b", Entry::file("y"))])),
                ],
                strict,
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("d1") && e.contains("d2") && e.contains("`a`"),
                "{e}"
            );
        }
        assert!(merge(
            vec![
                ("d1".into(), tree(&[("a", Entry::Symlink("x".into()))])),
                ("d2".into(), tree(&[("a", Entry::file("y"))])),
            ],
            false
        )
        .is_err());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let t = with_parents(tree(&[
            ("a/b/c.txt", Entry::file("c")),
            (
                "run.sh",
                Entry::File {
                    contents: b"#!/bin/sh\n".to_vec(),
                    executable: true,
                },
            ),
            ("empty", Entry::Dir),
            ("link", Entry::Symlink("a/b/c.txt".into())),
        ]))
        .unwrap();
        write_tree(&t, dir.path()).unwrap();
        let back = read_tree(dir.path()).unwrap();
        if cfg!(unix) {
            assert_eq!(back, t);
        }
    }

    #[test]
    fn write_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", "./x", ""] {
            let t = tree(&[(bad, Entry::file("x"))]);
            assert!(write_tree(&t, &dir.path().join("d")).is_err(), "{bad}");
        }
        let t = tree(&[
            ("l", Entry::Symlink("/tmp".into())),
            ("l/x", Entry::file("x")),
        ]);
        assert!(write_tree(&t, &dir.path().join("e")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn write_does_not_follow_existing_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("l")).unwrap();
        let t = tree(&[("l/x", Entry::file("x"))]);
        assert!(write_tree(&t, &dest).is_err());
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn diff_equal_ignores_dirs_and_modes() {
        let a = tree(&[("d", Entry::Dir), ("d/x", Entry::file("1"))]);
        let b = tree(&[(
            "d/x",
            Entry::File {
                contents: b"1".to_vec(),
                executable: true,
            },
        )]);
        assert_eq!(diff(&a, &b), None);
    }

    #[test]
    fn diff_reports_missing_extra_text_and_binary() {
        let want = tree(&[
            ("gone", Entry::file("g")),
            ("t.txt", Entry::file("a\nb\nc\n")),
            ("bin", Entry::file(vec![0u8, 1, 2, 3])),
        ]);
        let got = tree(&[
            ("new", Entry::file("n")),
            ("t.txt", Entry::file("a\nB\nc\n")),
            ("bin", Entry::file(vec![0u8, 1, 9])),
        ]);
        let report = diff(&want, &got).unwrap();
        assert!(
            report.contains("missing files") && report.contains("  gone"),
            "{report}"
        );
        assert!(
            report.contains("extra files") && report.contains("  new"),
            "{report}"
        );
        assert!(report.contains("-b") && report.contains("+B"), "{report}");
        assert!(report.contains("expected/t.txt"), "{report}");
        assert!(
            report.contains("differs: bin (binary): expected 4 bytes (sha256 ")
                && report.contains("got 3 bytes (sha256 ")
                && report.contains("byte 2"),
            "{report}"
        );
        let structured = diff_trees(&want, &got);
        assert_eq!(structured.missing, [PathBuf::from("gone")]);
        assert_eq!(structured.extra, [PathBuf::from("new")]);
        assert_eq!(structured.different.len(), 2);
        assert_eq!(structured.counts(), "1 missing, 1 extra, 2 different");
        match &structured.different[0].difference {
            Difference::Binary {
                expected_sha256,
                actual_sha256,
                ..
            } => {
                // sha256 of 00 01 02 03.
                assert!(expected_sha256.starts_with("054edec1d0211f62"));
                assert_eq!(actual_sha256.len(), 64);
            }
            other => panic!("{other:?}"),
        }
        let json = serde_json::to_value(&structured).unwrap();
        assert_eq!(json["different"][1]["kind"], "text");
        assert!(json["different"][1]["unified"]
            .as_str()
            .unwrap()
            .contains("+B"));
        let prefix = diff(
            &tree(&[("b", Entry::file(vec![0u8, 1]))]),
            &tree(&[("b", Entry::file(vec![0u8, 1, 2]))]),
        )
        .unwrap();
        assert!(prefix.contains("1 extra bytes"), "{prefix}");
    }

    fn datum_dir(root: &Path, name: &str, files: &[(&str, &str)]) -> (String, PathBuf) {
        let dir = root.join(name);
        for (path, text) in files {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        (name.to_string(), dir)
    }

    #[test]
    fn merging_on_disk_moves_appends_in_order_and_warns() {
        let root = tempfile::tempdir().unwrap();
        let outputs = vec![
            datum_dir(root.path(), "d1", &[("a/x", "1"), ("all", "one\n")]),
            datum_dir(root.path(), "d2", &[("b", "2"), ("all", "two\n")]),
        ];
        let dest = root.path().join("merged");
        let merged = merge_dirs(&outputs, &dest, false).unwrap();
        assert_eq!(merged.files, 3);
        assert_eq!(fs::read_to_string(dest.join("all")).unwrap(), "one\ntwo\n");
        assert_eq!(fs::read_to_string(dest.join("a/x")).unwrap(), "1");
        assert_eq!(merged.warnings.len(), 1);
        assert!(
            merged.warnings[0].contains("`all`") && merged.warnings[0].contains("d1 and d2"),
            "{:?}",
            merged.warnings
        );
        // The same result as merging in memory.
        let in_memory = merge(
            vec![
                (
                    "d1".into(),
                    tree(&[("a/x", Entry::file("1")), ("all", Entry::file("one\n"))]),
                ),
                (
                    "d2".into(),
                    tree(&[("b", Entry::file("2")), ("all", Entry::file("two\n"))]),
                ),
            ],
            false,
        )
        .unwrap();
        assert_eq!(read_tree(&dest).unwrap(), in_memory.tree);
        assert_eq!(merged.warnings, in_memory.warnings);
    }

    #[test]
    fn merging_on_disk_refuses_clashes_and_strict_overlaps() {
        let root = tempfile::tempdir().unwrap();
        let outputs = vec![
            datum_dir(root.path(), "d1", &[("p", "file")]),
            datum_dir(root.path(), "d2", &[("p/inner", "x")]),
        ];
        let err = merge_dirs(&outputs, &root.path().join("m1"), false).unwrap_err();
        assert!(err.to_string().contains("cannot be merged"), "{err}");
        let outputs = vec![
            datum_dir(root.path(), "e1", &[("same", "1")]),
            datum_dir(root.path(), "e2", &[("same", "2")]),
        ];
        let err = merge_dirs(&outputs, &root.path().join("m2"), true).unwrap_err();
        assert!(err.to_string().contains("strict mode"), "{err}");
    }

    #[test]
    fn the_text_report_reads_as_before() {
        let want = tree(&[("t.txt", Entry::file("a\nb\nc\n"))]);
        let got = tree(&[("t.txt", Entry::file("a\nB\nc\n"))]);
        assert_eq!(
            diff(&want, &got).unwrap(),
            "differs: t.txt\n  --- expected/t.txt\n  +++ actual/t.txt\n  @@ -1,3 +1,3 @@\n   a\n  -b\n  +B\n   c"
        );
        let link = tree(&[("l", Entry::Symlink("x".into()))]);
        assert_eq!(
            diff(&want, &link).unwrap(),
            "missing files (expected, not in the output):\n  t.txt\nextra files (in the output, not expected):\n  l"
        );
        let file = tree(&[("l", Entry::file("x"))]);
        assert_eq!(
            diff(&link, &file).unwrap(),
            "differs: l: expected a symlink to `x`, got a file"
        );
    }

    #[test]
    fn diffing_folders_reads_from_disk() {
        let root = tempfile::tempdir().unwrap();
        let (_, want) = datum_dir(root.path(), "want", &[("a.txt", "a\nb\n"), ("gone", "g")]);
        let (_, got) = datum_dir(root.path(), "got", &[("a.txt", "a\nB\n"), ("new", "n")]);
        fs::create_dir_all(got.join("empty-dir")).unwrap();
        let report = diff_dirs(&want, &got).unwrap().unwrap();
        assert!(
            report.contains("missing files") && report.contains("  gone"),
            "{report}"
        );
        assert!(
            report.contains("extra files") && report.contains("  new"),
            "{report}"
        );
        assert!(report.contains("-b") && report.contains("+B"), "{report}");
        assert_eq!(diff_dirs(&want, &want).unwrap(), None);
        // Large files: compared by streaming, reported by size and digest.
        let big = vec![7u8; (INLINE_LIMIT + 10) as usize];
        let mut other = big.clone();
        *other.last_mut().unwrap() = 8;
        fs::write(want.join("big"), &big).unwrap();
        fs::write(got.join("big"), &other).unwrap();
        let report = diff_dirs(&want, &got).unwrap().unwrap();
        assert!(report.contains("differs: big (binary)"), "{report}");
        assert!(!report.contains("first difference"), "{report}");
        // An absent expected/ is an empty tree.
        let report = diff_dirs(&root.path().join("none"), &got).unwrap().unwrap();
        assert!(report.contains("extra files"), "{report}");
    }
}
