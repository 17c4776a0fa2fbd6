//! Pinned images: every image a builder names carries a tag other than
//! `latest`, or a digest, so that a rebuild later gets the same image.

use std::collections::BTreeSet;
use std::path::Path;

use super::Problem;
use crate::image_ref::ImageRef;

/// An image must carry a tag other than `latest` (or a digest).
pub(super) fn check_pinned(path: &Path, line: usize, image: &str, problems: &mut Vec<Problem>) {
    if image == "scratch" || image.is_empty() {
        return;
    }
    let reference = ImageRef::parse(image);
    if reference.is_pinned() {
        return;
    }
    // Not pinned: no tag, or `latest` (a digest or another tag would pin it).
    let (message, fix) = match reference.tag() {
        None => (
            format!("the image `{image}` has no tag: a rebuild later may get a different image"),
            format!("pin it to a version, e.g. `{image}:<version>`, or to a digest"),
        ),
        Some(_) => (
            format!(
                "the image `{image}` is tagged `latest`: a rebuild later may get a different image"
            ),
            "pin it to a version tag or a digest instead of `latest`".to_string(),
        ),
    };
    problems.push(Problem::new(
        path,
        Some(line),
        "pinned-images",
        message,
        fix,
    ));
}

/// Any `:latest` on a line that is not a comment (and not reported yet).
pub(super) fn check_latest_mentions(path: &Path, text: &str, problems: &mut Vec<Problem>) {
    let reported: BTreeSet<usize> = problems
        .iter()
        .filter(|p| p.file == path)
        .filter_map(|p| p.line)
        .collect();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') || reported.contains(&(i + 1)) {
            continue;
        }
        let mentions = line.match_indices(":latest").any(|(at, m)| {
            line[at + m.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        });
        if mentions {
            problems.push(Problem::new(
                path,
                Some(i + 1),
                "pinned-images",
                "mentions an image tagged `latest`: a rebuild later may get a different image",
                "pin a version tag or a digest instead of `latest`",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::builder::validate::static_checks;
    use crate::builder::validate::testing::*;

    #[test]
    fn images_must_be_pinned_everywhere() {
        let (_root, dir) = good();
        let text = "\
ARG BASE_IMAGE=pachbuild/base-x
ARG TOOLS=busybox:latest
FROM $TOOLS AS tools
FROM \\
  golang AS go
FROM ${BASE_IMAGE}
COPY --from=alpine:latest /bin/sh /x
COPY --from=tools /bin/sh /y
COPY --from=0 /bin/sh /z
# FROM python:latest in a comment is fine
RUN echo registry.example/x:latest
";
        write(&dir, "Dockerfile", text, false);
        let lines: Vec<Option<usize>> = static_checks(&dir)
            .iter()
            .inspect(|p| assert_eq!(p.check, "pinned-images", "{p}"))
            .map(|p| p.line)
            .collect();
        assert_eq!(lines, [Some(1), Some(2), Some(4), Some(7), Some(11)]);
    }

    #[test]
    fn latest_anywhere_in_builder_yaml_is_reported_once() {
        let (_root, dir) = good();
        let text = BUILDER_YAML
            .replace("debian:bookworm-slim", "debian:latest")
            .replace("[sh -c true]", "[docker run x:latest, echo x:latest-ish]");
        write(&dir, "builder.yaml", &text, false);
        let lines: Vec<(Option<usize>, &str)> = static_checks(&dir)
            .iter()
            .map(|p| (p.line, p.check))
            .collect();
        assert_eq!(
            lines,
            [(Some(4), "builder-yaml"), (Some(8), "pinned-images")]
        );
    }
}
