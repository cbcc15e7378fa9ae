//! Running a backup: one engine call used by the CLI, the GUI and the
//! scheduler. Roles, schema, data and history are dumped concurrently from
//! one exported snapshot, each through the streaming pipeline into
//! `temp/<id>/`; the folder is renamed into `backups/...` and the catalog row
//! turns `completed` only when everything is complete and fsynced.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::crypt::FileKey;
use super::dump::{PassFile, ToolRun, stream};
use super::manifest::{
    EncryptionInfo, FileEntry, Manifest, MatviewInfo, ObjectSummary, ProjectInfo, Timings, ToolInfo,
};
use super::options::{Artifact, BackupKind, BackupOptions};
use super::pipeline::{ArtifactWriter, Counters};
use super::roles::RolesFilter;
use super::tap::{DataTap, TapReport, tail_is_complete};
use crate::engine::Engine;
use crate::engine::catalog::backups::{self, BackupRecord, NewBackup};
use crate::engine::catalog::{analytics, audit, new_id};
use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, ErrorKind, Result};
use crate::engine::pg::{connect, tools};
use crate::engine::project::Project;
use crate::engine::supabase;

/// Where a backup is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Connecting,
    Dumping,
    Finalizing,
}

/// A progress report, sent a few times a second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupProgress {
    pub backup_id: String,
    pub phase: Phase,
    /// `schema.table` being copied, from the data stream's COPY headers.
    pub current_table: Option<String>,
    /// Plain SQL bytes read from pg_dump so far.
    pub bytes_read: u64,
    /// Bytes written to disk (compressed, encrypted) so far.
    pub bytes_written: u64,
    /// Plain bytes per second since the dumps started.
    pub rate: f64,
    /// The database's size, the estimate the progress is measured against.
    pub estimated_total: Option<u64>,
    pub eta_secs: Option<f64>,
    pub elapsed_secs: f64,
}

pub type ProgressFn = Arc<dyn Fn(BackupProgress) + Send + Sync>;

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Project name, id or ref.
    pub project: String,
    pub options: BackupOptions,
    /// The schedule that started it, if any.
    pub job_id: Option<String>,
}

/// The folder a backup lands in: `backups/<slug>/<YYYY-MM-DD>/<HHMMSS>-<type>-<short-id>/`.
pub fn backup_folder(
    root: &Path,
    slug: &str,
    kind: BackupKind,
    id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> PathBuf {
    let short: String = id
        .chars()
        .filter(|c| *c != '-')
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    root.join(slug)
        .join(at.format("%Y-%m-%d").to_string())
        .join(format!("{}-{}-{short}", at.format("%H%M%S"), kind.as_str()))
}

struct Server {
    version: String,
    major: u32,
    size: i64,
    matviews: Vec<MatviewInfo>,
    has_history: bool,
    has_platform: bool,
    cluster_roles: Vec<String>,
    schemas: Vec<String>,
    objects: Vec<ObjectSummary>,
    snapshot: Option<String>,
    /// Holds the snapshot open until the dumps are done.
    _client: tokio_postgres::Client,
}

/// Matviews in dependency order (a matview after those it reads).
async fn matviews(client: &tokio_postgres::Client) -> Result<Vec<MatviewInfo>> {
    let rows = client
        .query(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relispopulated,
                    COALESCE(ARRAY(
                        SELECT DISTINCT d.refobjid::int8 FROM pg_rewrite r
                        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        JOIN pg_class dc ON dc.oid = d.refobjid AND dc.relkind = 'm'
                        WHERE r.ev_class = c.oid AND d.refobjid <> c.oid), '{}')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'm' ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| Error::connection(format!("could not list materialized views: {e}")))?;
    let mut pending: Vec<(i64, MatviewInfo, Vec<i64>)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                MatviewInfo {
                    schema: r.get(1),
                    name: r.get(2),
                    populated: r.get(3),
                },
                r.get(4),
            )
        })
        .collect();
    let mut done: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut i = 0;
        while i < pending.len() {
            if pending[i].2.iter().all(|d| done.contains(d)) {
                let (oid, mv, _) = pending.remove(i);
                done.push(oid);
                out.push(mv);
            } else {
                i += 1;
            }
        }
        if pending.len() == before {
            // A cycle cannot exist between matviews; keep the rest as listed.
            out.extend(pending.drain(..).map(|(_, mv, _)| mv));
        }
    }
    Ok(out)
}

