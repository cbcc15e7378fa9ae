//! The product's core. Imports nothing from the GUI: the CLI, the GUI and
//! the scheduler are thin front-ends over [`api::Engine`].

pub mod api;
pub mod backup;
pub mod catalog;
pub mod childenv;
pub mod config;
pub mod conninfo;
pub mod crypto;
pub mod dashboard;
pub mod destination;
pub mod error;
pub mod failpoint;
pub mod fleet;
pub mod health;
pub mod history;
pub mod ident;
pub mod logging;
pub mod migrate;
pub mod notify;
pub mod paths;
pub mod pg;
pub mod project;
pub mod repo;
pub mod restore;
pub mod schedule;
pub mod sealed;
pub mod supabase;
pub mod transfer;
pub mod units;
pub mod vault;

pub use api::{Engine, EngineOptions, ProjectPatch};
pub use error::{Error, ErrorKind, Result};
