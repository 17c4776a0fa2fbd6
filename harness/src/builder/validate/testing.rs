//! A builder folder that passes every check, and helpers to break it, for
//! the tests of every part of `validate`.

use std::path::{Path, PathBuf};

use super::{file_name, static_checks};

pub const DOCKERFILE: &str = "\
# A builder.
ARG BASE_IMAGE=pachbuild/base-x:bookworm
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title=\"x\"
WORKDIR /app
COPY build.sh run.sh /app/
";

pub const BUILD_SH: &str = "\
#!/bin/sh
# Build phase.
set -eu
out=/pfs/out
here=$(cd \"$(dirname \"$0\")\" && pwd)
echo building
cp \"$here/run.sh\" \"$out/run.sh\"
";

pub const RUN_SH: &str = "\
#!/bin/sh
# Run phase: `exec prog \"$@\"` below.
set -eu
cd /pfs/source
exec sh /pfs/build/main.sh \"$@\"
";

pub const BUILDER_YAML: &str = "\
language: x
version: 0.1.0
base:
  upstream: debian:bookworm-slim
  debian:
    suite: bookworm
checks:
  commands: [sh -c true]
  files:
    - path: /app/build.sh
      mode: \"0755\"
    - path: /app/run.sh
      mode: \"0755\"
  labels:
    - org.opencontainers.image.title
";

/// A builder folder `x` that passes every static check.
pub fn good() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("x");
    write(&dir, "Dockerfile", DOCKERFILE, false);
    write(&dir, "build.sh", BUILD_SH, true);
    write(&dir, "run.sh", RUN_SH, true);
    write(&dir, "builder.yaml", BUILDER_YAML, false);
    write(&dir, "fixtures/hello/pipeline.json", "{}", false);
    (root, dir)
}

pub fn write(dir: &Path, path: &str, text: &str, exec: bool) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The folder's problems as (file name, line, check).
pub fn found(dir: &Path) -> Vec<(String, Option<usize>, &'static str)> {
    static_checks(dir)
        .iter()
        .map(|p| (file_name(&p.file), p.line, p.check))
        .collect()
}

pub fn one(
    file: &str,
    line: Option<usize>,
    check: &'static str,
) -> Vec<(String, Option<usize>, &'static str)> {
    vec![(file.to_string(), line, check)]
}
