//! Datum planning: how a pipeline's input splits into the units of work the
//! user code runs on, as the platform does it (`pachctl list datum -f`).
//!
//! Locally every pfs repo is a host folder. A glob is matched against the
//! repo's paths written the platform's way (`/`, `/a`, `/a/b.txt`), with `*`
//! never crossing `/`. Each matched path is a datum part; a matched folder
//! brings every file beneath it. A cross is the product of its inputs' datums
//! (the first input varies slowest), a union their concatenation.
//!
//! Like the platform's file system, a repo holds files only: folders exist
//! because files are in them, so a host folder with no file beneath it is not
//! an entry of the repo and no glob matches it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use globset::GlobBuilder;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::spec::model::{CronInput, Input, PfsInput};

/// Name of the single tick file a cron input's datum holds. Upstream names
/// each tick file after the tick's time (RFC 3339) and leaves it empty; a
/// fixed time keeps local runs and fixtures reproducible.
pub const CRON_TICK_FILE: &str = "1970-01-01T00:00:00Z";

/// How deep a repo folder may nest; a guard against symlink loops that
/// canonical-path checks could miss (e.g. on odd file systems).
const MAX_DEPTH: usize = 256;

/// One unit of work: one part per pfs (or cron) input that takes part in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datum {
    pub parts: Vec<DatumPart>,
}

/// What one input contributes to a datum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatumPart {
    /// The input's name: the folder under `/pfs` and the environment variable.
    pub input_name: String,
    /// The repo the data comes from (several inputs may share one).
    pub repo: String,
    /// The host folder holding the repo; empty for a cron input without one.
    pub repo_dir: PathBuf,
    /// The repo path the glob matched: `/`, `/a` or `/a/b.txt`.
    pub matched: String,
    /// Regular files of this datum, relative to the repo root, sorted.
    pub files: Vec<PathBuf>,
    /// Files of `files` that do not exist on the host, with their contents
    /// (the cron tick). Everything else is read from `repo_dir`.
    pub generated: BTreeMap<PathBuf, Vec<u8>>,
}

impl Datum {
    /// A stable short id (12 hex digits) so a user can pick this datum with
    /// `--datum ID`. It depends only on which paths of which inputs the
    /// datum holds, not on file contents or on its position in the list.
    pub fn id(&self) -> String {
        let mut keys: Vec<String> = self
            .parts
            .iter()
            .map(|p| format!("{}\0{}\0{}", p.input_name, p.repo, p.matched))
            .collect();
        keys.sort();
        let digest = Sha256::digest(keys.join("\n").as_bytes());
        let mut hex = String::with_capacity(12);
        for byte in digest.iter().take(6) {
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }

    /// Human-readable, e.g. `images:/a.png × labels:/a.txt`; the repo is
    /// shown in parentheses when the input is named differently.
    pub fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|p| {
                if p.input_name == p.repo {
                    format!("{}:{}", p.input_name, p.matched)
                } else {
                    format!("{}({}):{}", p.input_name, p.repo, p.matched)
                }
            })
            .collect::<Vec<_>>()
            .join(" × ")
    }

    /// The environment variables the upstream worker sets for this datum:
    /// one per input, named after the input, holding the datum's path under
    /// `/pfs` (`images=/pfs/images/a.png`; `images=/pfs/images` for glob `/`).
    pub fn env(&self) -> Vec<(String, String)> {
        self.parts
            .iter()
            .map(|p| (p.input_name.clone(), p.pfs_path()))
            .collect()
    }

    /// Number of files across all parts.
    pub fn file_count(&self) -> usize {
        self.parts.iter().map(|p| p.files.len()).sum()
    }
}

impl DatumPart {
    /// Where the matched path appears in the container: `/pfs/<input><matched>`.
    pub fn pfs_path(&self) -> String {
        if self.matched == "/" {
            format!("/pfs/{}", self.input_name)
        } else {
            format!("/pfs/{}{}", self.input_name, self.matched)
        }
    }
}

