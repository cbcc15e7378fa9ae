//! Running a restore: one psql session, one transaction, fed by the
//! decoding pipeline. Order: suspend the restoring role's default privileges
//! in the schemas being created (so the target adds no grants the source did
//! not have), empty what replace mode replaces, roles, schema (pg_restore
//! from the archive with an exact TOC list), the user's triggers and
//! policies on platform tables, data (with replica mode), migration
//! history, foreign-key checks for partial data, then COMMIT. Any error, a
//! cancel or a broken input before COMMIT leaves the target as it was.

use std::collections::BTreeSet;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::datafilter::filter_data;
use super::plan::{
    Plan, RestorePreview, TargetState, inspect_target, make_plan, quote, scoped_tables,
};
use super::{
    RestoreMode, RestorePhase, RestoreProgress, RestoreProgressFn, RestoreRecord, RestoreRequest,
    RestoreScope, RestoreTarget,
};
use crate::engine::Engine;
use crate::engine::backup::crypt::FileKey;
use crate::engine::backup::dump::{PassFile, ToolRun, feed, stream};
use crate::engine::backup::manifest::Manifest;
use crate::engine::backup::options::{Artifact, BackupKind, BackupOptions};
use crate::engine::backup::pipeline::open_artifact;
use crate::engine::backup::toc::{parse_entry, select_listing};
use crate::engine::backup::{BackupRequest, source::PLATFORM_ARCHIVE_SCHEMAS};
use crate::engine::catalog::{audit, new_id, now};
use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, ErrorKind, Result};
use crate::engine::pg::{connect, tools};
use crate::engine::project::Project;

const RESTORE_COLUMNS: &str =
    "id, backup_id, target_project_id, target, scope, mode, status, snapshot_backup_id,
    rollback_of, error_message, started_at, completed_at";

fn restore_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RestoreRecord> {
    let scope: String = r.get(4)?;
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
    })
}

/// Everything a restore reads from the backup, decoded as needed.
pub(super) struct Source {
    pub(super) dir: PathBuf,
    pub(super) manifest: Manifest,
    pub(super) passphrase: Option<Secret>,
    pub(super) key: Option<FileKey>,
}

impl Source {
    pub(super) fn open(&self, artifact: Artifact) -> Result<Box<dyn Read + Send>> {
        let f = self
            .manifest
            .file(artifact)
            .ok_or_else(|| Error::invalid(format!("the backup has no {} file", artifact.stem())))?;
        let (r, _) = open_artifact(
            &self.dir.join(&f.name),
            f.codec,
            self.passphrase.as_ref(),
            self.key.as_ref(),
        )?;
        Ok(r)
    }

    /// Derives the backup key once from the first encrypted file's header.
    pub(super) async fn derive_key(&mut self) -> Result<()> {
        let (Some(p), Some(f)) = (
            &self.passphrase,
            self.manifest.files.iter().find(|f| f.encrypted),
        ) else {
            return Ok(());
        };
        if self.key.is_some() {
            return Ok(());
        }
        let path = self.dir.join(&f.name);
        let p = p.clone();
        self.key = Some(
            tokio::task::spawn_blocking(move || -> Result<FileKey> {
                let mut file =
                    std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
                let header = crate::engine::backup::crypt::Header::read_from(&mut file)?;
                FileKey::derive_for_header(&p, &header)
            })
            .await
            .map_err(|e| Error::internal(e.to_string()))??,
        );
        Ok(())
    }

    /// Decodes an archive artifact to a plain file (pg_restore needs one).
    pub(super) fn extract(&self, artifact: Artifact, to: &Path) -> Result<()> {
        let mut r = self.open(artifact)?;
        let mut f = std::fs::File::create(to).map_err(|e| Error::io("create", to, e))?;
        std::io::copy(&mut r, &mut f).map_err(|e| {
            crate::engine::backup::crypt::error_from_io(
                e,
                "decode",
                &self.dir.join(artifact.stem()),
            )
        })?;
        Ok(())
    }
}

