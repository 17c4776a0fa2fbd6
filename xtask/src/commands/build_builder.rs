//! `cargo xtask build-builder [LANG...]`.

use harness::runner::Runner;
use harness::Result;

use crate::cli::BuildBuilderArgs;
use crate::commands::runner_options;
use crate::context::Context;

pub async fn run(context: &Context, args: &BuildBuilderArgs) -> Result<i32> {
    let builders = context.builders(&args.languages)?;
    let mut options = runner_options(context, &args.base);
    options.rebuild = args.rebuild;
    let runner = Runner::connect(context.builders_dir(), options).await?;
    for (_, meta) in &builders {
        let language = meta.language.clone();
        let verbose = crate::ui::ui().verbose();
        let built = runner
            .ensure_builder(&language, &mut |line| {
                print_build_line(&language, line, verbose)
            })
            .await;
        let (base, image) = match built {
            Ok(built) => built,
            Err(e) => {
                let e = crate::commands::engine_lost(
                    e,
                    "image build",
                    runner.engine(),
                    runner.run_id(),
                )
                .await;
                return Err(e);
            }
        };
        let how = if image.reused {
            "unchanged, reused"
        } else {
            "built"
        };
        outln!("{language}: {} ({how}) on {base}", image.image);
    }
    Ok(0)
}

/// Image builds are long; without --verbose only their steps are shown,
/// and on a terminal not even those (a bar shows the step).
pub fn print_build_line(language: &str, line: &str, verbose: bool) {
    let ui = crate::ui::ui();
    let step = line.starts_with("Step ") && !ui.draws();
    if verbose || step || line.starts_with("base: ") {
        ui.status(&format!("  {language} | {line}"));
    }
}
