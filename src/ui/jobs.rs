//! Long engine jobs as sipper straws. The engine reports progress through a
//! callback; here the callback feeds a tokio channel that the straw drains,
//! so the GUI gets a stream of progress messages and one final `Result`.
//!
//! The engine call runs in its own tokio task: when the GUI's task is
//! aborted (its handle dropped, the window closed) the straw's drop guard
//! cancels the engine's `CancellationToken`, and the engine still finishes
//! its own clean-up (temporary files, the catalog row turning `cancelled`).

use std::sync::Arc;
use std::time::Instant;

use iced::task::{Straw, sipper};
use tokio_util::sync::CancellationToken;

use crate::engine::backup::{BackupProgress, BackupRequest, ProgressFn};
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::restore::{RestoreProgress, RestoreProgressFn, RestoreRecord, RestoreRequest};
use crate::engine::{Engine, Error};

/// A running job, as the app keeps it.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub project: String,
    pub kind: String,
    pub started: Instant,
    pub progress: Option<BackupProgress>,
    pub cancel: CancellationToken,
    pub cancelling: bool,
    /// Aborts the task when the job is dropped.
    pub handle: Option<iced::task::Handle>,
}

impl Job {
    /// 0..1 when the size is known.
    pub fn fraction(&self) -> Option<f32> {
        let p = self.progress.as_ref()?;
        let total = p.estimated_total.filter(|t| *t > 0)?;
        Some((p.bytes_read as f64 / total as f64).clamp(0.0, 1.0) as f32)
    }
}

/// What a job reports.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Progress(BackupProgress),
    Finished(Result<BackupRecord, Error>),
}

/// Runs an engine job that reports progress through a callback, as a
/// straw: `start` gets the callback and the job's cancellation token and
/// returns the engine future, which runs in its own tokio task.
pub fn bridge<T, P, F, Fut>(cancel: CancellationToken, start: F) -> impl Straw<T, P, Error>
where
    T: Send + 'static,
    P: Send + 'static,
    F: FnOnce(Arc<dyn Fn(P) + Send + Sync>, CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, Error>> + Send + 'static,
{
    sipper(move |mut progress| async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<P>(32);
        // Progress is lossy by design: a full channel drops a report.
        let report: Arc<dyn Fn(P) + Send + Sync> = Arc::new(move |p| {
            let _ = tx.try_send(p);
        });
        let guard = cancel.clone().drop_guard();
        let run = tokio::spawn(start(report, cancel));
        // The channel closes when the engine drops the callback (it is done).
        while let Some(p) = rx.recv().await {
            progress.send(p).await;
        }
        let result = run
            .await
            .map_err(|e| Error::internal(format!("the job's task failed: {e}")))
            .and_then(|r| r);
        let _ = guard.disarm();
        result
    })
}

/// Runs a backup, streaming its progress.
pub fn backup(
    engine: Engine,
    req: BackupRequest,
    cancel: CancellationToken,
) -> impl Straw<BackupRecord, BackupProgress, Error> {
    bridge(cancel, move |report, cancel| {
        let report: ProgressFn = report;
        async move { engine.run_backup(req, report, cancel).await }
    })
}

/// Runs a restore (or, with `rollback_of`, rolls one back; `confirm` is
/// the target's name typed again), streaming its progress.
pub fn restore(
    engine: Engine,
    req: Option<RestoreRequest>,
    rollback_of: Option<String>,
    confirm: Option<String>,
    cancel: CancellationToken,
) -> impl Straw<RestoreRecord, RestoreProgress, Error> {
    bridge(cancel, move |report, cancel| {
        let report: RestoreProgressFn = report;
        async move {
            match (req, rollback_of) {
                (_, Some(id)) => engine.rollback_restore(&id, confirm, report, cancel).await,
                (Some(req), None) => engine.run_restore(req, report, cancel).await,
                (None, None) => Err(Error::internal("a restore job needs a request")),
            }
        }
    })
}

/// Runs a restore test of a backup on the Settings scratch server,
/// streaming its progress as a restore's.
pub fn restore_test(
    engine: Engine,
    backup: String,
    cancel: CancellationToken,
) -> impl Straw<crate::engine::restore::RestoreTestReport, RestoreProgress, Error> {
    bridge(cancel, move |report, cancel| {
        let report: RestoreProgressFn = report;
        async move { engine.restore_test(&backup, None, report, cancel).await }
    })
}

/// One running job: project, phase, current table, a progress bar, rate,
/// ETA and a cancel button.
pub fn view<'a, M: Clone + 'a>(job: &'a Job, on_cancel: M) -> iced::Element<'a, M> {
    use crate::engine::backup::Phase;
    use crate::ui::{format, theme, widget};
    use iced::widget::{column, container, progress_bar, row, text};
    use iced::{Alignment, Length};

    let phase = match job.progress.as_ref().map(|p| p.phase) {
        _ if job.cancelling => "Cancelling…",
        None => "Starting…",
        Some(Phase::Connecting) => "Connecting…",
        Some(Phase::Dumping) => "Dumping",
        Some(Phase::Finalizing) => "Finalizing",
        Some(Phase::Uploading) => "Copying to a destination",
    };
    let detail = match &job.progress {
        Some(p) => {
            let mut parts = vec![format!(
                "{} read · {} written · {}",
                format::bytes(p.bytes_read as i64),
                format::bytes(p.bytes_written as i64),
                format::rate(p.rate)
            )];
            if let Some(eta) = p.eta_secs {
                parts.push(format!("ETA {}", format::secs(eta)));
            }
            parts.push(format!("elapsed {}", format::secs(p.elapsed_secs)));
            parts.join(" · ")
        }
        None => format!(
            "elapsed {}",
            format::secs(job.started.elapsed().as_secs_f64())
        ),
    };
    let table = job
        .progress
        .as_ref()
        .and_then(|p| p.current_table.clone())
        .map(|t| format!("table {t}"))
        .unwrap_or_default();
    let fraction = job.fraction();
    container(
        column![
            row![
                text(format!("{} · {}", job.project, job.kind)).font(theme::BOLD),
                text(phase).style(theme::muted),
                widget::fill(),
                text(
                    fraction
                        .map(|f| format::percent(f as f64))
                        .unwrap_or_default()
                ),
                widget::secondary_button("Cancel", (!job.cancelling).then_some(on_cancel)),
            ]
            .spacing(theme::M)
            .align_y(Alignment::Center),
            progress_bar(0.0..=1.0, fraction.unwrap_or(0.0)).girth(6),
            row![
                text(detail).size(theme::SMALL).style(theme::muted),
                widget::fill(),
                text(table).size(theme::SMALL).font(theme::MONO),
            ]
            .spacing(theme::M),
        ]
        .spacing(theme::S),
    )
    .padding(theme::M)
    .width(Length::Fill)
    .style(theme::card)
    .into()
}
