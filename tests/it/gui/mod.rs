//! The desktop GUI, end to end: `update()` driven by real engine tasks,
//! `iced_test` simulator interactions (tiny-skia, set in `.cargo/config.toml`),
//! a smoke run of the real binary under Xvfb, frame-time measurement, and the
//! screenshots in `docs/screenshots/`.

mod account;
mod app;
mod driver;
mod flows;
mod moving;
mod perf;
mod restore_flow;
mod screenshots;
mod seed;
mod smoke;