/// Splits `input` into datums, in a deterministic order. `repos` maps each
/// repo name to the host folder holding its data.
pub fn plan(input: &Input, repos: &BTreeMap<String, PathBuf>) -> Result<Vec<Datum>> {
    plan_at(input, repos, "input")
}

/// Picks one datum by full id, unique id prefix (at least 4 characters) or
/// 1-based index, the ways `--datum` accepts.
pub fn find<'a>(datums: &'a [Datum], wanted: &str) -> Result<&'a Datum> {
    let wanted = wanted.trim();
    let ids: Vec<String> = datums.iter().map(Datum::id).collect();
    let as_index = wanted
        .parse::<usize>()
        .ok()
        .filter(|i| (1..=datums.len()).contains(i));

    let lower = wanted.to_ascii_lowercase();
    let mut by_id: Option<usize> = None;
    let mut distinct: BTreeSet<&str> = BTreeSet::new();
    if lower.len() >= 4 {
        for (i, id) in ids.iter().enumerate() {
            if id.starts_with(&lower) {
                distinct.insert(id);
                by_id.get_or_insert(i);
            }
        }
    }

    match (as_index, by_id, distinct.len()) {
        (_, Some(_), n) if n > 1 => Err(Error::Usage(format!(
            "datum `{wanted}` is ambiguous: it starts {n} ids ({}); give more of the id",
            distinct.into_iter().collect::<Vec<_>>().join(", ")
        ))),
        (Some(i), Some(j), _) if i - 1 != j => Err(Error::Usage(format!(
            "datum `{wanted}` is ambiguous: it is both datum number {i} and the start of id {}; \
             give more of the id or a shorter index",
            ids[j]
        ))),
        (_, Some(j), _) => Ok(&datums[j]),
        (Some(i), None, _) => Ok(&datums[i - 1]),
        (None, None, _) => Err(Error::Usage(no_such_datum(wanted, datums, &ids))),
    }
}

fn no_such_datum(wanted: &str, datums: &[Datum], ids: &[String]) -> String {
    if datums.is_empty() {
        return format!("no datum `{wanted}`: the input makes no datums");
    }
    let mut text = format!(
        "no datum `{wanted}`: give an id, an id prefix of at least 4 characters, \
         or a number from 1 to {}. Datums:",
        datums.len()
    );
    const SHOWN: usize = 50;
    for (i, (d, id)) in datums.iter().zip(ids).take(SHOWN).enumerate() {
        let _ = write!(text, "\n  {:>4}  {id}  {}", i + 1, d.describe());
    }
    if datums.len() > SHOWN {
        let _ = write!(text, "\n  ... and {} more", datums.len() - SHOWN);
    }
    text
}

