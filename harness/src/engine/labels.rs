//! Labels that mark everything the tools create on the engine, so that it
//! can be listed and removed (`cargo xtask clean`), even after a crash.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// On every container and image we make.
pub const LABEL_MANAGED: &str = "io.pachbuild.managed";
/// The run (one process of the tools) that made the object.
pub const LABEL_RUN: &str = "io.pachbuild.run";
/// Set to `true` on images made only for one run (test images): removed with it.
pub const LABEL_EPHEMERAL: &str = "io.pachbuild.ephemeral";
/// What the object is: `base`, `builder`, `build-phase`, `run-phase`, `test`.
pub const LABEL_KIND: &str = "io.pachbuild.kind";

/// Identifies one run of the tools: process id and start time, so two runs
/// at once never collide and a leftover names the run that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// A new id for this process.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        RunId(format!(
            "{:x}{:05x}",
            (nanos / 1_000_000) & 0xffff_ffff,
            std::process::id() & 0xfffff
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of labels, always holding the managed mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Default for Labels {
    fn default() -> Self {
        Labels(BTreeMap::from([(
            LABEL_MANAGED.to_string(),
            "true".to_string(),
        )]))
    }
}

impl Labels {
    /// Labels for an object of `kind` made by `run`.
    /// It also names this process as its owner, so that `clean` never
    /// removes it while this process runs.
    pub fn for_run(run: &RunId, kind: &str) -> Self {
        Labels::default()
            .with(LABEL_RUN, run.as_str())
            .with(LABEL_KIND, kind)
            .owned()
    }

    /// Names this process as the owner (see `owner`).
    pub fn owned(self) -> Self {
        let labels = self.with(super::owner::LABEL_OWNER, super::owner::this_process());
        match super::owner::session() {
            Some(session) => labels.with(super::owner::LABEL_SESSION, session),
            None => labels,
        }
    }

    /// Adds or replaces one label.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_string(), value.to_string());
        self
    }

    /// Marks an image as made only for this run.
    pub fn ephemeral(self) -> Self {
        self.with(LABEL_EPHEMERAL, "true")
    }

    pub fn run_id(&self) -> Option<&str> {
        self.0.get(LABEL_RUN).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn to_hash_map(&self) -> HashMap<String, String> {
        self.0.clone().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_labels_carry_the_managed_mark() {
        let run = RunId::new();
        let labels = Labels::for_run(&run, "test").ephemeral();
        let map = labels.to_hash_map();
        assert_eq!(map[LABEL_MANAGED], "true");
        assert_eq!(map[LABEL_RUN], run.as_str());
        assert_eq!(map[LABEL_EPHEMERAL], "true");
        assert_eq!(labels.run_id(), Some(run.as_str()));
    }

    #[test]
    fn run_ids_differ() {
        let a = RunId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_ne!(a, RunId::new());
    }
}
