//! The desktop front-end (iced). Thin: state, messages and views; every
//! engine call runs in a `Task` and comes back as a message carrying a
//! `Result`, so no frame waits on I/O.
//!
//! * [`app`] — the application: top-level state, messages, routing.
//! * [`screen`] — one module per screen (struct + `Message` + `update` → `Action` + `view`).
//! * [`widget`] — reusable pieces (badges, banners, virtual list, charts).
//! * [`theme`] — fonts, palettes, spacing, styles.
//! * [`platform`] — file pickers, folders, notifications (faked in tests).
//! * [`jobs`] — long engine jobs bridged into progress streams.

// Messages carry engine results by value; they are moved once per update,
// so boxing their large variants would only add noise (iced does the same).
#![allow(clippy::large_enum_variant)]

pub mod app;
pub mod format;
pub mod jobs;
pub mod platform;
pub mod prefs;
pub mod screen;
pub mod theme;
pub mod widget;

#[cfg(test)]
mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::crypto::Secret;
use crate::engine::paths::DataDir;
use crate::engine::{Error, Result};

/// Opens the desktop window; returns when it is closed. With `screenshot`,
/// saves a PNG of the first screen once its data is shown, then exits.
pub fn run(data_dir: Option<PathBuf>, screenshot: Option<PathBuf>) -> Result<()> {
    let dir = DataDir::resolve(data_dir)?;
    let env_passphrase = std::env::var("SUPABACKUP_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    let boot = move || {
        app::App::boot(app::BootOptions {
            data_dir: dir.clone(),
            platform: Arc::new(platform::Desktop),
            env_passphrase: env_passphrase.clone(),
            screenshot: screenshot.clone(),
            engine: None,
        })
    };
    iced::application(boot, app::App::update, app::App::view)
        .title(app::App::title)
        .theme(app::App::theme)
        .subscription(app::App::subscription)
        .settings(theme::settings())
        .window_size((1280.0, 800.0))
        // Closing while a backup or restore runs asks first (see App).
        .exit_on_close_request(false)
        .run()
        .map_err(|e| {
            Error::internal(format!("the window could not be opened: {e}")).with_hint(
                "a graphical session is needed; for headless use run a subcommand, e.g. `supabackup project list`",
            )
        })
}

/// Writes RGBA pixels as a PNG file.
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    rgba: &[u8],
) -> std::result::Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgba).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}
