//! Browsing, deleting and re-indexing stored backups.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::manifest::{MANIFEST_FILE, Manifest};
use crate::engine::Engine;
use crate::engine::catalog::backups::{self, BackupRecord};
use crate::engine::catalog::{audit, projects};
use crate::engine::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub manifests: usize,
    pub added: usize,
    pub updated: usize,
    /// Folders whose manifest could not be read, with the reason.
    pub skipped: Vec<String>,
}

/// Lists a completed backup's manifest in the catalog (its project matched
/// by id, else by name); `dir` is where its folder is (or would be) here.
/// Returns whether the row is new.
pub(crate) fn record_manifest(tx: &rusqlite::Connection, m: &Manifest, dir: &Path) -> Result<bool> {
    let project_id = match m.project.id.as_deref() {
        Some(id) if projects::get_by_id(tx, id)?.is_some() => Some(id.to_owned()),
        _ => projects::get_by_name(tx, &m.project.name)?.map(|p| p.id),
    };
    backups::upsert_completed(
        tx,
        &m.id,
        project_id.as_deref(),
        &m.project.name,
        &m.project.project_ref,
        m.options.kind.as_str(),
        &dir.display().to_string(),
        m.total_stored() as i64,
        &m.digest(),
        &serde_json::to_string(m)?,
        &m.timings.started_at,
        &m.timings.completed_at,
    )
}

/// Every folder under `root` holding a manifest (depth: slug/date/backup).
fn manifest_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let level = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    for slug in level(root) {
        for date in level(&slug) {
            for b in level(&date) {
                if b.join(MANIFEST_FILE).is_file() {
                    out.push(b);
                }
            }
        }
    }
    out.sort();
    out
}

impl Engine {
    /// Backups, newest first; of one project when `project` is given.
    pub async fn list_backups(
        &self,
        project: Option<&str>,
        limit: usize,
    ) -> Result<Vec<BackupRecord>> {
        let pid = match project {
            Some(k) => Some(self.project(k).await?.id),
            None => None,
        };
        self.catalog()
            .call(move |c| backups::list(c, pid.as_deref(), limit))
            .await
    }

    /// One backup by id (or unambiguous id prefix).
    pub async fn backup(&self, key: &str) -> Result<BackupRecord> {
        let k = key.to_owned();
        self.catalog().call(move |c| backups::find(c, &k)).await
    }

    /// A completed backup's manifest, read from its folder (or, when only
    /// copies remain, from a stored copy).
    pub async fn backup_manifest(&self, key: &str) -> Result<Manifest> {
        let rec = self.backup(key).await?;
        let files = self.backup_files(&rec, None).await?;
        tokio::task::spawn_blocking(move || files.manifest())
            .await
            .map_err(|e| Error::internal(e.to_string()))?
    }

    /// Deletes a backup's folder and its catalog row.
    pub async fn delete_backup(&self, key: &str) -> Result<BackupRecord> {
        let rec = self.backup(key).await?;
        if rec.status == "running" || rec.status == "pending" {
            return Err(
                Error::conflict(format!("backup {} is still {}", rec.id, rec.status))
                    .with_hint("cancel it first"),
            );
        }
        // Its copies at destinations go first (each `deleting`, manifest
        // first); one that cannot be removed keeps the backup listed.
        let id = rec.id.clone();
        let copies = self
            .catalog()
            .call(move |c| crate::engine::destination::copies::of_backup(c, &id))
            .await?;
        for copy in copies {
            self.delete_copy(&rec.id, &copy.destination_id)
                .await
                .map_err(|e| {
                    Error::new(
                        e.kind,
                        format!(
                            "backup {} was not deleted: its copy at '{}' could not be removed: {}",
                            rec.id, copy.destination, e.message
                        ),
                    )
                    .with_hint("try again when the destination is reachable")
                })?;
        }
        let id = rec.id.clone();
        self.catalog()
            .call(move |c| backups::set_local_state(c, &id, "removing"))
            .await?;
        if let Some(path) = rec.file_path.as_deref().map(PathBuf::from)
            && path.starts_with(self.data_dir().backups())
            && path.exists()
        {
            // The manifest first: a folder without one is no backup (and no
            // snapshot keeping repository chunks alive), whatever a crash
            // leaves of the rest.
            let manifest = path.join(MANIFEST_FILE);
            match std::fs::remove_file(&manifest) {
                Ok(()) => crate::engine::paths::fsync_dir(&path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", &manifest, e)),
            }
            std::fs::remove_dir_all(&path).map_err(|e| Error::io("delete", &path, e))?;
            // Tidy empty date and project folders.
            let mut parent = path.parent().map(Path::to_path_buf);
            while let Some(p) = parent {
                if p == self.data_dir().backups() || std::fs::remove_dir(&p).is_err() {
                    break;
                }
                parent = p.parent().map(Path::to_path_buf);
            }
        }
        let actor = self.actor().to_owned();
        let r = rec.clone();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                backups::delete(&tx, &r.id)?;
                audit::append(
                    &tx,
                    &actor,
                    "backup.delete",
                    Some(&r.project_name),
                    &json!({"backup_id": r.id, "type": r.backup_type, "bytes": r.file_size}),
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(rec)
    }

    /// Recreates catalog rows from the manifests under `backups/`.
    pub async fn rebuild_catalog(&self) -> Result<RebuildReport> {
        let root = self.data_dir().backups();
        let actor = self.actor().to_owned();
        let found = tokio::task::spawn_blocking(move || {
            manifest_dirs(&root)
                .into_iter()
                .map(|d| (d.clone(), Manifest::read(&d)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let mut report = RebuildReport {
                    manifests: 0,
                    added: 0,
                    updated: 0,
                    skipped: Vec::new(),
                };
                for (dir, m) in found {
                    let m = match m {
                        Ok(m) if m.status == "completed" => m,
                        Ok(m) => {
                            report.skipped.push(format!("{}: status {}", dir.display(), m.status));
                            continue;
                        }
                        Err(e) => {
                            report.skipped.push(format!("{}: {}", dir.display(), e.message));
                            continue;
                        }
                    };
                    report.manifests += 1;
                    let added = record_manifest(&tx, &m, &dir)?;
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
                    None,
                    &json!({"manifests": report.manifests, "added": report.added, "skipped": report.skipped.len()}),
                )?;
                tx.commit()?;
                Ok(report)
            })
            .await
    }
}
