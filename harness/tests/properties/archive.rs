//! The archive reader (`staging::unpack_into`, `staging::unpack_outputs`)
//! on any bytes and on hostile tars: no panic; nothing written, changed or
//! read outside the destination; an output's symlinks stay in its datum.
//!
//! Tars are written here header by header, so that they can hold what the
//! `tar` crate refuses to write: `..`, absolute names, any entry type,
//! long names through GNU and pax records.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use harness::staging;
use proptest::prelude::*;

use crate::{config, CASES, FS_CASES};

/// What the file beside the destination holds; no archive holds it.
const SECRET: &[u8] = b"the secret beside the destination, 0x5eC12e7";

/// A 512-byte block holding `data`, padded.
fn blocks(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out.resize(data.len().div_ceil(512) * 512, 0);
    out
}

/// One header with `name` and `link` verbatim (cut to 100 bytes).
fn header(name: &[u8], kind: u8, link: &[u8], size: u64, mode: u32) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(946_684_800);
    let old = h.as_old_mut();
    let n = name.len().min(100);
    old.name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(100);
    old.linkname[..l].copy_from_slice(&link[..l]);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A pax record `key=value` with its length in front.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// How a long name or link reaches the reader.
#[derive(Debug, Clone, Copy)]
enum Long {
    Gnu,
    Pax,
}

/// One entry of a hostile tar.
#[derive(Debug, Clone)]
struct RawEntry {
    name: String,
    kind: u8,
    link: String,
    data: Vec<u8>,
    mode: u32,
    long: Long,
}

impl RawEntry {
    fn bytes(&self, tmp: &Path) -> Vec<u8> {
        let name = placeholders(&self.name, tmp).into_bytes();
        let link = placeholders(&self.link, tmp).into_bytes();
        let mut out = Vec::new();
        let long_name = name.len() > 100;
        let long_link = link.len() > 100;
        match self.long {
            Long::Gnu => {
                if long_name {
                    let mut n = name.clone();
                    n.push(0);
                    out.extend(header(b"././@LongLink", b'L', b"", n.len() as u64, 0o644));
                    out.extend(blocks(&n));
                }
                if long_link {
                    let mut l = link.clone();
                    l.push(0);
                    out.extend(header(b"././@LongLink", b'K', b"", l.len() as u64, 0o644));
                    out.extend(blocks(&l));
                }
            }
            Long::Pax => {
                let mut records = Vec::new();
                if long_name {
                    records.extend(pax_record("path", &name));
                }
                if long_link {
                    records.extend(pax_record("linkpath", &link));
                }
                if !records.is_empty() {
                    out.extend(header(b"PaxHeader", b'x', b"", records.len() as u64, 0o644));
                    out.extend(blocks(&records));
                }
            }
        }
        out.extend(header(
            &name,
            self.kind,
            &link,
            self.data.len() as u64,
            self.mode,
        ));
        out.extend(blocks(&self.data));
        out
    }
}

/// `SECRET` and `VICTIM` name the file and folder beside the destination,
/// `TMP` the folder holding all three.
fn placeholders(text: &str, tmp: &Path) -> String {
    text.replace("SECRET", &tmp.join("secret").display().to_string())
        .replace("VICTIM", &tmp.join("victim").display().to_string())
        .replace("TMP", &tmp.display().to_string())
}

/// A hostile tar: its entries, then two zero blocks (or not).
fn tar_bytes(entries: &[RawEntry], tmp: &Path, end: bool) -> Vec<u8> {
    let mut out: Vec<u8> = entries.iter().flat_map(|e| e.bytes(tmp)).collect();
    if end {
        out.extend([0u8; 1024]);
    }
    out
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("a".to_string()),
        3 => Just("b".to_string()),
        2 => Just("0".to_string()),
        1 => Just("1".to_string()),
        2 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just(String::new()),
        1 => Just("d".repeat(120)),
        1 => Just("é\u{0}x".to_string()),
        1 => Just("secret".to_string()),
        1 => Just("victim".to_string()),
    ]
}

