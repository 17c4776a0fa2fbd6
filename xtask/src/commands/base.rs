//! `cargo xtask base [LANG...]`.

use harness::builder::{base, BaseOptions};
use harness::Result;

use crate::cli::{BaseArgs, BaseSourceArgs};
use crate::context::Context;

pub async fn run(context: &Context, args: &BaseArgs) -> Result<i32> {
    let builders = context.builders(&args.languages)?;
    let engine = context.engine().await?;
    let options = base_options(&args.base);
    for (_, meta) in &builders {
        let provided = base::provide(
            &engine,
            meta,
            &context.prefix,
            &context.run,
            &options,
            &mut |line| crate::ui::ui().status(&format!("  {}: {line}", meta.language)),
        )
        .await?;
        outln!("{}: {provided}", meta.language);
    }
    Ok(0)
}

pub fn base_options(args: &BaseSourceArgs) -> BaseOptions {
    BaseOptions {
        force: args.base_from,
        mirror: args.mirror.clone(),
        ephemeral: false,
    }
}
