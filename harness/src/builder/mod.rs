//! Builders: their metadata, their base images, and their images.

pub mod meta;

pub use meta::{BuilderMeta, DebianRecipe};
