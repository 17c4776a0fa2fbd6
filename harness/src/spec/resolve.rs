//! What a build pipeline runs: which builder image, which run image, which
//! command, where the source is. The platform's client made these choices
//! when it rewrote a build pipeline into a plain one; this does the same.

use std::path::{Component, PathBuf};

use super::parse::LoadedSpec;
use super::validate::{builder_choice, non_empty};
use crate::error::{Error, Result};

/// The command a build pipeline runs when `transform.cmd` is not given: the
/// builder's `run.sh`, which its `build.sh` left in the build output.
pub const DEFAULT_COMMAND: [&str; 2] = ["sh", "/pfs/build/run.sh"];

/// A build pipeline with every choice made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image that runs `build.sh` (the build phase).
    pub builder_image: String,
    /// The image the code runs in for each datum (the run phase).
    pub run_image: String,
    /// The run phase's command.
    pub command: Vec<String>,
    /// Lines fed to the command's stdin (`transform.stdin`).
    pub stdin: Vec<String>,
    /// The folder of the source, `transform.build.path` against the spec's folder.
    pub build_path: PathBuf,
    /// The official builder's language, when the spec names one.
    pub language: Option<String>,
    /// A build pipeline (`transform.build`); without one, an ordinary
    /// pipeline: only the run phase, no `/pfs/source` or `/pfs/build`, and
    /// `builder_image` is empty.
    pub has_build: bool,
}

/// Resolves images and command as the platform's client did.
///
/// `image_prefix` is the registry/namespace of the official builders (e.g.
/// `pachbuild`); `version_of` gives the version of an official builder by
/// language, or `None` when there is no such builder.
pub fn resolve(
    loaded: &LoadedSpec,
    image_prefix: &str,
    version_of: impl Fn(&str) -> Option<String>,
) -> Result<Resolved> {
    let file = &loaded.path;
    let spec = &loaded.spec;
    let Some(build) = &spec.transform.build else {
        return ordinary(loaded);
    };
    builder_choice(file, build)?;

    let language = non_empty(&build.language).map(str::to_string);
    let builder_image = match &language {
        Some(lang) => match version_of(lang) {
            Some(version) => crate::image_ref::builder_image(image_prefix, lang, &version),
            None => {
                return Err(Error::invalid(
                    file,
                    "transform.build.language",
                    format!("`{lang}` is not an official builder of this harness"),
                    format!(
                        "use an official language (the builders under `builders/`), or set \
                         `transform.build.image` to a builder image of your own instead of \
                         `language` (e.g. `\"image\": \"me/{lang}-build:1\"`)"
                    ),
                ))
            }
        },
        // builder_choice() has made sure that `image` is set when `language` is not.
        None => non_empty(&build.image).unwrap_or_default().to_string(),
    };
    let run_image = non_empty(&spec.transform.image)
        .map(str::to_string)
        .unwrap_or_else(|| builder_image.clone());
    let command = if spec.transform.cmd.is_empty() {
        DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect()
    } else {
        spec.transform.cmd.clone()
    };
    Ok(Resolved {
        builder_image,
        run_image,
        command,
        stdin: spec.transform.stdin.clone(),
        build_path: build_path(loaded),
        language,
        has_build: true,
    })
}

/// An ordinary pipeline (no `transform.build`): `transform.image` runs
/// `transform.cmd`, as on the platform.
fn ordinary(loaded: &LoadedSpec) -> Result<Resolved> {
    let (file, transform) = (&loaded.path, &loaded.spec.transform);
    let Some(image) = non_empty(&transform.image) else {
        return Err(Error::invalid(
            file,
            "transform.image",
            "is not set, and there is no `transform.build`: nothing says what image the code runs in",
            "set `transform.image` to the image of your code (e.g. `\"image\": \"python:3.11-slim\"`), \
             or add `transform.build` to have a builder make it from source",
        ));
    };
    if transform.cmd.is_empty() {
        return Err(Error::invalid(
            file,
            "transform.cmd",
            "is empty: an ordinary pipeline runs the command it names in each datum",
            "set `transform.cmd`, e.g. `[\"python3\", \"/app/main.py\"]`",
        ));
    }
    Ok(Resolved {
        builder_image: String::new(),
        run_image: image.to_string(),
        command: transform.cmd.clone(),
        stdin: transform.stdin.clone(),
        build_path: loaded.dir.clone(),
        language: None,
        has_build: false,
    })
}

