//! Tar streams for the engine's archive API: what goes into a container's
//! `/pfs` and what comes back out of `/pfs/out`.
//!
//! Archives we write look like the platform's file system: files 0644 and
//! folders 0755 whatever the host says (the platform keeps no mode bits, so
//! code that relies on an exec bit must fail here as it would there), owned
//! by root, with one fixed mtime so that equal inputs give equal bytes, and
//! an explicit entry for every folder so the engine creates none with
//! surprising modes.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::datum::Datum;
use crate::error::{Error, IoContext, Result};
use crate::output::{self, Entry, Tree};
use crate::stream::OutgoingArchive;

/// The mtime of every entry we write: 2000-01-01T00:00:00Z. Fixed so that
/// archives are reproducible; not 0, which some tools treat as "unknown".
pub const MTIME: u64 = 946_684_800;

/// Mode of files staged into a container.
pub const FILE_MODE: u32 = 0o644;
/// Mode of folders staged into a container.
pub const DIR_MODE: u32 = 0o755;

/// A tar of `files` (relative to `root`) under `prefix/` (e.g. `pfs/source`).
/// Symlinks are read through: the entry holds the file they point to.
pub fn tar_files(root: &Path, files: &[PathBuf], prefix: &str) -> Result<Vec<u8>> {
    let mut staged = Staged::default();
    let base = staged.prefix(prefix)?;
    for file in files {
        let rel = relative(file)?;
        staged.add(base.join(&rel), Item::Host(root.join(&rel)))?;
    }
    staged.finish()
}

/// The same as [`tar_files`] for an in-memory tree. Files get 0644 even when
/// marked executable: the platform keeps no mode bits. Symlinks stay symlinks.
pub fn tar_tree(tree: &Tree, prefix: &str) -> Result<Vec<u8>> {
    let mut staged = Staged::default();
    let base = staged.prefix(prefix)?;
    for (path, entry) in tree {
        let path = base.join(relative(path)?);
        match entry {
            Entry::Dir => staged.add_dirs(&path)?,
            Entry::File { contents, .. } => staged.add(path, Item::Bytes(contents.clone()))?,
            Entry::Symlink(to) => staged.add(path, Item::Symlink(to.clone()))?,
        }
    }
    staged.finish()
}

/// [`tar_files`], written while it is sent.
pub fn stream_files(root: &Path, files: &[PathBuf], prefix: &str) -> Result<OutgoingArchive> {
    let mut staged = Staged::default();
    let base = staged.prefix(prefix)?;
    for file in files {
        let rel = relative(file)?;
        staged.add(base.join(&rel), Item::Host(root.join(&rel)))?;
    }
    Ok(staged.into_stream())
}

/// The inputs of a job's datums, for a worker to take one at a time:
/// `<prefix>/<datum index>/<input name>/<file>`, and `extra` small files
/// (archive path, contents) beside them. A host file that several datums
/// share (a cross) is sent once; its other entries are hard links, which the
/// worker's copy turns back into files of their own.
pub fn stream_job(
    datums: &[(usize, &Datum)],
    prefix: &str,
    extra: Vec<(PathBuf, Vec<u8>)>,
) -> Result<OutgoingArchive> {
    let mut staged = Staged::default();
    let mut first_seen: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for (path, contents) in extra {
        staged.add(relative(&path)?, Item::Bytes(contents))?;
    }
    staged.prefix(prefix)?;
    for (index, datum) in datums {
        staged.prefix(&format!("{prefix}/{index}"))?;
        for part in &datum.parts {
            let base = staged.prefix(&format!("{prefix}/{index}/{}", part.input_name))?;
            for file in &part.files {
                let rel = relative(file)?;
                let at = base.join(&rel);
                let item = match part.generated.get(file) {
                    Some(contents) => Item::Bytes(contents.clone()),
                    None => {
                        let host = part.repo_dir.join(&rel);
                        match first_seen.get(&host) {
                            Some(earlier) => Item::HardLink(earlier.clone()),
                            None => {
                                first_seen.insert(host.clone(), at.clone());
                                Item::Host(host)
                            }
                        }
                    }
                };
                staged.add(at, item)?;
            }
        }
    }
    Ok(staged.into_stream())
}

/// What [`unpack_into`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: usize,
    pub bytes: u64,
}