/// Counts what goes to psql.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    count: Arc<AtomicU64>,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn send(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes()).map_err(|e| {
        Error::new(
            ErrorKind::Connection,
            format!("psql stopped reading its input: {e}"),
        )
    })
}

fn copy_into(r: &mut dyn Read, out: &mut dyn Write, what: &str) -> Result<()> {
    std::io::copy(r, out).map(|_| ()).map_err(|e| {
        let err = crate::engine::backup::crypt::error_from_io(e, "read", Path::new(what));
        match err.kind {
            ErrorKind::Auth | ErrorKind::Corrupt => err,
            _ => Error::new(
                ErrorKind::Connection,
                format!("restoring {what} failed: {}", err.message),
            ),
        }
    })
}

fn objtype_keyword(t: &str) -> Option<&'static str> {
    match t {
        "r" => Some("TABLES"),
        "S" => Some("SEQUENCES"),
        "f" => Some("FUNCTIONS"),
        "T" => Some("TYPES"),
        _ => None,
    }
}

/// Statements that revoke the restoring role's default privileges in the
/// schemas whose objects the restore creates (the dump brings the source's).
fn suspend_default_acls(target: &TargetState, schemas: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    for d in &target.default_acls {
        let Some(kw) = objtype_keyword(&d.objtype) else {
            continue;
        };
        if !schemas.contains(&d.schema) {
            continue;
        }
        let grantee = d
            .grantee
            .as_deref()
            .map(quote)
            .unwrap_or_else(|| "PUBLIC".into());
        let stmt = format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON {kw} FROM {grantee};\n",
            quote(&target.current_user),
            quote(&d.schema)
        );
        if seen.insert(stmt.clone()) {
            out.push_str(&stmt);
        }
    }
    out
}

