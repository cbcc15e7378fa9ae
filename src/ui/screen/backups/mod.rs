//! Backups, per project or all: sortable, filterable, virtualised (smooth
//! with 10,000 rows); "Back up now" with live progress and cancel; verify,
//! restore-test, restore, open folder, delete with confirmation.

mod view;

use std::collections::HashMap;
use std::path::PathBuf;

use iced::widget::scrollable::Viewport;
use iced::widget::{Id, button, container, pick_list, text, text_input};
use iced::{Alignment, Element, Length, Task};

use super::backup_dialog::{self, BackupDialog};
use super::choices::ProjectFilter;
use super::history::{self, HistoryDialog};
use super::migrate::{self, MigrateDialog};
use super::{Action, Ctx, Effect, Nav};
use crate::engine::Error;
use crate::engine::backup::verify::VerifyReport;
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::destination::copies::BackupCopy;
use crate::engine::project::Project;
use crate::engine::restore::RestoreTestReport;
use crate::ui::jobs::{self, Job};
use crate::ui::theme::{self, Tone};
use crate::ui::widget::vlist::{self, Scroll};
use crate::ui::{format, widget};

pub const SEARCH_ID: &str = "backups-search";
pub const LIST_ID: &str = "backups-list";
pub const ROW_HEIGHT: f32 = 38.0;
/// How many rows are read from the catalog.
pub const LIMIT: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Date,
    Project,
    Type,
    Status,
    Size,
    Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    Completed,
    Failed,
    Running,
    Cancelled,
}

impl StatusFilter {
    pub const ALL: [StatusFilter; 5] = [
        StatusFilter::All,
        StatusFilter::Completed,
        StatusFilter::Failed,
        StatusFilter::Running,
        StatusFilter::Cancelled,
    ];
    fn accepts(self, status: &str) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Completed => status == "completed",
            StatusFilter::Failed => status == "failed",
            StatusFilter::Running => status == "running" || status == "pending",
            StatusFilter::Cancelled => status == "cancelled",
        }
    }
}

impl std::fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StatusFilter::All => "Any status",
            StatusFilter::Completed => "Completed",
            StatusFilter::Failed => "Failed",
            StatusFilter::Running => "Running",
            StatusFilter::Cancelled => "Cancelled",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFilter(pub Option<String>);

impl std::fmt::Display for TypeFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Any type"),
            Some(t) => f.write_str(t),
        }
    }
}

/// A backup with what sorting needs, computed once.
#[derive(Debug, Clone)]
pub struct Row {
    pub rec: BackupRecord,
    pub duration_ms: Option<i64>,
    pub date: String,
    /// Its copies at destinations.
    pub copies: Vec<BackupCopy>,
}

