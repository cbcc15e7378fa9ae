//! Backup jobs (`backup_jobs` rows): a cron schedule, a backup config,
//! retention, hooks, chaining and a skip-when-unchanged condition.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::conditions::Condition;
use super::cron::{CronExpr, JobTz};
use super::retention::Retention;
use crate::engine::Engine;
use crate::engine::backup::BackupOptions;
use crate::engine::catalog::{audit, new_id, now, settings};
use crate::engine::error::{Error, Result};

/// What to do when a hook fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HookPolicy {
    /// A failing pre-hook stops the backup.
    #[default]
    Abort,
    /// Log and go on.
    Warn,
}

/// A user command run before or after a backup (`sh -c`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub command: String,
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub on_failure: HookPolicy,
}

fn default_hook_timeout() -> u64 {
    300
}

/// Whether a chain goes on after a failed project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChainPolicy {
    #[default]
    Continue,
    Stop,
}

/// When a job restore-tests its backups: into a throw-away database on the
/// scratch server of Settings (dropped afterwards), by the path a real
/// restore takes. Either, both or neither may be set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RestoreTestPlan {
    /// After every Nth successful backup of each of the job's projects
    /// (1: after every backup), testing the backup just made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u32>,
    /// On its own cron schedule, in the job's timezone: the newest
    /// testable backup of each of the job's projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

impl JobConfig {
    /// The conditions a run is decided on: `when`, or what the older
    /// `skip_if_unchanged` meant (rows written, or the size moved by more
    /// than `min_size_change`).
    pub fn conditions(&self) -> Vec<Condition> {
        if !self.when.is_empty() {
            return self.when.clone();
        }
        if self.skip_if_unchanged {
            return vec![
                Condition::Changed,
                Condition::Size {
                    percent: None,
                    bytes: Some(self.min_size_change + 1),
                },
            ];
        }
        Vec::new()
    }
}

impl RestoreTestPlan {
    pub fn is_off(&self) -> bool {
        self.every.is_none() && self.cron.is_none()
    }

    /// How the job list and the schedule form say it.
    pub fn describe(&self) -> String {
        let every = self.every.map(|n| match n {
            1 => "after every backup".to_owned(),
            n => format!("after every {n} backups"),
        });
        let cron = self.cron.as_ref().map(|c| format!("on '{c}'"));
        match (every, cron) {
            (None, None) => "off".into(),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (Some(a), Some(b)) => format!("{a} and {b}"),
        }
    }
}

/// Everything a job does besides its schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobConfig {
    pub backup: BackupOptions,
    /// More projects (ids) backed up one after another after the job's own.
    #[serde(default)]
    pub chain: Vec<String>,
    #[serde(default)]
    pub chain_policy: ChainPolicy,
    /// Run only when one of these holds since the job's last successful
    /// backup of the project (none: always run). See `conditions.rs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
    /// The older form of `when: [changed]`: skip when the database has not
    /// changed since the last successful backup (still read).
    #[serde(default)]
    pub skip_if_unchanged: bool,
    /// With `skip_if_unchanged`: a size change below this many bytes with
    /// no row changes still counts as unchanged.
    #[serde(default)]
    pub min_size_change: u64,
    #[serde(default)]
    pub pre_hook: Option<Hook>,
    #[serde(default)]
    pub post_hook: Option<Hook>,
    /// Copies at destinations (and whether the local folder is kept).
    #[serde(default)]
    pub store: crate::engine::destination::copies::StorePlan,
    /// Retention per destination name (the job's `retention` is the local
    /// folder's).
    #[serde(default)]
    pub destination_retention: std::collections::BTreeMap<String, Retention>,
    /// A disaster-recovery drill: after each run, restore-test the new
    /// backup straight from this destination's copy (on the scratch server
    /// of Settings); the run fails when it does not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_from: Option<String>,
    /// Scheduled restore tests.
    #[serde(default, skip_serializing_if = "RestoreTestPlan::is_off")]
    pub restore_test: RestoreTestPlan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub cron: String,
    pub timezone: JobTz,
    pub config: JobConfig,
    pub retention: Retention,
    pub enabled: bool,
    pub last_run_at: Option<String>,
    pub last_status: Option<String>,
    pub next_run_at: Option<String>,
    pub created_at: String,
}

/// What a person types to add or change a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInput {
    pub project: String,
    pub name: Option<String>,
    pub cron: String,
    pub timezone: JobTz,
    pub config: JobConfig,
    pub retention: Retention,
    pub enabled: bool,
}

