//! Read-only aggregates for overviews (the desktop dashboard and analytics,
//! or any other front-end): per-project health and backup figures in a few
//! queries, and the analytics events as typed points. Nothing here writes.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::engine::Engine;
use crate::engine::catalog::projects;
use crate::engine::error::Result;
use crate::engine::project::Project;

/// The newest backup of a project, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupBrief {
    pub id: String,
    pub status: String,
    pub backup_type: String,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub file_size: Option<i64>,
    pub error_message: Option<String>,
}

/// The newest connection test of a project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub ok: bool,
    pub at: String,
    pub latency_ms: Option<f64>,
    pub server_version: Option<String>,
    /// The error, or the first problem, when not ok.
    pub error: Option<String>,
}

/// The newest restore test of a project's backups (manual, scheduled or a
/// drill), from the analytics it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreTestBrief {
    pub ok: bool,
    pub at: String,
    pub backup_id: Option<String>,
    /// Why it failed (the first mismatching table, or the error).
    pub failure: Option<String>,
}

/// One project with what an overview shows about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectSummary {
    pub project: Project,
    pub last_backup: Option<BackupBrief>,
    /// When the newest completed backup finished.
    pub last_success_at: Option<String>,
    pub completed_backups: u64,
    /// Stored bytes of its completed backups.
    pub storage_bytes: i64,
    /// Completed and failed backups started since `since` (cancelled ones
    /// do not count either way).
    pub recent_completed: u64,
    pub recent_failed: u64,
    pub last_test: Option<HealthCheck>,
    pub last_restore_test: Option<RestoreTestBrief>,
    /// The earliest `next_run_at` among its enabled schedules.
    pub next_run_at: Option<String>,
    /// Its state on the Supabase platform, as the last fleet sync saw it.
    pub platform_status: Option<crate::engine::fleet::PlatformStatus>,
    pub enabled_jobs: u64,
    /// After how many hours without a successful backup the project is
    /// stale: the smallest threshold of the enabled alert rules covering it
    /// (the same one `backup.stale` alerts use), or 48 without one.
    pub stale_after_hours: u32,
}

impl ProjectSummary {
    /// Completed / (completed + failed) since `since`; `None` without runs.
    pub fn success_rate(&self) -> Option<f64> {
        let n = self.recent_completed + self.recent_failed;
        (n > 0).then(|| self.recent_completed as f64 / n as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub projects: u64,
    pub completed_backups: u64,
    pub storage_bytes: i64,
    /// Backups still catalogued whose project was removed.
    pub orphaned_backups: u64,
    pub orphaned_bytes: i64,
    pub running: u64,
    pub recent_completed: u64,
    pub recent_failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub projects: Vec<ProjectSummary>,
    pub totals: Totals,
    /// The start of the "recent" window used for success rates.
    pub since: String,
}

/// A `backup` analytics event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupPoint {
    pub project_id: Option<String>,
    pub at: String,
    pub backup_id: Option<String>,
    pub status: String,
    pub backup_type: Option<String>,
    pub duration_ms: Option<i64>,
    pub stored_bytes: Option<i64>,
    pub plain_bytes: Option<i64>,
    pub throughput_bps: Option<f64>,
}

/// A `connection_test` analytics event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestPoint {
    pub project_id: Option<String>,
    pub at: String,
    pub ok: bool,
    pub latency_ms: Option<f64>,
}

/// A deleted backup (from the audit log).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeletionPoint {
    pub at: String,
    /// The project's name at deletion time.
    pub project_name: Option<String>,
    pub bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnalyticsData {
    /// Oldest first.
    pub backups: Vec<BackupPoint>,
    pub tests: Vec<TestPoint>,
    pub deletions: Vec<DeletionPoint>,
}

fn brief(r: &rusqlite::Row<'_>) -> rusqlite::Result<BackupBrief> {
    Ok(BackupBrief {
        id: r.get(1)?,
        status: r.get(2)?,
        backup_type: r.get(3)?,
        created_at: r.get(4)?,
        completed_at: r.get(5)?,
        file_size: r.get(6)?,
        error_message: r.get(7)?,
    })
}

fn json_f64(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key).and_then(serde_json::Value::as_f64)
}

fn json_i64(v: &serde_json::Value, key: &str) -> Option<i64> {
    v.get(key)
        .and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
}

