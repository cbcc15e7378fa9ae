//! The automated restore test: restore a backup into a throw-away database
//! on a scratch server, compare every table's row count and content
//! checksum with the manifest (the same order-independent checksum the
//! backup computed from its COPY stream), drop the database, record the
//! outcome on the backup.

use std::path::Path;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::plan::quote;
use crate::engine::Engine;
use crate::engine::backup::dump::{PassFile, ToolRun, feed, stream};
use crate::engine::backup::options::Artifact;
use crate::engine::backup::tap::MultisetHasher;
use crate::engine::backup::toc::select_listing;
use crate::engine::catalog::{analytics, now, settings};
use crate::engine::conninfo::ConnInfo;
use crate::engine::error::{Error, ErrorKind, Result};
use crate::engine::pg::connect;

/// The setting holding the default scratch server URL.
pub const SCRATCH_SETTING: &str = "restore_test.scratch_url";

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

impl Engine {
    /// The scratch server: the argument, the setting, or a local PostgreSQL.
    async fn scratch_url(&self, explicit: Option<String>) -> Result<ConnInfo> {
        if let Some(u) = explicit {
            return ConnInfo::parse(&u);
        }
        let stored: Option<String> = self
            .catalog()
            .call(|c| settings::get(c, SCRATCH_SETTING))
            .await?;
        if let Some(u) = stored {
            return ConnInfo::parse(&u);
        }
        let user = std::env::var("USER").unwrap_or_else(|_| "postgres".into());
        ConnInfo::parse(&format!(
            "postgresql://{user}@localhost:5432/postgres?sslmode=prefer"
        ))
    }

    /// Sets the default scratch server for restore tests.
    pub async fn set_scratch_url(&self, url: &str) -> Result<()> {
        let info = ConnInfo::parse(url)?;
        if info.password.is_some() {
            return Err(Error::invalid("the scratch server URL must not hold a password")
                .with_hint("use a passwordless local role, a ~/.pgpass entry, or pass --scratch-url each time"));
        }
        let url = info.url_without_password();
        self.catalog()
            .call(move |c| settings::set(c, SCRATCH_SETTING, &url))
            .await
    }