/// Writes a tar the engine returned under `dest`, dropping the leading
/// folder `strip`, file by file through a small buffer. Nothing lands
/// outside `dest` (no `..`, no absolute names, nothing written through a
/// symlink of the archive); only files, folders and symlinks are accepted
/// (hard links become copies). Files get 0644, or 0755 when any exec bit
/// was set.
pub fn unpack_into(reader: impl Read, strip: &str, dest: &Path) -> Result<Unpacked> {
    unpack(reader, strip, dest, false)
}

/// [`unpack_into`] for the outputs of datums (`<datum>/...` after `strip`):
/// a symlink must also point inside its datum's output (by a target whose
/// `..` all come first; a datum's folder is never a link); the worker already
/// turned links into the inputs into copies, as the platform does, so any
/// other link would dangle on the host or reach outside the output.
pub fn unpack_outputs(reader: impl Read, strip: &str, dest: &Path) -> Result<Unpacked> {
    unpack(reader, strip, dest, true)
}

/// Whether a link at `rel` (`<datum>/path`) to `target` stays inside the
/// datum's folder.
///
/// Checked on the text of `target`, which is sound only when every `..` is
/// taken in a real folder: the folders above the link are (nothing is
/// written through a symlink), but a name inside `target` may be another
/// link of the archive (`a/..` with `a` → `..` is the datum's parent). So
/// `..` may only lead the target, and the datum's folder itself (`rel` of
/// one part) may not be a link.
fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    use std::path::Component;
    if target.is_absolute() {
        return false;
    }
    let Some(below) = rel.components().count().checked_sub(2) else {
        return false;
    };
    // Depth below the datum's folder of the link's own folder.
    let mut depth = below as i64;
    let mut named = false;
    for part in target.components() {
        match part {
            Component::ParentDir if named => return false,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => {
                depth += 1;
                named = true;
            }
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn unpack(reader: impl Read, strip: &str, dest: &Path, outputs: bool) -> Result<Unpacked> {
    let strip = clean_prefix(strip)?;
    let bad = |what: String| Error::Failed(format!("archive from the engine: {what}"));
    let unstrip = |raw: &Path| -> Result<Option<PathBuf>> {
        let clean = archive_path(raw).map_err(|e| bad(e.to_string()))?;
        match clean.strip_prefix(&strip) {
            Ok(rest) if rest.as_os_str().is_empty() => Ok(None),
            Ok(rest) => Ok(Some(rest.to_path_buf())),
            Err(_) => Err(bad(format!(
                "entry `{}` is not under `{}/`",
                raw.display(),
                strip.display()
            ))),
        }
    };
    std::fs::create_dir_all(dest).with_path("create folder", dest)?;
    let mut done = Unpacked::default();
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("cannot read an entry: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("bad entry name: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let Some(rel) = unstrip(&raw)? else {
            if kind.is_dir() {
                continue;
            }
            return Err(bad(format!("`{}` should be a folder", raw.display())));
        };
        output::ensure_no_symlink_parent(dest, &rel)?;
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_path("create folder", parent)?;
        }
        let link = |entry: &tar::Entry<'_, _>| -> Result<PathBuf> {
            entry
                .link_name()
                .map_err(|e| bad(format!("bad link of `{}`: {e}", raw.display())))?
                .map(|l| l.into_owned())
                .ok_or_else(|| bad(format!("link `{}` has no target", raw.display())))
        };
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).with_path("create folder", &target)?;
            }
            tar::EntryType::Symlink => {
                let to = link(&entry)?;
                if outputs && !link_stays_inside(&rel, &to) {
                    let mut shown: PathBuf = rel.components().skip(1).collect();
                    if shown.as_os_str().is_empty() {
                        shown = PathBuf::from("/pfs/out");
                    }
                    return Err(Error::Failed(format!(
                        "the output holds a symlink `{}` → `{}` that points outside `/pfs/out` \
                         and into no input; the platform cannot upload it\n  fix: write a file \
                         (or link to a file under `/pfs/<input>`, which becomes a copy of it)",
                        shown.display(),
                        to.display()
                    )));
                }
                output::replace_with_symlink(&to, &target)?;
            }
            tar::EntryType::Link => {
                let to = link(&entry)?;
                let to = unstrip(&to)?.unwrap_or_default();
                // Read nothing through a link of the archive, which may
                // point anywhere.
                output::ensure_no_symlink_parent(dest, &to)?;
                let from = dest.join(&to);
                let is_file = std::fs::symlink_metadata(&from)
                    .map(|m| m.is_file())
                    .unwrap_or(false);
                if !is_file {
                    return Err(bad(format!(
                        "hard link `{}` names `{}`, which is not an earlier file",
                        raw.display(),
                        to.display()
                    )));
                }
                output::remove_if_symlink(&target)?;
                let copied = std::fs::copy(&from, &target).with_path("write", &target)?;
                done.files += 1;
                done.bytes += copied;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                // A later entry replaces an earlier link, as `tar` does;
                // writing through it would land where it points.
                output::remove_if_symlink(&target)?;
                let mut file = std::fs::File::create(&target).with_path("write", &target)?;
                let copied = io::copy(&mut entry, &mut file)
                    .map_err(|e| bad(format!("cannot read `{}`: {e}", raw.display())))?;
                drop(file);
                output::set_file_mode(&target, executable)?;
                done.files += 1;
                done.bytes += copied;
            }
            other => {
                let what = match other {
                    tar::EntryType::Fifo => "a fifo".to_string(),
                    tar::EntryType::Char | tar::EntryType::Block => "a device".to_string(),
                    other => format!("a {other:?} entry"),
                };
                if outputs {
                    let shown: PathBuf = rel.components().skip(1).collect();
                    return Err(Error::Failed(format!(
                        "the output holds `{}`, {what}; the platform uploads only files, \
                         folders and links into inputs\n  fix: write a regular file instead",
                        shown.display()
                    )));
                }
                return Err(bad(format!(
                    "`{}` is {what}; only files, folders and symlinks can be output",
                    raw.display()
                )));
            }
        }
    }
    Ok(done)
}

