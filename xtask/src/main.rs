//! `cargo xtask`: the command line over the `harness` library.
//!
//! Each sub-command lives in `commands/`; this file parses arguments, sets up
//! the run (its id, the repository root), maps errors to exit codes, and
//! cleans up what the run made on the engine when it is interrupted.

#[macro_use]
mod ui;
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
    let ui = ui::init(ui::Settings {
        color: cli.global.color,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
    });
    ui::init_tracing(ui);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED as u8);
        }
    };
    let code = runtime.block_on(run(cli));
    // After an interrupt, work on blocking threads (an archive being written)
    // may still run: it is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    ExitCode::from(code as u8)
}

/// Parses the command line. `--version` (`-V`) says the git revision too,
/// read at run time from the repository this binary was built from (`cargo
/// xtask` rebuilds it first, so that is the revision running).
fn parse() -> Cli {
    let mut command = Cli::command();
    // clap colors its own messages before `--color` is parsed: look ahead.
    let args: Vec<String> = std::env::args().collect();
    let color = args
        .iter()
        .position(|a| a == "--color")
        .and_then(|i| args.get(i + 1).map(String::as_str))
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--color=")));
    command = command.color(match color {
        Some("never") => clap::ColorChoice::Never,
        Some("always") => clap::ColorChoice::Always,
        _ => clap::ColorChoice::Auto,
    });
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
    // Listening starts before any work: a signal during synchronous work
    // (walking folders, hashing) is recorded at once, and that work checks
    // for it (harness::interrupt), instead of the signal waiting for the
    // next await or being lost.
    let mut signals = listen_for_signals();
    let context = match Context::new(&cli.global) {
        Ok(c) => c,
        Err(e) => return report(&e),
    };
    let run_id = context.run.clone();
    let keep = cli.keeps_objects();
    let finished = tokio::select! {
        biased;
        _ = signals.changed() => None,
        result = commands::dispatch(cli.command, &context) => Some(result),
    };
    // The bars go before the last lines (an error, or nothing).
    ui::ui().clear();
    match (harness::interrupt::requested(), finished) {
        (None, Some(Ok(code))) => code,
        (None, Some(Err(e))) => report(&e),
        (None, None) => exit::FAILED,
        // The command's future has been dropped (or has returned) by now:
        // its temporary folders are gone. Remove what it made on the engine.
        (Some(number), _) => {
            let name = if number == 15 { "SIGTERM" } else { "SIGINT" };
            errln!("\ninterrupted ({name}); cleaning up");
            if !keep {
                clean_up_after_interrupt(&run_id).await;
            }
            // The shell's convention: 128 + the signal's number.
            128 + i32::from(number)
        }
    }
}

async fn clean_up_after_interrupt(run_id: &harness::engine::RunId) {
    if harness::engine::engine_unresponsive() {
        errln!(
            "warning: clean-up impossible: the engine does not answer\n  what run {run_id} made on the engine may be left: once it answers, `cargo xtask clean --run {run_id}` removes it"
        );
        return;
    }
    match harness::engine::Engine::connect().await {
        Ok(engine) => {
            if let Err(e) = engine.clean_up_run(run_id).await {
                errln!("warning: clean-up incomplete: {e}\n  run `cargo xtask clean --run {run_id}` to finish it");
            }
        }
        Err(e) => errln!(
            "warning: clean-up impossible: {e}\n  what run {run_id} made on the engine may be left: once it is back, `cargo xtask clean --run {run_id}` removes it"
        ),
    }
}

/// Records SIGINT and SIGTERM in `harness::interrupt` as they arrive (on a
/// task of their own, so even a busy command's thread does not delay them)
/// and signals the receiver. A second signal ends the process at once.
fn listen_for_signals() -> tokio::sync::watch::Receiver<u8> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn next(signal: &mut Option<Signal>) {
        match signal {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let (sender, receiver) = tokio::sync::watch::channel(0u8);
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    tokio::spawn(async move {
        loop {
            let number: u8 = tokio::select! {
                _ = next(&mut interrupt) => 2,
                _ = next(&mut terminate) => 15,
            };
            if harness::interrupt::requested().is_some() {
                errln!("\ninterrupted again: stopping without cleaning up");
                std::process::exit(128 + i32::from(number));
            }
            harness::interrupt::request(number);
            let _ = sender.send(number);
        }
    });
    receiver
}

fn report(e: &harness::Error) -> i32 {
    errln!("error: {e}");
    e.exit_code()
}
