//! Datum planning: how a pipeline's input splits into the units of work the
//! user code runs on, as the platform does it (`pachctl list datum -f`).
//!
//! Locally every pfs repo is a host folder. A glob is matched against the
//! repo's paths written the platform's way (`/`, `/a`, `/a/b.txt`), with `*`
//! never crossing `/`. Each matched path is a datum part; a matched folder
//! brings every file beneath it. A cross is the product of its inputs' datums
//! (the first input varies fastest, as on the platform), a union their
//! concatenation.
//!
//! Like the platform's file system, a repo holds files only: folders exist
//! because files are in them, so a host folder with no file beneath it is not
//! an entry of the repo and no glob matches it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::spec::model::{CronInput, Input, InputKind, PfsInput};

pub mod glob;
mod join;

use glob::Glob;

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
        crate::text::hex(&digest[..6])
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
    ///
    /// A group datum holds several parts of one input; the platform sets the
    /// variable once per part and the last one wins, so it is set once here,
    /// to the last part's path.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            match out.iter_mut().find(|(name, _)| *name == p.input_name) {
                Some(slot) => slot.1 = p.pfs_path(),
                None => out.push((p.input_name.clone(), p.pfs_path())),
            }
        }
        out
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
    plan_with_warnings(input, repos).map(|(datums, _)| datums)
}

/// [`plan`], with what the user should hear about the input folders: each
/// symlink left out, and why.
pub fn plan_with_warnings(
    input: &Input,
    repos: &BTreeMap<String, PathBuf>,
) -> Result<(Vec<Datum>, Vec<String>)> {
    let planning = Planning::new(repos);
    let datums = plan_at(input, &planning, "input")?
        .into_iter()
        .map(finish)
        .collect();
    Ok((datums, planning.warnings.into_inner().into_iter().collect()))
}

/// The repo folders of a planning, and the warnings their walks gave (each
/// once: several inputs may read one repo).
struct Planning<'a> {
    repos: &'a BTreeMap<String, PathBuf>,
    warnings: std::cell::RefCell<BTreeSet<String>>,
}

impl<'a> Planning<'a> {
    fn new(repos: &'a BTreeMap<String, PathBuf>) -> Self {
        Planning {
            repos,
            warnings: Default::default(),
        }
    }