/// The folder of the source: `transform.build.path` (default `.`) against the
/// spec's folder. Joined without touching the file system, with `.` parts
/// dropped, so that messages show the path the way the user wrote it.
pub fn build_path(loaded: &LoadedSpec) -> PathBuf {
    let rel = loaded
        .spec
        .transform
        .build
        .as_ref()
        .and_then(|b| non_empty(&b.path))
        .unwrap_or(".");
    let joined = loaded.dir.join(rel);
    let mut out = PathBuf::new();
    for part in joined.components() {
        if part != Component::CurDir {
            out.push(part);
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::parse_spec;
    use std::path::Path;

    fn loaded(yaml: &str) -> LoadedSpec {
        LoadedSpec {
            path: PathBuf::from("fx/pipeline.yaml"),
            dir: PathBuf::from("fx"),
            spec: parse_spec(yaml, Path::new("pipeline.yaml")).unwrap(),
        }
    }

    fn versions(lang: &str) -> Option<String> {
        match lang {
            "python" => Some("1.2.0".into()),
            "go" => Some("0.3.1".into()),
            _ => None,
        }
    }

    const BASE: &str = "pipeline: {name: p}\ninput: {pfs: {repo: a, glob: /*}}\n";

    #[test]
    fn official_language_gives_the_official_builder_and_defaults() {
        let l = loaded(&format!(
            "{BASE}transform:\n  build: {{language: python}}\n"
        ));
        let r = resolve(&l, "pachbuild", versions).unwrap();
        assert_eq!(r.builder_image, "pachbuild/python-build:1.2.0");
        assert_eq!(r.run_image, r.builder_image);
        assert_eq!(r.command, ["sh", "/pfs/build/run.sh"]);
        assert!(r.stdin.is_empty());
        assert_eq!(r.build_path, Path::new("fx"));
        assert_eq!(r.language.as_deref(), Some("python"));
    }

    #[test]
    fn own_builder_image_with_transform_image_cmd_and_stdin() {
        let l = loaded(&format!(
            "{BASE}transform:\n  build: {{image: 'me/rust-build:2', path: ./src}}\n  image: me/run:3\n  cmd: [bash]\n  stdin: [echo a, echo b]\n"
        ));
        let r = resolve(&l, "pachbuild", versions).unwrap();
        assert_eq!(r.builder_image, "me/rust-build:2");
        assert_eq!(r.run_image, "me/run:3");
        assert_eq!(r.command, ["bash"]);
        assert_eq!(r.stdin, ["echo a", "echo b"]);
        assert_eq!(r.build_path, Path::new("fx/src"));
        assert_eq!(r.language, None);
    }

    #[test]
    fn unknown_language_suggests_an_image() {
        let l = loaded(&format!("{BASE}transform:\n  build: {{language: cobol}}\n"));
        let err = resolve(&l, "pachbuild", versions).unwrap_err();
        match &err {
            Error::Invalid {
                field,
                problem,
                fix,
                ..
            } => {
                assert_eq!(field, "transform.build.language");
                assert!(
                    problem.contains("`cobol` is not an official builder"),
                    "{problem}"
                );
                assert!(fix.contains("transform.build.image"), "{fix}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn builder_choice_and_missing_build_are_errors_not_panics() {
        for transform in [
            "transform: {build: {}}\n",
            "transform: {build: {language: go, image: x}}\n",
        ] {
            let err = resolve(&loaded(&format!("{BASE}{transform}")), "p", versions).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == "transform.build"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_ordinary_pipeline_runs_its_image_and_command() {
        let r = resolve(
            &loaded(&format!(
                "{BASE}transform: {{image: me/app:1, cmd: [python3, /app/main.py]}}\n"
            )),
            "p",
            versions,
        )
        .unwrap();
        assert!(!r.has_build);
        assert_eq!(r.run_image, "me/app:1");
        assert_eq!(r.command, ["python3", "/app/main.py"]);
        for (transform, field) in [
            ("transform: {cmd: [x]}\n", "transform.image"),
            ("transform: {image: x}\n", "transform.cmd"),
        ] {
            let err = resolve(&loaded(&format!("{BASE}{transform}")), "p", versions).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field: f, .. } if f == field),
                "{err}"
            );
        }
    }

    #[test]
    fn image_prefix_forms() {
        let l = loaded(&format!("{BASE}transform:\n  build: {{language: go}}\n"));
        assert_eq!(
            resolve(&l, "", versions).unwrap().builder_image,
            "go-build:0.3.1"
        );
    }

    #[test]
    fn build_path_joins_without_dot_parts() {
        let mut l = loaded(&format!(
            "{BASE}transform:\n  build: {{language: go, path: ./a/./b}}\n"
        ));
        assert_eq!(build_path(&l), Path::new("fx/a/b"));
        l.dir = PathBuf::from(".");
        assert_eq!(build_path(&l), Path::new("a/b"));
        l.spec.transform.build.as_mut().unwrap().path = Some(".".into());
        assert_eq!(build_path(&l), Path::new("."));
        l.spec.transform.build.as_mut().unwrap().path = Some("/abs/src".into());
        assert_eq!(build_path(&l), Path::new("/abs/src"));
        l.spec.transform.build.as_mut().unwrap().path = Some("../up".into());
        assert_eq!(build_path(&l), Path::new("../up"));
    }
}
