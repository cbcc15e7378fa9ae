//! The copies of each backup at destinations, and what is done with them.
//! A copy is `uploading` until every file and then the manifest are written
//! and read back with the manifest's sizes and SHA-256; only then `stored`.
//! Removing one marks it `deleting` before its objects go (manifest first),
//! so neither a half-written nor a half-deleted copy is ever taken for a
//! complete one; start-up recovery finishes or fails what a crash left.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Place;
use super::remote::{self, RemoteFiles};
use crate::engine::Engine;
use crate::engine::backup::BackupKind;
use crate::engine::backup::files::{BackupFiles, LocalFiles};
use crate::engine::backup::manifest::{MANIFEST_FILE, Manifest};
use crate::engine::catalog::backups::{self, BackupRecord};
use crate::engine::catalog::{audit, now};
use crate::engine::error::{Error, ErrorKind, Result};

/// One copy of a backup at a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupCopy {
    pub backup_id: String,
    pub destination_id: String,
    pub destination: String,
    /// The copy's folder inside the destination.
    pub location: String,
    /// `uploading`, `stored`, `failed` or `deleting`.
    pub status: String,
    pub stored_bytes: Option<i64>,
    /// When every file was last read back and matched.
    pub verified_at: Option<String>,
    pub error: Option<String>,
    /// The destination this copy stood in for (failover), if any.
    pub failover_for: Option<String>,
    pub updated_at: String,
}

const COLUMNS: &str = "c.backup_id, c.destination_id, d.name, c.location, c.status, c.stored_bytes,
    c.verified_at, c.error, c.failover_for, c.updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<BackupCopy> {
    Ok(BackupCopy {
        backup_id: r.get(0)?,
        destination_id: r.get(1)?,
        destination: r.get(2)?,
        location: r.get(3)?,
        status: r.get(4)?,
        stored_bytes: r.get(5)?,
        verified_at: r.get(6)?,
        error: r.get(7)?,
        failover_for: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

pub fn of_backup(conn: &Connection, backup_id: &str) -> Result<Vec<BackupCopy>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backup_copies c JOIN destinations d ON d.id = c.destination_id
         WHERE c.backup_id = ?1 ORDER BY d.name COLLATE NOCASE"
    ))?;
    let rows = stmt.query_map([backup_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Every copy of every backup, grouped by backup (for lists).
pub fn all(conn: &Connection) -> Result<std::collections::HashMap<String, Vec<BackupCopy>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backup_copies c JOIN destinations d ON d.id = c.destination_id
         ORDER BY d.name COLLATE NOCASE"
    ))?;
    let mut out: std::collections::HashMap<String, Vec<BackupCopy>> = Default::default();
    for c in stmt.query_map([], from_row)? {
        let c = c?;
        out.entry(c.backup_id.clone()).or_default().push(c);
    }
    Ok(out)
}

pub fn at_destination(conn: &Connection, destination_id: &str) -> Result<Vec<BackupCopy>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backup_copies c JOIN destinations d ON d.id = c.destination_id
         WHERE c.destination_id = ?1 ORDER BY c.backup_id"
    ))?;
    let rows = stmt.query_map([destination_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn get(conn: &Connection, backup_id: &str, destination_id: &str) -> Result<Option<BackupCopy>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM backup_copies c JOIN destinations d ON d.id = c.destination_id
                 WHERE c.backup_id = ?1 AND c.destination_id = ?2"
            ),
            [backup_id, destination_id],
            from_row,
        )
        .optional()?)
}

fn set_status(
    conn: &Connection,
    backup_id: &str,
    destination_id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<()> {
    conn.execute(
        "UPDATE backup_copies SET status = ?3, error = ?4, updated_at = ?5
         WHERE backup_id = ?1 AND destination_id = ?2",
        params![backup_id, destination_id, status, error, now()],
    )?;
    Ok(())
}

/// Every `uploading` and `deleting` copy (for start-up recovery).
pub fn unfinished(conn: &Connection) -> Result<Vec<BackupCopy>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backup_copies c JOIN destinations d ON d.id = c.destination_id
         WHERE c.status IN ('uploading', 'deleting')"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

const INTERRUPTED: &str = "interrupted: the upload did not finish";

/// A held lock file, removed when dropped.
struct LockFile(std::fs::File, PathBuf);

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = self.0.unlock();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// Where a backup goes besides this machine's folder.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct StorePlan {
    /// Destination names; the copies are made after the backup completes.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// Remove the local folder once every copy above is stored and
    /// verified (it stays when any copy failed).
    #[serde(default)]
    pub drop_local: bool,
    /// Used instead of a destination that cannot be reached.
    #[serde(default)]
    pub failover: Option<String>,
}

