//! Labels that mark everything the tools create on the engine, so that it
//! can be listed and removed (`cargo xtask clean`), even after a crash.
//!
//! Every label key the tools set or read is defined here, once: the tidy
//! test (`tests/tests/tidy.rs`) fails on a key written out anywhere else,
//! and on a key that docs, scripts or tests name but this file does not.

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

/// The process that made an object (see `owner`).
pub const LABEL_OWNER: &str = "io.pachbuild.owner";
/// The session of several processes (a test binary and the commands it
/// runs), from `PACHBUILD_SESSION`, when set.
pub const LABEL_SESSION: &str = "io.pachbuild.session";

/// Build cache (`pipeline/cache.rs`): the key of an entry, on its marker volume.
pub const LABEL_CACHE_KEY: &str = "io.pachbuild.cache-key";
/// Build cache: the scope an entry belongs to.
pub const LABEL_CACHE_SCOPE: &str = "io.pachbuild.cache-scope";
/// Build cache: the entry's source volume, on its marker.
pub const LABEL_CACHE_SOURCE: &str = "io.pachbuild.cache-source";
/// Build cache: the entry's build output volume, on its marker.
pub const LABEL_CACHE_BUILD: &str = "io.pachbuild.cache-build";
/// Build cache: when the entry was made.
pub const LABEL_CACHE_CREATED: &str = "io.pachbuild.cache-created";
/// Build cache: the pipeline whose build made the entry.
pub const LABEL_CACHE_PIPELINE: &str = "io.pachbuild.cache-pipeline";
/// Build cache: the run that made the entry (cache volumes carry no
/// `LABEL_RUN`: they outlive it).
pub const LABEL_MADE_BY_RUN: &str = "io.pachbuild.made-by-run";

/// The Debian recipe's hash, on a base made from it.
pub const LABEL_RECIPE_HASH: &str = "io.pachbuild.recipe-hash";
/// Where a base came from (`debian` or `upstream`); also set on every
/// builder image built on it.
pub const LABEL_BASE_SOURCE: &str = "io.pachbuild.base-source";
/// The base image a builder image was built on.
pub const LABEL_BASE_IMAGE: &str = "io.pachbuild.base-image";
/// The Debian suite a base was made from.
pub const LABEL_DEBIAN_SUITE: &str = "io.pachbuild.debian-suite";
/// The hash of everything a builder image was built from.
pub const LABEL_INPUTS_HASH: &str = "io.pachbuild.inputs-hash";
/// The tested image a release image was made from.
pub const LABEL_RELEASE_OF: &str = "io.pachbuild.release-of";
/// The hash of the builder image id and the release labels.
pub const LABEL_RELEASE_HASH: &str = "io.pachbuild.release-hash";

/// The `docker` baseline of `cargo xtask bench loop`: the bench's id, on
/// every container its script makes.
pub const LABEL_BENCH: &str = "io.pachbuild.bench";

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
        let labels = self.with(LABEL_OWNER, super::owner::this_process());
        match super::owner::session() {
            Some(session) => labels.with(LABEL_SESSION, session),
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