/// What the catalog holds, for restore previews: tables (with columns),
/// views, sequences, functions (with a digest of the body) and types.
pub(crate) async fn object_summary(client: &tokio_postgres::Client) -> Result<Vec<ObjectSummary>> {
    let rows = client
        .query(
            "SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                        WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' ELSE 'foreign table' END,
                    n.nspname::text, c.relname::text,
                    COALESCE((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
             UNION ALL
             SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
                    n.nspname::text, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                    md5(COALESCE(p.prosrc, ''))
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
             UNION ALL
             SELECT 'type', n.nspname::text, t.typname::text, t.typtype::text
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
             ORDER BY 2, 1, 3",
            &[],
        )
        .await
        .map_err(|e| Error::connection(format!("could not summarize the catalog: {e}")))?;
    Ok(rows
        .iter()
        .map(|r| ObjectSummary {
            kind: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            signature: r.get(3),
        })
        .filter(|o| !o.schema.starts_with("pg_") && o.schema != "information_schema")
        .collect())
}

async fn inspect(info: &ConnInfo) -> Result<(Server, Vec<String>)> {
    let client = connect::connect(info, None).await?;
    let mut warnings = Vec::new();
    // One snapshot for every dump of this backup, so they agree; the
    // queries below read it too.
    let snapshot = match client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
    {
        Ok(()) => match client.query_one("SELECT pg_export_snapshot()", &[]).await {
            Ok(r) => Some(r.get::<_, String>(0)),
            Err(e) => {
                warnings.push(format!("could not export a snapshot ({e}); the dumps may see slightly different moments"));
                let _ = client.batch_execute("ROLLBACK").await;
                None
            }
        },
        Err(e) => {
            warnings.push(format!("could not open a snapshot transaction ({e})"));
            None
        }
    };
    let platform: Vec<String> = PLATFORM_ARCHIVE_SCHEMAS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    pg_database_size(current_database()),
                    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'supabase_migrations'),
                    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ANY($1)),
                    ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1),
                    ARRAY(SELECT nspname::text FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1)",
            &[&platform],
        )
        .await
        .map_err(|e| Error::connection(format!("could not read the server version: {e}")))?;
    let mvs = matviews(&client).await?;
    let objects = object_summary(&client).await?;
    let version_num: i32 = row.get(1);
    Ok((
        Server {
            version: row.get(0),
            major: (version_num / 10000) as u32,
            size: row.get(2),
            matviews: mvs,
            has_history: row.get(3),
            has_platform: row.get(4),
            cluster_roles: row.get(5),
            schemas: row.get(6),
            objects,
            snapshot,
            _client: client,
        },
        warnings,
    ))
}

/// The pg_dump arguments for one artifact.
fn dump_args(
    artifact: Artifact,
    opts: &BackupOptions,
    info: &ConnInfo,
    snapshot: Option<&str>,
    all_schemas: &[String],
) -> Vec<String> {
    let mut args = vec![
        "--quote-all-identifiers".to_owned(),
        "--no-password".to_owned(),
    ];
    if artifact == Artifact::Roles {
        args.extend([
            "--roles-only".to_owned(),
            "--no-role-passwords".to_owned(),
            format!("--database={}", info.dbname),
        ]);
        return args;
    }
    if let Some(s) = snapshot {
        args.push(format!("--snapshot={s}"));
    }
    match artifact {
        Artifact::Schema => {
            args.push("--schema-only".into());
            if opts.schemas.is_empty() {
                for s in supabase::MANAGED_SCHEMAS {
                    args.push(format!("--exclude-schema={s}"));
                }
                args.push("--exclude-schema=*timescaledb_*".into());
            } else {
                // Every other schema is excluded (rather than these
                // included), so database-wide objects that reach into the
                // chosen schemas — publication memberships — stay in.
                for s in all_schemas
                    .iter()
                    .filter(|s| !opts.schemas.contains(s) || supabase::is_managed_schema(s))
                {
                    args.push(format!("--exclude-schema={s}"));
                }
            }
        }
        Artifact::Data => {
            args.push("--data-only".into());
            if opts.schemas.is_empty() {
                for s in supabase::MANAGED_SCHEMAS
                    .iter()
                    .filter(|s| !supabase::MANAGED_WITH_USER_DATA.contains(s))
                {
                    args.push(format!("--exclude-schema={s}"));
                }
                args.push("--exclude-schema=*timescaledb_*".into());
            } else {
                for s in &opts.schemas {
                    args.push(format!("--schema={s}"));
                }
            }
            // The platform's own migration bookkeeping exists in every project.
            for t in supabase::PLATFORM_BOOKKEEPING_TABLES {
                args.push(format!("--exclude-table-data={t}"));
            }
        }
        Artifact::History => {
            args.push("--schema=supabase_migrations".into());
        }
        Artifact::PlatformArchive => {
            args.push("--schema-only".into());
            for s in PLATFORM_ARCHIVE_SCHEMAS {
                args.push(format!("--schema={s}"));
            }
        }
        Artifact::Roles | Artifact::SchemaArchive => {}
    }
    if !matches!(artifact, Artifact::History | Artifact::PlatformArchive) {
        for t in &opts.exclude_tables {
            args.push(format!("--exclude-table-data={t}"));
        }
    }
    args
}

