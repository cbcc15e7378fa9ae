//! The automated restore test: a throw-away database on a scratch server
//! is made into a new project — the platform the backup's archive holds
//! (platform schemas, their extensions, event triggers), as a new project
//! has it — and the backup is restored into it by the very path a real
//! restore takes (prepare → verified files → selection against the target
//! → one transaction). Then every table's row count and content checksum
//! are compared with the manifest (the same order-independent checksum the
//! backup computed from its COPY stream), the database and the stand-in
//! roles are dropped, and the outcome is recorded. A crash at any moment
//! leaves a row from which the next start cleans up (`recover.rs`).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use futures_util::StreamExt;
use rusqlite::params;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::exec::secret_aad;
use super::guard::{Policy, SqlGuard};
use super::plan::quote;
use super::prepare::{PrepareOptions, WorkDir};
use super::{
    RestoreMode, RestorePhase, RestoreProgress, RestoreProgressFn, RestoreRequest, RestoreScope,
    RestoreTarget, Target,
};
use crate::engine::Engine;
use crate::engine::backup::dump::{PassFile, ToolRun, feed, stream};
use crate::engine::backup::platform::{self, extension_schema, is_platform_schema};
use crate::engine::backup::tap::MultisetHasher;
use crate::engine::catalog::{analytics, new_id, now, settings};
use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto;
use crate::engine::error::{Error, ErrorKind, Result};
use crate::engine::failpoint;
use crate::engine::pg::archive::{self, Toc};
use crate::engine::pg::connect;

/// The setting holding the default scratch server URL.
pub const SCRATCH_SETTING: &str = "restore_test.scratch_url";

