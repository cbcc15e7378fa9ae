//! supabackup: back up, verify and restore many Supabase projects.
//!
//! * [`engine`] — the core (catalog, vault, PostgreSQL tooling, ...); no GUI code.
//! * [`cli`] — the headless front-end (`supabackup <command>`).
//! * [`ui`] — the desktop front-end (iced).

pub mod cli;
pub mod engine;
pub mod ui;