/// The platform schemas kept as DDL in `platform.dump` (when present).
pub const PLATFORM_ARCHIVE_SCHEMAS: &[&str] =
    &["auth", "storage", "supabase_functions", "extensions"];

const DATA_HEADER: &str = "-- supabackup data dump: load after roles.sql and schema.sql.\n\
-- Triggers and foreign-key checks are off while loading, as pg_dump's data order needs.\n\
SET session_replication_role = replica;\n\n";

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The statements appended to data.sql: pg_dump's data-only output leaves
/// materialized views empty, so the ones that held data are refreshed, in
/// dependency order.
fn data_trailer(matviews: &[MatviewInfo]) -> String {
    let mut out = String::new();
    let populated: Vec<&MatviewInfo> = matviews.iter().filter(|m| m.populated).collect();
    if !populated.is_empty() {
        out.push_str("\n-- supabackup: materialized views that held data at backup time\n");
        out.push_str("SET session_replication_role = DEFAULT;\n");
        for m in populated {
            out.push_str(&format!(
                "REFRESH MATERIALIZED VIEW {}.{};\n",
                quote_ident(&m.schema),
                quote_ident(&m.name)
            ));
        }
    }
    out.push_str("\n-- supabackup data dump complete\n");
    out
}

struct ArtifactJob {
    artifact: Artifact,
    path: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    info: ConnInfo,
    passfile: Option<PathBuf>,
    opts: BackupOptions,
    key: Option<FileKey>,
    counters: Arc<Counters>,
    current_table: Arc<std::sync::Mutex<Option<String>>>,
    matviews: Vec<MatviewInfo>,
    cancel: CancellationToken,
}

struct ArtifactDone {
    /// The artifact's file, and for the schema also its archive.
    entries: Vec<FileEntry>,
    tap: Option<TapReport>,
    roles: Vec<String>,
    /// Platform objects left out of schema.sql.
    left_out: Vec<String>,
}

/// Keeps the last bytes of a stream (for the completion marker).
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        const KEEP: usize = 4096;
        self.0
            .extend_from_slice(&bytes[bytes.len().saturating_sub(KEEP)..]);
        if self.0.len() > KEEP {
            let cut = self.0.len() - KEEP;
            self.0.drain(..cut);
        }
    }
}

