//! Producing one artifact: a PostgreSQL tool's output through its filter
//! (roles), tap (data) or platform filter (schema, see platform.rs) into
//! the streaming pipeline.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::crypt::FileKey;
use super::dump::{ToolRun, stream};
use super::manifest::{FileEntry, MatviewInfo};
use super::options::{Artifact, BackupOptions};
use super::pipeline::{ArtifactWriter, Counters};
use super::roles::RolesFilter;
use super::tap::{DataTap, RowHash, TapReport, tail_is_complete};
use crate::engine::conninfo::ConnInfo;
use crate::engine::error::{Error, Result};

pub(super) const DATA_HEADER: &str = "-- supabackup data dump: load after roles.sql and schema.sql.\n\
-- Triggers and foreign-key checks are off while loading, as pg_dump's data order needs.\n\
SET session_replication_role = replica;\n\n";

pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The statements appended to data.sql: pg_dump's data-only output leaves
/// materialized views empty, so the ones that held data are refreshed, in
/// dependency order.
pub(super) fn data_trailer(matviews: &[MatviewInfo]) -> String {
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

pub(super) struct ArtifactJob {
    pub(super) artifact: Artifact,
    pub(super) path: PathBuf,
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    /// The data artifact's extra parallel streams (merge.rs), if any.
    pub(super) extra_args: Vec<Vec<String>>,
    pub(super) info: ConnInfo,
    pub(super) passfile: Option<PathBuf>,
    pub(super) opts: BackupOptions,
    pub(super) key: Option<FileKey>,
    pub(super) counters: Arc<Counters>,
    pub(super) current_table: Arc<std::sync::Mutex<Option<String>>>,
    pub(super) matviews: Vec<MatviewInfo>,
    pub(super) cancel: CancellationToken,
    /// Write into the repository (an incremental backup) instead of files.
    pub(super) repo: Option<Arc<crate::engine::repo::Repo>>,
    /// The project's previous snapshot folder (its lists guide deltas).
    pub(super) previous: Option<PathBuf>,
}

/// Where `artifact`'s output goes in `dir`: its file, or (in the
/// repository) its chunk list.
pub(super) fn output_path(
    dir: &Path,
    artifact: Artifact,
    codec: super::options::Codec,
    encrypted: bool,
    in_repo: bool,
) -> PathBuf {
    if in_repo {
        dir.join(crate::engine::repo::chunks::list_name(
            &artifact.file_name(super::options::Codec::None, false),
        ))
    } else {
        dir.join(artifact.file_name(codec, encrypted))
    }
}

impl ArtifactJob {
    fn out_path(&self, dir: &Path, artifact: Artifact) -> PathBuf {
        output_path(
            dir,
            artifact,
            self.opts.codec,
            self.key.is_some(),
            self.repo.is_some(),
        )
    }

    fn writer(&self, path: &Path) -> Result<ArtifactWriter> {
        let level = self.opts.effective_level();
        match &self.repo {
            Some(repo) => {
                let previous = self
                    .previous
                    .as_ref()
                    .zip(path.file_name())
                    .map(|(d, n)| d.join(n));
                ArtifactWriter::create_in_repo(
                    path,
                    repo.clone(),
                    level,
                    &self.counters,
                    previous.as_deref(),
                )
            }
            None => ArtifactWriter::create(
                path,
                self.opts.codec,
                level,
                self.key.as_ref(),
                &self.counters,
            ),
        }
    }

    /// The manifest's entry for a finished output (and its list, in the
    /// repository).
    fn entry(
        &self,
        artifact: Artifact,
        path: &Path,
        written: super::pipeline::Written,
        lists: &mut Vec<crate::engine::backup::manifest::RepoFileRef>,
    ) -> FileEntry {
        let Some(stats) = written.repo.clone() else {
            return file_entry(artifact, path, &self.opts, self.key.is_some(), written);
        };
        let list = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = list.strip_suffix(".chunks").unwrap_or(&list).to_owned();
        lists.push(crate::engine::backup::manifest::RepoFileRef {
            name: name.clone(),
            list,
            list_sha256: stats.list_sha256,
            chunks: stats.chunks,
            new_chunks: stats.new_chunks,
            new_bytes: stats.new_bytes,
        });
        FileEntry {
            artifact,
            name,
            codec: super::options::Codec::None,
            encrypted: false,
            plain_size: written.plain_size,
            stored_size: written.stored_size,
            plain_sha256: written.plain_sha256,
            stored_sha256: written.stored_sha256,
        }
    }
}

pub(super) struct ArtifactDone {
    /// The artifact's file, and for the schema also its archive.
    pub(super) entries: Vec<FileEntry>,
    pub(super) tap: Option<TapReport>,
    pub(super) roles: Vec<String>,
    /// Platform objects left out of schema.sql.
    pub(super) left_out: Vec<String>,
    /// Their dump ids in schema.dump.
    pub(super) left_out_ids: Vec<i32>,
    /// In the repository: the outputs' chunk lists.
    pub(super) lists: Vec<crate::engine::backup::manifest::RepoFileRef>,
}

/// Keeps the last bytes of a stream (for the completion marker).
pub(super) struct Tail(Vec<u8>);

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

pub(super) fn run_artifact(job: ArtifactJob) -> Result<ArtifactDone> {
    let mut writer = job.writer(&job.path)?;
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
    let mut left_out_ids = Vec::new();
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
            let mut tap = DataTap::new(RowHash::CURRENT);
            let current = job.current_table.clone();
            let mut sink = |bytes: &[u8]| {
                tap.observe(bytes);
                if let Ok(mut c) = current.lock() {
                    *c = tap.current_table();
                }
                writer.write_all(bytes)
            };
            if job.extra_args.is_empty() {
                stream(&run, &job.cancel, &mut sink)?;
            } else {
                let mut runs = vec![run.clone()];
                runs.extend(job.extra_args.iter().map(|args| ToolRun {
                    args: args.clone(),
                    ..run.clone()
                }));
                super::merge::merge_streams(&runs, &job.cancel, &mut sink)?;
            }
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
            let toc = crate::engine::pg::archive::read_toc_file(&archive_path)?;
            let platform = super::platform::classify(&toc);
            left_out = super::platform::left_out_summary(&toc, &platform);
            left_out_ids = platform.keys().copied().collect();
            let list = crate::engine::pg::archive::list_file(
                toc.entries
                    .iter()
                    .filter(|e| !platform.contains_key(&e.dump_id)),
            );
            let list_path = job.path.with_extension("list");
            std::fs::write(&list_path, list).map_err(|e| Error::io("write", &list_path, e))?;
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
        .map_err(|e| super::crypt::error_from_io(e, "finish", &job.path))?;
    let mut lists = Vec::new();
    let mut entries = vec![job.entry(job.artifact, &job.path, written, &mut lists)];
    if let Some((artifact, archive)) = archive {
        // The custom archive itself, through the same pipeline.
        let dir = job.path.parent().unwrap_or(Path::new("."));
        let path = job.out_path(dir, artifact);
        let mut w = job.writer(&path)?;
        let mut f = std::fs::File::open(&archive).map_err(|e| Error::io("open", &archive, e))?;
        std::io::copy(&mut f, &mut WriteAdapter(&mut w))
            .map_err(|e| Error::io("write", &path, e))?;
        let written = w
            .finish()
            .map_err(|e| super::crypt::error_from_io(e, "finish", &path))?;
        entries.push(job.entry(artifact, &path, written, &mut lists));
        let _ = std::fs::remove_file(&archive);
    }
    Ok(ArtifactDone {
        entries,
        tap: tap_report,
        roles: roles_kept,
        left_out,
        left_out_ids,
        lists,
    })
}

pub(super) struct WriteAdapter<'a>(&'a mut ArtifactWriter);

impl std::io::Write for WriteAdapter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) fn file_entry(
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

pub(super) fn fsync_dir(path: &Path) {
    crate::engine::paths::fsync_dir(path);
}
