//! Verification: re-read every artifact of a backup — stored SHA-256,
//! authentication of every encrypted chunk, full decompression, plain
//! SHA-256 and pg_dump's completion marker — and report the first failure.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::crypt::{FileKey, Header};
use super::manifest::{FileEntry, Manifest};
use super::pipeline::{HashingReader, open_artifact};
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

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::corrupt("the file is missing"),
        _ => Error::io("open", path, e),
    })?;
    let mut r = HashingReader::new(std::io::BufReader::with_capacity(256 * 1024, file));
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| Error::io("read", path, e))?;
    Ok(r.digest())
}

fn check_file(
    dir: &Path,
    f: &FileEntry,
    passphrase: Option<&Secret>,
    key: &mut Option<FileKey>,
) -> Result<()> {
    let path = dir.join(&f.name);
    let (stored_sha, stored_size) = sha256_file(&path)?;
    if stored_size != f.stored_size {
        return Err(Error::corrupt(format!(
            "its size is {stored_size} bytes, the manifest says {} (truncated or altered)",
            f.stored_size
        )));
    }
    if stored_sha != f.stored_sha256 {
        return Err(Error::corrupt(
            "its SHA-256 differs from the manifest (the file was altered)",
        ));
    }
    if super::crypt::is_encrypted(&path)? != f.encrypted {
        return Err(Error::corrupt(if f.encrypted {
            "the manifest says it is encrypted, but it is not (the file was replaced)"
        } else {
            "the manifest says it is not encrypted, but it is (the file was replaced)"
        }));
    }
    if f.encrypted && key.is_none() {
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let header = Header::read_from(&mut file)?;
        let p = passphrase.ok_or_else(|| {
            Error::auth("the backup is encrypted: the backup passphrase is needed")
        })?;
        *key = Some(FileKey::derive_for_header(p, &header)?);
    }
    let (reader, stored) = open_artifact(&path, f.codec, passphrase, key.as_ref())?;
    let mut plain = HashingReader::new(reader);
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = plain.read(&mut buf).map_err(|e| {
            let err = super::crypt::error_from_io(e, "decode", &path);
            match err.kind {
                ErrorKind::Auth | ErrorKind::Corrupt => err,
                _ => Error::corrupt(format!("it could not be decoded: {}", err.message)),
            }
        })?;
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

/// Verifies a backup folder against its manifest.
pub fn verify_folder(
    dir: &Path,
    expected_digest: Option<&str>,
    passphrase: Option<&Secret>,
) -> Result<VerifyReport> {
    let manifest = Manifest::read(dir)?;
    let mut report = VerifyReport {
        backup_id: manifest.id.clone(),
        folder: dir.display().to_string(),
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
        match check_file(dir, f, passphrase, &mut key) {
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
    /// Verifies a backup; a passing check is recorded on the catalog row.
    pub async fn verify_backup(&self, key: &str) -> Result<VerifyReport> {
        let k = key.to_owned();
        let (record, expected) = self
            .catalog()
            .call(move |c| {
                let r = backups::find(c, &k)?;
                Ok((r.clone(), r.checksum.clone()))
            })
            .await?;
        if record.status != "completed" {
            return Err(Error::invalid(format!(
                "backup {} is {}, not completed: there is nothing to verify",
                record.id, record.status
            )));
        }
        let dir = PathBuf::from(record.file_path.clone().unwrap_or_default());
        let manifest = Manifest::read(&dir)?;
        let passphrase = if manifest.files.iter().any(|f| f.encrypted) {
            self.backup_passphrase().await?
        } else {
            None
        };
        let report = tokio::task::spawn_blocking(move || {
            verify_folder(&dir, expected.as_deref(), passphrase.as_ref())
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