/// Entry names: mostly under `out/<datum>/`, sometimes anywhere.
fn entry_name() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            6 => Just("out/"),
            1 => Just("./out/"),
            1 => Just("/out/"),
            1 => Just("/"),
            1 => Just(""),
            1 => Just("out/../"),
        ],
        proptest::collection::vec(component(), 0..4),
        prop_oneof![4 => Just(""), 1 => Just("/")],
    )
        .prop_map(|(prefix, parts, end)| format!("{prefix}{}{end}", parts.join("/")))
}

fn link_target() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(component(), 1..5).prop_map(|p| p.join("/")),
        2 => entry_name(),
        1 => Just("SECRET".to_string()),
        1 => Just("VICTIM".to_string()),
        1 => Just("TMP".to_string()),
        1 => Just("/etc".to_string()),
        1 => Just("../../../secret".to_string()),
        1 => Just(String::new()),
    ]
}

fn entry_kind() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(b'0'),
        1 => Just(0u8),
        3 => Just(b'5'),
        4 => Just(b'2'),
        3 => Just(b'1'),
        1 => Just(b'6'),
        1 => Just(b'3'),
        1 => Just(b'4'),
        1 => Just(b'7'),
        1 => Just(b'x'),
        1 => Just(b'g'),
        1 => Just(b'L'),
        1 => any::<u8>(),
    ]
}

fn raw_entry() -> impl Strategy<Value = RawEntry> {
    (
        entry_name(),
        entry_kind(),
        link_target(),
        prop_oneof![
            Just(Vec::new()),
            Just(b"data".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..600),
        ],
        prop_oneof![Just(0o644u32), Just(0o755), Just(0o4777), 0u32..0o10000],
        prop_oneof![Just(Long::Gnu), Just(Long::Pax)],
    )
        .prop_map(|(name, kind, link, data, mode, long)| RawEntry {
            name,
            kind,
            link,
            data,
            mode,
            long,
        })
}

/// Names from a pool so small that entries meet: a file over a link, a
/// link over a folder, a link through a link.
fn pooled_entry() -> impl Strategy<Value = RawEntry> {
    (
        raw_entry(),
        proptest::sample::select(
            &[
                "out/0/a",
                "out/0/b",
                "out/0/a/b",
                "out/0/b/c",
                "out/0",
                "out/1/a",
            ][..],
        ),
        prop_oneof![
            Just("a"),
            Just("b"),
            Just(".."),
            Just("../.."),
            Just("a/.."),
            Just("b/../.."),
            Just("a/b/.."),
            Just("TMP"),
            Just("SECRET"),
            Just("out/0/a"),
            Just("out/0/b/secret"),
            Just("out/0/a/secret"),
            Just("out/1/a"),
            Just("../../secret"),
            Just("../../../secret"),
        ],
        prop_oneof![3 => Just(b'0'), 4 => Just(b'2'), 2 => Just(b'1'), 1 => Just(b'5')],
    )
        .prop_map(|(mut e, name, link, kind)| {
            e.name = name.to_string();
            e.link = link.to_string();
            e.kind = kind;
            e
        })
}

/// A link, then another entry at the same name (over it), under it
/// (through it), or a hard link to a file under it (read through it).
fn link_then_entry() -> impl Strategy<Value = Vec<RawEntry>> {
    (pooled_entry(), pooled_entry(), 0..3).prop_map(|(mut link, mut next, how)| {
        link.kind = b'2';
        match how {
            0 => next.name = link.name.clone(),
            1 => next.name = format!("{}/secret", link.name),
            _ => {
                next.kind = b'1';
                next.link = format!("{}/secret", link.name);
            }
        }
        vec![link, next]
    })
}

