//! Builders: their metadata, their base images, and their images.

pub mod base;
pub mod image;
pub mod meta;
pub mod release;
pub mod validate;

pub use base::{Base, BaseOptions, BaseSource};
pub use image::{BuilderImage, ImageOptions};
pub use meta::{BuilderMeta, DebianRecipe};
