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
use std::sync::Arc;

use crate::engine::Engine;
use crate::engine::backup::crypt::{FileKey, Header};
use crate::engine::backup::files::{BackupFiles, FileStat};
use crate::engine::backup::manifest::{FileEntry, Manifest};
use crate::engine::backup::options::Artifact;
use crate::engine::backup::pipeline::{HashingReader, StoredHash, open_artifact_reader};
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, ErrorKind, Result};

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
    files: Arc<dyn BackupFiles>,
    pub manifest: Manifest,
    passphrase: Option<Secret>,
    key: Option<FileKey>,
    checked: HashMap<Artifact, (FileEntry, FileStat)>,
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
        // A repository snapshot's files are its plain streams (the
        // repository seals the chunks); each must have a chunk list.
        if let Some(repo) = &m.repo {
            if f.encrypted || f.codec != crate::engine::backup::options::Codec::None {
                return Err(refused(
                    &f.name,
                    "the manifest lists a repository stream as a compressed or encrypted file",
                ));
            }
            if !repo.files.iter().any(|r| r.name == f.name) {
                return Err(refused(&f.name, "the manifest lists no chunks for it"));
            }
            continue;
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

fn sha256_of(r: &mut dyn Read, name: &str) -> Result<(String, u64)> {
    let mut r = HashingReader::new(r);
    std::io::copy(&mut r, &mut std::io::sink())
        .map_err(|e| refused(name, format!("it could not be read ({e})")))?;
    Ok(r.digest())
}

/// The cheap pre-pass over one file: what it is, its size, its magic, and
/// the SHA-256 of its stored bytes.
fn check_file(files: &dyn BackupFiles, f: &FileEntry) -> Result<FileStat> {
    let stat = match files.stat(&f.name) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(refused(&f.name, "the file is missing")),
        Err(e) if e.kind == ErrorKind::Corrupt => {
            return Err(refused(&f.name, "it is not a regular file"));
        }
        Err(e) => return Err(e),
    };
    if stat.len != f.stored_size {
        return Err(refused(
            &f.name,
            format!(
                "its size is {} bytes, the manifest says {} (truncated or replaced)",
                stat.len, f.stored_size
            ),
        ));
    }
    let mut r = files.open(&f.name, Some(&stat)).map_err(|e| match e.kind {
        ErrorKind::Corrupt => refused(&f.name, e.message),
        _ => e,
    })?;
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < magic.len() {
        match r.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(refused(&f.name, format!("it could not be read ({e})"))),
        }
    }
    let is_encrypted = got == magic.len() && &magic == crate::engine::backup::crypt::MAGIC;
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
    let mut rest = std::io::Cursor::new(magic[..got].to_vec()).chain(r);
    let (sha, len) = sha256_of(&mut rest, &f.name)?;
    if len != f.stored_size || sha != f.stored_sha256 {
        return Err(refused(
            &f.name,
            "its SHA-256 differs from the manifest's (the file was altered)",
        ));
    }
    Ok(stat)
}

impl VerifiedBackup {
    /// Checks `needed` files of the backup in `dir` (blocking).
    fn check(
        record: BackupRecord,
        files: Arc<dyn BackupFiles>,
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
            let stat = check_file(files.as_ref(), f)?;
            checked.insert(*a, (f.clone(), stat));
        }
        let mut v = VerifiedBackup {
            files,
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
        let f = f.clone();
        let p = self.passphrase.as_ref().ok_or_else(|| {
            Error::auth("the backup is encrypted and no backup passphrase is set")
                .with_hint("set it with `supabackup vault set-backup-passphrase`")
        })?;
        let stat = stat_of(&self.checked, &f)?;
        let mut r = self.files.open(&f.name, Some(&stat))?;
        let header = Header::read_from(&mut r)?;
        self.key = Some(FileKey::derive_for_header(p, &header)?);
        Ok(())
    }

    /// Opens a checked file for streaming its plain content.
    pub fn open(&self, a: Artifact) -> Result<Checked> {
        let (f, stat) = self
            .checked
            .get(&a)
            .ok_or_else(|| Error::internal(format!("{} was not checked", a.stem())))?;
        let source = self
            .files
            .open(&f.name, Some(stat))
            .map_err(|e| match e.kind {
                ErrorKind::Corrupt => refused(&f.name, "it was replaced after it was checked"),
                _ => e,
            })?;
        let path = PathBuf::from(format!("{}/{}", self.files.label(), f.name));
        let (reader, stored) = open_artifact_reader(
            source,
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

fn stat_of(checked: &HashMap<Artifact, (FileEntry, FileStat)>, f: &FileEntry) -> Result<FileStat> {
    checked
        .get(&f.artifact)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| Error::internal(format!("{} was not checked", f.name)))
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
    /// The catalog row, manifest and files of a completed backup (not yet
    /// checked), read from `from` (a destination, `local`) or the default
    /// copy (the local folder, else a stored copy).
    pub(crate) async fn backup_and_manifest(
        &self,
        backup: &str,
        from: Option<&str>,
    ) -> Result<(BackupRecord, Manifest, Arc<dyn BackupFiles>)> {
        let rec = self.backup(backup).await?;
        if rec.status != "completed" {
            return Err(Error::invalid(format!(
                "backup {} is {}, not completed",
                rec.id, rec.status
            )));
        }
        let files = self.backup_files(&rec, from).await?;
        let f = files.clone();
        let manifest = tokio::task::spawn_blocking(move || f.manifest())
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        Ok((rec, manifest, files))
    }

    /// Checks a backup for a restore: the manifest against the catalog, and
    /// every file in `needed` against the manifest.
    pub(crate) async fn verified_backup(
        &self,
        backup: &str,
        from: Option<&str>,
        needed: Vec<Artifact>,
    ) -> Result<VerifiedBackup> {
        let (rec, manifest, files) = self.backup_and_manifest(backup, from).await?;
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
        tokio::task::spawn_blocking(move || {
            VerifiedBackup::check(rec, files, manifest, passphrase, &needed)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
    }
}
