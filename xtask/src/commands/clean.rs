//! `cargo xtask clean`: removes what the tools left on the engine.

use harness::engine::VolumeRemoval;
use harness::engine::{LABEL_EPHEMERAL, LABEL_KIND, LABEL_MANAGED};
use harness::pipeline::cache;
use harness::Result;

use crate::cli::CleanArgs;
use crate::context::Context;

pub async fn run(context: &Context, args: &CleanArgs) -> Result<i32> {
    let engine = context.engine().await?;
    if args.cache {
        return empty_cache(context, &engine, args).await;
    }
    let mut removed_any = false;
    let managed = engine
        .find_labelled(&format!("{LABEL_MANAGED}=true"))
        .await?;
    for (id, name) in &managed.containers {
        engine.remove_container(id).await?;
        println!("removed container {name}");
        removed_any = true;
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
        removed_any = true;
    }
    // Job volumes of runs that ended without their clean-up; a live run's
    // are in use by its workers and stay.
    for volume in engine
        .volumes_labelled(&format!("{LABEL_KIND}=job"))
        .await?
    {
        if engine.remove_volume(&volume.name).await? == VolumeRemoval::Removed {
            println!("removed volume {}", volume.name);
            removed_any = true;
        }
    }
    // Builds that never became cache entries (an interrupted run).
    for volume in cache::collect_garbage(&engine).await? {
        println!("removed volume {volume}");
        removed_any = true;
    }
    if !removed_any {
        println!("nothing to clean");
    }
    Ok(0)
}

/// `clean --cache`: only the build cache, of one scope or (`--all`) every one.
async fn empty_cache(
    context: &Context,
    engine: &harness::engine::Engine,
    args: &CleanArgs,
) -> Result<i32> {
    let scope = (!args.all).then_some(args.cache_args.cache_scope.as_str());
    let cleared = cache::clear(engine, scope).await?;
    let which = scope.map_or_else(|| "every scope".to_string(), |s| format!("scope {s}"));
    println!(
        "build cache ({which}): removed {} entr{} ({} volumes)",
        cleared.entries,
        if cleared.entries == 1 { "y" } else { "ies" },
        cleared.volumes.len()
    );
    for volume in &cleared.in_use {
        println!("  left {volume}: a running job uses it");
    }
    let datums = harness::pipeline::datum_cache::clear(&super::datum_cache_dir(context), scope)?;
    println!(
        "datum cache ({which}): removed {datums} entr{}",
        if datums == 1 { "y" } else { "ies" }
    );
    Ok(0)
}