/// A scratch server URL as stored: it parses and holds no password.
pub(crate) fn check_scratch_url(url: &str) -> Result<String> {
    let info = ConnInfo::parse(url)?;
    if info.password.is_some() {
        return Err(
            Error::invalid("the scratch server URL must not hold a password").with_hint(
                "use a passwordless local role, a ~/.pgpass entry, or pass --scratch-url each time",
            ),
        );
    }
    Ok(info.url_without_password())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected_rows: u64,
    pub actual_rows: u64,
    pub checksum_matches: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreTestReport {
    pub backup_id: String,
    pub ok: bool,
    pub scratch: String,
    /// The throw-away database (dropped again).
    pub scratch_database: String,
    pub tables: Vec<TableCheck>,
    /// The first mismatch, naming the table.
    pub first_failure: Option<String>,
    pub duration_ms: u64,
}

const COMPARE_SETTINGS: &str = "SET extra_float_digits = 3; SET DateStyle = ISO; SET IntervalStyle = postgres; \
     SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; SET search_path = ''";

/// Entries of the archives that make the scratch database a new project.
fn platform_entries(toc: &Toc, superuser: bool, available: &HashSet<String>) -> BTreeSet<i32> {
    let classified = platform::classify(toc);
    let mut keep: BTreeSet<i32> = toc
        .entries
        .iter()
        .filter(|e| {
            let ext = e.desc == "EXTENSION"
                && available.contains(&e.tag)
                && extension_schema(&e.defn).is_some_and(|s| is_platform_schema(&s));
            let platform = classified.contains_key(&e.dump_id)
                // The user's triggers, policies and rules on platform
                // tables are the restore's to bring back.
                && !matches!(e.desc.as_str(), "TRIGGER" | "POLICY" | "RULE")
                && (superuser || e.desc != "EVENT TRIGGER")
                && e.desc != "EXTENSION";
            e.is_setting() || ext || platform
        })
        .map(|e| e.dump_id)
        .collect();
    // Only what stands on its own: every dependency provisioned too.
    loop {
        let broken: Vec<i32> = toc
            .entries
            .iter()
            .filter(|e| keep.contains(&e.dump_id))
            .filter(|e| {
                e.deps.iter().any(|d| {
                    !keep.contains(d)
                        && toc.get(*d).is_some_and(|x| {
                            !x.is_setting()
                                && !matches!(x.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES")
                        })
                })
            })
            .map(|e| e.dump_id)
            .collect();
        if broken.is_empty() {
            break;
        }
        for b in broken {
            keep.remove(&b);
        }
    }
    keep
}

impl Engine {
    /// The scratch server: the argument, the setting, or a local PostgreSQL.
    /// A missing password comes from ~/.pgpass (PGPASSFILE), as in libpq.
    async fn scratch_url(&self, explicit: Option<String>) -> Result<ConnInfo> {
        let stored: Option<String> = match explicit {
            Some(u) => Some(u),
            None => {
                self.catalog()
                    .call(|c| settings::get(c, SCRATCH_SETTING))
                    .await?
            }
        };
        // Without a setting: a local server, found as libpq finds it
        // (PGHOST/PGPORT/PGUSER, else the local socket or localhost:5432).
        let mut info = ConnInfo::parse(
            stored
                .as_deref()
                .unwrap_or("postgresql:///postgres?sslmode=prefer"),
        )?;
        crate::engine::pg::pgpass::fill(&mut info);
        Ok(info)
    }

    /// Sets the default scratch server for restore tests.
    pub async fn set_scratch_url(&self, url: &str) -> Result<()> {
        let url = check_scratch_url(url)?;
        self.catalog()
            .call(move |c| settings::set(c, SCRATCH_SETTING, &url))
            .await
    }

    /// Restores the backup into a throw-away database and checks it,
    /// reporting progress as a restore does.
    pub async fn restore_test(
        &self,
        backup: &str,
        scratch_url: Option<String>,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
    ) -> Result<RestoreTestReport> {
        self.restore_test_from(backup, scratch_url, None, progress, cancel)
            .await
    }

    /// [`Engine::restore_test`] reading the backup from a destination
    /// (`from`), streaming: no full local copy is made. A test that fails,
    /// or cannot run for a reason other than being cancelled or asked of
    /// an unknown or untestable backup, raises `verification.failed`.
    pub async fn restore_test_from(
        &self,
        backup: &str,
        scratch_url: Option<String>,
        from: Option<String>,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
    ) -> Result<RestoreTestReport> {
        let r = self
            .restore_test_inner(backup, scratch_url, from, progress, cancel)
            .await;
        let problem = match &r {
            Ok(rep) => rep.first_failure.clone(),
            // Asked of nothing testable: the caller hears it, nobody else.
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::Cancelled | ErrorKind::NotFound | ErrorKind::Invalid
                ) =>
            {
                None
            }
            Err(e) => Some(format!("the restore test did not complete: {}", e.message)),
        };
        if let Some(problem) = problem
            && let Ok(rec) = self.backup(backup).await
        {
            // A test that could not finish is a failed one on the dashboard
            // (a finished one recorded its own outcome).
            if r.is_err() {
                let (pid, event) = (
                    rec.project_id.clone(),
                    json!({"backup_id": rec.id, "ok": false, "failure": problem}),
                );
                let _ = self
                    .catalog()
                    .call(move |c| analytics::record(c, pid.as_deref(), "restore_test", &event))
                    .await;
            }
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

    async fn restore_test_inner(
        &self,
        backup: &str,
        scratch_url: Option<String>,
        from: Option<String>,
        progress: RestoreProgressFn,
        cancel: CancellationToken,
    ) -> Result<RestoreTestReport> {
        let started = std::time::Instant::now();
        let test_id = new_id();
        let tell = |phase, sent: u64, total: u64| {
            progress(RestoreProgress::measured(
                &test_id, phase, sent, total, started,
            ));
        };
        tell(RestorePhase::Preparing, 0, 0);
        let (rec, manifest, _) = self.backup_and_manifest(backup, from.as_deref()).await?;
        if manifest
            .file(crate::engine::backup::options::Artifact::Data)
            .is_none()
            || manifest
                .file(crate::engine::backup::options::Artifact::SchemaArchive)
                .is_none()
        {
            return Err(Error::invalid(format!(
                "backup {} has no schema and data to test (type {})",
                rec.id, rec.backup_type
            )));
        }
        let scratch = self.scratch_url(scratch_url).await?;
        let admin = connect::connect(&scratch, None).await.map_err(|e| {
            Error::new(
                e.kind,
                format!(
                    "the scratch server for restore tests is not reachable: {}",
                    e.message
                ),
            )
            .with_hint(
                "pass --scratch-url URL (a PostgreSQL where a throw-away database can be created)",
            )
        })?;
        let row = admin
            .query_one(
                "SELECT ARRAY(SELECT rolname::text FROM pg_roles),
                        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                        ARRAY(SELECT name::text FROM pg_available_extensions)",
                &[],
            )
            .await
            .map_err(|e| Error::connection(format!("the scratch server: {e}")))?;
        let existing: Vec<String> = row.get(0);
        let superuser: bool = row.get::<_, Option<bool>>(1).unwrap_or(false);
        let available: HashSet<String> = row.get::<_, Vec<String>>(2).into_iter().collect();
        let db = format!("supabackup_rt_{}", &test_id.replace('-', "")[20..]);
        let temp = self.data_dir().temp();
        let work = WorkDir::create(temp.join(format!("rtest-{test_id}")))?;
        let work_path = work.path().to_path_buf();
        self.record_test_start(&test_id, &rec.id, &scratch, &db, &work_path)
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote(&db)))
            .await
            .map_err(|e| {
                Error::connection(format!("could not create the scratch database: {e}"))
            })?;
        failpoint::pause_async("rtest.created_db").await;
        // Roles the backup's objects name, as login-less stand-ins; each is
        // recorded before the next, so a crash leaves an exact list.
        let mut created_roles: Vec<String> = Vec::new();
        for r in manifest
            .cluster_roles
            .iter()
            .filter(|r| !existing.contains(r))
        {
            if admin
                .batch_execute(&format!("CREATE ROLE {} NOLOGIN", quote(r)))
                .await
                .is_ok()
            {
                created_roles.push(r.clone());
                let (id, list) = (test_id.clone(), serde_json::to_string(&created_roles)?);
                self.catalog()
                    .call(move |c| {
                        c.execute(
                            "UPDATE restore_tests SET created_roles = ?2 WHERE id = ?1",
                            params![id, list],
                        )?;
                        Ok(())
                    })
                    .await?;
            }
        }
        failpoint::pause_async("rtest.roles").await;
        let mut info = scratch.clone();
        info.dbname = db.clone();
        let outcome = async {
            self.provision_platform(
                &rec.id,
                from.as_deref(),
                &info,
                superuser,
                &available,
                &work_path,
                &cancel,
            )
            .await?;
            failpoint::pause_async("rtest.provisioned").await;
            let req = RestoreRequest {
                backup: rec.id.clone(),
                target: RestoreTarget::Url(String::new()),
                scope: RestoreScope {
                    roles: false,
                    ..Default::default()
                },
                mode: Some(RestoreMode::New),
                allow_drop: Vec::new(),
                confirm: None,
                from: from.clone(),
                jobs: 1,
            };
            let target = Target {
                info: info.clone(),
                project: None,
                label: format!("scratch database {db}"),
            };
            let prepared = self
                .prepare(
                    &req,
                    &target,
                    work_path.join("restore"),
                    PrepareOptions {
                        for_run: true,
                        exact: false,
                    },
                    &cancel,
                )
                .await?;
            if let Some(why) = prepared.refusal() {
                return Err(Error::corrupt(format!(
                    "the backup would not restore into a new project: {why}"
                )));
            }
            self.load(
                &prepared,
                &info,
                Box::new(|_| Ok(())),
                Default::default(),
                &tell,
                cancel.clone(),
            )
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Invalid => {
                    Error::corrupt(format!("the backup did not restore: {}", e.message))
                }
                _ => e,
            })?;
            drop(prepared);
            tell(RestorePhase::Checking, 0, 0);
            let tables = compare_tables(&manifest, &info).await;
            failpoint::pause_async("rtest.compared").await;
            tables
        }
        .await;
        // Always clean the scratch server.
        let cleaned = super::recover::drop_scratch(&scratch, &db, &created_roles)
            .await
            .is_ok();
        let tables = match outcome {
            Ok(t) => t,
            Err(e) => {
                let status = if e.kind == ErrorKind::Cancelled {
                    "cancelled"
                } else {
                    "error"
                };
                self.record_test_end(&test_id, status, cleaned, Some(&e.message))
                    .await?;
                drop(work);
                return Err(e);
            }
        };
        let first_failure = tables
            .iter()
            .find(|t| t.actual_rows != t.expected_rows || !t.checksum_matches)
            .map(|t| {
                if t.actual_rows != t.expected_rows {
                    format!(
                        "table {}: {} rows restored, the backup recorded {}",
                        t.table, t.actual_rows, t.expected_rows
                    )
                } else {
                    format!(
                        "table {}: the restored content differs from the backup's checksum",
                        t.table
                    )
                }
            });
        let report = RestoreTestReport {
            backup_id: rec.id.clone(),
            ok: first_failure.is_none(),
            scratch: scratch.redacted(),
            scratch_database: db.clone(),
            tables,
            first_failure,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.record_test_end(
            &test_id,
            if report.ok { "passed" } else { "failed" },
            cleaned,
            report.first_failure.as_deref(),
        )
        .await?;
        drop(work);
        let (id, ok, pid) = (rec.id.clone(), report.ok, rec.project_id.clone());
        let event = json!({"backup_id": id, "ok": ok, "failure": report.first_failure, "duration_ms": report.duration_ms});
        self.catalog()
            .call(move |c| {
                if ok {
                    c.execute(
                        "UPDATE backups SET verified_restorable_at = ?2 WHERE id = ?1",
                        rusqlite::params![id, now()],
                    )?;
                }
                analytics::record(c, pid.as_deref(), "restore_test", &event)
            })
            .await?;
        Ok(report)
    }

    async fn record_test_start(
        &self,
        id: &str,
        backup_id: &str,
        scratch: &ConnInfo,
        db: &str,
        work: &Path,
    ) -> Result<()> {
        let sealed = match &scratch.password {
            Some(p) => Some(crypto::seal(
                &*self.master_key()?,
                &secret_aad("rtest", id),
                p.expose().as_bytes(),
            )?),
            None => None,
        };
        let (id, backup_id, url, db, work) = (
            id.to_owned(),
            backup_id.to_owned(),
            scratch.url_without_password(),
            db.to_owned(),
            work.display().to_string(),
        );
        self.catalog()
            .call(move |c| {
                c.execute(
                    "INSERT INTO restore_tests (id, backup_id, scratch_url, scratch_secret_nonce, scratch_secret,
                         database, status, work_dir, started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8)",
                    params![
                        id,
                        backup_id,
                        url,
                        sealed.as_ref().map(|s| s.0.to_vec()),
                        sealed.as_ref().map(|s| s.1.clone()),
                        db,
                        work,
                        now()
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn record_test_end(
        &self,
        id: &str,
        status: &str,
        cleaned: bool,
        error: Option<&str>,
    ) -> Result<()> {
        let (id, status, error) = (id.to_owned(), status.to_owned(), error.map(str::to_owned));
        self.catalog()
            .call(move |c| {
                c.execute(
                    "UPDATE restore_tests SET status = ?2, cleaned = ?3, error_message = ?4, completed_at = ?5,
                         work_dir = NULL,
                         scratch_secret_nonce = CASE WHEN ?3 = 1 THEN NULL ELSE scratch_secret_nonce END,
                         scratch_secret = CASE WHEN ?3 = 1 THEN NULL ELSE scratch_secret END
                     WHERE id = ?1",
                    params![id, status, i64::from(cleaned), error, now()],
                )?;
                Ok(())
            })
            .await
    }

    /// Makes the scratch database a new project: the platform entries of
    /// the backup's archives, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn provision_platform(
        &self,
        backup: &str,
        from: Option<&str>,
        info: &ConnInfo,
        superuser: bool,
        available: &HashSet<String>,
        work: &Path,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let archives: Vec<crate::engine::backup::options::Artifact> = {
            let (_, m, _) = self.backup_and_manifest(backup, from).await?;
            [
                crate::engine::backup::options::Artifact::SchemaArchive,
                crate::engine::backup::options::Artifact::PlatformArchive,
            ]
            .into_iter()
            .filter(|a| m.file(*a).is_some())
            .collect()
        };
        let verified = self.verified_backup(backup, from, archives.clone()).await?;
        let dir = WorkDir::create(work.join("platform"))?;
        let tools = {
            let client = connect::connect(info, None).await?;
            let row = client
                .query_one("SELECT current_setting('server_version_num')::int", &[])
                .await
                .map_err(|e| Error::connection(format!("the scratch database: {e}")))?;
            self.client_tools((row.get::<_, i32>(0) / 10000) as u32)
                .await?
        };
        let info = info.clone();
        let cancel = cancel.clone();
        let available = available.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut lists = Vec::new();
            for a in &archives {
                let path = dir.path().join(format!("{}.dump", a.stem()));
                verified.extract(*a, &path)?;
                let toc = archive::read_toc_file(&path)?;
                let keep = platform_entries(&toc, superuser, &available);
                if keep
                    .iter()
                    .all(|id| toc.get(*id).is_some_and(|e| e.is_setting()))
                {
                    continue;
                }
                let list = path.with_extension("list");
                std::fs::write(
                    &list,
                    archive::list_file(toc.entries.iter().filter(|e| keep.contains(&e.dump_id))),
                )
                .map_err(|e| Error::io("write", &list, e))?;
                lists.push((path, list));
            }
            let passfile = PassFile::create(&dir.path().join(".pgpass"), &info)?;
            let run = ToolRun {
                program: &tools.psql,
                args: vec![
                    "-X".into(),
                    "-q".into(),
                    "-v".into(),
                    "ON_ERROR_STOP=1".into(),
                ],
                info: &info,
                passfile: passfile.as_ref().map(|p| p.path()),
            };
            feed(&run, &cancel, Box::new(|_| {}), &mut |stdin| {
                stdin
                    .write_all(b"BEGIN;\nSET client_min_messages = warning;\n")
                    .map_err(|e| Error::connection(format!("psql stopped reading: {e}")))?;
                for (archive, list) in &lists {
                    let mut args = vec![
                        format!("--use-list={}", list.display()),
                        "--file=-".into(),
                        archive.display().to_string(),
                    ];
                    if !superuser {
                        args.insert(0, "--no-owner".into());
                    }
                    let restore = ToolRun {
                        program: &tools.pg_restore,
                        args,
                        info: &info,
                        passfile: None,
                    };
                    let mut guard =
                        SqlGuard::new("the platform part of schema.dump", Policy::Script);
                    let mut failed = None;
                    let r = stream(&restore, &cancel, &mut |b| {
                        guard.push(b, stdin).map_err(|e| {
                            failed = Some(e);
                            std::io::Error::other("refused")
                        })
                    });
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    r?;
                    guard.finish(stdin)?;
                }
                stdin
                    .write_all(b"COMMIT;\n")
                    .map_err(|e| Error::connection(format!("psql stopped reading: {e}")))
            })
            .map_err(|e| {
                Error::new(
                    e.kind,
                    format!(
                        "the new project's platform could not be built in the scratch database: {}",
                        e.message
                    ),
                )
            })
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
    }
}

async fn compare_tables(
    m: &crate::engine::backup::manifest::Manifest,
    info: &ConnInfo,
) -> Result<Vec<TableCheck>> {
    let client = connect::connect(info, None).await?;
    client
        .batch_execute(COMPARE_SETTINGS)
        .await
        .map_err(|e| Error::connection(format!("the scratch database: {e}")))?;
    let mut out = Vec::with_capacity(m.tables.len());
    for t in &m.tables {
        let stream = client
            .copy_out(&format!(
                "COPY {}.{} TO STDOUT",
                quote(&t.schema),
                quote(&t.name)
            ))
            .await
            .map_err(|e| {
                Error::corrupt(format!(
                    "table {}.{} could not be read back: {e}",
                    t.schema, t.name
                ))
            })?;
        let mut stream = std::pin::pin!(stream);
        let mut hasher = MultisetHasher::new(m.row_checksum);
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| Error::connection(format!("reading {}.{}: {e}", t.schema, t.name)))?;
            pending.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(pos) = memchr::memchr(b'\n', &pending[start..]) {
                hasher.add_line(&pending[start..start + pos]);
                start += pos + 1;
            }
            pending.drain(..start);
        }
        if !pending.is_empty() {
            hasher.add_line(&pending);
        }
        out.push(TableCheck {
            table: format!("{}.{}", t.schema, t.name),
            expected_rows: t.rows,
            actual_rows: hasher.count(),
            checksum_matches: hasher.hex() == t.checksum,
        });
    }
    Ok(out)
}
