//! The reference upstream (placeholder: being written).
