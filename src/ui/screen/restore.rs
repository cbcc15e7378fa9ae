//! The restore wizard: pick a backup → target (same project, another
//! project, a URL) → scope (schemas or tables; roles, schema, data) → mode
//! → preview (the engine's dry run, readable) → confirm (typing the project
//! name for production targets) → progress → result, with a one-click
//! rollback.

use std::time::Instant;

use iced::widget::{
    button, checkbox, column, container, pick_list, progress_bar, row, scrollable, text, text_input,
};
use iced::{Alignment, Element, Length, Task};
use tokio_util::sync::CancellationToken;

use super::backup_dialog::ProjectChoice;
use super::{Action, Ctx, Effect};
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::Secret;
use crate::engine::project::{Environment, Project};
use crate::engine::restore::{
    RestoreMode, RestorePhase, RestorePreview, RestoreProgress, RestoreRecord, RestoreRequest,
    RestoreScope, RestoreTarget, url_with_password,
};
use crate::engine::{Error, ErrorKind};
use crate::ui::jobs;
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

pub const CONFIRM_ID: &str = "restore-confirm";
pub const URL_ID: &str = "restore-url";
pub const SEARCH_ID: &str = "restore-search";
/// Completed backups offered in the first step.
pub const BACKUP_LIMIT: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Backup,
    Target,
    Scope,
    Mode,
    Preview,
    Confirm,
    Progress,
    Result,
}

impl Step {
    pub const SHOWN: [Step; 7] = [
        Step::Backup,
        Step::Target,
        Step::Scope,
        Step::Mode,
        Step::Preview,
        Step::Confirm,
        Step::Result,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Step::Backup => "Backup",
            Step::Target => "Target",
            Step::Scope => "Scope",
            Step::Mode => "Mode",
            Step::Preview => "Preview",
            Step::Confirm => "Confirm",
            Step::Progress | Step::Result => "Restore",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// The backup's own project.
    Same,
    Project,
    Url,
}

/// Completed backups, projects, recent restores.
pub type Lists = (Vec<BackupRecord>, Vec<Project>, Vec<RestoreRecord>);

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<Lists, Error>),
    Search(String),
    PickBackup(String),
    TargetKind(TargetKind),
    TargetProject(ProjectChoice),
    Url(String),
    UrlPassword(String),
    Schemas(String),
    Tables(String),
    Roles(bool),
    Schema(bool),
    Data(bool),
    Mode(RestoreMode),
    Next,
    Back,
    Previewed(Result<RestorePreview, Error>),
    ConfirmText(String),
    Start,
    Progress(RestoreProgress),
    Finished(Result<RestoreRecord, Error>),
    Cancel,
    Rollback,
    StartOver,
    Escape,
}

/// A restore (or rollback) in flight.
#[derive(Debug)]
pub struct Running {
    pub rollback: bool,
    pub started: Instant,
    pub progress: Option<RestoreProgress>,
    pub cancel: CancellationToken,
    pub cancelling: bool,
    handle: Option<iced::task::Handle>,
}

#[derive(Debug)]
pub struct Restore {
    pub step: Step,
    pub backups: Vec<BackupRecord>,
    pub projects: Vec<Project>,
    pub history: Vec<RestoreRecord>,
    pub loaded: bool,
    pub search: String,
    pub backup: Option<String>,
    pub target_kind: TargetKind,
    pub target_project: Option<ProjectChoice>,
    pub url: String,
    pub url_password: String,
    pub schemas: String,
    pub tables: String,
    pub roles: bool,
    pub schema: bool,
    pub data: bool,
    pub mode: RestoreMode,
    pub preview: Option<Result<RestorePreview, Error>>,
    pub previewing: bool,
    pub confirm_text: String,
    /// Objects outside the scope the user ticked to accept losing.
    pub allow_drop: std::collections::BTreeSet<String>,
    pub running: Option<Running>,
    pub result: Option<Result<RestoreRecord, Error>>,
    /// Whether the result is that of a rollback.
    pub result_is_rollback: bool,
    /// The restore a rollback would undo.
    pub last_restore: Option<RestoreRecord>,
    /// Why "Next" did not move.
    pub error: Option<String>,
}

impl Default for Restore {
    fn default() -> Self {
        Restore {
            step: Step::Backup,
            backups: Vec::new(),
            projects: Vec::new(),
            history: Vec::new(),
            loaded: false,
            search: String::new(),
            backup: None,
            target_kind: TargetKind::Same,
            target_project: None,
            url: String::new(),
            url_password: String::new(),
            schemas: String::new(),
            tables: String::new(),
            roles: true,
            schema: true,
            data: true,
            mode: RestoreMode::New,
            preview: None,
            previewing: false,
            confirm_text: String::new(),
            allow_drop: Default::default(),
            running: None,
            result: None,
            result_is_rollback: false,
            last_restore: None,
            error: None,
        }
    }
}

