//! Running restores and rollbacks, and their records. A restore is prepared
//! (nothing changes), refused with the reasons when it cannot run as asked,
//! recorded, preceded by a safety snapshot of the whole target (roles,
//! schema, data, migration history) and loaded in one transaction. A
//! rollback restores that snapshot exactly, after taking one of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::prepare::PrepareOptions;
use super::{
    RestoreMode, RestorePhase, RestorePreview, RestoreProgress, RestoreProgressFn, RestoreRecord,
    RestoreRequest, RestoreScope, RestoreTarget, Target,
};
use crate::engine::Engine;
use crate::engine::backup::BackupRequest;
use crate::engine::backup::options::{BackupKind, BackupOptions};
use crate::engine::catalog::{audit, new_id, now};
use crate::engine::crypto::{self, Secret};
use crate::engine::error::{Error, ErrorKind, Result};
use crate::engine::failpoint;
use crate::engine::project::Project;

pub(super) const RESTORE_COLUMNS: &str =
    "id, backup_id, target_project_id, target, scope, mode, status, snapshot_backup_id,
    rollback_of, error_message, started_at, completed_at, committed, allow_drop, jobs";

pub(super) fn restore_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RestoreRecord> {
    let scope: String = r.get(4)?;
    let allow: String = r.get(13)?;
    Ok(RestoreRecord {
        id: r.get(0)?,
        backup_id: r.get(1)?,
        target_project_id: r.get(2)?,
        target: r.get(3)?,
        scope: serde_json::from_str(&scope).unwrap_or(serde_json::Value::Null),
        mode: r.get(5)?,
        status: r.get(6)?,
        snapshot_backup_id: r.get(7)?,
        rollback_of: r.get(8)?,
        error_message: r.get(9)?,
        started_at: r.get(10)?,
        completed_at: r.get(11)?,
        committed: r.get::<_, Option<i64>>(12)?.map(|v| v != 0),
        allow_drop: serde_json::from_str(&allow).unwrap_or_default(),
        jobs: r.get::<_, i64>(14)?.clamp(1, 255) as u8,
    })
}

/// Associated data of a sealed URL-target password.
pub(super) fn secret_aad(kind: &str, id: &str) -> Vec<u8> {
    format!("supabackup-{kind}-target:{id}").into_bytes()
}

impl Engine {
    /// The dry run: what the restore would do, or why it would not. Changes nothing.
    pub async fn preview_restore(&self, req: &RestoreRequest) -> Result<RestorePreview> {
        let target = self.resolve_target(&req.target).await?;
        let work = self.data_dir().temp().join(format!("preview-{}", new_id()));
        let p = self
            .prepare(
                req,
                &target,
                work,
                PrepareOptions {
                    for_run: false,
                    exact: false,
                },
                &CancellationToken::new(),
            )
            .await?;
        Ok(p.plan.preview)
    }

