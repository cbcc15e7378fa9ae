//! The data directory: where the catalog, backups, logs and temporary files
//! live. Chosen by `--data-dir`, `SUPABACKUP_DATA_DIR`, or the platform's
//! per-user data folder (via `directories`).

use std::path::{Path, PathBuf};

use crate::engine::error::{Error, Result};

/// Sub-folders created inside every data directory.
pub const SUBDIRS: [&str; 5] = ["backups", "logs", "temp", "config", "exports"];

/// The environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "SUPABACKUP_DATA_DIR";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The platform's default data directory, e.g. `~/.local/share/supabackup`.
    pub fn default_root() -> Result<PathBuf> {
        directories::ProjectDirs::from("dev", "supabackup", "supabackup")
            .map(|dirs| dirs.data_dir().to_path_buf())
            .ok_or_else(|| {
                Error::invalid("could not determine a home directory for the data folder")
                    .with_hint("pass --data-dir DIR or set SUPABACKUP_DATA_DIR")
            })
    }

    /// Resolves the data directory: explicit path, then the environment, then
    /// the platform default.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self> {
        let root = match explicit {
            Some(p) => p,
            None => match std::env::var_os(DATA_DIR_ENV) {
                Some(p) if !p.is_empty() => PathBuf::from(p),
                _ => Self::default_root()?,
            },
        };
        Ok(DataDir { root })
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// Creates the root and its sub-folders (owner-only permissions on Unix).
    pub fn ensure(&self) -> Result<()> {
        create_private_dir(&self.root)?;
        for sub in SUBDIRS {
            create_private_dir(&self.root.join(sub))?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn catalog(&self) -> PathBuf {
        self.root.join("catalog.sqlite")
    }
    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn temp(&self) -> PathBuf {
        self.root.join("temp")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn exports(&self) -> PathBuf {
        self.root.join("exports")
    }
}

fn create_private_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("create the folder", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(path, perms)
            .map_err(|e| Error::io("set permissions on", path, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (owner-only permissions): a temporary
/// sibling is written, fsynced and renamed over the target, then the folder
/// is fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid(format!("{} has no parent folder", path.display())))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
