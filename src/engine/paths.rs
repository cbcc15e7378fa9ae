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
    /// The desktop app's preferences (theme, the options "Back up now"
    /// starts from); the engine carries them in configuration exports
    /// without reading them.
    pub fn app_prefs(&self) -> PathBuf {
        self.config().join("gui.json")
    }
    /// The content-addressed repository incremental backups live in.
    pub fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }
    pub fn exports(&self) -> PathBuf {
        self.root.join("exports")
    }
}

fn create_private_dir(path: &Path) -> Result<()> {
    create_dirs_synced(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(path, perms)
            .map_err(|e| Error::io("set permissions on", path, e))?;
    }
    Ok(())
}

/// Flushes a folder's entries (new names, renames) to disk.
pub fn fsync_dir(path: &Path) {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    if let Ok(d) = std::fs::File::open(path) {
        let _ = d.sync_all();
    }
}

/// `create_dir_all` that also makes the new folders durable: each folder
/// created is fsynced in its parent, so a crash cannot lose a folder whose
/// files were already synced.
pub fn create_dirs_synced(path: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    std::fs::create_dir_all(path).map_err(|e| Error::io("create the folder", path, e))?;
    for dir in missing.iter().rev() {
        if let Some(parent) = dir.parent() {
            fsync_dir(parent);
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (owner-only permissions): a
/// temporary sibling with an unpredictable name is written, fsynced and
/// renamed over the target, then the folder is fsynced. A crash leaves the
/// old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => {
            return Err(Error::invalid(format!(
                "{} has no parent folder",
                path.display()
            )));
        }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // tempfile creates it 0600 with O_EXCL under a random name and removes
    // it if anything below fails.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("sync", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into", path, e.error))?;
    fsync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("manifest.json");
        write_atomic(&target, b"one").expect("first");
        write_atomic(&target, b"two, longer").expect("second");
        assert_eq!(std::fs::read(&target).expect("read"), b"two, longer");
        assert_eq!(names(dir.path()), ["manifest.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A target that cannot be replaced (a folder) fails and leaves no
        // temporary file.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).expect("mkdir");
        std::fs::write(blocked.join("x"), b"x").expect("fill");
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(names(dir.path()), ["blocked", "manifest.json"]);
    }

    #[test]
    fn nested_folders_are_created() {
        let dir = tempfile::tempdir().expect("tmp");
        let deep = dir.path().join("a/b/c");
        create_dirs_synced(&deep).expect("create");
        assert!(deep.is_dir());
        create_dirs_synced(&deep).expect("again is fine");
    }
}
