//! Release images: the tested builder image under its registry name, with
//! the OCI labels of a release (version, revision, source, created) set on
//! it. Only the configuration changes: the layers are the tested image's.
//!
//! A release image is reused while it was made from the same builder image
//! with the same labels, so publishing twice pushes the same image (and the
//! registry sees the same digest).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::builder::image::BuilderImage;
use crate::engine::{Engine, Labels, RunId, LABEL_EPHEMERAL};
use crate::error::{Error, Result};

pub use crate::engine::labels::{LABEL_RELEASE_HASH, LABEL_RELEASE_OF};

pub const OCI_VERSION: &str = "org.opencontainers.image.version";
pub const OCI_REVISION: &str = "org.opencontainers.image.revision";
pub const OCI_SOURCE: &str = "org.opencontainers.image.source";
pub const OCI_CREATED: &str = "org.opencontainers.image.created";

/// The OCI labels a published image carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseLabels {
    pub version: String,
    /// The git commit (`-dirty` appended when the tree had changes).
    pub revision: String,
    pub source: String,
    /// When the tested image was built (RFC 3339).
    pub created: String,
}

impl ReleaseLabels {
    pub fn to_map(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (OCI_VERSION, self.version.clone()),
            (OCI_REVISION, self.revision.clone()),
            (OCI_SOURCE, self.source.clone()),
            (OCI_CREATED, self.created.clone()),
        ])
    }
}

/// A release image on the engine.
#[derive(Debug, Clone)]
pub struct ReleaseImage {
    pub reference: String,
    pub id: String,
    pub reused: bool,
}

/// The hash naming a release: the builder image and the labels.
pub fn release_hash(builder_id: &str, labels: &ReleaseLabels) -> String {
    let mut hasher = Sha256::new();
    hasher.update(builder_id.as_bytes());
    for (key, value) in labels.to_map() {
        hasher.update(b"\n");
        hasher.update(key.as_bytes());
        hasher.update(b"=");
        hasher.update(value.as_bytes());
    }
    crate::text::hex(&hasher.finalize()[..12])
}

/// Makes (or reuses) `reference` from `builder` with `labels`.
pub async fn ensure(
    engine: &Engine,
    builder: &BuilderImage,
    labels: &ReleaseLabels,
    reference: &str,
    run: &RunId,
) -> Result<ReleaseImage> {
    let hash = release_hash(&builder.id, labels);
    let previous = engine.image(reference).await?;
    if let Some(found) = &previous {
        if found.labels.get(LABEL_RELEASE_HASH) == Some(&hash) {
            return Ok(ReleaseImage {
                reference: reference.to_string(),
                id: found.id.clone(),
                reused: true,
            });
        }
    }
    // The same release made for another reference (another registry):
    // name it too, so every registry gets the same image.
    let made = engine
        .find_labelled(&format!("{LABEL_RELEASE_HASH}={hash}"))
        .await?;
    if let Some((id, _)) = made.images.first() {
        engine.tag_image(id, reference).await?;
        forget_replaced(engine, previous, id).await?;
        return Ok(ReleaseImage {
            reference: reference.to_string(),
            id: id.clone(),
            reused: true,
        });
    }
    let mut all = Labels::for_run(run, "release")
        .with(LABEL_RELEASE_OF, &builder.id)
        .with(LABEL_RELEASE_HASH, &hash)
        // Builder images made for tests are ephemeral; what is published is not.
        .with(LABEL_EPHEMERAL, "false");
    for (key, value) in labels.to_map() {
        all = all.with(key, &value);
    }
    let context = dockerfile_context(&format!("FROM {}\n", builder.id))?;
    let id = engine
        .build_image(context, reference, &HashMap::new(), &all, &mut |_| {})
        .await?;
    forget_replaced(engine, previous, &id).await?;
    Ok(ReleaseImage {
        reference: reference.to_string(),
        id,
        reused: false,
    })
}

/// Removes the release image `reference` named before, once nothing names it.
async fn forget_replaced(
    engine: &Engine,
    previous: Option<crate::engine::ImageInfo>,
    new_id: &str,
) -> Result<()> {
    if let Some(old) = previous {
        if old.id != new_id && old.labels.contains_key(LABEL_RELEASE_HASH) {
            if let Some(info) = engine.image(&old.id).await? {
                if info.tags.is_empty() {
                    let _ = engine.remove_image(&old.id).await;
                }
            }
        }
    }
    Ok(())
}

/// A build context holding only a Dockerfile.
fn dockerfile_context(dockerfile: &str) -> Result<Vec<u8>> {
    let context = crate::builder::image::Context {
        files: vec![("Dockerfile".into(), 0o644, dockerfile.as_bytes().to_vec())],
    };
    context
        .to_tar_gz()
        .map_err(|e| Error::Failed(format!("cannot make the release build context: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> ReleaseLabels {
        ReleaseLabels {
            version: "0.1.0".into(),
            revision: "abc".into(),
            source: "https://example.invalid/x".into(),
            created: "2024-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_hash_follows_the_image_and_every_label() {
        let base = release_hash("sha256:1", &labels());
        assert_eq!(base, release_hash("sha256:1", &labels()));
        assert_ne!(base, release_hash("sha256:2", &labels()));
        let mut other = labels();
        other.revision = "def".into();
        assert_ne!(base, release_hash("sha256:1", &other));
        let mut other = labels();
        other.version = "0.1.1".into();
        assert_ne!(base, release_hash("sha256:1", &other));
    }

    #[test]
    fn the_map_holds_the_four_oci_labels() {
        let map = labels().to_map();
        assert_eq!(map.len(), 4);
        assert_eq!(map[OCI_VERSION], "0.1.0");
        assert_eq!(map[OCI_CREATED], "2024-01-01T00:00:00Z");
    }
}
