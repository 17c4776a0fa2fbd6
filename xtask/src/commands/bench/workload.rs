//! The programs the builders bench runs, written out as build pipelines:
//! one source folder, one input repo of small files (glob `/*`, one datum
//! per file) and one spec per builder.

use std::path::{Path, PathBuf};

use harness::{Error, Result};

/// Name of the input repo (and so of `/pfs/<name>` and the environment
/// variable holding the datum's path).
pub const INPUT_REPO: &str = "data";

/// One program with its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// As printed in the table.
    pub name: &'static str,
    /// In file, pipeline and container names.
    pub slug: &'static str,
    /// Lines of requirements.txt; no file when empty.
    pub requirements: &'static [&'static str],
    /// Python code that imports what main.py imports and does nothing else:
    /// the program's own start-up cost, measured as "imports alone".
    pub imports: &'static str,
    pub main_py: &'static str,
}

impl Workload {
    pub fn has_requirements(&self) -> bool {
        !self.requirements.is_empty()
    }
}

const HELLO_MAIN: &str = r#""""pachbuild bench: a datum program with no dependencies."""
import os

data = os.environ["data"]
with open(data, encoding="utf-8") as f:
    text = f.read()
with open(os.path.join("/pfs/out", os.path.basename(data)), "w", encoding="utf-8") as out:
    out.write("hello %s" % text)
"#;

const SIX_MAIN: &str = r#""""pachbuild bench: a datum program with one tiny dependency."""
import os

import six

data = os.environ["data"]
with open(data, encoding="utf-8") as f:
    text = f.read()
with open(os.path.join("/pfs/out", os.path.basename(data)), "w", encoding="utf-8") as out:
    out.write("six %s: %s" % (six.__version__, six.ensure_str(text)))
"#;

const NUMPY_PANDAS_MAIN: &str = r#""""pachbuild bench: a datum program importing numpy and pandas."""
import os

import numpy
import pandas

data = os.environ["data"]
with open(data, encoding="utf-8") as f:
    text = f.read()
frame = pandas.DataFrame({"n": numpy.arange(len(text))})
with open(os.path.join("/pfs/out", os.path.basename(data)), "w", encoding="utf-8") as out:
    out.write("numpy %s, pandas %s: %d\n" % (numpy.__version__, pandas.__version__, int(frame["n"].sum())))
"#;

/// The workloads, cheapest first. Versions are pinned, with wheels for
/// CPython 3.11 on manylinux x86_64 (Debian bookworm's python3 is 3.11).
pub fn all() -> Vec<Workload> {
    vec![
        Workload {
            name: "hello",
            slug: "hello",
            requirements: &[],
            imports: "pass",
            main_py: HELLO_MAIN,
        },
        Workload {
            name: "six",
            slug: "six",
            requirements: &["six==1.16.0"],
            imports: "import six",
            main_py: SIX_MAIN,
        },
        Workload {
            name: "numpy+pandas",
            slug: "numpy-pandas",
            requirements: &[
                "numpy==1.26.4",
                "pandas==2.2.2",
                "python-dateutil==2.9.0.post0",
                "pytz==2024.1",
                "tzdata==2024.1",
                "six==1.16.0",
            ],
            imports: "import numpy, pandas",
            main_py: NUMPY_PANDAS_MAIN,
        },
    ]
}

/// Which builder a spec uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// builders/python, by `transform.build.language`.
    Ours,
    /// The baseline image, by `transform.build.image`.
    Upstream,
}

impl Side {
    pub fn slug(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Upstream => "upstream",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Upstream => "upstream-style",
        }
    }
}

/// A workload written out.
#[derive(Debug, Clone)]
pub struct Written {
    /// The repo name and the folder holding its files.
    pub repo: (String, PathBuf),
    pub ours_spec: PathBuf,
    pub upstream_spec: PathBuf,
}

impl Written {
    pub fn spec(&self, side: Side) -> &Path {
        match side {
            Side::Ours => &self.ours_spec,
            Side::Upstream => &self.upstream_spec,
        }
    }
}

/// The name of the pipeline of `workload` run by `side`.
pub fn pipeline_name(workload: &Workload, side: Side) -> String {
    format!("bench-{}-{}", workload.slug, side.slug())
}

/// The input file of datum `index` (0-based): `datum-01.txt`, ... (padded,
/// so the datums sort in the order written).
pub fn input_file_name(index: u32, total: u32) -> String {
    let width = total.to_string().len().max(2);
    format!("datum-{:0width$}.txt", index + 1)
}

/// The spec of `workload` for `side`; `upstream_image` is the baseline's tag.
pub fn spec_json(workload: &Workload, side: Side, upstream_image: &str) -> serde_json::Value {
    let build = match side {
        Side::Ours => serde_json::json!({ "language": "python", "path": "./source" }),
        Side::Upstream => serde_json::json!({ "image": upstream_image, "path": "./source" }),
    };
    serde_json::json!({
        "pipeline": { "name": pipeline_name(workload, side) },
        "description": format!("pachbuild bench: {} with the {} python builder", workload.name, side.label()),
        "transform": { "build": build },
        "input": { "pfs": { "repo": INPUT_REPO, "glob": "/*" } },
    })
}