fn run_artifact(job: ArtifactJob) -> Result<ArtifactDone> {
    let level = job.opts.effective_level();
    let mut writer = ArtifactWriter::create(
        &job.path,
        job.opts.codec,
        level,
        job.key.as_ref(),
        &job.counters,
    )?;
    let run = ToolRun {
        program: &job.program,
        args: job.args.clone(),
        info: &job.info,
        passfile: job.passfile.as_deref(),
    };
    let mut tail = Tail(Vec::new());
    let mut roles_kept = Vec::new();
    let mut tap_report = None;
    let mut left_out = Vec::new();
    // A custom archive to store next to the artifact (schema) or as it (platform).
    let mut archive: Option<(Artifact, PathBuf)> = None;
    match job.artifact {
        Artifact::Roles => {
            let mut filter = RolesFilter::new();
            stream(&run, &job.cancel, &mut |bytes| {
                let out = filter.push(bytes);
                tail.push(&out);
                writer.write_all(&out)
            })?;
            roles_kept = filter.kept_roles().to_vec();
            let rest = filter.finish();
            tail.push(&rest);
            writer
                .write_all(&rest)
                .map_err(|e| Error::io("write", &job.path, e))?;
        }
        Artifact::Data => {
            writer
                .write_all(DATA_HEADER.as_bytes())
                .map_err(|e| Error::io("write", &job.path, e))?;
            let mut tap = DataTap::new();
            let current = job.current_table.clone();
            stream(&run, &job.cancel, &mut |bytes| {
                tap.observe(bytes);
                if let Ok(mut c) = current.lock() {
                    *c = tap.current_table();
                }
                writer.write_all(bytes)
            })?;
            let report = tap.finish();
            if !report.complete {
                return Err(Error::corrupt(
                    "pg_dump's data output ended without its completion marker",
                ));
            }
            writer
                .write_all(data_trailer(&job.matviews).as_bytes())
                .map_err(|e| Error::io("write", &job.path, e))?;
            tap_report = Some(report);
        }
        Artifact::Schema => {
            // pg_dump → custom archive → listing without platform objects →
            // pg_restore writes the plain SQL (see toc.rs).
            let archive_path = job.path.with_extension("archive");
            let mut dump_args = job.args.clone();
            dump_args.push("--format=custom".into());
            dump_args.push("--compress=0".into());
            dump_args.push(format!("--file={}", archive_path.display()));
            let dump = ToolRun {
                args: dump_args,
                ..run
            };
            stream(&dump, &job.cancel, &mut |_| Ok(()))?;
            let pg_restore = job
                .program
                .parent()
                .map(|d| d.join("pg_restore"))
                .filter(|p| p.is_file())
                .ok_or_else(|| {
                    Error::tool(format!(
                        "pg_restore is missing next to {}",
                        job.program.display()
                    ))
                })?;
            let mut listing = Vec::new();
            let list = ToolRun {
                program: &pg_restore,
                args: vec!["--list".into(), archive_path.display().to_string()],
                info: &job.info,
                passfile: None,
            };
            stream(&list, &job.cancel, &mut |bytes| {
                listing.extend_from_slice(bytes);
                Ok(())
            })?;
            let (filtered, left) = super::toc::filter_listing(&String::from_utf8_lossy(&listing));
            left_out = left;
            let list_path = job.path.with_extension("list");
            std::fs::write(&list_path, filtered).map_err(|e| Error::io("write", &list_path, e))?;
            let restore = ToolRun {
                program: &pg_restore,
                args: vec![
                    format!("--use-list={}", list_path.display()),
                    "--file=-".into(),
                    archive_path.display().to_string(),
                ],
                info: &job.info,
                passfile: None,
            };
            stream(&restore, &job.cancel, &mut |bytes| {
                tail.push(bytes);
                writer.write_all(bytes)
            })?;
            let _ = std::fs::remove_file(&list_path);
            archive = Some((Artifact::SchemaArchive, archive_path));
        }
        Artifact::PlatformArchive | Artifact::SchemaArchive => {
            let archive_path = job.path.with_extension("archive");
            let mut dump_args = job.args.clone();
            dump_args.push("--format=custom".into());
            dump_args.push("--compress=0".into());
            dump_args.push(format!("--file={}", archive_path.display()));
            stream(
                &ToolRun {
                    args: dump_args,
                    ..run
                },
                &job.cancel,
                &mut |_| Ok(()),
            )?;
            let mut f = std::fs::File::open(&archive_path)
                .map_err(|e| Error::io("open", &archive_path, e))?;
            std::io::copy(&mut f, &mut WriteAdapter(&mut writer))
                .map_err(|e| Error::io("write", &job.path, e))?;
            let _ = std::fs::remove_file(&archive_path);
        }
        Artifact::History => {
            stream(&run, &job.cancel, &mut |bytes| {
                tail.push(bytes);
                writer.write_all(bytes)
            })?;
        }
    }
    if let Some(marker) = job.artifact.completion_marker()
        && job.artifact != Artifact::Data
        && !tail_is_complete(&tail.0, marker)
    {
        return Err(Error::corrupt(format!(
            "{}'s output ended without its completion marker",
            job.program.display()
        )));
    }
    let written = writer
        .finish()
        .map_err(|e| Error::io("finish", &job.path, e))?;
    let mut entries = vec![file_entry(
        job.artifact,
        &job.path,
        &job.opts,
        job.key.is_some(),
        written,
    )];
    if let Some((artifact, archive)) = archive {
        // The custom archive itself, through the same pipeline.
        let path = job
            .path
            .with_file_name(artifact.file_name(job.opts.codec, job.key.is_some()));
        let mut w = ArtifactWriter::create(
            &path,
            job.opts.codec,
            job.opts.effective_level(),
            job.key.as_ref(),
            &job.counters,
        )?;
        let mut f = std::fs::File::open(&archive).map_err(|e| Error::io("open", &archive, e))?;
        std::io::copy(&mut f, &mut WriteAdapter(&mut w))
            .map_err(|e| Error::io("write", &path, e))?;
        let written = w.finish().map_err(|e| Error::io("finish", &path, e))?;
        entries.push(file_entry(
            artifact,
            &path,
            &job.opts,
            job.key.is_some(),
            written,
        ));
        let _ = std::fs::remove_file(&archive);
    }
    Ok(ArtifactDone {
        entries,
        tap: tap_report,
        roles: roles_kept,
        left_out,
    })
}