impl Restore {
    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        let engine = ctx.engine.clone();
        Task::perform(
            async move {
                let (b, p, r) = tokio::join!(
                    engine.list_backups(None, BACKUP_LIMIT),
                    engine.list_projects(),
                    engine.list_restores(20)
                );
                let backups = b?.into_iter().filter(|b| b.status == "completed").collect();
                Ok((backups, p?, r?))
            },
            Message::Loaded,
        )
    }

    /// Opens the wizard on a backup (from the backups screen).
    pub fn start_from(&mut self, id: String, _ctx: &Ctx) -> Task<Message> {
        if self.running.is_some() {
            return Task::none();
        }
        *self = Restore {
            backups: std::mem::take(&mut self.backups),
            projects: std::mem::take(&mut self.projects),
            history: std::mem::take(&mut self.history),
            loaded: self.loaded,
            backup: Some(id),
            step: Step::Target,
            ..Restore::default()
        };
        Task::none()
    }

    /// "restoring Shop 40%" for the window title.
    pub fn activity(&self) -> Option<String> {
        let r = self.running.as_ref()?;
        let what = if r.rollback {
            "rolling back"
        } else {
            "restoring"
        };
        let target = self.target_label();
        Some(match r.progress.as_ref().filter(|p| p.total_bytes > 0) {
            Some(p) => format!(
                "{what} {target} {:.0}%",
                p.bytes_applied as f64 * 100.0 / p.total_bytes as f64
            ),
            None => format!("{what} {target}"),
        })
    }

    pub fn selected_backup(&self) -> Option<&BackupRecord> {
        let id = self.backup.as_ref()?;
        self.backups.iter().find(|b| &b.id == id)
    }

    fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    /// The target project, when the target is one.
    pub fn target_project(&self) -> Option<&Project> {
        match self.target_kind {
            TargetKind::Same => self
                .selected_backup()
                .and_then(|b| b.project_id.as_deref())
                .and_then(|id| self.project(id)),
            TargetKind::Project => self
                .target_project
                .as_ref()
                .and_then(|c| self.project(&c.id)),
            TargetKind::Url => None,
        }
    }

    fn target_label(&self) -> String {
        match self.target_kind {
            TargetKind::Url => ConnInfo::parse(&self.url)
                .map(|i| i.redacted())
                .unwrap_or_else(|_| self.url.clone()),
            _ => self
                .target_project()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
        }
    }

    /// Typing the project's name is required for production targets.
    pub fn needs_typed_confirmation(&self) -> bool {
        self.target_project()
            .is_some_and(|p| p.environment == Environment::Production)
    }

    pub fn confirmed(&self) -> bool {
        match self.target_project() {
            Some(p) if p.environment == Environment::Production => {
                self.confirm_text.trim() == p.name
            }
            _ => true,
        }
    }

    pub fn scope(&self) -> RestoreScope {
        RestoreScope {
            schemas: format::split_list(&self.schemas),
            tables: format::split_list(&self.tables),
            roles: self.roles,
            schema: self.schema,
            data: self.data,
        }
    }

    /// The request as configured so far.
    pub fn request(&self) -> Result<RestoreRequest, Error> {
        let backup = self
            .backup
            .clone()
            .ok_or_else(|| Error::invalid("choose a backup"))?;
        let target = match self.target_kind {
            TargetKind::Same => RestoreTarget::Project(
                self.selected_backup()
                    .and_then(|b| b.project_id.clone())
                    .ok_or_else(|| {
                        Error::invalid("the backup's project was removed: choose another target")
                    })?,
            ),
            TargetKind::Project => RestoreTarget::Project(
                self.target_project
                    .as_ref()
                    .map(|p| p.id.clone())
                    .ok_or_else(|| Error::invalid("choose the target project"))?,
            ),
            TargetKind::Url => {
                let password =
                    (!self.url_password.is_empty()).then(|| Secret::new(self.url_password.clone()));
                RestoreTarget::Url(url_with_password(self.url.trim(), password)?)
            }
        };
        let scope = self.scope();
        scope.validate()?;
        Ok(RestoreRequest {
            backup,
            target,
            scope,
            mode: Some(self.mode),
            allow_drop: self.allow_drop.iter().cloned().collect(),
            confirm: Some(self.confirm_text.trim().to_owned()).filter(|c| !c.is_empty()),
        })
    }

    /// Checks the current step before moving on.
    fn check_step(&self) -> Result<(), Error> {
        match self.step {
            Step::Backup => self.backup.as_ref().map(|_| ()).ok_or_else(|| Error::invalid("choose a backup to restore")),
            Step::Target => match self.target_kind {
                TargetKind::Same => self
                    .selected_backup()
                    .and_then(|b| b.project_id.as_deref())
                    .and_then(|id| self.project(id))
                    .map(|_| ())
                    .ok_or_else(|| Error::invalid("the backup's project no longer exists: choose another project or a URL")),
                TargetKind::Project => self
                    .target_project
                    .as_ref()
                    .map(|_| ())
                    .ok_or_else(|| Error::invalid("choose the target project")),
                TargetKind::Url => ConnInfo::parse(self.url.trim()).map(|_| ()),
            },
            Step::Scope => self.scope().validate(),
            _ => Ok(()),
        }
    }

    fn preview_task(&mut self, ctx: &Ctx) -> Task<Message> {
        self.preview = None;
        let req = match self.request() {
            Ok(r) => r,
            Err(e) => {
                self.preview = Some(Err(e));
                return Task::none();
            }
        };
        self.previewing = true;
        let engine = ctx.engine.clone();
        Task::perform(
            async move { engine.preview_restore(&req).await },
            Message::Previewed,
        )
    }

    fn start(&mut self, ctx: &Ctx, rollback_of: Option<String>) -> Task<Message> {
        let req = if rollback_of.is_some() {
            None
        } else {
            match self.request() {
                Ok(r) => Some(r),
                Err(e) => {
                    self.error = Some(e.message);
                    return Task::none();
                }
            }
        };
        let cancel = CancellationToken::new();
        let (task, handle) = Task::sip(
            jobs::restore(
                ctx.engine.clone(),
                req,
                rollback_of.clone(),
                Some(self.confirm_text.trim().to_owned()).filter(|c| !c.is_empty()),
                cancel.clone(),
            ),
            Message::Progress,
            Message::Finished,
        )
        .abortable();
        self.running = Some(Running {
            rollback: rollback_of.is_some(),
            started: Instant::now(),
            progress: None,
            cancel,
            cancelling: false,
            handle: Some(handle.abort_on_drop()),
        });
        self.result = None;
        self.step = Step::Progress;
        task
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok((backups, projects, history))) => {
                self.backups = backups;
                self.projects = projects;
                self.history = history;
                self.loaded = true;
                Action::none()
            }
            Message::Loaded(Err(e)) => Action::error(&e),
            Message::Search(s) => {
                self.search = s;
                Action::none()
            }
            Message::PickBackup(id) => {
                self.backup = Some(id);
                self.error = None;
                Action::none()
            }
            Message::TargetKind(k) => {
                self.target_kind = k;
                self.error = None;
                Action::none()
            }
            Message::TargetProject(p) => {
                self.target_project = Some(p);
                self.error = None;
                Action::none()
            }
            Message::Url(u) => {
                self.url = u;
                self.error = None;
                Action::none()
            }
            Message::UrlPassword(p) => {
                self.url_password = p;
                Action::none()
            }
            Message::Schemas(s) => {
                self.schemas = s;
                self.error = None;
                Action::none()
            }
            Message::Tables(s) => {
                self.tables = s;
                self.error = None;
                Action::none()
            }
            Message::Roles(b) => {
                self.roles = b;
                self.error = None;
                Action::none()
            }
            Message::Schema(b) => {
                self.schema = b;
                self.error = None;
                Action::none()
            }
            Message::Data(b) => {
                self.data = b;
                self.error = None;
                Action::none()
            }
            Message::Mode(m) => {
                self.mode = m;
                Action::none()
            }
            Message::Next => {
                if let Err(e) = self.check_step() {
                    self.error = Some(e.message);
                    return Action::none();
                }
                self.error = None;
                match self.step {
                    Step::Backup => self.step = Step::Target,
                    Step::Target => self.step = Step::Scope,
                    Step::Scope => self.step = Step::Mode,
                    Step::Mode => {
                        self.step = Step::Preview;
                        return Action::task(self.preview_task(ctx));
                    }
                    Step::Preview => {
                        if matches!(&self.preview, Some(Ok(p)) if p.allowed) {
                            self.step = Step::Confirm;
                            self.confirm_text.clear();
                            return Action::task(iced::widget::operation::focus(CONFIRM_ID));
                        }
                    }
                    Step::Confirm | Step::Progress | Step::Result => {}
                }
                Action::none()
            }
            Message::Back => {
                self.error = None;
                self.step = match self.step {
                    Step::Backup | Step::Target => Step::Backup,
                    Step::Scope => Step::Target,
                    Step::Mode => Step::Scope,
                    Step::Preview => {
                        self.preview = None;
                        self.previewing = false;
                        Step::Mode
                    }
                    Step::Confirm => Step::Preview,
                    s @ (Step::Progress | Step::Result) => s,
                };
                Action::none()
            }
            Message::Previewed(r) => {
                self.previewing = false;
                if self.step == Step::Preview {
                    self.preview = Some(r);
                }
                Action::none()
            }
            Message::ConfirmText(t) => {
                self.confirm_text = t;
                Action::none()
            }
            Message::Start => {
                if self.step != Step::Confirm || !self.confirmed() || self.running.is_some() {
                    return Action::none();
                }
                Action::task(self.start(ctx, None))
            }
            Message::Progress(p) => {
                if let Some(r) = &mut self.running {
                    r.progress = Some(p);
                }
                Action::none()
            }
            Message::Finished(r) => {
                let rollback = self.running.take().map(|mut run| {
                    run.handle.take();
                    run.rollback
                });
                self.result_is_rollback = rollback.unwrap_or(false);
                self.step = Step::Result;
                let notice = match &r {
                    Ok(rec) if self.result_is_rollback => widget::Notice::success(format!(
                        "Rolled back: {} is as it was before the restore",
                        rec.target
                    )),
                    Ok(rec) => widget::Notice::success(format!("Restored into {}", rec.target)),
                    Err(e) if e.kind == ErrorKind::Cancelled => {
                        widget::Notice::warning("The restore was cancelled; nothing changed")
                    }
                    Err(e) => widget::Notice::error(e),
                };
                if let Ok(rec) = &r
                    && !self.result_is_rollback
                {
                    self.last_restore = Some(rec.clone());
                }
                self.result = Some(r);
                Action::task(self.load(ctx))
                    .with(Effect::Notice(notice))
                    .with(Effect::DataChanged)
            }
            Message::Cancel => {
                if let Some(r) = &mut self.running {
                    r.cancelling = true;
                    r.cancel.cancel();
                }
                Action::none()
            }
            Message::Rollback => {
                let Some(rec) = &self.last_restore else {
                    return Action::none();
                };
                if self.running.is_some() || rec.snapshot_backup_id.is_none() {
                    return Action::none();
                }
                let id = rec.id.clone();
                Action::task(self.start(ctx, Some(id)))
            }
            Message::StartOver => {
                if self.running.is_some() {
                    return Action::none();
                }
                let keep = (
                    std::mem::take(&mut self.backups),
                    std::mem::take(&mut self.projects),
                    std::mem::take(&mut self.history),
                );
                *self = Restore {
                    backups: keep.0,
                    projects: keep.1,
                    history: keep.2,
                    loaded: true,
                    ..Restore::default()
                };
                Action::none()
            }
            Message::Escape => {
                if matches!(self.step, Step::Progress | Step::Result | Step::Backup) {
                    return Action::none();
                }
                self.update(Message::Back, ctx)
            }
        }
    }

    // ----- view -------------------------------------------------------------

    pub fn view(&self) -> Element<'_, Message> {
        let header = widget::page_header(
            "Restore",
            Some("Step by step: nothing changes before you confirm, and a replaced database can be rolled back.".into()),
            row![widget::secondary_button("Start over", (self.running.is_none() && self.step != Step::Backup).then_some(Message::StartOver))],
        );
        let steps = row(Step::SHOWN.iter().enumerate().map(|(i, s)| {
            let current = *s == self.step || (*s == Step::Result && self.step == Step::Progress);
            let done = *s < self.step;
            let tone = if current {
                Tone::Info
            } else if done {
                Tone::Success
            } else {
                Tone::Neutral
            };
            widget::badge(format!("{} {}", i + 1, s.label()), tone)
        }))
        .spacing(theme::S);
        let body: Element<'_, Message> = match self.step {
            Step::Backup => self.backup_step(),
            Step::Target => self.target_step(),
            Step::Scope => self.scope_step(),
            Step::Mode => self.mode_step(),
            Step::Preview => self.preview_step(),
            Step::Confirm => self.confirm_step(),
            Step::Progress => self.progress_step(),
            Step::Result => self.result_step(),
        };
        let mut page = column![header, steps].spacing(theme::L);
        if let Some(b) = self.selected_backup()
            && self.step != Step::Backup
        {
            page = page.push(
                text(format!(
                    "Backup {} · {} · {} · {} · {}",
                    format::short_id(&b.id),
                    b.project_name,
                    b.backup_type,
                    format::local_time(&b.created_at),
                    format::bytes(b.file_size.unwrap_or(0))
                ))
                .size(theme::SMALL)
                .style(theme::muted),
            );
        }
        page = page.push(
            container(scrollable(container(body).width(Length::Fill)).height(Length::Fill))
                .padding(theme::L)
                .height(Length::Fill)
                .style(theme::card),
        );
        if let Some(e) = &self.error {
            page = page.push(text(e.clone()).style(theme::toned(Tone::Danger)));
        }
        page = page.push(self.nav_buttons());
        page.into()
    }

    fn nav_buttons(&self) -> Element<'_, Message> {
        let back = matches!(
            self.step,
            Step::Target | Step::Scope | Step::Mode | Step::Preview | Step::Confirm
        );
        let next: Option<Element<'_, Message>> = match self.step {
            Step::Backup | Step::Target | Step::Scope => {
                Some(widget::primary_button("Next", Some(Message::Next)).into())
            }
            Step::Mode => Some(widget::primary_button("Preview", Some(Message::Next)).into()),
            Step::Preview => Some(
                widget::primary_button(
                    "Next",
                    matches!(&self.preview, Some(Ok(p)) if p.allowed).then_some(Message::Next),
                )
                .into(),
            ),
            Step::Confirm => Some(
                widget::danger_button("Restore now", self.confirmed().then_some(Message::Start))
                    .into(),
            ),
            Step::Progress | Step::Result => None,
        };
        let mut r = row![
            widget::secondary_button("Back", back.then_some(Message::Back)),
            widget::fill()
        ]
        .spacing(theme::S);
        if let Some(n) = next {
            r = r.push(n);
        }
        r.into()
    }

    fn backup_step(&self) -> Element<'_, Message> {
        if !self.loaded {
            return text("Loading backups…").style(theme::muted).into();
        }
        if self.backups.is_empty() {
            return widget::empty(
                "No completed backup to restore",
                "Back up a project first; completed backups appear here.",
                None,
            );
        }
        let q = self.search.trim().to_lowercase();
        let list: Vec<&BackupRecord> = self
            .backups
            .iter()
            .filter(|b| {
                q.is_empty() || b.project_name.to_lowercase().contains(&q) || b.id.starts_with(&q)
            })
            .take(200)
            .collect();
        let mut col = column![
            text("Which backup?").size(theme::H2).font(theme::BOLD),
            text_input("Filter by project or id", &self.search)
                .id(SEARCH_ID)
                .on_input(Message::Search)
                .padding(theme::S),
        ]
        .spacing(theme::S);
        for (i, b) in list.into_iter().enumerate() {
            let selected = self.backup.as_ref() == Some(&b.id);
            let mut checks = row![].spacing(theme::XS);
            if b.verified_at.is_some() {
                checks = checks.push(widget::badge("✓ verified", Tone::Success));
            }
            if b.verified_restorable_at.is_some() {
                checks = checks.push(widget::badge("✓ restores", Tone::Success));
            }
            col = col.push(
                button(
                    row![
                        text(format::local_time(&b.created_at))
                            .size(theme::SMALL)
                            .width(Length::Fixed(140.0)),
                        text(b.project_name.clone()).width(Length::Fill),
                        text(b.backup_type.clone())
                            .size(theme::SMALL)
                            .width(Length::Fixed(90.0)),
                        text(format::bytes(b.file_size.unwrap_or(0)))
                            .size(theme::SMALL)
                            .width(Length::Fixed(80.0)),
                        container(checks).width(Length::Fixed(180.0)),
                    ]
                    .spacing(theme::M)
                    .align_y(Alignment::Center),
                )
                .width(Length::Fill)
                .padding([theme::S, theme::M])
                .style(theme::row_button(i, selected))
                .on_press(Message::PickBackup(b.id.clone())),
            );
        }
        if !self.history.is_empty() {
            col = col.push(text("Recent restores").font(theme::BOLD));
            for r in self.history.iter().take(5) {
                col = col.push(
                    row![
                        widget::status_badge(&r.status),
                        text(format!(
                            "{} → {} · {}",
                            format::short_id(&r.backup_id),
                            r.target,
                            format::local_time(&r.started_at)
                        ))
                        .size(theme::SMALL),
                    ]
                    .spacing(theme::S)
                    .align_y(Alignment::Center),
                );
            }
        }
        col.into()
    }

    fn target_step(&self) -> Element<'_, Message> {
        let same_label = match self
            .selected_backup()
            .and_then(|b| b.project_id.as_deref())
            .and_then(|id| self.project(id))
        {
            Some(p) => format!("The same project ({})", p.name),
            None => "The same project (removed)".to_owned(),
        };
        let mut col = column![
            text("Restore into…").size(theme::H2).font(theme::BOLD),
            widget::choice(
                &same_label,
                "Put the project back as it was at backup time",
                self.target_kind == TargetKind::Same,
                Message::TargetKind(TargetKind::Same)
            ),
            widget::choice(
                "Another project",
                "Copy the data into another project of yours, e.g. production into staging",
                self.target_kind == TargetKind::Project,
                Message::TargetKind(TargetKind::Project)
            ),
            widget::choice(
                "A database URL",
                "Any PostgreSQL, e.g. a local database for inspection",
                self.target_kind == TargetKind::Url,
                Message::TargetKind(TargetKind::Url)
            ),
        ]
        .spacing(theme::M);
        match self.target_kind {
            TargetKind::Project => {
                let choices: Vec<ProjectChoice> =
                    self.projects.iter().map(ProjectChoice::from).collect();
                col = col.push(
                    pick_list(choices, self.target_project.clone(), Message::TargetProject)
                        .placeholder("Choose a project")
                        .padding(theme::S),
                );
            }
            TargetKind::Url => {
                col = col.push(widget::field(
                    "Connection URL",
                    text_input("postgresql://user@host:5432/database", &self.url)
                        .id(URL_ID)
                        .on_input(Message::Url)
                        .padding(theme::S),
                    None,
                    Some("any PostgreSQL the role can create objects in"),
                ));
                col = col.push(widget::field(
                    "Password",
                    text_input("if not in the URL", &self.url_password)
                        .secure(true)
                        .on_input(Message::UrlPassword)
                        .padding(theme::S),
                    None,
                    None,
                ));
            }
            TargetKind::Same => {}
        }
        if let Some(p) = self.target_project() {
            col = col.push(
                row![
                    text("Target environment:").style(theme::muted),
                    widget::env_badge(p.environment)
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
        }
        col.into()
    }

    fn scope_step(&self) -> Element<'_, Message> {
        column![
            text("What to restore").size(theme::H2).font(theme::BOLD),
            row![
                checkbox(self.roles)
                    .label("Roles")
                    .on_toggle(Message::Roles),
                checkbox(self.schema)
                    .label("Schema (tables, functions, policies…)")
                    .on_toggle(Message::Schema),
                checkbox(self.data).label("Data").on_toggle(Message::Data),
            ]
            .spacing(theme::L),
            widget::field(
                "Only these schemas",
                text_input("everything in the backup", &self.schemas)
                    .on_input(Message::Schemas)
                    .padding(theme::S),
                None,
                Some("comma-separated, e.g. public, app"),
            ),
            widget::field(
                "…or only these tables' rows",
                text_input("schema.table, …", &self.tables)
                    .on_input(Message::Tables)
                    .padding(theme::S),
                None,
                Some("the tables must exist in the target; choose schemas or tables, not both"),
            ),
        ]
        .spacing(theme::M)
        .into()
    }

    fn mode_step(&self) -> Element<'_, Message> {
        column![
            text("If the target already has these objects").size(theme::H2).font(theme::BOLD),
            widget::choice(
                "Only into an empty target (new)",
                "Stop, changing nothing, if the target already holds objects in scope",
                self.mode == RestoreMode::New,
                Message::Mode(RestoreMode::New)
            ),
            widget::choice(
                "Replace what is in scope",
                "A safety snapshot of the objects in scope is taken first, so the restore can be rolled back",
                self.mode == RestoreMode::Replace,
                Message::Mode(RestoreMode::Replace)
            ),
            text("The next step is a dry run: it reads the target and shows exactly what would change, without changing anything.")
                .size(theme::SMALL)
                .style(theme::muted),
        ]
        .spacing(theme::M)
        .into()
    }

    fn preview_step(&self) -> Element<'_, Message> {
        match &self.preview {
            None => column![
                text("Preview").size(theme::H2).font(theme::BOLD),
                text(if self.previewing {
                    "Reading the target and the backup…"
                } else {
                    "No preview yet."
                })
                .style(theme::muted),
            ]
            .spacing(theme::M)
            .into(),
            Some(Err(e)) => column![
                text("Preview").size(theme::H2).font(theme::BOLD),
                widget::banner(&widget::Notice::error(e), Message::Back),
                text("Go back to change the target or the scope.").style(theme::muted),
            ]
            .spacing(theme::M)
            .into(),
            Some(Ok(p)) => preview_view(p),
        }
    }

    fn confirm_step(&self) -> Element<'_, Message> {
        let scope = self.scope();
        let what: Vec<&str> = [
            (scope.roles, "roles"),
            (scope.schema, "schema"),
            (scope.data, "data"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
        let mut col = column![
            text("Confirm").size(theme::H2).font(theme::BOLD),
            widget::kv("Target", self.target_label()),
            widget::kv("Restores", what.join(", ")),
            widget::kv(
                "Limited to",
                match (scope.schemas.is_empty(), scope.tables.is_empty()) {
                    (true, true) => "everything in the backup".to_owned(),
                    (false, _) => format!("schemas {}", scope.schemas.join(", ")),
                    (_, false) => format!("tables {}", scope.tables.join(", ")),
                },
            ),
            widget::kv("Mode", self.mode.as_str()),
        ]
        .spacing(theme::S);
        if let Some(Ok(p)) = &self.preview {
            col = col.push(widget::kv(
                "Changes",
                format!("{} created, {} replaced", p.create.len(), p.replace.len()),
            ));
        }
        if let Some(p) = self
            .target_project()
            .filter(|_| self.needs_typed_confirmation())
        {
            col = col.push(
                text(format!(
                    "{} is a production project. Type its name to confirm.",
                    p.name
                ))
                .style(theme::toned(Tone::Danger)),
            );
            col = col.push(
                text_input(&p.name, &self.confirm_text)
                    .id(CONFIRM_ID)
                    .on_input(Message::ConfirmText)
                    .on_submit(Message::Start)
                    .padding(theme::S)
                    .style(theme::input(
                        !self.confirm_text.is_empty() && !self.confirmed(),
                    )),
            );
        }
        col.into()
    }

    fn progress_step(&self) -> Element<'_, Message> {
        let Some(r) = &self.running else {
            return text("Starting…").into();
        };
        let phase = match r.progress.as_ref().map(|p| p.phase) {
            _ if r.cancelling => "Cancelling…",
            None => "Starting…",
            Some(RestorePhase::Preparing) => "Preparing",
            Some(RestorePhase::Snapshot) => "Taking the safety snapshot",
            Some(RestorePhase::Loading) => "Loading",
        };
        let (fraction, detail) = match &r.progress {
            Some(p) if p.total_bytes > 0 => (
                (p.bytes_applied as f64 / p.total_bytes as f64).clamp(0.0, 1.0) as f32,
                format!(
                    "{} of {} · {}{} · elapsed {}",
                    format::bytes(p.bytes_applied as i64),
                    format::bytes(p.total_bytes as i64),
                    format::rate(p.rate),
                    p.eta_secs
                        .map(|e| format!(" · ETA {}", format::secs(e)))
                        .unwrap_or_default(),
                    format::secs(p.elapsed_secs)
                ),
            ),
            _ => (
                0.0,
                format!(
                    "elapsed {}",
                    format::secs(r.started.elapsed().as_secs_f64())
                ),
            ),
        };
        column![
            text(if r.rollback {
                "Rolling back"
            } else {
                "Restoring"
            })
            .size(theme::H2)
            .font(theme::BOLD),
            row![
                text(phase).font(theme::BOLD),
                widget::fill(),
                text(format::percent(f64::from(fraction)))
            ],
            progress_bar(0.0..=1.0, fraction).girth(8),
            text(detail).size(theme::SMALL).style(theme::muted),
            row![widget::secondary_button(
                "Cancel",
                (!r.cancelling).then_some(Message::Cancel)
            )],
            text(
                "Everything runs in one transaction: a cancelled or failed restore changes nothing."
            )
            .size(theme::SMALL)
            .style(theme::muted),
        ]
        .spacing(theme::M)
        .into()
    }

    fn result_step(&self) -> Element<'_, Message> {
        let mut col = column![].spacing(theme::M);
        match &self.result {
            Some(Ok(rec)) => {
                col = col
                    .push(
                        text(if self.result_is_rollback {
                            "Rolled back"
                        } else {
                            "Restore completed"
                        })
                        .size(theme::H2)
                        .font(theme::BOLD),
                    )
                    .push(widget::kv("Restore", format::short_id(&rec.id)))
                    .push(widget::kv("Target", rec.target.clone()))
                    .push(widget::kv("Status", rec.status.clone()))
                    .push(widget::kv("Mode", rec.mode.clone()));
                if let Some(s) = &rec.snapshot_backup_id {
                    col = col.push(widget::kv(
                        "Safety snapshot",
                        format!("backup {}", format::short_id(s)),
                    ));
                }
            }
            Some(Err(e)) => {
                col = col
                    .push(
                        text(if self.result_is_rollback {
                            "The rollback did not complete"
                        } else {
                            "The restore did not complete"
                        })
                        .size(theme::H2)
                        .font(theme::BOLD),
                    )
                    .push(widget::banner(
                        &widget::Notice::error(e),
                        Message::StartOver,
                    ))
                    .push(
                        text("The restore runs in one transaction: the target was left as it was.")
                            .style(theme::muted),
                    );
            }
            None => {}
        }
        let can_rollback = !self.result_is_rollback
            && matches!(&self.result, Some(Ok(_)))
            && self
                .last_restore
                .as_ref()
                .is_some_and(|r| r.snapshot_backup_id.is_some() && r.target_project_id.is_some());
        let mut actions = row![widget::secondary_button(
            "Start another restore",
            Some(Message::StartOver)
        )]
        .spacing(theme::S);
        if can_rollback {
            actions = actions.push(widget::danger_button(
                "Roll back this restore",
                Some(Message::Rollback),
            ));
        }
        col.push(actions).into()
    }
}

