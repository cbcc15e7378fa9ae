//! The integration test binary: one binary so the build and the PostgreSQL
//! cluster are shared by every test.

mod backup;
mod backup_safety;
mod cli;
mod compare_selftest;
mod config;
mod connection;
mod destinations;
mod fleet;
mod gui;
mod harness;
mod health;
mod kdf;
mod names;
mod notify;
mod packaging;
mod projects;
mod recipe;
mod repo;
mod restore;
mod restore_kill;
mod restore_platform;
mod restore_tamper;
mod schedule;
mod secrets;
mod streams;
mod support;
mod tls;
