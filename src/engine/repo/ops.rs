//! The engine's calls on the repository: open it, collect garbage, check
//! it, and export any backup's plain files for stock tools.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::Repo;
use super::gc::{CheckReport, GcReport};
use crate::engine::Engine;
use crate::engine::backup::options::{Artifact, Codec};
use crate::engine::catalog::audit;
use crate::engine::error::{Error, Result};

/// What `export` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    pub backup_id: String,
    pub dir: String,
    pub files: Vec<String>,
    pub bytes: u64,
}

fn join<T>(r: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    r.map_err(|e| Error::internal(e.to_string()))
}

impl Engine {
    /// Opens this machine's repository with the stored backup passphrase.
    pub async fn open_repo(&self) -> Result<Arc<Repo>> {
        let passphrase = self.backup_passphrase().await?.ok_or_else(|| {
            Error::auth("the repository is encrypted and no backup passphrase is set")
                .with_hint("set it with `supabackup vault set-backup-passphrase`")
        })?;
        let root = self.data_dir().repo();
        let repo =
            join(tokio::task::spawn_blocking(move || Repo::open(&root, &passphrase)).await)??;
        Ok(Arc::new(repo))
    }

    /// Garbage collection: removes chunks no snapshot references. With
    /// `wait`, waits for running backups; without, returns `None` when one
    /// holds the repository (the next run collects).
    pub async fn repo_gc(&self, dry_run: bool, wait: bool) -> Result<Option<GcReport>> {
        if !Repo::exists(&self.data_dir().repo()) {
            return Ok(Some(GcReport {
                dry_run,
                ..Default::default()
            }));
        }
        let repo = self.open_repo().await?;
        let backups = self.data_dir().backups();
        let report = join(
            tokio::task::spawn_blocking(move || -> Result<Option<GcReport>> {
                let lock = match repo.try_lock_exclusive()? {
                    Some(l) => l,
                    None if wait => loop {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        if let Some(l) = repo.try_lock_exclusive()? {
                            break l;
                        }
                    },
                    None => return Ok(None),
                };
                let snapshots = super::gc::snapshot_dirs(&backups, &repo.config.id)?;
                let r = super::gc::collect(&repo, &snapshots, dry_run)?;
                drop(lock);
                Ok(Some(r))
            })
            .await,
        )??;
        if let Some(r) = &report
            && !dry_run
        {
            tracing::info!(
                "repository garbage collection: {} snapshots, {} packs deleted, {} repacked, {} bytes freed",
                r.snapshots,
                r.packs_deleted,
                r.packs_repacked,
                r.bytes_freed
            );
            let (actor, body) = (
                self.actor().to_owned(),
                json!({"packs_deleted": r.packs_deleted, "packs_repacked": r.packs_repacked, "bytes_freed": r.bytes_freed}),
            );
            self.catalog()
                .call(move |c| audit::append(c, &actor, "repo.gc", None, &body))
                .await?;
        }
        Ok(report)
    }

    /// Reads every chunk of the repository.
    pub async fn repo_check(&self) -> Result<CheckReport> {
        let repo = self.open_repo().await?;
        join(
            tokio::task::spawn_blocking(move || {
                let _lock = repo.lock_shared()?;
                super::gc::check(&repo)
            })
            .await,
        )?
    }

    /// Writes a backup's `roles.sql`, `schema.sql`, `data.sql` and
    /// `history.sql` (plain, or `.sql.zst` with `codec` zstd) and its
    /// `schema.dump` custom archive (for pg_restore -L) into `dir`,
    /// for restoring with psql alone. Each file is checked against the
    /// manifest while it is written and renamed into place only then.
    pub async fn export_backup(
        &self,
        backup: &str,
        dir: &Path,
        codec: Codec,
        from: Option<&str>,
    ) -> Result<ExportReport> {
        if codec == Codec::Xz {
            return Err(Error::invalid("export writes plain SQL or zstd"));
        }
        const WANTED: [Artifact; 5] = [
            Artifact::Roles,
            Artifact::Schema,
            Artifact::SchemaArchive,
            Artifact::Data,
            Artifact::History,
        ];
        // Read the way a restore reads: checked against the manifest and
        // the catalog first, each stream's digests again as it is decoded.
        let (_, manifest, _) = self.backup_and_manifest(backup, from).await?;
        let present: Vec<Artifact> = WANTED
            .into_iter()
            .filter(|a| manifest.file(*a).is_some())
            .collect();
        let verified = self.verified_backup(backup, from, present.clone()).await?;
        let rec = self.backup(backup).await?;
        let dir = dir.to_path_buf();
        let id = rec.id.clone();
        let report = join(
            tokio::task::spawn_blocking(move || -> Result<ExportReport> {
                crate::engine::paths::create_dirs_synced(&dir)?;
                let mut out = ExportReport {
                    backup_id: id,
                    dir: dir.display().to_string(),
                    files: Vec::new(),
                    bytes: 0,
                };
                for a in present {
                    // The custom archive stays plain: pg_restore reads it as is.
                    let (name, codec) = match a {
                        Artifact::SchemaArchive => ("schema.dump".to_owned(), Codec::None),
                        a => (format!("{}.sql{}", a.stem(), codec.extension()), codec),
                    };
                    let target = dir.join(&name);
                    if target.exists() {
                        return Err(Error::conflict(format!(
                            "{} already exists: export into an empty folder",
                            target.display()
                        )));
                    }
                    let mut plain = verified.open(a)?;
                    let mut tmp = tempfile::Builder::new()
                        .prefix(&format!(".{name}."))
                        .tempfile_in(&dir)
                        .map_err(|e| Error::io("create a file in", &dir, e))?;
                    let written = copy_encoded(&mut plain, tmp.as_file_mut(), codec)
                        .map_err(|e| plain.read_error(e))?;
                    plain.finish()?;
                    tmp.as_file()
                        .sync_all()
                        .map_err(|e| Error::io("sync", &target, e))?;
                    tmp.persist(&target)
                        .map_err(|e| Error::io("rename into", &target, e.error))?;
                    out.files.push(name);
                    out.bytes += written;
                }
                crate::engine::paths::fsync_dir(&dir);
                Ok(out)
            })
            .await,
        )??;
        let (actor, body) = (
            self.actor().to_owned(),
            json!({"backup_id": report.backup_id, "dir": report.dir, "files": report.files}),
        );
        let name = rec.project_name.clone();
        self.catalog()
            .call(move |c| audit::append(c, &actor, "backup.export", Some(&name), &body))
            .await?;
        Ok(report)
    }
}

/// Copies plain bytes into `out`, zstd-compressed when asked; returns the
/// bytes written.
fn copy_encoded(
    plain: &mut impl Read,
    out: &mut std::fs::File,
    codec: Codec,
) -> std::io::Result<u64> {
    match codec {
        Codec::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(CountingWriter::new(out), 3)?;
            enc.include_checksum(true)?;
            std::io::copy(plain, &mut enc)?;
            Ok(enc.finish()?.count)
        }
        _ => std::io::copy(plain, out),
    }
}

struct CountingWriter<'a> {
    inner: &'a mut std::fs::File,
    count: u64,
}

impl<'a> CountingWriter<'a> {
    fn new(inner: &'a mut std::fs::File) -> Self {
        CountingWriter { inner, count: 0 }
    }
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
