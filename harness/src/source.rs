//! The source set of a build pipeline: every file under the build path except
//! those a `.pachignore` leaves out, decided before anything is copied.
//!
//! `.pachignore` keeps the platform's matching: each line is one glob matched
//! against a file's path relative to the build path, and `*` (like `**`, `?`
//! and classes) also crosses `/`, so `*.pyc` drops `pkg/a.pyc`. Lines match
//! files, never folders: `__pycache__` alone matches nothing, `__pycache__/*`
//! is what drops the folder's files. Two additions over the platform, which
//! had neither: lines starting with `#` are comments (write `\#` for a name
//! that starts with `#`), and whitespace around a line is trimmed. A line that
//! leaves out no file gets a warning with its line number and, where we can
//! tell, the line that was meant.
//!
//! The platform's file system holds regular files only, so:
//! - a symlink to a file inside the build path is included, as that file;
//! - a symlink to a folder inside the build path is followed, and its files
//!   are included under the link's path (what `cp -rL` would copy), unless the
//!   folder is one the walk is already inside: that link would loop, so it is
//!   left out with a warning. Every followed folder is a different real
//!   folder from those above it, so the walk always ends;
//! - a symlink that resolves outside the build path, or not at all, is left
//!   out with a warning (the build must not depend on files it does not ship);
//! - sockets, pipes and devices are left out with a warning;
//! - empty folders vanish (the platform keeps files, not folders).
//!
//! Nothing `.pachignore` leaves out is warned about: a user who ignores
//! `.venv/*` does not want to hear about the symlinks inside it.

use std::fs;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, IoContext, Result};

/// The ignore file's name, at the root of the build path.
pub const PACHIGNORE: &str = ".pachignore";

/// The parsed `.pachignore` of a build path (empty when there is none).
#[derive(Debug, Clone)]
pub struct Pachignore {
    /// Each glob line with its 1-based line number and text as written (trimmed).
    rules: Vec<(usize, String)>,
    /// The same globs, in the same order, as one set.
    set: GlobSet,
}

impl Default for Pachignore {
    fn default() -> Self {
        Pachignore {
            rules: Vec::new(),
            set: GlobSet::empty(),
        }
    }
}

impl Pachignore {
    /// Reads `<build path>/.pachignore`; no file means nothing is ignored.
    pub fn load(build_path: &Path) -> Result<Pachignore> {
        let file = build_path.join(PACHIGNORE);
        match fs::read_to_string(&file) {
            Ok(text) => Pachignore::parse(&text, &file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pachignore::default()),
            Err(e) => Err(Error::io("cannot read", file, e)),
        }
    }

    /// Parses the text of a `.pachignore`; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Pachignore> {
        let mut rules = Vec::new();
        let mut set = GlobSetBuilder::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            // Comments are our addition; the platform would have taken `# x`
            // as a glob that matches a file named "# x".
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            set.add(compile(line, file, i + 1)?);
            rules.push((i + 1, line.to_string()));
        }
        let set = set.build().map_err(|e| {
            Error::invalid(
                file,
                "globs",
                format!("the globs cannot be combined: {e}"),
                "simplify the longest lines of `.pachignore`",
            )
        })?;
        Ok(Pachignore { rules, set })
    }

    /// The glob lines, with their line numbers, as written (trimmed).
    pub fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.rules.iter().map(|(n, s)| (*n, s.as_str()))
    }

    /// True when the file at `rel` (relative to the build path) is left out.
    /// The root `.pachignore` itself is always kept, as on the platform.
    pub fn is_ignored(&self, rel: &Path) -> bool {
        rel != Path::new(PACHIGNORE) && self.set.is_match(rel)
    }

    /// Indexes (into [`Pachignore::lines`]) of every line that matches `rel`.
    fn matching(&self, rel: &Path) -> Vec<usize> {
        self.set.matches(rel)
    }
}

/// One `.pachignore` line as a glob with the platform's semantics.
fn compile(line: &str, file: &Path, number: usize) -> Result<Glob> {
    GlobBuilder::new(&collapse_stars(line))
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map_err(|e| {
            Error::invalid(
                file,
                format!("line {number}"),
                format!("`{line}` is not a valid glob: {}", e.kind()),
                "fix the glob (`*` any characters, `?` one, `[abc]` a class, `{a,b}` \
                 alternatives, `\\` escapes) or delete the line",
            )
        })
}