fn json_bool(v: &serde_json::Value, key: &str) -> bool {
    v.get(key)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

fn json_str(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(str::to_owned)
}

/// The overview, from one connection (blocking).
/// The newest analytics event of a type per project: its data and time.
fn latest_events(
    conn: &Connection,
    event_type: &str,
) -> Result<HashMap<String, (serde_json::Value, String)>> {
    let mut stmt = conn.prepare(
        "SELECT a.project_id, a.event_data, a.created_at FROM analytics a
         WHERE a.event_type = ?1 AND a.project_id IS NOT NULL AND a.id = (
             SELECT MAX(x.id) FROM analytics x
             WHERE x.project_id = a.project_id AND x.event_type = ?1)",
    )?;
    let rows = stmt.query_map([event_type], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (pid, data, at) = row?;
        out.insert(pid, (serde_json::from_str(&data).unwrap_or_default(), at));
    }
    Ok(out)
}

pub fn overview(conn: &Connection, since: &str) -> Result<Overview> {
    let list = projects::list(conn)?;
    let mut totals = Totals {
        projects: list.len() as u64,
        ..Totals::default()
    };

    struct Agg {
        completed: u64,
        bytes: i64,
        last_success: Option<String>,
        recent_completed: u64,
        recent_failed: u64,
    }
    let mut aggs: HashMap<Option<String>, Agg> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT project_id,
                    SUM(status = 'completed'),
                    COALESCE(SUM(CASE WHEN status = 'completed' THEN file_size END), 0),
                    MAX(CASE WHEN status = 'completed' THEN completed_at END),
                    SUM(status = 'completed' AND created_at >= ?1),
                    SUM(status = 'failed' AND created_at >= ?1),
                    SUM(status IN ('running', 'pending'))
             FROM backups GROUP BY project_id",
        )?;
        let rows = stmt.query_map([since], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                Agg {
                    completed: r.get::<_, i64>(1)?.max(0) as u64,
                    bytes: r.get(2)?,
                    last_success: r.get(3)?,
                    recent_completed: r.get::<_, i64>(4)?.max(0) as u64,
                    recent_failed: r.get::<_, i64>(5)?.max(0) as u64,
                },
                r.get::<_, i64>(6)?.max(0) as u64,
            ))
        })?;
        for row in rows {
            let (pid, agg, running) = row?;
            totals.running += running;
            totals.recent_completed += agg.recent_completed;
            totals.recent_failed += agg.recent_failed;
            totals.completed_backups += agg.completed;
            totals.storage_bytes += agg.bytes;
            if pid.is_none() {
                totals.orphaned_backups = agg.completed;
                totals.orphaned_bytes = agg.bytes;
            }
            aggs.insert(pid, agg);
        }
    }

    let mut last: HashMap<String, BackupBrief> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT b.project_id, b.id, b.status, b.backup_type, b.created_at, b.completed_at,
                    b.file_size, b.error_message
             FROM backups b
             WHERE b.project_id IS NOT NULL AND b.id = (
                 SELECT x.id FROM backups x WHERE x.project_id = b.project_id
                 ORDER BY x.created_at DESC, x.id DESC LIMIT 1)",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, brief(r)?)))?;
        for row in rows {
            let (pid, b) = row?;
            last.insert(pid, b);
        }
    }

    let mut tests: HashMap<String, HealthCheck> = HashMap::new();
    for (pid, (v, at)) in latest_events(conn, "connection_test")? {
        let ok = json_bool(&v, "ok");
        let error = json_str(&v, "error").or_else(|| {
            v.get("problems")
                .and_then(|p| p.as_array())
                .and_then(|a| a.first())
                .and_then(|p| p.as_str())
                .map(str::to_owned)
        });
        tests.insert(
            pid,
            HealthCheck {
                ok,
                at,
                latency_ms: json_f64(&v, "latency_ms"),
                server_version: json_str(&v, "server_version"),
                error: if ok { None } else { error },
            },
        );
    }
    // The health column follows the newest look at the server: a live
    // probe or a connection test, whichever came last.
    for (pid, (v, at)) in latest_events(conn, crate::engine::health::EVENT)? {
        if tests.get(&pid).is_some_and(|t| t.at >= at) {
            continue;
        }
        let ok = json_bool(&v, "ok");
        let error = json_str(&v, "error").or_else(|| json_str(&v, "pg_dump_problem"));
        tests.insert(
            pid,
            HealthCheck {
                ok: ok && v.get("pg_dump_problem").is_none_or(|p| p.is_null()),
                at,
                latency_ms: json_f64(&v, "latency_ms"),
                server_version: json_str(&v, "server_version"),
                error,
            },
        );
    }
    let mut restore_tests: HashMap<String, RestoreTestBrief> = HashMap::new();
    for (pid, (v, at)) in latest_events(conn, "restore_test")? {
        let ok = json_bool(&v, "ok");
        restore_tests.insert(
            pid,
            RestoreTestBrief {
                ok,
                at,
                backup_id: json_str(&v, "backup_id"),
                failure: json_str(&v, "failure"),
            },
        );
    }

    let mut jobs: HashMap<String, (Option<String>, u64)> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT project_id, MIN(next_run_at), COUNT(*) FROM backup_jobs
             WHERE enabled = 1 GROUP BY project_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?.max(0) as u64,
            ))
        })?;
        for row in rows {
            let (pid, next, n) = row?;
            jobs.insert(pid, (next, n));
        }
    }

    let rules = crate::engine::notify::rules::list(conn)?;
    let mut platform = crate::engine::fleet::statuses(conn)?;
    let projects = list
        .into_iter()
        .map(|p| {
            let stale_after_hours = crate::engine::notify::stale_threshold(&rules, &p.id)
                .unwrap_or(crate::engine::notify::DEFAULT_STALE_HOURS);
            let agg = aggs.get(&Some(p.id.clone()));
            let (next_run_at, enabled_jobs) = jobs.remove(&p.id).unwrap_or((None, 0));
            ProjectSummary {
                last_backup: last.remove(&p.id),
                last_success_at: agg.and_then(|a| a.last_success.clone()),
                completed_backups: agg.map(|a| a.completed).unwrap_or(0),
                storage_bytes: agg.map(|a| a.bytes).unwrap_or(0),
                recent_completed: agg.map(|a| a.recent_completed).unwrap_or(0),
                recent_failed: agg.map(|a| a.recent_failed).unwrap_or(0),
                last_test: tests.remove(&p.id),
                last_restore_test: restore_tests.remove(&p.id),
                next_run_at,
                enabled_jobs,
                stale_after_hours,
                platform_status: platform.remove(&p.id),
                project: p,
            }
        })
        .collect();
    Ok(Overview {
        projects,
        totals,
        since: since.to_owned(),
    })
}