fn plan_at(input: &Input, repos: &BTreeMap<String, PathBuf>, at: &str) -> Result<Vec<Datum>> {
    let mut kinds = Vec::new();
    if input.pfs.is_some() {
        kinds.push("pfs");
    }
    if input.cross.is_some() {
        kinds.push("cross");
    }
    if input.union.is_some() {
        kinds.push("union");
    }
    if input.cron.is_some() {
        kinds.push("cron");
    }
    if input.join.is_some() {
        kinds.push("join");
    }
    if input.group.is_some() {
        kinds.push("group");
    }
    if kinds.len() > 1 {
        return Err(Error::Usage(format!(
            "{at}: sets {}; an input must be exactly one of pfs, cross, union or cron",
            kinds.join(" and ")
        )));
    }

    if let Some(pfs) = &input.pfs {
        return plan_pfs(pfs, repos, &format!("{at}.pfs"));
    }
    if let Some(cron) = &input.cron {
        return plan_cron(cron, repos, &format!("{at}.cron"));
    }
    if let Some(children) = &input.union {
        let at = format!("{at}.union");
        if children.is_empty() {
            return Err(Error::Usage(format!(
                "{at}: a union needs at least one input"
            )));
        }
        let mut all = Vec::new();
        for (i, child) in children.iter().enumerate() {
            all.extend(plan_at(child, repos, &format!("{at}[{i}]"))?);
        }
        return Ok(all);
    }
    if let Some(children) = &input.cross {
        let at = format!("{at}.cross");
        if children.is_empty() {
            return Err(Error::Usage(format!(
                "{at}: a cross needs at least one input"
            )));
        }
        check_cross_names(children, &at)?;
        let mut product = vec![Datum { parts: Vec::new() }];
        for (i, child) in children.iter().enumerate() {
            let datums = plan_at(child, repos, &format!("{at}[{i}]"))?;
            let mut next = Vec::with_capacity(product.len().saturating_mul(datums.len()));
            for left in &product {
                for right in &datums {
                    let mut parts = left.parts.clone();
                    parts.extend(right.parts.iter().cloned());
                    next.push(Datum { parts });
                }
            }
            product = next;
        }
        return Ok(product);
    }
    for (kind, set) in [("join", &input.join), ("group", &input.group)] {
        if set.is_some() {
            return Err(Error::Usage(format!(
                "{at}: `{kind}` inputs are not supported locally (only pfs, cross, union and cron); \
                 fix: test the pipeline with a cross or union of the same repos"
            )));
        }
    }
    let extra: Vec<&str> = input.unknown.keys().map(String::as_str).collect();
    Err(Error::Usage(if extra.is_empty() {
        format!("{at}: empty input; set one of pfs, cross, union or cron")
    } else {
        format!(
            "{at}: `{}` inputs are not supported locally; set one of pfs, cross, union or cron",
            extra.join("`, `")
        )
    }))
}

/// Two inputs of a cross with the same name would land in the same `/pfs`
/// folder; the platform refuses that, and so do we.
fn check_cross_names(children: &[Input], at: &str) -> Result<()> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, child) in children.iter().enumerate() {
        let mut names = BTreeSet::new();
        input_names(child, &mut names);
        for name in names {
            if let Some(first) = seen.insert(name.clone(), i) {
                return Err(Error::Usage(format!(
                    "{at}: inputs {first} and {i} are both named `{name}`; inputs of a cross \
                     need distinct names; fix: give one of them a different `name`"
                )));
            }
        }
    }
    Ok(())
}

fn input_names(input: &Input, out: &mut BTreeSet<String>) {
    if let Some(pfs) = &input.pfs {
        out.insert(pfs.input_name().to_string());
    }
    if let Some(cron) = &input.cron {
        out.insert(cron.name.clone());
    }
    for children in [&input.cross, &input.union, &input.join, &input.group]
        .into_iter()
        .flatten()
    {
        for child in children {
            input_names(child, out);
        }
    }
}

fn plan_cron(cron: &CronInput, repos: &BTreeMap<String, PathBuf>, at: &str) -> Result<Vec<Datum>> {
    if cron.name.is_empty() {
        return Err(Error::Usage(format!("{at}: a cron input needs a `name`")));
    }
    // A folder given for the cron input's name stands for its tick repo, so
    // a user can choose the ticks; the whole repo is one datum, as upstream
    // (a cron input's glob is `/`).
    if repos.contains_key(&cron.name) {
        let pfs = PfsInput {
            repo: cron.name.clone(),
            glob: "/".into(),
            ..PfsInput::default()
        };
        return plan_pfs(&pfs, repos, at);
    }
    let tick = PathBuf::from(CRON_TICK_FILE);
    Ok(vec![Datum {
        parts: vec![DatumPart {
            input_name: cron.name.clone(),
            repo: cron.name.clone(),
            repo_dir: PathBuf::new(),
            matched: "/".into(),
            files: vec![tick.clone()],
            generated: BTreeMap::from([(tick, Vec::new())]),
        }],
    }])
}