struct WriteAdapter<'a>(&'a mut ArtifactWriter);

impl std::io::Write for WriteAdapter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn file_entry(
    artifact: Artifact,
    path: &Path,
    opts: &BackupOptions,
    encrypted: bool,
    written: super::pipeline::Written,
) -> FileEntry {
    FileEntry {
        artifact,
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        codec: opts.codec,
        encrypted,
        plain_size: written.plain_size,
        stored_size: written.stored_size,
        plain_sha256: written.plain_sha256,
        stored_sha256: written.stored_sha256,
    }
}

fn fsync_dir(path: &Path) {
    if let Ok(d) = std::fs::File::open(path) {
        let _ = d.sync_all();
    }
}

impl Engine {
    /// The stored backup-encryption passphrase.
    pub async fn backup_passphrase(&self) -> Result<Option<Secret>> {
        let key = self.master_key()?;
        self.catalog()
            .call(move |c| {
                crate::engine::vault::get_secret(
                    c,
                    &key,
                    None,
                    crate::engine::vault::SecretKind::BackupPassphrase,
                )
            })
            .await
    }

    /// Stores the passphrase backup files are encrypted with. Keep a copy
    /// somewhere safe: restoring on another machine needs it.
    pub async fn set_backup_passphrase(&self, passphrase: Secret) -> Result<()> {
        if passphrase.expose().chars().count() < crate::engine::vault::MIN_PASSPHRASE_LEN {
            return Err(Error::invalid(format!(
                "the backup passphrase must have at least {} characters",
                crate::engine::vault::MIN_PASSPHRASE_LEN
            )));
        }
        let key = self.master_key()?;
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let tx = c.transaction()?;
                crate::engine::vault::put_secret(
                    &tx,
                    &key,
                    None,
                    crate::engine::vault::SecretKind::BackupPassphrase,
                    &passphrase,
                )?;
                audit::append(&tx, &actor, "vault.backup_passphrase_set", None, &json!({}))?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// Runs a backup to completion (or failure, or cancellation), reporting
    /// progress through `progress`. The catalog row goes
    /// `running → completed | failed | cancelled`.
    pub async fn run_backup(
        &self,
        req: BackupRequest,
        progress: ProgressFn,
        cancel: CancellationToken,
    ) -> Result<BackupRecord> {
        req.options.validate()?;
        let project = self.project(&req.project).await?;
        let info = self.connection_info(&project).await?;
        self.run_backup_of(project, info, req, progress, cancel)
            .await
    }

    /// Backs up a database given its connection details; `project` names
    /// it (an id of "" means a target outside the catalog, e.g. a URL).
    pub(crate) async fn run_backup_of(
        &self,
        project: Project,
        info: ConnInfo,
        req: BackupRequest,
        progress: ProgressFn,
        cancel: CancellationToken,
    ) -> Result<BackupRecord> {
        req.options.validate()?;
        let passphrase = if req.options.encrypt {
            Some(self.backup_passphrase().await?.ok_or_else(|| {
                Error::auth("encryption is on but no backup passphrase is set")
                    .with_hint("set one with `supabackup vault set-backup-passphrase` (keep a copy: restores elsewhere need it), or back up with --no-encrypt")
            })?)
        } else {
            None
        };
        let id = new_id();
        let started = chrono::Utc::now();
        let folder = backup_folder(
            &self.data_dir().backups(),
            &project.slug,
            req.options.kind,
            &id,
            started,
        );
        let options_json = serde_json::to_string(&req.options)?;
        {
            let id = id.clone();
            let project = project.clone();
            let folder = folder.display().to_string();
            let kind = req.options.kind.as_str();
            let job_id = req.job_id.clone();
            self.catalog()
                .call(move |c| {
                    backups::insert_running(
                        c,
                        &NewBackup {
                            id: &id,
                            project_id: (!project.id.is_empty()).then_some(project.id.as_str()),
                            project_name: &project.name,
                            project_ref: &project.project_ref,
                            job_id: job_id.as_deref(),
                            backup_type: kind,
                            file_path: &folder,
                            metadata: &options_json,
                        },
                    )
                })
                .await?;
        }
        let temp = self.data_dir().temp().join(&id);
        let lock_path = self.data_dir().temp().join(format!("{id}.lock"));
        // Held while the backup runs: start-up recovery skips locked backups.
        let lock =
            std::fs::File::create(&lock_path).map_err(|e| Error::io("create", &lock_path, e))?;
        lock.try_lock()
            .map_err(|e| Error::internal(format!("could not lock {}: {e}", lock_path.display())))?;

        let result = self
            .backup_inner(
                &req,
                &project,
                &info,
                passphrase,
                &id,
                &temp,
                &folder,
                started,
                progress,
                cancel.clone(),
            )
            .await;
        let _ = std::fs::remove_dir_all(&temp);
        let _ = std::fs::remove_file(self.data_dir().temp().join(format!("{id}.pgpass")));
        let outcome = match result {
            Ok(manifest) => {
                let record = self.finish_completed(&id, &manifest).await;
                if record.is_err() {
                    let _ = std::fs::remove_dir_all(&folder);
                }
                record
            }
            Err(e) => {
                let status = if e.kind == ErrorKind::Cancelled {
                    "cancelled"
                } else {
                    "failed"
                };
                let msg = e.message.clone();
                let pid = project.id.clone();
                let kind = req.options.kind.as_str().to_owned();
                let elapsed = (chrono::Utc::now() - started).num_milliseconds();
                let id2 = id.clone();
                let _ = self
                    .catalog()
                    .call(move |c| {
                        backups::mark_ended(c, &id2, status, &msg)?;
                        analytics::record(
                            c,
                            (!pid.is_empty()).then_some(pid.as_str()),
                            "backup",
                            &json!({"backup_id": id2, "status": status, "type": kind, "duration_ms": elapsed, "error": msg}),
                        )
                    })
                    .await;
                Err(e)
            }
        };
        drop(lock);
        let _ = std::fs::remove_file(&lock_path);
        outcome
    }

    async fn finish_completed(&self, id: &str, m: &Manifest) -> Result<BackupRecord> {
        let id = id.to_owned();
        let metadata = serde_json::to_string(m)?;
        let size = m.total_stored() as i64;
        let digest = m.digest();
        let completed = m.timings.completed_at.clone();
        let pid = m.project.id.clone();
        let plain: u64 = m.files.iter().map(|f| f.plain_size).sum();
        let duration = m.timings.duration_ms;
        let event = json!({
            "backup_id": id,
            "status": "completed",
            "type": m.options.kind.as_str(),
            "duration_ms": duration,
            "stored_bytes": size,
            "plain_bytes": plain,
            "throughput_bps": if duration > 0 { plain as f64 * 1000.0 / duration as f64 } else { 0.0 },
            "codec": m.options.codec.as_str(),
            "encrypted": m.options.encrypt,
        });
        let actor = self.actor().to_owned();
        let name = m.project.name.clone();
        self.catalog()
            .call(move |c| {
                let tx = c.transaction()?;
                backups::mark_completed(&tx, &id, size, &digest, &metadata, &completed)?;
                analytics::record(&tx, pid.as_deref(), "backup", &event)?;
                audit::append(
                    &tx,
                    &actor,
                    "backup.create",
                    Some(&name),
                    &json!({"backup_id": id, "bytes": size}),
                )?;
                let rec = backups::get(&tx, &id)?
                    .ok_or_else(|| Error::internal("backup row vanished"))?;
                tx.commit()?;
                Ok(rec)
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn backup_inner(
        &self,
        req: &BackupRequest,
        project: &Project,
        info: &ConnInfo,
        passphrase: Option<Secret>,
        id: &str,
        temp: &Path,
        folder: &Path,
        started: chrono::DateTime<chrono::Utc>,
        progress: ProgressFn,
        cancel: CancellationToken,
    ) -> Result<Manifest> {
        let clock = Instant::now();
        let report =
            |phase, counters: Option<&Counters>, table: Option<String>, total: Option<u64>| {
                let (read, written) = counters
                    .map(|c| {
                        (
                            c.plain.load(Ordering::Relaxed),
                            c.stored.load(Ordering::Relaxed),
                        )
                    })
                    .unwrap_or((0, 0));
                let elapsed = clock.elapsed().as_secs_f64();
                let rate = if elapsed > 0.0 {
                    read as f64 / elapsed
                } else {
                    0.0
                };
                let eta = total
                    .filter(|t| *t > read && rate > 0.0)
                    .map(|t| (t - read) as f64 / rate);
                progress(BackupProgress {
                    backup_id: id.to_owned(),
                    phase,
                    current_table: table,
                    bytes_read: read,
                    bytes_written: written,
                    rate,
                    estimated_total: total,
                    eta_secs: eta,
                    elapsed_secs: elapsed,
                });
            };
        report(Phase::Connecting, None, None, None);
        let (server, mut warnings) = tokio::select! {
            r = inspect(info) => r?,
            _ = cancel.cancelled() => return Err(Error::cancelled()),
        };
        if info.is_transaction_pooler() {
            return Err(Error::invalid(
                "port 6543 is Supavisor's transaction mode, which breaks pg_dump",
            )
            .with_hint("use the direct connection or the session pooler on port 5432"));
        }
        let pg_bin = self.pg_bin_dir();
        let major = server.major;
        let pg_dump = tokio::task::spawn_blocking(move || {
            tools::find_for_server("pg_dump", major, pg_bin.as_deref())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        let artifacts: Vec<Artifact> = req
            .options
            .artifacts()
            .into_iter()
            .filter(|a| *a != Artifact::History || server.has_history)
            .filter(|a| *a != Artifact::PlatformArchive || server.has_platform)
            .collect();
        let pg_dumpall = match pg_dump.path.parent().map(|d| d.join("pg_dumpall")) {
            Some(p) if p.is_file() => p,
            _ => {
                let pg_bin = self.pg_bin_dir();
                tokio::task::spawn_blocking(move || {
                    tools::find_for_server("pg_dumpall", major, pg_bin.as_deref())
                })
                .await
                .map_err(|e| Error::internal(e.to_string()))??
                .path
            }
        };
        std::fs::create_dir_all(temp).map_err(|e| Error::io("create", temp, e))?;
        let passfile_path = self.data_dir().temp().join(format!("{id}.pgpass"));
        let passfile = PassFile::create(&passfile_path, info)?;
        let key = match passphrase {
            Some(p) => {
                let kdf = self.kdf();
                Some(
                    tokio::task::spawn_blocking(move || FileKey::derive_new(&p, kdf))
                        .await
                        .map_err(|e| Error::internal(e.to_string()))??,
                )
            }
            None => None,
        };
        let counters = Arc::new(Counters::default());
        let current_table = Arc::new(std::sync::Mutex::new(None::<String>));
        let stop = cancel.child_token();
        let covered_matviews: Vec<MatviewInfo> = server
            .matviews
            .iter()
            .filter(|m| {
                if req.options.schemas.is_empty() {
                    supabase::data_dump_covers(&m.schema)
                } else {
                    req.options.schemas.contains(&m.schema)
                }
            })
            .cloned()
            .collect();
        let mut handles = Vec::new();
        for artifact in &artifacts {
            let job = ArtifactJob {
                artifact: *artifact,
                path: temp.join(artifact.file_name(req.options.codec, key.is_some())),
                program: if *artifact == Artifact::Roles {
                    pg_dumpall.clone()
                } else {
                    pg_dump.path.clone()
                },
                args: dump_args(
                    *artifact,
                    &req.options,
                    info,
                    server.snapshot.as_deref(),
                    &server.schemas,
                ),
                info: info.clone(),
                passfile: passfile.as_ref().map(|p| p.path().to_path_buf()),
                opts: req.options.clone(),
                key: key.clone(),
                counters: counters.clone(),
                current_table: current_table.clone(),
                matviews: covered_matviews.clone(),
                cancel: stop.clone(),
            };
            let stop = stop.clone();
            handles.push(tokio::task::spawn_blocking(move || {
                let r = run_artifact(job);
                if r.is_err() {
                    stop.cancel();
                }
                r
            }));
        }
        let total = Some(server.size.max(0) as u64);
        let mut joined = Box::pin(futures_join_all(handles));
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let results = loop {
            tokio::select! {
                r = &mut joined => break r,
                _ = ticker.tick() => {
                    let table = current_table.lock().ok().and_then(|c| c.clone());
                    report(Phase::Dumping, Some(&counters), table, total);
                }
            }
        };
        drop(passfile);
        let mut done = Vec::new();
        let mut first_error: Option<Error> = None;
        for r in results {
            match r {
                Ok(Ok(d)) => done.push(d),
                Ok(Err(e)) => {
                    // The real cause beats the cancellations it triggered.
                    let replace = match &first_error {
                        None => true,
                        Some(f) => f.kind == ErrorKind::Cancelled && e.kind != ErrorKind::Cancelled,
                    };
                    if replace {
                        first_error = Some(e);
                    }
                }
                Err(e) => first_error = Some(Error::internal(format!("a dump task failed: {e}"))),
            }
        }
        if cancel.is_cancelled() {
            return Err(Error::cancelled());
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        report(Phase::Finalizing, Some(&counters), None, total);
        done.sort_by_key(|d| d.entries.first().map(|e| e.artifact));
        let tap = done.iter().find_map(|d| d.tap.clone()).unwrap_or_default();
        let roles = done.iter().flat_map(|d| d.roles.clone()).collect();
        let left_out: Vec<String> = done.iter().flat_map(|d| d.left_out.clone()).collect();
        if server.snapshot.is_none() {
            warnings.push("dumps ran without a shared snapshot".into());
        }
        let completed = chrono::Utc::now();
        let manifest = Manifest {
            format: super::manifest::FORMAT_NAME.into(),
            version: 1,
            id: id.to_owned(),
            status: "completed".into(),
            project: ProjectInfo {
                id: (!project.id.is_empty()).then(|| project.id.clone()),
                name: project.name.clone(),
                project_ref: project.project_ref.clone(),
                slug: project.slug.clone(),
            },
            options: req.options.clone(),
            tool: format!("supabackup {}", env!("CARGO_PKG_VERSION")),
            pg_dump: ToolInfo {
                path: pg_dump.path.display().to_string(),
                version: pg_dump.version.clone(),
            },
            server_version: server.version.clone(),
            server_major: server.major,
            database_size_bytes: server.size,
            snapshot: server.snapshot.clone(),
            files: done.into_iter().flat_map(|d| d.entries).collect(),
            tables: tap.tables,
            sequences: tap.sequences,
            matviews: if artifacts.contains(&Artifact::Data) {
                covered_matviews
            } else {
                Vec::new()
            },
            roles,
            cluster_roles: server.cluster_roles.clone(),
            objects: server.objects.clone(),
            left_out,
            timings: Timings {
                started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                completed_at: completed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                duration_ms: (completed - started).num_milliseconds().max(0) as u64,
            },
            warnings,
            encryption: key.as_ref().map(|k| EncryptionInfo {
                algorithm: "AES-256-GCM STREAM (docs/FORMAT.md)".into(),
                kdf: format!(
                    "argon2id m={} t={} p={}",
                    k.params().m_cost,
                    k.params().t_cost,
                    k.params().p_cost
                ),
            }),
        };
        manifest.write(temp)?;
        fsync_dir(temp);
        let parent = folder
            .parent()
            .ok_or_else(|| Error::internal("backup folder has no parent"))?;
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        std::fs::rename(temp, folder)
            .map_err(|e| Error::io("move the finished backup into", folder, e))?;
        fsync_dir(parent);
        drop(server);
        Ok(manifest)
    }

    /// Start-up recovery: backups a crash left `running` become `failed
    /// (interrupted)` and their temporary files go — unless their folder is
    /// complete (the crash hit between the rename and the catalog update),
    /// or another live process still holds their lock.
    pub async fn recover_interrupted(&self) -> Result<Vec<String>> {
        let temp_root = self.data_dir().temp();
        let engine = self.clone();
        let rows = self.catalog().call(|c| backups::unfinished(c)).await?;
        let mut recovered = Vec::new();
        for row in rows {
            let lock_path = temp_root.join(format!("{}.lock", row.id));
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock_path)
                && f.try_lock().is_err()
            {
                continue; // a live process owns it
            }
            let folder = row.file_path.clone().map(PathBuf::from);
            let complete = folder
                .as_ref()
                .and_then(|f| Manifest::read(f).ok())
                .filter(|m| m.id == row.id && m.status == "completed");
            let _ = std::fs::remove_dir_all(temp_root.join(&row.id));
            let _ = std::fs::remove_file(temp_root.join(format!("{}.pgpass", row.id)));
            let _ = std::fs::remove_file(&lock_path);
            match complete {
                Some(m) => {
                    engine.finish_completed(&row.id, &m).await?;
                }
                None => {
                    let id = row.id.clone();
                    engine
                        .catalog()
                        .call(move |c| {
                            backups::mark_ended(
                                c,
                                &id,
                                "failed",
                                "interrupted: supabackup stopped while the backup ran",
                            )
                        })
                        .await?;
                }
            }
            recovered.push(row.id);
        }
        Ok(recovered)
    }
}

/// Awaits every handle, in order.
async fn futures_join_all<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<std::result::Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}