    /// Restores the backup into a throw-away database and checks it.
    pub async fn restore_test(
        &self,
        backup: &str,
        scratch_url: Option<String>,
        cancel: CancellationToken,
    ) -> Result<RestoreTestReport> {
        let started = std::time::Instant::now();
        let (rec, mut source) = self.load_source(backup).await?;
        if source.manifest.file(Artifact::Data).is_none()
            || source.manifest.file(Artifact::SchemaArchive).is_none()
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
            .query_one("SELECT current_setting('server_version_num')::int, ARRAY(SELECT rolname::text FROM pg_roles)", &[])
            .await
            .map_err(|e| Error::connection(format!("the scratch server: {e}")))?;
        let major = (row.get::<_, i32>(0) / 10000) as u32;
        let existing: Vec<String> = row.get(1);
        let db = format!(
            "supabackup_rt_{}",
            &crate::engine::catalog::new_id().replace('-', "")[20..]
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote(&db)))
            .await
            .map_err(|e| {
                Error::connection(format!("could not create the scratch database: {e}"))
            })?;
        // Roles the backup's objects name, as login-less stand-ins.
        let mut created_roles = Vec::new();
        for r in source
            .manifest
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
            }
        }
        let mut info = scratch.clone();
        info.dbname = db.clone();
        source.derive_key().await?;
        let work = self.data_dir().temp().join(format!("restore-test-{db}"));
        let outcome = async {
            std::fs::create_dir_all(&work).map_err(|e| Error::io("create", &work, e))?;
            self.load_scratch(&source, &info, major, &work, &cancel)
                .await?;
            compare_tables(&source.manifest, &info).await
        }
        .await;
        let _ = std::fs::remove_dir_all(&work);
        // Always clean the scratch server.
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote(&db)
            ))
            .await;
        for r in &created_roles {
            let _ = admin
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote(r)))
                .await;
        }
        let tables = outcome?;
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
        if let Some(problem) = &report.first_failure {
            let alert = crate::engine::notify::Alert::verification_failed(
                rec.project_id.as_deref(),
                &rec.project_name,
                &rec.id,
                problem,
            );
            self.dispatch_alert(&alert, &crate::engine::notify::Delivery::default())
                .await;
        }
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

    async fn load_scratch(
        &self,
        source: &super::exec::Source,
        info: &ConnInfo,
        major: u32,
        work: &Path,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let (psql, pg_restore) = self.client_tools(major).await?;
        let schema = work.join("schema.dump");
        source.extract(Artifact::SchemaArchive, &schema)?;
        let platform = work.join("platform.dump");
        let has_platform = source.manifest.file(Artifact::PlatformArchive).is_some();
        if has_platform {
            source.extract(Artifact::PlatformArchive, &platform)?;
        }
        // Order: platform schemas, the extensions, the platform's objects,
        // the user's schema, then the data.
        type Pick = fn(&crate::engine::backup::toc::TocEntry<'_>) -> bool;
        let mut steps: Vec<(&Path, Pick)> = Vec::new();
        if has_platform {
            steps.push((&platform, |e| e.kind == "SCHEMA"));
        }
        steps.push((&schema, |e| e.kind == "EXTENSION"));
        if has_platform {
            steps.push((&platform, |e| {
                !matches!(e.kind, "SCHEMA" | "TRIGGER" | "POLICY")
            }));
        }
        // Publication memberships name the platform's publications, which a
        // plain server does not have (and the test checks data only).
        steps.push((&schema, |e| {
            !(matches!(
                e.kind,
                "EXTENSION" | "PUBLICATION TABLE" | "PUBLICATION TABLES IN SCHEMA"
            ) || (e.kind == "COMMENT" && e.rest.starts_with("EXTENSION ")))
        }));
        if has_platform {
            // Triggers and policies on platform tables may call the user's functions.
            steps.push((&platform, |e| matches!(e.kind, "TRIGGER" | "POLICY")));
        }
        let info = info.clone();
        let cancel = cancel.clone();
        let work = work.to_path_buf();
        let steps: Vec<(std::path::PathBuf, Pick)> = steps
            .into_iter()
            .map(|(p, f)| (p.to_path_buf(), f))
            .collect();
        let data = source.open(Artifact::Data)?;
        tokio::task::spawn_blocking(move || -> Result<()> {
            let passfile = PassFile::create(&work.join(".pgpass"), &info)?;
            let run = ToolRun {
                program: &psql.path,
                args: vec![
                    "-X".into(),
                    "-q".into(),
                    "-v".into(),
                    "ON_ERROR_STOP=1".into(),
                ],
                info: &info,
                passfile: passfile.as_ref().map(|p| p.path()),
            };
            let mut data = Some(data);
            feed(&run, &cancel, &mut |stdin| {
                stdin
                    .write_all(b"SET client_min_messages = warning;\n")
                    .map_err(|e| Error::connection(format!("psql stopped reading: {e}")))?;
                for (i, (archive, pick)) in steps.iter().enumerate() {
                    let mut listing = Vec::new();
                    let list_run = ToolRun {
                        program: &pg_restore,
                        args: vec!["--list".into(), archive.display().to_string()],
                        info: &info,
                        passfile: None,
                    };
                    stream(&list_run, &cancel, &mut |b| {
                        listing.extend_from_slice(b);
                        Ok(())
                    })?;
                    let list = select_listing(&String::from_utf8_lossy(&listing), pick);
                    let list_path = work.join(format!("step-{i}.list"));
                    std::fs::write(&list_path, list)
                        .map_err(|e| Error::io("write", &list_path, e))?;
                    let restore = ToolRun {
                        program: &pg_restore,
                        args: vec![
                            "--no-owner".into(),
                            "--no-privileges".into(),
                            format!("--use-list={}", list_path.display()),
                            "--file=-".into(),
                            archive.display().to_string(),
                        ],
                        info: &info,
                        passfile: None,
                    };
                    stream(&restore, &cancel, &mut |b| stdin.write_all(b))?;
                }
                if let Some(mut d) = data.take() {
                    std::io::copy(&mut d, stdin).map_err(|e| {
                        crate::engine::backup::crypt::error_from_io(
                            e,
                            "read",
                            Path::new("data.sql"),
                        )
                    })?;
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(|e| match e.kind {
            ErrorKind::Invalid => {
                Error::corrupt(format!("the backup did not restore: {}", e.message))
            }
            _ => e,
        })
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
        let mut hasher = MultisetHasher::new();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| Error::connection(format!("reading {}.{}: {e}", t.schema, t.name)))?;
            pending.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
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
