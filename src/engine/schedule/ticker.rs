//! The ticker: one engine function that finds due jobs and starts them —
//! called by the GUI's subscription and by `supabackup daemon` alike, with
//! the clock as a parameter. Only the process holding the scheduler lease
//! (an OS lock on `config/scheduler.lock`) acts, and every run is claimed
//! with a compare-and-set on the job row, so two tickers never start the
//! same run. Missed runs (sleep, app closed) are caught up once within a
//! grace window; older ones are recorded as missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::conditions::{ChangeState, Condition, decide};
use super::cron::CronExpr;
use super::hooks::{HookEnv, run_hook};
use super::jobs::{self, ChainPolicy, HookPolicy, Job, rfc3339};
use super::rtests::{
    rtest_count_key, rtest_next_key, rtest_running_key, run_restore_tests, scheduled_restore_test,
};
use crate::engine::Engine;
use crate::engine::backup::BackupRequest;
use crate::engine::catalog::{analytics, settings};
use crate::engine::error::{Error, Result};
use crate::engine::notify::{Alert, Delivery};

#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Jobs running at once, all projects together.
    pub max_concurrent: usize,
    /// Jobs running at once for one project.
    pub per_project: usize,
    /// A missed run younger than this is caught up (once); older is skipped.
    pub catch_up_grace: chrono::Duration,
    /// Take the process-wide lease before acting (off only in tests of the
    /// per-run claim).
    pub use_lease: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent: 2,
            per_project: 1,
            catch_up_grace: chrono::Duration::hours(12),
            use_lease: true,
        }
    }
}

/// How one job run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobOutcome {
    pub job_id: String,
    /// What ran: `backup` (the job's run) or `restore-test` (its own
    /// restore-test schedule).
    pub kind: String,
    /// completed, failed, skipped (per project: see `steps`).
    pub status: String,
    pub steps: Vec<StepOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepOutcome {
    pub project: String,
    /// completed, failed, skipped, not-run
    pub status: String,
    pub backup_id: Option<String>,
    pub detail: Option<String>,
    /// A copy went to the failover destination instead (which one, why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
}

/// What one tick did.
#[derive(Debug, Default)]
pub struct TickReport {
    /// This process holds the lease (only then does it act).
    pub leader: bool,
    pub started: Vec<String>,
    /// Due, but over the concurrency limits: they start on a later tick.
    pub queued: Vec<String>,
    /// Missed by more than the grace window: skipped, recorded.
    pub missed: Vec<String>,
    /// Jobs whose own restore-test schedule fired (their outcomes are
    /// among `handles`, one step per project, status passed/failed/skipped).
    pub restore_tests: Vec<String>,
    pub handles: Vec<tokio::task::JoinHandle<JobOutcome>>,
    /// Health probes started (project ids) and their tasks.
    pub probed: Vec<String>,
    pub probes: Vec<tokio::task::JoinHandle<()>>,
    /// The Supabase account's sync (platform statuses, new projects when
    /// auto-add is on), when one was due.
    pub fleet: Option<tokio::task::JoinHandle<()>>,
}

