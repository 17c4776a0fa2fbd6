//! Pipeline specs: the model, parsing (JSON and YAML), the client's rules and
//! the resolution of images and command.

pub mod duration;
pub mod fields;
pub mod model;
pub mod parse;
pub mod resolve;
pub mod validate;

pub use model::*;
pub use parse::{load_spec, load_spec_from_reader, parse_spec, LoadedSpec};
pub use resolve::{resolve, Resolved};
pub use validate::{problems, validate};
