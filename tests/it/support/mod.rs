pub mod compare;
pub mod engine;
pub mod objstore;
pub mod pg;
pub mod platform;
