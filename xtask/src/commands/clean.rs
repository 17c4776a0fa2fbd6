//! `cargo xtask clean`: removes what the tools left on the engine.

use harness::engine::{LABEL_EPHEMERAL, LABEL_MANAGED};
use harness::Result;

use crate::cli::CleanArgs;
use crate::context::Context;

pub async fn run(context: &Context, args: &CleanArgs) -> Result<i32> {
    let engine = context.engine().await?;
    let managed = engine
        .find_labelled(&format!("{LABEL_MANAGED}=true"))
        .await?;
    for (id, name) in &managed.containers {
        engine.remove_container(id).await?;
        println!("removed container {name}");
    }
    let images = if args.all {
        managed.images
    } else {
        engine
            .find_labelled(&format!("{LABEL_EPHEMERAL}=true"))
            .await?
            .images
    };
    for (id, tag) in &images {
        engine.remove_image(id).await?;
        println!("removed image {tag}");
    }
    let _ = context;
    if managed.containers.is_empty() && images.is_empty() {
        println!("nothing to clean");
    }
    Ok(0)
}
