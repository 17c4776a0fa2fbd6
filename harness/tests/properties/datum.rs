//! Datum planning (`datum::plan`) with random globs over random repo trees,
//! inside pfs, cross and union inputs: no panic; every datum's files are
//! files of the repo under the matched path; a cross has the product of its
//! inputs' datums, a union the sum; ids are stable.
//!
//! Only the public `plan` and the pfs, cross and union shapes are used, so
//! these hold whatever the planner's insides become.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use harness::datum::{self, Datum};
use harness::error::exit;
use harness::spec::{Input, PfsInput};
use harness::Error;
use proptest::prelude::*;

use crate::{config, FS_CASES};

fn name_part() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("a".to_string()),
        3 => Just("b".to_string()),
        3 => Just("c.txt".to_string()),
        2 => Just("d.csv".to_string()),
        1 => Just("[x]".to_string()),
        1 => Just("{y,z}".to_string()),
        1 => Just("*".to_string()),
        1 => Just("e f".to_string()),
        1 => Just(".hidden".to_string()),
    ]
}

fn repo_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(name_part(), 1..4).prop_map(|p| p.join("/"))
}

/// One thing in a repo folder.
#[derive(Debug, Clone)]
enum Node {
    File(String),
    /// A folder that may stay empty (no glob matches those).
    Dir(String),
    /// A symlink to a folder or file of the repo, or to the repo itself (a loop).
    Link(String, String),
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        8 => repo_path().prop_map(Node::File),
        1 => repo_path().prop_map(Node::Dir),
        1 => (repo_path(), prop_oneof![
            Just(".".to_string()),
            Just("..".to_string()),
            Just("../elsewhere".to_string()),
            repo_path().prop_map(|p| format!("../{p}")),
        ]).prop_map(|(at, to)| Node::Link(at, to)),
    ]
}

fn repo_tree() -> impl Strategy<Value = Vec<Node>> {
    proptest::collection::vec(node(), 0..8)
}

/// Globs from the grammar `*`, `?`, `**`, classes, alternatives, literals, `/`.
fn glob() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => Just("*".to_string()),
        1 => Just("?".to_string()),
        1 => Just("**".to_string()),
        1 => Just("[abc]".to_string()),
        1 => Just("[!a]".to_string()),
        1 => Just("[a-c]".to_string()),
        1 => Just("{a,b}".to_string()),
        1 => Just("{c.txt,d*}".to_string()),
        1 => Just("[".to_string()),
        1 => Just("{".to_string()),
        1 => Just(".".to_string()),
        3 => name_part(),
        4 => Just("/".to_string()),
    ];
    prop_oneof![
        1 => Just("/".to_string()),
        1 => Just("/*".to_string()),
        1 => Just("/*/*".to_string()),
        6 => proptest::collection::vec(token, 0..6)
            .prop_map(|t| format!("/{}", t.concat())),
        1 => "[ /*a.]{0,4}",
    ]
}

/// Makes the nodes under `dir` (clashing ones are skipped).
fn build(dir: &Path, nodes: &[Node]) {
    fs::create_dir_all(dir).unwrap();
    for node in nodes {
        let rel = match node {
            Node::File(p) | Node::Dir(p) | Node::Link(p, _) => p,
        };
        let at = dir.join(rel);
        if let Some(parent) = at.parent() {
            if fs::create_dir_all(parent).is_err() {
                continue;
            }
        }
        let _ = match node {
            Node::File(_) => fs::write(&at, rel),
            Node::Dir(_) => fs::create_dir_all(&at),
            Node::Link(_, to) => std::os::unix::fs::symlink(to, &at),
        };
    }
}

fn pfs(repo: &str, name: &str, glob: &str) -> Input {
    Input {
        pfs: Some(PfsInput {
            repo: repo.into(),
            name: Some(name.into()),
            glob: glob.into(),
            ..PfsInput::default()
        }),
        ..Input::default()
    }
}

fn cross(children: Vec<Input>) -> Input {
    Input {
        cross: Some(children),
        ..Input::default()
    }
}

fn union(children: Vec<Input>) -> Input {
    Input {
        union: Some(children),
        ..Input::default()
    }
}

/// A planning error is bad input (an invalid glob, a symlink loop).
fn check_error(e: &Error) -> Result<(), TestCaseError> {
    prop_assert!(matches!(e, Error::Usage(_)), "{e:?}");
    prop_assert_eq!(e.exit_code(), exit::BAD_INPUT);
    Ok(())
}

