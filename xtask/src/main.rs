//! `cargo xtask`: the command line over the `harness` library.
//!
//! Each sub-command lives in `commands/`; this file parses arguments, sets up
//! the run (its id, the repository root), maps errors to exit codes, and
//! cleans up what the run made on the engine when it is interrupted.

mod cli;
mod commands;
mod context;
mod report;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use harness::error::exit;

use crate::cli::Cli;
use crate::context::Context;

fn main() -> ExitCode {
    let cli = parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED as u8);
        }
    };
    let code = runtime.block_on(run(cli));
    ExitCode::from(code as u8)
}

/// Parses the command line. `--version` (`-V`) says the git revision too,
/// read at run time from the repository this binary was built from (`cargo
/// xtask` rebuilds it first, so that is the revision running).
fn parse() -> Cli {
    let mut command = Cli::command();
    if std::env::args()
        .skip(1)
        .any(|a| a == "--version" || a == "-V")
    {
        command = command.version(version_line());
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn version_line() -> &'static str {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = commands::publish::git::GitState::read(&repo);
    let revision = match &git.commit {
        Some(commit) => {
            let short: String = commit.chars().take(12).collect();
            if git.changes.is_empty() {
                format!("git {short}")
            } else {
                format!("git {short}, with uncommitted changes")
            }
        }
        None => "git revision unknown".to_string(),
    };
    Box::leak(format!("{} ({revision})", env!("CARGO_PKG_VERSION")).into_boxed_str())
}

async fn run(cli: Cli) -> i32 {
    let context = match Context::new(&cli.global) {
        Ok(c) => c,
        Err(e) => return report(&e),
    };
    let run_id = context.run.clone();
    let keep = cli.keeps_objects();
    tokio::select! {
        result = commands::dispatch(cli.command, &context) => match result {
            Ok(code) => code,
            Err(e) => report(&e),
        },
        signal = interrupted() => {
            // The command's future has been dropped by now: its temporary
            // folders are gone. Remove what it made on the engine too.
            eprintln!("\ninterrupted ({signal}); cleaning up");
            if !keep {
                match harness::engine::Engine::connect().await {
                    Ok(engine) => {
                        if let Err(e) = engine.clean_up_run(&run_id).await {
                            eprintln!("warning: clean-up incomplete: {e}\n  run `cargo xtask clean --run {run_id}` to finish it");
                        }
                    }
                    Err(e) => eprintln!(
                        "warning: clean-up impossible: {e}\n  what run {run_id} made on the engine may be left: once it is back, `cargo xtask clean --run {run_id}` removes it"
                    ),
                }
            }
            // The shell's convention: 128 + the signal's number.
            match signal {
                "SIGTERM" => 143,
                _ => 130,
            }
        }
    }
}

fn report(e: &harness::Error) -> i32 {
    eprintln!("error: {e}");
    e.exit_code()
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
