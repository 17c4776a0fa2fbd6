//! Byte-for-byte comparison of two output folders (no engine).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::error::IoContext;
use harness::Result;

/// The marker file `cargo xtask run` leaves in its `--out` folder; not part
/// of the pipeline's output.
pub const OUT_MARKER: &str = ".pachbuild-output";

/// What a path of an output tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every path under `dir` (relative), except the [`OUT_MARKER`] at its top.
fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, Node>> {
    let mut nodes = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let folder = dir.join(&rel);
        for entry in std::fs::read_dir(&folder).with_path("cannot list", &folder)? {
            let entry = entry.with_path("cannot list", &folder)?;
            let path = rel.join(entry.file_name());
            if path.as_os_str() == OUT_MARKER {
                continue;
            }
            let full = dir.join(&path);
            let kind = entry.file_type().with_path("cannot inspect", &full)?;
            let node = if kind.is_symlink() {
                Node::Link(std::fs::read_link(&full).with_path("cannot read the link", &full)?)
            } else if kind.is_dir() {
                pending.push(path.clone());
                Node::Dir
            } else {
                Node::File(std::fs::read(&full).with_path("cannot read", &full)?)
            };
            nodes.insert(path, node);
        }
    }
    Ok(nodes)
}

/// How the trees under `ours` and `baseline` differ (names, kinds, contents;
/// not modes or times), one line per path; empty when they are equal.
pub fn differences(ours: &Path, baseline: &Path) -> Result<Vec<String>> {
    let ours = snapshot(ours)?;
    let baseline = snapshot(baseline)?;
    let mut found = Vec::new();
    for (path, node) in &ours {
        match baseline.get(path) {
            None => found.push(format!("only in ours: {}", path.display())),
            Some(other) if other == node => {}
            Some(other) => found.push(format!(
                "differs: {} (ours {}, baseline {})",
                path.display(),
                describe(node),
                describe(other)
            )),
        }
    }
    for path in baseline.keys().filter(|p| !ours.contains_key(*p)) {
        found.push(format!("only in the baseline: {}", path.display()));
    }
    Ok(found)
}

fn describe(node: &Node) -> String {
    match node {
        Node::Dir => "a folder".to_string(),
        Node::File(bytes) => format!("a file of {} bytes", bytes.len()),
        Node::Link(to) => format!("a link to {}", to.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn equal_trees_ignore_the_marker() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for root in [a.path(), b.path()] {
            write(root, "x.txt", "one");
            write(root, "sub/y.txt", "two");
        }
        write(a.path(), OUT_MARKER, "made by a run");
        assert_eq!(
            differences(a.path(), b.path()).unwrap(),
            Vec::<String>::new()
        );
        // Only at the top.
        write(b.path(), &format!("sub/{OUT_MARKER}"), "data");
        assert_eq!(
            differences(a.path(), b.path()).unwrap(),
            [format!("only in the baseline: sub/{OUT_MARKER}")]
        );
    }

    #[test]
    fn differences_are_named() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(a.path(), "same.txt", "s");
        write(b.path(), "same.txt", "s");
        write(a.path(), "changed.txt", "ours");
        write(b.path(), "changed.txt", "theirs!");
        write(a.path(), "mine/only.txt", "x");
        write(b.path(), "theirs.txt", "y");
        write(a.path(), "kind", "file");
        std::fs::create_dir(b.path().join("kind")).unwrap();
        let found = differences(a.path(), b.path()).unwrap();
        assert_eq!(
            found,
            [
                "differs: changed.txt (ours a file of 4 bytes, baseline a file of 7 bytes)",
                "differs: kind (ours a file of 4 bytes, baseline a folder)",
                "only in ours: mine",
                "only in ours: mine/only.txt",
                "only in the baseline: theirs.txt",
            ]
        );
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let a = tempfile::tempdir().unwrap();
        let err = differences(a.path(), &a.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
