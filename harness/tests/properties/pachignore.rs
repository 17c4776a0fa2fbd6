//! `.pachignore` (`source::Pachignore`) and the source walk
//! (`source::collect_source`): no panic on any line or path; the algebra the
//! module's docs promise; the walk never yields a path outside its root.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use harness::error::exit;
use harness::source::{self, Pachignore, PACHIGNORE};
use harness::Error;
use proptest::prelude::*;

use crate::{config, CASES, FS_CASES};

fn file() -> &'static Path {
    Path::new("src/.pachignore")
}

/// A path component without glob syntax: a literal name.
fn plain_name() -> impl Strategy<Value = String> {
    "[a-z0-9_][a-z0-9._-]{0,5}"
}

/// A relative path of plain names, as a string with `/`.
fn plain_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(plain_name(), 1..5).prop_map(|p| p.join("/"))
}

/// Relative paths to ask about: plain ones and ones with any characters.
fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => plain_path(),
        1 => any::<String>(),
        1 => Just(PACHIGNORE.to_string()),
        1 => "[a-z*?\\[\\]{},\\\\/. #!^-]{1,12}",
    ]
}

/// Glob pieces of `.pachignore` lines, valid and broken.
fn glob_token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => plain_name(),
        2 => Just("*".to_string()),
        1 => Just("**".to_string()),
        1 => Just("?".to_string()),
        2 => Just("/".to_string()),
        1 => Just("[abc]".to_string()),
        1 => Just("[!a]".to_string()),
        1 => Just("[]a]".to_string()),
        1 => Just("[a-z]".to_string()),
        1 => Just("{a,b}".to_string()),
        1 => Just("{,x}".to_string()),
        1 => Just("\\*".to_string()),
        1 => Just("\\".to_string()),
        1 => Just("[".to_string()),
        1 => Just("]".to_string()),
        1 => Just("{".to_string()),
        1 => Just("}".to_string()),
        1 => Just(",".to_string()),
        1 => Just("#".to_string()),
        1 => Just(" ".to_string()),
        1 => Just("./".to_string()),
        1 => Just("..".to_string()),
        1 => any::<char>().prop_map(String::from),
    ]
}

fn glob_line() -> impl Strategy<Value = String> {
    proptest::collection::vec(glob_token(), 0..8).prop_map(|t| t.concat())
}

/// Glob pieces with no escapes or brackets: doubling a `*` keeps the meaning.
fn star_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => plain_name(),
        3 => Just("*".to_string()),
        1 => Just("?".to_string()),
        2 => Just("/".to_string()),
        1 => Just("{a,b*}".to_string()),
        1 => Just(".".to_string()),
    ]
}