/// Turns each run of `*` (outside classes and escapes) into a single `*`.
///
/// On the platform `**` was the same as `*` here (no separator is special),
/// but `globset` gives `**/` its own meaning ("zero or more folders", so
/// `**/x` would match a top-level `x`). One `*` keeps the platform's meaning.
fn collapse_stars(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut prev_star = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
                prev_star = false;
            }
            '[' => {
                // Copy the class untouched; `]` right after `[`, `[!` or `[^`
                // is a member, not the end.
                out.push(c);
                if let Some(&n) = chars.peek() {
                    if n == '!' || n == '^' {
                        out.push(n);
                        chars.next();
                    }
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
                for n in chars.by_ref() {
                    out.push(n);
                    if n == ']' {
                        break;
                    }
                }
                prev_star = false;
            }
            '*' => {
                if !prev_star {
                    out.push('*');
                }
                prev_star = true;
            }
            _ => {
                out.push(c);
                prev_star = false;
            }
        }
    }
    out
}

/// The files of a build path that go into the source repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSet {
    /// The build path the files are relative to.
    pub root: PathBuf,
    /// Relative paths of the files to copy, sorted by path component. Each is
    /// a regular file or a symlink that resolves to one inside `root`;
    /// reading `root.join(path)` gives its content.
    pub files: Vec<PathBuf>,
    /// What the user should hear about: files left out for being symlinks or
    /// special files, `.pachignore` lines that leave out nothing.
    pub warnings: Vec<String>,
}

impl SourceSet {
    /// Where to read the content of `rel` (symlinks are followed on read).
    pub fn source_path(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }
}

/// Walks `build_path` and decides which files make its source set.
pub fn collect_source(build_path: &Path) -> Result<SourceSet> {
    let meta = fs::metadata(build_path).with_path("cannot read the build path", build_path)?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "the build path `{}` is a file, not a folder; `transform.build.path` must name \
             the folder of the code",
            build_path.display()
        )));
    }
    let real_root =
        fs::canonicalize(build_path).with_path("cannot resolve the build path", build_path)?;
    let mut walk = Walk {
        root: build_path,
        real_root: &real_root,
        ignore: Pachignore::load(build_path)?,
        used: Vec::new(),
        files: Vec::new(),
        dirs: Vec::new(),
        linked: Default::default(),
        warnings: Vec::new(),
    };
    walk.used = vec![false; walk.ignore.rules.len()];
    let mut inside = vec![real_root.clone()];
    walk.dir(Path::new(""), &mut inside)?;

    let mut warnings = walk.warnings;
    warnings.extend(unused_line_warnings(&walk.ignore, &walk.used, &walk.dirs));
    let mut files = walk.files;
    files.sort();
    Ok(SourceSet {
        root: build_path.to_path_buf(),
        files,
        warnings,
    })
}

struct Walk<'a> {
    root: &'a Path,
    real_root: &'a Path,
    ignore: Pachignore,
    /// Per `.pachignore` line: did it leave out at least one file?
    used: Vec<bool>,
    files: Vec<PathBuf>,
    /// Relative paths of the folders seen, for the hints on unused lines.
    dirs: Vec<PathBuf>,
    /// Folders read through a symlink (real path), with that symlink.
    linked: std::collections::HashMap<PathBuf, PathBuf>,
    warnings: Vec<String>,
}

