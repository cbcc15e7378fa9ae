//! The restore wizard: pick a backup → target (same project, another
//! project, a URL) → scope (schemas or tables; roles, schema, data) → mode
//! → preview (the engine's dry run, readable) → confirm (typing the project
//! name for production targets) → progress → result, with a one-click
//! rollback.

pub mod preview;
mod view;

pub use preview::preview_view;

use std::time::Instant;

use iced::Task;
use tokio_util::sync::CancellationToken;

use super::choices::ProjectChoice;
use super::{Action, Ctx, Effect};
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::Secret;
use crate::engine::destination::copies::BackupCopy;
use crate::engine::project::{Environment, Project};
use crate::engine::restore::{
    RestoreMode, RestorePreview, RestoreProgress, RestoreRecord, RestoreRequest, RestoreScope,
    RestoreTarget, url_with_password,
};
use crate::engine::{Error, ErrorKind};
use crate::ui::jobs;
use crate::ui::{format, widget};

pub const CONFIRM_ID: &str = "restore-confirm";
pub const URL_ID: &str = "restore-url";
pub const SEARCH_ID: &str = "restore-search";
pub const SCHEMAS_ID: &str = "restore-schemas";
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
    Copies(Result<std::collections::HashMap<String, Vec<BackupCopy>>, Error>),
    /// Read the backup from this copy (`None`: this machine's folder).
    From(FromChoice),
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
    /// Load on this many connections (1: one transaction).
    Jobs(u8),
    Next,
    Back,
    Previewed(Result<RestorePreview, Error>),
    /// Accept (or not) losing an object outside the scope; the preview is re-run.
    AllowDrop(String, bool),
    /// The chosen backup's schemas and tables, for the scope pickers.
    Names(Result<(Vec<String>, Vec<String>), Error>),
    PickSchema(String),
    PickTable(String),
    ConfirmText(String),
    Start,
    Progress(RestoreProgress),
    Finished(Result<RestoreRecord, Error>),
    Cancel,
    Rollback,
    /// Roll back one of the recent restores (by id).
    RollbackOf(String),
    StartOver,
    Escape,
}

/// A copy to read a backup from, for the picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromChoice(pub Option<String>);

impl std::fmt::Display for FromChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("this machine"),
            Some(d) => write!(f, "destination '{d}'"),
        }
    }
}

impl Restore {
    /// Where the chosen backup can be read from (empty: only here).
    pub fn from_choices(&self) -> Vec<FromChoice> {
        let Some(id) = &self.backup else {
            return Vec::new();
        };
        let local = self
            .backups
            .iter()
            .find(|b| &b.id == id)
            .is_none_or(|b| b.local_state == "present");
        let mut out = Vec::new();
        if local {
            out.push(FromChoice(None));
        }
        for c in self.copies.get(id).into_iter().flatten() {
            if c.status == "stored" {
                out.push(FromChoice(Some(c.destination.clone())));
            }
        }
        out
    }
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
    /// Connections to load on: 1 is one transaction, more a parallel load.
    pub jobs: u8,
    pub preview: Option<Result<RestorePreview, Error>>,
    pub previewing: bool,
    pub confirm_text: String,
    /// Objects outside the scope the user ticked to accept losing.
    pub allow_drop: std::collections::BTreeSet<String>,
    /// Which copy to read: `None` = the local folder, else a destination.
    pub from: Option<String>,
    /// A clone's target project (id) until the project list arrives.
    pub pending_target: Option<String>,
    /// Every backup's copies at destinations, by backup id.
    pub copies: std::collections::HashMap<String, Vec<BackupCopy>>,
    /// The backup's schemas and tables, written as names to type.
    pub names: Option<(Vec<String>, Vec<String>)>,
    pub running: Option<Running>,
    pub result: Option<Result<RestoreRecord, Error>>,
    /// Whether the result is that of a rollback.
    pub result_is_rollback: bool,
    /// The restore a rollback would undo.
    pub last_restore: Option<RestoreRecord>,
    /// The restore that just failed (a parallel load's may have changed
    /// the target: its record, once loaded, offers the rollback).
    pub failed_id: Option<String>,
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
            jobs: 1,
            preview: None,
            previewing: false,
            confirm_text: String::new(),
            allow_drop: Default::default(),
            from: None,
            pending_target: None,
            copies: Default::default(),
            names: None,
            running: None,
            result: None,
            result_is_rollback: false,
            last_restore: None,
            failed_id: None,
            error: None,
        }
    }
}