/// What happened to each copy a backup asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreOutcome {
    pub destination: String,
    pub stored: bool,
    pub error: Option<String>,
    /// Set when the failover destination took this copy.
    pub failover_to: Option<String>,
}

/// The folder of a backup relative to the backups root (also its place
/// inside every destination): `slug/date/folder`.
pub fn relative_folder(engine: &Engine, rec: &BackupRecord) -> Result<String> {
    let path = PathBuf::from(rec.file_path.clone().unwrap_or_default());
    let rel = path
        .strip_prefix(engine.data_dir().backups())
        .map_err(|_| {
            Error::invalid(format!(
                "backup {} lives outside this data folder's backups ({})",
                rec.id,
                path.display()
            ))
        })?;
    Ok(rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/"))
}

impl Engine {
    /// The copies of a backup at destinations.
    pub async fn backup_copies(&self, backup: &str) -> Result<Vec<BackupCopy>> {
        let rec = self.backup(backup).await?;
        self.catalog().call(move |c| of_backup(c, &rec.id)).await
    }

    /// Every backup's copies, by backup id.
    pub async fn all_backup_copies(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<BackupCopy>>> {
        self.catalog().call(|c| all(c)).await
    }

    /// Where to read a backup from: `from` names a destination (or
    /// `local`); by default the local folder when it is there, else the
    /// newest verified copy.
    pub async fn backup_files(
        &self,
        rec: &BackupRecord,
        from: Option<&str>,
    ) -> Result<Arc<dyn BackupFiles>> {
        let local = PathBuf::from(rec.file_path.clone().unwrap_or_default());
        let want_local = from.is_none_or(|f| f.eq_ignore_ascii_case("local"));
        if want_local && rec.local_state == "present" && local.is_dir() {
            if rec.backup_type == BackupKind::Incremental.as_str() {
                return self.snapshot_files(&local).await;
            }
            return Ok(Arc::new(LocalFiles::new(local)));
        }
        if from.is_some_and(|f| f.eq_ignore_ascii_case("local")) {
            return Err(Error::not_found(format!(
                "backup {} has no local copy (only copies at destinations)",
                rec.id
            ))
            .with_hint("name a destination with --from"));
        }
        let id = rec.id.clone();
        let copies = self.catalog().call(move |c| of_backup(c, &id)).await?;
        let chosen = match from {
            Some(name) => copies
                .into_iter()
                .find(|c| c.destination.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    Error::not_found(format!("backup {} has no copy at '{name}'", rec.id))
                })?,
            None => {
                let mut stored: Vec<BackupCopy> = copies
                    .into_iter()
                    .filter(|c| c.status == "stored")
                    .collect();
                stored.sort_by(|a, b| b.verified_at.cmp(&a.verified_at));
                stored.into_iter().next().ok_or_else(|| {
                    Error::not_found(format!(
                        "backup {} has neither its local folder nor a stored copy",
                        rec.id
                    ))
                })?
            }
        };
        if chosen.status != "stored" {
            return Err(Error::invalid(format!(
                "the copy of backup {} at '{}' is {}, not stored",
                rec.id, chosen.destination, chosen.status
            )));
        }
        let (_, place) = self.open_destination(&chosen.destination_id).await?;
        Ok(Arc::new(RemoteFiles::new(
            place,
            chosen.location,
            tokio::runtime::Handle::current(),
        )))
    }

    /// A repository snapshot's files (an incremental backup's folder).
    async fn snapshot_files(&self, dir: &std::path::Path) -> Result<Arc<dyn BackupFiles>> {
        let d = dir.to_path_buf();
        let manifest = tokio::task::spawn_blocking(move || Manifest::read(&d))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        // The repository is opened (a key derivation) only when a stream is
        // read, on the blocking thread that reads it.
        let engine = self.clone();
        let handle = tokio::runtime::Handle::current();
        let opener: crate::engine::repo::chunks::RepoOpener =
            Box::new(move || handle.block_on(engine.open_repo()));
        let files =
            crate::engine::repo::chunks::SnapshotFiles::with_manifest(dir, opener, &manifest)?;
        Ok(Arc::new(files))
    }

    /// Incremental backups live in this machine's repository: a plan that
    /// copies them elsewhere is refused (for a run and for a job alike).
    pub(crate) fn check_plan_for(kind: BackupKind, plan: &StorePlan) -> Result<()> {
        if kind == BackupKind::Incremental
            && (!plan.destinations.is_empty() || plan.drop_local || plan.failover.is_some())
        {
            return Err(Error::invalid(
                "incremental backups live in this machine's repository: copies at destinations are not supported for them yet",
            )
            .with_hint("take full backups for off-site copies"));
        }
        Ok(())
    }

    /// Copies a completed backup to a destination: uploads every file, then
    /// the manifest, reads each back and compares sizes and SHA-256; only
    /// then is the copy `stored`. A failed copy's objects are removed.
    pub async fn store_copy(
        &self,
        backup: &str,
        destination: &str,
        failover_for: Option<String>,
        sent: &(dyn Fn(u64) + Sync),
        cancel: &CancellationToken,
    ) -> Result<BackupCopy> {
        let rec = self.backup(backup).await?;
        if rec.status != "completed" {
            return Err(Error::invalid(format!(
                "backup {} is {}: only a completed backup can be copied",
                rec.id, rec.status
            )));
        }
        if rec.backup_type == BackupKind::Incremental.as_str() {
            return Err(Error::invalid(format!(
                "backup {} is an incremental snapshot in this machine's repository: copying it to a destination is not supported yet",
                rec.id
            ))
            .with_hint("`supabackup export` writes its plain files; a full backup can be copied"));
        }
        let (dest, place) = self.open_destination(destination).await?;
        let rel = relative_folder(self, &rec)?;
        // The source: the local folder, or another stored copy fetched to
        // a temporary folder first (and checked there).
        let staged;
        let source_dir = if rec.local_state == "present"
            && rec
                .file_path
                .as_deref()
                .is_some_and(|p| PathBuf::from(p).is_dir())
        {
            PathBuf::from(rec.file_path.clone().unwrap_or_default())
        } else {
            staged = self.stage_copy(&rec).await?;
            staged.path().to_path_buf()
        };
        let manifest = {
            let d = source_dir.clone();
            tokio::task::spawn_blocking(move || Manifest::read(&d))
                .await
                .map_err(|e| Error::internal(e.to_string()))??
        };
        if rec
            .checksum
            .as_deref()
            .is_some_and(|c| c != manifest.digest())
        {
            return Err(Error::corrupt(format!(
                "backup {}: its manifest's checksums differ from the catalog's; not copied",
                rec.id
            ))
            .with_hint("`supabackup verify` it"));
        }
        // Held while the copy is made: start-up recovery leaves live
        // uploads of other processes alone.
        let lock_path = self
            .data_dir()
            .temp()
            .join(format!("{}-{}.copy.lock", rec.id, dest.id));
        let lock =
            std::fs::File::create(&lock_path).map_err(|e| Error::io("create", &lock_path, e))?;
        lock.try_lock().map_err(|_| {
            Error::conflict(format!(
                "backup {} is already being copied to '{}'",
                rec.id, dest.name
            ))
        })?;
        let _lock = LockFile(lock, lock_path);
        {
            let (b, d, loc, fo) = (
                rec.id.clone(),
                dest.id.clone(),
                rel.clone(),
                failover_for.clone(),
            );
            self.catalog()
                .call(move |c| {
                    let ts = now();
                    c.execute(
                        "INSERT INTO backup_copies (backup_id, destination_id, location, status,
                                                    failover_for, created_at, updated_at)
                         VALUES (?1, ?2, ?3, 'uploading', ?4, ?5, ?5)
                         ON CONFLICT (backup_id, destination_id) DO UPDATE SET
                           status = 'uploading', location = ?3, error = NULL,
                           failover_for = ?4, verified_at = NULL, updated_at = ?5",
                        params![b, d, loc, fo, ts],
                    )?;
                    Ok(())
                })
                .await?;
        }
        tracing::info!("copying backup {} to '{}'", rec.id, dest.name);
        let result = self
            .upload_and_check(&place, &source_dir, &rel, &manifest, sent, cancel)
            .await;
        let (b, d) = (rec.id.clone(), dest.id.clone());
        match result {
            Ok(bytes) => {
                let actor = self.actor().to_owned();
                let (name, project) = (dest.name.clone(), rec.project_name.clone());
                self.catalog()
                    .call(move |c| {
                        let tx = crate::engine::catalog::immediate(c)?;
                        let ts = now();
                        tx.execute(
                            "UPDATE backup_copies SET status = 'stored', stored_bytes = ?3,
                                    verified_at = ?4, error = NULL, updated_at = ?4
                             WHERE backup_id = ?1 AND destination_id = ?2",
                            params![b, d, bytes as i64, ts],
                        )?;
                        audit::append(
                            &tx,
                            &actor,
                            "backup.copy",
                            Some(&project),
                            &json!({"backup_id": b, "destination": name, "bytes": bytes}),
                        )?;
                        let copy = get(&tx, &b, &d)?
                            .ok_or_else(|| Error::internal("the copy row vanished"))?;
                        tx.commit()?;
                        Ok(copy)
                    })
                    .await
            }
            Err(e) => {
                tracing::info!("copy of backup {} to '{}' failed: {e}", rec.id, dest.name);
                // Nothing half-written stays behind (best effort: the
                // destination may be unreachable; the row says failed).
                let prefix = place.path(&rel);
                let manifest_path = place.path(&format!("{rel}/{MANIFEST_FILE}"));
                let _ = remote::delete_prefix(&place, &prefix, &manifest_path).await;
                let msg = e.message.clone();
                let _ = self
                    .catalog()
                    .call(move |c| set_status(c, &b, &d, "failed", Some(&msg)))
                    .await;
                Err(e)
            }
        }
    }

    async fn upload_and_check(
        &self,
        place: &Place,
        dir: &std::path::Path,
        rel: &str,
        manifest: &Manifest,
        sent: &(dyn Fn(u64) + Sync),
        cancel: &CancellationToken,
    ) -> Result<u64> {
        let mut total = 0u64;
        let mut names: Vec<String> = manifest.files.iter().map(|f| f.name.clone()).collect();
        names.push(MANIFEST_FILE.to_owned());
        let mut done = 0u64;
        for name in &names {
            if cancel.is_cancelled() {
                return Err(Error::cancelled());
            }
            let to = place.path(&format!("{rel}/{name}"));
            let base = done;
            let (sha, len) =
                remote::upload_file(place, &dir.join(name), &to, cancel, &|n| sent(base + n))
                    .await?;
            done += len;
            // After the first object: a kill here leaves a partial copy.
            crate::engine::failpoint::pause("copy.upload");
            if let Some(f) = manifest.files.iter().find(|f| &f.name == name)
                && (f.stored_size != len || f.stored_sha256 != sha)
            {
                return Err(Error::corrupt(format!(
                    "{name} changed while it was uploaded (its SHA-256 differs from the manifest's)"
                )));
            }
            total += len;
        }
        // Read every object back: the copy counts only if the destination
        // returns exactly what was written.
        for name in &names {
            let from = place.path(&format!("{rel}/{name}"));
            let (sha, len) = remote::read_back(place, &from).await?;
            let expected = match manifest.files.iter().find(|f| &f.name == name) {
                Some(f) => (f.stored_sha256.clone(), f.stored_size),
                None => {
                    let bytes = tokio::fs::read(dir.join(name))
                        .await
                        .map_err(|e| Error::io("read", &dir.join(name), e))?;
                    (
                        crate::engine::crypto::sha256_hex(&bytes),
                        bytes.len() as u64,
                    )
                }
            };
            if (sha, len) != expected {
                return Err(Error::corrupt(format!(
                    "destination '{}' returned {name} with other content than was uploaded",
                    place.name
                )));
            }
        }
        Ok(total)
    }

    /// Fetches a stored copy into a temporary folder, checked against the
    /// catalog's digest (for copying between destinations).
    async fn stage_copy(&self, rec: &BackupRecord) -> Result<tempfile::TempDir> {
        let files = self.backup_files(rec, None).await?;
        let tmp = tempfile::Builder::new()
            .prefix("stage-")
            .tempdir_in(self.data_dir().temp())
            .map_err(|e| Error::io("create a folder in", &self.data_dir().temp(), e))?;
        let dir = tmp.path().to_path_buf();
        let expected = rec.checksum.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let m = files.manifest()?;
            if expected.as_deref().is_some_and(|e| e != m.digest()) {
                return Err(Error::corrupt(
                    "the copy's manifest differs from the catalog's record",
                ));
            }
            let mut names: Vec<String> = m.files.iter().map(|f| f.name.clone()).collect();
            names.push(MANIFEST_FILE.to_owned());
            for name in names {
                let mut r = files.open(&name, None)?;
                let to = dir.join(&name);
                let mut out =
                    std::fs::File::create(&to).map_err(|e| Error::io("create", &to, e))?;
                std::io::copy(&mut r, &mut out).map_err(|e| Error::io("write", &to, e))?;
            }
            let report =
                crate::engine::backup::verify::verify_folder(&dir, expected.as_deref(), None);
            match report {
                // Without the passphrase only the stored bytes are checked:
                // that is what a copy needs.
                Ok(_)
                | Err(Error {
                    kind: ErrorKind::Auth,
                    ..
                }) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        Ok(tmp)
    }

    /// Re-reads a copy at a destination and checks it against the catalog.
    pub async fn verify_copy(
        &self,
        backup: &str,
        destination: &str,
    ) -> Result<crate::engine::backup::verify::VerifyReport> {
        let rec = self.backup(backup).await?;
        let files = self.backup_files(&rec, Some(destination)).await?;
        let passphrase = self.backup_passphrase().await.ok().flatten();
        let expected = rec.checksum.clone();
        let report = tokio::task::spawn_blocking(move || {
            crate::engine::backup::verify::verify_files(
                files.as_ref(),
                expected.as_deref(),
                passphrase.as_ref(),
            )
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        let (dest, _) = self.open_destination(destination).await?;
        let (b, d, ok) = (rec.id.clone(), dest.id.clone(), report.ok);
        let why = report.first_failure.clone();
        self.catalog()
            .call(move |c| {
                if ok {
                    c.execute(
                        "UPDATE backup_copies SET verified_at = ?3, error = NULL, updated_at = ?3
                         WHERE backup_id = ?1 AND destination_id = ?2",
                        params![b, d, now()],
                    )?;
                } else {
                    c.execute(
                        "UPDATE backup_copies SET error = ?3, updated_at = ?4
                         WHERE backup_id = ?1 AND destination_id = ?2",
                        params![b, d, why, now()],
                    )?;
                }
                Ok(())
            })
            .await?;
        Ok(report)
    }

    /// Removes one copy (objects and row); `deleting` first, manifest first.
    pub async fn delete_copy(&self, backup: &str, destination: &str) -> Result<()> {
        let rec = self.backup(backup).await?;
        let (dest, place) = self.open_destination(destination).await?;
        let (b, d) = (rec.id.clone(), dest.id.clone());
        let copy = self
            .catalog()
            .call(move |c| get(c, &b, &d))
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("backup {} has no copy at '{}'", rec.id, dest.name))
            })?;
        self.finish_delete(&place, &copy).await?;
        let (actor, name, project) = (
            self.actor().to_owned(),
            dest.name.clone(),
            rec.project_name.clone(),
        );
        let b = rec.id.clone();
        self.catalog()
            .call(move |c| {
                audit::append(
                    c,
                    &actor,
                    "backup.copy_delete",
                    Some(&project),
                    &json!({"backup_id": b, "destination": name}),
                )
            })
            .await
    }

    async fn finish_delete(&self, place: &Place, copy: &BackupCopy) -> Result<()> {
        let (b, d) = (copy.backup_id.clone(), copy.destination_id.clone());
        self.catalog()
            .call(move |c| set_status(c, &b, &d, "deleting", None))
            .await?;
        crate::engine::failpoint::pause("copy.delete");
        let prefix = place.path(&copy.location);
        let manifest = place.path(&format!("{}/{MANIFEST_FILE}", copy.location));
        remote::delete_prefix(place, &prefix, &manifest).await?;
        let (b, d) = (copy.backup_id.clone(), copy.destination_id.clone());
        self.catalog()
            .call(move |c| {
                c.execute(
                    "DELETE FROM backup_copies WHERE backup_id = ?1 AND destination_id = ?2",
                    [&b, &d],
                )?;
                Ok(())
            })
            .await
    }

    /// Removes a backup's local folder, keeping its copies elsewhere.
    /// Refused unless a stored copy remains.
    pub async fn drop_local_copy(&self, backup: &str) -> Result<()> {
        let rec = self.backup(backup).await?;
        let id = rec.id.clone();
        let copies = self.catalog().call(move |c| of_backup(c, &id)).await?;
        if !copies.iter().any(|c| c.status == "stored") {
            return Err(Error::conflict(format!(
                "backup {} has no stored copy elsewhere: its local folder is the only one",
                rec.id
            )));
        }
        let id = rec.id.clone();
        self.catalog()
            .call(move |c| backups::set_local_state(c, &id, "removing"))
            .await?;
        if let Some(path) = rec.file_path.as_deref().map(PathBuf::from)
            && path.starts_with(self.data_dir().backups())
            && path.exists()
        {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io("delete", &path, e))?;
        }
        let id = rec.id.clone();
        self.catalog()
            .call(move |c| backups::set_local_state(c, &id, "absent"))
            .await
    }

    /// Makes the copies a backup's plan asks for; a destination that
    /// cannot be reached is replaced by the failover one. Never fails the
    /// backup itself: each outcome is reported.
    pub async fn store_by_plan(
        &self,
        backup_id: &str,
        plan: &StorePlan,
        sent: &(dyn Fn(&str, u64) + Sync),
        cancel: &CancellationToken,
    ) -> Vec<StoreOutcome> {
        let mut out = Vec::new();
        for name in &plan.destinations {
            let r = self
                .store_copy(backup_id, name, None, &|n| sent(name, n), cancel)
                .await;
            match r {
                Ok(_) => out.push(StoreOutcome {
                    destination: name.clone(),
                    stored: true,
                    error: None,
                    failover_to: None,
                }),
                Err(e) => {
                    let mut outcome = StoreOutcome {
                        destination: name.clone(),
                        stored: false,
                        error: Some(e.message.clone()),
                        failover_to: None,
                    };
                    if let Some(fo) = plan
                        .failover
                        .as_ref()
                        .filter(|_| remote::is_unreachable(&e))
                    {
                        let primary = self.destination(name).await.map(|d| d.id).ok();
                        match self
                            .store_copy(backup_id, fo, primary, &|n| sent(fo, n), cancel)
                            .await
                        {
                            Ok(_) => outcome.failover_to = Some(fo.clone()),
                            Err(e2) => {
                                outcome.error = Some(format!(
                                    "{}; the failover destination '{fo}' failed too: {}",
                                    e.message, e2.message
                                ))
                            }
                        }
                    }
                    out.push(outcome);
                }
            }
        }
        let all_stored = out.iter().all(|o| o.stored || o.failover_to.is_some());
        if plan.drop_local && !out.is_empty() && all_stored {
            if let Err(e) = self.drop_local_copy(backup_id).await {
                tracing::warn!("backup {backup_id}: the local folder stays: {e}");
            }
        } else if plan.drop_local && !all_stored {
            tracing::warn!("backup {backup_id}: a copy failed, so the local folder stays");
        }
        out
    }

    /// Start-up recovery, catalog only: an upload a crash interrupted (its
    /// lock is free) becomes `failed`; a local folder left `removing` is
    /// removed. Runs before the vault is unlocked.
    pub async fn recover_copies(&self) -> Result<usize> {
        let rows = self.catalog().call(|c| unfinished(c)).await?;
        let mut n = 0;
        for copy in rows.into_iter().filter(|c| c.status == "uploading") {
            let lock_path = self.data_dir().temp().join(format!(
                "{}-{}.copy.lock",
                copy.backup_id, copy.destination_id
            ));
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock_path)
                && f.try_lock().is_err()
            {
                continue; // a live process is uploading it
            }
            let _ = std::fs::remove_file(&lock_path);
            let (b, d) = (copy.backup_id.clone(), copy.destination_id.clone());
            self.catalog()
                .call(move |c| set_status(c, &b, &d, "failed", Some(INTERRUPTED)))
                .await?;
            n += 1;
        }
        let removing: Vec<BackupRecord> = self
            .catalog()
            .call(|c| {
                let mut stmt =
                    c.prepare("SELECT id FROM backups WHERE local_state = 'removing'")?;
                let ids = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut out = Vec::new();
                for id in ids {
                    if let Some(b) = backups::get(c, &id)? {
                        out.push(b);
                    }
                }
                Ok(out)
            })
            .await?;
        for b in removing {
            if let Some(path) = b.file_path.as_deref().map(PathBuf::from)
                && path.starts_with(self.data_dir().backups())
                && path.exists()
            {
                let _ = std::fs::remove_dir_all(&path);
            }
            let id = b.id.clone();
            self.catalog()
                .call(move |c| backups::set_local_state(c, &id, "absent"))
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// After unlock (the destinations' secrets are needed): removes what
    /// interrupted uploads left at their destinations and finishes
    /// interrupted deletions. Destinations that do not answer are tried
    /// again at the next unlock.
    pub async fn finish_copy_recovery(&self) -> Result<()> {
        let rows = self
            .catalog()
            .call(|c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {COLUMNS} FROM backup_copies c JOIN destinations d ON d.id = c.destination_id
                     WHERE c.status = 'deleting' OR (c.status = 'failed' AND c.error = ?1)"
                ))?;
                let rows = stmt.query_map([INTERRUPTED], from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        for copy in rows {
            let Ok((_, place)) = self.open_destination(&copy.destination_id).await else {
                continue;
            };
            if copy.status == "deleting" {
                if let Err(e) = self.finish_delete(&place, &copy).await {
                    tracing::warn!(
                        "could not finish deleting a copy at '{}': {e}",
                        copy.destination
                    );
                }
                continue;
            }
            let prefix = place.path(&copy.location);
            let manifest = place.path(&format!("{}/{MANIFEST_FILE}", copy.location));
            if remote::delete_prefix(&place, &prefix, &manifest)
                .await
                .is_ok()
            {
                let (b, d) = (copy.backup_id.clone(), copy.destination_id.clone());
                self.catalog()
                    .call(move |c| {
                        set_status(
                            c,
                            &b,
                            &d,
                            "failed",
                            Some(
                                "interrupted: the upload did not finish (its objects were removed)",
                            ),
                        )
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Disaster recovery: recreates catalog rows for every backup whose
    /// manifest is in the destination (local folders used when present).
    pub async fn rebuild_catalog_from(
        &self,
        destination: &str,
    ) -> Result<crate::engine::backup::store::RebuildReport> {
        let (dest, place) = self.open_destination(destination).await?;
        let folders = remote::manifest_folders(&place).await?;
        let handle = tokio::runtime::Handle::current();
        let p2 = place.clone();
        let found: Vec<(String, Result<Manifest>)> = tokio::task::spawn_blocking(move || {
            folders
                .into_iter()
                .map(|rel| {
                    let files = RemoteFiles::new(p2.clone(), rel.clone(), handle.clone());
                    let m = files.manifest();
                    (rel, m)
                })
                .collect()
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
        let root = self.data_dir().backups();
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let mut report = crate::engine::backup::store::RebuildReport {
                    manifests: 0,
                    added: 0,
                    updated: 0,
                    skipped: Vec::new(),
                };
                for (rel, m) in found {
                    let m = match m {
                        Ok(m) if m.status == "completed" => m,
                        Ok(m) => {
                            report.skipped.push(format!("{rel}: status {}", m.status));
                            continue;
                        }
                        Err(e) => {
                            report.skipped.push(format!("{rel}: {}", e.message));
                            continue;
                        }
                    };
                    report.manifests += 1;
                    let local = rel
                        .split('/')
                        .fold(root.clone(), |p, part| p.join(part));
                    let added = crate::engine::backup::store::record_manifest(&tx, &m, &local)?;
                    let here = Manifest::read(&local).is_ok_and(|lm| lm.digest() == m.digest());
                    backups::set_local_state(&tx, &m.id, if here { "present" } else { "absent" })?;
                    let ts = now();
                    tx.execute(
                        "INSERT INTO backup_copies (backup_id, destination_id, location, status,
                                                    stored_bytes, created_at, updated_at)
                         VALUES (?1, ?2, ?3, 'stored', ?4, ?5, ?5)
                         ON CONFLICT (backup_id, destination_id) DO UPDATE SET
                           status = 'stored', location = ?3, stored_bytes = ?4, updated_at = ?5",
                        params![m.id, dest.id, rel, m.total_stored() as i64, ts],
                    )?;
                    if added {
                        report.added += 1;
                    } else {
                        report.updated += 1;
                    }
                }
                audit::append(
                    &tx,
                    &actor,
                    "catalog.rebuild",
                    Some(&dest.name),
                    &json!({"from": dest.name, "manifests": report.manifests, "added": report.added, "skipped": report.skipped.len()}),
                )?;
                tx.commit()?;
                Ok(report)
            })
            .await
    }
}

/// Whether a destination record is referenced by name in a plan.
pub fn plan_names(plan: &StorePlan) -> impl Iterator<Item = &String> {
    plan.destinations.iter().chain(plan.failover.iter())
}
