//! Builders: their metadata, their base images, and their images.

pub mod base;
pub mod meta;

pub use base::{Base, BaseFrom, BaseOptions, BaseSource};
pub use meta::{BuilderMeta, DebianRecipe};