/// Writes `workload` into `dir` (which must not exist yet): `source/`,
/// `inputs/data/` with `datums` files, and one spec per side.
pub fn write(
    workload: &Workload,
    dir: &Path,
    datums: u32,
    upstream_image: &str,
) -> Result<Written> {
    let source = dir.join("source");
    let repo_dir = dir.join("inputs").join(INPUT_REPO);
    for folder in [&source, &repo_dir] {
        std::fs::create_dir_all(folder)
            .map_err(|e| Error::io("cannot create the folder", folder.as_path(), e))?;
    }
    write_file(&source.join("main.py"), workload.main_py)?;
    if workload.has_requirements() {
        let mut text = workload.requirements.join("\n");
        text.push('\n');
        write_file(&source.join("requirements.txt"), &text)?;
    }
    for index in 0..datums {
        write_file(
            &repo_dir.join(input_file_name(index, datums)),
            &format!("datum {} of {datums}\n", index + 1),
        )?;
    }
    let mut specs = Vec::new();
    for side in [Side::Ours, Side::Upstream] {
        let path = dir.join(format!("pipeline-{}.json", side.slug()));
        let text = serde_json::to_string_pretty(&spec_json(workload, side, upstream_image))
            .map_err(|e| Error::Failed(format!("cannot write the spec {}: {e}", path.display())))?;
        write_file(&path, &text)?;
        specs.push(path);
    }
    let upstream_spec = specs.pop().unwrap_or_default();
    let ours_spec = specs.pop().unwrap_or_default();
    Ok(Written {
        repo: (INPUT_REPO.to_string(), repo_dir),
        ours_spec,
        upstream_spec,
    })
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("cannot write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_pinned_and_named_safely() {
        let all = all();
        let names: Vec<&str> = all.iter().map(|w| w.name).collect();
        assert_eq!(names, ["hello", "six", "numpy+pandas"]);
        for w in &all {
            assert!(
                w.requirements.iter().all(|r| r.contains("==")),
                "{}",
                w.name
            );
            assert!(w
                .slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            assert!(w.main_py.contains("os.environ[\"data\"]"), "{}", w.name);
            assert!(w.main_py.contains("/pfs/out"), "{}", w.name);
        }
        assert!(!all[0].has_requirements());
    }

    #[test]
    fn input_names_sort_in_datum_order() {
        assert_eq!(input_file_name(0, 5), "datum-01.txt");
        assert_eq!(input_file_name(9, 10), "datum-10.txt");
        assert_eq!(input_file_name(0, 100), "datum-001.txt");
        let mut names: Vec<String> = (0..12).map(|i| input_file_name(i, 12)).collect();
        let written = names.clone();
        names.sort();
        assert_eq!(names, written);
    }

    #[test]
    fn specs_name_the_builder_each_way() {
        let w = &all()[1];
        let ours = spec_json(w, Side::Ours, "p/bench-python-upstream:0.1.0");
        assert_eq!(ours["transform"]["build"]["language"], "python");
        assert!(ours["transform"]["build"].get("image").is_none());
        assert_eq!(ours["pipeline"]["name"], "bench-six-ours");
        assert_eq!(ours["input"]["pfs"]["glob"], "/*");
        let up = spec_json(w, Side::Upstream, "p/bench-python-upstream:0.1.0");
        assert_eq!(
            up["transform"]["build"]["image"],
            "p/bench-python-upstream:0.1.0"
        );
        assert!(up["transform"]["build"].get("language").is_none());
        assert_eq!(up["pipeline"]["name"], "bench-six-upstream");
    }

    #[test]
    fn writes_a_pipeline_the_harness_accepts() {
        let dir = std::env::temp_dir().join(format!(
            "pachbuild-bench-test-{}-{}",
            std::process::id(),
            line!()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let w = &all()[2];
        let written = write(w, &dir, 3, "pachbuild/bench-python-upstream:0.1.0").unwrap();
        let files: Vec<String> = std::fs::read_dir(&written.repo.1)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 3);
        let req = std::fs::read_to_string(dir.join("source/requirements.txt")).unwrap();
        assert!(req.starts_with("numpy==1.26.4\npandas==2.2.2\n"), "{req}");
        for side in [Side::Ours, Side::Upstream] {
            let builders = Path::new(env!("CARGO_MANIFEST_DIR")).join("../builders");
            let (loaded, resolved) =
                harness::runner::load_spec_for(&builders, "pachbuild", written.spec(side), None)
                    .unwrap();
            let repos = std::collections::BTreeMap::from([written.repo.clone()]);
            let prepared = harness::pipeline::prepare(loaded, resolved, &repos).unwrap();
            assert_eq!(prepared.datums.len(), 3, "{side:?}");
            assert_eq!(prepared.source.files.len(), 2, "{side:?}");
        }
        let hello = write(&all()[0], &dir.join("hello"), 2, "x:1").unwrap();
        assert!(!dir.join("hello/source/requirements.txt").exists());
        assert!(hello.ours_spec.is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