impl Row {
    pub fn new(rec: BackupRecord) -> Self {
        let duration_ms = match (
            rec.started_at.as_deref().and_then(format::parse_time),
            rec.completed_at.as_deref().and_then(format::parse_time),
        ) {
            (Some(a), Some(b)) => Some((b - a).num_milliseconds().max(0)),
            _ => None,
        };
        let date = format::local_time(&rec.created_at);
        Row {
            rec,
            duration_ms,
            date,
            copies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    /// Rows are built in the task (dates parsed and formatted off the UI thread).
    Loaded(Result<(Vec<Row>, Vec<Project>), Error>),
    Search(String),
    Status(StatusFilter),
    Type(TypeFilter),
    Project(ProjectFilter),
    Sort(SortKey),
    Scrolled(Viewport),
    Select(String),
    OpenDialog(Option<String>),
    Dialog(backup_dialog::Message),
    OpenMigrate,
    Migrate(migrate::Message),
    /// The versions of the selected backup's (or the filtered) project.
    OpenHistory,
    History(history::Message),
    Verify(String),
    Verified(String, Result<VerifyReport, Error>),
    RestoreTest(String),
    RestoreTestProgress(String, crate::engine::restore::RestoreProgress),
    RestoreTested(String, Result<RestoreTestReport, Error>),
    Restore(String),
    OpenFolder(String),
    Opened(Result<(), String>),
    AskDelete(String),
    ConfirmDelete,
    CancelDelete,
    Deleted(String, Result<BackupRecord, Error>),
    CancelJob(u64),
    Escape,
}

#[derive(Debug)]
pub struct Backups {
    pub rows: Vec<Row>,
    /// Indices into `rows`, filtered and sorted.
    pub visible: Vec<usize>,
    pub projects: Vec<Project>,
    pub loaded: bool,
    pub loading: bool,
    pub error: Option<Error>,
    pub search: String,
    pub status: StatusFilter,
    pub kind: TypeFilter,
    pub project: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub scroll: Scroll,
    pub selected: Option<String>,
    pub dialog: Option<BackupDialog>,
    pub migrate: Option<MigrateDialog>,
    pub history: Option<HistoryDialog>,
    pub confirm_delete: Option<BackupRecord>,
    /// What is happening to a backup now ("verifying", "deleting").
    pub busy: HashMap<String, &'static str>,
    /// How far each running restore test is.
    pub rtest_progress: HashMap<String, crate::engine::restore::RestoreProgress>,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            rows: Vec::new(),
            visible: Vec::new(),
            projects: Vec::new(),
            loaded: false,
            loading: false,
            error: None,
            search: String::new(),
            status: StatusFilter::All,
            kind: TypeFilter(None),
            project: None,
            sort: SortKey::Date,
            descending: true,
            scroll: Scroll::default(),
            selected: None,
            dialog: None,
            migrate: None,
            history: None,
            confirm_delete: None,
            busy: HashMap::new(),
            rtest_progress: HashMap::new(),
        }
    }
}

