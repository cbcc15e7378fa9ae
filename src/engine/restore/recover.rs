//! After a crash or `kill -9` during a restore, a rollback or a restore
//! test. At the next start of any front-end, rows a dead process left
//! `running` become `interrupted` and their temporary folders (passfile,
//! decoded archives) go; nothing of that needs the vault. Once the vault
//! is unlocked, the target of each interrupted restore is asked whether
//! its transaction committed (`txid_status`), and each interrupted restore
//! test's scratch database and stand-in roles are dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::params;

use super::exec::secret_aad;
use super::plan::quote;
use crate::engine::Engine;
use crate::engine::catalog::now;
use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::{self, Secret};
use crate::engine::error::{Error, Result};
use crate::engine::pg::connect;

const PER_SERVER: Duration = Duration::from_secs(10);

/// Whether a live process holds the lock file.
fn held(path: &Path) -> bool {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f.try_lock().is_err(),
        Err(_) => false,
    }
}

/// Removes a temporary folder, only when it lies inside `temp`.
fn remove_inside(temp: &Path, dir: Option<&str>) {
    let Some(dir) = dir else { return };
    let dir = PathBuf::from(dir);
    if dir.starts_with(temp) && dir != temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

impl Engine {
    /// Start-up part: marks what a dead process left running as
    /// interrupted and removes its files. Returns how many rows changed.
    pub(crate) async fn recover_interrupted_restores(&self) -> Result<usize> {
        let temp = self.data_dir().temp();
        let rows: Vec<(String, Option<String>, bool)> = self
            .catalog()
            .call(|c| {
                let mut out = Vec::new();
                let mut stmt =
                    c.prepare("SELECT id, work_dir FROM restores WHERE status = 'running'")?;
                for r in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                    let (id, dir): (String, Option<String>) = r?;
                    out.push((id, dir, false));
                }
                let mut stmt =
                    c.prepare("SELECT id, work_dir FROM restore_tests WHERE status = 'running'")?;
                for r in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                    let (id, dir): (String, Option<String>) = r?;
                    out.push((id, dir, true));
                }
                Ok(out)
            })
            .await?;
        let mut n = 0;
        for (id, dir, test) in rows {
            let lock = temp.join(if test {
                format!("rtest-{id}.lock")
            } else {
                format!("restore-{id}.lock")
            });
            if held(&lock) {
                continue;
            }
            remove_inside(&temp, dir.as_deref());
            let _ = std::fs::remove_file(&lock);
            let id2 = id.clone();
            self.catalog()
                .call(move |c| {
                    if test {
                        c.execute(
                            "UPDATE restore_tests SET status = 'interrupted', work_dir = NULL, completed_at = ?2,
                                 error_message = 'interrupted: supabackup stopped while the restore test ran'
                             WHERE id = ?1",
                            params![id2, now()],
                        )?;
                    } else {
                        // Without a transaction id nothing began on the target.
                        c.execute(
                            "UPDATE restores SET status = 'interrupted', work_dir = NULL, completed_at = ?2,
                                 committed = CASE WHEN xid IS NULL THEN 0 END,
                                 error_message = 'interrupted: supabackup stopped while the restore ran'
                             WHERE id = ?1",
                            params![id2, now()],
                        )?;
                    }
                    Ok(())
                })
                .await?;
            n += 1;
        }
        // Leftover folders of restores, previews and tests no row knows
        // about (a crash before the row was written), and their locks.
        if let Ok(entries) = std::fs::read_dir(&temp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !["restore-", "preview-", "rtest-"]
                    .iter()
                    .any(|p| name.starts_with(p))
                {
                    continue;
                }
                let path = e.path();
                if let Some(dir_name) = name.strip_suffix(".lock") {
                    if !held(&path) && !temp.join(dir_name).exists() {
                        let _ = std::fs::remove_file(&path);
                    }
                } else if path.is_dir() && !held(&super::prepare::lock_path(&path)) {
                    let _ = std::fs::remove_dir_all(&path);
                    let _ = std::fs::remove_file(super::prepare::lock_path(&path));
                }
            }
        }
        Ok(n)
    }

    /// Unlocked part: learns whether interrupted restores committed, and
    /// drops the scratch databases of interrupted restore tests.
    pub async fn finish_recovery(&self) -> Result<()> {
        let key = self.master_key()?;
        type Pending = (
            String,
            Option<String>,
            Option<String>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            String,
        );
        let pending: Vec<Pending> = self
            .catalog()
            .call(|c| {
                let mut stmt = c.prepare(
                    "SELECT id, target_project_id, target_url, target_secret_nonce, target_secret, xid
                     FROM restores WHERE status = 'interrupted' AND committed IS NULL AND xid IS NOT NULL",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        for (id, project, url, nonce, secret, xid) in pending {
            let info = match (project, url) {
                (Some(p), _) => match self.project(&p).await {
                    Ok(p) => self.connection_info(&p).await,
                    Err(e) => Err(e),
                },
                (None, Some(u)) => open_url(&key, "restore", &id, &u, nonce, secret),
                (None, None) => continue,
            };
            let status = match info {
                Ok(info) => txid_status(&info, &xid).await,
                Err(e) => Err(e),
            };
            match status {
                Ok(Some(committed)) => {
                    let id2 = id.clone();
                    self.catalog()
                        .call(move |c| {
                            c.execute(
                                "UPDATE restores SET committed = ?2,
                                     target_secret_nonce = CASE WHEN ?2 = 1 THEN target_secret_nonce END,
                                     target_secret = CASE WHEN ?2 = 1 THEN target_secret END
                                 WHERE id = ?1",
                                params![id2, i64::from(committed)],
                            )?;
                            Ok(())
                        })
                        .await?;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("could not ask the target of interrupted restore {id}: {e}")
                }
            }
        }

        type Test = (
            String,
            String,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            String,
            String,
        );
        let tests: Vec<Test> = self
            .catalog()
            .call(|c| {
                let mut stmt = c.prepare(
                    "SELECT id, scratch_url, scratch_secret_nonce, scratch_secret, database, created_roles
                     FROM restore_tests WHERE status = 'interrupted' AND cleaned = 0",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        for (id, url, nonce, secret, db, roles) in tests {
            let roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
            let cleaned = match open_url(&key, "rtest", &id, &url, nonce, secret) {
                Ok(info) => drop_scratch(&info, &db, &roles).await,
                Err(e) => Err(e),
            };
            match cleaned {
                Ok(()) => {
                    let id2 = id.clone();
                    self.catalog()
                        .call(move |c| {
                            c.execute(
                                "UPDATE restore_tests SET cleaned = 1, scratch_secret_nonce = NULL,
                                     scratch_secret = NULL WHERE id = ?1",
                                [&id2],
                            )?;
                            Ok(())
                        })
                        .await?;
                }
                Err(e) => tracing::warn!(
                    "could not drop the scratch database {db} of interrupted restore test {id}: {e}"
                ),
            }
        }
        Ok(())
    }
}

/// A recorded URL with its sealed password.
pub(super) fn open_url(
    key: &crypto::Key,
    kind: &str,
    id: &str,
    url: &str,
    nonce: Option<Vec<u8>>,
    secret: Option<Vec<u8>>,
) -> Result<ConnInfo> {
    let mut info = ConnInfo::parse(url)?;
    if let (Some(n), Some(s)) = (nonce, secret) {
        let plain = crypto::open(key, &n, &secret_aad(kind, id), &s)?;
        info.password = Some(Secret::new(
            String::from_utf8(plain.to_vec())
                .map_err(|_| Error::corrupt("a sealed password is not text"))?,
        ));
    }
    Ok(info)
}

/// `Some(true)` committed, `Some(false)` rolled back, `None` not known
/// (still running, or too old for the server to remember).
async fn txid_status(info: &ConnInfo, xid: &str) -> Result<Option<bool>> {
    let xid: i64 = xid
        .parse()
        .map_err(|_| Error::corrupt(format!("a recorded transaction id is not a number: {xid}")))?;
    let client = connect::connect(info, Some(PER_SERVER)).await?;
    let row = client
        .query_one("SELECT txid_status($1::bigint)", &[&xid])
        .await
        .map_err(|e| Error::connection(format!("txid_status: {e}")))?;
    Ok(match row.get::<_, Option<String>>(0).as_deref() {
        Some("committed") => Some(true),
        Some("aborted") => Some(false),
        _ => None,
    })
}

/// Drops a restore test's scratch database and the stand-in roles it made.
pub(super) async fn drop_scratch(info: &ConnInfo, db: &str, roles: &[String]) -> Result<()> {
    let client = connect::connect(info, Some(PER_SERVER)).await?;
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(db)
        ))
        .await
        .map_err(|e| Error::connection(format!("could not drop the scratch database: {e}")))?;
    for r in roles {
        client
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote(r)))
            .await
            .map_err(|e| Error::connection(format!("could not drop the stand-in role {r}: {e}")))?;
    }
    Ok(())
}