fn plan_pfs(pfs: &PfsInput, repos: &BTreeMap<String, PathBuf>, at: &str) -> Result<Vec<Datum>> {
    let name = pfs.input_name();
    if pfs.repo.is_empty() {
        return Err(Error::Usage(format!("{at}: the input has no `repo`")));
    }
    let repo = &pfs.repo;
    let Some(dir) = repos.get(repo) else {
        return Err(Error::Usage(format!(
            "{at}: input `{name}` reads repo `{repo}`, but no folder holds that repo's data \
             (expected `inputs/{repo}/` beside the spec); fix: create it or pass `--input {repo}=DIR`"
        )));
    };
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Usage(format!(
                "{at}: input `{name}` reads repo `{repo}` from {}, which is not a folder; \
                 fix: pass `--input {repo}=DIR` with a folder",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(Error::Usage(format!(
                "{at}: input `{name}` reads repo `{repo}` from {}, which cannot be read ({e}); \
                 fix: create that folder or pass `--input {repo}=DIR`",
                dir.display()
            )))
        }
    }

    let glob = clean_glob(&pfs.glob).ok_or_else(|| {
        Error::Usage(format!(
            "{at}: input `{name}` has no `glob`; fix: set one, e.g. `/` (the whole repo) or `/*`"
        ))
    })?;
    let repo_files = scan(dir)?;

    let mut matched: Vec<&str> = Vec::new();
    if glob == "/" {
        if !repo_files.files.is_empty() {
            matched.push("/");
        }
    } else {
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                Error::Usage(format!(
                    "{at}: input `{name}` has an invalid glob `{}`: {e}",
                    pfs.glob
                ))
            })?
            .compile_matcher();
        matched.extend(
            repo_files
                .entries
                .iter()
                .map(String::as_str)
                .filter(|p| matcher.is_match(p)),
        );
    }

    Ok(matched
        .into_iter()
        .map(|m| Datum {
            parts: vec![DatumPart {
                input_name: name.to_string(),
                repo: repo.clone(),
                repo_dir: dir.clone(),
                matched: m.to_string(),
                files: repo_files.files_under(m),
                generated: BTreeMap::new(),
            }],
        })
        .collect())
}

/// Normalises a glob the way the platform does: a leading `/`, no repeated
/// or trailing `/`. `None` when empty.
fn clean_glob(glob: &str) -> Option<String> {
    let glob = glob.trim();
    if glob.is_empty() {
        return None;
    }
    let parts: Vec<&str> = glob
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    Some(format!("/{}", parts.join("/")))
}

/// The paths of a repo folder: files and the folders that hold files.
#[derive(Debug, Default)]
struct RepoFiles {
    /// `/a`, `/a/b.txt`, ... sorted: everything a glob can match but the root.
    entries: Vec<String>,
    /// `a/b.txt`, ... sorted: the regular files.
    files: Vec<String>,
}

impl RepoFiles {
    /// The files a matched path brings: itself if a file, else those beneath it.
    fn files_under(&self, matched: &str) -> Vec<PathBuf> {
        let rel = matched.trim_start_matches('/');
        if rel.is_empty() {
            return self.files.iter().map(PathBuf::from).collect();
        }
        if self.files.binary_search_by(|f| f.as_str().cmp(rel)).is_ok() {
            return vec![PathBuf::from(rel)];
        }
        let prefix = format!("{rel}/");
        let start = self.files.partition_point(|f| f.as_str() < prefix.as_str());
        self.files[start..]
            .iter()
            .take_while(|f| f.starts_with(&prefix))
            .map(PathBuf::from)
            .collect()
    }
}

fn scan(root: &Path) -> Result<RepoFiles> {
    let mut out = RepoFiles::default();
    let canonical = fs::canonicalize(root).with_path("resolve", root)?;
    let mut ancestors = vec![canonical];
    walk(root, "", &mut ancestors, &mut out)?;
    out.entries.sort();
    out.files.sort();
    Ok(out)
}

