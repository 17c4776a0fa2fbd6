//! Runs build-pipeline builders locally, exactly as the platform would.
//!
//! See ARCHITECTURE.md at the repository root for the map of modules.

pub mod builder;
pub mod datum;
pub mod engine;
pub mod error;
pub mod fixture;
pub mod image_ref;
pub mod interrupt;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod registry;
pub mod runner;
pub mod source;
pub mod spec;
pub mod staging;
pub mod stream;
pub mod text;
pub mod trust;
pub mod yaml;

pub use error::{Error, Result};
