//! Engine calls for publishing: tag an image under a registry's name, push
//! it (credentials in the engine's `X-Registry-Auth` header, never logged),
//! and read the digests the engine recorded for it.

use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::query_parameters as q;
use futures_util::StreamExt;

use super::{engine_err, Engine, EngineError, Failure, Operation};
use crate::error::Result;
use crate::image_ref::ImageRef;

/// A push that reports nothing for this long is taken as stuck.
const PUSH_STALL: Duration = Duration::from_secs(300);

/// Who the engine is at a registry for one push.
#[derive(Clone)]
pub struct PushAuth {
    pub username: String,
    pub password: String,
    /// The server address the credentials belong to.
    pub server: String,
}

impl std::fmt::Debug for PushAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushAuth")
            .field("username", &self.username)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Gives the image `source` (a name or id) the reference `target`
    /// (`repo:tag`).
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let _timed = super::timed("tag image", target);
        let (repo, tag) = ImageRef::parse(target).repo_and_tag();
        let options = q::TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| {
                engine_err(
                    Operation::TagImage {
                        source: source.to_string(),
                    },
                    target,
                    e,
                )
            })
    }

    /// Removes one reference (`repo:tag`) of an image; the image stays while
    /// another reference names it (else it goes, with the untagged images it
    /// was built on). A reference already gone is not an error.
    pub async fn untag(&self, reference: &str) -> Result<()> {
        let _timed = super::timed("untag image", reference);
        let options = q::RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if super::is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_err(Operation::RemoveReference, reference, e)),
        }
    }

    /// The `repo@sha256:…` digests the engine recorded for an image (after a
    /// push or a pull).
    pub async fn repo_digests(&self, image: &str) -> Result<Vec<String>> {
        let _timed = super::timed("inspect image", image);
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.repo_digests.unwrap_or_default()),
            Err(e) if super::is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(engine_err(Operation::InspectImage, image, e)),
        }
    }

    /// Images carrying label `key=value`, with every reference to them:
    /// (id, `repo:tag`s, `repo@digest`s).
    pub async fn image_references(
        &self,
        label_filter: &str,
    ) -> Result<Vec<(String, Vec<String>, Vec<String>)>> {
        let _timed = super::timed("list images", label_filter);
        let filters = std::collections::HashMap::from([(
            "label".to_string(),
            vec![label_filter.to_string()],
        )]);
        let listed = self
            .docker
            .list_images(Some(q::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_err(Operation::ListImages, label_filter, e))?;
        Ok(listed
            .into_iter()
            .map(|i| {
                let tags = i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect();
                let digests = i
                    .repo_digests
                    .into_iter()
                    .filter(|d| d != "<none>@<none>")
                    .collect();
                (i.id, tags, digests)
            })
            .collect())
    }

    /// When the image was made (RFC 3339, as the engine reports it).
    pub async fn image_created(&self, image: &str) -> Result<Option<String>> {
        let _timed = super::timed("inspect image", image);
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.created),
            Err(e) if super::is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(Operation::InspectImage, image, e)),
        }
    }

    /// Pushes `reference` (`registry/repo:tag`, already tagged) and returns
    /// the manifest digest the engine reports. `progress` gets the engine's
    /// status lines (layer by layer), never the credentials.
    pub async fn push(
        &self,
        reference: &str,
        auth: Option<&PushAuth>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let _timed = super::timed("push image", reference);
        let (repo, tag) = ImageRef::parse(reference).repo_and_tag();
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        let options = q::PushImageOptions {
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.push_image(repo, Some(options), credentials);
        let mut digest = None;
        loop {
            let item = match tokio::time::timeout(PUSH_STALL, stream.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    return Err(EngineError::new(
                        Operation::PushImage,
                        reference,
                        Failure::Timeout,
                        format!(
                            "no progress for {} s: the push was abandoned",
                            PUSH_STALL.as_secs()
                        ),
                    )
                    .into())
                }
            };
            let info = item.map_err(|e| engine_err(Operation::PushImage, reference, e))?;
            if let Some(status) = info.status {
                if let Some(found) = digest_in_status(&status) {
                    digest = Some(found);
                }
                progress(&status);
            }
        }
        digest.ok_or_else(|| {
            EngineError::new(
                Operation::PushImage,
                reference,
                Failure::Failed,
                "the engine ended the push without reporting a digest",
            )
            .into()
        })
    }
}

/// The digest in the engine's last push line: `TAG: digest: sha256:… size: N`.
fn digest_in_status(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    digest.starts_with("sha256:").then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_the_last_push_line() {
        assert_eq!(
            digest_in_status("0.1.0: digest: sha256:abc123 size: 1571").as_deref(),
            Some("sha256:abc123")
        );
        assert_eq!(digest_in_status("Pushed"), None);
        assert_eq!(digest_in_status("Layer already exists"), None);
    }

    #[test]
    fn push_auth_debug_hides_the_password() {
        let auth = PushAuth {
            username: "u".into(),
            password: "hunter2".into(),
            server: "127.0.0.1:5000".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
