//! The pipelines `bench loop` runs, written into a temporary folder: a
//! `source/` folder, one input repo `data` and a spec (`pipeline.json`)
//! using the python builder.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use harness::error::IoContext;
use harness::{Error, Result};

use super::super::workload::{self, Workload};

/// The input's name: `/pfs/data/...` and the environment variable `data`.
pub const INPUT: &str = "data";

/// A pipeline written out.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub spec: PathBuf,
    pub source: PathBuf,
    /// The input repo's folder (`--input data=DIR`).
    pub input: PathBuf,
    pub datums: u32,
}

/// The builders bench's workload `slug` (`hello`, `six`, `numpy-pandas`).
pub fn workload(slug: &str) -> Result<Workload> {
    workload::all()
        .into_iter()
        .find(|w| w.slug == slug)
        .ok_or_else(|| Error::Failed(format!("bench loop: no workload {slug:?}")))
}

/// The spec: the python builder, the source in `./source`, one pfs input.
pub fn spec_json(name: &str, glob: &str) -> serde_json::Value {
    serde_json::json!({
        "pipeline": { "name": name },
        "description": "pachbuild bench loop",
        "transform": { "build": { "language": "python", "path": "./source" } },
        "input": { "pfs": { "repo": INPUT, "glob": glob } },
    })
}

/// Writes `w` into `dir` (new) as pipeline `name` with `datums` small input
/// files, glob `/*`: one datum per file.
pub fn write_workload(dir: &Path, name: &str, w: &Workload, datums: u32) -> Result<Pipeline> {
    let pipeline = layout(dir, name, "/*", datums)?;
    write(&pipeline.source.join("main.py"), w.main_py.as_bytes())?;
    if w.has_requirements() {
        let mut text = w.requirements.join("\n");
        text.push('\n');
        write(&pipeline.source.join("requirements.txt"), text.as_bytes())?;
    }
    for index in 0..datums {
        write(
            &pipeline
                .input
                .join(workload::input_file_name(index, datums)),
            format!("datum {} of {datums}\n", index + 1).as_bytes(),
        )?;
    }
    Ok(pipeline)
}

/// The program of the big-input pipeline: the size of its datum.
const BIG_MAIN: &str = r#""""pachbuild bench loop: the bytes of the datum (glob `/`: the whole repo)."""
import os

root = os.environ["data"]
total = 0
for folder, _dirs, files in os.walk(root):
    for name in files:
        total += os.path.getsize(os.path.join(folder, name))
with open("/pfs/out/size.txt", "w", encoding="utf-8") as out:
    out.write("%d bytes\n" % total)
"#;

/// What the big-input pipeline writes for an input of `bytes`.
pub fn big_expected(bytes: u64) -> String {
    format!("{bytes} bytes\n")
}

/// Writes a pipeline whose one datum (glob `/`) is one file of `bytes`
/// bytes, written out in full (repeated bytes, not a sparse file).
pub fn write_big(dir: &Path, name: &str, bytes: u64) -> Result<Pipeline> {
    let pipeline = layout(dir, name, "/", 1)?;
    write(&pipeline.source.join("main.py"), BIG_MAIN.as_bytes())?;
    let path = pipeline.input.join("big.bin");
    let file = std::fs::File::create(&path).with_path("cannot create", &path)?;
    let mut file = std::io::BufWriter::new(file);
    let chunk = vec![b'p'; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])
            .with_path("cannot write", &path)?;
        left -= n as u64;
    }
    file.flush().with_path("cannot write", &path)?;
    Ok(pipeline)
}

/// `dir/source/`, `dir/inputs/data/` and `dir/pipeline.json`.
fn layout(dir: &Path, name: &str, glob: &str, datums: u32) -> Result<Pipeline> {
    let source = dir.join("source");
    let input = dir.join("inputs").join(INPUT);
    for folder in [&source, &input] {
        std::fs::create_dir_all(folder).with_path("cannot create the folder", folder)?;
    }
    let spec = dir.join("pipeline.json");
    let text = serde_json::to_string_pretty(&spec_json(name, glob))
        .map_err(|e| Error::Failed(format!("bench loop: cannot write {}: {e}", spec.display())))?;
    write(&spec, text.as_bytes())?;
    Ok(Pipeline {
        name: name.to_string(),
        spec,
        source,
        input,
        datums,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_path("cannot write", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(p: &Pipeline) -> harness::pipeline::Prepared {
        let builders = Path::new(env!("CARGO_MANIFEST_DIR")).join("../builders");
        let (loaded, resolved) =
            harness::runner::load_spec_for(&builders, "pachbuild", &p.spec, None).unwrap();
        let repos = std::collections::BTreeMap::from([(INPUT.to_string(), p.input.clone())]);
        harness::pipeline::prepare(loaded, resolved, &repos).unwrap()
    }

    #[test]
    fn workloads_make_pipelines_the_harness_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let six = workload("six").unwrap();
        let p = write_workload(&dir.path().join("six"), "bench-loop-six", &six, 5).unwrap();
        assert_eq!(p.datums, 5);
        let prepared = prepare(&p);
        assert_eq!(prepared.pipeline_name, "bench-loop-six");
        assert_eq!(prepared.datums.len(), 5);
        assert_eq!(prepared.source.files.len(), 2);
        let hello = workload("hello").unwrap();
        let p = write_workload(&dir.path().join("hello"), "bench-loop-hello", &hello, 12).unwrap();
        assert!(!p.source.join("requirements.txt").exists());
        assert_eq!(prepare(&p).datums.len(), 12);
        assert!(workload("everything").is_err());
    }

    #[test]
    fn the_big_input_is_one_datum_of_real_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = (3 << 20) + 5;
        let p = write_big(&dir.path().join("big"), "bench-loop-big", bytes).unwrap();
        let file = p.input.join("big.bin");
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.len(), bytes);
        // Not sparse: the blocks hold every byte.
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 >= bytes, "{meta:?}");
        assert_eq!(prepare(&p).datums.len(), 1);
        assert_eq!(big_expected(7), "7 bytes\n");
    }
}