/// One per process: holds the lease and knows what it runs.
pub struct Scheduler {
    engine: Engine,
    pub config: SchedulerConfig,
    lease: Option<std::fs::File>,
    running: Arc<Mutex<HashMap<String, String>>>,
    /// Projects being probed (one probe at a time each).
    probing: Arc<Mutex<std::collections::HashSet<String>>>,
    /// A fleet sync is running (one at a time).
    syncing: Arc<std::sync::atomic::AtomicBool>,
    cancel: CancellationToken,
    /// How alerts go out (desktop notifier, retries).
    pub delivery: Delivery,
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Scheduler {
    pub fn new(engine: Engine, config: SchedulerConfig) -> Self {
        let delivery = engine.delivery();
        Scheduler {
            engine,
            config,
            lease: None,
            running: Arc::new(Mutex::new(HashMap::new())),
            probing: Arc::new(Mutex::new(std::collections::HashSet::new())),
            syncing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            cancel: CancellationToken::new(),
            delivery,
        }
    }

    /// Stops running jobs (their backups are cancelled and cleaned).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Job ids running in this process.
    pub fn running(&self) -> Vec<String> {
        self.running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn take_lease(&mut self) -> Result<bool> {
        if self.lease.is_some() || !self.config.use_lease {
            return Ok(true);
        }
        let path = self.engine.data_dir().config().join("scheduler.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        match f.try_lock() {
            Ok(()) => {
                self.lease = Some(f);
                Ok(true)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }

    /// One tick at `now`.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<TickReport> {
        let mut report = TickReport::default();
        if !self.take_lease()? {
            return Ok(report);
        }
        report.leader = true;
        // Projects whose newest backup is too old (each alerted once).
        if let Err(e) = self.engine.check_stale(now, &self.delivery).await {
            tracing::warn!("stale-backup check failed: {e}");
        }
        // Health probes of the projects due, in the background.
        match self.engine.probes_due(now).await {
            Ok(due) => {
                for pid in due {
                    let fresh = self
                        .probing
                        .lock()
                        .map(|mut p| p.insert(pid.clone()))
                        .unwrap_or(false);
                    if !fresh {
                        continue;
                    }
                    let (engine, delivery, probing) = (
                        self.engine.clone(),
                        self.delivery.clone(),
                        self.probing.clone(),
                    );
                    report.probed.push(pid.clone());
                    report.probes.push(tokio::spawn(async move {
                        if let Err(e) = engine.probe_project(&pid, &delivery).await {
                            tracing::warn!("health probe of {pid} failed: {e}");
                        }
                        if let Ok(mut p) = probing.lock() {
                            p.remove(&pid);
                        }
                    }));
                }
            }
            Err(e) => tracing::warn!("could not list the projects due for a health probe: {e}"),
        }
        self.fleet_sync(now, &mut report).await;
        let jobs = self.engine.list_jobs().await?;
        let tested: Vec<Job> = jobs
            .iter()
            .filter(|j| j.enabled && j.config.restore_test.cron.is_some())
            .cloned()
            .collect();
        for job in jobs.into_iter().filter(|j| j.enabled) {
            let Some(next) = job.next_run_at.as_deref().and_then(parse) else {
                continue;
            };
            if next > now {
                continue;
            }
            let cron = match CronExpr::parse(&job.cron) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("job {} has an invalid schedule: {e}", job.id);
                    continue;
                }
            };
            let missed_slots = 1 + cron
                .next_in(&chrono::Utc, next, 1000)
                .iter()
                .take_while(|t| **t <= now)
                .count();
            let following = cron.next_run(job.timezone, now).map(rfc3339);
            let late = now - next;
            if late > self.config.catch_up_grace {
                let (id, seen, ts) = (job.id.clone(), job.next_run_at.clone(), rfc3339(now));
                let f = following.clone();
                let claimed = self
                    .engine
                    .catalog()
                    .call(move |c| {
                        jobs::claim(c, &id, seen.as_deref(), &ts, f.as_deref(), "missed")
                    })
                    .await?;
                if claimed {
                    self.record(&job, "job_decision", json!({"decision": "missed", "missed_runs": missed_slots, "late_secs": late.num_seconds()})).await;
                    report.missed.push(job.id.clone());
                    let project = self
                        .engine
                        .project(&job.project_id)
                        .await
                        .map(|p| p.name)
                        .unwrap_or_else(|_| job.project_id.clone());
                    let alert = Alert::schedule_missed(
                        &job.project_id,
                        &project,
                        &job.id,
                        &job.name,
                        missed_slots,
                        &rfc3339(next),
                    );
                    self.engine.dispatch_alert(&alert, &self.delivery).await;
                }
                continue;
            }
            if self.at_limit(&job.project_id, None)? {
                let id = job.id.clone();
                self.engine
                    .catalog()
                    .call(move |c| jobs::set_status(c, &id, "queued"))
                    .await?;
                report.queued.push(job.id.clone());
                continue;
            }
            let (id, seen, ts) = (job.id.clone(), job.next_run_at.clone(), rfc3339(now));
            let f = following.clone();
            let claimed = self
                .engine
                .catalog()
                .call(move |c| jobs::claim(c, &id, seen.as_deref(), &ts, f.as_deref(), "running"))
                .await?;
            if !claimed {
                continue; // another ticker took this run
            }
            if missed_slots > 1 {
                self.record(
                    &job,
                    "job_decision",
                    json!({"decision": "caught_up", "missed_runs": missed_slots, "ran_once": true}),
                )
                .await;
            }
            if let Ok(mut r) = self.running.lock() {
                r.insert(job.id.clone(), job.project_id.clone());
            }
            let engine = self.engine.clone();
            let running = self.running.clone();
            let cancel = self.cancel.child_token();
            let delivery = self.delivery.clone();
            report.started.push(job.id.clone());
            report.handles.push(tokio::spawn(async move {
                let outcome = run_job(&engine, &job, cancel, &delivery).await;
                let (id, status) = (job.id.clone(), outcome.status.clone());
                let _ = engine
                    .catalog()
                    .call(move |c| jobs::set_status(c, &id, &status))
                    .await;
                if let Ok(mut r) = running.lock() {
                    r.remove(&job.id);
                }
                outcome
            }));
        }
        // Restore tests on their own schedules, after the backups: one that
        // is due while its project's backup runs waits for a later tick.
        for job in tested {
            self.restore_test_due(job, now, &mut report).await?;
        }
        Ok(report)
    }

    /// Starts a job's own-schedule restore test when it is due. The first
    /// tick that sees the schedule only sets its next time; a test missed
    /// by more than the catch-up grace is skipped and recorded.
    async fn restore_test_due(
        &mut self,
        job: Job,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        let Some(expr) = job.config.restore_test.cron.as_deref() else {
            return Ok(());
        };
        let cron = match CronExpr::parse(expr) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("job {} has an invalid restore-test schedule: {e}", job.id);
                return Ok(());
            }
        };
        let key = rtest_next_key(&job.id);
        let following = cron.next_run(job.timezone, now).map(rfc3339);
        // When it fires next; the first sighting only sets that.
        let (k, f) = (key.clone(), following.clone());
        let seen = self
            .engine
            .catalog()
            .call(move |c| {
                let raw = settings::get::<Option<String>>(c, &k)?.flatten();
                if raw.as_deref().and_then(parse).is_none() {
                    settings::set(c, &k, &f)?;
                    return Ok(None);
                }
                Ok(raw)
            })
            .await?;
        let Some(seen) = seen.filter(|s| parse(s).is_some_and(|n| n <= now)) else {
            return Ok(());
        };
        // Due, but over the limits (its project's backup runs): it stays
        // due for a later tick.
        let run_key = rtest_running_key(&job.id);
        if self.at_limit(&job.project_id, Some(&run_key))? {
            return Ok(());
        }
        // Claimed with a compare-and-set, as job runs are.
        let (k, f, s2) = (key, following, seen.clone());
        let claimed = self
            .engine
            .catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let now_seen = settings::get::<Option<String>>(&tx, &k)?.flatten();
                if now_seen.as_deref() != Some(s2.as_str()) {
                    return Ok(false);
                }
                settings::set(&tx, &k, &f)?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if !claimed {
            return Ok(());
        }
        if parse(&seen).is_some_and(|n| now - n > self.config.catch_up_grace) {
            self.record(
                &job,
                "job_decision",
                json!({"decision": "restore_test_missed", "due": seen}),
            )
            .await;
            return Ok(());
        }
        if let Ok(mut r) = self.running.lock() {
            r.insert(run_key.clone(), job.project_id.clone());
        }
        let engine = self.engine.clone();
        let running = self.running.clone();
        let cancel = self.cancel.child_token();
        report.restore_tests.push(job.id.clone());
        report.handles.push(tokio::spawn(async move {
            let outcome = run_restore_tests(&engine, &job, cancel).await;
            if let Ok(mut r) = running.lock() {
                r.remove(&run_key);
            }
            outcome
        }));
        Ok(())
    }

    /// Whether starting work for `project_id` now would go over the
    /// concurrency limits (or `key` already runs).
    fn at_limit(&self, project_id: &str, key: Option<&str>) -> Result<bool> {
        let r = self
            .running
            .lock()
            .map_err(|_| Error::internal("scheduler state poisoned"))?;
        let for_project = r.values().filter(|p| p.as_str() == project_id).count();
        Ok(key.is_some_and(|k| r.contains_key(k))
            || r.len() >= self.config.max_concurrent
            || for_project >= self.config.per_project)
    }

    /// Starts the account's sync in the background when one is due (the
    /// projects it adds get their first runs from their schedules).
    async fn fleet_sync(&self, now: DateTime<Utc>, report: &mut TickReport) {
        use std::sync::atomic::Ordering;
        match self.engine.fleet_sync_due(now).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!("could not tell whether a Supabase account sync is due: {e}");
                return;
            }
        }
        if self.syncing.swap(true, Ordering::SeqCst) {
            return;
        }
        let (engine, syncing) = (self.engine.clone(), self.syncing.clone());
        report.fleet = Some(tokio::spawn(async move {
            match engine.fleet_sync().await {
                Ok(r) if !r.added.added.is_empty() => tracing::info!(
                    "Supabase account sync: added {}",
                    r.added
                        .added
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("Supabase account sync failed: {e}"),
            }
            syncing.store(false, Ordering::SeqCst);
        }));
    }

    async fn record(&self, job: &Job, event: &str, data: serde_json::Value) {
        let (pid, event, mut data) = (job.project_id.clone(), event.to_owned(), data);
        data["job_id"] = json!(job.id);
        let _ = self
            .engine
            .catalog()
            .call(move |c| analytics::record(c, Some(&pid), &event, &data))
            .await;
    }
}

