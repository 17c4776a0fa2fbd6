//! The generic template, embedded in the binary from `xtask/templates/generic/`:
//! a working builder whose "language" is POSIX shell (`main.sh`), with
//! comments that show where a real language's steps go.
//!
//! Template files hold `{{placeholders}}`: see [`render`].

use std::path::Path;

use super::FileEntry;

/// The version a new builder starts at.
pub const INITIAL_VERSION: &str = "0.1.0";

/// The upstream base of the generic template when `--base` is not given: the
/// registry image equivalent to its Debian recipe (bookworm, minbase).
pub const DEFAULT_UPSTREAM: &str = "debian:bookworm-slim";

/// A template file: its path in the new builder, its text and its mode.
pub struct TemplateFile {
    pub path: &'static str,
    pub text: &'static str,
    pub mode: u32,
}

macro_rules! template {
    ($path:literal, $mode:literal) => {
        TemplateFile {
            path: $path,
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/generic/",
                $path
            )),
            mode: $mode,
        }
    };
}

/// Every file of the generic template. A test checks that this list and
/// the folder `xtask/templates/generic/` agree.
pub const GENERIC: &[TemplateFile] = &[
    template!(".dockerignore", 0o644),
    template!("Dockerfile", 0o644),
    template!("README.md", 0o644),
    template!("build.sh", 0o755),
    template!("builder.yaml", 0o644),
    template!("run.sh", 0o755),
    template!("fixtures/hello/expected/ada.txt", 0o644),
    template!("fixtures/hello/expected/more.txt", 0o644),
    template!("fixtures/hello/fixture.yaml", 0o644),
    template!("fixtures/hello/inputs/names/ada.txt", 0o644),
    template!("fixtures/hello/inputs/names/more.txt", 0o644),
    template!("fixtures/hello/pipeline.json", 0o644),
    template!("fixtures/hello/source/greeting.txt", 0o644),
    template!("fixtures/hello/source/main.sh", 0o644),
];

/// The values of the placeholders for a builder `name` on `base`.
pub fn values(name: &str, base: Option<&str>) -> Vec<(&'static str, String)> {
    let recipe_image = format!("pachbuild/base-{name}:bookworm");
    vec![
        ("name", name.to_string()),
        ("name_yaml", super::yaml_scalar(name)),
        // Pipeline names hold letters, digits, `-` and `_` only.
        ("pipeline", format!("hello-{}", name.replace('.', "-"))),
        ("version", INITIAL_VERSION.to_string()),
        ("upstream", base.unwrap_or(DEFAULT_UPSTREAM).to_string()),
        ("base_default", base.map_or(recipe_image, str::to_string)),
        ("repository", env!("CARGO_PKG_REPOSITORY").to_string()),
    ]
}

/// Renders the generic template for a builder `name` (already checked to
/// be an image name component) on `base` (`None`: the Debian recipe's image
/// is the Dockerfile's default and `debian:bookworm-slim` the upstream).
pub fn render(name: &str, base: Option<&str>) -> Vec<FileEntry> {
    let values = values(name, base);
    GENERIC
        .iter()
        .map(|t| FileEntry::new(Path::new(t.path), substitute(t.text, &values), t.mode))
        .collect()
}

/// Replaces each `{{key}}` by its value; unknown keys are left as they are
/// (a test makes sure that no template holds one).
pub fn substitute(text: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = &after[..end];
                match values.iter().find(|(k, _)| *k == key) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
