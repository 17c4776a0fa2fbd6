//! `builders/<lang>/builder.yaml`: what a builder is, what it is built on,
//! and what its image must prove.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::image_ref::{self, ImageRef};

/// The file name of a builder's metadata, inside its folder.
pub const METADATA_FILE: &str = "builder.yaml";

/// The parsed `builder.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderMeta {
    /// The language this builder serves; also the folder name and image name part.
    pub language: String,
    /// The builder's own version: the tag of its image.
    pub version: String,
    /// One line describing the builder.
    #[serde(default)]
    pub description: String,
    /// What the builder is built on.
    pub base: BaseSpec,
    /// Tool versions the image provides (for people; checked by `checks.commands`).
    #[serde(default)]
    pub provides: BTreeMap<String, String>,
    /// What the built image must prove.
    #[serde(default)]
    pub checks: ImageChecks,
}

/// The base image, named two ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// The image a user with a registry would use, pinned (for example `python:3.11-slim-bookworm`).
    pub upstream: String,
    /// A recipe that makes an equivalent base from Debian packages, with no registry.
    pub debian: DebianRecipe,
}

/// A root file system made by `mmdebstrap` from Debian packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianRecipe {
    /// Debian suite, e.g. `bookworm`. Also the base image's tag.
    pub suite: String,
    /// mmdebstrap variant; `minbase` unless said otherwise.
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Packages to install on top of the variant.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Shell commands run inside the new root file system after the packages.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Environment of images made from this base (`KEY: value`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_variant() -> String {
    "minbase".to_string()
}

/// Checks run against the built image by `cargo xtask validate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageChecks {
    /// Shell commands that must exit 0 inside the image.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Files that must exist in the image, with their mode when given.
    #[serde(default)]
    pub files: Vec<FileCheck>,
    /// Labels that must be set on the image.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A file that must exist in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    pub path: String,
    /// Octal permission bits, e.g. `"0755"`.
    #[serde(default)]
    pub mode: Option<String>,
}

impl BuilderMeta {
    /// Reads and checks `builder.yaml` in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = dir.join(METADATA_FILE);
        if !file.is_file() {
            return Err(Error::invalid(
                &file,
                "builder.yaml",
                "the builder folder has no builder.yaml",
                "create it (see builders/python/builder.yaml), or scaffold a builder with `cargo xtask new-builder NAME`",
            ));
        }
        let meta: BuilderMeta = crate::yaml::read_document(&file)?;
        meta.check(&file)?;
        Ok(meta)
    }

    /// Field-level rules that serde cannot express. Reports the first problem.
    pub fn check(&self, file: &Path) -> Result<()> {
        self.problems(file).into_iter().next().map_or(Ok(()), Err)
    }

    /// Every field-level problem, for `validate` which reports them all.
    pub fn problems(&self, file: &Path) -> Vec<Error> {
        let mut found = Vec::new();
        let mut bad = |field: &str, problem: String, fix: &str| {
            found.push(Error::invalid(file, field, problem, fix));
        };
        if !is_image_name_component(&self.language) {
            bad(
                "language",
                format!("{:?} is not a valid image name component", self.language),
                "use lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit",
            );
        }
        if self.version.is_empty() || self.version == "latest" || !is_tag(&self.version) {
            bad(
                "version",
                format!("{:?} is not a pinned image tag", self.version),
                "use a version such as `0.1.0` (not `latest`)",
            );
        }
        let upstream = &self.base.upstream;
        if upstream.is_empty() {
            bad(
                "base.upstream",
                "is empty".into(),
                "name a pinned upstream image, e.g. `debian:bookworm-slim`",
            );
        } else if !ImageRef::parse(upstream).is_pinned() {
            bad(
                "base.upstream",
                format!("{upstream:?} is not pinned to a tag"),
                "add an explicit tag other than `latest`, e.g. `python:3.11-slim-bookworm`",
            );
        }
        let recipe = &self.base.debian;
        if recipe.suite.is_empty() || !is_tag(&recipe.suite) {
            bad(
                "base.debian.suite",
                format!("{:?} is not a Debian suite name", recipe.suite),
                "use a suite such as `bookworm`",
            );
        }
        if !matches!(
            recipe.variant.as_str(),
            "minbase" | "buildd" | "essential" | "apt" | "required" | "important" | "standard"
        ) {
            bad(
                "base.debian.variant",
                format!("{:?} is not an mmdebstrap variant", recipe.variant),
                "use `minbase` (the default)",
            );
        }
        for (i, check) in self.checks.files.iter().enumerate() {
            if let Some(mode) = &check.mode {
                if u32::from_str_radix(mode, 8).is_err() {
                    bad(
                        &format!("checks.files[{i}].mode"),
                        format!("{mode:?} is not an octal mode"),
                        "write it as e.g. \"0755\"",
                    );
                }
            }
        }
        found
    }

    /// Where this builder's base image lives: `<prefix>/base-<language>:<suite>`.
    pub fn base_image(&self, prefix: &str) -> String {
        image_ref::base_image(prefix, &self.language, &self.base.debian.suite)
    }

    /// The builder's own image: `<prefix>/<language>-build:<version>`.
    pub fn builder_image(&self, prefix: &str) -> String {
        image_ref::builder_image(prefix, &self.language, &self.version)
    }
}