impl Restore {
    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        let engine = ctx.engine.clone();
        let e2 = ctx.engine.clone();
        Task::batch([
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
            ),
            Task::perform(async move { e2.all_backup_copies().await }, Message::Copies),
        ])
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
            copies: std::mem::take(&mut self.copies),
            loaded: self.loaded,
            backup: Some(id),
            step: Step::Target,
            ..Restore::default()
        };
        Task::none()
    }

    /// Opens the wizard on a clone (from the migration assistant): the
    /// backup, another project as the target, the scope; the preview is
    /// two steps on.
    pub fn start_clone(
        &mut self,
        backup: String,
        target: String,
        schema_only: bool,
        ctx: &Ctx,
    ) -> Task<Message> {
        if self.running.is_some() {
            return Task::none();
        }
        let task = self.start_from(backup, ctx);
        self.target_kind = TargetKind::Project;
        self.target_project = self
            .projects
            .iter()
            .find(|p| p.id == target)
            .map(ProjectChoice::from);
        if self.target_project.is_none() {
            self.pending_target = Some(target);
        }
        self.data = !schema_only;
        self.step = Step::Scope;
        task
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

    /// The name to type before restoring: the preview says (production
    /// projects, URL targets that are not empty); before a preview, a
    /// production target's name.
    pub fn confirm_name(&self) -> Option<String> {
        match &self.preview {
            Some(Ok(p)) => p.confirm_name.clone(),
            _ => self
                .target_project()
                .filter(|p| p.environment == Environment::Production)
                .map(|p| p.name.clone()),
        }
    }

    /// Typing the target's name is required for production targets.
    pub fn needs_typed_confirmation(&self) -> bool {
        self.confirm_name().is_some()
    }

    pub fn confirmed(&self) -> bool {
        match self.confirm_name() {
            Some(name) => self.confirm_text.trim() == name,
            None => true,
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
            from: self.from.clone(),
            jobs: self.jobs,
        })
    }

    /// Whether the result step offers to roll back the restore it shows: a
    /// completed one, or a failed parallel load that changed the target.
    pub fn can_roll_back(&self) -> bool {
        let current = match (&self.result, &self.last_restore) {
            (Some(Ok(rec)), Some(last)) => rec.id == last.id,
            (Some(Err(_)), Some(last)) => self.failed_id.as_deref() == Some(last.id.as_str()),
            _ => false,
        };
        !self.result_is_rollback
            && current
            && self
                .last_restore
                .as_ref()
                .is_some_and(Self::can_roll_back_record)
    }

    /// Whether a restore can be rolled back from here: it changed a
    /// project of the catalog and has a safety snapshot.
    pub fn can_roll_back_record(r: &RestoreRecord) -> bool {
        r.changed_target()
            && r.rollback_of.is_none()
            && r.snapshot_backup_id.is_some()
            && r.target_project_id.is_some()
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

    /// Reads the chosen backup's schemas and tables from its manifest.
    fn names_task(&mut self, ctx: &Ctx) -> Task<Message> {
        self.names = None;
        let Some(id) = self.backup.clone() else {
            return Task::none();
        };
        let engine = ctx.engine.clone();
        Task::perform(
            async move {
                let m = engine.backup_manifest(&id).await?;
                let mut schemas: std::collections::BTreeSet<&str> = m
                    .objects
                    .iter()
                    .map(|o| o.schema.as_str())
                    .chain(m.tables.iter().map(|t| t.schema.as_str()))
                    .filter(|s| !crate::engine::backup::platform::is_platform_schema(s))
                    .collect();
                schemas.remove("supabase_migrations");
                let tables = m
                    .tables
                    .iter()
                    .map(|t| crate::engine::ident::render_table(&t.schema, &t.name))
                    .collect();
                Ok((
                    schemas
                        .into_iter()
                        .map(crate::engine::ident::render)
                        .collect(),
                    tables,
                ))
            },
            Message::Names,
        )
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
                if let Some(id) = self.pending_target.take() {
                    self.target_project = self
                        .projects
                        .iter()
                        .find(|p| p.id == id)
                        .map(ProjectChoice::from);
                }
                self.history = history;
                self.loaded = true;
                if let Some(id) = &self.failed_id
                    && let Some(rec) = self.history.iter().find(|r| &r.id == id)
                    && rec.changed_target()
                {
                    self.last_restore = Some(rec.clone());
                }
                Action::none()
            }
            Message::Loaded(Err(e)) => Action::error(&e),
            Message::Search(s) => {
                self.search = s;
                Action::none()
            }
            Message::PickBackup(id) => {
                self.backup = Some(id);
                self.from = None;
                self.error = None;
                Action::none()
            }
            Message::Copies(Ok(c)) => {
                self.copies = c;
                Action::none()
            }
            // Without the list the wizard reads the default copy.
            Message::Copies(Err(_)) => Action::none(),
            Message::From(FromChoice(f)) => {
                self.from = f;
                self.preview = None;
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
            Message::Jobs(n) => {
                self.jobs = n.clamp(1, crate::engine::restore::MAX_JOBS);
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
                    Step::Target => {
                        self.step = Step::Scope;
                        return Action::task(self.names_task(ctx));
                    }
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
                        self.allow_drop.clear();
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
                    // Objects accepted earlier that the scope no longer drops go.
                    if let Ok(p) = &r {
                        self.allow_drop
                            .retain(|o| p.dependents.iter().any(|d| &d.object == o));
                    }
                    self.preview = Some(r);
                }
                Action::none()
            }
            Message::AllowDrop(object, on) => {
                if self.step != Step::Preview {
                    return Action::none();
                }
                if on {
                    self.allow_drop.insert(object);
                } else {
                    self.allow_drop.remove(&object);
                }
                // Keep the current preview on screen while the new one runs.
                let shown = self.preview.take();
                let task = self.preview_task(ctx);
                if self.previewing {
                    self.preview = shown;
                }
                Action::task(task)
            }
            Message::ConfirmText(t) => {
                self.confirm_text = t;
                Action::none()
            }
            Message::Names(r) => {
                self.names = r.ok();
                Action::none()
            }
            Message::PickSchema(n) => {
                self.schemas = widget::toggle_name(&self.schemas, &n);
                self.error = None;
                Action::none()
            }
            Message::PickTable(n) => {
                self.tables = widget::toggle_name(&self.tables, &n);
                self.error = None;
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
                let run = self.running.take().map(|mut run| {
                    run.handle.take();
                    (run.rollback, run.progress.map(|p| p.restore_id))
                });
                let (rollback, id) = run.unwrap_or((false, None));
                self.result_is_rollback = rollback;
                self.failed_id = if r.is_err() && !rollback { id } else { None };
                self.step = Step::Result;
                let notice = match &r {
                    Ok(rec) if self.result_is_rollback => widget::Notice::success(format!(
                        "Rolled back: {} is as it was before the restore",
                        rec.target
                    )),
                    Ok(rec) => widget::Notice::success(format!("Restored into {}", rec.target)),
                    Err(e) if e.kind == ErrorKind::Cancelled && self.jobs > 1 => {
                        widget::Notice::warning(
                            "The restore was cancelled; the parallel load may have left the target partly restored",
                        )
                    }
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
            Message::RollbackOf(id) => {
                let Some(rec) = self.history.iter().find(|r| r.id == id) else {
                    return Action::none();
                };
                if self.running.is_some() || !Self::can_roll_back_record(rec) {
                    return Action::none();
                }
                self.last_restore = Some(rec.clone());
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
}

#[cfg(test)]
mod tests;