/// The engine's preview, readable.
pub fn preview_view<'a>(p: &RestorePreview) -> Element<'a, Message> {
    let verdict = if p.allowed {
        widget::badge("ready", Tone::Success)
    } else {
        widget::badge("refused", Tone::Danger)
    };
    let mut col = column![
        row![text("Preview").size(theme::H2).font(theme::BOLD), verdict]
            .spacing(theme::S)
            .align_y(Alignment::Center),
        widget::kv(
            "Target",
            format!("{} (PostgreSQL {})", p.target, p.target_server_version)
        ),
        widget::kv("Estimated time", format::secs(p.estimated_seconds)),
        widget::kv(
            "Safety snapshot",
            if p.snapshot {
                "yes, taken first (rollback possible)"
            } else {
                "not needed"
            }
        ),
        widget::kv(
            "Left alone",
            format!("{} object(s) outside the scope", p.left_alone)
        ),
    ]
    .spacing(theme::S);
    if let Some(r) = &p.refusal {
        col = col.push(text(r.clone()).style(theme::toned(Tone::Danger)));
    }
    let list = |title: &str, items: &[String], tone: Tone| -> Option<Element<'a, Message>> {
        if items.is_empty() {
            return None;
        }
        let mut c =
            column![text(format!("{title} ({})", items.len())).font(theme::BOLD)].spacing(2);
        for i in items.iter().take(15) {
            c = c.push(
                text(format!("• {i}"))
                    .size(theme::SMALL)
                    .style(theme::toned(tone)),
            );
        }
        if items.len() > 15 {
            c = c.push(
                text(format!("… and {} more", items.len() - 15))
                    .size(theme::SMALL)
                    .style(theme::muted),
            );
        }
        Some(c.into())
    };
    for item in [
        list("Created", &p.create, Tone::Success),
        list("Replaced", &p.replace, Tone::Warning),
        list("Changed since the backup", &p.changed, Tone::Warning),
        list(
            "In the backup, not in the target",
            &p.missing_in_target,
            Tone::Info,
        ),
        list(
            "In the target, not in the backup",
            &p.extra_in_target,
            Tone::Neutral,
        ),
        list("Roles to create", &p.roles_to_create, Tone::Info),
        list("Warnings", &p.warnings, Tone::Warning),
    ]
    .into_iter()
    .flatten()
    {
        col = col.push(item);
    }
    if !p.tables.is_empty() {
        col = col.push(text(format!("Rows per table ({})", p.tables.len())).font(theme::BOLD));
        for t in p.tables.iter().take(25) {
            col = col.push(
                row![
                    text(t.table.clone())
                        .size(theme::SMALL)
                        .font(theme::MONO)
                        .width(Length::Fixed(320.0)),
                    text(match t.rows_now {
                        Some(n) => format!("{n} now"),
                        None => "new table".into(),
                    })
                    .size(theme::SMALL)
                    .width(Length::Fixed(120.0)),
                    text(format!("→ {} after", t.rows_after)).size(theme::SMALL),
                ]
                .spacing(theme::M),
            );
        }
        if p.tables.len() > 25 {
            col = col.push(
                text(format!("… and {} more tables", p.tables.len() - 25))
                    .size(theme::SMALL)
                    .style(theme::muted),
            );
        }
    }
    col.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, project: &str) -> BackupRecord {
        BackupRecord {
            id: id.into(),
            project_id: Some(format!("id-{project}")),
            project_name: project.into(),
            project_ref: "abc".into(),
            job_id: None,
            backup_type: "full".into(),
            status: "completed".into(),
            file_path: None,
            file_size: Some(10),
            checksum: None,
            error_message: None,
            created_at: "2024-05-01T00:00:00Z".into(),
            started_at: None,
            completed_at: None,
            verified_at: None,
            verified_restorable_at: None,
        }
    }

    fn project(name: &str, env: Environment) -> Project {
        Project {
            id: format!("id-{name}"),
            name: name.into(),
            slug: name.to_lowercase(),
            project_ref: "abc".into(),
            db_url: "postgresql://u@h/db".into(),
            environment: env,
            organization_id: None,
            description: None,
            has_db_password: false,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[tokio::test]
    async fn steps_validate_and_go_back_and_forth() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut r = Restore::default();
        let _ = r.update(
            Message::Loaded(Ok((
                vec![backup("b1", "Shop")],
                vec![
                    project("Shop", Environment::Production),
                    project("Dev", Environment::Development),
                ],
                Vec::new(),
            ))),
            &ctx,
        );
        let _ = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Backup, "a backup is needed");
        assert!(r.error.is_some());
        let _ = r.update(Message::PickBackup("b1".into()), &ctx);
        let _ = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Target);
        let _ = r.update(Message::TargetKind(TargetKind::Url), &ctx);
        let _ = r.update(Message::Url("not a url".into()), &ctx);
        let _ = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Target, "the URL must parse");
        let _ = r.update(Message::TargetKind(TargetKind::Same), &ctx);
        assert!(r.needs_typed_confirmation(), "Shop is production");
        let _ = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Scope);
        let _ = r.update(Message::Roles(false), &ctx);
        let _ = r.update(Message::Schema(false), &ctx);
        let _ = r.update(Message::Data(false), &ctx);
        let _ = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Scope, "nothing to restore");
        let _ = r.update(Message::Data(true), &ctx);
        let _ = r.update(Message::Schemas("public".into()), &ctx);
        let _ = r.update(Message::Tables("public.orders".into()), &ctx);
        let _ = r.update(Message::Next, &ctx);
        assert!(r.error.as_deref().is_some_and(|e| e.contains("not both")));
        let _ = r.update(Message::Schemas(String::new()), &ctx);
        let _ = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Mode);
        let _ = r.update(Message::Mode(RestoreMode::Replace), &ctx);
        let a = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Preview);
        assert!(a.has_task() && r.previewing);
        let req = r.request().expect("request");
        assert_eq!(req.target, RestoreTarget::Project("id-Shop".into()));
        assert_eq!(req.scope.tables, ["public.orders"]);
        assert_eq!(req.mode, Some(RestoreMode::Replace));
        // No moving on before a preview allows it.
        let _ = r.update(Message::Next, &ctx);
        assert_eq!(r.step, Step::Preview);
        let _ = r.update(Message::Back, &ctx);
        assert_eq!(r.step, Step::Mode);
        assert!(r.preview.is_none(), "going back drops the preview");
        // A late preview answer after going back is ignored.
        let _ = r.update(Message::Previewed(Err(Error::connection("late"))), &ctx);
        assert!(r.preview.is_none());
        let _ = r.update(Message::Escape, &ctx);
        assert_eq!(r.step, Step::Scope);
    }

    #[tokio::test]
    async fn production_targets_need_the_typed_name() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut r = Restore::default();
        let _ = r.update(
            Message::Loaded(Ok((
                vec![backup("b1", "Shop")],
                vec![project("Shop", Environment::Production)],
                Vec::new(),
            ))),
            &ctx,
        );
        let _ = r.start_from("b1".into(), &ctx);
        assert_eq!(r.step, Step::Target);
        r.step = Step::Confirm;
        assert!(!r.confirmed());
        assert!(!r.update(Message::Start, &ctx).has_task());
        let _ = r.update(Message::ConfirmText("shop".into()), &ctx);
        assert!(!r.confirmed(), "the exact name");
        let _ = r.update(Message::ConfirmText("Shop".into()), &ctx);
        assert!(r.confirmed());
        let a = r.update(Message::Start, &ctx);
        assert!(a.has_task());
        assert_eq!(r.step, Step::Progress);
        assert!(
            r.activity()
                .is_some_and(|a| a.starts_with("restoring Shop"))
        );
        let _ = r.update(Message::Cancel, &ctx);
        assert!(r.running.as_ref().is_some_and(|x| x.cancelling));
        let a = r.update(Message::Finished(Err(Error::cancelled())), &ctx);
        assert!(r.running.is_none());
        assert_eq!(r.step, Step::Result);
        assert!(
            a.effects
                .iter()
                .any(|e| matches!(e, Effect::Notice(n) if n.title.contains("cancelled")))
        );
    }
}