impl DebianRecipe {
    /// A stable hash of everything that changes the base's contents. Package
    /// order does not matter; the order of setup commands does.
    pub fn hash(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        // The leading tag versions the recipe format itself: bump it when the
        // way a recipe is turned into an image changes.
        let canonical = serde_json::json!({
            "format": 1,
            "suite": self.suite,
            "variant": self.variant,
            "packages": packages,
            "setup": self.setup,
            "env": self.env,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        crate::text::hex(&digest[..12])
    }
}

/// The folder of each builder under `builders_dir`, sorted by name.
pub fn builder_dirs(builders_dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(builders_dir)
        .map_err(|e| Error::io("cannot list builders in", builders_dir, e))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(METADATA_FILE).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// An image name component: lowercase letters, digits, separators `-_.`,
/// starting and ending with a letter or digit.
pub fn is_image_name_component(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 128
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

fn is_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
language: python
version: 0.1.0
description: Python builder
base:
  upstream: python:3.11-slim-bookworm
  debian:
    suite: bookworm
    packages: [python3, python3-pip, ca-certificates]
    setup:
      - ln -s /usr/bin/python3 /usr/local/bin/python
provides:
  python: "3.11"
checks:
  commands: [python3 --version]
  files:
    - path: /app/build.sh
      mode: "0755"
  labels: [org.opencontainers.image.title]
"#;

    fn sample() -> BuilderMeta {
        crate::yaml::from_yaml_str(SAMPLE, Path::new("builder.yaml")).unwrap()
    }

    #[test]
    fn parses_a_complete_file() {
        let meta = sample();
        assert_eq!(meta.language, "python");
        assert_eq!(meta.base.debian.variant, "minbase");
        assert_eq!(meta.checks.files[0].mode.as_deref(), Some("0755"));
        assert!(meta.problems(Path::new("builder.yaml")).is_empty());
        assert_eq!(
            meta.base_image("pachbuild"),
            "pachbuild/base-python:bookworm"
        );
        assert_eq!(
            meta.builder_image("pachbuild"),
            "pachbuild/python-build:0.1.0"
        );
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let text = SAMPLE.replace("description:", "descripton:");
        let err = crate::yaml::from_yaml_str::<BuilderMeta>(&text, Path::new("b/builder.yaml"))
            .unwrap_err();
        assert!(err.to_string().contains("descripton"), "{err}");
        assert!(err.to_string().starts_with("b/builder.yaml:"), "{err}");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut meta = sample();
        meta.language = "Py".into();
        meta.version = "latest".into();
        meta.base.upstream = "python".into();
        meta.base.debian.variant = "huge".into();
        let fields: Vec<String> = meta
            .problems(Path::new("builder.yaml"))
            .iter()
            .map(|e| match e {
                Error::Invalid { field, .. } => field.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            fields,
            [
                "language",
                "version",
                "base.upstream",
                "base.debian.variant"
            ]
        );
    }

    #[test]
    fn recipe_hash_ignores_package_order_but_not_content() {
        let a = sample().base.debian;
        let mut b = a.clone();
        b.packages.reverse();
        assert_eq!(a.hash(), b.hash());
        b.packages.push("git".into());
        assert_ne!(a.hash(), b.hash());
        let mut c = a.clone();
        c.suite = "trixie".into();
        assert_ne!(a.hash(), c.hash());
        let mut d = a.clone();
        d.setup.push("true".into());
        assert_ne!(a.hash(), d.hash());
        assert_eq!(a.hash().len(), 24);
    }

    #[test]
    fn image_name_components() {
        for ok in ["rust", "python3", "my-lang", "a.b_c"] {
            assert!(is_image_name_component(ok), "{ok}");
        }
        for bad in ["", "Rust", "-x", "x-", "a/b", "a b", "ä"] {
            assert!(!is_image_name_component(bad), "{bad}");
        }
    }

    #[test]
    fn the_upstream_base_must_be_pinned() {
        let mut meta = sample();
        for pinned in [
            "python:3.11",
            "debian@sha256:abc",
            "localhost:5000/python:3",
        ] {
            meta.base.upstream = pinned.into();
            assert!(meta.problems(Path::new("b")).is_empty(), "{pinned}");
        }
        for loose in ["python", "golang:latest", "localhost:5000/python"] {
            meta.base.upstream = loose.into();
            assert_eq!(meta.problems(Path::new("b")).len(), 1, "{loose}");
        }
    }
}