/// Every part of every datum: its repo's files, under the matched path.
fn check_datums(datums: &[Datum], repos: &BTreeMap<String, PathBuf>) -> Result<(), TestCaseError> {
    for d in datums {
        prop_assert!(!d.parts.is_empty());
        prop_assert_eq!(d.id().len(), 12);
        for part in &d.parts {
            prop_assert_eq!(&part.repo_dir, &repos[&part.repo]);
            prop_assert!(part.matched.starts_with('/'), "{:?}", part.matched);
            prop_assert!(!part.files.is_empty(), "{} matched no file", part.matched);
            let mut sorted = part.files.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&sorted, &part.files);
            let matched = part.matched.trim_start_matches('/');
            for f in &part.files {
                prop_assert!(f.is_relative(), "{f:?}");
                prop_assert!(
                    fs::metadata(part.repo_dir.join(f)).is_ok_and(|m| m.is_file()),
                    "{f:?} is not a file of {}",
                    part.repo
                );
                prop_assert!(
                    matched.is_empty() || f == Path::new(matched) || f.starts_with(matched),
                    "{f:?} is not under {}",
                    part.matched
                );
            }
            prop_assert!(part.generated.is_empty());
        }
    }
    Ok(())
}

/// Plans twice: the same datums, ids and all, both times.
fn plan_stable(
    input: &Input,
    repos: &BTreeMap<String, PathBuf>,
) -> Result<Option<Vec<Datum>>, TestCaseError> {
    match datum::plan(input, repos) {
        Ok(datums) => {
            let again = datum::plan(input, repos).unwrap();
            prop_assert_eq!(&again, &datums);
            let ids: Vec<String> = datums.iter().map(Datum::id).collect();
            let ids_again: Vec<String> = again.iter().map(Datum::id).collect();
            prop_assert_eq!(ids, ids_again);
            check_datums(&datums, repos)?;
            Ok(Some(datums))
        }
        Err(e) => {
            check_error(&e)?;
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(config(FS_CASES))]

    /// One pfs input; in a cross or union of one it plans the same.
    #[test]
    fn pfs_datums_are_files_of_the_repo(tree in repo_tree(), glob in glob()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        build(&dir, &tree);
        let repos = BTreeMap::from([("data".to_string(), dir)]);
        let input = pfs("data", "data", &glob);
        let datums = plan_stable(&input, &repos)?;
        for wrapped in [cross(vec![input.clone()]), union(vec![input.clone()])] {
            let again = plan_stable(&wrapped, &repos)?;
            prop_assert_eq!(again.is_some(), datums.is_some());
            if let (Some(a), Some(d)) = (again, &datums) {
                prop_assert_eq!(&a, d);
            }
        }
        // Two matched paths are two datums with two ids.
        if let Some(datums) = datums {
            let mut ids: Vec<String> = datums.iter().map(Datum::id).collect();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), datums.len());
        }
    }

    /// Crosses multiply, unions add, of two or three random inputs over two
    /// repos; a cross's datums are its inputs' parts side by side.
    #[test]
    fn cross_is_a_product_and_union_a_sum(
        tree_a in repo_tree(),
        tree_b in repo_tree(),
        inputs in proptest::collection::vec((any::<bool>(), glob()), 1..4),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let repos = BTreeMap::from([
            ("ra".to_string(), tmp.path().join("ra")),
            ("rb".to_string(), tmp.path().join("rb")),
        ]);
        build(&repos["ra"], &tree_a);
        build(&repos["rb"], &tree_b);
        let children: Vec<Input> = inputs
            .iter()
            .enumerate()
            .map(|(i, (b, glob))| pfs(if *b { "rb" } else { "ra" }, &format!("in{i}"), glob))
            .collect();
        let mut each = Vec::new();
        for child in &children {
            match plan_stable(child, &repos)? {
                Some(d) => each.push(d),
                None => {
                    // One bad child: the cross and the union are refused too.
                    prop_assert!(datum::plan(&cross(children.clone()), &repos).is_err());
                    prop_assert!(datum::plan(&union(children.clone()), &repos).is_err());
                    return Ok(());
                }
            }
        }
        let crossed = plan_stable(&cross(children.clone()), &repos)?.unwrap();
        prop_assert_eq!(crossed.len(), each.iter().map(Vec::len).product::<usize>());
        for d in &crossed {
            prop_assert_eq!(d.parts.len(), children.len());
            for (i, part) in d.parts.iter().enumerate() {
                prop_assert_eq!(&part.input_name, &format!("in{i}"));
                prop_assert!(each[i].iter().any(|c| c.parts[0] == *part));
            }
        }
        let unioned = plan_stable(&union(children.clone()), &repos)?.unwrap();
        prop_assert_eq!(unioned.len(), each.iter().map(Vec::len).sum::<usize>());
        prop_assert_eq!(unioned, each.concat());
        // A union inside a cross, beside a single input.
        if children.len() >= 2 {
            let (first, rest) = children.split_first().unwrap();
            let nested = cross(vec![first.clone(), union(rest.to_vec())]);
            let got = plan_stable(&nested, &repos)?.unwrap();
            prop_assert_eq!(got.len(), each[0].len() * each[1..].iter().map(Vec::len).sum::<usize>());
        }
    }
}