fn state_key(job: &str, project: &str) -> String {
    format!("job_state.{job}.{project}")
}

/// Runs one job now: for each project of its chain, the skip condition,
/// the pre-hook, the backup, the post-hook, retention, then alerts.
pub async fn run_job(
    engine: &Engine,
    job: &Job,
    cancel: CancellationToken,
    delivery: &Delivery,
) -> JobOutcome {
    tracing::info!("job '{}' ({}) runs", job.name, job.id);
    let mut steps = Vec::new();
    let mut projects = vec![job.project_id.clone()];
    projects.extend(job.config.chain.iter().cloned());
    let mut stop = false;
    for pid in projects {
        if stop {
            steps.push(StepOutcome {
                project: pid,
                status: "not-run".into(),
                backup_id: None,
                detail: Some("an earlier project of the chain failed".into()),
                failover: None,
            });
            continue;
        }
        let step = run_step(engine, job, &pid, cancel.clone()).await;
        tracing::info!(
            "job '{}': {} {}{}",
            job.name,
            step.project,
            step.status,
            step.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        let alert = match step.status.as_str() {
            "failed" => Some(Alert::backup_failed(
                Some(&pid),
                &step.project,
                step.backup_id.as_deref(),
                step.detail.as_deref().unwrap_or("the backup failed"),
            )),
            "completed" => step.backup_id.as_deref().map(|id| {
                Alert::backup_succeeded(Some(&pid), &step.project, id, json!({"job_id": job.id}))
            }),
            _ => None,
        };
        if let Some(a) = alert {
            engine.dispatch_alert(&a, delivery).await;
        }
        if let Some(why) = &step.failover {
            // The run completed, but not where it should have: say so to
            // whoever listens for failures.
            let mut a =
                Alert::backup_failed(Some(&pid), &step.project, step.backup_id.as_deref(), why);
            a.title = format!("Backup of {} used the failover destination", step.project);
            engine.dispatch_alert(&a, delivery).await;
        }
        if step.status == "failed" && job.config.chain_policy == ChainPolicy::Stop {
            stop = true;
        }
        let event = json!({"job_id": job.id, "status": step.status, "backup_id": step.backup_id, "detail": step.detail});
        let p = pid.clone();
        let _ = engine
            .catalog()
            .call(move |c| analytics::record(c, Some(&p), "job_run", &event))
            .await;
        steps.push(step);
    }
    let status = if steps
        .iter()
        .any(|s| s.status == "failed" || s.status == "not-run")
    {
        "failed"
    } else if steps.iter().all(|s| s.status == "skipped") {
        "skipped"
    } else {
        "completed"
    };
    JobOutcome {
        job_id: job.id.clone(),
        kind: "backup".into(),
        status: status.into(),
        steps,
    }
}

async fn run_step(
    engine: &Engine,
    job: &Job,
    project_id: &str,
    cancel: CancellationToken,
) -> StepOutcome {
    let name = engine
        .project(project_id)
        .await
        .map(|p| p.name)
        .unwrap_or_else(|_| project_id.to_owned());
    let fail = |detail: String| StepOutcome {
        project: name.clone(),
        status: "failed".into(),
        backup_id: None,
        detail: Some(detail),
        failover: None,
    };
    let project = match engine.project(project_id).await {
        Ok(p) => p,
        Err(e) => return fail(e.message),
    };
    // Conditions: run only when one holds since the last successful backup.
    let conditions = job.config.conditions();
    let state = if conditions.is_empty() {
        None
    } else {
        match engine.change_state(project_id).await {
            Ok(s) => Some(s),
            Err(e) => return fail(e.message),
        }
    };
    if let Some(now_state) = &state {
        let key = state_key(&job.id, project_id);
        let last: Option<ChangeState> = engine
            .catalog()
            .call(move |c| settings::get(c, &key))
            .await
            .ok()
            .flatten();
        let d = decide(&conditions, last.as_ref(), now_state);
        let event = json!({
            "job_id": job.id,
            "decision": if d.run { "ran" } else { "skipped" },
            "reason": d.reason,
            "conditions": conditions.iter().map(Condition::describe).collect::<Vec<_>>(),
            "writes": now_state.writes,
            "size": now_state.size,
        });
        let pid = project_id.to_owned();
        let _ = engine
            .catalog()
            .call(move |c| analytics::record(c, Some(&pid), "job_decision", &event))
            .await;
        if !d.run {
            return StepOutcome {
                project: project.name,
                status: "skipped".into(),
                backup_id: None,
                detail: Some(d.reason),
                failover: None,
            };
        }
    }
    let mut env = HookEnv {
        phase: "pre",
        project: project.name.clone(),
        project_ref: project.project_ref.clone(),
        job_id: job.id.clone(),
        backup_type: job.config.backup.kind.as_str().into(),
        status: "running".into(),
        ..Default::default()
    };
    let mut warnings = Vec::new();
    if let Some(h) = &job.config.pre_hook
        && let Err(e) = run_hook(h, &env).await
    {
        match h.on_failure {
            HookPolicy::Abort => return fail(format!("the backup did not run: {}", e.message)),
            HookPolicy::Warn => warnings.push(e.message),
        }
    }
    let result = engine
        .run_backup(
            BackupRequest {
                no_hooks: false,
                project: project.id.clone(),
                options: job.config.backup.clone(),
                job_id: Some(job.id.clone()),
                store: job.config.store.clone(),
            },
            Arc::new(|_| {}),
            cancel.clone(),
        )
        .await;
    let mut step = match &result {
        Ok(rec) => StepOutcome {
            project: project.name.clone(),
            status: "completed".into(),
            backup_id: Some(rec.id.clone()),
            detail: None,
            failover: None,
        },
        Err(e) => fail(e.message.clone()),
    };
    if let Ok(rec) = &result {
        // Off-site copies the job asks for: each stored, stood in for by
        // the failover destination, or failed (then the run failed: the
        // backup exists only here).
        let copies = engine.backup_copies(&rec.id).await.unwrap_or_default();
        let mut failed = Vec::new();
        for name in &job.config.store.destinations {
            let dest = engine.destination(name).await.ok();
            let at = |c: &crate::engine::destination::copies::BackupCopy| {
                dest.as_ref().is_some_and(|d| d.id == c.destination_id)
            };
            if copies.iter().any(|c| at(c) && c.status == "stored") {
                continue;
            }
            let why = copies
                .iter()
                .find(|c| at(c))
                .and_then(|c| c.error.clone())
                .unwrap_or_else(|| "not stored".into());
            match copies.iter().find(|c| {
                c.status == "stored"
                    && dest
                        .as_ref()
                        .is_some_and(|d| c.failover_for.as_deref() == Some(d.id.as_str()))
            }) {
                Some(fo) => {
                    let text = format!(
                        "'{name}' could not be reached ({why}); the copy went to the failover destination '{}'",
                        fo.destination
                    );
                    warnings.push(text.clone());
                    step.failover = Some(text);
                }
                None => failed.push(format!("the copy to '{name}' failed: {why}")),
            }
        }
        if !failed.is_empty() {
            step.status = "failed".into();
            step.detail = Some(format!(
                "the backup completed here, but {}",
                failed.join("; ")
            ));
        }
        // The DR drill: the off-site copy restores, read straight from there.
        if let Some(from) = job
            .config
            .drill_from
            .as_ref()
            .filter(|_| step.status == "completed")
        {
            // A failover copy stands in for the drill's destination.
            let source = match engine.destination(from).await {
                Ok(d) => copies
                    .iter()
                    .find(|c| {
                        c.status == "stored" && c.failover_for.as_deref() == Some(d.id.as_str())
                    })
                    .map(|c| c.destination.clone())
                    .unwrap_or_else(|| from.clone()),
                Err(_) => from.clone(),
            };
            match engine
                .restore_test_from(
                    &rec.id,
                    None,
                    Some(source.clone()),
                    Arc::new(|_| {}),
                    cancel.clone(),
                )
                .await
            {
                Ok(r) if r.ok => tracing::info!(
                    "job '{}': DR drill from '{source}' passed ({} tables)",
                    job.name,
                    r.tables.len()
                ),
                Ok(r) => {
                    step.status = "failed".into();
                    step.detail = Some(format!(
                        "the DR drill from '{source}' failed: {}",
                        r.first_failure.unwrap_or_else(|| "a table differs".into())
                    ));
                }
                Err(e) => {
                    step.status = "failed".into();
                    step.detail = Some(format!(
                        "the DR drill from '{source}' failed: {}",
                        e.message
                    ));
                }
            }
        }
    }
    // Every Nth successful backup is restore-tested; a failure is said in
    // the run's detail and alerted (verification.failed), while the backup
    // itself stays completed.
    if let (Ok(rec), Some(n)) = (&result, job.config.restore_test.every)
        && step.status == "completed"
    {
        let key = rtest_count_key(&job.id, project_id);
        let k = key.clone();
        let count = engine
            .catalog()
            .call(move |c| Ok(settings::get::<u32>(c, &k)?.unwrap_or(0)))
            .await
            .unwrap_or(0)
            + 1;
        let due = count >= n;
        let _ = engine
            .catalog()
            .call(move |c| settings::set(c, &key, &if due { 0 } else { count }))
            .await;
        if due {
            match scheduled_restore_test(engine, job, project_id, &rec.id, "backup", cancel.clone())
                .await
            {
                Ok(t) | Err(t) => warnings.push(t),
            }
        }
    }
    if let Some(h) = &job.config.post_hook {
        env.phase = "post";
        env.status = step.status.clone();
        if let Ok(rec) = &result {
            env.backup_id = rec.id.clone();
            env.backup_dir = rec.file_path.clone().unwrap_or_default();
            if let Ok(m) = engine.backup_manifest(&rec.id).await {
                env.artifacts = m
                    .files
                    .iter()
                    .map(|f| format!("{}/{}", env.backup_dir, f.name))
                    .collect();
            }
        }
        if let Err(e) = run_hook(h, &env).await {
            warnings.push(e.message);
        }
    }
    if result.is_ok() {
        if let Some(s) = state {
            let key = state_key(&job.id, project_id);
            let _ = engine
                .catalog()
                .call(move |c| settings::set(c, &key, &s))
                .await;
        }
        if !job.retention.is_empty() {
            match engine
                .prune_project(&project.id, &job.retention, false, Utc::now())
                .await
            {
                Ok(r) if !r.deleted.is_empty() => warnings.push(format!(
                    "retention deleted {} old local backup(s)",
                    r.deleted.len()
                )),
                Ok(_) => {}
                Err(e) => warnings.push(format!("retention failed: {}", e.message)),
            }
        }
        for (dest, rules) in &job.config.destination_retention {
            if rules.is_empty() {
                continue;
            }
            match engine
                .prune_at(&project.id, Some(dest), rules, false, Utc::now())
                .await
            {
                Ok(r) if !r.deleted.is_empty() => warnings.push(format!(
                    "retention deleted {} old copies at '{dest}'",
                    r.deleted.len()
                )),
                Ok(_) => {}
                Err(e) => warnings.push(format!("retention at '{dest}' failed: {}", e.message)),
            }
        }
    }
    if !warnings.is_empty() {
        let w = warnings.join("; ");
        step.detail = Some(match step.detail {
            Some(d) => format!("{d}; {w}"),
            None => w,
        });
    }
    step
}
