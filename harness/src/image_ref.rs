//! Image references, `[registry[:port]/]path[:tag][@digest]`, read one way
//! by everything that reads them (the engine's pulls, imports, tags and
//! pushes; the pinning checks of `builder.yaml` and Dockerfiles), and the
//! names of the images this tool makes.

use std::fmt;

/// An image reference split into its parts, as the engine reads it.
///
/// Parsing never fails and loses nothing: it splits, it does not validate
/// (the engine or the registry judges a malformed name), and `to_string()`
/// gives back the text that was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageRef<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(reference: &'a str) -> ImageRef<'a> {
        // The digest first: it has a `:` of its own (`sha256:…`).
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (reference, None),
        };
        // A tag is a `:` in the last path component; a `:` before a `/` is a
        // registry's port.
        let last = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last..].rfind(':') {
            Some(i) => (&rest[..last + i], Some(&rest[last + i + 1..])),
            None => (rest, None),
        };
        ImageRef { name, tag, digest }
    }

    /// The name without tag or digest, registry included:
    /// `localhost:5000/ns/x` of `localhost:5000/ns/x:1`.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The registry host (with its port) when the name starts with one. As
    /// the engine decides: a first component with a `.` or a `:`, or
    /// `localhost` (or with capitals, which a path may not have), followed by
    /// more; otherwise the image is on Docker Hub.
    pub fn registry(&self) -> Option<&'a str> {
        let (first, _) = self.name.split_once('/')?;
        let is_host = first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase());
        is_host.then_some(first)
    }

    /// The name without its registry: `ns/x` of `localhost:5000/ns/x:1`.
    pub fn path(&self) -> &'a str {
        match self.registry() {
            Some(registry) => &self.name[registry.len() + 1..],
            None => self.name,
        }
    }

    /// The tag as written (`None` when there is none: not `latest`).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }

    /// The digest as written (`sha256:…`), when there is one.
    pub fn digest(&self) -> Option<&'a str> {
        self.digest
    }

    /// Whether the reference names one image for good: a digest, or a tag
    /// other than `latest`.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some() || self.tag.is_some_and(|t| t != "latest")
    }

    /// The two parts the engine's API takes: the name (`fromImage`, `repo`)
    /// and its `tag` parameter, which holds the digest when there is one
    /// (as the docker CLI sends it), else the tag, else `latest`.
    pub fn repo_and_tag(&self) -> (&'a str, &'a str) {
        let tag = self.digest.or(self.tag).unwrap_or("latest");
        (self.name, tag)
    }
}

impl fmt::Display for ImageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `<prefix>/<name>:<tag>`, the form of every image this tool makes; no
/// prefix (or a bare `/`) gives `<name>:<tag>`.
pub fn under_prefix(prefix: &str, name: &str, tag: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        format!("{name}:{tag}")
    } else {
        format!("{prefix}/{name}:{tag}")
    }
}

/// The image of the official builder `language` at `version`:
/// `<prefix>/<language>-build:<version>`.
pub fn builder_image(prefix: &str, language: &str, version: &str) -> String {
    under_prefix(prefix, &format!("{language}-build"), version)
}

