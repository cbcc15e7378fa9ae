//! Scheduled restore tests (a job's `restore_test` plan): after every Nth
//! successful backup of a project, or on the job's own restore-test cron
//! (the ticker claims those runs, `Scheduler::restore_test_due`); each
//! test is recorded with the job (`job_restore_test`) and a failure raises
//! `verification.failed` (the restore test itself does).

use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::jobs::Job;
use super::ticker::{JobOutcome, StepOutcome};
use crate::engine::Engine;
use crate::engine::catalog::analytics;

/// When a job's own restore-test schedule fires next (a settings key).
pub(crate) fn rtest_next_key(job: &str) -> String {
    format!("restore_test.next.{job}")
}

/// Successful backups of a project by a job since its last restore test.
pub(crate) fn rtest_count_key(job: &str, project: &str) -> String {
    format!("restore_test.count.{job}.{project}")
}

/// A scheduled restore test in the scheduler's table of running work.
pub(crate) fn rtest_running_key(job: &str) -> String {
    format!("{job}#restore-test")
}

/// Restore-tests a backup for a job and records the outcome with the
/// job's id (analytics `job_restore_test`). `Ok(text)` when it passed,
/// `Err(text)` when it failed or could not run (the test itself raised
/// `verification.failed`).
pub(crate) async fn scheduled_restore_test(
    engine: &Engine,
    job: &Job,
    project_id: &str,
    backup_id: &str,
    trigger: &str,
    cancel: CancellationToken,
) -> std::result::Result<String, String> {
    // A backup kept only off-site (a job without a local copy) is read
    // from its first stored copy.
    let from = match engine.backup(backup_id).await {
        Ok(b) if b.local_state != "present" => engine
            .backup_copies(backup_id)
            .await
            .ok()
            .and_then(|c| c.into_iter().find(|c| c.status == "stored"))
            .map(|c| c.destination),
        _ => None,
    };
    let r = engine
        .restore_test_from(backup_id, None, from, Arc::new(|_| {}), cancel)
        .await;
    let (ok, text) = match &r {
        Ok(rep) if rep.ok => (
            true,
            format!("its restore test passed ({} tables)", rep.tables.len()),
        ),
        Ok(rep) => (
            false,
            format!(
                "its restore test failed: {}",
                rep.first_failure.as_deref().unwrap_or("a table differs")
            ),
        ),
        Err(e) => (false, format!("its restore test failed: {}", e.message)),
    };
    tracing::info!("job '{}': backup {backup_id}: {text}", job.name);
    let event = json!({"job_id": job.id, "backup_id": backup_id, "trigger": trigger, "ok": ok, "detail": text});
    let pid = project_id.to_owned();
    let _ = engine
        .catalog()
        .call(move |c| analytics::record(c, Some(&pid), "job_restore_test", &event))
        .await;
    if ok { Ok(text) } else { Err(text) }
}

/// A job's own-schedule restore test: the newest backup of each of its
/// projects that holds schema and data.
pub(crate) async fn run_restore_tests(
    engine: &Engine,
    job: &Job,
    cancel: CancellationToken,
) -> JobOutcome {
    let mut projects = vec![job.project_id.clone()];
    projects.extend(job.config.chain.iter().cloned());
    let mut steps = Vec::new();
    for pid in projects {
        let name = engine
            .project(&pid)
            .await
            .map(|p| p.name)
            .unwrap_or_else(|_| pid.clone());
        let newest = engine
            .list_backups(Some(&pid), 200)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|b| {
                b.status == "completed" && matches!(b.backup_type.as_str(), "full" | "incremental")
            });
        let step = |status: &str, backup_id: Option<String>, detail: String| StepOutcome {
            project: name.clone(),
            status: status.into(),
            backup_id,
            detail: Some(detail),
            failover: None,
        };
        let Some(b) = newest else {
            steps.push(step(
                "skipped",
                None,
                "no completed full or incremental backup to test yet".into(),
            ));
            continue;
        };
        let r = scheduled_restore_test(engine, job, &pid, &b.id, "schedule", cancel.clone()).await;
        steps.push(match r {
            Ok(t) => step("passed", Some(b.id), t),
            Err(t) => step("failed", Some(b.id), t),
        });
    }
    let status = if steps.iter().any(|s| s.status == "failed") {
        "failed"
    } else if steps.iter().all(|s| s.status == "skipped") {
        "skipped"
    } else {
        "completed"
    };
    JobOutcome {
        job_id: job.id.clone(),
        kind: "restore-test".into(),
        status: status.into(),
        steps,
    }
}
