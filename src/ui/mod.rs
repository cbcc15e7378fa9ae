//! The desktop front-end (iced). Thin: state, messages and views; every
//! action is an engine call run in a `Task`, never in `update`.

pub mod app;

use std::path::PathBuf;

use crate::engine::paths::DataDir;
use crate::engine::{Error, Result};

/// Opens the desktop window; returns when it is closed.
pub fn run(data_dir: Option<PathBuf>) -> Result<()> {
    let dir = DataDir::resolve(data_dir)?;
    iced::application(move || app::App::boot(dir.clone()), app::App::update, app::App::view)
        .title(app::App::title)
        .theme(app::App::theme)
        .window_size((1100.0, 720.0))
        .run()
        .map_err(|e| Error::internal(format!("the window could not be opened: {e}")).with_hint(
            "a graphical session is needed; for headless use run a subcommand, e.g. `supabackup project list`",
        ))
}