/// Links of one datum to each other, each target inside by its text alone:
/// chains of them may still lead out.
fn link_web() -> impl Strategy<Value = Vec<RawEntry>> {
    const AT: [&str; 5] = [
        "out/0/a/b",
        "out/0/c",
        "out/0/a/d",
        "out/0/e",
        "out/0/a/b/f",
    ];
    let any_target = proptest::collection::vec(
        proptest::sample::select(&["..", "..", ".", "a", "b", "c", "d", "e", "f"][..]),
        1..5,
    )
    .prop_map(|parts| parts.join("/"));
    // Up some, down to another link, then up from where it leads.
    let via_link = (
        0usize..3,
        proptest::sample::select(&["a/b", "c", "a/d", "e", "a/b/f"][..]),
        1usize..4,
    )
        .prop_map(|(up, via, up_again)| {
            let mut parts = vec![".."; up];
            parts.push(via);
            parts.extend(vec![".."; up_again]);
            parts.join("/")
        });
    let target = prop_oneof![any_target, via_link];
    (
        proptest::collection::vec((0..AT.len(), target), 1..8),
        any::<bool>(),
    )
        .prop_map(|(links, dir_first)| {
            let entry = |name: &str, kind: u8, link: String| RawEntry {
                name: name.to_string(),
                kind,
                link,
                data: Vec::new(),
                mode: 0o777,
                long: Long::Gnu,
            };
            let mut out = Vec::new();
            if dir_first {
                out.push(entry("out/0/a/", b'5', String::new()));
            }
            out.extend(links.into_iter().map(|(i, to)| entry(AT[i], b'2', to)));
            out
        })
}

/// Hostile tars: any names, names that meet, links and what follows them.
fn raw_tar() -> impl Strategy<Value = Vec<RawEntry>> {
    prop_oneof![
        proptest::collection::vec(raw_entry(), 0..12),
        proptest::collection::vec(pooled_entry(), 0..12),
        proptest::collection::vec(link_then_entry(), 1..5).prop_map(|v| v.concat()),
        link_web(),
    ]
}

/// A temporary folder with the destination's neighbours: a file and a
/// folder that nothing may touch.
struct Place {
    _tmp: tempfile::TempDir,
    /// The temporary folder, resolved (so links can be compared to it).
    root: PathBuf,
    dest: PathBuf,
}

impl Place {
    fn new() -> Place {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        fs::write(root.join("secret"), SECRET).unwrap();
        fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir(root.join("victim")).unwrap();
        fs::set_permissions(root.join("victim"), fs::Permissions::from_mode(0o700)).unwrap();
        let dest = root.join("dest");
        Place {
            _tmp: tmp,
            root,
            dest,
        }
    }

    /// Nothing beside the destination changed; nothing in it came from outside.
    fn check(&self) -> Result<(), TestCaseError> {
        let names: BTreeSet<OsString> = fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut allowed: BTreeSet<OsString> = ["secret", "victim"].map(OsString::from).into();
        allowed.insert("dest".into());
        prop_assert!(
            names.is_subset(&allowed),
            "beside the destination: {names:?}"
        );
        let secret = fs::symlink_metadata(self.root.join("secret")).unwrap();
        prop_assert!(secret.is_file());
        prop_assert_eq!(secret.permissions().mode() & 0o7777, 0o600);
        prop_assert_eq!(fs::read(self.root.join("secret")).unwrap(), SECRET);
        let victim = fs::symlink_metadata(self.root.join("victim")).unwrap();
        prop_assert!(victim.is_dir());
        prop_assert_eq!(victim.permissions().mode() & 0o7777, 0o700);
        prop_assert_eq!(fs::read_dir(self.root.join("victim")).unwrap().count(), 0);
        for (path, meta) in walk(&self.dest) {
            let kind = meta.file_type();
            prop_assert!(
                kind.is_file() || kind.is_dir() || kind.is_symlink(),
                "{path:?} is {kind:?}"
            );
            if kind.is_file() {
                let contents = fs::read(&path).unwrap();
                prop_assert!(contents != SECRET, "{path:?} holds the secret");
                let mode = meta.permissions().mode() & 0o7777;
                prop_assert!(mode == 0o644 || mode == 0o755, "{path:?} has mode {mode:o}");
            }
        }
        Ok(())
    }