/// Walks `dir` (repo path `rel`), following symlinks as the platform's
/// upload would, and returns whether it holds any file.
fn walk(dir: &Path, rel: &str, ancestors: &mut Vec<PathBuf>, out: &mut RepoFiles) -> Result<bool> {
    if ancestors.len() > MAX_DEPTH {
        return Err(Error::Usage(format!(
            "{}: folders nest more than {MAX_DEPTH} deep (a symlink loop?)",
            dir.display()
        )));
    }
    let mut any = false;
    for entry in fs::read_dir(dir).with_path("read folder", dir)? {
        let entry = entry.with_path("read folder", dir)?;
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            return Err(Error::Usage(format!(
                "{}: file name is not UTF-8; rename it (globs match text names)",
                path.display()
            )));
        };
        let child = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::metadata(&path).map_err(|e| {
            Error::Usage(format!(
                "{}: cannot read ({e}); a broken symlink? remove it or fix its target",
                path.display()
            ))
        })?;
        if meta.is_dir() {
            let canonical = fs::canonicalize(&path).with_path("resolve", &path)?;
            if ancestors.contains(&canonical) {
                return Err(Error::Usage(format!(
                    "{}: symlink loop (points back to {})",
                    path.display(),
                    canonical.display()
                )));
            }
            ancestors.push(canonical);
            let has_files = walk(&path, &child, ancestors, out)?;
            ancestors.pop();
            if has_files {
                out.entries.push(format!("/{child}"));
                any = true;
            }
        } else if meta.is_file() {
            out.entries.push(format!("/{child}"));
            out.files.push(child);
            any = true;
        }
        // Sockets, fifos and devices are not data; the platform's upload skips them too.
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f.as_bytes()).unwrap();
        }
        dir
    }

    fn pfs(repo: &str, glob: &str) -> Input {
        Input {
            pfs: Some(PfsInput {
                repo: repo.into(),
                glob: glob.into(),
                ..PfsInput::default()
            }),
            ..Input::default()
        }
    }

    fn named(repo: &str, name: &str, glob: &str) -> Input {
        let mut i = pfs(repo, glob);
        i.pfs.as_mut().unwrap().name = Some(name.into());
        i
    }

    fn repos(list: &[(&str, &Path)]) -> BTreeMap<String, PathBuf> {
        list.iter()
            .map(|(n, p)| (n.to_string(), p.to_path_buf()))
            .collect()
    }

    fn matched(datums: &[Datum]) -> Vec<String> {
        datums.iter().map(|d| d.describe()).collect()
    }

    fn files(d: &Datum) -> Vec<String> {
        d.parts[0]
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect()
    }

    #[test]
    fn root_glob_is_one_datum_with_everything() {
        let r = repo(&["b.txt", "a/x.txt", "a/y/z.txt"]);
        let d = plan(&pfs("data", "/"), &repos(&[("data", r.path())])).unwrap();
        assert_eq!(matched(&d), ["data:/"]);
        assert_eq!(files(&d[0]), ["a/x.txt", "a/y/z.txt", "b.txt"]);
        assert_eq!(d[0].env(), [("data".into(), "/pfs/data".into())]);
    }

    #[test]
    fn star_is_each_top_level_entry() {
        let r = repo(&["b.txt", "a/x.txt", "a/y/z.txt", "c/d.txt"]);
        let d = plan(&pfs("data", "/*"), &repos(&[("data", r.path())])).unwrap();
        assert_eq!(matched(&d), ["data:/a", "data:/b.txt", "data:/c"]);
        assert_eq!(files(&d[0]), ["a/x.txt", "a/y/z.txt"]);
        assert_eq!(files(&d[1]), ["b.txt"]);
        assert_eq!(d[1].env(), [("data".into(), "/pfs/data/b.txt".into())]);
        assert_eq!(d[0].env(), [("data".into(), "/pfs/data/a".into())]);
    }

    #[test]
    fn star_star_is_each_second_level_entry() {
        let r = repo(&["top.txt", "a/x.txt", "a/y/z.txt", "c/d.txt"]);
        let d = plan(&pfs("data", "/*/*"), &repos(&[("data", r.path())])).unwrap();
        assert_eq!(matched(&d), ["data:/a/x.txt", "data:/a/y", "data:/c/d.txt"]);
        assert_eq!(files(&d[1]), ["a/y/z.txt"]);
    }

    #[test]
    fn other_patterns_do_not_cross_slash() {
        let r = repo(&["a.txt", "b.csv", "sub/c.txt", "x/1", "y/2", "z/3"]);
        let rs = repos(&[("data", r.path())]);
        assert_eq!(
            matched(&plan(&pfs("data", "/*.txt"), &rs).unwrap()),
            ["data:/a.txt"]
        );
        assert_eq!(
            matched(&plan(&pfs("data", "/{x,z}/*"), &rs).unwrap()),
            ["data:/x/1", "data:/z/3"]
        );
        // The platform adds the leading slash and drops a trailing one.
        assert_eq!(
            matched(&plan(&pfs("data", "*.csv"), &rs).unwrap()),
            ["data:/b.csv"]
        );
        assert_eq!(
            matched(&plan(&pfs("data", "/sub/"), &rs).unwrap()),
            ["data:/sub"]
        );
    }

    #[test]
    fn empty_folders_are_not_entries() {
        let r = repo(&["a/x.txt"]);
        fs::create_dir_all(r.path().join("empty/deeper")).unwrap();
        let d = plan(&pfs("data", "/*"), &repos(&[("data", r.path())])).unwrap();
        assert_eq!(matched(&d), ["data:/a"]);
        let empty = repo(&[]);
        let d = plan(&pfs("data", "/"), &repos(&[("data", empty.path())])).unwrap();
        assert!(d.is_empty());
    }

    #[test]
    fn cross_is_product_first_slowest_and_union_is_sum() {
        let a = repo(&["1", "2"]);
        let b = repo(&["x", "y", "z"]);
        let rs = repos(&[("A", a.path()), ("B", b.path())]);
        let cross = Input {
            cross: Some(vec![pfs("A", "/*"), pfs("B", "/*")]),
            ..Input::default()
        };
        let d = plan(&cross, &rs).unwrap();
        assert_eq!(
            matched(&d),
            [
                "A:/1 × B:/x",
                "A:/1 × B:/y",
                "A:/1 × B:/z",
                "A:/2 × B:/x",
                "A:/2 × B:/y",
                "A:/2 × B:/z"
            ]
        );
        assert_eq!(
            d[4].env(),
            [
                ("A".into(), "/pfs/A/2".into()),
                ("B".into(), "/pfs/B/y".into())
            ]
        );
        let union = Input {
            union: Some(vec![named("A", "C", "/*"), named("B", "C", "/*")]),
            ..Input::default()
        };
        let d = plan(&union, &rs).unwrap();
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].env(), [("C".into(), "/pfs/C/1".into())]);
        assert_eq!(d[0].describe(), "C(A):/1");
    }

    #[test]
    fn same_repo_under_two_names() {
        let a = repo(&["1", "2"]);
        let rs = repos(&[("A", a.path())]);
        let cross = Input {
            cross: Some(vec![named("A", "left", "/*"), named("A", "right", "/")]),
            ..Input::default()
        };
        let d = plan(&cross, &rs).unwrap();
        assert_eq!(
            matched(&d),
            ["left(A):/1 × right(A):/", "left(A):/2 × right(A):/"]
        );
    }

    #[test]
    fn cross_with_empty_side_has_no_datums() {
        let a = repo(&["1", "2"]);
        let rs = repos(&[("A", a.path())]);
        let cross = Input {
            cross: Some(vec![named("A", "l", "/*"), named("A", "r", "/*.nothing")]),
            ..Input::default()
        };
        assert!(plan(&cross, &rs).unwrap().is_empty());
    }

    #[test]
    fn cross_names_must_differ() {
        let a = repo(&["1"]);
        let rs = repos(&[("A", a.path())]);
        let cross = Input {
            cross: Some(vec![pfs("A", "/*"), pfs("A", "/")]),
            ..Input::default()
        };
        let e = plan(&cross, &rs).unwrap_err().to_string();
        assert!(e.contains("both named `A`"), "{e}");
    }

    #[test]
    fn missing_repo_names_input_folder_and_fix() {
        let e = plan(&pfs("images", "/*"), &BTreeMap::new()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("inputs/images/"), "{text}");
        assert!(text.contains("--input images=DIR"), "{text}");
        assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
        let gone = PathBuf::from("/nonexistent/for/sure");
        let e = plan(&pfs("images", "/*"), &repos(&[("images", &gone)])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/for/sure"), "{e}");
    }

    #[test]
    fn join_group_and_bad_globs_are_usage_errors() {
        let a = repo(&["1"]);
        let rs = repos(&[("A", a.path())]);
        for input in [
            Input {
                join: Some(vec![pfs("A", "/*")]),
                ..Input::default()
            },
            Input {
                group: Some(vec![pfs("A", "/*")]),
                ..Input::default()
            },
        ] {
            let e = plan(&input, &rs).unwrap_err().to_string();
            assert!(e.contains("not supported locally"), "{e}");
        }
        assert!(plan(&pfs("A", "/[a"), &rs).is_err());
        assert!(plan(&pfs("A", ""), &rs).is_err());
        assert!(plan(&Input::default(), &rs).is_err());
        let both = Input {
            pfs: pfs("A", "/").pfs,
            union: Some(vec![]),
            ..Input::default()
        };
        assert!(plan(&both, &rs).is_err());
    }

    #[test]
    fn cron_is_one_tick() {
        let input = Input {
            cron: Some(CronInput {
                name: "tick".into(),
                spec: "@every 1m".into(),
                ..CronInput::default()
            }),
            ..Input::default()
        };
        let d = plan(&input, &BTreeMap::new()).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].env(), [("tick".into(), "/pfs/tick".into())]);
        assert_eq!(d[0].parts[0].files, [PathBuf::from(CRON_TICK_FILE)]);
        assert_eq!(d[0].parts[0].generated[&PathBuf::from(CRON_TICK_FILE)], b"");
        // A folder for it replaces the generated tick.
        let r = repo(&["2024-01-01T00:00:00Z"]);
        let d = plan(&input, &repos(&[("tick", r.path())])).unwrap();
        assert!(d[0].parts[0].generated.is_empty());
        assert_eq!(files(&d[0]), ["2024-01-01T00:00:00Z"]);
    }

    #[test]
    fn ids_are_stable_and_findable() {
        let a = repo(&["1", "2", "3"]);
        let rs = repos(&[("A", a.path())]);
        let d = plan(&pfs("A", "/*"), &rs).unwrap();
        let again = plan(&pfs("A", "/*"), &rs).unwrap();
        let ids: Vec<String> = d.iter().map(Datum::id).collect();
        assert_eq!(ids, again.iter().map(Datum::id).collect::<Vec<_>>());
        assert!(ids.iter().all(|i| i.len() == 12));
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 3);

        assert_eq!(find(&d, &ids[1]).unwrap(), &d[1]);
        assert_eq!(find(&d, &ids[2][..6].to_uppercase()).unwrap(), &d[2]);
        assert_eq!(find(&d, "1").unwrap(), &d[0]);
        assert_eq!(find(&d, "3").unwrap(), &d[2]);
        let e = find(&d, "4").unwrap_err().to_string();
        assert!(e.contains(&ids[0]) && e.contains("A:/3"), "{e}");
        assert!(find(&d, "zzzz").is_err());
        assert!(find(&[], "1").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_loops_refused() {
        let r = repo(&["real/x.txt"]);
        std::os::unix::fs::symlink(r.path().join("real"), r.path().join("link")).unwrap();
        let d = plan(&pfs("A", "/*"), &repos(&[("A", r.path())])).unwrap();
        assert_eq!(matched(&d), ["A:/link", "A:/real"]);
        assert_eq!(files(&d[0]), ["link/x.txt"]);

        std::os::unix::fs::symlink(r.path(), r.path().join("real/up")).unwrap();
        let e = plan(&pfs("A", "/*"), &repos(&[("A", r.path())])).unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
    }
}
