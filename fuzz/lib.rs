//! The fuzz targets' bodies, shared by every target binary (see `bodies.rs`).
#[path = "bodies.rs"]
pub mod bodies;
