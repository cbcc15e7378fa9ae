pub mod compare;
pub mod engine;
pub mod pg;
