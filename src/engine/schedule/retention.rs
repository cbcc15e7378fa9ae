//! Retention: which backups a sweep deletes. Pure decisions first (tested
//! on generated histories), then the sweep that deletes files and catalog
//! rows together, with a dry run and an audit entry per deletion.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::catalog::{audit, backups::BackupRecord};
use crate::engine::error::{Error, Result};

/// Grandfather-father-son counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Gfs {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

/// Retention rules; every rule keeps, none deletes on its own. No rule at
/// all keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gfs: Option<Gfs>,
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none() && self.keep_days.is_none() && self.gfs.is_none()
    }
}

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub completed: bool,
    /// A pre-restore snapshot that a completed restore can still roll back to.
    pub protected: bool,
}

/// The ids to delete, oldest first. Never the newest completed backup,
/// never a protected snapshot, never an unfinished one.
pub fn decide(candidates: &[Candidate], rules: &Retention, now: DateTime<Utc>) -> Vec<String> {
    if rules.is_empty() {
        return Vec::new();
    }
    let mut done: Vec<&Candidate> = candidates.iter().filter(|c| c.completed).collect();
    done.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    if let Some(newest) = done.first() {
        keep.insert(&newest.id);
    }
    if let Some(n) = rules.keep_last {
        keep.extend(done.iter().take(n as usize).map(|c| c.id.as_str()));
    }
    if let Some(days) = rules.keep_days {
        let cutoff = now - chrono::Duration::days(i64::from(days));
        keep.extend(
            done.iter()
                .filter(|c| c.created_at >= cutoff)
                .map(|c| c.id.as_str()),
        );
    }
    if let Some(g) = rules.gfs {
        // The newest backup of each of the last N days / ISO weeks / months
        // that have backups.
        let mut bucket = |count: u32, key: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
            let mut seen = Vec::new();
            for c in &done {
                let k = key(&c.created_at);
                if !seen.contains(&k) {
                    if seen.len() as u32 >= count {
                        break;
                    }
                    seen.push(k);
                    keep.insert(&c.id);
                }
            }
        };
        bucket(g.daily, &|t| (t.year(), t.ordinal()));
        bucket(g.weekly, &|t| (t.iso_week().year(), t.iso_week().week()));
        bucket(g.monthly, &|t| (t.year(), t.month()));
    }
    let mut delete: Vec<&Candidate> = done
        .into_iter()
        .filter(|c| !keep.contains(c.id.as_str()) && !c.protected)
        .collect();
    delete.sort_by_key(|c| c.created_at);
    delete.into_iter().map(|c| c.id.clone()).collect()
}

/// What a sweep did (or would do, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub deleted: Vec<PrunedBackup>,
    pub kept: usize,
    /// The repository's garbage collection, when snapshots were pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_gc: Option<crate::engine::repo::gc::GcReport>,
    /// Why that collection failed (the pruning itself stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_gc_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedBackup {
    pub id: String,
    pub project: String,
    pub created_at: String,
    pub bytes: Option<i64>,
    /// `local` or the destination the copy was removed from.
    pub at: String,
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| DateTime::<Utc>::MIN_UTC)
}