/// A tar holding only folders (and their parents), e.g. `pfs/out`. Paths
/// with `..` are left out: this takes constant names, not user input.
pub fn empty_dirs_tar(dirs: &[&str]) -> Vec<u8> {
    let mut staged = Staged::default();
    for dir in dirs {
        let _ = staged.prefix(dir);
    }
    // Writing folders to memory cannot fail; an empty Vec is still a valid upload.
    staged.finish().unwrap_or_default()
}

/// A path inside an archive, checked: `.` components dropped, `..`, roots
/// and prefixes refused.
fn archive_path(raw: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(Error::Failed(format!(
                    "refusing `{}`: it would land outside the destination",
                    raw.display()
                )))
            }
        }
    }
    Ok(out)
}

/// A caller-given relative path (a file of a repo or a tree), checked.
fn relative(path: &Path) -> Result<PathBuf> {
    output::check_relative(path)?;
    Ok(path.to_path_buf())
}

/// `pfs/source`, `/pfs/source/` and `pfs//source` are the same prefix.
fn clean_prefix(prefix: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in prefix.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::Failed(format!(
                    "refusing archive prefix `{prefix}`: it contains `..`"
                )))
            }
            name => out.push(name),
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Item {
    Dir,
    Bytes(Vec<u8>),
    /// A host file, read (through symlinks) when the archive is written.
    Host(PathBuf),
    Symlink(PathBuf),
    /// Another entry of the same archive (a file two datums share).
    HardLink(PathBuf),
}

/// Entries to write, by archive path. Ordered by path components, a folder
/// always comes before what it holds.
#[derive(Debug, Default)]
struct Staged {
    items: BTreeMap<PathBuf, Item>,
}

impl Staged {
    /// Adds the folders of `prefix` and returns it, cleaned.
    fn prefix(&mut self, prefix: &str) -> Result<PathBuf> {
        let base = clean_prefix(prefix)?;
        self.add_dirs(&base)?;
        Ok(base)
    }

    /// Adds `dir` and every parent as folders.
    fn add_dirs(&mut self, dir: &Path) -> Result<()> {
        let mut at = PathBuf::new();
        for c in dir.components() {
            at.push(c);
            match self.items.get(&at) {
                None => {
                    self.items.insert(at.clone(), Item::Dir);
                }
                Some(Item::Dir) => {}
                Some(_) => {
                    return Err(Error::Failed(format!(
                        "cannot stage folder `{}`: `{}` is already a file",
                        dir.display(),
                        at.display()
                    )))
                }
            }
        }
        Ok(())
    }