const COLUMNS: &str =
    "id, project_id, name, cron_expression, timezone, backup_config, retention, enabled,
    last_run_at, last_status, next_run_at, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let tz: String = r.get(4)?;
    let config: String = r.get(5)?;
    let retention: String = r.get(6)?;
    Ok(Job {
        id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        cron: r.get(3)?,
        timezone: JobTz::parse(&tz).unwrap_or_default(),
        config: serde_json::from_str(&config).unwrap_or_default(),
        retention: serde_json::from_str(&retention).unwrap_or_default(),
        enabled: r.get(7)?,
        last_run_at: r.get(8)?,
        last_status: r.get(9)?,
        next_run_at: r.get(10)?,
        created_at: r.get(11)?,
    })
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<Job>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backup_jobs ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn get(conn: &Connection, id: &str) -> Result<Job> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM backup_jobs WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?
    .ok_or_else(|| {
        Error::not_found(format!("no job with id '{id}'"))
            .with_hint("`supabackup job list` shows the jobs")
    })
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Marks a job as started at `now` and moves its next run, only if nobody
/// else did since `seen_next`: two tickers can never both claim a run.
pub(crate) fn claim(
    conn: &Connection,
    id: &str,
    seen_next: Option<&str>,
    now: &str,
    next: Option<&str>,
    status: &str,
) -> Result<bool> {
    let n = conn.execute(
        "UPDATE backup_jobs SET last_run_at = ?3, next_run_at = ?4, last_status = ?5, updated_at = ?3
         WHERE id = ?1 AND next_run_at IS ?2 AND enabled = 1",
        params![id, seen_next, now, next, status],
    )?;
    Ok(n == 1)
}

pub(crate) fn set_status(conn: &Connection, id: &str, status: &str) -> Result<()> {
    conn.execute(
        "UPDATE backup_jobs SET last_status = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, status, now()],
    )?;
    Ok(())
}

/// Checks what a job does (its schedule, backup options, store plan,
/// restore-test plan and hooks); the projects and destinations it names
/// are checked against the catalog by [`check_destinations`].
pub(crate) fn check_input(input: &JobInput) -> Result<CronExpr> {
    let cron = CronExpr::parse(&input.cron)?;
    input.config.backup.validate()?;
    Engine::check_plan_for(input.config.backup.kind, &input.config.store)?;
    let plan = &input.config.restore_test;
    if plan.every == Some(0) || plan.every.is_some_and(|n| n > 10_000) {
        return Err(Error::invalid(
            "restore-test every N backups: N must be between 1 and 10000",
        ));
    }
    if let Some(c) = &plan.cron {
        CronExpr::parse(c).map_err(|e| {
            Error::invalid(format!("the restore-test schedule: {}", e.message))
                .with_hint("five fields, e.g. `0 4 * * 0` for Sundays at 04:00")
        })?;
    }
    if !plan.is_off()
        && !matches!(
            input.config.backup.kind,
            crate::engine::backup::BackupKind::Full
                | crate::engine::backup::BackupKind::Incremental
        )
    {
        return Err(Error::invalid(format!(
            "a restore test needs schema and data; this job makes {} backups",
            input.config.backup.kind.as_str()
        ))
        .with_hint("use --type full or incremental, or turn the restore test off"));
    }
    for h in [&input.config.pre_hook, &input.config.post_hook]
        .into_iter()
        .flatten()
    {
        super::hooks::check_hook(h)?;
    }
    Ok(cron)
}

/// Every destination a job names exists.
pub(crate) fn check_destinations(conn: &Connection, config: &JobConfig) -> Result<()> {
    let names = crate::engine::destination::copies::plan_names(&config.store)
        .chain(config.destination_retention.keys());
    for n in names {
        crate::engine::destination::find(conn, n)?;
    }
    if let Some(d) = &config.drill_from {
        crate::engine::destination::find(conn, d)?;
        if !crate::engine::destination::copies::plan_names(&config.store)
            .any(|n| n.eq_ignore_ascii_case(d))
        {
            return Err(Error::invalid(format!(
                "the drill reads from '{d}', which the job does not copy to"
            ))
            .with_hint("add it to --destination (or make it the failover)"));
        }
    }
    for n in config.destination_retention.keys() {
        if !config
            .store
            .destinations
            .iter()
            .any(|d| d.eq_ignore_ascii_case(n))
            && config
                .store
                .failover
                .as_deref()
                .is_none_or(|f| !f.eq_ignore_ascii_case(n))
        {
            return Err(Error::invalid(format!(
                "retention is set for '{n}', which the job does not copy to"
            )));
        }
    }
    Ok(())
}

