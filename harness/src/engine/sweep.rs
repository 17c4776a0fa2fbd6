//! `cargo xtask clean`: removes what runs left behind (an interrupted or
//! crashed run, `--keep`), and only that. An object whose owner process
//! still runs is never touched, whoever runs it; one made on another
//! machine is left unless its run is named.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters as q;

use super::owner::{liveness, Liveness, LABEL_OWNER, LABEL_SESSION};
use super::{
    engine_err, Engine, Operation, VolumeRemoval, LABEL_EPHEMERAL, LABEL_KIND, LABEL_MANAGED,
    LABEL_RUN,
};
use crate::error::Result;

/// What to sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Only the objects of this run (also one made on another machine).
    pub run: Option<String>,
    /// Also base and builder images (kept as a cache otherwise).
    pub all_images: bool,
    /// Only images named `<prefix>/...` (and untagged ones).
    pub image_prefix: Option<String>,
    /// Only objects of this session (`PACHBUILD_SESSION` of their makers).
    pub session: Option<String>,
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// `container <name>`, `image <tag>`, `volume <name>`, each with its run.
    pub removed: Vec<String>,
    /// Runs still going on this machine (run → pid), whose objects stay.
    pub live: BTreeMap<String, u32>,
    /// Runs made on other machines (run → host), whose objects stay.
    pub elsewhere: BTreeMap<String, String>,
    /// Volumes a container still uses.
    pub in_use: Vec<String>,
}

/// One object we made.
#[derive(Debug)]
struct Found {
    what: &'static str,
    id: String,
    name: String,
    labels: HashMap<String, String>,
}

impl Found {
    fn run(&self) -> &str {
        self.labels.get(LABEL_RUN).map_or("-", String::as_str)
    }

    fn describe(&self) -> String {
        let kind = self
            .labels
            .get(LABEL_KIND)
            .map_or(String::new(), |k| format!(", {k}"));
        format!("{} {} (run {}{kind})", self.what, self.name, self.run())
    }
}

/// Removes the objects of runs that are over (see the module).
pub async fn sweep(engine: &Engine, options: &SweepOptions) -> Result<Swept> {
    let mut swept = Swept::default();
    let image_filter = if options.all_images {
        format!("{LABEL_MANAGED}=true")
    } else {
        format!("{LABEL_EPHEMERAL}=true")
    };
    let containers = list_containers(engine).await?;
    let images = list_images(engine, &image_filter).await?;
    let volumes = engine
        .volumes_labelled(LABEL_RUN)
        .await?
        .into_iter()
        .map(|v| Found {
            what: "volume",
            id: v.name.clone(),
            name: v.name,
            labels: v.labels,
        })
        .collect::<Vec<_>>();

    let prefix_ok = |found: &Found| match &options.image_prefix {
        Some(prefix) => found.name == "<none>" || found.name.starts_with(&format!("{prefix}/")),
        None => true,
    };
    // Containers first: an image or a volume in use cannot go.
    for (found, is_image) in containers
        .into_iter()
        .map(|f| (f, false))
        .chain(images.into_iter().map(|f| (f, true)))
        .chain(volumes.into_iter().map(|f| (f, false)))
    {
        if options.run.as_deref().is_some_and(|run| run != found.run()) {
            continue;
        }
        let session = found.labels.get(LABEL_SESSION).map(String::as_str);
        if options.session.is_some() && options.session.as_deref() != session {
            continue;
        }
        if is_image && !prefix_ok(&found) {
            continue;
        }
        match liveness(found.labels.get(LABEL_OWNER).map(String::as_str)) {
            Liveness::Alive { pid } => {
                swept.live.insert(found.run().to_string(), pid);
                continue;
            }
            Liveness::Elsewhere { host } if options.run.is_none() => {
                swept.elsewhere.insert(found.run().to_string(), host);
                continue;
            }
            Liveness::Elsewhere { .. } | Liveness::Gone => {}
        }
        match found.what {
            "container" => engine.remove_container(&found.id).await?,
            "image" => engine.remove_image(&found.id).await?,
            _ => {
                if engine.remove_volume(&found.id).await? == VolumeRemoval::InUse {
                    swept.in_use.push(found.name.clone());
                    continue;
                }
            }
        }
        swept.removed.push(found.describe());
    }
    Ok(swept)
}

async fn list_containers(engine: &Engine) -> Result<Vec<Found>> {
    let filter = format!("{LABEL_MANAGED}=true");
    let filters = HashMap::from([("label".to_string(), vec![filter.clone()])]);
    Ok(engine
        .docker
        .list_containers(Some(q::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| engine_err(Operation::ListContainers, &filter, e))?
        .into_iter()
        .map(|c| Found {
            what: "container",
            name: c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            id: c.id.unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
        })
        .collect())
}

async fn list_images(engine: &Engine, filter: &str) -> Result<Vec<Found>> {
    let filters = HashMap::from([("label".to_string(), vec![filter.to_string()])]);
    Ok(engine
        .docker
        .list_images(Some(q::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| engine_err(Operation::ListImages, filter, e))?
        .into_iter()
        .map(|i| Found {
            what: "image",
            name: i
                .repo_tags
                .into_iter()
                .next()
                .unwrap_or_else(|| "<none>".into()),
            id: i.id,
            labels: i.labels,
        })
        .collect())
}
