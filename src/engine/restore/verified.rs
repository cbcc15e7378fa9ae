//! A backup as a restore may use it: only bytes that match. Before the
//! first statement runs, the manifest is checked against what the catalog
//! recorded when the backup completed, every file name against the one its
//! artifact must have (a plain name inside the folder), and every file a
//! restore needs against the manifest: regular file, size, SHA-256 of the
//! stored bytes, encrypted exactly when the manifest says so. While the
//! restore streams a file, its stored and plain SHA-256 are computed again;
//! the restore commits only when they match ([`Checked::finish`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::engine::backup::crypt::{FileKey, Header};
use crate::engine::backup::manifest::{FileEntry, Manifest};
use crate::engine::backup::options::Artifact;
use crate::engine::backup::pipeline::{HashingReader, StoredHash, open_artifact_file};
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, ErrorKind, Result};

/// What identifies a file that was checked (so a swapped one is noticed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    len: u64,
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

fn identity(meta: &std::fs::Metadata) -> Identity {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Identity {
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        Identity { len: meta.len() }
    }
}

/// A refusal naming the file: nothing ran.
fn refused(name: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("refused: {name}: {why}; nothing was changed"),
    )
    .with_hint("the backup folder was altered since the backup completed; restore another backup, or `supabackup verify` this one")
}

/// A backup whose manifest and needed files were checked.
pub(crate) struct VerifiedBackup {
    pub dir: PathBuf,
    pub manifest: Manifest,
    passphrase: Option<Secret>,
    key: Option<FileKey>,
    checked: HashMap<Artifact, (FileEntry, Identity)>,
}

/// Checks the manifest's file list: one file per artifact, each named as
/// its artifact, codec and encryption require.
pub(crate) fn check_manifest(m: &Manifest) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in &m.files {
        let expected = f.artifact.file_name(f.codec, f.encrypted);
        if f.name != expected {
            return Err(refused(
                "metadata.json",
                format!(
                    "it names the {} file {:?}, which is not {expected}",
                    f.artifact.stem(),
                    f.name
                ),
            ));
        }
        if !seen.insert(f.artifact) {
            return Err(refused(
                "metadata.json",
                format!("it lists the {} file twice", f.artifact.stem()),
            ));
        }
        if f.encrypted != m.options.encrypt {
            return Err(refused(
                &f.name,
                if m.options.encrypt {
                    "the backup is encrypted but the manifest lists this file as plain"
                } else {
                    "the backup is not encrypted but the manifest lists this file as encrypted"
                },
            ));
        }
    }
    Ok(())
}

fn sha256_of(file: &mut File, name: &str) -> Result<(String, u64)> {
    let mut r = HashingReader::new(std::io::BufReader::with_capacity(256 * 1024, file));
    std::io::copy(&mut r, &mut std::io::sink())
        .map_err(|e| refused(name, format!("it could not be read ({e})")))?;
    Ok(r.digest())
}

/// The cheap pre-pass over one file.
fn check_file(dir: &Path, f: &FileEntry) -> Result<Identity> {
    let path = dir.join(&f.name);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => refused(&f.name, "the file is missing"),
        _ => Error::io("read", &path, e),
    })?;
    if !meta.file_type().is_file() {
        return Err(refused(&f.name, "it is not a regular file"));
    }
    if meta.len() != f.stored_size {
        return Err(refused(
            &f.name,
            format!(
                "its size is {} bytes, the manifest says {} (truncated or replaced)",
                meta.len(),
                f.stored_size
            ),
        ));
    }
    let mut file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let mut magic = [0u8; 8];
    let n = file
        .read(&mut magic)
        .map_err(|e| Error::io("read", &path, e))?;
    let is_encrypted = n == magic.len() && &magic == crate::engine::backup::crypt::MAGIC;
    if is_encrypted != f.encrypted {
        return Err(refused(
            &f.name,
            if f.encrypted {
                "the manifest says it is encrypted, but it is not"
            } else {
                "the manifest says it is plain, but it is encrypted"
            },
        ));
    }
    drop(file);
    let mut file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let (sha, len) = sha256_of(&mut file, &f.name)?;
    if len != f.stored_size || sha != f.stored_sha256 {
        return Err(refused(
            &f.name,
            "its SHA-256 differs from the manifest's (the file was altered)",
        ));
    }
    Ok(identity(&meta))
}

impl VerifiedBackup {
    /// Checks `needed` files of the backup in `dir` (blocking).
    fn check(
        record: BackupRecord,
        dir: PathBuf,
        manifest: Manifest,
        passphrase: Option<Secret>,
        needed: &[Artifact],
    ) -> Result<Self> {
        if manifest.id != record.id {
            return Err(refused(
                "metadata.json",
                format!("it describes backup {}, not {}", manifest.id, record.id),
            ));
        }
        check_manifest(&manifest)?;
        if let Some(expected) = &record.checksum
            && *expected != manifest.digest()
        {
            return Err(refused(
                "metadata.json",
                "its file checksums differ from those the catalog recorded when the backup completed",
            ));
        }
        let mut checked = HashMap::new();
        for a in needed {
            let f = manifest.file(*a).ok_or_else(|| {
                Error::invalid(format!("backup {} has no {} file", manifest.id, a.stem()))
            })?;
            let id = check_file(&dir, f)?;
            checked.insert(*a, (f.clone(), id));
        }
        let mut v = VerifiedBackup {
            dir,
            manifest,
            passphrase,
            key: None,
            checked,
        };
        v.derive_key()?;
        Ok(v)
    }