/// Whether `project_id` has a job named `name` (any case).
pub(crate) fn exists(conn: &Connection, project_id: &str, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM backup_jobs WHERE project_id = ?1 AND name = ?2 COLLATE NOCASE",
            params![project_id, name.trim()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Stores a new job (checked by [`check_input`] and [`check_destinations`],
/// its chain already project ids) for `project`; its first run is computed
/// from now. Inside the caller's transaction; returns its id.
pub(crate) fn insert(
    conn: &Connection,
    actor: &str,
    project: &crate::engine::project::Project,
    cron: &CronExpr,
    input: &JobInput,
) -> Result<String> {
    let next = cron.next_run(input.timezone, Utc::now()).map(rfc3339);
    let id = new_id();
    let name = input
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("{} {}", project.name, cron.source));
    let (cfg, ret) = (
        serde_json::to_string(&input.config)?,
        serde_json::to_string(&input.retention)?,
    );
    conn.execute(
        "INSERT INTO backup_jobs (id, project_id, name, cron_expression, timezone, backup_config, retention,
                                  enabled, next_run_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![id, project.id, name, cron.source, input.timezone.as_str(), cfg, ret, input.enabled, next, now()],
    )?;
    audit::append(
        conn,
        actor,
        "job.add",
        Some(&name),
        &json!({"job_id": id, "cron": cron.source, "project": project.name}),
    )?;
    Ok(id)
}

impl Engine {
    pub async fn list_jobs(&self) -> Result<Vec<Job>> {
        self.catalog().call(|c| list(c)).await
    }

    pub async fn job(&self, id: &str) -> Result<Job> {
        let id = id.to_owned();
        self.catalog().call(move |c| get(c, &id)).await
    }

    async fn check_destinations(&self, config: &JobConfig) -> Result<()> {
        let config = config.clone();
        self.catalog()
            .call(move |c| check_destinations(c, &config))
            .await
    }

    /// Adds a job; its first run is computed from now.
    pub async fn add_job(&self, input: JobInput) -> Result<Job> {
        let cron = check_input(&input)?;
        let project = self.project(&input.project).await?;
        self.check_destinations(&input.config).await?;
        let mut input = input;
        let mut chain = Vec::new();
        for p in &input.config.chain {
            chain.push(self.project(p).await?.id);
        }
        input.config.chain = chain;
        let actor = self.actor().to_owned();
        let id = self
            .catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let id = insert(&tx, &actor, &project, &cron, &input)?;
                tx.commit()?;
                Ok(id)
            })
            .await?;
        self.job(&id).await
    }

    /// Replaces a job's settings (its next run is recomputed).
    pub async fn update_job(&self, id: &str, input: JobInput) -> Result<Job> {
        let cron = check_input(&input)?;
        self.check_destinations(&input.config).await?;
        let project = self.project(&input.project).await?;
        let next = cron.next_run(input.timezone, Utc::now()).map(rfc3339);
        let actor = self.actor().to_owned();
        let (cfg, ret) = (
            serde_json::to_string(&input.config)?,
            serde_json::to_string(&input.retention)?,
        );
        let (id2, tz, enabled, src) = (
            id.to_owned(),
            input.timezone.as_str(),
            input.enabled,
            cron.source.clone(),
        );
        let name = input
            .name
            .clone()
            .unwrap_or_else(|| format!("{} {}", project.name, cron.source));
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                get(&tx, &id2)?;
                tx.execute(
                    "UPDATE backup_jobs SET project_id = ?2, name = ?3, cron_expression = ?4, timezone = ?5,
                        backup_config = ?6, retention = ?7, enabled = ?8, next_run_at = ?9, updated_at = ?10 WHERE id = ?1",
                    params![id2, project.id, name, src, tz, cfg, ret, enabled, next, now()],
                )?;
                // A changed restore-test schedule starts afresh.
                settings::remove(&tx, &super::rtests::rtest_next_key(&id2))?;
                audit::append(&tx, &actor, "job.edit", Some(&name), &json!({"job_id": id2}))?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        self.job(id).await
    }

    pub async fn set_job_enabled(&self, id: &str, enabled: bool) -> Result<Job> {
        let job = self.job(id).await?;
        let cron = CronExpr::parse(&job.cron)?;
        let next = if enabled {
            cron.next_run(job.timezone, Utc::now()).map(rfc3339)
        } else {
            None
        };
        let (id2, actor) = (id.to_owned(), self.actor().to_owned());
        self.catalog()
            .call(move |c| {
                c.execute(
                    "UPDATE backup_jobs SET enabled = ?2, next_run_at = ?3, updated_at = ?4 WHERE id = ?1",
                    params![id2, enabled, next, now()],
                )?;
                audit::append(c, &actor, if enabled { "job.enable" } else { "job.disable" }, Some(&id2), &json!({}))
            })
            .await?;
        self.job(id).await
    }

    pub async fn remove_job(&self, id: &str) -> Result<Job> {
        let job = self.job(id).await?;
        let (id2, actor, name) = (id.to_owned(), self.actor().to_owned(), job.name.clone());
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                tx.execute("DELETE FROM backup_jobs WHERE id = ?1", [&id2])?;
                // Its restore-test state (next time, counters) goes too.
                tx.execute(
                    "DELETE FROM settings WHERE key = ?1 OR key LIKE ?2",
                    params![
                        super::rtests::rtest_next_key(&id2),
                        format!("restore_test.count.{id2}.%")
                    ],
                )?;
                audit::append(
                    &tx,
                    &actor,
                    "job.remove",
                    Some(&name),
                    &json!({"job_id": id2}),
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(job)
    }
}
