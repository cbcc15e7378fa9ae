pub mod compare;
pub mod engine;
pub mod pg;
pub mod platform;
