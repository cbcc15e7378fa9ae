//! Versioning: a project's backups as a timeline, and the difference
//! between any two backups (of one project or of two: prod against
//! staging) computed from their own files — schema objects with a unified
//! diff of each changed definition, rows added/removed/changed per table,
//! roles — with no database involved.

pub mod diff;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::diff::{RolesDiff, SchemaDiff, TableDiff};
use crate::engine::Engine;
use crate::engine::backup::options::Artifact;
use crate::engine::error::{Error, Result};
use crate::engine::restore::verified::{Checked, VerifiedBackup};

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

/// Reads one side's `artifact` (if the backup has it) through `f`, then
/// checks the stream's digests against the manifest.
fn read_checked<T>(
    side: &VerifiedBackup,
    artifact: Artifact,
    f: impl FnOnce(&mut Checked) -> Result<T>,
) -> Result<Option<T>> {
    if side.manifest.file(artifact).is_none() {
        return Ok(None);
    }
    let mut stream = side.open(artifact)?;
    let out = f(&mut stream)?;
    stream.finish()?;
    Ok(Some(out))
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
        // Each side is read the way a restore reads it: checked against
        // the manifest and the catalog, each stream's digests again at its
        // end — a damaged file fails the diff.
        let mut sides = Vec::new();
        for id in [a, b] {
            let (_, m, _) = self.backup_and_manifest(id, None).await?;
            let present: Vec<Artifact> = [Artifact::Schema, Artifact::Data, Artifact::Roles]
                .into_iter()
                .filter(|x| m.file(*x).is_some())
                .collect();
            sides.push(self.verified_backup(id, None, present).await?);
        }
        let (sb, sa) = (sides.pop(), sides.pop());
        let (Some(sa), Some(sb)) = (sa, sb) else {
            return Err(Error::internal("a side of the diff is missing"));
        };
        let (ra, rb) = (self.backup(a).await?, self.backup(b).await?);
        let work = tempfile::Builder::new()
            .prefix("diff-")
            .suffix(".sqlite")
            .tempfile_in(self.data_dir().temp())
            .map_err(|e| Error::io("create a work file in", &self.data_dir().temp(), e))?;
        let (ida, idb) = (ra.id.clone(), rb.id.clone());
        let mut out = tokio::task::spawn_blocking(move || -> Result<BackupDiff> {
            let mut out = BackupDiff {
                a: ida,
                b: idb,
                ..Default::default()
            };
            let schema = |s: &VerifiedBackup| -> Result<Option<Vec<diff::SchemaObject>>> {
                read_checked(s, Artifact::Schema, |r: &mut Checked| diff::parse_schema(r))
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
            if sa.manifest.file(Artifact::Data).is_some()
                && sb.manifest.file(Artifact::Data).is_some()
            {
                let mut differ = diff::DataDiffer::new(work.path())?;
                read_checked(&sa, Artifact::Data, |r| {
                    differ.load(0, r, &keys, &same, &cancel)
                })?;
                read_checked(&sb, Artifact::Data, |r| {
                    differ.load(1, r, &keys, &same, &cancel)
                })?;
                let (changed, unchanged): (Vec<_>, Vec<_>) = differ
                    .finish(&keys)?
                    .into_iter()
                    .partition(|t| t.added + t.removed + t.changed > 0);
                out.tables = changed;
                out.unchanged_tables = unchanged.len();
            } else {
                out.notes
                    .push("rows were not compared: one backup has no data".into());
            }
            let roles = |s: &VerifiedBackup| {
                read_checked(s, Artifact::Roles, |r: &mut Checked| diff::role_lines(r))
            };
            match (roles(&sa)?, roles(&sb)?) {
                (Some(x), Some(y)) => out.roles = diff::diff_roles(&x, &y),
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
