//! One module per sub-command.

mod base;
mod clean;
mod doctor;

use harness::Result;

use crate::cli::Command;
use crate::context::Context;

/// Runs a command; returns the exit code for a run that did not fail with an error.
pub async fn dispatch(command: Command, context: &Context) -> Result<i32> {
    match command {
        Command::Doctor => doctor::run(context).await,
        Command::Base(args) => base::run(context, &args).await,
        Command::Clean(args) => clean::run(context, &args).await,
    }
}
