//! Where a backup's files are read from: its local folder, or one of its
//! copies at a destination (`destination::remote::RemoteFiles`). Verify,
//! restore and restore tests read through this, so each works the same from
//! any copy. A file is stat'ed once (size and an identity: inode locally,
//! ETag remotely) and opened with that identity expected, so a file
//! replaced between the check and the use is refused.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::manifest::{MANIFEST_FILE, Manifest};
use crate::engine::error::{Error, Result};

/// Size and identity of a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub len: u64,
    /// Changes when the file is replaced (inode, ETag).
    pub tag: String,
}

/// The files of one backup copy.
pub trait BackupFiles: Send + Sync {
    /// For messages: the folder, or `destination:path`.
    fn label(&self) -> String;
    /// `None` when the file does not exist; an error when it is not a
    /// regular file or cannot be looked at.
    fn stat(&self, name: &str) -> Result<Option<FileStat>>;
    /// Opens a file; with `expect`, refuses one that changed since.
    fn open(&self, name: &str, expect: Option<&FileStat>) -> Result<Box<dyn Read + Send>>;
    /// A local folder, when the copy is one (pg_restore reads files).
    fn local_dir(&self) -> Option<&Path> {
        None
    }

    /// Reads and parses the manifest.
    fn manifest(&self) -> Result<Manifest> {
        let mut bytes = Vec::new();
        self.open(MANIFEST_FILE, None)
            .map_err(|e| match e.kind {
                crate::engine::error::ErrorKind::NotFound => {
                    Error::corrupt(format!("{}/{MANIFEST_FILE} is missing", self.label()))
                }
                _ => e,
            })?
            .take(64 * 1024 * 1024)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::corrupt(format!("{}/{MANIFEST_FILE}: {e}", self.label())))?;
        Manifest::parse(&bytes, &format!("{}/{MANIFEST_FILE}", self.label()))
    }
}

/// A backup folder on this machine.
pub struct LocalFiles {
    dir: PathBuf,
}

impl LocalFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalFiles { dir: dir.into() }
    }
}

fn tag_of(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}:{}", meta.dev(), meta.ino(), meta.len())
    }
    #[cfg(not(unix))]
    {
        format!("{}", meta.len())
    }
}

impl BackupFiles for LocalFiles {
    fn label(&self) -> String {
        self.dir.display().to_string()
    }

    fn stat(&self, name: &str) -> Result<Option<FileStat>> {
        let path = self.dir.join(name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        if !meta.file_type().is_file() {
            return Err(Error::corrupt(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        Ok(Some(FileStat {
            len: meta.len(),
            tag: tag_of(&meta),
        }))
    }

    fn open(&self, name: &str, expect: Option<&FileStat>) -> Result<Box<dyn Read + Send>> {
        let path = self.dir.join(name);
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::not_found(format!("{} is missing", path.display()))
            }
            _ => Error::io("open", &path, e),
        })?;
        if let Some(want) = expect {
            let meta = file.metadata().map_err(|e| Error::io("read", &path, e))?;
            if tag_of(&meta) != want.tag {
                return Err(Error::corrupt(format!(
                    "{} was replaced after it was checked",
                    path.display()
                )));
            }
        }
        Ok(Box::new(std::io::BufReader::with_capacity(
            256 * 1024,
            file,
        )))
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}