/// Analytics events and backup deletions since `since` (all when `None`),
/// oldest first (blocking).
pub fn analytics(conn: &Connection, since: Option<&str>) -> Result<AnalyticsData> {
    let since = since.unwrap_or("");
    let mut out = AnalyticsData::default();
    let mut stmt = conn.prepare(
        "SELECT project_id, event_type, event_data, created_at FROM analytics
         WHERE event_type IN ('backup', 'connection_test') AND created_at >= ?1
         ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map(params![since], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (project_id, kind, data, at) = row?;
        let v: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
        if kind == "backup" {
            out.backups.push(BackupPoint {
                project_id,
                at,
                backup_id: json_str(&v, "backup_id"),
                status: json_str(&v, "status").unwrap_or_else(|| "unknown".into()),
                backup_type: json_str(&v, "type"),
                duration_ms: json_i64(&v, "duration_ms"),
                stored_bytes: json_i64(&v, "stored_bytes"),
                plain_bytes: json_i64(&v, "plain_bytes"),
                throughput_bps: json_f64(&v, "throughput_bps"),
            });
        } else {
            out.tests.push(TestPoint {
                project_id,
                at,
                ok: v
                    .get("ok")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
                latency_ms: json_f64(&v, "latency_ms"),
            });
        }
    }
    let mut stmt = conn.prepare(
        "SELECT at, target, details FROM audit_log
         WHERE action = 'backup.delete' AND at >= ?1 ORDER BY at, id",
    )?;
    let rows = stmt.query_map(params![since], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (at, project_name, details) = row?;
        let v: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
        out.deletions.push(DeletionPoint {
            at,
            project_name,
            bytes: json_i64(&v, "bytes"),
        });
    }
    Ok(out)
}

impl Engine {
    /// The scratch server restore tests use, when one was set.
    pub async fn scratch_server_url(&self) -> Result<Option<String>> {
        self.catalog()
            .call(|c| {
                crate::engine::catalog::settings::get(c, crate::engine::restore::SCRATCH_SETTING)
            })
            .await
    }

    /// Every project with its health, last backup, storage, success rate
    /// since `since` (RFC 3339) and next scheduled run, plus totals.
    pub async fn overview(&self, since: String) -> Result<Overview> {
        self.catalog().call(move |c| overview(c, &since)).await
    }

    /// Backup and connection-test events (and backup deletions) since
    /// `since`, oldest first.
    pub async fn analytics_data(&self, since: Option<String>) -> Result<AnalyticsData> {
        self.catalog()
            .call(move |c| analytics(c, since.as_deref()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::catalog::{Catalog, analytics as events, backups};
    use serde_json::json;

    fn project(c: &Connection, name: &str) -> String {
        let id = format!("id-{name}");
        c.execute(
            "INSERT INTO projects (id, name, slug, project_ref, db_url, environment, created_at, updated_at)
             VALUES (?1, ?2, ?2, 'abc', 'postgresql://u@h/db', 'production', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
            params![id, name],
        )
        .expect("project");
        id
    }

    fn backup(c: &Connection, id: &str, pid: Option<&str>, status: &str, at: &str, size: i64) {
        c.execute(
            "INSERT INTO backups (id, project_id, project_name, project_ref, backup_type, status,
                                  file_size, created_at, completed_at)
             VALUES (?1, ?2, 'x', 'abc', 'full', ?3, ?4, ?5, ?5)",
            params![id, pid, status, size, at],
        )
        .expect("backup");
    }

    #[test]
    fn overview_aggregates_per_project() {
        let cat = Catalog::open_in_memory().expect("catalog");
        cat.with(|c| {
            let a = project(c, "alpha");
            let b = project(c, "beta");
            backup(c, "1", Some(&a), "completed", "2024-05-01T00:00:00Z", 100);
            backup(c, "2", Some(&a), "completed", "2024-05-09T00:00:00Z", 200);
            backup(c, "3", Some(&a), "failed", "2024-05-10T00:00:00Z", 0);
            backup(c, "4", None, "completed", "2024-05-10T00:00:00Z", 50);
            events::record(c, Some(&b), "connection_test", &json!({"ok": true, "latency_ms": 3.5}))?;
            events::record(c, Some(&b), "connection_test", &json!({"ok": false, "error": "refused"}))?;
            c.execute(
                "INSERT INTO backup_jobs (id, project_id, name, cron_expression, next_run_at, created_at, updated_at)
                 VALUES ('j', ?1, 'nightly', '0 3 * * *', '2024-05-11T03:00:00Z', 'now', 'now')",
                [&a],
            )?;
            let o = overview(c, "2024-05-05T00:00:00Z")?;
            assert_eq!(o.projects.len(), 2);
            let pa = &o.projects[0];
            assert_eq!(pa.project.name, "alpha");
            assert_eq!(pa.completed_backups, 2);
            assert_eq!(pa.storage_bytes, 300);
            assert_eq!(pa.last_backup.as_ref().map(|b| b.status.as_str()), Some("failed"));
            assert_eq!(pa.last_success_at.as_deref(), Some("2024-05-09T00:00:00Z"));
            assert_eq!(pa.success_rate(), Some(0.5));
            assert_eq!(pa.next_run_at.as_deref(), Some("2024-05-11T03:00:00Z"));
            assert_eq!(pa.enabled_jobs, 1);
            let pb = &o.projects[1];
            assert!(pb.last_backup.is_none());
            assert_eq!(pb.success_rate(), None);
            let t = pb.last_test.as_ref().expect("test");
            assert!(!t.ok);
            assert_eq!(t.error.as_deref(), Some("refused"));
            assert_eq!(o.totals.orphaned_backups, 1);
            assert_eq!(o.totals.storage_bytes, 350);
            assert_eq!(o.totals.completed_backups, 3);
            Ok(())
        })
        .expect("overview");
    }

    #[test]
    fn analytics_points_are_typed() {
        let cat = Catalog::open_in_memory().expect("catalog");
        cat.with(|c| {
            let a = project(c, "alpha");
            events::record(
                c,
                Some(&a),
                "backup",
                &json!({"backup_id": "b1", "status": "completed", "type": "full", "duration_ms": 1200,
                        "stored_bytes": 10, "plain_bytes": 40, "throughput_bps": 33.3}),
            )?;
            events::record(c, Some(&a), "connection_test", &json!({"ok": true, "latency_ms": 2.0}))?;
            crate::engine::catalog::audit::append(
                c,
                "me",
                "backup.delete",
                Some("alpha"),
                &json!({"backup_id": "b1", "bytes": 10}),
            )?;
            let d = analytics(c, None)?;
            assert_eq!(d.backups.len(), 1);
            assert_eq!(d.backups[0].duration_ms, Some(1200));
            assert_eq!(d.backups[0].stored_bytes, Some(10));
            assert_eq!(d.tests.len(), 1);
            assert!(d.tests[0].ok);
            assert_eq!(d.deletions.len(), 1);
            assert_eq!(d.deletions[0].bytes, Some(10));
            let later = analytics(c, Some("2999-01-01"))?;
            assert!(later.backups.is_empty());
            let _ = backups::list(c, None, 1)?;
            Ok(())
        })
        .expect("analytics");
    }
}
