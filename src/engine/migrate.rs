//! The migration assistant: moving backups between places (this machine's
//! folder and destinations, with the same read-back verification as every
//! copy) and cloning an environment (project A's backup restored into
//! project B, through the ordinary restore with its preview first).

use serde::{Deserialize, Serialize};

use super::catalog::backups::BackupRecord;
use super::destination::copies::BackupCopy;
use super::restore::{RestoreMode, RestoreRequest, RestoreScope, RestoreTarget};
use super::{Engine, Error, Result};

/// What a clone carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloneWhat {
    /// Schema (and roles) only, e.g. dev → prod promotion.
    SchemaOnly,
    /// Schema and data, e.g. prod → staging.
    #[default]
    SchemaAndData,
}

/// "Clone environment": which backup, into which project, how.
#[derive(Debug, Clone, Default)]
pub struct CloneInput {
    pub source: String,
    pub target: String,
    /// A backup of the source (id or prefix); by default its newest
    /// completed full backup.
    pub backup: Option<String>,
    pub what: CloneWhat,
    pub mode: Option<RestoreMode>,
    pub from: Option<String>,
    pub allow_drop: Vec<String>,
    pub confirm: Option<String>,
}

impl Engine {
    /// Moves a backup's copy from `from` (`None` or `local`: this machine's
    /// folder) to destination `to`: the new copy is uploaded and read back
    /// first, and only then is the old one removed.
    pub async fn move_backup(
        &self,
        backup: &str,
        from: Option<&str>,
        to: &str,
        sent: &(dyn Fn(u64) + Sync),
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<BackupCopy> {
        let rec = self.backup(backup).await?;
        let from_local = from.is_none_or(|f| f.eq_ignore_ascii_case("local"));
        if let Some(f) = from.filter(|_| !from_local) {
            let src = self.destination(f).await?;
            let dst = self.destination(to).await?;
            if src.id == dst.id {
                return Err(Error::invalid(format!(
                    "'{f}' and '{to}' are the same destination"
                )));
            }
            let copies = self.backup_copies(&rec.id).await?;
            if !copies
                .iter()
                .any(|c| c.destination_id == src.id && c.status == "stored")
            {
                return Err(Error::not_found(format!(
                    "backup {} has no stored copy at '{f}'",
                    rec.id
                )));
            }
        } else if rec.local_state != "present" {
            return Err(Error::not_found(format!(
                "backup {} has no copy on this machine; name the destination to move it from",
                rec.id
            )));
        }
        let copy = self.store_copy(&rec.id, to, None, sent, cancel).await?;
        if from_local {
            self.drop_local_copy(&rec.id).await?;
        } else if let Some(f) = from {
            self.delete_copy(&rec.id, f).await?;
        }
        tracing::info!(
            "backup {} moved from {} to '{to}'",
            rec.id,
            from.unwrap_or("local")
        );
        Ok(copy)
    }

    /// The newest completed full backup of a project.
    pub async fn latest_full_backup(&self, project: &str) -> Result<BackupRecord> {
        let p = self.project(project).await?;
        let list = self.list_backups(Some(&p.id), 500).await?;
        list.into_iter()
            .find(|b| b.status == "completed" && b.backup_type == "full")
            .ok_or_else(|| {
                Error::not_found(format!("project '{}' has no completed full backup", p.name))
                    .with_hint(format!(
                        "back it up first: `supabackup backup run '{}'`",
                        p.name
                    ))
            })
    }

    /// The restore that clones `source` into `target`; preview it with
    /// `preview_restore`, run it with `run_restore`.
    pub async fn clone_request(&self, input: &CloneInput) -> Result<RestoreRequest> {
        let source = self.project(&input.source).await?;
        let target = self.project(&input.target).await?;
        if source.id == target.id {
            return Err(Error::invalid(
                "the source and the target are the same project: restore the backup instead",
            ));
        }
        let backup = match &input.backup {
            Some(b) => {
                let rec = self.backup(b).await?;
                if rec.project_id.as_deref() != Some(source.id.as_str()) {
                    return Err(Error::invalid(format!(
                        "backup {} is not a backup of '{}'",
                        rec.id, source.name
                    )));
                }
                if rec.status != "completed" {
                    return Err(Error::invalid(format!(
                        "backup {} is {}, not completed",
                        rec.id, rec.status
                    )));
                }
                rec
            }
            None => self.latest_full_backup(&source.id).await?,
        };
        let scope = match input.what {
            CloneWhat::SchemaOnly => RestoreScope {
                data: false,
                ..Default::default()
            },
            CloneWhat::SchemaAndData => RestoreScope::default(),
        };
        Ok(RestoreRequest {
            backup: backup.id,
            target: RestoreTarget::Project(target.id),
            scope,
            mode: input.mode,
            allow_drop: input.allow_drop.clone(),
            confirm: input.confirm.clone(),
            from: input.from.clone(),
            jobs: 1,
        })
    }
}