impl Backups {
    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        self.loading = true;
        let engine = ctx.engine.clone();
        Task::perform(
            async move {
                let (b, p, c) = tokio::join!(
                    engine.list_backups(None, LIMIT),
                    engine.list_projects(),
                    engine.all_backup_copies()
                );
                let (b, p, mut c) = (b?, p?, c?);
                let rows = tokio::task::spawn_blocking(move || {
                    b.into_iter()
                        .map(|rec| {
                            let copies = c.remove(&rec.id).unwrap_or_default();
                            Row {
                                copies,
                                ..Row::new(rec)
                            }
                        })
                        .collect()
                })
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
                Ok((rows, p))
            },
            Message::Loaded,
        )
    }

    /// Shows one project's backups (or all).
    pub fn filter_project(&mut self, id: Option<String>, _ctx: &Ctx) -> Task<Message> {
        self.project = id;
        self.refilter();
        self.scroll.reset();
        iced::widget::operation::snap_to(LIST_ID, iced::widget::scrollable::RelativeOffset::START)
    }

    /// Opens "Back up now", for a project when given (by id).
    pub fn open_dialog(&mut self, project: Option<String>, ctx: &Ctx) -> Task<Message> {
        let project = project.or_else(|| self.project.clone());
        let (d, task) = BackupDialog::open(project, &ctx.prefs.default_backup, &ctx.engine);
        self.dialog = Some(d);
        task.map(Message::Dialog)
    }

    /// A job ended: reload, and select the new backup.
    pub fn job_finished(
        &mut self,
        result: &Result<BackupRecord, Error>,
        ctx: &Ctx,
    ) -> Task<Message> {
        if let Ok(rec) = result {
            self.selected = Some(rec.id.clone());
        }
        self.load(ctx)
    }

    pub fn selected_row(&self) -> Option<&Row> {
        let id = self.selected.as_ref()?;
        self.rows.iter().find(|r| &r.rec.id == id)
    }

    fn types(&self) -> Vec<TypeFilter> {
        let mut kinds: Vec<String> = self
            .rows
            .iter()
            .map(|r| r.rec.backup_type.clone())
            .collect();
        kinds.sort();
        kinds.dedup();
        std::iter::once(TypeFilter(None))
            .chain(kinds.into_iter().map(|k| TypeFilter(Some(k))))
            .collect()
    }

    /// Recomputes `visible` from the filters and the sort order.
    pub fn refilter(&mut self) {
        let q = self.search.trim().to_lowercase();
        let mut v: Vec<usize> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let b = &r.rec;
                self.status.accepts(&b.status)
                    && self.kind.0.as_ref().is_none_or(|k| &b.backup_type == k)
                    && self
                        .project
                        .as_ref()
                        .is_none_or(|p| b.project_id.as_ref() == Some(p))
                    && (q.is_empty()
                        || b.project_name.to_lowercase().contains(&q)
                        || b.id.starts_with(&q)
                        || b.project_ref.contains(&q)
                        || b.error_message
                            .as_deref()
                            .unwrap_or("")
                            .to_lowercase()
                            .contains(&q))
            })
            .map(|(i, _)| i)
            .collect();
        let rows = &self.rows;
        match self.sort {
            SortKey::Date => {
                v.sort_by(|a, b| rows[*a].rec.created_at.cmp(&rows[*b].rec.created_at))
            }
            SortKey::Project => v.sort_by_cached_key(|i| rows[*i].rec.project_name.to_lowercase()),
            SortKey::Type => {
                v.sort_by(|a, b| rows[*a].rec.backup_type.cmp(&rows[*b].rec.backup_type))
            }
            SortKey::Status => v.sort_by(|a, b| rows[*a].rec.status.cmp(&rows[*b].rec.status)),
            SortKey::Size => v.sort_by_key(|i| rows[*i].rec.file_size.unwrap_or(-1)),
            SortKey::Duration => v.sort_by_key(|i| rows[*i].duration_ms.unwrap_or(-1)),
        }
        if self.descending {
            v.reverse();
        }
        self.visible = v;
    }

    fn snap_top(&mut self) -> Task<Message> {
        self.scroll.reset();
        iced::widget::operation::snap_to(LIST_ID, iced::widget::scrollable::RelativeOffset::START)
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok((list, projects))) => {
                self.loading = false;
                self.loaded = true;
                self.error = None;
                self.rows = list;
                self.projects = projects;
                self.refilter();
                Action::none()
            }
            Message::Loaded(Err(e)) => {
                self.loading = false;
                self.error = Some(e);
                Action::none()
            }
            Message::Search(s) => {
                self.search = s;
                self.refilter();
                Action::task(self.snap_top())
            }
            Message::Status(s) => {
                self.status = s;
                self.refilter();
                Action::task(self.snap_top())
            }
            Message::Type(t) => {
                self.kind = t;
                self.refilter();
                Action::task(self.snap_top())
            }
            Message::Project(p) => {
                self.project = p.0.map(|c| c.id);
                self.refilter();
                Action::task(self.snap_top())
            }
            Message::Sort(key) => {
                if self.sort == key {
                    self.descending = !self.descending;
                } else {
                    self.sort = key;
                    self.descending =
                        matches!(key, SortKey::Date | SortKey::Size | SortKey::Duration);
                }
                self.refilter();
                Action::task(self.snap_top())
            }
            Message::Scrolled(v) => {
                self.scroll.on_scroll(v);
                Action::none()
            }
            Message::Select(id) => {
                self.selected = if self.selected.as_ref() == Some(&id) {
                    None
                } else {
                    Some(id)
                };
                Action::none()
            }
            Message::OpenDialog(p) => Action::task(self.open_dialog(p, ctx)),
            Message::OpenMigrate => {
                let row = self.selected_row();
                let (d, task) = MigrateDialog::open(
                    row.map(|r| r.rec.clone()),
                    row.map(|r| r.copies.clone()).unwrap_or_default(),
                    &self.projects,
                    &ctx.engine,
                );
                self.migrate = Some(d);
                Action::task(task.map(Message::Migrate))
            }
            Message::OpenHistory => {
                let row = self.selected_row();
                let project = row
                    .and_then(|r| r.rec.project_id.clone())
                    .or_else(|| self.project.clone());
                let Some(pid) = project else {
                    return Action::notice(widget::Notice::info(
                        "Select a backup or filter by a project to see its versions",
                    ));
                };
                let name = self
                    .projects
                    .iter()
                    .find(|p| p.id == pid)
                    .map(|p| p.name.clone())
                    .unwrap_or(pid);
                let (d, task) =
                    HistoryDialog::open(name, row.map(|r| r.rec.id.clone()), &ctx.engine);
                self.history = Some(d);
                Action::task(task.map(Message::History))
            }
            Message::History(m) => {
                let Some(d) = &mut self.history else {
                    return Action::none();
                };
                match d.update(m, &ctx.engine) {
                    history::Event::None => Action::none(),
                    history::Event::Run(t) => Action::task(t.map(Message::History)),
                    history::Event::Closed => {
                        self.history = None;
                        Action::none()
                    }
                    history::Event::Restore(id) => {
                        self.history = None;
                        Action::effect(Effect::Navigate(Nav::RestoreFrom(id)))
                    }
                }
            }
            Message::Migrate(m) => {
                let Some(d) = &mut self.migrate else {
                    return Action::none();
                };
                match d.update(m, &ctx.engine) {
                    migrate::Event::None => Action::none(),
                    migrate::Event::Run(t) => Action::task(t.map(Message::Migrate)),
                    migrate::Event::Closed => {
                        self.migrate = None;
                        Action::none()
                    }
                    migrate::Event::Finished(Ok(c)) => {
                        self.migrate = None;
                        Action::task(self.load(ctx))
                            .with(Effect::Notice(widget::Notice::success(format!(
                                "Backup {} is stored at '{}', read back and checked",
                                format::short_id(&c.backup_id),
                                c.destination
                            ))))
                            .with(Effect::DataChanged)
                    }
                    migrate::Event::Finished(Err(e)) => Action::error(&e),
                    migrate::Event::Clone {
                        backup,
                        target,
                        schema_only,
                    } => {
                        self.migrate = None;
                        Action::effect(Effect::Navigate(Nav::Clone {
                            backup,
                            target,
                            schema_only,
                        }))
                    }
                }
            }
            Message::Dialog(m) => {
                let Some(d) = &mut self.dialog else {
                    return Action::none();
                };
                match d.update(m, &ctx.engine) {
                    backup_dialog::Event::None => Action::none(),
                    backup_dialog::Event::Run(t) => Action::task(t.map(Message::Dialog)),
                    backup_dialog::Event::Cancelled => {
                        self.dialog = None;
                        Action::none()
                    }
                    backup_dialog::Event::Start(req, label) => {
                        self.dialog = None;
                        Action::effect(Effect::StartBackup(req, label))
                    }
                }
            }
            Message::Verify(id) => {
                if self.busy.contains_key(&id) {
                    return Action::none();
                }
                self.busy.insert(id.clone(), "verifying");
                let engine = ctx.engine.clone();
                let key = id.clone();
                Action::task(Task::perform(
                    async move { engine.verify_backup(&key).await },
                    move |r| Message::Verified(id.clone(), r),
                ))
            }
            Message::Verified(id, r) => {
                self.busy.remove(&id);
                let short = format::short_id(&id);
                match r {
                    Ok(rep) if rep.ok => Action::task(self.load(ctx))
                        .with(Effect::Notice(widget::Notice::success(format!(
                            "Backup {short} verified: {} file(s) intact",
                            rep.files.len()
                        ))))
                        .with(Effect::DataChanged),
                    Ok(rep) => Action::notice(
                        widget::Notice::error(&Error::corrupt(format!(
                            "Backup {short} failed verification"
                        )))
                        .with_detail(rep.first_failure.unwrap_or_default()),
                    ),
                    Err(e) => Action::error(&e),
                }
            }
            Message::RestoreTest(id) => {
                if self.busy.contains_key(&id) {
                    return Action::none();
                }
                self.busy.insert(id.clone(), "restore testing");
                // Leaving the app cancels the test (and its scratch database goes).
                let cancel = tokio_util::sync::CancellationToken::new();
                let (a, b) = (id.clone(), id.clone());
                Action::task(Task::sip(
                    crate::ui::jobs::restore_test(ctx.engine.clone(), id, cancel),
                    move |p| Message::RestoreTestProgress(a.clone(), p),
                    move |r| Message::RestoreTested(b.clone(), r),
                ))
            }
            Message::RestoreTestProgress(id, p) => {
                if self.busy.contains_key(&id) {
                    self.rtest_progress.insert(id, p);
                }
                Action::none()
            }
            Message::RestoreTested(id, r) => {
                self.busy.remove(&id);
                self.rtest_progress.remove(&id);
                let short = format::short_id(&id);
                match r {
                    Ok(rep) if rep.ok => Action::task(self.load(ctx))
                        .with(Effect::Notice(
                            widget::Notice::success(format!(
                                "Backup {short} restores: {} table(s) match, in {}",
                                rep.tables.len(),
                                format::duration_ms(rep.duration_ms as i64)
                            ))
                            .with_detail(format!(
                                "restored into a throw-away database on {}",
                                rep.scratch
                            )),
                        ))
                        .with(Effect::DataChanged),
                    Ok(rep) => Action::notice(
                        widget::Notice::error(&Error::corrupt(format!(
                            "Backup {short} failed its restore test"
                        )))
                        .with_detail(rep.first_failure.unwrap_or_default()),
                    ),
                    Err(e) => Action::error(&e),
                }
            }
            Message::Restore(id) => Action::effect(Effect::Navigate(Nav::RestoreFrom(id))),
            Message::OpenFolder(id) => {
                let Some(path) = self
                    .rows
                    .iter()
                    .find(|r| r.rec.id == id)
                    .and_then(|r| r.rec.file_path.clone())
                else {
                    return Action::none();
                };
                let path = PathBuf::from(path);
                let platform = ctx.platform.clone();
                // Even a stat is I/O: it happens in the task, not here.
                Action::task(Task::perform(
                    async move {
                        let check = path.clone();
                        let exists = tokio::task::spawn_blocking(move || check.is_dir())
                            .await
                            .unwrap_or(false);
                        if !exists {
                            return Err(format!("{} does not exist", path.display()));
                        }
                        platform.open_path(path).await
                    },
                    Message::Opened,
                ))
            }
            Message::Opened(Ok(())) => Action::none(),
            Message::Opened(Err(e)) => Action::notice(widget::Notice::warning(format!(
                "Could not open the folder: {e}"
            ))),
            Message::AskDelete(id) => {
                self.confirm_delete = self
                    .rows
                    .iter()
                    .find(|r| r.rec.id == id)
                    .map(|r| r.rec.clone());
                Action::none()
            }
            Message::CancelDelete => {
                self.confirm_delete = None;
                Action::none()
            }
            Message::ConfirmDelete => {
                let Some(rec) = self.confirm_delete.take() else {
                    return Action::none();
                };
                self.busy.insert(rec.id.clone(), "deleting");
                let engine = ctx.engine.clone();
                let id = rec.id.clone();
                Action::task(Task::perform(
                    {
                        let id = id.clone();
                        async move { engine.delete_backup(&id).await }
                    },
                    move |r| Message::Deleted(id.clone(), r),
                ))
            }
            Message::Deleted(id, r) => {
                self.busy.remove(&id);
                match r {
                    Ok(rec) => {
                        self.rows.retain(|r| r.rec.id != rec.id);
                        if self.selected.as_ref() == Some(&rec.id) {
                            self.selected = None;
                        }
                        self.refilter();
                        Action::notice(widget::Notice::success(format!(
                            "Deleted backup {} of {} ({})",
                            format::short_id(&rec.id),
                            rec.project_name,
                            format::bytes(rec.file_size.unwrap_or(0))
                        )))
                        .with(Effect::DataChanged)
                    }
                    Err(e) => Action::error(&e),
                }
            }
            Message::CancelJob(id) => Action::effect(Effect::CancelJob(id)),
            Message::Escape => {
                if self.dialog.is_some() {
                    self.dialog = None;
                } else if self.migrate.is_some() {
                    self.migrate = None;
                } else if self.history.is_some() {
                    self.history = None;
                } else if self.confirm_delete.is_some() {
                    self.confirm_delete = None;
                } else {
                    self.selected = None;
                }
                Action::none()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(i: usize, project: &str, status: &str) -> BackupRecord {
        BackupRecord {
            id: format!("0000{i:06}-backup"),
            project_id: Some(format!("id-{project}")),
            project_name: project.into(),
            project_ref: "abc".into(),
            job_id: None,
            backup_type: if i.is_multiple_of(3) {
                "schema".into()
            } else {
                "full".into()
            },
            status: status.into(),
            file_path: Some(format!("/nonexistent/{i}")),
            file_size: Some((i as i64 * 7919) % 100_000),
            checksum: None,
            error_message: (status == "failed").then(|| "connection refused".into()),
            created_at: format!("2024-01-01T00:{:02}:{:02}.000Z", (i / 60) % 60, i % 60),
            started_at: Some(format!(
                "2024-01-01T00:{:02}:{:02}.000Z",
                (i / 60) % 60,
                i % 60
            )),
            completed_at: Some(format!(
                "2024-01-01T01:{:02}:{:02}.000Z",
                (i / 60) % 60,
                i % 60
            )),
            verified_at: None,
            verified_restorable_at: None,
            local_state: "present".into(),
        }
    }

    #[tokio::test]
    async fn filters_sort_and_select() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut s = Backups::default();
        let list: Vec<BackupRecord> = (0..100)
            .map(|i| {
                record(
                    i,
                    if i % 2 == 0 { "alpha" } else { "beta" },
                    if i % 10 == 0 { "failed" } else { "completed" },
                )
            })
            .collect();
        let _ = s.update(
            Message::Loaded(Ok((list.into_iter().map(Row::new).collect(), Vec::new()))),
            &ctx,
        );
        assert_eq!(s.visible.len(), 100);
        assert_eq!(
            s.rows[s.visible[0]].rec.id, "0000000099-backup",
            "newest first"
        );
        let _ = s.update(Message::Status(StatusFilter::Failed), &ctx);
        assert_eq!(s.visible.len(), 10);
        let _ = s.update(Message::Search("alpha".into()), &ctx);
        assert_eq!(s.visible.len(), 10, "every failed one is even");
        let _ = s.update(Message::Status(StatusFilter::All), &ctx);
        let _ = s.update(Message::Search(String::new()), &ctx);
        let _ = s.update(Message::Type(TypeFilter(Some("schema".into()))), &ctx);
        assert_eq!(s.visible.len(), 34);
        let _ = s.update(Message::Type(TypeFilter(None)), &ctx);
        let _ = s.update(Message::Sort(SortKey::Size), &ctx);
        let sizes: Vec<i64> = s
            .visible
            .iter()
            .map(|i| s.rows[*i].rec.file_size.unwrap_or(0))
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "largest first");
        let _ = s.update(Message::Sort(SortKey::Size), &ctx);
        let sizes: Vec<i64> = s
            .visible
            .iter()
            .map(|i| s.rows[*i].rec.file_size.unwrap_or(0))
            .collect();
        assert!(
            sizes.windows(2).all(|w| w[0] <= w[1]),
            "toggled to smallest first"
        );
        let _ = s.filter_project(Some("id-beta".into()), &ctx);
        assert_eq!(s.visible.len(), 50);
        let _ = s.update(Message::Select("0000000001-backup".into()), &ctx);
        assert!(s.selected_row().is_some());
        let a = s.update(Message::Restore("0000000001-backup".into()), &ctx);
        assert!(matches!(
            a.effects.as_slice(),
            [Effect::Navigate(Nav::RestoreFrom(_))]
        ));
    }

    #[tokio::test]
    async fn delete_needs_confirmation_and_open_folder_checks_the_path() {
        let (ctx, _dir, fake) = crate::ui::testing::ctx().await;
        let mut s = Backups::default();
        let _ = s.update(
            Message::Loaded(Ok((
                vec![Row::new(record(1, "alpha", "completed"))],
                Vec::new(),
            ))),
            &ctx,
        );
        let id = "0000000001-backup".to_owned();
        let _ = s.update(Message::AskDelete(id.clone()), &ctx);
        assert!(s.confirm_delete.is_some());
        let _ = s.update(Message::Escape, &ctx);
        assert!(s.confirm_delete.is_none());
        let a = s.update(Message::OpenFolder(id.clone()), &ctx);
        assert!(
            a.effects.is_empty() && a.has_task(),
            "the check runs in a task"
        );
        let msgs = crate::ui::testing::run(a.task).await;
        let mut effects = Vec::new();
        for m in msgs {
            effects.extend(s.update(m, &ctx).effects);
        }
        assert!(
            matches!(effects.as_slice(), [Effect::Notice(n)] if n.title.contains("does not exist"))
        );
        assert!(fake.calls().is_empty());
        let a = s.update(
            Message::Deleted(id.clone(), Ok(record(1, "alpha", "completed"))),
            &ctx,
        );
        assert!(s.rows.is_empty() && s.visible.is_empty());
        assert!(a.effects.iter().any(|e| matches!(e, Effect::DataChanged)));
    }

    #[tokio::test]
    async fn a_restore_test_shows_its_progress_until_it_ends() {
        use crate::engine::restore::{RestorePhase, RestoreProgress};
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut s = Backups::default();
        let id = "0000000001-backup".to_owned();
        let a = s.update(Message::RestoreTest(id.clone()), &ctx);
        assert!(a.has_task(), "the test runs as a task");
        assert_eq!(s.busy.get(&id), Some(&"restore testing"));
        let progress = |phase, applied| RestoreProgress {
            restore_id: "t".into(),
            phase,
            bytes_applied: applied,
            total_bytes: 200,
            rate: 0.0,
            eta_secs: None,
            elapsed_secs: 1.0,
        };
        let _ = s.update(
            Message::RestoreTestProgress(id.clone(), progress(RestorePhase::Loading, 50)),
            &ctx,
        );
        assert_eq!(
            view::rtest_label(&s.rtest_progress[&id]),
            "restore test: loading 25%"
        );
        let _ = s.update(
            Message::RestoreTestProgress(id.clone(), progress(RestorePhase::Checking, 200)),
            &ctx,
        );
        assert_eq!(
            view::rtest_label(&s.rtest_progress[&id]),
            "restore test: checking tables"
        );
        let _ = s.update(
            Message::RestoreTested(id.clone(), Err(Error::connection("scratch down"))),
            &ctx,
        );
        assert!(s.busy.is_empty() && s.rtest_progress.is_empty());
        // A late report of a finished test is dropped.
        let _ = s.update(
            Message::RestoreTestProgress(id.clone(), progress(RestorePhase::Loading, 10)),
            &ctx,
        );
        assert!(s.rtest_progress.is_empty());
    }

    #[tokio::test]
    async fn ten_thousand_rows_filter_quickly() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut s = Backups::default();
        let list: Vec<BackupRecord> = (0..10_000)
            .map(|i| record(i, &format!("p{}", i % 50), "completed"))
            .collect();
        let _ = s.update(
            Message::Loaded(Ok((list.into_iter().map(Row::new).collect(), Vec::new()))),
            &ctx,
        );
        let t = std::time::Instant::now();
        let _ = s.update(Message::Sort(SortKey::Project), &ctx);
        let _ = s.update(Message::Search("p4".into()), &ctx);
        assert!(s.visible.len() > 100);
        // Generous for debug builds on a loaded machine; typically a few ms.
        assert!(
            t.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
}
