//! Images: inspect, pull, import, build, remove.

use super::*;

impl Engine {
    // ----- images -------------------------------------------------------

    /// The image, or `None` when the engine has no such image.
    pub async fn image(&self, name: &str) -> Result<Option<ImageInfo>> {
        let _timed = timed("inspect image", name);
        match self.docker.inspect_image(name).await {
            Ok(i) => {
                let config = i.config.unwrap_or_default();
                Ok(Some(ImageInfo {
                    id: i.id.unwrap_or_default(),
                    tags: i.repo_tags.unwrap_or_default(),
                    labels: config.labels.unwrap_or_default(),
                    size: i.size.unwrap_or(0).max(0) as u64,
                    working_dir: config.working_dir.unwrap_or_default(),
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(Operation::InspectImage, name, e)),
        }
    }

    /// Pulls an image from its registry. Gives up after `timeout`, so that
    /// an unreachable registry costs seconds.
    pub async fn pull(&self, image: &str, timeout: Duration) -> Result<()> {
        let _timed = timed("pull image", image);
        let (name, tag) = ImageRef::parse(image).repo_and_tag();
        let options = q::CreateImageOptions {
            from_image: Some(name.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let pulling = self
            .docker
            .create_image(Some(options), None, None)
            .try_for_each(|_| async { Ok(()) });
        match tokio::time::timeout(timeout, pulling).await {
            Ok(result) => result.map_err(|e| engine_err(Operation::PullImage, image, e)),
            Err(_) => Err(crate::Error::from(EngineError::new(
                Operation::PullImage,
                image,
                Failure::Timeout,
                format!("no answer from the registry within {}s", timeout.as_secs()),
            ))),
        }
    }

    /// Imports a root file system (an uncompressed tar) as `repo:tag`, with
    /// labels and environment set on the image. Returns the image id.
    pub async fn import_rootfs(
        &self,
        rootfs: Vec<u8>,
        image: &str,
        labels: &Labels,
        env: &[(String, String)],
    ) -> Result<String> {
        let _timed = timed("import image", image);
        let (name, tag) = ImageRef::parse(image).repo_and_tag();
        let mut changes: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("LABEL {k}={}", quote_change(v)))
            .collect();
        changes.extend(
            env.iter()
                .map(|(k, v)| format!("ENV {k}={}", quote_change(v))),
        );
        changes.push("CMD [\"/bin/sh\"]".to_string());
        let options = q::CreateImageOptions {
            from_src: Some("-".to_string()),
            repo: Some(name.to_string()),
            tag: Some(tag.to_string()),
            changes,
            ..Default::default()
        };
        let mut stream = self.bulk.create_image(
            Some(options),
            Some(bollard::body_full(Bytes::from(rootfs))),
            None,
        );
        while let Some(item) = stream.next().await {
            item.map_err(|e| engine_err(Operation::ImportImage, image, e))?;
        }
        let info = self.image(image).await?.ok_or_else(|| {
            crate::Error::from(EngineError::new(
                Operation::ImportImage,
                image,
                Failure::Failed,
                "the engine reported success but has no such image",
            ))
        })?;
        Ok(info.id)
    }

    /// Builds an image from a tar build context (classic builder). Each line
    /// of the build's output goes to `progress`. Returns the image id.
    pub async fn build_image(
        &self,
        context: Vec<u8>,
        tag: &str,
        build_args: &HashMap<String, String>,
        labels: &Labels,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let _timed = timed("build image", tag);
        let options = q::BuildImageOptions {
            dockerfile: "Dockerfile".to_string(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(build_args.clone()),
            labels: Some(labels.to_hash_map()),
            ..Default::default()
        };
        let mut stream = self.bulk.build_image(
            options,
            None,
            Some(bollard::body_full(Bytes::from(context))),
        );
        let mut last_lines = crate::text::LastLines::new(20);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(build_failed(tag, &detail, &last_lines.to_vec()));
                    }
                    if let Some(text) = info.stream {
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            progress(line);
                            last_lines.push(line.to_string());
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_failed(tag, &error, &last_lines.to_vec()));
                }
                Err(e) => return Err(engine_err(Operation::BuildImage, tag, e)),
            }
        }
        let info = self.image(tag).await?.ok_or_else(|| {
            crate::Error::from(EngineError::new(
                Operation::BuildImage,
                tag,
                Failure::Failed,
                "the build finished but the image is missing",
            ))
        })?;
        Ok(info.id)
    }

    /// Removes one image that no tag and no other image needs (a failed
    /// build's step), leaving its parents; never forced. Whether it is
    /// gone: one still in use, tagged or a parent stays (`false`).
    pub async fn remove_untagged_image(&self, id: &str) -> Result<bool> {
        let _timed = timed("remove image", id);
        let options = q::RemoveImageOptions {
            force: false,
            noprune: true,
            ..Default::default()
        };
        match self.docker.remove_image(id, Some(options), None).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(false),
            Err(e) => Err(engine_err(Operation::RemoveImage, short(id), e)),
        }
    }

    /// Removes an image; an image that is already gone is not an error.
    pub async fn remove_image(&self, image: &str) -> Result<()> {
        let _timed = timed("remove image", image);
        let options = q::RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_err(Operation::RemoveImage, image, e)),
        }
    }
}

fn build_failed(tag: &str, detail: &str, last_lines: &[String]) -> Error {
    let mut message = detail.trim().to_string();
    if !last_lines.is_empty() {
        message.push_str("\n  last lines of the build:\n");
        for line in last_lines {
            message.push_str("    ");
            message.push_str(line);
            message.push('\n');
        }
    }
    EngineError::new(Operation::BuildImage, tag, Failure::Failed, message).into()
}

/// Values in import `changes` are Dockerfile syntax; quote them as JSON strings.
fn quote_change(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_values_are_quoted() {
        assert_eq!(quote_change("a b\"c"), "\"a b\\\"c\"");
    }
}
