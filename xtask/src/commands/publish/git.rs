//! The git state a release is labelled with: the commit, whether the tree
//! has changes, and where the source lives.

use std::path::Path;
use std::process::Command;

/// What git says of the repository holding the builders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitState {
    /// The full commit of HEAD; `None` outside a git work tree.
    pub commit: Option<String>,
    /// Changed, staged or untracked (not ignored) files, as `git status` lists them.
    pub changes: Vec<String>,
}

impl GitState {
    pub fn read(root: &Path) -> GitState {
        let git = |args: &[&str]| git(root, args);
        let commit = git(&["rev-parse", "--verify", "HEAD"])
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let changes = match &commit {
            Some(_) => git(&["status", "--porcelain", "--untracked-files=normal"])
                .map(|s| s.lines().map(str::to_string).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        GitState { commit, changes }
    }

    /// The revision label: the commit, with `-dirty` when the tree has changes.
    pub fn revision(&self) -> String {
        match &self.commit {
            Some(commit) if self.changes.is_empty() => commit.clone(),
            Some(commit) => format!("{commit}-dirty"),
            None => "unknown".to_string(),
        }
    }

    /// Why publishing is refused without `--allow-dirty`, if it is.
    pub fn refusal(&self, root: &Path) -> Option<String> {
        if self.commit.is_none() {
            return Some(format!(
                "{} is not a git work tree with a commit: a release must name the commit it was built from\n  fix: publish from a clone of the repository, or pass --allow-dirty (the revision label is then `unknown`)",
                root.display()
            ));
        }
        if self.changes.is_empty() {
            return None;
        }
        let shown: Vec<&str> = self.changes.iter().take(5).map(String::as_str).collect();
        let more = self.changes.len().saturating_sub(shown.len());
        Some(format!(
            "the work tree {} has uncommitted changes, so the images would not be what commit {} holds:\n    {}{}\n  fix: commit or stash them, or pass --allow-dirty (the revision label then ends in `-dirty`)",
            root.display(),
            self.commit.as_deref().unwrap_or(""),
            shown.join("\n    "),
            if more > 0 { format!("\n    … and {more} more") } else { String::new() }
        ))
    }
}

/// A repository URL without user information (a token in a remote URL must
/// never reach a label).
pub fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

/// The URL of the `origin` remote, without credentials.
pub fn origin_url(root: &Path) -> Option<String> {
    git(root, &["remote", "get-url", "origin"])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|s| strip_userinfo(&s))
}

/// What `git ARGS` prints in `root`, when it succeeds (untrimmed: the
/// porcelain status starts lines with a space).
fn git(root: &Path, args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn clean_dirty_and_no_repository() {
        let dir = tempfile::tempdir().unwrap();
        let none = GitState::read(dir.path());
        assert!(none.refusal(dir.path()).is_some());
        assert_eq!(none.revision(), "unknown");
        assert!(none.refusal(dir.path()).unwrap().contains("--allow-dirty"));

        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("a"), "1").unwrap();
        git(dir.path(), &["add", "a"]);
        git(dir.path(), &["commit", "-q", "-m", "one"]);
        let clean = GitState::read(dir.path());
        let commit = clean.commit.clone().unwrap();
        assert_eq!(commit.len(), 40);

        assert_eq!(clean.revision(), commit);
        assert!(clean.refusal(dir.path()).is_none());

        std::fs::write(dir.path().join("b"), "new").unwrap();
        let dirty = GitState::read(dir.path());

        assert_eq!(dirty.revision(), format!("{commit}-dirty"));
        let why = dirty.refusal(dir.path()).unwrap();
        assert!(why.contains("?? b"), "{why}");
        assert!(why.contains("fix:"), "{why}");
    }

    #[test]
    fn userinfo_never_reaches_a_label() {
        assert_eq!(
            strip_userinfo("https://x-access-token:ghs_secret@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            strip_userinfo("https://github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(
            strip_userinfo("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
    }
}
