//! Verification: re-read every artifact of a backup — stored SHA-256,
//! authentication of every encrypted chunk, full decompression, plain
//! SHA-256 and pg_dump's completion marker — and report the first failure.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::crypt::{FileKey, Header};
use super::files::{BackupFiles, LocalFiles};
use super::manifest::FileEntry;
use super::pipeline::{HashingReader, open_artifact_reader};
use crate::engine::Engine;
use crate::engine::catalog::backups;
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCheck {
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub backup_id: String,
    pub folder: String,
    pub ok: bool,
    pub files: Vec<FileCheck>,
    /// "file: reason" of the first failure.
    pub first_failure: Option<String>,
}

fn check_file(
    files: &dyn BackupFiles,
    f: &FileEntry,
    passphrase: Option<&Secret>,
    key: &mut Option<FileKey>,
) -> Result<()> {
    let stat = files
        .stat(&f.name)?
        .ok_or_else(|| Error::corrupt("the file is missing"))?;
    if stat.len != f.stored_size {
        return Err(Error::corrupt(format!(
            "its size is {} bytes, the manifest says {} (truncated or altered)",
            stat.len, f.stored_size
        )));
    }
    // One read: the stored bytes are hashed while they are decoded. The
    // first bytes are looked at (magic, header) and then fed on unchanged.
    let mut source = files.open(&f.name, Some(&stat))?;
    let mut head = vec![0u8; super::crypt::HEADER_LEN];
    let got = super::crypt::read_full(&mut source, &mut head)
        .map_err(|e| Error::corrupt(format!("it could not be read: {e}")))?;
    head.truncate(got);
    let is_encrypted = head.starts_with(super::crypt::MAGIC);
    if is_encrypted != f.encrypted {
        return Err(Error::corrupt(if f.encrypted {
            "the manifest says it is encrypted, but it is not (the file was replaced)"
        } else {
            "the manifest says it is not encrypted, but it is (the file was replaced)"
        }));
    }
    if f.encrypted && key.is_none() {
        let header = Header::read_from(&mut std::io::Cursor::new(&head))?;
        let p = passphrase.ok_or_else(|| {
            Error::auth("the backup is encrypted: the backup passphrase is needed")
        })?;
        *key = Some(FileKey::derive_for_header(p, &header)?);
    }
    let source: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head).chain(source));
    let path = PathBuf::from(format!("{}/{}", files.label(), f.name));
    let (reader, stored) = open_artifact_reader(
        source,
        &path,
        f.codec,
        f.encrypted,
        passphrase,
        key.as_ref(),
    )?;
    let mut plain = HashingReader::new(reader);
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match plain.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let err = super::crypt::error_from_io(e, "decode", &path);
                return Err(match err.kind {
                    // A chunk that fails authentication is either the wrong
                    // passphrase or altered bytes: the stored hash tells.
                    ErrorKind::Auth if stored_bytes_differ(&stored, f) => Error::corrupt(
                        "its SHA-256 differs from the manifest (the file was altered)",
                    ),
                    ErrorKind::Auth | ErrorKind::Corrupt => err,
                    _ => Error::corrupt(format!("it could not be decoded: {}", err.message)),
                });
            }
        };
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[n.saturating_sub(4096)..n]);
        if tail.len() > 8192 {
            let cut = tail.len() - 4096;
            tail.drain(..cut);
        }
    }
    // Anything after the compressed stream must be read too.
    if let Ok(mut s) = stored.lock() {
        let _ = std::io::copy(&mut *s, &mut std::io::sink());
    }
    let (stored_sha, stored_size) = stored
        .lock()
        .map(|s| s.digest())
        .map_err(|_| Error::internal("the stored-bytes hash was poisoned"))?;
    if stored_size != f.stored_size || stored_sha != f.stored_sha256 {
        return Err(Error::corrupt(
            "its SHA-256 differs from the manifest (the file was altered)",
        ));
    }
    let (plain_sha, plain_size) = plain.digest();
    if plain_size != f.plain_size || plain_sha != f.plain_sha256 {
        return Err(Error::corrupt(format!(
            "its content ({plain_size} bytes, SHA-256 {}…) differs from the manifest's ({} bytes)",
            &plain_sha[..12],
            f.plain_size
        )));
    }
    let tail_text = String::from_utf8_lossy(&tail);
    if let Some(marker) = f.artifact.completion_marker()
        && !tail_text.contains(marker)
    {
        return Err(Error::corrupt(
            "the dump is incomplete (no completion marker at its end)",
        ));
    }
    Ok(())
}