    /// Derives the backup key once, from the first encrypted file's header.
    fn derive_key(&mut self) -> Result<()> {
        let Some((f, _)) = self.checked.values().find(|(f, _)| f.encrypted) else {
            return Ok(());
        };
        let p = self.passphrase.as_ref().ok_or_else(|| {
            Error::auth("the backup is encrypted and no backup passphrase is set")
                .with_hint("set it with `supabackup vault set-backup-passphrase`")
        })?;
        let path = self.dir.join(&f.name);
        let mut file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let header = Header::read_from(&mut file)?;
        self.key = Some(FileKey::derive_for_header(p, &header)?);
        Ok(())
    }

    /// Opens a checked file for streaming its plain content.
    pub fn open(&self, a: Artifact) -> Result<Checked> {
        let (f, id) = self
            .checked
            .get(&a)
            .ok_or_else(|| Error::internal(format!("{} was not checked", a.stem())))?;
        let path = self.dir.join(&f.name);
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("read", &path, e))?;
        if identity(&meta) != *id {
            return Err(refused(&f.name, "it was replaced after it was checked"));
        }
        let (reader, stored) = open_artifact_file(
            file,
            &path,
            f.codec,
            f.encrypted,
            self.passphrase.as_ref(),
            self.key.as_ref(),
        )?;
        Ok(Checked {
            plain: HashingReader::new(reader),
            stored,
            entry: f.clone(),
            path,
        })
    }

    /// Decodes a checked archive to a file (pg_restore needs one) and checks
    /// its plain SHA-256 before anything uses it.
    pub fn extract(&self, a: Artifact, to: &Path) -> Result<()> {
        let mut r = self.open(a)?;
        let mut out = File::create(to).map_err(|e| Error::io("create", to, e))?;
        std::io::copy(&mut r, &mut out).map_err(|e| r.read_error(e))?;
        r.finish()
    }
}

/// A checked file being read; [`Checked::finish`] after the last byte.
pub(crate) struct Checked {
    plain: HashingReader<Box<dyn Read + Send>>,
    stored: StoredHash,
    entry: FileEntry,
    path: PathBuf,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.plain.read(buf)
    }
}

impl Checked {
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// The error for a failed read (decryption, decompression, I/O).
    pub fn read_error(&self, e: std::io::Error) -> Error {
        let err = crate::engine::backup::crypt::error_from_io(e, "decode", &self.path);
        match err.kind {
            ErrorKind::Auth | ErrorKind::Corrupt => refused(
                &self.entry.name,
                format!("it could not be decoded ({})", err.message),
            ),
            _ => err,
        }
    }

    /// Reads what is left and checks both digests against the manifest.
    pub fn finish(mut self) -> Result<()> {
        std::io::copy(&mut self.plain, &mut std::io::sink()).map_err(|e| self.read_error(e))?;
        if let Ok(mut s) = self.stored.lock() {
            let _ = std::io::copy(&mut *s, &mut std::io::sink());
        }
        let (plain_sha, plain_len) = self.plain.digest();
        let (stored_sha, stored_len) = self
            .stored
            .lock()
            .map(|s| s.digest())
            .map_err(|_| Error::internal("the stored-bytes hash was poisoned"))?;
        if stored_len != self.entry.stored_size || stored_sha != self.entry.stored_sha256 {
            return Err(refused(
                &self.entry.name,
                "its stored bytes changed while the restore read them",
            ));
        }
        if plain_len != self.entry.plain_size || plain_sha != self.entry.plain_sha256 {
            return Err(refused(
                &self.entry.name,
                "its content differs from the manifest's",
            ));
        }
        Ok(())
    }
}

impl Engine {
    /// The catalog row and manifest of a completed backup (not yet checked).
    pub(crate) async fn backup_and_manifest(
        &self,
        backup: &str,
    ) -> Result<(BackupRecord, Manifest)> {
        let rec = self.backup(backup).await?;
        if rec.status != "completed" {
            return Err(Error::invalid(format!(
                "backup {} is {}, not completed",
                rec.id, rec.status
            )));
        }
        let dir = PathBuf::from(rec.file_path.clone().unwrap_or_default());
        let manifest = tokio::task::spawn_blocking(move || Manifest::read(&dir))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        Ok((rec, manifest))
    }

    /// Checks a backup for a restore: the manifest against the catalog, and
    /// every file in `needed` against the manifest.
    pub(crate) async fn verified_backup(
        &self,
        backup: &str,
        needed: Vec<Artifact>,
    ) -> Result<VerifiedBackup> {
        let (rec, manifest) = self.backup_and_manifest(backup).await?;
        let passphrase = if manifest
            .files
            .iter()
            .any(|f| f.encrypted && needed.contains(&f.artifact))
        {
            Some(self.backup_passphrase().await?.ok_or_else(|| {
                Error::auth("the backup is encrypted and no backup passphrase is set")
                    .with_hint("set it with `supabackup vault set-backup-passphrase`")
            })?)
        } else {
            None
        };
        let dir = PathBuf::from(rec.file_path.clone().unwrap_or_default());
        tokio::task::spawn_blocking(move || {
            VerifiedBackup::check(rec, dir, manifest, passphrase, &needed)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
    }
}
