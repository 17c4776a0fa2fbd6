//! `cargo xtask base [LANG...]`.

use harness::builder::{base, BaseOptions};
use harness::Result;

use crate::cli::{BaseArgs, BaseSourceArgs};
use crate::context::Context;

pub async fn run(context: &Context, args: &BaseArgs) -> Result<i32> {
    let builders = context.builders(&args.languages)?;
    let engine = context.engine().await?;
    let options = base_options(context, &args.base);
    for (_, meta) in &builders {
        let provided = base::provide(&engine, meta, &options, &mut |line| {
            eprintln!("  {}: {line}", meta.language)
        })
        .await?;
        println!("{}: {provided}", meta.language);
    }
    Ok(0)
}

pub fn base_options(context: &Context, args: &BaseSourceArgs) -> BaseOptions {
    BaseOptions {
        prefix: context.prefix.clone(),
        force: args.base_from,
        mirror: args.mirror.clone(),
        run: context.run.clone(),
        ephemeral: false,
    }
}
