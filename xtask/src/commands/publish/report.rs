//! What `publish` did, per builder: the lines it prints as it goes, the
//! summary at the end (every failure, not just the first), and the JSON
//! document of `--json`. Pure: no engine, no registry.

use serde::Serialize;

/// Where a builder stopped when it was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Its image could not be built.
    Build,
    /// `validate` found problems.
    Validate,
    /// A fixture failed.
    Fixtures,
    /// The registry could not be reached, or refused us.
    Registry,
    /// The version already exists in the registry as another image.
    Immutable,
    /// The push failed or its result did not check out.
    Push,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Build => "image build failed",
            Stage::Validate => "validate failed",
            Stage::Fixtures => "fixtures failed",
            Stage::Registry => "registry",
            Stage::Immutable => "version exists as another image",
            Stage::Push => "push failed",
        }
    }
}

/// What happened to one reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pushed: the registry did not have this tag.
    Pushed,
    /// The registry had this tag as another image; pushed with `--force`
    /// (or `latest`, which moves).
    Replaced,
    /// The registry already had this tag as this very image: nothing pushed.
    Unchanged,
}

/// One reference of a builder, with the digest the registry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// `registry/name:tag`
    pub reference: String,
    /// The manifest digest, `sha256:…`.
    pub digest: String,
    pub action: Action,
}

impl Published {
    /// `registry/name:tag@sha256:…`
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.reference, self.digest)
    }

    /// The line printed for it.
    pub fn line(&self) -> String {
        match self.action {
            Action::Pushed => format!("pushed {}", self.pinned()),
            Action::Replaced => format!("pushed {} (replaced another image)", self.pinned()),
            Action::Unchanged => format!(
                "unchanged {} (the registry already holds this image: nothing pushed)",
                self.pinned()
            ),
        }
    }
}

/// One builder's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuilderResult {
    pub builder: String,
    pub version: String,
    /// The image that was tested (`prefix/lang-build:version`), with its id.
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub published: bool,
    pub references: Vec<Published>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BuilderResult {
    pub fn new(builder: &str, version: &str, image: &str) -> BuilderResult {
        BuilderResult {
            builder: builder.to_string(),
            version: version.to_string(),
            image: image.to_string(),
            image_id: None,
            published: false,
            references: Vec::new(),
            stage: None,
            error: None,
        }
    }

    pub fn fail(&mut self, stage: Stage, error: impl Into<String>) {
        self.published = false;
        self.stage = Some(stage);
        self.error = Some(error.into());
    }

    pub fn failed(&self) -> bool {
        self.stage.is_some()
    }

    /// Whether every reference was already there (a re-run).
    pub fn unchanged(&self) -> bool {
        !self.references.is_empty()
            && self
                .references
                .iter()
                .all(|r| r.action == Action::Unchanged)
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub registry: String,
    pub revision: String,
    pub builders: Vec<BuilderResult>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.builders.iter().all(|b| b.published && !b.failed())
    }

    fn names(&self, wanted: impl Fn(&BuilderResult) -> bool) -> Vec<&str> {
        self.builders
            .iter()
            .filter(|b| wanted(b))
            .map(|b| b.builder.as_str())
            .collect()
    }

    /// The closing lines: what was published, what was not and why.
    pub fn summary(&self) -> Vec<String> {
        let published = self.names(|b| b.published && !b.failed());
        let not = self.names(|b| !b.published || b.failed());
        let unchanged = self.names(|b| b.published && b.unchanged());
        let list = |names: &[&str]| {
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            }
        };
        let mut lines = Vec::new();
        for builder in self.builders.iter().filter(|b| b.failed()) {
            let stage = builder.stage.map(Stage::describe).unwrap_or("failed");
            let error = builder.error.as_deref().unwrap_or("");
            lines.push(format!(
                "not published: {} {}: {stage}: {}",
                builder.builder,
                builder.version,
                error.replace('\n', "\n    ")
            ));
        }
        let mut last = format!(
            "publish to {}: {} published{}, {} not published{}",
            self.registry,
            published.len(),
            list(&published),
            not.len(),
            list(&not)
        );
        if !unchanged.is_empty() {
            last.push_str(&format!(
                "; already there, nothing pushed: {}",
                unchanged.join(", ")
            ));
        }
        lines.push(last);
        lines
    }

    /// The `--json` document.
    pub fn to_json(&self) -> String {
        let published = self.names(|b| b.published && !b.failed());
        let not_published = self.names(|b| !b.published || b.failed());
        let document = serde_json::json!({
            "registry": self.registry,
            "revision": self.revision,
            "ok": self.ok(),
            "published": published,
            "not_published": not_published,
            "builders": self.builders,
        });
        serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".into())
    }
}

/// One builder in the plan of a `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub builder: String,
    pub version: String,
    /// The image that would be built or reused, then tested.
    pub image: String,
    pub fixtures: usize,
    pub references: Vec<String>,
}