/// Writes every character of `name` escaped, so that it is a literal.
fn escaped(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

fn ignores(ig: &Pachignore, path: &str) -> bool {
    ig.is_ignored(Path::new(path))
}

/// A broken line is a field error of the file, exit code 2.
fn check_error(e: &Error) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(e, Error::Invalid { file: f, .. } if f == file()),
        "{e:?}"
    );
    prop_assert_eq!(e.exit_code(), exit::BAD_INPUT);
    Ok(())
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn any_text_parses_or_is_bad_input(text in prop_oneof![
        any::<String>(),
        proptest::collection::vec(glob_line(), 0..6).prop_map(|l| l.join("\n")),
    ], paths in proptest::collection::vec(any_path(), 0..8)) {
        match Pachignore::parse(&text, file()) {
            Ok(ig) => {
                let rules = text.lines().filter(|l| {
                    let l = l.trim();
                    !l.is_empty() && !l.starts_with('#')
                }).count();
                prop_assert_eq!(ig.lines().count(), rules);
                for p in &paths {
                    let _ = ig.is_ignored(Path::new(p));
                }
                prop_assert!(!ignores(&ig, PACHIGNORE));
            }
            Err(e) => check_error(&e)?,
        }
    }

    /// A line that is a plain path leaves out exactly that file.
    #[test]
    fn a_literal_path_ignores_exactly_itself(
        literal in plain_path(),
        others in proptest::collection::vec(plain_path(), 0..8),
    ) {
        let ig = Pachignore::parse(&format!("{literal}\n"), file()).unwrap();
        prop_assert!(ignores(&ig, &literal) || literal == PACHIGNORE);
        for near in [format!("{literal}x"), format!("{literal}/x"), format!("x/{literal}")] {
            prop_assert!(!ignores(&ig, &near), "{literal} ignores {near}");
        }
        if let Some((parent, _)) = literal.rsplit_once('/') {
            prop_assert!(!ignores(&ig, parent), "{literal} ignores {parent}");
        }
        for other in &others {
            prop_assert_eq!(ignores(&ig, other), other == &literal, "{} vs {}", literal, other);
        }
    }

    /// Any name, every character escaped, is a literal too.
    #[test]
    fn an_escaped_name_ignores_exactly_itself(
        name in "[^/\\s][^/\n]{0,10}[^/\\s]",
        other in any_path(),
    ) {
        let ig = Pachignore::parse(&escaped(&name), file()).unwrap();
        prop_assert!(ignores(&ig, &name) || name == PACHIGNORE, "{:?}", escaped(&name));
        prop_assert_eq!(ignores(&ig, &other), other == name);
    }

    /// Blank lines, comments and whitespace around lines change nothing.
    #[test]
    fn comments_blanks_and_whitespace_change_nothing(
        lines in proptest::collection::vec(glob_line(), 1..5),
        pad in "[ \t]{0,3}",
        paths in proptest::collection::vec(any_path(), 1..10),
    ) {
        let plain = lines.join("\n");
        let Ok(ig) = Pachignore::parse(&plain, file()) else { return Ok(()) };
        let noisy: String = lines
            .iter()
            .map(|l| format!("# a comment\n\n{pad}{l}{pad}\n#{l}\n"))
            .collect();
        let noisy_ig = Pachignore::parse(&noisy, file());
        // Padding may end a line in an escape (`\`), or start one with `#`...
        // only when the line itself is trimmed to the same text.
        if lines.iter().all(|l| l.trim() == l.as_str()) {
            let noisy_ig = noisy_ig.unwrap();
            for p in &paths {
                prop_assert_eq!(ignores(&ig, p), ignores(&noisy_ig, p), "{}", p);
            }
        }
    }

    /// Lines are alternatives: a file is left out when any line leaves it out.
    #[test]
    fn lines_are_a_union(
        a in proptest::collection::vec(glob_line(), 0..4),
        b in proptest::collection::vec(glob_line(), 0..4),
        paths in proptest::collection::vec(any_path(), 1..10),
    ) {
        let (a, b) = (a.join("\n"), b.join("\n"));
        let (Ok(ia), Ok(ib)) = (Pachignore::parse(&a, file()), Pachignore::parse(&b, file())) else {
            return Ok(());
        };
        let both = Pachignore::parse(&format!("{a}\n{b}"), file()).unwrap();
        for p in &paths {
            prop_assert_eq!(ignores(&both, p), ignores(&ia, p) || ignores(&ib, p), "{}", p);
        }
    }

    /// `*` crosses `/` and `**` means the same (the platform's matching).
    #[test]
    fn stars_cross_slashes_and_double_stars_are_stars(
        tokens in proptest::collection::vec(star_token(), 1..8),
        paths in proptest::collection::vec(any_path(), 1..10),
    ) {
        let one = tokens.concat();
        let two: String = tokens.iter().map(|t| t.replace('*', "**")).collect();
        let (Ok(i1), Ok(i2)) = (Pachignore::parse(&one, file()), Pachignore::parse(&two, file())) else {
            return Ok(());
        };
        for p in &paths {
            prop_assert_eq!(ignores(&i1, p), ignores(&i2, p), "{} vs {} on {}", one, two, p);
        }
    }

    /// `*` alone leaves out every file but `.pachignore`; `dir/*` what is
    /// under `dir/`; `*.ext` what ends in `.ext`.
    #[test]
    fn star_prefix_and_suffix_lines(
        dir in plain_path(),
        ext in "[a-z]{1,4}",
        paths in proptest::collection::vec(prop_oneof![any_path(), plain_path().prop_map(|p| format!("{p}.txt"))], 1..10),
    ) {
        let all = Pachignore::parse("*", file()).unwrap();
        let under = Pachignore::parse(&format!("{dir}/*"), file()).unwrap();
        let ending = Pachignore::parse(&format!("*.{ext}"), file()).unwrap();
        let mut paths = paths;
        paths.push(format!("{dir}/f"));
        paths.push(format!("a/b.{ext}"));
        for p in &paths {
            let not_pachignore = p != PACHIGNORE;
            prop_assert_eq!(ignores(&all, p), not_pachignore, "* on {}", p);
            prop_assert_eq!(ignores(&under, p), p.starts_with(&format!("{dir}/")), "{}/* on {}", dir, p);
            prop_assert_eq!(
                ignores(&ending, p),
                not_pachignore && p.ends_with(&format!(".{ext}")),
                "*.{} on {}", ext, p
            );
        }
    }
}

