//! Versioning: a project's backups as a timeline, and the difference
//! between any two backups (of one project or of two: prod against
//! staging) computed from their own files — schema objects with a unified
//! diff of each changed definition, rows added/removed/changed per table,
//! roles — with no database involved.

pub mod diff;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::diff::{RolesDiff, SchemaDiff, TableDiff};
use crate::engine::Engine;
use crate::engine::backup::files::BackupFiles;
use crate::engine::backup::manifest::Manifest;
use crate::engine::backup::options::Artifact;
use crate::engine::backup::pipeline::open_artifact_reader;
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, Result};

/// One backup on a project's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub id: String,
    pub created_at: String,
    pub backup_type: String,
    pub status: String,
    /// Bytes it stores (for an incremental backup: what it added).
    pub stored_bytes: Option<i64>,
    pub verified_at: Option<String>,
    pub verified_restorable_at: Option<String>,
}

/// What changed from backup `a` to backup `b`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackupDiff {
    pub a: String,
    pub b: String,
    pub a_created_at: String,
    pub b_created_at: String,
    pub schema: SchemaDiff,
    /// Only tables whose rows differ.
    pub tables: Vec<TableDiff>,
    /// Tables with equal rows on both sides.
    pub unchanged_tables: usize,
    pub roles: RolesDiff,
    /// Parts that could not be compared (e.g. one side has no data).
    pub notes: Vec<String>,
}

impl BackupDiff {
    pub fn is_empty(&self) -> bool {
        self.schema.added.is_empty()
            && self.schema.removed.is_empty()
            && self.schema.changed.is_empty()
            && self.tables.is_empty()
            && self.roles.added.is_empty()
            && self.roles.removed.is_empty()
            && self.roles.changed.is_empty()
    }
}

/// One side of a diff: a backup's manifest and files.
struct Side {
    manifest: Manifest,
    files: std::sync::Arc<dyn BackupFiles>,
}

impl Side {
    /// The plain stream of `artifact`, decoded, or `None` when the backup
    /// has none.
    fn open(
        &self,
        artifact: Artifact,
        passphrase: Option<&Secret>,
    ) -> Result<Option<Box<dyn std::io::Read + Send>>> {
        let Some(f) = self.manifest.file(artifact) else {
            return Ok(None);
        };
        let stat = self.files.stat(&f.name)?.ok_or_else(|| {
            Error::corrupt(format!("{}/{} is missing", self.files.label(), f.name))
        })?;
        let source = self.files.open(&f.name, Some(&stat))?;
        let label = PathBuf::from(format!("{}/{}", self.files.label(), f.name));
        let (r, _) = open_artifact_reader(source, &label, f.codec, f.encrypted, passphrase, None)?;
        Ok(Some(r))
    }
}

impl Engine {
    /// A project's backups, oldest first.
    pub async fn backup_history(&self, project: &str) -> Result<Vec<HistoryEntry>> {
        let mut list = self.list_backups(Some(project), usize::MAX >> 1).await?;
        list.reverse();
        Ok(list
            .into_iter()
            .map(|b| HistoryEntry {
                id: b.id,
                created_at: b.created_at,
                backup_type: b.backup_type,
                status: b.status,
                stored_bytes: b.file_size,
                verified_at: b.verified_at,
                verified_restorable_at: b.verified_restorable_at,
            })
            .collect())
    }

    /// The difference from backup `a` to backup `b`, read from their files
    /// (each stream checked as it is read: a damaged file fails the diff).
    pub async fn diff_backups(
        &self,
        a: &str,
        b: &str,
        cancel: CancellationToken,
    ) -> Result<BackupDiff> {
        let (ra, ma, fa) = self.backup_and_manifest(a, None).await?;
        let (rb, mb, fb) = self.backup_and_manifest(b, None).await?;
        let encrypted = ma.files.iter().chain(&mb.files).any(|f| f.encrypted);
        let passphrase = if encrypted {
            Some(self.backup_passphrase().await?.ok_or_else(|| {
                Error::auth("the backups are encrypted and no backup passphrase is set")
            })?)
        } else {
            None
        };
        let work = tempfile::Builder::new()
            .prefix("diff-")
            .suffix(".sqlite")
            .tempfile_in(self.data_dir().temp())
            .map_err(|e| Error::io("create a work file in", &self.data_dir().temp(), e))?;
        let sa = Side {
            manifest: ma,
            files: fa,
        };
        let sb = Side {
            manifest: mb,
            files: fb,
        };
        let (ida, idb) = (ra.id.clone(), rb.id.clone());
        let mut out = tokio::task::spawn_blocking(move || -> Result<BackupDiff> {
            let p = passphrase.as_ref();
            let mut out = BackupDiff {
                a: ida,
                b: idb,
                ..Default::default()
            };
            let schema = |s: &Side| -> Result<Option<Vec<diff::SchemaObject>>> {
                s.open(Artifact::Schema, p)?
                    .map(diff::parse_schema)
                    .transpose()
            };
            let (oa, ob) = (schema(&sa)?, schema(&sb)?);
            let keys: HashMap<String, Vec<String>> = match (&oa, &ob) {
                (Some(a), Some(b)) => {
                    out.schema = diff::diff_schema(a, b);
                    // Rows are matched by the primary key, unless the two
                    // sides key a table differently.
                    let (ka, kb) = (diff::primary_keys(a), diff::primary_keys(b));
                    let mut keys = kb.clone();
                    for (t, c) in ka {
                        match kb.get(&t) {
                            Some(other) if *other != c => {
                                keys.remove(&t);
                            }
                            Some(_) => {}
                            None => {
                                keys.insert(t, c);
                            }
                        }
                    }
                    keys
                }
                _ => {
                    out.notes
                        .push("the schema was not compared: one backup has none".into());
                    HashMap::new()
                }
            };
            // Tables whose row multiset checksums agree need no row work.
            let same: HashSet<(String, String)> = sa
                .manifest
                .tables
                .iter()
                .filter(|t| {
                    sb.manifest.tables.iter().any(|u| {
                        u.schema == t.schema
                            && u.name == t.name
                            && u.rows == t.rows
                            && u.checksum == t.checksum
                    })
                })
                .map(|t| (t.schema.clone(), t.name.clone()))
                .collect();
            match (sa.open(Artifact::Data, p)?, sb.open(Artifact::Data, p)?) {
                (Some(da), Some(db)) => {
                    let mut differ = diff::DataDiffer::new(work.path())?;
                    differ.load(0, da, &keys, &same, &cancel)?;
                    differ.load(1, db, &keys, &same, &cancel)?;
                    let keyed: HashMap<String, bool> =
                        keys.keys().map(|k| (k.clone(), true)).collect();
                    let all = differ.finish(&keyed)?;
                    let (changed, unchanged): (Vec<_>, Vec<_>) = all
                        .into_iter()
                        .partition(|t| t.added + t.removed + t.changed > 0);
                    out.tables = changed;
                    out.unchanged_tables = unchanged.len();
                }
                _ => out
                    .notes
                    .push("rows were not compared: one backup has no data".into()),
            }
            match (sa.open(Artifact::Roles, p)?, sb.open(Artifact::Roles, p)?) {
                (Some(x), Some(y)) => {
                    out.roles = diff::diff_roles(&diff::role_lines(x)?, &diff::role_lines(y)?);
                }
                _ => out
                    .notes
                    .push("roles were not compared: one backup has none".into()),
            }
            drop(work);
            Ok(out)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        out.a_created_at = ra.created_at;
        out.b_created_at = rb.created_at;
        Ok(out)
    }
}