/// The lines a `--dry-run` prints.
pub fn plan_lines(
    registry: &str,
    revision: &str,
    credentials: &str,
    planned: &[Planned],
) -> Vec<String> {
    let mut lines = vec![format!(
        "dry run: nothing is built, tested or pushed; no registry is contacted\nregistry {registry}, revision {revision}, credentials: {credentials}"
    )];
    for item in planned {
        lines.push(format!(
            "{} {}: build or reuse {}, validate it, run {} fixture(s), then push:",
            item.builder, item.version, item.image, item.fixtures
        ));
        for reference in &item.references {
            lines.push(format!("  {reference}"));
        }
    }
    lines.push(format!(
        "would publish {} builder(s): {}",
        planned.len(),
        planned
            .iter()
            .map(|p| p.builder.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(builder: &str, action: Action) -> BuilderResult {
        let mut b = BuilderResult::new(
            builder,
            "0.1.0",
            &format!("pachbuild/{builder}-build:0.1.0"),
        );
        b.published = true;
        b.references.push(Published {
            reference: format!("127.0.0.1:5000/{builder}-build:0.1.0"),
            digest: "sha256:aaa".into(),
            action,
        });
        b
    }

    #[test]
    fn lines_pin_references_to_digests() {
        let p = &published("python", Action::Pushed).references[0];
        assert_eq!(
            p.line(),
            "pushed 127.0.0.1:5000/python-build:0.1.0@sha256:aaa"
        );
        let u = Published {
            action: Action::Unchanged,
            ..p.clone()
        };
        assert!(u
            .line()
            .starts_with("unchanged 127.0.0.1:5000/python-build:0.1.0@sha256:aaa"));
        assert!(u.line().contains("nothing pushed"));
    }

    #[test]
    fn the_summary_names_every_failure_and_both_lists() {
        let mut go = BuilderResult::new("go", "0.1.0", "pachbuild/go-build:0.1.0");
        go.fail(Stage::Fixtures, "2 of 7 fixtures failed");
        let mut rust = BuilderResult::new("rust", "0.1.0", "pachbuild/rust-build:0.1.0");
        rust.fail(Stage::Push, "push image x: connection reset\n  fix: retry");
        let report = Report {
            registry: "127.0.0.1:5000".into(),
            revision: "abc".into(),
            builders: vec![published("python", Action::Pushed), go, rust],
        };
        assert!(!report.ok());
        let summary = report.summary();
        assert_eq!(summary.len(), 3, "{summary:?}");
        assert!(
            summary[0].contains("go 0.1.0: fixtures failed: 2 of 7"),
            "{summary:?}"
        );
        assert!(
            summary[1].contains("rust 0.1.0: push failed"),
            "{summary:?}"
        );
        assert!(summary[1].contains("\n      fix: retry"), "{summary:?}");
        assert_eq!(
            summary[2],
            "publish to 127.0.0.1:5000: 1 published (python), 2 not published (go, rust)"
        );
    }

    #[test]
    fn a_rerun_says_nothing_was_pushed() {
        let report = Report {
            registry: "r.example".into(),
            revision: "abc".into(),
            builders: vec![published("python", Action::Unchanged)],
        };
        assert!(report.ok());
        let last = report.summary().pop().unwrap();
        assert!(
            last.contains("1 published (python), 0 not published"),
            "{last}"
        );
        assert!(
            last.contains("already there, nothing pushed: python"),
            "{last}"
        );
    }

    #[test]
    fn json_for_ci() {
        let mut go = BuilderResult::new("go", "0.1.0", "pachbuild/go-build:0.1.0");
        go.fail(Stage::Immutable, "different digest");
        let report = Report {
            registry: "127.0.0.1:5000".into(),
            revision: "abc".into(),
            builders: vec![published("python", Action::Pushed), go],
        };
        let value: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(value["ok"], false);
        assert_eq!(value["published"], serde_json::json!(["python"]));
        assert_eq!(value["not_published"], serde_json::json!(["go"]));
        let python = &value["builders"][0];
        assert_eq!(python["references"][0]["digest"], "sha256:aaa");
        assert_eq!(python["references"][0]["action"], "pushed");
        assert!(python.get("error").is_none());
        assert_eq!(value["builders"][1]["stage"], "immutable");
    }

    #[test]
    fn the_plan_lists_what_would_happen() {
        let lines = plan_lines(
            "127.0.0.1:5000",
            "abc",
            "none",
            &[Planned {
                builder: "python".into(),
                version: "0.1.0".into(),
                image: "pachbuild/python-build:0.1.0".into(),
                fixtures: 11,
                references: vec![
                    "127.0.0.1:5000/python-build:0.1.0".into(),
                    "127.0.0.1:5000/python-build:latest".into(),
                ],
            }],
        );
        let text = lines.join("\n");
        assert!(text.contains("no registry is contacted"), "{text}");
        assert!(text.contains("run 11 fixture(s)"), "{text}");
        assert!(
            text.contains("  127.0.0.1:5000/python-build:latest"),
            "{text}"
        );
        assert!(
            text.ends_with("would publish 1 builder(s): python"),
            "{text}"
        );
    }
}