    /// Restores are listed newest first.
    pub async fn list_restores(&self, limit: usize) -> Result<Vec<RestoreRecord>> {
        self.catalog()
            .call(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {RESTORE_COLUMNS} FROM restores ORDER BY started_at DESC, id DESC LIMIT ?1"
                ))?;
                let rows = stmt.query_map([limit as i64], restore_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    pub async fn restore_record(&self, id: &str) -> Result<RestoreRecord> {
        let id = id.to_owned();
        self.catalog()
            .call(move |c| {
                c.query_row(
                    &format!("SELECT {RESTORE_COLUMNS} FROM restores WHERE id = ?1"),
                    [&id],
                    restore_from_row,
                )
                .optional()?
                .ok_or_else(|| Error::not_found(format!("no restore with id '{id}'")))
            })
            .await
    }

    /// Runs a restore. Refuses (changing nothing) when the preview would
    /// refuse, or when a production or non-empty target was not confirmed.
    pub async fn run_restore(
        &self,
        req: RestoreRequest,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
    ) -> Result<RestoreRecord> {
        let into = match &req.target {
            RestoreTarget::Project(p) => format!("project '{p}'"),
            RestoreTarget::Url(u) => crate::engine::conninfo::ConnInfo::parse(u)
                .map(|i| i.redacted())
                .unwrap_or_else(|_| "a URL".into()),
        };
        tracing::info!("restore of backup {} into {into} started", req.backup);
        let started = now();
        let (backup, target) = (req.backup.clone(), req.target.clone());
        let r = self.restore_inner(req, progress, cancel, None).await;
        log_outcome("restore", &r);
        let project = match &target {
            RestoreTarget::Project(p) => self.project(p).await.ok(),
            RestoreTarget::Url(_) => None,
        };
        let shown = project.as_ref().map(|p| p.name.clone()).unwrap_or(into);
        self.alert_restore(false, project.as_ref(), &shown, &backup, &started, &r)
            .await;
        r
    }

    /// Raises `restore.*` or `rollback.*` for a finished run through the
    /// alert rules (a cancelled one, or one refused before it started,
    /// raises nothing). A failed run's record,
    /// when it got one, says whether it changed the target.
    async fn alert_restore(
        &self,
        rollback: bool,
        project: Option<&Project>,
        target: &str,
        backup: &str,
        started: &str,
        r: &Result<RestoreRecord>,
    ) {
        let failed_record = match r {
            Err(e) if e.kind == ErrorKind::Cancelled => return,
            Ok(_) => None,
            Err(_) => {
                let (b, t) = (backup.to_owned(), started.to_owned());
                self.catalog()
                    .call(move |c| {
                        Ok(c.query_row(
                            &format!(
                                "SELECT {RESTORE_COLUMNS} FROM restores
                                 WHERE backup_id = ?1 AND started_at >= ?2
                                 ORDER BY started_at DESC LIMIT 1"
                            ),
                            params![b, t],
                            restore_from_row,
                        )
                        .optional()?)
                    })
                    .await
                    .ok()
                    .flatten()
            }
        };
        // A request refused before anything ran (a typo, a missing
        // confirmation) is the caller's to fix, not news for the channels.
        if failed_record.is_none()
            && let Err(e) = r
            && matches!(
                e.kind,
                ErrorKind::Invalid | ErrorKind::NotFound | ErrorKind::Conflict
            )
        {
            return;
        }
        let rec = r.as_ref().ok().or(failed_record.as_ref());
        let status = rec.map(RestoreRecord::status_label).unwrap_or_else(|| {
            if r.is_ok() {
                "completed".into()
            } else {
                "failed before it started".into()
            }
        });
        let error = r.as_ref().err().map(|e| e.message.as_str());
        let alert = crate::engine::notify::Alert::restore_finished(
            &crate::engine::notify::RestoreOutcome {
                rollback,
                project_id: project.map(|p| p.id.as_str()),
                project: project.map(|p| p.name.as_str()),
                target,
                backup_id: rec.map(|r| r.backup_id.as_str()).unwrap_or(backup),
                restore_id: rec.map(|r| r.id.as_str()),
                error,
                status: &status,
            },
        );
        self.dispatch_alert(&alert, &self.delivery()).await;
    }

    /// Undoes a restore: its safety snapshot is restored exactly (what the
    /// restore added goes, what it replaced comes back), after a snapshot
    /// of the target as it is now. Refused when a newer restore changed
    /// the target since.
    pub async fn rollback_restore(
        &self,
        restore_id: &str,
        confirm: Option<String>,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
    ) -> Result<RestoreRecord> {
        let original = self.restore_record(restore_id).await?;
        // A failed or cancelled parallel load may have committed its first
        // part: that too is rolled back.
        if !original.changed_target() {
            return Err(Error::invalid(format!(
                "restore {} is {}{}: only a restore that changed the target can be rolled back",
                original.id,
                original.status,
                match (original.status.as_str(), original.committed) {
                    ("interrupted", None) =>
                        " (whether it committed is not known yet: unlock and try again)",
                    ("interrupted", Some(false)) =>
                        " (its transaction was rolled back: nothing changed)",
                    _ => "",
                }
            )));
        }
        let snapshot = original.snapshot_backup_id.clone().ok_or_else(|| {
            Error::invalid(format!(
                "restore {} has no safety snapshot to roll back to",
                original.id
            ))
        })?;
        let newer = {
            let o = original.clone();
            self.catalog()
                .call(move |c| {
                    let url: Option<String> = c.query_row(
                        "SELECT target_url FROM restores WHERE id = ?1",
                        [&o.id],
                        |r| r.get(0),
                    )?;
                    let mut stmt = c.prepare(
                        "SELECT id, status, committed, rollback_of FROM restores
                         WHERE id <> ?1 AND started_at >= ?2
                           AND ((?3 IS NOT NULL AND target_project_id = ?3)
                                OR (?3 IS NULL AND target_url IS ?4 AND target = ?5))
                         ORDER BY started_at",
                    )?;
                    let rows = stmt.query_map(
                        params![o.id, o.started_at, o.target_project_id, url, o.target],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, Option<i64>>(2)?,
                                r.get::<_, Option<String>>(3)?,
                            ))
                        },
                    )?;
                    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
                })
                .await?
        };
        // A newer restore that was itself rolled back (and that rollback)
        // changed nothing in the end.
        let undone: Vec<&str> = newer
            .iter()
            .filter(|(_, status, ..)| status == "rolled_back")
            .map(|(id, ..)| id.as_str())
            .collect();
        if let Some((id, status, ..)) = newer.iter().find(|(id, status, committed, of)| {
            let changed = match status.as_str() {
                "completed" | "running" => true,
                "interrupted" => *committed != Some(0),
                "failed" | "cancelled" => *committed == Some(1),
                _ => false,
            };
            changed
                && !undone.contains(&id.as_str())
                && !of.as_deref().is_some_and(|o| undone.contains(&o))
        }) {
            return Err(Error::conflict(format!(
                "restore {id} ({status}) changed {} after restore {}: rolling back would undo it too",
                original.target, original.id
            ))
            .with_hint(format!("roll back {id} first")));
        }
        let target = match &original.target_project_id {
            Some(p) => RestoreTarget::Project(p.clone()),
            None => RestoreTarget::Url(self.restore_target_url(&original.id).await?),
        };
        let scope: RestoreScope =
            serde_json::from_value(original.scope.clone()).unwrap_or_default();
        let req = RestoreRequest {
            backup: snapshot.clone(),
            target,
            scope: RestoreScope {
                schemas: Vec::new(),
                tables: Vec::new(),
                roles: scope.roles && scope.is_whole(),
                schema: true,
                data: true,
            },
            mode: Some(RestoreMode::Replace),
            allow_drop: Vec::new(),
            confirm,
            from: None,
            jobs: 1,
        };
        let started = now();
        let rec = self
            .restore_inner(req, progress, cancel, Some(original.id.clone()))
            .await;
        log_outcome("rollback", &rec);
        let project = match &original.target_project_id {
            Some(id) => self.project(id).await.ok(),
            None => None,
        };
        self.alert_restore(
            true,
            project.as_ref(),
            &original.target,
            &snapshot,
            &started,
            &rec,
        )
        .await;
        let rec = rec?;
        let id = original.id.clone();
        self.catalog()
            .call(move |c| {
                c.execute(
                    "UPDATE restores SET status = 'rolled_back' WHERE id = ?1",
                    [&id],
                )?;
                Ok(())
            })
            .await?;
        Ok(rec)
    }

    /// The URL (with its password) of a restore's URL target.
    async fn restore_target_url(&self, id: &str) -> Result<String> {
        let id = id.to_owned();
        let row: (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>) = self
            .catalog()
            .call({
                let id = id.clone();
                move |c| {
                    Ok(c.query_row(
                        "SELECT target_url, target_secret_nonce, target_secret FROM restores WHERE id = ?1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )?)
                }
            })
            .await?;
        let url = row.0.ok_or_else(|| {
            Error::invalid(format!(
                "restore {id} went to a URL that was not recorded: restore its snapshot with --to-url"
            ))
        })?;
        let password = match (row.1, row.2) {
            (Some(nonce), Some(ct)) => {
                let key = self.master_key()?;
                let plain = crypto::open(&key, &nonce, &secret_aad("restore", &id), &ct)?;
                Some(Secret::new(String::from_utf8(plain.to_vec()).map_err(
                    |_| Error::corrupt("a sealed target password is not text"),
                )?))
            }
            _ => None,
        };
        super::url_with_password(&url, password)
    }

    async fn restore_inner(
        &self,
        req: RestoreRequest,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
        rollback_of: Option<String>,
    ) -> Result<RestoreRecord> {
        let clock = Instant::now();
        let id = new_id();
        let report = |phase, sent: u64, total: u64| {
            progress(RestoreProgress::measured(&id, phase, sent, total, clock));
        };
        report(RestorePhase::Preparing, 0, 0);
        let target = self.resolve_target(&req.target).await?;
        let exact = rollback_of.is_some();
        let work = self.data_dir().temp().join(format!("restore-{id}"));
        let prepared = self
            .prepare(
                &req,
                &target,
                work.clone(),
                PrepareOptions {
                    for_run: true,
                    exact,
                },
                &cancel,
            )
            .await?;
        if let Some(why) = prepared.refusal() {
            return Err(Error::conflict(why.to_owned())
                .with_hint("nothing was changed; `supabackup restore preview` shows the details"));
        }
        if let Some(name) = &prepared.plan.preview.confirm_name
            && req.confirm.as_deref().map(str::trim) != Some(name.as_str())
        {
            let what = if target.project.is_some() {
                "a production project"
            } else {
                "a database that is not empty"
            };
            return Err(Error::invalid(format!(
                "{} is {what}: restoring into it needs its name typed again",
                target.label
            ))
            .with_hint(format!("pass --confirm '{name}'; nothing was changed")));
        }
        failpoint::pause_async("restore.prepared").await;
        self.record_restore_start(&id, &req, &target, &rollback_of, &work, prepared.jobs)
            .await?;
        failpoint::pause_async("restore.recorded").await;
        let changed = Arc::new(AtomicBool::new(false));
        let result = self
            .restore_steps(&id, &prepared, &target, &report, changed.clone(), cancel)
            .await;
        // A parallel load commits before its end: a failure after its first
        // transaction has changed the target, and rollback is the way back.
        let changed = result.is_ok() || changed.load(Ordering::SeqCst);
        if result.is_ok() {
            failpoint::pause_async("restore.committed").await;
        }
        drop(prepared);
        let (status, error) = match &result {
            Ok(_) => ("completed", None),
            Err(e) if e.kind == ErrorKind::Cancelled => ("cancelled", Some(e.message.clone())),
            Err(e) => ("failed", Some(e.message.clone())),
        };
        {
            let id = id.clone();
            let actor = self.actor().to_owned();
            let label = target.label.clone();
            let pid = target.project.as_ref().map(|p| p.id.clone());
            let elapsed = clock.elapsed().as_millis() as u64;
            self.catalog()
                .call(move |c| {
                    let tx = crate::engine::catalog::immediate(c)?;
                    tx.execute(
                        "UPDATE restores SET status = ?2, error_message = ?3, completed_at = ?4,
                            committed = ?5, work_dir = NULL,
                            target_secret_nonce = CASE WHEN ?2 = 'completed' THEN target_secret_nonce END,
                            target_secret = CASE WHEN ?2 = 'completed' THEN target_secret END
                         WHERE id = ?1",
                        params![id, status, error, now(), i64::from(changed)],
                    )?;
                    audit::append(
                        &tx,
                        &actor,
                        "restore.end",
                        Some(&label),
                        &json!({"restore_id": id, "status": status, "error": error, "changed_target": changed}),
                    )?;
                    crate::engine::catalog::analytics::record(
                        &tx,
                        pid.as_deref(),
                        "restore",
                        &json!({"restore_id": id, "status": status, "duration_ms": elapsed}),
                    )?;
                    tx.commit()?;
                    Ok(())
                })
                .await?;
        }
        result?;
        self.restore_record(&id).await
    }

    async fn record_restore_start(
        &self,
        id: &str,
        req: &RestoreRequest,
        target: &Target,
        rollback_of: &Option<String>,
        work: &std::path::Path,
        jobs: usize,
    ) -> Result<()> {
        let mode = req.mode.unwrap_or(RestoreMode::New);
        let (id, backup_id) = (id.to_owned(), req.backup.clone());
        let project_id = target.project.as_ref().map(|p| p.id.clone());
        let label = target.label.clone();
        let scope = serde_json::to_string(&req.scope)?;
        let rollback_of = rollback_of.clone();
        let actor = self.actor().to_owned();
        let work = work.display().to_string();
        let allow = serde_json::to_string(&req.allow_drop)?;
        // A URL target is recorded (its password sealed) so a crash can be
        // cleared up and the restore rolled back.
        let (url, sealed) = if target.project.is_none() {
            let sealed = match &target.info.password {
                Some(p) => Some(crypto::seal(
                    &*self.master_key()?,
                    &secret_aad("restore", &id),
                    p.expose().as_bytes(),
                )?),
                None => None,
            };
            (Some(target.info.url_without_password()), sealed)
        } else {
            (None, None)
        };
        let backup_full = self.backup(&req.backup).await?.id;
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                tx.execute(
                    "INSERT INTO restores (id, backup_id, target_project_id, target, scope, mode, status,
                         rollback_of, started_at, work_dir, target_url, target_secret_nonce, target_secret, allow_drop, jobs)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    params![
                        id,
                        backup_full,
                        project_id,
                        label,
                        scope,
                        mode.as_str(),
                        rollback_of,
                        now(),
                        work,
                        url,
                        sealed.as_ref().map(|s| s.0.to_vec()),
                        sealed.as_ref().map(|s| s.1.clone()),
                        allow,
                        jobs as i64
                    ],
                )?;
                audit::append(
                    &tx,
                    &actor,
                    if rollback_of.is_some() { "restore.rollback" } else { "restore.start" },
                    Some(&label),
                    &json!({"restore_id": id, "backup_id": backup_id, "mode": mode.as_str(),
                            "scope": serde_json::from_str::<serde_json::Value>(&scope).unwrap_or_default(),
                            "allow_drop": serde_json::from_str::<serde_json::Value>(&allow).unwrap_or_default(),
                            "jobs": jobs}),
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        let _ = backup_id;
        Ok(())
    }

    /// The safety snapshot, then the load.
    async fn restore_steps(
        &self,
        id: &str,
        prepared: &super::prepare::Prepared,
        target: &Target,
        report: &(dyn Fn(RestorePhase, u64, u64) + Sync),
        changed: Arc<AtomicBool>,
        cancel: CancellationToken,
    ) -> Result<()> {
        report(RestorePhase::Snapshot, 0, 0);
        let project = target.project.clone().unwrap_or_else(|| Project {
            id: String::new(),
            name: target.label.clone(),
            slug: format!(
                "url-{}",
                crate::engine::project::slugify(&format!(
                    "{}-{}",
                    target.info.host, target.info.dbname
                ))
            ),
            project_ref: "url".into(),
            db_url: target.info.url_without_password(),
            environment: Default::default(),
            organization_id: None,
            description: None,
            has_db_password: target.info.password.is_some(),
            ca_cert: None,
            created_at: now(),
            updated_at: now(),
        });
        let encrypt = self.backup_passphrase().await.ok().flatten().is_some();
        let snap = self
            .run_backup_of(
                project,
                target.info.clone(),
                BackupRequest {
                    no_hooks: false,
                    project: String::new(),
                    options: BackupOptions {
                        kind: BackupKind::PreRestore,
                        encrypt,
                        ..Default::default()
                    },
                    job_id: None,
                    store: Default::default(),
                },
                Arc::new(|_| {}),
                cancel.clone(),
            )
            .await
            .map_err(|e| {
                Error::new(
                    e.kind,
                    format!(
                        "the safety snapshot failed, nothing was restored: {}",
                        e.message
                    ),
                )
            })?;
        {
            let (rid, sid) = (id.to_owned(), snap.id.clone());
            self.catalog()
                .call(move |c| {
                    c.execute(
                        "UPDATE restores SET snapshot_backup_id = ?2 WHERE id = ?1",
                        params![rid, sid],
                    )?;
                    Ok(())
                })
                .await?;
        }
        failpoint::pause_async("restore.snapshot_taken").await;
        report(RestorePhase::Loading, 0, 0);
        let catalog = self.catalog().clone();
        let rid = id.to_owned();
        let handle = tokio::runtime::Handle::current();
        let on_xid = Box::new(move |xid: &str| -> Result<()> {
            let (rid, xid) = (rid.clone(), xid.to_owned());
            handle.block_on(catalog.call(move |c| {
                c.execute(
                    "UPDATE restores SET xid = ?2 WHERE id = ?1",
                    params![rid, xid],
                )?;
                Ok(())
            }))
        });
        self.load(prepared, &target.info, on_xid, changed, report, cancel)
            .await
    }
}

/// One log line for how a restore or rollback ended.
fn log_outcome(what: &str, r: &Result<RestoreRecord>) {
    match r {
        Ok(rec) => tracing::info!("{what} {} ended: {}", rec.id, rec.status),
        Err(e) if e.kind == ErrorKind::Cancelled => {
            tracing::info!("{what} cancelled")
        }
        Err(e) => tracing::warn!("{what} failed: {}", e.message),
    }
}
