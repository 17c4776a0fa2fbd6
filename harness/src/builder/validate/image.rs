//! The image checks: a built builder image against `builder.yaml`'s
//! `checks` (commands, files with their modes, labels), in one container.

use std::path::Path;
use std::time::Duration;

use super::{yaml_line, Problem};
use crate::builder::meta::{BuilderMeta, METADATA_FILE};
use crate::engine::{
    ContainerSpec, Engine, EngineError, ExecSpec, Failure, Labels, Operation, RunId,
};
use crate::error::Result;

/// How long one `checks.commands` entry may run in the image.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Checks the built `image` against `checks` of the builder in `dir`:
/// every command must exit 0 (run with `sh -c` in a container of the image),
/// every file must exist with its mode, every label must be set and not
/// empty. Problems name `builder.yaml` and the line of the check. The one
/// container used is labelled with `run` and removed before returning.
/// Engine failures are errors, not problems.
pub async fn image_checks(
    engine: &Engine,
    dir: &Path,
    image: &str,
    meta: &BuilderMeta,
    run: &RunId,
) -> Result<Vec<Problem>> {
    let file = dir.join(METADATA_FILE);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let mut problems = Vec::new();
    let info = engine.image(image).await?.ok_or_else(|| {
        crate::Error::from(EngineError::new(
            Operation::InspectImage,
            image,
            Failure::NotFound,
            "not found: build it first (`cargo xtask build-builder`)",
        ))
    })?;
    let checks = &meta.checks;
    if !checks.commands.is_empty() || !checks.files.is_empty() {
        let spec = ContainerSpec {
            image: image.to_string(),
            labels: Labels::for_run(run, "validate"),
            name_hint: format!("validate-{}", meta.language),
            ..Default::default()
        };
        let container = engine.start_container(&spec).await?;
        let checked = check_in_container(engine, &container, meta, &file, &text).await;
        let removed = engine.remove_container(&container).await;
        problems.extend(checked?);
        removed?;
    }
    for (i, label) in checks.labels.iter().enumerate() {
        let line = yaml_line(&text, &format!("checks.labels[{i}]"));
        let message = match info.labels.get(label) {
            None => format!("the image has no label `{label}`"),
            Some(value) if value.trim().is_empty() => {
                format!("the image's label `{label}` is empty")
            }
            Some(_) => continue,
        };
        problems.push(Problem::new(
            &file,
            line,
            "image-labels",
            message,
            format!("set it in the Dockerfile: `LABEL {label}=\"...\"`, or drop it from `checks.labels`"),
        ));
    }
    Ok(problems)
}

async fn check_in_container(
    engine: &Engine,
    container: &str,
    meta: &BuilderMeta,
    file: &Path,
    text: &str,
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for (i, command) in meta.checks.commands.iter().enumerate() {
        let line = yaml_line(text, &format!("checks.commands[{i}]"));
        let spec = ExecSpec {
            cmd: vec!["sh".into(), "-c".into(), command.clone()],
            ..Default::default()
        };
        let mut output = Vec::new();
        let ran = tokio::time::timeout(
            COMMAND_TIMEOUT,
            engine.exec(container, &spec, &mut |_, bytes| {
                output.extend_from_slice(bytes);
            }),
        )
        .await;
        let message = match ran {
            Err(_) => format!(
                "`{command}` did not finish within {} s in the image",
                COMMAND_TIMEOUT.as_secs()
            ),
            Ok(code) => match code? {
                0 => continue,
                code => format!(
                    "`{command}` failed in the image (exit code {code}){}",
                    output_tail(&output)
                ),
            },
        };
        problems.push(Problem::new(
            file,
            line,
            "image-commands",
            message,
            "make the image provide what the command needs (base packages, Dockerfile), or correct the command in `checks.commands`",
        ));
    }
    for (i, check) in meta.checks.files.iter().enumerate() {
        let line = yaml_line(text, &format!("checks.files[{i}]"));
        let path = &check.path;
        // `test -e` follows links; `test -L` also accepts a dangling one,
        // which the mode check below then reports.
        let exists = ExecSpec {
            cmd: vec![
                "sh".into(),
                "-c".into(),
                r#"test -e "$1" || test -L "$1""#.into(),
                "sh".into(),
                path.clone(),
            ],
            ..Default::default()
        };
        if engine.exec(container, &exists, &mut |_, _| {}).await? != 0 {
            problems.push(Problem::new(
                file,
                line,
                "image-files",
                format!("`{path}` does not exist in the image"),
                format!(
                    "COPY it into the image in the Dockerfile, or correct `checks.files[{i}].path`"
                ),
            ));
            continue;
        }
        let Some(expected) = check
            .mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
        else {
            continue;
        };
        let tar = engine.download(container, path).await?;
        let message = match tar_first_entry(&tar) {
            None => format!("cannot read the mode of `{path}` in the image"),
            Some(entry) if entry.link.is_some() => format!(
                "`{path}` is a symbolic link (to {}); its mode says nothing",
                entry.link.unwrap_or_default()
            ),
            Some(entry) if entry.mode & 0o7777 != expected & 0o7777 => format!(
                "`{path}` has mode {:04o} in the image; builder.yaml expects {:04o}",
                entry.mode & 0o7777,
                expected & 0o7777
            ),
            Some(_) => continue,
        };
        problems.push(Problem::new(
            file,
            line,
            "image-files",
            message,
            format!(
                "set the mode in the Dockerfile (`RUN chmod {:04o} {path}`), or correct `checks.files[{i}].mode`",
                expected & 0o7777
            ),
        ));
    }
    Ok(problems)
}

/// The last lines of a command's output, indented, for a problem message.
fn output_tail(output: &[u8]) -> String {
    let lines = crate::text::last_lines(&String::from_utf8_lossy(output), 10);
    if lines.is_empty() {
        return " and printed nothing".to_string();
    }
    let mut tail = String::from(":");
    for line in &lines {
        tail.push_str("\n      | ");
        tail.push_str(line);
    }
    tail
}

/// The first entry of a tar archive as the engine returns a path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    mode: u32,
    /// The target, when the entry is a symbolic link.
    link: Option<String>,
}

fn tar_first_entry(tar: &[u8]) -> Option<TarEntry> {
    let mut archive = tar::Archive::new(tar);
    let entry = archive.entries().ok()?.next()?.ok()?;
    let header = entry.header();
    let link = (header.entry_type() == tar::EntryType::Symlink).then(|| {
        header
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.display().to_string())
            .unwrap_or_default()
    });
    Some(TarEntry {
        mode: header.mode().ok()?,
        link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_entries_give_mode_and_link() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o750);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "run.sh", &b"hi"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        assert_eq!(
            tar_first_entry(&tar),
            Some(TarEntry {
                mode: 0o750,
                link: None
            })
        );

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o777);
        header.set_entry_type(tar::EntryType::Symlink);
        builder.append_link(&mut header, "sh", "dash").unwrap();
        let tar = builder.into_inner().unwrap();
        assert_eq!(
            tar_first_entry(&tar),
            Some(TarEntry {
                mode: 0o777,
                link: Some("dash".into())
            })
        );
        assert_eq!(tar_first_entry(b"not a tar"), None);
    }

    #[test]
    fn output_tails_are_short() {
        assert_eq!(output_tail(b""), " and printed nothing");
        let many: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = output_tail(many.as_bytes());
        assert!(
            tail.contains("| line 30") && tail.contains("| line 21") && !tail.contains("line 20\n"),
            "{tail}"
        );
    }
}