impl Engine {
    /// Applies `rules` to one project's local backups (deleting files and
    /// rows together, each deletion audited), or only reports with
    /// `dry_run`. A backup with a stored copy elsewhere loses only its
    /// local folder.
    pub async fn prune_project(
        &self,
        project: &str,
        rules: &Retention,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<PruneReport> {
        self.prune_at(project, None, rules, dry_run, now).await
    }

    /// Applies `rules` to the copies of one project's backups at a
    /// destination (`None`: the local folders). A backup whose last copy
    /// goes is deleted from the catalog too.
    /// A failed sweep (not a dry run), or a failed repository clean-up
    /// after it, raises `prune.failed` through the alert rules.
    pub async fn prune_at(
        &self,
        project: &str,
        destination: Option<&str>,
        rules: &Retention,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<PruneReport> {
        let r = self
            .prune_at_inner(project, destination, rules, dry_run, now)
            .await;
        let problem = match &r {
            _ if dry_run => None,
            Err(e) if e.kind == crate::engine::ErrorKind::NotFound => None,
            Err(e) => Some(e.message.clone()),
            Ok(rep) => rep
                .repo_gc_error
                .as_ref()
                .map(|e| format!("the repository clean-up after it failed: {e}")),
        };
        if let Some(problem) = problem
            && let Ok(p) = self.project(project).await
        {
            let alert = crate::engine::notify::Alert::prune_failed(
                &p.id,
                &p.name,
                destination.unwrap_or("local"),
                &problem,
            );
            self.dispatch_alert(&alert, &self.delivery()).await;
        }
        r
    }

    async fn prune_at_inner(
        &self,
        project: &str,
        destination: Option<&str>,
        rules: &Retention,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<PruneReport> {
        let p = self.project(project).await?;
        let dest = match destination {
            Some(d) => Some(self.destination(d).await?),
            None => None,
        };
        let pid = p.id.clone();
        let dest_id = dest.as_ref().map(|d| d.id.clone());
        // (backup, protected, here, copies elsewhere that are stored)
        let rows: Vec<(BackupRecord, bool, bool, usize)> = self
            .catalog()
            .call(move |c| {
                let list = crate::engine::catalog::backups::list(c, Some(&pid), usize::MAX >> 1)?;
                let mut out = Vec::with_capacity(list.len());
                for b in list {
                    let protected: bool = c.query_row(
                        "SELECT EXISTS (SELECT 1 FROM restores WHERE snapshot_backup_id = ?1
                           AND (status = 'completed'
                                -- interrupted after COMMIT, or not known yet: still undoable
                                OR (status = 'interrupted' AND (committed IS NULL OR committed = 1))))",
                        [&b.id],
                        |r| r.get(0),
                    )?;
                    let copies = crate::engine::destination::copies::of_backup(c, &b.id)?;
                    let (here, elsewhere) = match &dest_id {
                        None => (
                            b.local_state == "present",
                            copies.iter().filter(|c| c.status == "stored").count(),
                        ),
                        Some(d) => (
                            copies
                                .iter()
                                .any(|c| &c.destination_id == d && c.status == "stored"),
                            copies
                                .iter()
                                .filter(|c| &c.destination_id != d && c.status == "stored")
                                .count()
                                + usize::from(b.local_state == "present"),
                        ),
                    };
                    out.push((b, protected, here, elsewhere));
                }
                Ok(out)
            })
            .await?;
        let candidates: Vec<Candidate> = rows
            .iter()
            .filter(|(_, _, here, _)| *here)
            .map(|(b, protected, _, _)| Candidate {
                id: b.id.clone(),
                created_at: parse_time(&b.created_at),
                completed: b.status == "completed",
                protected: *protected,
            })
            .collect();
        let doomed = decide(&candidates, rules, now);
        let mut report = PruneReport {
            dry_run,
            repo_gc: None,
            repo_gc_error: None,
            deleted: Vec::new(),
            kept: candidates.iter().filter(|c| c.completed).count() - doomed.len(),
        };
        let place = dest
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_else(|| "local".into());
        for id in doomed {
            let (b, _, _, elsewhere) = rows
                .iter()
                .find(|(b, ..)| b.id == id)
                .ok_or_else(|| Error::internal("pruned backup vanished"))?;
            if !dry_run {
                match (&dest, *elsewhere > 0) {
                    (None, true) => self.drop_local_copy(&b.id).await?,
                    (Some(d), true) => self.delete_copy(&b.id, &d.id).await?,
                    // The last copy: the backup goes (all of it).
                    (_, false) => {
                        self.delete_backup(&b.id).await?;
                    }
                }
                let (actor, id2, name) = (
                    self.actor().to_owned(),
                    b.id.clone(),
                    b.project_name.clone(),
                );
                let rules_json = serde_json::to_value(rules)?;
                let at = place.clone();
                self.catalog()
                    .call(move |c| {
                        audit::append(
                            c,
                            &actor,
                            "retention.delete",
                            Some(&name),
                            &json!({"backup_id": id2, "at": at, "rules": rules_json}),
                        )
                    })
                    .await?;
            }
            report.deleted.push(PrunedBackup {
                id: b.id.clone(),
                project: b.project_name.clone(),
                created_at: b.created_at.clone(),
                bytes: b.file_size,
                at: place.clone(),
            });
        }
        // Chunks only the pruned snapshots used go too (the next prune
        // does it when a backup holds the repository now).
        let pruned_snapshots = report.deleted.iter().any(|d| {
            rows.iter()
                .any(|(b, ..)| b.id == d.id && b.backup_type == "incremental")
        });
        if pruned_snapshots && dest.is_none() {
            match self.repo_gc(dry_run, false).await {
                Ok(Some(gc)) => report.repo_gc = Some(gc),
                Ok(None) => tracing::info!(
                    "repository busy (a backup is running): its garbage collection waits for the next prune"
                ),
                // The snapshots are gone either way; the next run collects.
                Err(e) => {
                    tracing::warn!("repository garbage collection failed: {e}");
                    report.repo_gc_error = Some(e.message);
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(n: usize, now: DateTime<Utc>) -> Vec<Candidate> {
        // One backup every 7 hours going back, every 10th failed, one
        // protected snapshot among the old ones.
        (0..n)
            .map(|i| Candidate {
                id: format!("b{i:03}"),
                created_at: now - chrono::Duration::hours(7 * i as i64),
                completed: i % 10 != 3,
                protected: i == 77,
            })
            .collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-15T12:00:00Z")
            .expect("t")
            .with_timezone(&Utc)
    }

    #[test]
    fn keep_last_keeps_exactly_n_plus_protected() {
        let h = history(100, now());
        let del = decide(
            &h,
            &Retention {
                keep_last: Some(5),
                ..Default::default()
            },
            now(),
        );
        let completed = h.iter().filter(|c| c.completed).count();
        assert_eq!(
            del.len(),
            completed - 5 - 1,
            "5 newest + the protected snapshot stay"
        );
        assert!(!del.contains(&"b000".to_string()) && !del.contains(&"b077".to_string()));
        let kept: Vec<&str> = h
            .iter()
            .filter(|c| c.completed && !del.contains(&c.id))
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(kept, ["b000", "b001", "b002", "b004", "b005", "b077"]);
        assert!(
            del.iter()
                .all(|d| h.iter().any(|c| &c.id == d && c.completed)),
            "failed rows are not retention's"
        );
    }

    #[test]
    fn keep_days_and_gfs() {
        let h = history(100, now());
        let del = decide(
            &h,
            &Retention {
                keep_days: Some(3),
                ..Default::default()
            },
            now(),
        );
        for c in h.iter().filter(|c| c.completed) {
            let young = c.created_at >= now() - chrono::Duration::days(3);
            assert_eq!(!del.contains(&c.id), young || c.protected, "{}", c.id);
        }
        let gfs = Retention {
            gfs: Some(Gfs {
                daily: 7,
                weekly: 4,
                monthly: 12,
            }),
            ..Default::default()
        };
        let del = decide(&h, &gfs, now());
        let kept: Vec<&Candidate> = h
            .iter()
            .filter(|c| c.completed && !del.contains(&c.id))
            .collect();
        // 7 distinct days, newest of each.
        let days: BTreeSet<_> = kept.iter().map(|c| c.created_at.date_naive()).collect();
        assert!(days.len() >= 7);
        // 100 backups over ~29 days: at most 7 daily + 4 weekly + 2 monthly + protected.
        assert!(kept.len() <= 7 + 4 + 2 + 1, "{}", kept.len());
        assert!(kept.iter().any(|c| c.id == "b000"));
    }

    #[test]
    fn never_deletes_the_newest_success_and_no_rules_keep_all() {
        let mut h = history(10, now());
        for c in h.iter_mut().take(3) {
            c.completed = false;
        }
        let del = decide(
            &h,
            &Retention {
                keep_last: Some(0),
                ..Default::default()
            },
            now(),
        );
        assert!(
            !del.contains(&"b004".to_string()),
            "b004 is the newest completed one"
        );
        assert_eq!(
            decide(&h, &Retention::default(), now()),
            Vec::<String>::new()
        );
    }
}