/// One entry of a random tree to walk.
#[derive(Debug, Clone)]
enum Node {
    File(String),
    Dir(String),
    /// A symlink at the path, to the target (relative or absolute).
    Link(String, String),
    /// A socket: a special file.
    Socket(String),
}

fn tree_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("c.pyc".to_string()),
            Just(".venv".to_string()),
            Just(PACHIGNORE.to_string()),
        ],
        1..4,
    )
    .prop_map(|p| p.join("/"))
}

fn link_target() -> impl Strategy<Value = String> {
    prop_oneof![
        tree_path(),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("../..".to_string()),
        Just("../outside".to_string()),
        Just("../../outside/secret".to_string()),
        Just("OUTSIDE".to_string()),
        Just("ROOT".to_string()),
        Just("missing".to_string()),
        tree_path().prop_map(|p| format!("../{p}")),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => tree_path().prop_map(Node::File),
        2 => tree_path().prop_map(Node::Dir),
        3 => (tree_path(), link_target()).prop_map(|(p, t)| Node::Link(p, t)),
        1 => tree_path().prop_map(Node::Socket),
    ]
}

/// Lines likely to match the random trees.
fn tree_ignore() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("*.pyc".to_string()),
        Just(".venv/*".to_string()),
        Just("a".to_string()),
        Just("a/".to_string()),
        Just("/b".to_string()),
        tree_path(),
        glob_line(),
    ];
    proptest::collection::vec(line, 0..4).prop_map(|l| l.join("\n"))
}

/// Makes what it can of the nodes under `root` (clashing ones are skipped).
fn build(root: &Path, outside: &Path, nodes: &[Node]) {
    for node in nodes {
        let rel = match node {
            Node::File(p) | Node::Dir(p) | Node::Socket(p) | Node::Link(p, _) => p,
        };
        let at = root.join(rel);
        if let Some(parent) = at.parent() {
            if fs::create_dir_all(parent).is_err() {
                continue;
            }
        }
        let _ = match node {
            Node::File(_) => fs::write(&at, rel.as_bytes()),
            Node::Dir(_) => fs::create_dir_all(&at),
            Node::Socket(_) => std::os::unix::net::UnixListener::bind(&at).map(drop),
            Node::Link(_, target) => {
                let target = match target.as_str() {
                    "OUTSIDE" => outside.to_path_buf(),
                    "ROOT" => root.to_path_buf(),
                    t => PathBuf::from(t),
                };
                symlink(target, &at)
            }
        };
    }
}

proptest! {
    #![proptest_config(config(FS_CASES))]

    /// The walk of a random tree (files, folders, symlinks anywhere,
    /// sockets) never fails but on a broken `.pachignore`, and yields
    /// sorted, plain relative paths to files inside the root that
    /// `.pachignore` keeps.
    #[test]
    fn collect_source_stays_inside_the_root(
        nodes in proptest::collection::vec(node(), 0..10),
        ignore in proptest::option::of(tree_ignore()),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "secret").unwrap();
        build(&root, &outside, &nodes);
        if let Some(text) = &ignore {
            // A `.pachignore` node may have made a folder there.
            let _ = fs::write(root.join(PACHIGNORE), text);
        }
        let set = match source::collect_source(&root) {
            Ok(set) => set,
            // A `.pachignore` that is a folder or a socket cannot be read.
            Err(Error::Io { path, .. })
                if path == root.join(PACHIGNORE) && !path.is_file() =>
            {
                return Ok(());
            }
            Err(e) => {
                prop_assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
                prop_assert_eq!(e.exit_code(), exit::BAD_INPUT);
                return Ok(());
            }
        };
        let ig = Pachignore::load(&root).unwrap();
        let real_root = fs::canonicalize(&root).unwrap();
        let mut sorted = set.files.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(&sorted, &set.files);
        for f in &set.files {
            prop_assert!(f.components().all(|c| matches!(c, Component::Normal(_))), "{f:?}");
            let real = fs::canonicalize(set.source_path(f)).unwrap();
            prop_assert!(real.starts_with(&real_root), "{f:?} is {real:?}");
            prop_assert!(fs::metadata(&real).unwrap().is_file(), "{f:?}");
            prop_assert!(!ig.is_ignored(f), "{f:?} is ignored");
        }
        prop_assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
    }
}
