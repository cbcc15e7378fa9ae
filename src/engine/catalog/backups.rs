//! Backup rows: `pending → running → completed | failed | cancelled`.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::now;
use crate::engine::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub id: String,
    pub project_id: Option<String>,
    pub project_name: String,
    pub project_ref: String,
    pub job_id: Option<String>,
    pub backup_type: String,
    pub status: String,
    /// The backup folder.
    pub file_path: Option<String>,
    /// Total stored bytes.
    pub file_size: Option<i64>,
    /// Digest over the stored files' SHA-256 (see the manifest).
    pub checksum: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub verified_at: Option<String>,
    pub verified_restorable_at: Option<String>,
    /// The local folder: `present`, `removing` (its files are going) or
    /// `absent` (only copies at destinations remain).
    #[serde(default = "present")]
    pub local_state: String,
}

fn present() -> String {
    "present".into()
}

const COLUMNS: &str = "id, project_id, project_name, project_ref, job_id, backup_type, status, file_path,
    file_size, checksum, error_message, created_at, started_at, completed_at, verified_at, verified_restorable_at,
    local_state";

fn from_row(r: &Row<'_>) -> rusqlite::Result<BackupRecord> {
    Ok(BackupRecord {
        id: r.get(0)?,
        project_id: r.get(1)?,
        project_name: r.get(2)?,
        project_ref: r.get(3)?,
        job_id: r.get(4)?,
        backup_type: r.get(5)?,
        status: r.get(6)?,
        file_path: r.get(7)?,
        file_size: r.get(8)?,
        checksum: r.get(9)?,
        error_message: r.get(10)?,
        created_at: r.get(11)?,
        started_at: r.get(12)?,
        completed_at: r.get(13)?,
        verified_at: r.get(14)?,
        verified_restorable_at: r.get(15)?,
        local_state: r.get(16)?,
    })
}

pub struct NewBackup<'a> {
    pub id: &'a str,
    pub project_id: Option<&'a str>,
    pub project_name: &'a str,
    pub project_ref: &'a str,
    pub job_id: Option<&'a str>,
    pub backup_type: &'a str,
    /// Where the folder will be once complete.
    pub file_path: &'a str,
    pub metadata: &'a str,
}

/// Records a backup as `running` (it is about to start).
pub fn insert_running(conn: &Connection, b: &NewBackup<'_>) -> Result<()> {
    let ts = now();
    conn.execute(
        "INSERT INTO backups (id, project_id, project_name, project_ref, job_id, backup_type, status,
                              file_path, metadata, created_at, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?9)",
        params![b.id, b.project_id, b.project_name, b.project_ref, b.job_id, b.backup_type, b.file_path, b.metadata, ts],
    )?;
    Ok(())
}

pub fn mark_completed(
    conn: &Connection,
    id: &str,
    size: i64,
    checksum: &str,
    metadata: &str,
    completed_at: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE backups SET status = 'completed', file_size = ?2, checksum = ?3, metadata = ?4,
                completed_at = ?5, error_message = NULL
         WHERE id = ?1",
        params![id, size, checksum, metadata, completed_at],
    )?;
    Ok(())
}

pub fn mark_ended(conn: &Connection, id: &str, status: &str, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE backups SET status = ?2, error_message = ?3, completed_at = ?4 WHERE id = ?1",
        params![id, status, error, now()],
    )?;
    Ok(())
}

pub fn mark_verified(conn: &Connection, id: &str) -> Result<()> {
    conn.execute(
        "UPDATE backups SET verified_at = ?2 WHERE id = ?1",
        params![id, now()],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<BackupRecord>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM backups WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// A backup by full id or unambiguous id prefix (at least 6 characters).
pub fn find(conn: &Connection, key: &str) -> Result<BackupRecord> {
    if let Some(b) = get(conn, key)? {
        return Ok(b);
    }
    let key = key.trim();
    if key.len() >= 6 {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM backups WHERE id LIKE ?1 || '%' LIMIT 2"
        ))?;
        let found = stmt
            .query_map([key], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if found.len() == 1 {
            return found
                .into_iter()
                .next()
                .ok_or_else(|| Error::internal("empty match"));
        }
        if found.len() > 1 {
            return Err(Error::invalid(format!(
                "more than one backup id starts with '{key}'"
            )));
        }
    }
    Err(Error::not_found(format!("no backup with id '{key}'"))
        .with_hint("`supabackup backup list` shows the backups"))
}

pub fn metadata(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT metadata FROM backups WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .flatten())
}

/// Backups, newest first, optionally of one project.
pub fn list(
    conn: &Connection,
    project_id: Option<&str>,
    limit: usize,
) -> Result<Vec<BackupRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backups WHERE (?1 IS NULL OR project_id = ?1)
         ORDER BY created_at DESC, id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![project_id, limit as i64], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM backups WHERE id = ?1", [id])?;
    Ok(())
}

/// Rows a crash left `pending` or `running`.
pub fn unfinished(conn: &Connection) -> Result<Vec<BackupRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backups WHERE status IN ('pending', 'running')"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Inserts or replaces a completed row from a manifest (catalog rebuild).
#[allow(clippy::too_many_arguments)]
pub fn upsert_completed(
    conn: &Connection,
    id: &str,
    project_id: Option<&str>,
    project_name: &str,
    project_ref: &str,
    backup_type: &str,
    file_path: &str,
    size: i64,
    checksum: &str,
    metadata: &str,
    started_at: &str,
    completed_at: &str,
) -> Result<bool> {
    let existed = get(conn, id)?.is_some();
    conn.execute(
        "INSERT INTO backups (id, project_id, project_name, project_ref, backup_type, status, file_path,
                              file_size, checksum, metadata, created_at, started_at, completed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'completed', ?6, ?7, ?8, ?9, ?10, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET status = 'completed', file_path = excluded.file_path,
            file_size = excluded.file_size, checksum = excluded.checksum, metadata = excluded.metadata,
            completed_at = excluded.completed_at, error_message = NULL",
        params![id, project_id, project_name, project_ref, backup_type, file_path, size, checksum, metadata, started_at, completed_at],
    )?;
    Ok(!existed)
}

/// Sets the local folder's state (`present`, `removing`, `absent`).
pub fn set_local_state(conn: &Connection, id: &str, state: &str) -> Result<()> {
    conn.execute(
        "UPDATE backups SET local_state = ?2 WHERE id = ?1",
        params![id, state],
    )?;
    Ok(())
}