/// Empties the schemas replace mode replaces.
fn empty_schemas(schemas: &[String]) -> String {
    let mut out = String::new();
    for s in schemas {
        if s == "public" {
            // public stays (it belongs to the database); its objects go.
            out.push_str(&format!(
                "DO $supabackup$ DECLARE r record; BEGIN
  FOR r IN SELECT format('DROP %s IF EXISTS %s CASCADE',
                 CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                                WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass) AS stmt
           FROM pg_class c WHERE c.relnamespace = {ns}::regnamespace AND c.relkind IN ('r','p','v','m','S','f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
             AND NOT c.relispartition
           ORDER BY c.relkind IN ('v', 'm') DESC
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP %s IF EXISTS %s CASCADE',
                 CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, p.oid::regprocedure) AS stmt
           FROM pg_proc p WHERE p.pronamespace = {ns}::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP %s IF EXISTS %s CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype) AS stmt
           FROM pg_type t WHERE t.typnamespace = {ns}::regnamespace AND t.typtype IN ('e', 'd', 'c', 'r')
             AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
  LOOP EXECUTE r.stmt; END LOOP;
END $supabackup$;\n",
                ns = sql_literal(s)
            ));
        } else {
            out.push_str(&format!("DROP SCHEMA IF EXISTS {} CASCADE;\n", quote(s)));
        }
    }
    out
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Checks every foreign key into or out of the loaded tables; fails the
/// transaction naming the first broken one.
fn fk_check(tables: &[(String, String)]) -> String {
    if tables.is_empty() {
        return String::new();
    }
    let list: Vec<String> = tables
        .iter()
        .map(|(s, t)| sql_literal(&format!("{}.{}", quote(s), quote(t))))
        .collect();
    format!(
        "DO $supabackup$ DECLARE r record; bad bigint; BEGIN
  FOR r IN SELECT c.conname, c.conrelid::regclass AS child, c.confrelid::regclass AS parent,
             (SELECT string_agg('c.' || quote_ident(a.attname), ', ' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(att, n)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) AS ccols,
             (SELECT string_agg('c.' || quote_ident(a.attname) || ' IS NOT NULL', ' AND ' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(att, n)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) AS notnull,
             (SELECT string_agg('p.' || quote_ident(a.attname), ', ' ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(att, n)
                JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.att) AS pcols
           FROM pg_constraint c
           WHERE c.contype = 'f' AND (c.conrelid = ANY (ARRAY[{list}]::regclass[]) OR c.confrelid = ANY (ARRAY[{list}]::regclass[]))
  LOOP
    EXECUTE format('SELECT count(*) FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE (%s) = (%s))',
                   r.child, r.notnull, r.parent, r.pcols, r.ccols) INTO bad;
    IF bad > 0 THEN
      RAISE EXCEPTION 'foreign key % of % would be broken: % row(s) point to missing rows of %', r.conname, r.child, bad, r.parent;
    END IF;
  END LOOP;
END $supabackup$;\n",
        list = list.join(", ")
    )
}

impl Engine {
    /// psql for a server of `major`, and the pg_restore beside it.
    pub(super) async fn client_tools(&self, major: u32) -> Result<(tools::PgTool, PathBuf)> {
        let bin = self.pg_bin_dir();
        let psql = tokio::task::spawn_blocking(move || {
            tools::find_for_server("psql", major, bin.as_deref())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        let pg_restore = psql
            .path
            .parent()
            .map(|d| d.join("pg_restore"))
            .filter(|p| p.is_file())
            .ok_or_else(|| {
                Error::tool(format!(
                    "pg_restore is missing next to {}",
                    psql.path.display()
                ))
            })?;
        Ok((psql, pg_restore))
    }

    pub(super) async fn load_source(
        &self,
        backup: &str,
    ) -> Result<(crate::engine::catalog::backups::BackupRecord, Source)> {
        let rec = self.backup(backup).await?;
        if rec.status != "completed" {
            return Err(Error::invalid(format!(
                "backup {} is {}, not completed",
                rec.id, rec.status
            )));
        }
        let dir = PathBuf::from(rec.file_path.clone().unwrap_or_default());
        let d = dir.clone();
        let manifest = tokio::task::spawn_blocking(move || Manifest::read(&d))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        let passphrase = if manifest.files.iter().any(|f| f.encrypted) {
            Some(self.backup_passphrase().await?.ok_or_else(|| {
                Error::auth("the backup is encrypted and no backup passphrase is set")
                    .with_hint("set it with `supabackup vault set-backup-passphrase`")
            })?)
        } else {
            None
        };
        Ok((
            rec,
            Source {
                dir,
                manifest,
                passphrase,
                key: None,
            },
        ))
    }

    /// Inspects the target and plans the restore.
    async fn prepare(
        &self,
        req: &RestoreRequest,
    ) -> Result<(Source, super::Target, TargetState, Plan)> {
        req.scope.validate()?;
        let (_, source) = self.load_source(&req.backup).await?;
        let target = self.resolve_target(&req.target).await?;
        let client = connect::connect(&target.info, None).await?;
        let tables = scoped_tables(&source.manifest, &req.scope);
        let state = inspect_target(&client, &tables).await?;
        let plan = make_plan(
            &source.manifest,
            &req.scope,
            req.mode,
            &state,
            &target.label,
        )?;
        Ok((source, target, state, plan))
    }

    /// The dry run: what the restore would do. Changes nothing.
    pub async fn preview_restore(&self, req: &RestoreRequest) -> Result<RestorePreview> {
        let (_, _, _, plan) = self.prepare(req).await?;
        Ok(plan.preview)
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

    /// Runs a restore. Refuses (changing nothing) when the target already
    /// holds objects in scope and the mode is not `replace`.
    pub async fn run_restore(
        &self,
        req: RestoreRequest,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
    ) -> Result<RestoreRecord> {
        self.restore_inner(req, progress, cancel, None).await
    }

    /// Undoes a restore: its safety snapshot is restored in replace mode.
    pub async fn rollback_restore(
        &self,
        restore_id: &str,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
    ) -> Result<RestoreRecord> {
        let original = self.restore_record(restore_id).await?;
        if original.status != "completed" {
            return Err(Error::invalid(format!(
                "restore {} is {}: only a completed restore can be rolled back",
                original.id, original.status
            )));
        }
        let snapshot = original.snapshot_backup_id.clone().ok_or_else(|| {
            Error::invalid(format!(
                "restore {} has no safety snapshot to roll back to",
                original.id
            ))
            .with_hint("only restores that replaced existing objects take one")
        })?;
        let snap = self.backup_manifest(&snapshot).await?;
        let target = match &original.target_project_id {
            Some(p) => RestoreTarget::Project(p.clone()),
            None => {
                return Err(Error::invalid(
                    "rolling back a restore into a URL needs the URL again: restore the snapshot with --to-url",
                )
                .with_hint(format!("supabackup restore run {snapshot} --to-url URL --mode replace")));
            }
        };
        let req = RestoreRequest {
            backup: snapshot,
            target,
            scope: RestoreScope {
                schemas: snap.options.schemas.clone(),
                tables: Vec::new(),
                roles: false,
                schema: true,
                data: true,
            },
            mode: Some(RestoreMode::Replace),
        };
        let rec = self
            .restore_inner(req, progress, cancel, Some(original.id.clone()))
            .await?;
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
            let elapsed = clock.elapsed().as_secs_f64();
            let rate = if elapsed > 0.0 {
                sent as f64 / elapsed
            } else {
                0.0
            };
            progress(RestoreProgress {
                restore_id: id.clone(),
                phase,
                bytes_applied: sent,
                total_bytes: total,
                rate,
                eta_secs: (rate > 0.0 && total > sent).then(|| (total - sent) as f64 / rate),
                elapsed_secs: elapsed,
            });
        };
        report(RestorePhase::Preparing, 0, 0);
        let (mut source, target, state, plan) = self.prepare(&req).await?;
        if let Some(why) = &plan.preview.refusal {
            return Err(Error::conflict(why.clone())
                .with_hint("preview it with `supabackup restore preview`, then pass --mode replace to replace them"));
        }
        let mode = req.mode.unwrap_or(RestoreMode::New);
        // Record the restore.
        {
            let (id, backup_id) = (id.clone(), source.manifest.id.clone());
            let project_id = target.project.as_ref().map(|p| p.id.clone());
            let label = target.label.clone();
            let scope = serde_json::to_string(&req.scope)?;
            let rollback_of = rollback_of.clone();
            let actor = self.actor().to_owned();
            self.catalog()
                .call(move |c| {
                    let tx = c.transaction()?;
                    tx.execute(
                        "INSERT INTO restores (id, backup_id, target_project_id, target, scope, mode, status, rollback_of, started_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8)",
                        params![id, backup_id, project_id, label, scope, mode.as_str(), rollback_of, now()],
                    )?;
                    audit::append(
                        &tx,
                        &actor,
                        if rollback_of.is_some() { "restore.rollback" } else { "restore.start" },
                        Some(&label),
                        &json!({"restore_id": id, "backup_id": backup_id, "mode": mode.as_str(), "scope": serde_json::from_str::<serde_json::Value>(&scope).unwrap_or_default()}),
                    )?;
                    tx.commit()?;
                    Ok(())
                })
                .await?;
        }
        let result = self
            .restore_steps(
                &id,
                &req,
                &mut source,
                &target,
                &state,
                &plan,
                rollback_of.is_some(),
                &report,
                cancel,
            )
            .await;
        let (status, error) = match &result {
            Ok(_) => ("completed", None),
            Err(e) if e.kind == ErrorKind::Cancelled => ("cancelled", Some(e.message.clone())),
            Err(e) => ("failed", Some(e.message.clone())),
        };
        let snapshot = result.as_ref().ok().cloned().flatten();
        {
            let id = id.clone();
            let actor = self.actor().to_owned();
            let label = target.label.clone();
            let pid = target.project.as_ref().map(|p| p.id.clone());
            let elapsed = clock.elapsed().as_millis() as u64;
            self.catalog()
                .call(move |c| {
                    let tx = c.transaction()?;
                    tx.execute(
                        "UPDATE restores SET status = ?2, error_message = ?3, completed_at = ?4,
                            snapshot_backup_id = COALESCE(?5, snapshot_backup_id) WHERE id = ?1",
                        params![id, status, error, now(), snapshot],
                    )?;
                    audit::append(
                        &tx,
                        &actor,
                        "restore.end",
                        Some(&label),
                        &json!({"restore_id": id, "status": status, "error": error}),
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

    /// The restore's work; returns the snapshot backup's id, if one was taken.
    #[allow(clippy::too_many_arguments)]
    async fn restore_steps(
        &self,
        id: &str,
        req: &RestoreRequest,
        source: &mut Source,
        target: &super::Target,
        state: &TargetState,
        plan: &Plan,
        is_rollback: bool,
        report: &(dyn Fn(RestorePhase, u64, u64) + Sync),
        cancel: CancellationToken,
    ) -> Result<Option<String>> {
        // Tools of the target's major.
        let (psql, pg_restore) = self.client_tools(state.major).await?;

        // Safety snapshot of what replace mode changes.
        let mut snapshot_id = None;
        if plan.preview.snapshot && !is_rollback {
            report(RestorePhase::Snapshot, 0, 0);
            let mut schemas: BTreeSet<String> = plan.replace_schemas.iter().cloned().collect();
            schemas.extend(plan.replace_tables.iter().map(|(s, _)| s.clone()));
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
                created_at: now(),
                updated_at: now(),
            });
            let encrypt = self.backup_passphrase().await.ok().flatten().is_some();
            let snap = self
                .run_backup_of(
                    project,
                    target.info.clone(),
                    BackupRequest {
                        project: String::new(),
                        options: BackupOptions {
                            kind: BackupKind::PreRestore,
                            schemas: schemas.into_iter().collect(),
                            encrypt,
                            ..Default::default()
                        },
                        job_id: None,
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
            snapshot_id = Some(snap.id);
        }

        source.derive_key().await?;

        let work = self.data_dir().temp().join(format!("restore-{id}"));
        std::fs::create_dir_all(&work).map_err(|e| Error::io("create", &work, e))?;
        let result = self
            .load(
                req,
                source,
                target,
                state,
                plan,
                &psql.path,
                &pg_restore,
                &work,
                report,
                cancel,
            )
            .await;
        let _ = std::fs::remove_dir_all(&work);
        result.map(|_| snapshot_id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn load(
        &self,
        req: &RestoreRequest,
        source: &Source,
        target: &super::Target,
        state: &TargetState,
        plan: &Plan,
        psql: &Path,
        pg_restore: &Path,
        work: &Path,
        report: &(dyn Fn(RestorePhase, u64, u64) + Sync),
        cancel: CancellationToken,
    ) -> Result<()> {
        let m = &source.manifest;
        // Schema: the archive and the list of entries in scope.
        let schema_list = if plan.schema_schemas.as_ref().is_none_or(|s| !s.is_empty()) {
            let archive = work.join("schema.dump");
            source.extract(Artifact::SchemaArchive, &archive)?;
            let listing = list_archive(pg_restore, &archive, &target.info, &cancel)?;
            let wanted = plan.schema_schemas.clone();
            // Schemas that exist and stay (public is emptied, never dropped)
            // are not created again.
            let kept: BTreeSet<&String> = state
                .schemas
                .iter()
                .filter(|s| *s == "public" || !plan.replace_schemas.contains(s))
                .collect();
            let list = select_listing(&listing, &|e| {
                if e.kind == "SCHEMA" && e.schema().is_some_and(|s| kept.contains(&s.to_owned())) {
                    return false;
                }
                match &wanted {
                    None => true,
                    Some(set) => e.schema().is_some_and(|s| set.contains(s)),
                }
            });
            let path = work.join("schema.list");
            std::fs::write(&path, list).map_err(|e| Error::io("write", &path, e))?;
            Some((archive, path))
        } else {
            None
        };
        // The user's triggers, policies and indexes on platform tables.
        let platform_list = if schema_list.is_some() && m.file(Artifact::PlatformArchive).is_some()
        {
            let archive = work.join("platform.dump");
            source.extract(Artifact::PlatformArchive, &archive)?;
            let listing = list_archive(pg_restore, &archive, &target.info, &cancel)?;
            let list = select_listing(&listing, &|e| {
                matches!(e.kind, "TRIGGER" | "POLICY" | "INDEX")
                    && PLATFORM_ARCHIVE_SCHEMAS.contains(&e.namespace)
                    && attachment_missing(e, state, &plan.replace_schemas, req.scope.is_whole())
            });
            let keeps = list
                .lines()
                .any(|l| !l.starts_with(';') && parse_entry(l).is_some_and(|e| !e.is_setting()));
            let path = work.join("platform.list");
            std::fs::write(&path, list).map_err(|e| Error::io("write", &path, e))?;
            keeps.then_some((archive, path))
        } else {
            None
        };

        let suspended_schemas: BTreeSet<String> = match &plan.schema_schemas {
            None => plan.ddl_schemas.clone(),
            Some(s) => s.clone(),
        };
        let preamble = format!(
            "\\set ON_ERROR_STOP on\nBEGIN;\nSET client_min_messages = warning;\n{}{}",
            if schema_list.is_some() {
                suspend_default_acls(state, &suspended_schemas)
            } else {
                String::new()
            },
            empty_schemas(&plan.replace_schemas),
        );
        let mut deletes = String::new();
        if !plan.replace_tables.is_empty() {
            deletes.push_str("SET session_replication_role = replica;\n");
            for (s, t) in &plan.replace_tables {
                deletes.push_str(&format!("DELETE FROM {}.{};\n", quote(s), quote(t)));
            }
        }
        let partial_data = !req.scope.is_whole() && plan.data.is_some();
        let total: u64 = m
            .files
            .iter()
            .filter(|f| match f.artifact {
                Artifact::Roles => plan.roles,
                Artifact::Schema => schema_list.is_some(),
                Artifact::Data => plan.data.is_some(),
                Artifact::History => plan.history,
                _ => false,
            })
            .map(|f| f.plain_size)
            .sum();
        let sent = Arc::new(AtomicU64::new(0));
        let done = CancellationToken::new();
        let ticker = {
            let sent = sent.clone();
            let done = done.clone();
            async move {
                let mut t = tokio::time::interval(std::time::Duration::from_millis(250));
                loop {
                    tokio::select! {
                        _ = t.tick() => report(RestorePhase::Loading, sent.load(Ordering::Relaxed), total),
                        _ = done.cancelled() => break,
                    }
                }
            }
        };
        let info = target.info.clone();
        let passfile_path = work.join(".pgpass");
        let psql = psql.to_path_buf();
        let pg_restore = pg_restore.to_path_buf();
        let plan_roles = plan.roles;
        let plan_history = plan.history;
        let data_sel = plan.data.clone();
        let work_sql = {
            let sent = sent.clone();
            let cancel = cancel.clone();
            let source_dir = source.dir.clone();
            let files = m.files.clone();
            let passphrase = source.passphrase.clone();
            let key = source.key.clone();
            move || -> Result<()> {
                let passfile = PassFile::create(&passfile_path, &info)?;
                let src = Source {
                    dir: source_dir,
                    manifest: Manifest {
                        files,
                        ..Manifest::empty()
                    },
                    passphrase,
                    key,
                };
                let run = ToolRun {
                    program: &psql,
                    args: vec![
                        "-X".into(),
                        "-q".into(),
                        "-v".into(),
                        "ON_ERROR_STOP=1".into(),
                    ],
                    info: &info,
                    passfile: passfile.as_ref().map(|p| p.path()),
                };
                feed(&run, &cancel, &mut |stdin| {
                    let mut out = Counting {
                        inner: stdin,
                        count: sent.clone(),
                    };
                    send(&mut out, &preamble)?;
                    if plan_roles {
                        copy_into(&mut *src.open(Artifact::Roles)?, &mut out, "roles.sql")?;
                    }
                    for (archive, list) in [&schema_list, &platform_list].into_iter().flatten() {
                        let restore = ToolRun {
                            program: &pg_restore,
                            args: vec![
                                format!("--use-list={}", list.display()),
                                "--file=-".into(),
                                archive.display().to_string(),
                            ],
                            info: &info,
                            passfile: None,
                        };
                        stream(&restore, &cancel, &mut |bytes| out.write_all(bytes))?;
                    }
                    send(&mut out, &deletes)?;
                    let mut loaded = Vec::new();
                    if let Some(sel) = &data_sel {
                        let mut reader =
                            BufReader::with_capacity(256 * 1024, src.open(Artifact::Data)?);
                        if partial_data {
                            loaded = filter_data(&mut reader, &mut out, sel)?;
                        } else {
                            copy_into(&mut reader, &mut out, "data.sql")?;
                        }
                    }
                    if plan_history {
                        send(
                            &mut out,
                            "DROP SCHEMA IF EXISTS \"supabase_migrations\" CASCADE;\n",
                        )?;
                        copy_into(&mut *src.open(Artifact::History)?, &mut out, "history.sql")?;
                    }
                    send(&mut out, "\nSET session_replication_role = DEFAULT;\n")?;
                    send(&mut out, &fk_check(&loaded))?;
                    send(&mut out, "COMMIT;\n")
                })
            }
        };
        let job = tokio::task::spawn_blocking(work_sql);
        let (result, _) = tokio::join!(
            async {
                let r = job.await;
                done.cancel();
                r
            },
            ticker
        );
        result.map_err(|e| Error::internal(format!("the restore task failed: {e}")))?
    }
}

fn list_archive(
    pg_restore: &Path,
    archive: &Path,
    info: &ConnInfo,
    cancel: &CancellationToken,
) -> Result<String> {
    let mut listing = Vec::new();
    let run = ToolRun {
        program: pg_restore,
        args: vec!["--list".into(), archive.display().to_string()],
        info,
        passfile: None,
    };
    stream(&run, cancel, &mut |bytes| {
        listing.extend_from_slice(bytes);
        Ok(())
    })?;
    Ok(String::from_utf8_lossy(&listing).into_owned())
}

/// Whether a trigger/policy/index entry of the platform archive is missing
/// from the target (then it is the user's, and restored).
fn attachment_missing(
    e: &crate::engine::backup::toc::TocEntry<'_>,
    state: &TargetState,
    replaced: &[String],
    whole: bool,
) -> bool {
    // rest: "<table> <name...> <owner>" (indexes: "<name> <owner>")
    let Some((body, _owner)) = e.rest.rsplit_once(' ') else {
        return false;
    };
    let ns = e.namespace.to_owned();
    if e.kind == "INDEX" {
        return whole
            && !state
                .attachments
                .keys()
                .any(|(s, _, n)| *s == ns && n == body);
    }
    let Some((table, name)) = body.split_once(' ') else {
        return false;
    };
    match state
        .attachments
        .get(&(ns, table.to_owned(), name.to_owned()))
    {
        // Missing: the user's own, restored with a whole backup only.
        None => whole,
        // Emptying a schema it depends on drops it: it comes back from the backup.
        Some(deps) => deps.iter().any(|d| replaced.contains(d)),
    }
}

impl Manifest {
    /// A manifest with nothing in it (to carry a file list).
    pub(crate) fn empty() -> Manifest {
        Manifest {
            format: String::new(),
            version: 1,
            id: String::new(),
            status: String::new(),
            project: crate::engine::backup::manifest::ProjectInfo {
                id: None,
                name: String::new(),
                project_ref: String::new(),
                slug: String::new(),
            },
            options: Default::default(),
            tool: String::new(),
            pg_dump: crate::engine::backup::manifest::ToolInfo {
                path: String::new(),
                version: String::new(),
            },
            server_version: String::new(),
            server_major: 0,
            database_size_bytes: 0,
            snapshot: None,
            files: Vec::new(),
            tables: Vec::new(),
            sequences: Vec::new(),
            matviews: Vec::new(),
            roles: Vec::new(),
            left_out: Vec::new(),
            cluster_roles: Vec::new(),
            objects: Vec::new(),
            timings: crate::engine::backup::manifest::Timings {
                started_at: String::new(),
                completed_at: String::new(),
                duration_ms: 0,
            },
            warnings: Vec::new(),
            encryption: None,
        }
    }
}