impl Walk<'_> {
    /// True (and the lines counted as used) when `.pachignore` leaves `rel` out.
    fn ignored(&mut self, rel: &Path) -> bool {
        if rel == Path::new(PACHIGNORE) {
            return false;
        }
        let hits = self.ignore.matching(rel);
        for &i in &hits {
            self.used[i] = true;
        }
        !hits.is_empty()
    }

    /// Walks the folder at `rel`. `inside` holds the real paths of the
    /// folders the walk is in, so a symlink back to one of them is not followed.
    fn dir(&mut self, rel: &Path, inside: &mut Vec<PathBuf>) -> Result<()> {
        let here = self.root.join(rel);
        let mut entries = fs::read_dir(&here)
            .with_path("cannot read folder", &here)?
            .collect::<std::io::Result<Vec<_>>>()
            .with_path("cannot read folder", &here)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            crate::interrupt::check()?;
            let rel = rel.join(entry.file_name());
            if entry.file_name().to_str().is_none() && !self.ignored(&rel) {
                // The platform's paths are text; the upload would refuse it.
                return Err(Error::Usage(format!(
                    "{}: file name is not UTF-8, and the platform's file paths are text\n  \
                     fix: rename it to a UTF-8 name, or list it in `.pachignore`",
                    self.root.join(&rel).display()
                )));
            }
            let kind = entry
                .file_type()
                .with_path("cannot read", self.root.join(&rel))?;
            if kind.is_dir() {
                let real = match inside.last() {
                    Some(parent) => parent.join(entry.file_name()),
                    None => self.real_root.join(&rel),
                };
                self.dirs.push(rel.clone());
                inside.push(real);
                self.dir(&rel, inside)?;
                inside.pop();
            } else if kind.is_file() {
                if !self.ignored(&rel) {
                    self.files.push(rel);
                }
            } else if kind.is_symlink() {
                self.symlink(rel, inside)?;
            } else if !self.ignored(&rel) {
                self.warnings.push(format!(
                    "`{}` is not a regular file (a socket, pipe or device); it is left out",
                    rel.display()
                ));
            }
        }
        Ok(())
    }

    fn symlink(&mut self, rel: PathBuf, inside: &mut Vec<PathBuf>) -> Result<()> {
        let abs = self.root.join(&rel);
        let shown_target = fs::read_link(&abs)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".to_string());
        let target = match fs::canonicalize(&abs) {
            Ok(t) => t,
            Err(_) => {
                if !self.ignored(&rel) {
                    self.warnings.push(format!(
                        "`{}` is a symlink to `{shown_target}`, which does not exist; it is left out",
                        rel.display()
                    ));
                }
                return Ok(());
            }
        };
        if !target.starts_with(self.real_root) {
            if !self.ignored(&rel) {
                self.warnings.push(format!(
                    "`{}` is a symlink to `{shown_target}`, outside the build path; it is left out \
                     (copy what it points to into the build path if the code needs it)",
                    rel.display()
                ));
            }
            return Ok(());
        }
        match fs::metadata(&target) {
            Ok(meta) if meta.is_file() => {
                if !self.ignored(&rel) {
                    self.files.push(rel);
                }
            }
            Ok(meta) if meta.is_dir() => {
                if inside.contains(&target) {
                    if !self.ignored(&rel) {
                        self.warnings.push(format!(
                            "`{}` is a symlink to `{shown_target}`, a folder that contains it; \
                             following it would loop, so it is left out",
                            rel.display()
                        ));
                    }
                } else if let Some(first) = self.linked.get(&target).cloned() {
                    // Each folder is read through one symlink at most: links
                    // that fan out (two per level) cannot make the walk grow
                    // exponentially.
                    if !self.ignored(&rel) {
                        self.warnings.push(format!(
                            "`{}` is a symlink to `{shown_target}`, a folder already read through                              `{}`; it is left out (a folder is read through one symlink at most)",
                            rel.display(),
                            first.display()
                        ));
                    }
                } else {
                    self.linked.insert(target.clone(), rel.clone());
                    self.dirs.push(rel.clone());
                    inside.push(target);
                    self.dir(&rel, inside)?;
                    inside.pop();
                }
            }
            _ => {
                if !self.ignored(&rel) {
                    self.warnings.push(format!(
                        "`{}` is a symlink to `{shown_target}`, which is not a regular file; \
                         it is left out",
                        rel.display()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One warning per `.pachignore` line that left out no file, with a hint at
/// what was probably meant.
fn unused_line_warnings(ignore: &Pachignore, used: &[bool], dirs: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for ((number, line), &was_used) in ignore.lines().zip(used) {
        if was_used {
            continue;
        }
        let head = format!("{PACHIGNORE} line {number}: `{line}` leaves out no file");
        out.push(format!("{head}: {}", hint(line, dirs)));
    }
    out
}

fn hint(line: &str, dirs: &[PathBuf]) -> String {
    let relative = line.trim_start_matches("./").trim_start_matches('/');
    if relative != line && !relative.is_empty() {
        return format!(
            "lines match paths relative to the build path, with no leading `/` or `./`; \
             write `{relative}`"
        );
    }
    if line == PACHIGNORE {
        return format!("`{PACHIGNORE}` itself is always kept");
    }
    // Compiled again here, alone: only the unused lines need it.
    let Ok(glob) = GlobBuilder::new(&collapse_stars(line))
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
    else {
        return "it matches nothing".to_string();
    };
    let glob = glob.compile_matcher();
    let as_path = dirs.iter().find(|d| glob.is_match(d));
    let by_name = if line.contains('/') {
        None
    } else {
        dirs.iter()
            .filter(|d| d.components().count() > 1)
            .find(|d| d.file_name().is_some_and(|n| glob.is_match(n)))
    };
    let trimmed = line.trim_end_matches('/');
    match (as_path, by_name) {
        (Some(d), None) => format!(
            "it matches the folder `{}`, but lines match files, not folders; \
             write `{trimmed}/*` to leave out the files under it",
            d.display()
        ),
        (None, Some(d)) => format!(
            "it matches the name of the folder `{}`, but lines match whole paths from the \
             build path; write `*/{trimmed}/*` to leave out the files under such folders",
            d.display()
        ),
        (Some(d), Some(deep)) => format!(
            "it matches the folders `{}` and `{}`, but lines match files, not folders; \
             write `{trimmed}/*` and `*/{trimmed}/*` to leave out the files under them",
            d.display(),
            deep.display()
        ),
        (None, None) if line.ends_with('/') => format!(
            "lines match files, and no file path ends in `/`; write `{trimmed}/*` to leave out \
             the files under a folder"
        ),
        (None, None) => "it matches no file under the build path".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Writes each `(path, content)` under a new temporary folder.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = tmp.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        tmp
    }

    fn names(set: &SourceSet) -> Vec<String> {
        set.files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    fn ignore(text: &str) -> Pachignore {
        Pachignore::parse(text, Path::new("src/.pachignore")).unwrap()
    }

    #[test]
    fn star_crosses_slashes_as_on_the_platform() {
        let ig = ignore("*.pyc\n");
        assert!(ig.is_ignored(Path::new("a.pyc")));
        assert!(ig.is_ignored(Path::new("pkg/a.pyc")));
        assert!(ig.is_ignored(Path::new("pkg/deep/a.pyc")));
        assert!(!ig.is_ignored(Path::new("a.py")));
        let ig = ignore("data/*\n");
        assert!(ig.is_ignored(Path::new("data/x/y.csv")));
        assert!(!ig.is_ignored(Path::new("data")));
        let ig = ignore("a?c\n");
        assert!(ig.is_ignored(Path::new("a/c")));
    }

    #[test]
    fn double_star_means_star_as_on_the_platform() {
        let ig = ignore("**/b\na**\n");
        assert!(ig.is_ignored(Path::new("x/b")));
        assert!(
            !ig.is_ignored(Path::new("b")),
            "globset's `**/` would match a top-level b"
        );
        assert!(ig.is_ignored(Path::new("a/b/c")));
        assert_eq!(collapse_stars("a**b"), "a*b");
        assert_eq!(collapse_stars(r"a\*\*b"), r"a\*\*b");
        assert_eq!(collapse_stars("[*]*[]*]**"), "[*]*[]*]*");
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let ig = ignore("# build output\n\n   *.o  \r\n  # indented comment\n\\#notes\n");
        assert_eq!(
            ig.lines().collect::<Vec<_>>(),
            [(3, "*.o"), (5, r"\#notes")]
        );
        assert!(ig.is_ignored(Path::new("x.o")));
        assert!(ig.is_ignored(Path::new("#notes")));
        assert!(!ig.is_ignored(Path::new("# build output")));
    }

    #[test]
    fn classes_and_alternatives() {
        let ig = ignore("*.{pyc,pyo}\n[!a]*.tmp\n");
        assert!(ig.is_ignored(Path::new("m/x.pyo")));
        assert!(ig.is_ignored(Path::new("b.tmp")));
        assert!(!ig.is_ignored(Path::new("a.tmp")));
    }

    #[test]
    fn pachignore_itself_is_kept() {
        let ig = ignore("*\n");
        assert!(!ig.is_ignored(Path::new(PACHIGNORE)));
        assert!(ig.is_ignored(Path::new("sub/.pachignore")));
        let t = tree(&[(".pachignore", ".*\n"), (".env", "x"), ("main.py", "")]);
        let set = collect_source(t.path()).unwrap();
        assert_eq!(names(&set), [".pachignore", "main.py"]);
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    }

    #[test]
    fn invalid_glob_names_the_line() {
        let err = Pachignore::parse("*.pyc\n\n[abc\n", Path::new("src/.pachignore")).unwrap_err();
        match &err {
            Error::Invalid {
                file,
                field,
                problem,
                ..
            } => {
                assert_eq!(file, Path::new("src/.pachignore"));
                assert_eq!(field, "line 3");
                assert!(problem.contains("`[abc`"), "{problem}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let t = tree(&[(".pachignore", "{a,{b}\n")]);
        let err = collect_source(t.path()).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn collects_sorted_files_and_applies_pachignore() {
        let t = tree(&[
            ("main.py", ""),
            ("requirements.txt", ""),
            ("pkg/__init__.py", ""),
            ("pkg/a.pyc", ""),
            ("pkg/__pycache__/a.cpython.pyc", ""),
            ("a-b", ""),
            ("data/big.bin", ""),
            (".pachignore", "# compiled\n*.pyc\ndata/*\n"),
        ]);
        fs::create_dir(t.path().join("empty")).unwrap();
        let set = collect_source(t.path()).unwrap();
        assert_eq!(
            names(&set),
            [
                ".pachignore",
                "a-b",
                "main.py",
                "pkg/__init__.py",
                "requirements.txt"
            ]
        );
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        assert_eq!(set.root, t.path());
        assert_eq!(
            set.source_path(Path::new("main.py")),
            t.path().join("main.py")
        );
    }

    #[test]
    fn no_pachignore_keeps_everything() {
        let t = tree(&[("a", ""), ("b/c", "")]);
        assert_eq!(names(&collect_source(t.path()).unwrap()), ["a", "b/c"]);
    }

    #[test]
    fn a_bare_folder_name_is_warned_about_with_the_fix() {
        let t = tree(&[
            (".pachignore", "__pycache__\n"),
            ("__pycache__/m.pyc", ""),
            ("pkg/__pycache__/n.pyc", ""),
        ]);
        let set = collect_source(t.path()).unwrap();
        // Upstream matching: the line matches no file, so nothing is dropped.
        assert_eq!(set.files.len(), 3);
        assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
        let w = &set.warnings[0];
        assert!(w.starts_with(".pachignore line 1: `__pycache__`"), "{w}");
        assert!(
            w.contains("`__pycache__/*`") && w.contains("`*/__pycache__/*`"),
            "{w}"
        );

        let t = tree(&[
            (".pachignore", "x\n\nbuild/\n"),
            ("pkg/build/o", ""),
            ("build/o", ""),
        ]);
        let set = collect_source(t.path()).unwrap();
        assert_eq!(set.warnings.len(), 2, "{:?}", set.warnings);
        assert!(
            set.warnings[0].contains("line 1: `x`"),
            "{}",
            set.warnings[0]
        );
        assert!(set.warnings[0].contains("no file under the build path"));
        assert!(set.warnings[1].contains("line 3"), "{}", set.warnings[1]);
        assert!(set.warnings[1].contains("`build/*`"), "{}", set.warnings[1]);
    }

    #[test]
    fn other_unused_line_hints() {
        let t = tree(&[
            (".pachignore", "/secret.txt\n.pachignore\nlogs/*\n"),
            ("secret.txt", ""),
        ]);
        let set = collect_source(t.path()).unwrap();
        assert_eq!(names(&set), [".pachignore", "secret.txt"]);
        assert_eq!(set.warnings.len(), 3, "{:?}", set.warnings);
        assert!(
            set.warnings[0].contains("write `secret.txt`"),
            "{}",
            set.warnings[0]
        );
        assert!(
            set.warnings[1].contains("always kept"),
            "{}",
            set.warnings[1]
        );
        assert!(set.warnings[2].contains("line 3"), "{}", set.warnings[2]);
    }

    #[test]
    fn a_line_shadowed_by_another_still_counts_as_used() {
        let t = tree(&[(".pachignore", "*.pyc\npkg/*.pyc\n"), ("pkg/a.pyc", "")]);
        let set = collect_source(t.path()).unwrap();
        assert_eq!(names(&set), [".pachignore"]);
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    }

    #[test]
    fn symlink_to_a_file_inside_is_included_as_the_file() {
        let t = tree(&[("real/data.txt", "hello")]);
        symlink("real/data.txt", t.path().join("link.txt")).unwrap();
        let set = collect_source(t.path()).unwrap();
        assert_eq!(names(&set), ["link.txt", "real/data.txt"]);
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        let content = fs::read_to_string(set.source_path(Path::new("link.txt"))).unwrap();
        assert_eq!(content, "hello");
    }

    #[test]
    fn a_folder_is_read_through_one_symlink_at_most() {
        // Each level links twice to the next: followed naively, 2^24 paths.
        let t = tree(&[("l24/leaf.txt", "x")]);
        for level in 0..24 {
            let dir = t.path().join(format!("l{level}"));
            fs::create_dir_all(&dir).unwrap();
            for name in ["x", "y"] {
                symlink(format!("../l{}", level + 1), dir.join(name)).unwrap();
            }
        }
        let set = collect_source(t.path()).unwrap();
        assert!(set.files.len() <= 25, "{:?}", set.files);
        assert!(set.files.contains(&PathBuf::from("l24/leaf.txt")));
        assert!(
            set.warnings
                .iter()
                .any(|w| w.contains("already read through")),
            "{:?}",
            set.warnings
        );
    }

    #[test]
    fn symlinks_outside_or_dangling_are_left_out_with_a_warning() {
        let outside = tree(&[("secret", "s"), ("dir/f", "")]);
        let t = tree(&[("main.py", "")]);
        symlink(outside.path().join("secret"), t.path().join("s")).unwrap();
        symlink(outside.path().join("dir"), t.path().join("d")).unwrap();
        symlink("../escape", t.path().join("up")).unwrap();
        symlink("missing", t.path().join("gone")).unwrap();
        let set = collect_source(t.path()).unwrap();
        assert_eq!(names(&set), ["main.py"]);
        assert_eq!(set.warnings.len(), 4, "{:?}", set.warnings);
        let all = set.warnings.join("\n");
        assert!(
            all.contains("`s` is a symlink") && all.contains("outside the build path"),
            "{all}"
        );
        assert!(all.contains("`d` is a symlink"), "{all}");
        assert!(
            all.contains("`gone` is a symlink to `missing`, which does not exist"),
            "{all}"
        );
    }

    #[test]
    fn ignored_symlinks_are_not_warned_about() {
        let outside = tree(&[("python3", "")]);
        let t = tree(&[(".pachignore", ".venv/*\n"), ("main.py", "")]);
        fs::create_dir_all(t.path().join(".venv/bin")).unwrap();
        symlink(
            outside.path().join("python3"),
            t.path().join(".venv/bin/python"),
        )
        .unwrap();
        let set = collect_source(t.path()).unwrap();
        assert_eq!(names(&set), [".pachignore", "main.py"]);
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    }

    #[test]
    fn symlinked_folder_inside_is_followed_and_loops_are_not() {
        let t = tree(&[("lib/util.py", ""), ("lib/sub/x.py", "")]);
        symlink("lib", t.path().join("alias")).unwrap();
        symlink("..", t.path().join("lib/sub/up")).unwrap();
        symlink(".", t.path().join("self")).unwrap();
        let set = collect_source(t.path()).unwrap();
        assert_eq!(
            names(&set),
            [
                "alias/sub/x.py",
                "alias/util.py",
                "lib/sub/x.py",
                "lib/util.py"
            ]
        );
        let all = set.warnings.join("\n");
        // `lib/sub/up` loops twice (under `lib` and under `alias`), `self` once.
        assert_eq!(set.warnings.len(), 3, "{all}");
        assert!(all.contains("`self` is a symlink to `.`"), "{all}");
        assert!(
            all.contains("`alias/sub/up`") && all.contains("would loop"),
            "{all}"
        );
    }

    #[test]
    fn a_symlinked_build_path_works() {
        let real = tree(&[("main.py", ""), ("inner/f", "")]);
        let holder = tempfile::tempdir().unwrap();
        let link = holder.path().join("src");
        symlink(real.path(), &link).unwrap();
        symlink("inner", real.path().join("in2")).unwrap();
        let set = collect_source(&link).unwrap();
        assert_eq!(names(&set), ["in2/f", "inner/f", "main.py"]);
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    }

    #[test]
    fn special_files_are_left_out_with_a_warning() {
        let t = tree(&[("main.py", "")]);
        let sock = t.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let set = collect_source(t.path()).unwrap();
        assert_eq!(names(&set), ["main.py"]);
        assert!(
            set.warnings[0].contains("`s.sock` is not a regular file"),
            "{:?}",
            set.warnings
        );
    }

    #[test]
    fn missing_or_file_build_path_is_an_error() {
        let t = tree(&[("f", "")]);
        assert!(collect_source(&t.path().join("nope")).is_err());
        let err = collect_source(&t.path().join("f")).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
    }
}