    /// Every symlink of an output resolves inside its `<datum>/` folder,
    /// and no datum folder is a symlink.
    fn check_outputs(&self) -> Result<(), TestCaseError> {
        for (path, meta) in walk(&self.dest) {
            if !meta.file_type().is_symlink() {
                continue;
            }
            let rel = path.strip_prefix(&self.dest).unwrap();
            let mut parts = rel.components();
            let datum = self.dest.join(parts.next().unwrap());
            prop_assert!(
                parts.next().is_some(),
                "the datum folder {rel:?} is a symlink to {:?}",
                fs::read_link(&path)
            );
            if let Some(to) = resolve(&path) {
                prop_assert!(
                    to.starts_with(&datum),
                    "{rel:?} → {:?} resolves to {to:?}, outside {datum:?}",
                    fs::read_link(&path).unwrap()
                );
            }
        }
        Ok(())
    }
}

/// Every entry under `dir` (not following symlinks), with its metadata.
fn walk(dir: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(walk(&path));
        }
        out.push((path, meta));
    }
    out
}

/// Where the absolute `path` leads, symlinks followed as the kernel would
/// (a missing part and what follows it taken as written); `None` for a
/// loop.
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut todo: VecDeque<OsString> = VecDeque::new();
    let push_front = |todo: &mut VecDeque<OsString>, p: &Path| {
        for c in p.components().rev() {
            todo.push_front(c.as_os_str().to_os_string());
        }
    };
    push_front(&mut todo, path);
    let mut at = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match Path::new(&part).components().next() {
            Some(Component::RootDir) => at = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                at.pop();
            }
            Some(Component::Normal(name)) => {
                let next = at.join(name);
                match fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        hops += 1;
                        if hops > 40 {
                            return None;
                        }
                        let to = fs::read_link(&next).unwrap();
                        push_front(&mut todo, &to);
                    }
                    _ => at = next,
                }
            }
            _ => {}
        }
    }
    Some(at)
}

fn strip() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => Just("out"),
        1 => Just("/out/"),
        1 => Just(""),
        1 => Just("."),
        1 => Just("out/.."),
    ]
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn arbitrary_bytes_never_escape(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        outputs in any::<bool>(),
    ) {
        let place = Place::new();
        let _ = if outputs {
            staging::unpack_outputs(&bytes[..], "out", &place.dest)
        } else {
            staging::unpack_into(&bytes[..], "out", &place.dest)
        };
        place.check()?;
    }

    /// Bytes that start as a tar and go wrong: cut short or flipped.
    #[test]
    fn damaged_tars_never_escape(
        entries in raw_tar(),
        cut in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let place = Place::new();
        let mut bytes = tar_bytes(&entries, &place.root, true);
        if !bytes.is_empty() {
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let _ = staging::unpack_outputs(&bytes[..], "out", &place.dest);
        place.check()?;
        place.check_outputs()?;
    }
}

proptest! {
    #![proptest_config(config(CASES.max(FS_CASES)))]

    /// `unpack_into`: any entries, names, types and links; whatever
    /// happens, nothing outside the destination is written or read.
    #[test]
    fn hostile_tars_never_escape_the_destination(
        entries in raw_tar(),
        strip in strip(),
        end in any::<bool>(),
    ) {
        let place = Place::new();
        let bytes = tar_bytes(&entries, &place.root, end);
        let _ = staging::unpack_into(&bytes[..], strip, &place.dest);
        place.check()?;
    }

    /// `unpack_outputs`: the same, and no symlink leads out of its datum.
    #[test]
    fn hostile_outputs_never_escape_their_datum(
        entries in raw_tar(),
        end in any::<bool>(),
    ) {
        let place = Place::new();
        let bytes = tar_bytes(&entries, &place.root, end);
        let _ = staging::unpack_outputs(&bytes[..], "out", &place.dest);
        place.check()?;
        place.check_outputs()?;
    }
}