/// Reads the rest of the stored bytes and compares their hash with the
/// manifest's (after a decode failure).
fn stored_bytes_differ(stored: &super::pipeline::StoredHash, f: &FileEntry) -> bool {
    let Ok(mut s) = stored.lock() else {
        return false;
    };
    if std::io::copy(&mut *s, &mut std::io::sink()).is_err() {
        return true;
    }
    let (sha, size) = s.digest();
    size != f.stored_size || sha != f.stored_sha256
}

/// Verifies a backup folder against its manifest.
pub fn verify_folder(
    dir: &Path,
    expected_digest: Option<&str>,
    passphrase: Option<&Secret>,
) -> Result<VerifyReport> {
    verify_files(&LocalFiles::new(dir), expected_digest, passphrase)
}

/// Verifies any copy of a backup (local or at a destination).
pub fn verify_files(
    files: &dyn BackupFiles,
    expected_digest: Option<&str>,
    passphrase: Option<&Secret>,
) -> Result<VerifyReport> {
    let manifest = files.manifest()?;
    let mut report = VerifyReport {
        backup_id: manifest.id.clone(),
        folder: files.label(),
        ok: true,
        files: Vec::new(),
        first_failure: None,
    };
    if let Some(d) = expected_digest
        && d != manifest.digest()
    {
        report.ok = false;
        report.first_failure = Some("metadata.json: its file checksums differ from the catalog's (the manifest was altered)".into());
    }
    let mut key = None;
    for f in &manifest.files {
        match check_file(files, f, passphrase, &mut key) {
            Ok(()) => report.files.push(FileCheck {
                name: f.name.clone(),
                ok: true,
                error: None,
            }),
            Err(e) if e.kind == ErrorKind::Auth => return Err(e),
            Err(e) => {
                if report.first_failure.is_none() {
                    report.first_failure = Some(format!("{}: {}", f.name, e.message));
                }
                report.ok = false;
                report.files.push(FileCheck {
                    name: f.name.clone(),
                    ok: false,
                    error: Some(e.message),
                });
            }
        }
    }
    Ok(report)
}

impl Engine {
    /// Verifies a backup's default copy (the local folder, else a stored
    /// copy); a passing check is recorded on the catalog row.
    pub async fn verify_backup(&self, key: &str) -> Result<VerifyReport> {
        self.verify_backup_from(key, None).await
    }

    /// Verifies the copy at `from` (a destination name, or `local`). A copy
    /// that fails raises `verification.failed` through the alert rules.
    pub async fn verify_backup_from(&self, key: &str, from: Option<&str>) -> Result<VerifyReport> {
        let r = self.verify_checked(key, from).await;
        let problem = match &r {
            Ok(report) if !report.ok => Some(
                report
                    .first_failure
                    .clone()
                    .unwrap_or_else(|| "a file did not match its manifest".into()),
            ),
            Err(e) if e.kind == ErrorKind::Corrupt => Some(e.message.clone()),
            _ => None,
        };
        if let Some(problem) = problem
            && let Ok(rec) = self.backup(key).await
        {
            let problem = match from.filter(|f| !f.eq_ignore_ascii_case("local")) {
                Some(dest) => format!("the copy at '{dest}': {problem}"),
                None => problem,
            };
            let alert = crate::engine::notify::Alert::verification_failed(
                rec.project_id.as_deref(),
                &rec.project_name,
                &rec.id,
                &problem,
            );
            self.dispatch_alert(&alert, &self.delivery()).await;
        }
        r
    }

    async fn verify_checked(&self, key: &str, from: Option<&str>) -> Result<VerifyReport> {
        let record = self.backup(key).await?;
        if record.status != "completed" {
            return Err(Error::invalid(format!(
                "backup {} is {}, not completed: there is nothing to verify",
                record.id, record.status
            )));
        }
        if let Some(dest) = from.filter(|f| !f.eq_ignore_ascii_case("local")) {
            return self.verify_copy(&record.id, dest).await;
        }
        let files = self.backup_files(&record, from).await?;
        let expected = record.checksum.clone();
        let f = files.clone();
        let manifest = tokio::task::spawn_blocking(move || f.manifest())
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        let passphrase = if manifest.files.iter().any(|f| f.encrypted) {
            self.backup_passphrase().await?
        } else {
            None
        };
        let report = tokio::task::spawn_blocking(move || {
            verify_files(files.as_ref(), expected.as_deref(), passphrase.as_ref())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        if report.ok {
            let id = record.id.clone();
            self.catalog()
                .call(move |c| backups::mark_verified(c, &id))
                .await?;
        }
        Ok(report)
    }
}