/// The base image of the builder `language`, made from its Debian recipe:
/// `<prefix>/base-<language>:<suite>`.
pub fn base_image(prefix: &str, language: &str, suite: &str) -> String {
    under_prefix(prefix, &format!("base-{language}"), suite)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (reference, name, registry, path, tag, digest)
    type Parts = (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );

    const CASES: &[Parts] = &[
        ("debian", "debian", None, "debian", None, None),
        ("python:3.11", "python", None, "python", Some("3.11"), None),
        (
            "debian@sha256:abc",
            "debian",
            None,
            "debian",
            None,
            Some("sha256:abc"),
        ),
        (
            "localhost:5000/x",
            "localhost:5000/x",
            Some("localhost:5000"),
            "x",
            None,
            None,
        ),
        (
            "localhost:5000/a/b:1",
            "localhost:5000/a/b",
            Some("localhost:5000"),
            "a/b",
            Some("1"),
            None,
        ),
        (
            "reg.example.com/ns/img:1.2@sha256:def",
            "reg.example.com/ns/img",
            Some("reg.example.com"),
            "ns/img",
            Some("1.2"),
            Some("sha256:def"),
        ),
        (
            "localhost/x:2",
            "localhost/x",
            Some("localhost"),
            "x",
            Some("2"),
            None,
        ),
        (
            "library/debian:12",
            "library/debian",
            None,
            "library/debian",
            Some("12"),
            None,
        ),
        (
            "[::1]:5000/x:1",
            "[::1]:5000/x",
            Some("[::1]:5000"),
            "x",
            Some("1"),
            None,
        ),
        ("Host/x", "Host/x", Some("Host"), "x", None, None),
        // No `/`: the `:` is a tag, as the engine reads it.
        (
            "localhost:5000",
            "localhost",
            None,
            "localhost",
            Some("5000"),
            None,
        ),
        ("", "", None, "", None, None),
    ];

    #[test]
    fn references_split_into_their_parts() {
        for &(text, name, registry, path, tag, digest) in CASES {
            let r = ImageRef::parse(text);
            assert_eq!(
                (r.name(), r.registry(), r.path(), r.tag(), r.digest()),
                (name, registry, path, tag, digest),
                "{text}"
            );
        }
    }

    #[test]
    fn a_digest_is_not_a_tag() {
        let r = ImageRef::parse("debian@sha256:abc");
        assert_eq!(r.name(), "debian");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some("sha256:abc"));
        assert!(r.is_pinned());
    }

    #[test]
    fn display_gives_back_what_was_parsed() {
        let odd = ["x:", "x@", "a:b:c", "a/b/", ":1", "@sha256:x", "a@b@c"];
        for text in CASES.iter().map(|c| c.0).chain(odd) {
            assert_eq!(ImageRef::parse(text).to_string(), text);
        }
    }

    #[test]
    fn what_the_engine_is_given() {
        for (text, parts) in [
            ("python:3.11", ("python", "3.11")),
            ("python", ("python", "latest")),
            ("localhost:5000/a/b", ("localhost:5000/a/b", "latest")),
            ("localhost:5000/a/b:1", ("localhost:5000/a/b", "1")),
            ("debian@sha256:abc", ("debian", "sha256:abc")),
            ("debian:12@sha256:abc", ("debian", "sha256:abc")),
        ] {
            assert_eq!(ImageRef::parse(text).repo_and_tag(), parts, "{text}");
        }
    }

    #[test]
    fn pinned_means_a_digest_or_a_tag_other_than_latest() {
        for pinned in ["python:3.11", "debian@sha256:abc", "x:latest@sha256:abc"] {
            assert!(ImageRef::parse(pinned).is_pinned(), "{pinned}");
        }
        for loose in ["python", "golang:latest", "localhost:5000/python"] {
            assert!(!ImageRef::parse(loose).is_pinned(), "{loose}");
        }
    }

    #[test]
    fn names_of_the_images_made_here() {
        assert_eq!(builder_image("", "go", "1"), "go-build:1");
        assert_eq!(
            builder_image("reg:5000/ns/", "go", "1"),
            "reg:5000/ns/go-build:1"
        );
        assert_eq!(
            builder_image("pachbuild", "python", "0.1.0"),
            "pachbuild/python-build:0.1.0"
        );
        assert_eq!(
            base_image("pachbuild", "python", "bookworm"),
            "pachbuild/base-python:bookworm"
        );
        let made = builder_image("localhost:5000/ns", "go", "1");
        let r = ImageRef::parse(&made);
        assert_eq!(
            (r.registry(), r.path(), r.tag()),
            (Some("localhost:5000"), "ns/go-build", Some("1"))
        );
    }
}
