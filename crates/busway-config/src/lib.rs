//! busway's configuration. See `model` for the types everything else reads.
pub mod model;
pub use model::*;
