//! Backups: dumps, the streaming pipeline, storage layout, verification.
pub mod artifact;
pub mod crypt;
pub mod dump;
pub mod files;
pub mod manifest;
pub mod merge;
pub mod options;
pub mod pipeline;
pub mod platform;
pub mod roles;
pub mod run;
pub mod source;
pub mod store;
pub mod tap;
pub mod verify;

pub use options::{BackupKind, BackupOptions, Codec};
pub use run::{BackupProgress, BackupRequest, Phase, ProgressFn};
