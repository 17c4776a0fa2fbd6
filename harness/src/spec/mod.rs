//! Pipeline specs: the model, parsing (JSON and YAML) and the client's rules.

pub mod model;

pub use model::*;
