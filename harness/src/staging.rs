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
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::datum::{Datum, DatumPart};
use crate::error::{Error, IoContext, Result};
use crate::output::{self, Entry, Tree};

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

/// A tar of one datum part under `prefix/` (normally `pfs/<input name>`),
/// including files that exist only in memory (a cron tick).
pub fn tar_part(part: &DatumPart, prefix: &str) -> Result<Vec<u8>> {
    let mut staged = Staged::default();
    let base = staged.prefix(prefix)?;
    stage_part(&mut staged, &base, part)?;
    staged.finish()
}

/// A tar of a whole datum, each part under `pfs/<input name>/`: what the
/// container's `/pfs` holds besides source, build and out.
pub fn tar_datum(datum: &Datum) -> Result<Vec<u8>> {
    let mut staged = Staged::default();
    for part in &datum.parts {
        let base = staged.prefix(&format!("pfs/{}", part.input_name))?;
        stage_part(&mut staged, &base, part)?;
    }
    staged.finish()
}

fn stage_part(staged: &mut Staged, base: &Path, part: &DatumPart) -> Result<()> {
    for file in &part.files {
        let rel = relative(file)?;
        let item = match part.generated.get(file) {
            Some(contents) => Item::Bytes(contents.clone()),
            None => Item::Host(part.repo_dir.join(&rel)),
        };
        staged.add(base.join(&rel), item)?;
    }
    Ok(())
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

/// Reads a tar the engine returned into a tree, dropping the leading folder
/// `strip` (downloading `/pfs/out` gives entries under `out/`). Refuses
/// entries that would land outside, and keeps files, folders and symlinks;
/// hard links become copies of the file they name.
pub fn tree_from_tar(bytes: &[u8], strip: &str) -> Result<Tree> {
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

    let mut tree = Tree::new();
    let mut archive = tar::Archive::new(bytes);
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
        let Some(path) = unstrip(&raw)? else {
            if kind.is_dir() {
                continue;
            }
            return Err(bad(format!("`{}` should be a folder", raw.display())));
        };
        let link = || -> Result<PathBuf> {
            entry
                .link_name()
                .map_err(|e| bad(format!("bad link of `{}`: {e}", raw.display())))?
                .map(|l| l.into_owned())
                .ok_or_else(|| bad(format!("link `{}` has no target", raw.display())))
        };
        let item = match kind {
            tar::EntryType::Directory => Entry::Dir,
            tar::EntryType::Symlink => Entry::Symlink(link()?),
            tar::EntryType::Link => {
                let target = link()?;
                let target = unstrip(&target)?.unwrap_or_default();
                match tree.get(&target) {
                    Some(file @ Entry::File { .. }) => file.clone(),
                    _ => {
                        return Err(bad(format!(
                            "hard link `{}` names `{}`, which is not an earlier file",
                            raw.display(),
                            target.display()
                        )))
                    }
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                let mut contents = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
                entry
                    .read_to_end(&mut contents)
                    .map_err(|e| bad(format!("cannot read `{}`: {e}", raw.display())))?;
                Entry::File {
                    contents,
                    executable,
                }
            }
            other => {
                return Err(bad(format!(
                    "`{}` is a {other:?} entry; only files, folders and symlinks can be output",
                    raw.display()
                )))
            }
        };
        tree.insert(path, item);
    }
    output::with_parents(tree).map_err(|e| bad(e.to_string()))
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
        let mut builder = tar::Builder::new(Vec::new());
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
                    append_file(&mut builder, &mut header, &path, &contents)
                        .map_err(|e| failed(&path, e))?;
                }
                Item::Host(host) => {
                    let meta = std::fs::metadata(&host).with_path("read", &host)?;
                    if !meta.is_file() {
                        return Err(Error::Failed(format!(
                            "cannot stage {}: not a regular file",
                            host.display()
                        )));
                    }
                    let contents = std::fs::read(&host).with_path("read", &host)?;
                    append_file(&mut builder, &mut header, &path, &contents)
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
            }
        }
        builder
            .into_inner()
            .map_err(|e| Error::Failed(format!("cannot finish archive: {e}")))
    }
}

fn append_file(
    builder: &mut tar::Builder<Vec<u8>>,
    header: &mut tar::Header,
    path: &Path,
    contents: &[u8],
) -> io::Result<()> {
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(FILE_MODE);
    header.set_size(contents.len() as u64);
    builder.append_data(header, path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let back = tree_from_tar(&tar, "build").unwrap();
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
        let back = tree_from_tar(&tar_tree(&tree, "out").unwrap(), "out").unwrap();
        assert_eq!(back[Path::new(&long)], Entry::file("x"));
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
            assert!(tree_from_tar(&tar, "out").is_err(), "{name} {link}");
        }
        // A symlink may point anywhere: it is data, never followed here.
        let ok = tree_from_tar(&raw_tar("out/s", Symlink, "/etc/passwd"), "out").unwrap();
        assert_eq!(ok[Path::new("s")], Entry::Symlink("/etc/passwd".into()));
        let ok = tree_from_tar(&raw_tar("./out/f", Regular, ""), "out").unwrap();
        assert_eq!(ok[Path::new("f")], Entry::file("x"));
        assert!(tree_from_tar(b"not a tar at all, definitely not", "out").is_err());
    }

    #[test]
    fn empty_dirs() {
        let tar = empty_dirs_tar(&["pfs/out", "/pfs/build/", "tmp/../x"]);
        assert_eq!(names(&tar), ["dpfs", "dpfs/build", "dpfs/out"]);
        assert!(rows(&tar).iter().all(|r| r.2 == 0o755 && r.3 == 0));
    }

    #[test]
    fn datums_stage_each_part_and_generated_ticks() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "A").unwrap();
        let part = |name: &str| DatumPart {
            input_name: name.into(),
            repo: "r".into(),
            repo_dir: dir.path().to_path_buf(),
            matched: "/a.txt".into(),
            files: vec!["a.txt".into()],
            generated: BTreeMap::new(),
        };
        let tick = PathBuf::from(crate::datum::CRON_TICK_FILE);
        let cron = DatumPart {
            input_name: "tick".into(),
            repo: "tick".into(),
            repo_dir: PathBuf::new(),
            matched: "/".into(),
            files: vec![tick.clone()],
            generated: BTreeMap::from([(tick, Vec::new())]),
        };
        let datum = Datum {
            parts: vec![part("left"), part("right"), cron],
        };
        let tar = tar_datum(&datum).unwrap();
        assert_eq!(
            names(&tar),
            [
                "dpfs",
                "dpfs/left",
                "fpfs/left/a.txt",
                "dpfs/right",
                "fpfs/right/a.txt",
                "dpfs/tick",
                &format!("fpfs/tick/{}", crate::datum::CRON_TICK_FILE),
            ]
        );
        let one = tar_part(&datum.parts[0], "pfs/left").unwrap();
        assert_eq!(names(&one), ["dpfs", "dpfs/left", "fpfs/left/a.txt"]);
    }
}
