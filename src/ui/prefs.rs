//! The desktop app's own preferences (`<data>/config/gui.json`): theme,
//! the options the "Back up now" dialog starts from, the
//! scratch server for restore tests. Read and written in Tasks, never in
//! `update`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::backup::BackupOptions;
use crate::engine::paths::{DataDir, write_atomic};
use crate::engine::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThemeChoice {
    #[default]
    System,
    Light,
    Dark,
}

impl ThemeChoice {
    pub const ALL: [ThemeChoice; 3] = [ThemeChoice::System, ThemeChoice::Light, ThemeChoice::Dark];
}

impl std::fmt::Display for ThemeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ThemeChoice::System => "System",
            ThemeChoice::Light => "Light",
            ThemeChoice::Dark => "Dark",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prefs {
    pub theme: ThemeChoice,
    /// What "Back up now" proposes.
    pub default_backup: BackupOptions,
    // Notifications and the "stale" threshold are alert rules (engine
    // settings shared with the CLI and the daemon), not preferences.
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            theme: ThemeChoice::System,
            default_backup: BackupOptions::default(),
        }
    }
}

pub fn path(dir: &DataDir) -> PathBuf {
    dir.app_prefs()
}

/// Reads the preferences; a missing file gives the defaults (blocking).
pub fn load(file: &Path) -> Result<Prefs> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::corrupt(format!("{} is unreadable: {e}", file.display()))
                .with_hint("fix or delete the file; the defaults are used meanwhile")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Prefs::default()),
        Err(e) => Err(Error::io("read", file, e)),
    }
}

/// Writes the preferences atomically (blocking).
pub fn save(file: &Path, prefs: &Prefs) -> Result<()> {
    if let Some(parent) = file.parent() {
        crate::engine::paths::create_dirs_synced(parent)?;
    }
    let bytes = serde_json::to_vec_pretty(prefs)?;
    write_atomic(file, &bytes)
}

/// [`load`] on a blocking thread.
pub async fn load_async(file: PathBuf) -> Result<Prefs> {
    tokio::task::spawn_blocking(move || load(&file))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
}

/// [`save`] on a blocking thread.
pub async fn save_async(file: PathBuf, prefs: Prefs) -> Result<()> {
    tokio::task::spawn_blocking(move || save(&file, &prefs))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config/gui.json");
        assert_eq!(load(&file).expect("defaults"), Prefs::default());
        let p = Prefs {
            theme: ThemeChoice::Dark,
            ..Prefs::default()
        };
        save(&file, &p).expect("save");
        assert_eq!(load(&file).expect("load"), p);
        std::fs::write(&file, "{\"theme\":\"light\"}").expect("write");
        assert_eq!(load(&file).expect("partial").theme, ThemeChoice::Light);
        // An older file with the notification fields still loads.
        std::fs::write(
            &file,
            "{\"theme\":\"dark\",\"notify_on_failure\":true,\"stale_after_hours\":12}",
        )
        .expect("write");
        assert_eq!(load(&file).expect("old").theme, ThemeChoice::Dark);
        std::fs::write(&file, "nope").expect("write");
        assert!(load(&file).is_err());
    }
}