    fn warn(&self, warnings: &[String]) {
        self.warnings.borrow_mut().extend(warnings.iter().cloned());
    }
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

/// The datums as JSON for tools (`--list-datums --json`): an array of
/// `{ "id", "index", "inputs": [ { "name", "repo", "glob_path", "files" } ] }`,
/// `index` counting from 1 (the number `--datum` takes), `glob_path` the path
/// the glob matched and `files` the repo paths of the datum's files (both
/// written `/a/b.txt`), inputs in the datum's order.
pub fn to_json(datums: &[Datum]) -> serde_json::Value {
    serde_json::Value::Array(
        datums
            .iter()
            .enumerate()
            .map(|(i, d)| {
                serde_json::json!({
                    "id": d.id(),
                    "index": i + 1,
                    "inputs": d.parts.iter().map(|p| serde_json::json!({
                        "name": p.input_name,
                        "repo": p.repo,
                        "glob_path": p.matched,
                        "files": p.files.iter()
                            .map(|f| format!("/{}", f.to_string_lossy()))
                            .collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Why `input` makes no datums, for a warning: each pfs input that matched
/// nothing, with the first entries its folder holds, and each join whose
/// inputs all matched but share no key. Empty when nothing explains it (or
/// the input does make datums).
pub fn explain_empty(input: &Input, repos: &BTreeMap<String, PathBuf>) -> Vec<String> {
    let mut notes = Vec::new();
    explain_at(input, repos, "input", &mut notes);
    notes
}

/// Returns how many datums `input` makes (0 on an error, which planning reports).
fn explain_at(
    input: &Input,
    repos: &BTreeMap<String, PathBuf>,
    at: &str,
    notes: &mut Vec<String>,
) -> usize {
    if let Some(pfs) = &input.pfs {
        let at = format!("{at}.pfs");
        let Ok(datums) = plan_pfs(pfs, &Planning::new(repos), &at) else {
            return 0;
        };
        if datums.is_empty() {
            let dir = repos.get(&pfs.repo).cloned().unwrap_or_default();
            notes.push(format!(
                "{at}: input `{}` (repo `{}`, glob `{}`) matched nothing in {}; {}",
                pfs.input_name(),
                pfs.repo,
                pfs.glob,
                dir.display(),
                folder_summary(&dir)
            ));
        }
        return datums.len();
    }
    if input.cron.is_some() {
        return 1;
    }
    let mut total = 0;
    for (kind, children) in input.children() {
        let at = format!("{at}.{kind}");
        let counts: Vec<usize> = children
            .iter()
            .enumerate()
            .map(|(i, c)| explain_at(c, repos, &format!("{at}[{i}]"), notes))
            .collect();
        total = match plan_at(input, &Planning::new(repos), "input") {
            Ok(d) => d.len(),
            Err(_) => 0,
        };
        if kind == "join" && total == 0 && counts.iter().all(|n| *n > 0) {
            let keys: Vec<String> = children
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut seen: Vec<String> = Vec::new();
                    for part in plan_at(c, &Planning::new(repos), &at)
                        .unwrap_or_default()
                        .into_iter()
                        .flatten()
                    {
                        if !seen.contains(&part.join_on) {
                            seen.push(part.join_on);
                        }
                    }
                    let shown: Vec<String> =
                        seen.iter().take(3).map(|k| format!("`{k}`")).collect();
                    let more = seen.len().saturating_sub(3);
                    format!(
                        "[{i}] has {}{}",
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    )
                })
                .collect();
            notes.push(format!(
                "{at}: every input matched, but no `join_on` key is shared by all of them \
                 (keys: {}); check the capture groups of the globs and the `join_on` templates, \
                 or set `outer_join` on an input to keep its unmatched datums",
                keys.join("; ")
            ));
        }
    }
    total
}

/// `it holds a.txt, b/, c/ and 4 more`, or that the folder is empty.
fn folder_summary(dir: &Path) -> String {
    const SHOWN: usize = 5;
    let Ok(files) = scan(dir) else {
        return "the folder cannot be read".to_string();
    };
    if files.files.is_empty() {
        return "the folder holds no files (a folder without files holds no data)".to_string();
    }
    let top: Vec<String> = files
        .entries
        .iter()
        .filter(|e| e.rfind('/') == Some(0))
        .map(|e| {
            let rel = &e[1..];
            if files
                .files
                .binary_search_by(|f| f.as_str().cmp(rel))
                .is_ok()
            {
                rel.to_string()
            } else {
                format!("{rel}/")
            }
        })
        .collect();
    let more = top.len().saturating_sub(SHOWN);
    format!(
        "it holds {}{}",
        top.iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
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

/// A datum part while planning, with the keys a `join` or `group` above it
/// sorts it by (the platform keeps them on each input of a datum).
#[derive(Debug, Clone)]
pub(crate) struct Keyed {
    pub(crate) part: DatumPart,
    pub(crate) join_on: String,
    pub(crate) group_by: String,
    pub(crate) outer_join: bool,
}

/// A datum while planning: its parts, in the order the inputs produced them.
pub(crate) type Tuple = Vec<Keyed>;

/// The datum the user sees: parts ordered by input name, as the platform
/// orders a datum's inputs (a stable sort: parts of one name keep their order).
fn finish(mut tuple: Tuple) -> Datum {
    tuple.sort_by(|a, b| a.part.input_name.cmp(&b.part.input_name));
    Datum {
        parts: tuple.into_iter().map(|k| k.part).collect(),
    }
}

fn plan_at(input: &Input, repos: &Planning, at: &str) -> Result<Vec<Tuple>> {
    let (kind, children) = match input.kind() {
        Ok(InputKind::Pfs(pfs)) => return plan_pfs(pfs, repos, &format!("{at}.pfs")),
        Ok(InputKind::Cron(cron)) => return plan_cron(cron, repos, &format!("{at}.cron")),
        Ok(InputKind::Cross(list)) => ("cross", list),
        Ok(InputKind::Union(list)) => ("union", list),
        Ok(InputKind::Join(list)) => ("join", list),
        Ok(InputKind::Group(list)) => ("group", list),
        Err(kinds) => return Err(Error::Usage(not_one_kind(input, &kinds, at))),
    };
    let at = format!("{at}.{kind}");
    if children.is_empty() {
        return Err(Error::Usage(format!(
            "{at}: a {kind} needs at least one input"
        )));
    }
    if kind == "cross" {
        check_cross_names(children, &at)?;
    }
    let mut planned = Vec::with_capacity(children.len());
    for (i, child) in children.iter().enumerate() {
        planned.push(plan_at(child, repos, &format!("{at}[{i}]"))?);
    }
    Ok(match kind {
        "union" => planned.into_iter().flatten().collect(),
        "cross" => cross(planned),
        "join" => join::join(planned),
        _ => join::group(planned),
    })
}

/// Why a node that sets no kind, or several, cannot be planned.
fn not_one_kind(input: &Input, kinds: &[&str], at: &str) -> String {
    const ONE_OF: &str = "pfs, cross, union, join, group or cron";
    let extra: Vec<&str> = input.unknown.keys().map(String::as_str).collect();
    if kinds.len() > 1 {
        format!(
            "{at}: sets {}; an input must be exactly one of {ONE_OF}",
            kinds.join(" and ")
        )
    } else if extra.is_empty() {
        format!("{at}: empty input; set one of {ONE_OF}")
    } else {
        format!(
            "{at}: `{}` inputs are not supported locally; set one of {ONE_OF}",
            extra.join("`, `")
        )
    }
}

/// The product of the inputs' datums, the first input varying fastest, as
/// the platform's cross iterator advances them (like an odometer whose first
/// wheel turns first).
fn cross(children: Vec<Vec<Tuple>>) -> Vec<Tuple> {
    let mut product: Vec<Tuple> = vec![Vec::new()];
    for datums in children {
        let mut next = Vec::with_capacity(product.len().saturating_mul(datums.len()));
        for right in &datums {
            for left in &product {
                let mut parts = left.clone();
                parts.extend(right.iter().cloned());
                next.push(parts);
            }
        }
        product = next;
    }
    product
}

/// Two inputs of a cross with the same name would land in the same `/pfs`
/// folder; the platform refuses that, and so do we.
fn check_cross_names(children: &[Input], at: &str) -> Result<()> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, child) in children.iter().enumerate() {
        let mut names = BTreeSet::new();
        child.visit("", &mut |node| {
            names.extend(node.input.pfs.as_ref().map(|p| p.input_name().to_string()));
            names.extend(node.input.cron.as_ref().map(|c| c.name.clone()));
        });
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

fn plan_cron(cron: &CronInput, repos: &Planning, at: &str) -> Result<Vec<Tuple>> {
    if cron.name.is_empty() {
        return Err(Error::Usage(format!("{at}: a cron input needs a `name`")));
    }
    // A folder given for the cron input's name stands for its tick repo, so
    // a user can choose the ticks; the whole repo is one datum, as upstream
    // (a cron input's glob is `/`).
    if repos.repos.contains_key(&cron.name) {
        let pfs = PfsInput {
            repo: cron.name.clone(),
            glob: "/".into(),
            ..PfsInput::default()
        };
        return plan_pfs(&pfs, repos, at);
    }
    let tick = PathBuf::from(CRON_TICK_FILE);
    Ok(vec![vec![Keyed {
        part: DatumPart {
            input_name: cron.name.clone(),
            repo: cron.name.clone(),
            repo_dir: PathBuf::new(),
            matched: "/".into(),
            files: vec![tick.clone()],
            generated: BTreeMap::from([(tick, Vec::new())]),
        },
        join_on: String::new(),
        group_by: String::new(),
        outer_join: false,
    }]])
}

/// The host folder of a pfs input's repo, checked.
fn repo_dir<'a>(
    pfs: &PfsInput,
    repos: &'a BTreeMap<String, PathBuf>,
    at: &str,
) -> Result<&'a PathBuf> {
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
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(Error::Usage(format!(
            "{at}: input `{name}` reads repo `{repo}` from {}, which is not a folder; \
             fix: pass `--input {repo}=DIR` with a folder",
            dir.display()
        ))),
        Err(e) => Err(Error::Usage(format!(
            "{at}: input `{name}` reads repo `{repo}` from {}, which cannot be read ({e}); \
             fix: create that folder or pass `--input {repo}=DIR`",
            dir.display()
        ))),
    }
}

/// Compiles a pfs input's glob the platform's way (cleaned first).
pub(crate) fn compile_glob(pfs: &PfsInput, at: &str) -> Result<Glob> {
    let name = pfs.input_name();
    let cleaned = glob::clean(&pfs.glob).ok_or_else(|| {
        Error::Usage(format!(
            "{at}: input `{name}` has no `glob`; fix: set one, e.g. `/` (the whole repo) or `/*`"
        ))
    })?;
    Glob::new(&cleaned).map_err(|e| {
        Error::Usage(format!(
            "{at}: input `{name}` has an invalid glob `{}`: {e}",
            pfs.glob
        ))
    })
}

fn plan_pfs(pfs: &PfsInput, repos: &Planning, at: &str) -> Result<Vec<Tuple>> {
    let dir = repo_dir(pfs, repos.repos, at)?;
    let glob = compile_glob(pfs, at)?;
    let repo_files = scan(dir)?;
    repos.warn(&repo_files.warnings);
    let glob_error = |e: glob::GlobError| Error::Usage(format!("{at}: {e}"));

    let mut matched: Vec<(&str, Vec<String>)> = Vec::new();
    if glob.as_str() == "/" {
        if !repo_files.files.is_empty() {
            let captures = glob.captures("/").map_err(glob_error)?;
            matched.push(("/", captures.unwrap_or_default()));
        }
    } else {
        for entry in &repo_files.entries {
            if let Some(captures) = glob.captures(entry).map_err(glob_error)? {
                matched.push((entry, captures));
            }
        }
    }

    let join_on = pfs.join_on.as_deref().unwrap_or("");
    let group_by = pfs.group_by.as_deref().unwrap_or("");
    Ok(matched
        .into_iter()
        .map(|(m, captures)| {
            vec![Keyed {
                part: DatumPart {
                    input_name: pfs.input_name().to_string(),
                    repo: pfs.repo.clone(),
                    repo_dir: dir.clone(),
                    matched: m.to_string(),
                    files: repo_files.files_under(m),
                    generated: BTreeMap::new(),
                },
                join_on: glob::expand(join_on, &captures),
                group_by: glob::expand(group_by, &captures),
                outer_join: pfs.outer_join,
            }]
        })
        .collect())
}

/// The paths of a repo folder: files and the folders that hold files.
#[derive(Debug, Default)]
struct RepoFiles {
    /// `/a`, `/a/b.txt`, ... sorted: everything a glob can match but the root.
    entries: Vec<String>,
    /// `a/b.txt`, ... sorted: the regular files.
    files: Vec<String>,
    /// Symlinks left out, each with why.
    warnings: Vec<String>,
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

/// A walk of one repo folder. Symlinks are followed as the platform's
/// upload reads them, within bounds: one that leads out of the folder
/// (`-> /proc/self/environ`, `-> /etc/ssl/certs`) or nowhere is left out
/// with a warning, and a folder is entered through a symlink at most once,
/// so that links cannot make the walk loop or grow exponentially.
struct Walk {
    root: PathBuf,
    /// Folders entered through a symlink, with the path that entered.
    linked: BTreeMap<PathBuf, String>,
    out: RepoFiles,
}

fn scan(root: &Path) -> Result<RepoFiles> {
    let canonical = fs::canonicalize(root).with_path("resolve", root)?;
    let mut walk = Walk {
        root: canonical.clone(),
        linked: BTreeMap::new(),
        out: RepoFiles::default(),
    };
    let mut ancestors = vec![canonical];
    walk.walk(root, "", &mut ancestors)?;
    let mut out = walk.out;
    out.entries.sort();
    out.files.sort();
    Ok(out)
}

impl Walk {
    /// Walks `dir` (repo path `rel`); returns whether it holds any file.
    fn walk(&mut self, dir: &Path, rel: &str, ancestors: &mut Vec<PathBuf>) -> Result<bool> {
        if ancestors.len() > MAX_DEPTH {
            return Err(Error::Usage(format!(
                "{}: folders nest more than {MAX_DEPTH} deep\n  fix: flatten the folders",
                dir.display()
            )));
        }
        let mut any = false;
        for entry in fs::read_dir(dir).with_path("read folder", dir)? {
            crate::interrupt::check()?;
            let entry = entry.with_path("read folder", dir)?;
            let path = entry.path();
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                return Err(Error::Usage(format!(
                    "{}: file name is not UTF-8 (globs match text names)\n  fix: rename it to a \
                     UTF-8 name, or move it out of the input's folder",
                    path.display()
                )));
            };
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let is_link = entry.file_type().with_path("read", &path)?.is_symlink();
            let target = if is_link {
                match self.link_target(&path, &child)? {
                    Some(target) => Some(target),
                    None => continue,
                }
            } else {
                None
            };
            let meta = fs::metadata(&path).with_path("read", &path)?;
            if meta.is_dir() {
                let canonical = match target {
                    Some(target) => target,
                    None => fs::canonicalize(&path).with_path("resolve", &path)?,
                };
                if ancestors.contains(&canonical) {
                    return Err(Error::Usage(format!(
                        "{}: symlink loop (points back to {})\n  fix: remove the symlink",
                        path.display(),
                        canonical.display()
                    )));
                }
                if is_link {
                    if let Some(first) = self.linked.get(&canonical) {
                        self.out.warnings.push(format!(
                            "input folder {}: `{child}` is a symlink to a folder already read through `{first}`; it is left out (a folder is read through one symlink at most)",
                            self.root.display()
                        ));
                        continue;
                    }
                    self.linked.insert(canonical.clone(), child.clone());
                }
                ancestors.push(canonical);
                let has_files = self.walk(&path, &child, ancestors)?;
                ancestors.pop();
                if has_files {
                    self.out.entries.push(format!("/{child}"));
                    any = true;
                }
            } else if meta.is_file() {
                self.out.entries.push(format!("/{child}"));
                self.out.files.push(child);
                any = true;
            }
            // Sockets, fifos and devices are not data; the platform's upload skips them too.
        }
        Ok(any)
    }

    /// Where the symlink `path` (repo path `child`) leads, when that is
    /// inside the repo folder; `None` (and a warning) otherwise.
    fn link_target(&mut self, path: &Path, child: &str) -> Result<Option<PathBuf>> {
        let shown = fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let left_out = |why: &str| {
            format!(
                "input folder {}: `{child}` is a symlink to `{shown}`, {why}; it is left out",
                self.root.display()
            )
        };
        let warning = match fs::canonicalize(path) {
            Err(_) => left_out("which does not exist"),
            Ok(target) if !target.starts_with(&self.root) => {
                left_out("outside the input folder (only what is inside is data)")
            }
            Ok(target) => return Ok(Some(target)),
        };
        self.out.warnings.push(warning);
        Ok(None)
    }
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
    fn cross_is_product_first_fastest_and_union_is_sum() {
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
                "A:/2 × B:/x",
                "A:/1 × B:/y",
                "A:/2 × B:/y",
                "A:/1 × B:/z",
                "A:/2 × B:/z"
            ]
        );
        assert_eq!(
            d[3].env(),
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
    fn empty_join_or_group_and_bad_globs_are_usage_errors() {
        let a = repo(&["1"]);
        let rs = repos(&[("A", a.path())]);
        for input in [
            Input {
                join: Some(vec![]),
                ..Input::default()
            },
            Input {
                group: Some(vec![]),
                ..Input::default()
            },
        ] {
            let e = plan(&input, &rs).unwrap_err().to_string();
            assert!(e.contains("needs at least one input"), "{e}");
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
    fn symlinks_out_of_the_input_or_nowhere_are_left_out_with_a_warning() {
        let r = repo(&["data/a.txt"]);
        let outside = repo(&["secret.txt", "dir/f.txt"]);
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, r.path().join(name)).unwrap()
        };
        link(Path::new("/proc/self/environ"), "data/environ");
        link(&outside.path().join("secret.txt"), "data/secret");
        link(&outside.path().join("dir"), "data/certs");
        link(Path::new("../.."), "data/up");
        link(Path::new("missing"), "data/gone");
        link(Path::new("a.txt"), "data/alias");
        let (d, warnings) =
            plan_with_warnings(&pfs("A", "/*/*"), &repos(&[("A", r.path())])).unwrap();
        assert_eq!(matched(&d), ["A:/data/a.txt", "A:/data/alias"]);
        assert_eq!(warnings.len(), 5, "{warnings:#?}");
        for name in ["environ", "secret", "certs", "up"] {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains(&format!("`data/{name}`"))
                        && w.contains("outside the input folder")),
                "{name}: {warnings:#?}"
            );
        }
        assert!(warnings
            .iter()
            .any(|w| w.contains("`data/gone`") && w.contains("does not exist")));
    }

    #[test]
    fn a_folder_is_read_through_one_symlink_at_most() {
        // Each level links twice to the next: followed naively, 2^24 paths.
        let r = repo(&["l24/leaf.txt"]);
        for level in 0..24 {
            let dir = r.path().join(format!("l{level}"));
            fs::create_dir_all(&dir).unwrap();
            for name in ["x", "y"] {
                std::os::unix::fs::symlink(
                    r.path().join(format!("l{}", level + 1)),
                    dir.join(name),
                )
                .unwrap();
            }
        }
        let (d, warnings) = plan_with_warnings(&pfs("A", "/"), &repos(&[("A", r.path())])).unwrap();
        let files = files(&d[0]);
        assert!(files.len() <= 25, "{files:?}");
        assert!(files.contains(&"l24/leaf.txt".to_string()), "{files:?}");
        assert!(!warnings.is_empty());
        assert!(warnings[0].contains("already read through"), "{warnings:?}");
    }

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

    // ----- join and group: tables from the platform's docs and its iterator tests

    /// A pfs input with the join and group fields.
    fn keyed(
        repo: &str,
        name: &str,
        glob: &str,
        join_on: &str,
        group_by: &str,
        outer: bool,
    ) -> Input {
        let mut i = named(repo, name, glob);
        let p = i.pfs.as_mut().unwrap();
        p.join_on = (!join_on.is_empty()).then(|| join_on.to_string());
        p.group_by = (!group_by.is_empty()).then(|| group_by.to_string());
        p.outer_join = outer;
        i
    }

    fn node(kind: &str, children: Vec<Input>) -> Input {
        let mut i = Input::default();
        match kind {
            "cross" => i.cross = Some(children),
            "union" => i.union = Some(children),
            "join" => i.join = Some(children),
            "group" => i.group = Some(children),
            _ => unreachable!(),
        }
        i
    }

    /// Each datum as its matched paths run together, as the platform's
    /// iterator tests write them (`/foo12/foo21`).
    fn keys(datums: &[Datum]) -> Vec<String> {
        datums
            .iter()
            .map(|d| d.parts.iter().map(|p| p.matched.as_str()).collect())
            .collect()
    }

    /// The iterator tests' repo: `/foo0` … `/foo49`, all the same size.
    fn foo_repo() -> tempfile::TempDir {
        let names: Vec<String> = (0..50).map(|i| format!("foo{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        repo(&refs)
    }

    #[test]
    fn docs_inner_join_pairs_matching_ids() {
        let readings = repo(&[
            "ID1234/file1.txt",
            "ID1234/file2.txt",
            "ID1234/file3.txt",
            "ID1234/file4.txt",
            "ID1234/file5.txt",
        ]);
        let names: Vec<String> = (1..=8).map(|i| format!("file{i}.txt")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let parameters = repo(&refs);
        let rs = repos(&[
            ("readings", readings.path()),
            ("parameters", parameters.path()),
        ]);
        let spec = |outer: bool| {
            node(
                "join",
                vec![
                    keyed("readings", "readings", "/*/(*).txt", "$1", "", false),
                    keyed("parameters", "parameters", "/(*).txt", "$1", "", outer),
                ],
            )
        };
        let d = plan(&spec(false), &rs).unwrap();
        // Inputs are ordered by name within a datum, as on the platform.
        assert_eq!(
            matched(&d),
            (1..=5)
                .map(|i| format!("parameters:/file{i}.txt × readings:/ID1234/file{i}.txt"))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            d[0].env(),
            [
                ("parameters".into(), "/pfs/parameters/file1.txt".into()),
                ("readings".into(), "/pfs/readings/ID1234/file1.txt".into())
            ]
        );

        // Outer join on parameters: the five pairs, then one datum for each
        // parameter file without a reading, holding that file alone.
        let d = plan(&spec(true), &rs).unwrap();
        let mut want: Vec<String> = (1..=5)
            .map(|i| format!("parameters:/file{i}.txt × readings:/ID1234/file{i}.txt"))
            .collect();
        want.extend((6..=8).map(|i| format!("parameters:/file{i}.txt")));
        assert_eq!(matched(&d), want);
        assert_eq!(d[5].parts.len(), 1);
        // Ids of pairs do not change when the join becomes outer.
        assert_eq!(
            plan(&spec(false), &rs).unwrap()[2].id(),
            plan(&spec(true), &rs).unwrap()[2].id()
        );
    }

    #[test]
    fn docs_group_gathers_a_patients_lab_results() {
        let files = [
            "LIPID-patientID1-labID1.txt",
            "LIPID-patientID2-labID1.txt",
            "LIPID-patientID1-labID2.txt",
            "LIPID-patientID3-labID3.txt",
            "LIPID-patientID1-labID3.txt",
            "LIPID-patientID2-labID3.txt",
        ];
        let r = repo(&files);
        let rs = repos(&[("labresults", r.path())]);
        let spec = node(
            "group",
            vec![keyed(
                "labresults",
                "labresults",
                "/*-(*)-lab*.txt",
                "",
                "$1",
                false,
            )],
        );
        let d = plan(&spec, &rs).unwrap();
        assert_eq!(
            keys(&d),
            [
                "/LIPID-patientID1-labID1.txt/LIPID-patientID1-labID2.txt/LIPID-patientID1-labID3.txt",
                "/LIPID-patientID2-labID1.txt/LIPID-patientID2-labID3.txt",
                "/LIPID-patientID3-labID3.txt",
            ]
        );
        assert_eq!(d[0].file_count(), 3);
        assert!(d
            .iter()
            .all(|d| d.parts.iter().all(|p| p.input_name == "labresults")));
        // One variable per input, set to the last part's path.
        assert_eq!(
            d[1].env(),
            [(
                "labresults".into(),
                "/pfs/labresults/LIPID-patientID2-labID3.txt".into()
            )]
        );
        let ids: BTreeSet<String> = d.iter().map(Datum::id).collect();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn iterator_tests_basic_union_cross_and_zero() {
        let r = foo_repo();
        let rs = repos(&[("data", r.path())]);
        let in1 = pfs("data", "/foo?1");
        let in2 = named("data", "data2", "/foo*2");
        assert_eq!(
            keys(&plan(&in1, &rs).unwrap()),
            ["/foo11", "/foo21", "/foo31", "/foo41"]
        );
        assert_eq!(
            keys(&plan(&in2, &rs).unwrap()),
            ["/foo12", "/foo2", "/foo22", "/foo32", "/foo42"]
        );
        let zero = pfs("data", "!(**)");
        assert!(plan(&zero, &rs).unwrap().is_empty());
        let union = node("union", vec![in1.clone(), in2.clone()]);
        assert_eq!(
            keys(&plan(&union, &rs).unwrap()),
            [
                "/foo11", "/foo21", "/foo31", "/foo41", "/foo12", "/foo2", "/foo22", "/foo32",
                "/foo42"
            ]
        );
        let cross = node("cross", vec![in1.clone(), in2.clone()]);
        let d = plan(&cross, &rs).unwrap();
        assert_eq!(d.len(), 20);
        assert_eq!(
            keys(&d)[..6],
            [
                "/foo11/foo12",
                "/foo21/foo12",
                "/foo31/foo12",
                "/foo41/foo12",
                "/foo11/foo2",
                "/foo21/foo2"
            ]
        );
        // A cross with a zero-datum input, and that cross inside another.
        let in3 = node(
            "union",
            vec![named("data", "u1", "/foo?1"), named("data", "u2", "/foo*2")],
        );
        let empty_cross = node(
            "cross",
            vec![
                in3,
                named("data", "z", "!(**)"),
                named("data", "c2", "/foo*2"),
                node(
                    "cross",
                    vec![named("data", "x1", "/foo?1"), named("data", "x2", "/foo*2")],
                ),
            ],
        );
        assert!(plan(&empty_cross, &rs).unwrap().is_empty());
        let nested = node("cross", vec![empty_cross, named("data", "n1", "/foo?1")]);
        assert!(plan(&nested, &rs).unwrap().is_empty());
    }

    #[test]
    fn iterator_tests_join_on_two_capture_groups() {
        let r = foo_repo();
        let rs = repos(&[("data", r.path())]);
        let join = node(
            "join",
            vec![
                keyed("data", "data", "/foo(?)(?)", "$1$2", "", false),
                keyed("data", "data", "/foo(?)(?)", "$2$1", "", false),
            ],
        );
        assert_eq!(
            keys(&plan(&join, &rs).unwrap()),
            [
                "/foo11/foo11",
                "/foo12/foo21",
                "/foo13/foo31",
                "/foo14/foo41",
                "/foo21/foo12",
                "/foo22/foo22",
                "/foo23/foo32",
                "/foo24/foo42",
                "/foo31/foo13",
                "/foo32/foo23",
                "/foo33/foo33",
                "/foo34/foo43",
                "/foo41/foo14",
                "/foo42/foo24",
                "/foo43/foo34",
                "/foo44/foo44",
            ]
        );
    }

    #[test]
    fn iterator_tests_outer_join() {
        let r = foo_repo();
        let rs = repos(&[("data", r.path())]);
        let join = node(
            "join",
            vec![
                keyed("data", "data", "/foo1(?)", "$1", "", true),
                keyed("data", "data", "/foo(?)1", "$1", "", true),
            ],
        );
        assert_eq!(
            keys(&plan(&join, &rs).unwrap()),
            [
                "/foo10",
                "/foo11/foo11",
                "/foo12/foo21",
                "/foo13/foo31",
                "/foo14/foo41",
                "/foo15",
                "/foo16",
                "/foo17",
                "/foo18",
                "/foo19",
            ]
        );
        // Only the outer side keeps its unmatched datums.
        let left_only = node(
            "join",
            vec![
                keyed("data", "data", "/foo1(?)", "$1", "", false),
                keyed("data", "data", "/foo(?)1", "$1", "", true),
            ],
        );
        assert_eq!(
            keys(&plan(&left_only, &rs).unwrap()),
            [
                "/foo11/foo11",
                "/foo12/foo21",
                "/foo13/foo31",
                "/foo14/foo41"
            ]
        );
    }

    #[test]
    fn iterator_tests_groups() {
        let r = foo_repo();
        let rs = repos(&[("data", r.path())]);
        let single = node(
            "group",
            vec![keyed("data", "data", "/foo(?)(?)", "", "$1", false)],
        );
        assert_eq!(
            keys(&plan(&single, &rs).unwrap()),
            [
                "/foo10/foo11/foo12/foo13/foo14/foo15/foo16/foo17/foo18/foo19",
                "/foo20/foo21/foo22/foo23/foo24/foo25/foo26/foo27/foo28/foo29",
                "/foo30/foo31/foo32/foo33/foo34/foo35/foo36/foo37/foo38/foo39",
                "/foo40/foo41/foo42/foo43/foo44/foo45/foo46/foo47/foo48/foo49",
            ]
        );
        let doubles = node(
            "group",
            vec![
                keyed("data", "data", "/foo(?)(?)", "", "$1", false),
                keyed("data", "data", "/foo(?)(?)", "", "$2", false),
            ],
        );
        assert_eq!(
            keys(&plan(&doubles, &rs).unwrap()),
            [
                "/foo10/foo20/foo30/foo40",
                "/foo10/foo11/foo12/foo13/foo14/foo15/foo16/foo17/foo18/foo19/foo11/foo21/foo31/foo41",
                "/foo20/foo21/foo22/foo23/foo24/foo25/foo26/foo27/foo28/foo29/foo12/foo22/foo32/foo42",
                "/foo30/foo31/foo32/foo33/foo34/foo35/foo36/foo37/foo38/foo39/foo13/foo23/foo33/foo43",
                "/foo40/foo41/foo42/foo43/foo44/foo45/foo46/foo47/foo48/foo49/foo14/foo24/foo34/foo44",
                "/foo15/foo25/foo35/foo45",
                "/foo16/foo26/foo36/foo46",
                "/foo17/foo27/foo37/foo47",
                "/foo18/foo28/foo38/foo48",
                "/foo19/foo29/foo39/foo49",
            ]
        );
    }

    #[test]
    fn iterator_tests_group_of_a_join_and_union_with_a_group() {
        let r = foo_repo();
        let rs = repos(&[("data", r.path())]);
        let join = node(
            "join",
            vec![
                keyed("data", "data", "/foo(?)(?)", "$1$2", "$1", false),
                keyed("data", "data", "/foo(?)(?)", "$2$1", "$2", false),
            ],
        );
        let group_join = node("group", vec![join]);
        assert_eq!(
            keys(&plan(&group_join, &rs).unwrap()),
            [
                "/foo11/foo11/foo12/foo21/foo13/foo31/foo14/foo41",
                "/foo21/foo12/foo22/foo22/foo23/foo32/foo24/foo42",
                "/foo31/foo13/foo32/foo23/foo33/foo33/foo34/foo43",
                "/foo41/foo14/foo42/foo24/foo43/foo34/foo44/foo44",
            ]
        );

        let union = node(
            "union",
            vec![
                keyed("data", "data", "/foo(?)(?)", "", "", false),
                node(
                    "group",
                    vec![keyed("data", "data", "/foo(?)(?)", "", "$2", false)],
                ),
            ],
        );
        let got = keys(&plan(&union, &rs).unwrap());
        // The union's first input first, then the group's datums.
        let mut want: Vec<String> = (10..50).map(|i| format!("/foo{i}")).collect();
        want.extend((0..10).map(|j| (1..5).map(|i| format!("/foo{i}{j}")).collect::<String>()));
        assert_eq!(got, want);
    }

    #[test]
    fn iterator_tests_join_with_a_trailing_slash() {
        let a = repo(
            &(0..10)
                .map(|j| format!("foo-{j}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let b = repo(
            &(0..10)
                .map(|j| format!("foo-{j}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let rs = repos(&[("r0", a.path()), ("r1", b.path())]);
        let want: Vec<String> = (0..10).map(|j| format!("/foo-{j}/foo-{j}")).collect();
        for glob in ["/(*)", "/(*)/"] {
            let join = node(
                "join",
                vec![
                    keyed("r0", "r0", glob, "$1", "", false),
                    keyed("r1", "r1", glob, "$1", "", false),
                ],
            );
            assert_eq!(keys(&plan(&join, &rs).unwrap()), want, "{glob}");
        }
    }

    #[test]
    fn join_order_first_seen_keys_and_first_input_fastest() {
        // Several parts per key on both sides: the key's product lists the
        // first input's parts fastest, keys in the order first seen.
        let a = repo(&["b-1", "b-2", "a-1"]);
        let b = repo(&["x-b", "y-b", "z-a"]);
        let rs = repos(&[("A", a.path()), ("B", b.path())]);
        let join = node(
            "join",
            vec![
                keyed("A", "A", "/(*)-*", "$1", "", false),
                keyed("B", "B", "/*-(*)", "$1", "", false),
            ],
        );
        assert_eq!(
            keys(&plan(&join, &rs).unwrap()),
            ["/a-1/z-a", "/b-1/x-b", "/b-2/x-b", "/b-1/y-b", "/b-2/y-b"]
        );
        // A cross under a join falls apart into its parts, each keyed alone:
        // both parts of the cross's datum join A's part on their own.
        let c = repo(&["a-9"]);
        let rs = repos(&[("A", a.path()), ("B", b.path()), ("C", c.path())]);
        let nested = node(
            "join",
            vec![
                node(
                    "cross",
                    vec![
                        keyed("C", "C", "/(*)-*", "$1", "", false),
                        keyed("B", "B", "/z-(*)", "$1", "", false),
                    ],
                ),
                keyed("A", "A", "/(a)-*", "$1", "", false),
            ],
        );
        assert_eq!(
            matched(&plan(&nested, &rs).unwrap()),
            ["A:/a-1 × C:/a-9", "A:/a-1 × B:/z-a"]
        );
    }

    #[test]
    fn zero_datums_are_explained() {
        let a = repo(&["x.csv", "sub/y.csv", "b.csv", "c.csv", "d.csv", "e.csv"]);
        let rs = repos(&[("A", a.path())]);
        let notes = explain_empty(&pfs("A", "/*.txt"), &rs);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("input `A`") && notes[0].contains("/*.txt"),
            "{}",
            notes[0]
        );
        assert!(
            notes[0].contains("b.csv, c.csv, d.csv, e.csv, sub/ and 1 more"),
            "{}",
            notes[0]
        );

        let empty = repo(&[]);
        let rs = repos(&[("A", a.path()), ("E", empty.path())]);
        let notes = explain_empty(&node("cross", vec![pfs("A", "/*"), pfs("E", "/*")]), &rs);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("input.cross[1].pfs"), "{}", notes[0]);
        assert!(notes[0].contains("holds no files"), "{}", notes[0]);

        let b = repo(&["q.csv"]);
        let rs = repos(&[("A", a.path()), ("B", b.path())]);
        let join = node(
            "join",
            vec![
                keyed("A", "A", "/(*).csv", "$1", "", false),
                keyed("B", "B", "/(*).csv", "$1", "", false),
            ],
        );
        assert!(plan(&join, &rs).unwrap().is_empty());
        let notes = explain_empty(&join, &rs);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("no `join_on` key"), "{}", notes[0]);
        assert!(notes[0].contains("[1] has `q`"), "{}", notes[0]);
        assert!(explain_empty(&pfs("A", "/*"), &rs).is_empty());
    }

    #[test]
    fn json_lists_ids_indexes_inputs_and_files() {
        let a = repo(&["d/1.txt", "d/2.txt"]);
        let rs = repos(&[("A", a.path())]);
        let d = plan(&named("A", "in", "/*"), &rs).unwrap();
        let json = to_json(&d);
        assert_eq!(
            json,
            serde_json::json!([{
                "id": d[0].id(),
                "index": 1,
                "inputs": [{
                    "name": "in",
                    "repo": "A",
                    "glob_path": "/d",
                    "files": ["/d/1.txt", "/d/2.txt"],
                }],
            }])
        );
    }
}
