pub mod engine;
pub mod pg;