    fn add(&mut self, path: PathBuf, item: Item) -> Result<()> {
        if let Some(parent) = path.parent() {
            self.add_dirs(parent)?;
        }
        if let Some(Item::Dir) = self.items.get(&path) {
            return Err(Error::Failed(format!(
                "cannot stage `{}`: it is already a folder",
                path.display()
            )));
        }
        self.items.insert(path, item);
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>> {
        self.write_into(Vec::new())
    }

    fn into_stream(self) -> OutgoingArchive {
        OutgoingArchive::spawn(move |out| self.write_into(out).map(|_| ()))
    }

    /// Writes the archive into `out` entry by entry; host files are copied
    /// through a small buffer, never read whole.
    fn write_into<W: Write>(self, out: W) -> Result<W> {
        let mut builder = tar::Builder::new(out);
        let failed = |path: &Path, e: io::Error| {
            Error::Failed(format!("cannot archive `{}`: {e}", path.display()))
        };
        for (path, item) in self.items {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            match item {
                Item::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(DIR_MODE);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, &path, io::empty())
                        .map_err(|e| failed(&path, e))?;
                }
                Item::Bytes(contents) => {
                    append_file(
                        &mut builder,
                        &mut header,
                        &path,
                        contents.len() as u64,
                        &contents[..],
                    )
                    .map_err(|e| failed(&path, e))?;
                }
                Item::Host(host) => {
                    let file = std::fs::File::open(&host).with_path("read", &host)?;
                    let meta = file.metadata().with_path("read", &host)?;
                    if !meta.is_file() {
                        return Err(Error::Failed(format!(
                            "cannot stage {}: not a regular file",
                            host.display()
                        )));
                    }
                    // A file that grows while it is archived must not make
                    // the entry longer than its header says.
                    let reader = io::Read::take(file, meta.len());
                    append_file(&mut builder, &mut header, &path, meta.len(), reader)
                        .map_err(|e| failed(&path, e))?;
                }
                Item::Symlink(to) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, &path, &to)
                        .map_err(|e| failed(&path, e))?;
                }
                Item::HardLink(to) => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_mode(FILE_MODE);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, &path, &to)
                        .map_err(|e| failed(&path, e))?;
                }
            }
        }
        builder
            .into_inner()
            .map_err(|e| Error::Failed(format!("cannot finish archive: {e}")))
    }
}

fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    path: &Path,
    size: u64,
    contents: impl io::Read,
) -> io::Result<()> {
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(FILE_MODE);
    header.set_size(size);
    builder.append_data(header, path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::DatumPart;
    use std::fs;

    /// (path, type, mode, uid, gid, mtime, contents) of each entry, in order.
    type Row = (String, char, u32, u64, u64, u64, Vec<u8>);

    fn rows(bytes: &[u8]) -> Vec<Row> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let kind = match h.entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Regular => 'f',
                    tar::EntryType::Symlink => 'l',
                    _ => '?',
                };
                (
                    e.path().unwrap().display().to_string(),
                    kind,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    data,
                )
            })
            .collect()
    }

    fn names(bytes: &[u8]) -> Vec<String> {
        rows(bytes)
            .into_iter()
            .map(|r| format!("{}{}", r.1, r.0))
            .collect()
    }

    #[test]
    fn files_get_platform_modes_prefix_and_parents() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/c.txt"), "c").unwrap();
        fs::write(dir.path().join("top.sh"), "#!/bin/sh").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let exe = fs::Permissions::from_mode(0o775);
            fs::set_permissions(dir.path().join("top.sh"), exe).unwrap();
        }
        let tar = tar_files(
            dir.path(),
            &["top.sh".into(), "a/b/c.txt".into()],
            "/pfs/source/",
        )
        .unwrap();
        assert_eq!(
            names(&tar),
            [
                "dpfs",
                "dpfs/source",
                "dpfs/source/a",
                "dpfs/source/a/b",
                "fpfs/source/a/b/c.txt",
                "fpfs/source/top.sh"
            ]
        );
        for (path, kind, mode, uid, gid, mtime, _) in rows(&tar) {
            assert_eq!(mode, if kind == 'd' { 0o755 } else { 0o644 }, "{path}");
            assert_eq!((uid, gid, mtime), (0, 0, MTIME), "{path}");
        }
        // Same input, same bytes.
        assert_eq!(
            tar,
            tar_files(
                dir.path(),
                &["top.sh".into(), "a/b/c.txt".into()],
                "pfs/source"
            )
            .unwrap()
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_read_through() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("real"), "data").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let tar = tar_files(dir.path(), &["link".into()], "pfs/in").unwrap();
        let last = rows(&tar).pop().unwrap();
        assert_eq!(
            (last.0.as_str(), last.1, last.6.as_slice()),
            ("pfs/in/link", 'f', &b"data"[..])
        );
    }

    #[test]
    fn bad_file_paths_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x"] {
            assert!(
                tar_files(dir.path(), &[bad.into()], "pfs/x").is_err(),
                "{bad}"
            );
        }
        assert!(tar_files(dir.path(), &["nope".into()], "pfs/x").is_err());
        assert!(tar_files(dir.path(), &[], "pfs/../x").is_err());
        fs::create_dir(dir.path().join("d")).unwrap();
        assert!(tar_files(dir.path(), &["d".into()], "pfs/x").is_err());
    }

    #[test]
    fn tree_round_trip_drops_exec_bits() {
        let tree: Tree = [
            ("a/b.txt", Entry::file("b")),
            (
                "run.sh",
                Entry::File {
                    contents: b"echo".to_vec(),
                    executable: true,
                },
            ),
            ("empty", Entry::Dir),
            ("l", Entry::Symlink("a/b.txt".into())),
        ]
        .into_iter()
        .map(|(p, e)| (PathBuf::from(p), e))
        .collect();
        let tar = tar_tree(&tree, "build").unwrap();
        assert_eq!(
            names(&tar),
            [
                "dbuild",
                "dbuild/a",
                "fbuild/a/b.txt",
                "dbuild/empty",
                "lbuild/l",
                "fbuild/run.sh"
            ]
        );
        let back = unpacked(&tar, "build").unwrap();
        let mut want = output::with_parents(tree).unwrap();
        want.insert(PathBuf::from("run.sh"), Entry::file("echo"));
        assert_eq!(back, want);
    }

    #[test]
    fn long_names_survive() {
        let long = format!("{}/f.txt", "d".repeat(150));
        let tree: Tree = [(PathBuf::from(&long), Entry::file("x"))]
            .into_iter()
            .collect();
        let back = unpacked(&tar_tree(&tree, "out").unwrap(), "out").unwrap();
        assert_eq!(back[Path::new(&long)], Entry::file("x"));
    }

    /// Unpacks into a temporary folder and reads it back.
    fn unpacked(tar: &[u8], strip: &str) -> Result<Tree> {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d");
        unpack_into(tar, strip, &dest)?;
        output::read_tree(&dest)
    }

    /// A tar whose single entry has `name` verbatim, bypassing the checks
    /// the tar crate makes when writing.
    fn raw_tar(name: &str, kind: tar::EntryType, link: &str) -> Vec<u8> {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(if kind == tar::EntryType::Regular {
            1
        } else {
            0
        });
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        let data: &[u8] = if kind == tar::EntryType::Regular {
            b"x"
        } else {
            b""
        };
        builder.append(&header, data).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn malicious_archives_are_refused() {
        use tar::EntryType::{Link, Regular, Symlink};
        for (name, kind, link) in [
            ("out/../../etc/x", Regular, ""),
            ("/etc/x", Regular, ""),
            ("other/x", Regular, ""),
            ("out", Regular, ""),
            ("out/h", Link, "/etc/passwd"),
            ("out/h", Link, "out/missing"),
        ] {
            let tar = raw_tar(name, kind, link);
            assert!(unpacked(&tar, "out").is_err(), "{name} {link}");
        }
        // A symlink may point anywhere: it is data, never followed here.
        let ok = unpacked(&raw_tar("out/s", Symlink, "/etc/passwd"), "out").unwrap();
        assert_eq!(ok[Path::new("s")], Entry::Symlink("/etc/passwd".into()));
        let ok = unpacked(&raw_tar("./out/f", Regular, ""), "out").unwrap();
        assert_eq!(ok[Path::new("f")], Entry::file("x"));
        assert!(unpacked(b"not a tar at all, definitely not", "out").is_err());
    }

    #[test]
    fn empty_dirs() {
        let tar = empty_dirs_tar(&["pfs/out", "/pfs/build/", "tmp/../x"]);
        assert_eq!(names(&tar), ["dpfs", "dpfs/build", "dpfs/out"]);
        assert!(rows(&tar).iter().all(|r| r.2 == 0o755 && r.3 == 0));
    }

    /// Everything a streamed archive sends, gathered.
    async fn gather(archive: OutgoingArchive) -> Vec<u8> {
        use futures_util::StreamExt;
        let (body, writer) = archive.into_parts();
        let chunks: Vec<_> = body.collect().await;
        writer.finish(Ok(())).await.unwrap();
        chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_stages_each_datum_once_with_shared_files_as_links() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "A").unwrap();
        fs::write(dir.path().join("b.txt"), "B").unwrap();
        let part = |name: &str, file: &str| DatumPart {
            input_name: name.into(),
            repo: "r".into(),
            repo_dir: dir.path().to_path_buf(),
            matched: format!("/{file}"),
            files: vec![file.into()],
            generated: BTreeMap::new(),
        };
        let tick = PathBuf::from(crate::datum::CRON_TICK_FILE);
        let cron = DatumPart {
            input_name: "tick".into(),
            repo: "tick".into(),
            repo_dir: PathBuf::new(),
            matched: "/".into(),
            files: vec![tick.clone()],
            generated: BTreeMap::from([(tick, b"t".to_vec())]),
        };
        let first = Datum {
            parts: vec![part("left", "a.txt"), cron],
        };
        let second = Datum {
            parts: vec![part("left", "a.txt"), part("right", "b.txt")],
        };
        let tar = gather(stream_job(&[(0, &first), (3, &second)], "in", vec![]).unwrap()).await;
        let rows = rows(&tar);
        let kinds: Vec<String> = rows.iter().map(|r| format!("{}{}", r.1, r.0)).collect();
        assert_eq!(
            kinds,
            [
                "din",
                "din/0",
                "din/0/left",
                "fin/0/left/a.txt",
                "din/0/tick",
                &format!("fin/0/tick/{}", crate::datum::CRON_TICK_FILE),
                "din/3",
                "din/3/left",
                "?in/3/left/a.txt",
                "din/3/right",
                "fin/3/right/b.txt",
            ]
        );
        // The shared file is sent once; its second entry links to the first.
        let mut archive = tar::Archive::new(&tar[..]);
        let link = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.header().entry_type() == tar::EntryType::Link)
            .unwrap();
        assert_eq!(
            link.link_name().unwrap().unwrap(),
            Path::new("in/0/left/a.txt")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_source_matches_the_in_memory_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/x.py"), "x").unwrap();
        let files = vec![PathBuf::from("d/x.py")];
        let streamed = gather(stream_files(dir.path(), &files, "src").unwrap()).await;
        assert_eq!(streamed, tar_files(dir.path(), &files, "src").unwrap());
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str, &[u8], u32)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link, data, mode) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(*mode);
            header.set_size(data.len() as u64);
            if kind.is_symlink() || kind.is_hard_link() {
                builder.append_link(&mut header, name, link).unwrap();
            } else {
                builder.append_data(&mut header, name, *data).unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn unpacking_writes_files_links_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("o");
        let tar = tar_of(&[
            ("out/", tar::EntryType::Directory, "", b"", 0o755),
            ("out/0/a.txt", tar::EntryType::Regular, "", b"A", 0o600),
            ("out/0/run", tar::EntryType::Regular, "", b"#!", 0o700),
            (
                "out/1/copy",
                tar::EntryType::Link,
                "out/0/a.txt",
                b"",
                0o644,
            ),
            ("out/1/ln", tar::EntryType::Symlink, "/pfs/in/a", b"", 0o777),
        ]);
        let done = unpack_into(&tar[..], "out", &dest).unwrap();
        assert_eq!(done, Unpacked { files: 3, bytes: 4 });
        assert_eq!(fs::read(dest.join("1/copy")).unwrap(), b"A");
        let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("0/a.txt"), mode("0/run")), (0o644, 0o755));
        assert_eq!(
            fs::read_link(dest.join("1/ln")).unwrap(),
            Path::new("/pfs/in/a")
        );
    }

    #[test]
    fn output_links_must_stay_in_their_datum() {
        let dir = tempfile::tempdir().unwrap();
        let inside = tar_of(&[
            ("out/0/a", tar::EntryType::Regular, "", b"A", 0o644),
            ("out/0/d/l", tar::EntryType::Symlink, "../a", b"", 0o777),
        ]);
        unpack_outputs(&inside[..], "out", &dir.path().join("a")).unwrap();
        for target in ["/pfs/in/a", "../../1/a", "../1/a", "/etc/passwd"] {
            let tar = tar_of(&[("out/0/l", tar::EntryType::Symlink, target, b"", 0o777)]);
            let err = unpack_outputs(&tar[..], "out", &dir.path().join("b")).unwrap_err();
            assert!(err.to_string().contains("symlink `l`"), "{target}: {err}");
        }
        assert!(link_stays_inside(
            Path::new("0/x/y/l"),
            Path::new("../../f")
        ));
        assert!(!link_stays_inside(Path::new("0/x/l"), Path::new("../../f")));
    }

    #[test]
    fn a_file_over_a_symlink_replaces_the_link_not_its_target() {
        use std::os::unix::fs::PermissionsExt;
        // Found by the property tests: the file was written where the
        // earlier link pointed, outside the destination.
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, "secret").unwrap();
        let tar = tar_of(&[
            (
                "out/l",
                tar::EntryType::Symlink,
                secret.to_str().unwrap(),
                b"",
                0o777,
            ),
            ("out/l", tar::EntryType::Regular, "", b"over", 0o755),
            (
                "out/m",
                tar::EntryType::Symlink,
                secret.to_str().unwrap(),
                b"",
                0o777,
            ),
            ("out/f", tar::EntryType::Regular, "", b"f", 0o644),
            ("out/m", tar::EntryType::Link, "out/f", b"", 0o644),
        ]);
        let dest = dir.path().join("d");
        let _ = unpack_into(&tar[..], "out", &dest);
        assert_eq!(fs::read(&secret).unwrap(), b"secret");
        let mode = fs::metadata(&secret).unwrap().permissions().mode();
        assert_ne!(mode & 0o777, 0o755, "{mode:o}");
        assert_eq!(fs::read(dest.join("l")).unwrap(), b"over");
        assert!(fs::symlink_metadata(dest.join("m")).unwrap().is_file());
    }

    #[test]
    fn a_hard_link_cannot_read_through_a_symlink() {
        // Found by the property tests: `h` became a copy of a file outside
        // the destination, reached through the archive's own link `l`.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), "secret").unwrap();
        let tar = tar_of(&[
            (
                "out/l",
                tar::EntryType::Symlink,
                dir.path().to_str().unwrap(),
                b"",
                0o777,
            ),
            ("out/h", tar::EntryType::Link, "out/l/secret", b"", 0o644),
        ]);
        let dest = dir.path().join("d");
        let err = unpack_into(&tar[..], "out", &dest).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!dest.join("h").exists());
    }

    #[test]
    fn output_links_cannot_chain_out_of_their_datum() {
        // Found by the property tests: each link is inside by its text, but
        // `c` → `a/b/..` goes through `a/b` → `..` to the folder of all
        // datums, and `d` → `c/..` above it; a datum folder was a link.
        let dir = tempfile::tempdir().unwrap();
        let chain = tar_of(&[
            ("out/0/a/b", tar::EntryType::Symlink, "..", b"", 0o777),
            ("out/0/c", tar::EntryType::Symlink, "a/b/..", b"", 0o777),
        ]);
        let err = unpack_outputs(&chain[..], "out", &dir.path().join("a")).unwrap_err();
        assert!(err.to_string().contains("symlink `c`"), "{err}");
        let datum = tar_of(&[("out/0", tar::EntryType::Symlink, "1", b"", 0o777)]);
        let err = unpack_outputs(&datum[..], "out", &dir.path().join("b")).unwrap_err();
        assert!(err.to_string().contains("symlink `/pfs/out`"), "{err}");
        assert!(link_stays_inside(Path::new("0/a/l"), Path::new("../b/c")));
        assert!(!link_stays_inside(Path::new("0/a/l"), Path::new("b/../c")));
    }

    #[test]
    fn unpacking_refuses_escapes_and_writes_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let through = tar_of(&[
            (
                "out/l",
                tar::EntryType::Symlink,
                outside.to_str().unwrap(),
                b"",
                0o777,
            ),
            ("out/l/x", tar::EntryType::Regular, "", b"x", 0o644),
        ]);
        let err = unpack_into(&through[..], "out", &dir.path().join("a")).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!outside.join("x").exists());
        let elsewhere = tar_of(&[("other/x", tar::EntryType::Regular, "", b"x", 0o644)]);
        assert!(unpack_into(&elsewhere[..], "out", &dir.path().join("b")).is_err());
        let fifo = tar_of(&[("out/f", tar::EntryType::Fifo, "", b"", 0o644)]);
        let err = unpack_into(&fifo[..], "out", &dir.path().join("c")).unwrap_err();
        assert!(err.to_string().contains("only files"), "{err}");
    }
}
