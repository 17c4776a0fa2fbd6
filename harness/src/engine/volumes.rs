//! Volumes, and finding (and removing) what a run made.

use super::*;

impl Engine {
    // ----- volumes --------------------------------------------------------

    /// Creates a named volume. Creating one that exists is not an error (the
    /// engine returns the existing one): callers use fresh names.
    pub async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()> {
        let _timed = timed("create volume", name);
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.to_hash_map()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(|e| engine_err(Operation::CreateVolume, name, e))?;
        Ok(())
    }

    /// The volume, or `None` when the engine has none of that name.
    pub async fn volume(&self, name: &str) -> Result<Option<VolumeInfo>> {
        let _timed = timed("inspect volume", name);
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(VolumeInfo {
                name: v.name,
                labels: v.labels,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(Operation::InspectVolume, name, e)),
        }
    }

    /// Volumes carrying label `key=value` (or just `key`).
    pub async fn volumes_labelled(&self, label_filter: &str) -> Result<Vec<VolumeInfo>> {
        let _timed = timed("list volumes", label_filter);
        let filters = HashMap::from([("label".to_string(), vec![label_filter.to_string()])]);
        let listed = self
            .docker
            .list_volumes(Some(q::ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| engine_err(Operation::ListVolumes, label_filter, e))?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    /// Removes a volume unless a container still uses it.
    pub async fn remove_volume(&self, name: &str) -> Result<VolumeRemoval> {
        let _timed = timed("remove volume", name);
        match self
            .docker
            .remove_volume(name, None::<q::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(VolumeRemoval::Removed),
            Err(e) if is_not_found(&e) => Ok(VolumeRemoval::Gone),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(VolumeRemoval::InUse),
            Err(e) => Err(engine_err(Operation::RemoveVolume, name, e)),
        }
    }

    // ----- finding what we made -----------------------------------------

    /// Containers and images carrying label `key=value` (or just `key`).
    pub async fn find_labelled(&self, label_filter: &str) -> Result<Leftovers> {
        let _timed = timed("list objects", label_filter);
        let filters = HashMap::from([("label".to_string(), vec![label_filter.to_string()])]);
        let containers = self
            .docker
            .list_containers(Some(q::ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_err(Operation::ListContainers, label_filter, e))?
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                (c.id.unwrap_or_default(), name)
            })
            .collect();
        let images = self
            .docker
            .list_images(Some(q::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_err(Operation::ListImages, label_filter, e))?
            .into_iter()
            .map(|i| {
                let tag = i
                    .repo_tags
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "<none>".into());
                (i.id, tag)
            })
            .collect();
        let volumes = self
            .volumes_labelled(label_filter)
            .await?
            .into_iter()
            .map(|v| v.name)
            .collect();
        Ok(Leftovers {
            containers,
            images,
            volumes,
        })
    }

    /// Removes every container of a run, and its images when they were made
    /// only for that run (labelled ephemeral). Returns what was removed.
    pub async fn clean_up_run(&self, run: &RunId) -> Result<Leftovers> {
        let found = self.find_labelled(&format!("{LABEL_RUN}={run}")).await?;
        for (id, _) in &found.containers {
            self.remove_container(id).await?;
        }
        let mut removed_images = Vec::new();
        for (id, tag) in found.images {
            if let Some(info) = self.image(&id).await? {
                if info.labels.get(LABEL_EPHEMERAL).map(String::as_str) == Some("true") {
                    self.remove_image(&id).await?;
                    removed_images.push((id, tag));
                }
            }
        }
        // After the containers: a volume in use cannot be removed.
        let mut removed_volumes = Vec::new();
        for volume in found.volumes {
            if self.remove_volume(&volume).await? == VolumeRemoval::Removed {
                removed_volumes.push(volume);
            }
        }
        Ok(Leftovers {
            containers: found.containers,
            images: removed_images,
            volumes: removed_volumes,
        })
    }
}
