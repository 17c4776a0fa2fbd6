//! `cargo xtask clean`: removes what runs that are over left on the
//! engine (never a live run's objects), or empties the caches.

use harness::engine::sweep::{sweep, SweepOptions};
use harness::pipeline::cache;
use harness::Result;

use crate::cli::CleanArgs;
use crate::context::Context;

pub async fn run(context: &Context, args: &CleanArgs) -> Result<i32> {
    let engine = context.engine().await?;
    if args.cache {
        return empty_cache(context, &engine, args).await;
    }
    let swept = sweep(
        &engine,
        &SweepOptions {
            run: args.run.clone(),
            all_images: args.all,
            image_prefix: Some(context.prefix.clone()),
            // A session (tests, CI jobs) cleans only what it made.
            session: harness::engine::owner::session().map(String::from),
        },
    )
    .await?;
    let mut removed_any = false;
    for what in &swept.removed {
        outln!("removed {what}");
        removed_any = true;
    }
    // Builds that never became cache entries (a killed run's).
    if args.run.is_none() && harness::engine::owner::session().is_none() {
        for volume in cache::collect_garbage(&engine).await? {
            outln!("removed volume {volume} (an unfinished build)");
            removed_any = true;
        }
    }
    if !removed_any {
        outln!("nothing to clean");
    }
    for (run, pid) in &swept.live {
        outln!("left the objects of run {run}: it is still running (process {pid})");
    }
    for (run, host) in &swept.elsewhere {
        outln!(
            "left the objects of run {run}: made on {host}, where it may still run \
             (`cargo xtask clean --run {run}` removes them)"
        );
    }
    for volume in &swept.in_use {
        outln!("left volume {volume}: a container still uses it");
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
    outln!(
        "build cache ({which}): removed {} entr{} ({} volumes)",
        cleared.entries,
        if cleared.entries == 1 { "y" } else { "ies" },
        cleared.volumes.len()
    );
    for volume in &cleared.in_use {
        outln!("  left {volume}: a running job uses it");
    }
    let datums = harness::pipeline::datum_cache::clear(&super::datum_cache_dir(context), scope)?;
    outln!(
        "datum cache ({which}): removed {datums} entr{}",
        if datums == 1 { "y" } else { "ies" }
    );
    Ok(0)
}
