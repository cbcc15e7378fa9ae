//! Schedules: backup jobs per project — list, add, edit, enable/disable,
//! remove — with the cron expression validated and the next five run times
//! shown as the user types, and retention rules. (Ticking and running the
//! jobs is the scheduler's; this screen edits `backup_jobs` and shows their
//! state.)

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use iced::widget::{
    column, combo_box, container, pick_list, row, scrollable, text, text_input, toggler,
};
use iced::{Alignment, Element, Length, Task};

use super::choices::{
    CodecChoice, KindChoice, LevelChoice, ProjectChoice, ProjectFilter, StreamsChoice,
};
use super::{Action, Ctx, Effect};
use crate::engine::Error;
use crate::engine::backup::BackupOptions;
use crate::engine::project::Project;
use crate::engine::schedule::{CronExpr, Gfs, Job, JobConfig, JobInput, JobTz, Retention};
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

pub const CRON_ID: &str = "schedule-cron";
pub const NAME_ID: &str = "schedule-name";
pub const RESTORE_EVERY_ID: &str = "schedule-restore-every";
pub const RESTORE_CRON_ID: &str = "schedule-restore-cron";

/// Common schedules, one click away.
pub const PRESETS: [(&str, &str); 4] = [
    ("Hourly", "0 * * * *"),
    ("Daily 03:00", "0 3 * * *"),
    ("Weekly, Sunday 03:00", "0 3 * * SUN"),
    ("Monthly, 1st 03:00", "0 3 1 * *"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TzChoice(pub JobTz);

impl TzChoice {
    /// Local time, UTC, then every IANA zone by name.
    pub fn all() -> Vec<TzChoice> {
        [TzChoice(JobTz::Local), TzChoice(JobTz::Utc)]
            .into_iter()
            .chain(
                chrono_tz::TZ_VARIANTS
                    .iter()
                    .map(|z| TzChoice(JobTz::Zone(*z))),
            )
            .collect()
    }
}

impl std::fmt::Display for TzChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    KeepLast,
    KeepDays,
    Daily,
    Weekly,
    Monthly,
}

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<(Vec<Job>, Vec<Project>), Error>),
    Filter(ProjectFilter),
    New,
    Edit(String),
    Toggle(String, bool),
    Toggled(String, Result<Job, Error>),
    AskRemove(String),
    ConfirmRemove,
    CancelRemove,
    Removed(Result<Job, Error>),
    // The form.
    Project(ProjectChoice),
    Name(String),
    Cron(String),
    Preset(&'static str),
    Tz(TzChoice),
    Kind(KindChoice),
    Codec(CodecChoice),
    Level(LevelChoice),
    Streams(StreamsChoice),
    Encrypt(bool),
    Schemas(String),
    Exclude(String),
    Retention(Retain, String),
    Enabled(bool),
    /// Conditions, chain and hooks.
    Options(super::job_options::Message),
    Destinations(Result<Vec<crate::engine::destination::Destination>, Error>),
    /// Copy (or not) each run's backup to this destination.
    CopyTo(String, bool),
    Failover(FailoverChoice),
    KeepLocal(bool),
    /// Restore-test each new backup from this destination (a DR drill).
    Drill(FailoverChoice),
    /// "keep last N" at a destination.
    DestKeep(String, String),
    /// Restore-test every Nth backup (as typed; empty: off).
    RestoreEvery(String),
    /// Restore tests on their own cron (as typed; empty: off).
    RestoreCron(String),
    Save,
    Saved(Result<Job, Error>),
    CancelForm,
    Escape,
}

/// The next runs of an expression, or why it is invalid.
pub fn next_runs(
    expr: &str,
    tz: JobTz,
    now: DateTime<Utc>,
    n: usize,
) -> Result<Vec<DateTime<Utc>>, String> {
    let cron = CronExpr::parse(expr).map_err(|e| match e.hint {
        Some(h) => format!("{} — {h}", e.message),
        None => e.message,
    })?;
    Ok(cron.next_runs(tz, now, n))
}

/// `Mon 2024-05-06 03:00` in the job's zone.
pub fn run_time(t: DateTime<Utc>, tz: JobTz) -> String {
    match tz {
        JobTz::Utc => t.format("%a %Y-%m-%d %H:%M UTC").to_string(),
        JobTz::Local => tz.format(t, "%a %Y-%m-%d %H:%M"),
        JobTz::Zone(_) => tz.format(t, "%a %Y-%m-%d %H:%M %Z"),
    }
}

/// `keep last 7 · 30 days · GFS 7/4/12`, or `keep everything`.
pub fn retention_summary(r: &Retention) -> String {
    let mut parts = Vec::new();
    if let Some(n) = r.keep_last {
        parts.push(format!("last {n}"));
    }
    if let Some(d) = r.keep_days {
        parts.push(format!("{d} days"));
    }
    if let Some(g) = r.gfs {
        parts.push(format!("GFS {}/{}/{}", g.daily, g.weekly, g.monthly));
    }
    if parts.is_empty() {
        "keep everything".into()
    } else {
        format!("keep {}", parts.join(" · "))
    }
}

#[derive(Debug)]
pub struct JobForm {
    pub editing: Option<Job>,
    pub project: Option<ProjectChoice>,
    pub name: String,
    pub cron: String,
    pub tz: JobTz,
    pub backup: BackupOptions,
    pub schemas: String,
    pub exclude: String,
    pub keep_last: String,
    pub keep_days: String,
    pub daily: String,
    pub weekly: String,
    pub monthly: String,
    /// Scheduled restore tests, as typed (empty: off).
    pub restore_every: String,
    pub restore_cron: String,
    pub enabled: bool,
    /// Conditions, chain and hooks, as typed.
    pub options: super::job_options::Options,
    /// What is not edited here (chain, hook timeouts…) is kept as it was.
    pub config: JobConfig,
    /// The next five runs, or why the expression is invalid.
    pub preview: Result<Vec<DateTime<Utc>>, String>,
    pub touched_cron: bool,
    pub error: Option<String>,
    pub saving: bool,
    /// "keep last" per destination, as typed.
    pub dest_keep: std::collections::BTreeMap<String, String>,
}

/// The failover destination picker's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverChoice(pub Option<String>);

impl std::fmt::Display for FailoverChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("no failover"),
            Some(n) => f.write_str(n),
        }
    }
}

fn opt_num(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

impl JobForm {
    pub fn new(project: Option<ProjectChoice>, defaults: &BackupOptions) -> Self {
        let mut f = JobForm {
            editing: None,
            project,
            name: String::new(),
            cron: "0 3 * * *".into(),
            tz: JobTz::Local,
            backup: defaults.clone(),
            schemas: defaults.schemas.join(", "),
            exclude: defaults.exclude_tables.join(", "),
            keep_last: "14".into(),
            keep_days: String::new(),
            daily: String::new(),
            weekly: String::new(),
            monthly: String::new(),
            restore_every: String::new(),
            restore_cron: String::new(),
            enabled: true,
            options: Default::default(),
            config: JobConfig::default(),
            preview: Ok(Vec::new()),
            touched_cron: false,
            error: None,
            saving: false,
            dest_keep: Default::default(),
        };
        f.refresh();
        f
    }

    pub fn edit(job: &Job, project: Option<ProjectChoice>, projects: &[ProjectChoice]) -> Self {
        let g = job.retention.gfs;
        let mut f = JobForm {
            editing: Some(job.clone()),
            project,
            name: job.name.clone(),
            cron: job.cron.clone(),
            tz: job.timezone,
            backup: job.config.backup.clone(),
            schemas: job.config.backup.schemas.join(", "),
            exclude: job.config.backup.exclude_tables.join(", "),
            keep_last: opt_num(job.retention.keep_last),
            keep_days: opt_num(job.retention.keep_days),
            daily: opt_num(g.map(|g| g.daily)),
            weekly: opt_num(g.map(|g| g.weekly)),
            monthly: opt_num(g.map(|g| g.monthly)),
            restore_every: opt_num(job.config.restore_test.every),
            restore_cron: job.config.restore_test.cron.clone().unwrap_or_default(),
            enabled: job.enabled,
            options: super::job_options::Options::from_config(&job.config, projects),
            config: job.config.clone(),
            preview: Ok(Vec::new()),
            touched_cron: true,
            error: None,
            saving: false,
            dest_keep: job
                .config
                .destination_retention
                .iter()
                .map(|(n, r)| (n.clone(), opt_num(r.keep_last)))
                .collect(),
        };
        f.refresh();
        f
    }

    /// Recomputes the next runs (pure: no I/O).
    pub fn refresh(&mut self) {
        self.preview = next_runs(&self.cron, self.tz, Utc::now(), 5);
    }

    fn number(label: &str, s: &str) -> Result<Option<u32>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("{label} must be a whole number above 0"))
    }

    pub fn retention(&self) -> Result<Retention, String> {
        let keep_last = Self::number("keep last", &self.keep_last)?;
        let keep_days = Self::number("keep days", &self.keep_days)?;
        let (d, w, m) = (
            Self::number("daily", &self.daily)?,
            Self::number("weekly", &self.weekly)?,
            Self::number("monthly", &self.monthly)?,
        );
        let gfs = (d.is_some() || w.is_some() || m.is_some()).then(|| Gfs {
            daily: d.unwrap_or(0),
            weekly: w.unwrap_or(0),
            monthly: m.unwrap_or(0),
        });
        Ok(Retention {
            keep_last,
            keep_days,
            gfs,
        })
    }

    /// The job as typed, checked the way the engine checks it.
    pub fn input(&self) -> Result<JobInput, String> {
        let project = self.project.as_ref().ok_or("choose a project")?;
        self.preview.as_ref().map_err(Clone::clone)?;
        let mut backup = self.backup.clone();
        if backup.kind == crate::engine::backup::BackupKind::Roles {
            backup.schemas.clear();
            backup.exclude_tables.clear();
        } else {
            backup.schemas = format::split_list(&self.schemas);
            backup.exclude_tables = format::split_list(&self.exclude);
        }
        backup.validate().map_err(|e| e.message)?;
        let mut config = self.config.clone();
        config.backup = backup;
        config.restore_test.every = Self::number("restore-test every", &self.restore_every)?;
        config.restore_test.cron = match self.restore_cron.trim() {
            "" => None,
            c => {
                next_runs(c, self.tz, Utc::now(), 1)
                    .map_err(|e| format!("the restore-test schedule: {e}"))?;
                Some(c.to_owned())
            }
        };
        self.options
            .apply(self.project.as_ref().map(|p| p.id.as_str()), &mut config)?;
        let mut per_dest = std::collections::BTreeMap::new();
        for name in crate::engine::destination::copies::plan_names(&config.store) {
            let mut r = config
                .destination_retention
                .get(name)
                .copied()
                .unwrap_or_default();
            let typed = self.dest_keep.get(name).map(String::as_str).unwrap_or("");
            r.keep_last = Self::number(&format!("keep last at {name}"), typed)?;
            if !r.is_empty() {
                per_dest.insert(name.clone(), r);
            }
        }
        config.destination_retention = per_dest;
        if config.store.destinations.is_empty() {
            config.store.failover = None;
            config.store.drop_local = false;
        }
        if let Some(d) = &config.drill_from
            && !crate::engine::destination::copies::plan_names(&config.store).any(|n| n == d)
        {
            config.drill_from = None;
        }
        Ok(JobInput {
            project: project.id.clone(),
            name: (!self.name.trim().is_empty()).then(|| self.name.trim().to_owned()),
            cron: self.cron.clone(),
            timezone: self.tz,
            config,
            retention: self.retention()?,
            enabled: self.enabled,
        })
    }
}

#[derive(Debug)]
pub struct Schedules {
    pub jobs: Vec<Job>,
    pub projects: Vec<Project>,
    pub loaded: bool,
    pub error: Option<Error>,
    pub project: Option<String>,
    pub form: Option<JobForm>,
    pub confirm_remove: Option<Job>,
    pub busy: HashSet<String>,
    pub now: DateTime<Utc>,
    /// The options new jobs start from (the settings' defaults).
    pub defaults: BackupOptions,
    /// The time-zone picker: type to filter the IANA zones.
    pub zones: combo_box::State<TzChoice>,
    /// Every destination's name, for the form.
    pub destinations: Vec<String>,
}

impl Default for Schedules {
    fn default() -> Self {
        Schedules {
            jobs: Vec::new(),
            projects: Vec::new(),
            loaded: false,
            error: None,
            project: None,
            form: None,
            confirm_remove: None,
            busy: HashSet::new(),
            zones: combo_box::State::new(TzChoice::all()),
            destinations: Vec::new(),
            now: Utc::now(),
            defaults: BackupOptions::default(),
        }
    }
}

impl Schedules {
    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        self.defaults = ctx.prefs.default_backup.clone();
        self.now = Utc::now();
        let engine = ctx.engine.clone();
        let e2 = ctx.engine.clone();
        Task::batch([
            Task::perform(
                async move {
                    let (j, p) = tokio::join!(engine.list_jobs(), engine.list_projects());
                    Ok((j?, p?))
                },
                Message::Loaded,
            ),
            Task::perform(
                async move { e2.list_destinations().await },
                Message::Destinations,
            ),
        ])
    }

    pub fn filter_project(&mut self, id: Option<String>) {
        self.project = id;
    }

    fn choice(&self, id: &str) -> Option<ProjectChoice> {
        self.projects
            .iter()
            .find(|p| p.id == id)
            .map(ProjectChoice::from)
    }

    pub fn visible(&self) -> Vec<&Job> {
        self.jobs
            .iter()
            .filter(|j| self.project.as_ref().is_none_or(|p| &j.project_id == p))
            .collect()
    }

    fn form_mut(&mut self) -> Option<&mut JobForm> {
        self.form.as_mut()
    }

    /// Applies a change to the form and recomputes what depends on it.
    fn edit_form(&mut self, f: impl FnOnce(&mut JobForm)) -> Action<Message> {
        if let Some(form) = self.form_mut() {
            f(form);
            form.error = None;
            form.refresh();
        }
        Action::none()
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok((jobs, projects))) => {
                self.jobs = jobs;
                self.projects = projects;
                self.loaded = true;
                self.error = None;
                Action::none()
            }
            Message::Loaded(Err(e)) => {
                self.error = Some(e);
                Action::none()
            }
            Message::Filter(f) => {
                self.project = f.0.map(|c| c.id);
                Action::none()
            }
            Message::New => {
                let project = match (&self.project, self.projects.as_slice()) {
                    (Some(id), _) => self.choice(id),
                    (None, [only]) => Some(ProjectChoice::from(only)),
                    _ => None,
                };
                self.form = Some(JobForm::new(project, &self.defaults));
                Action::task(iced::widget::operation::focus(CRON_ID))
            }
            Message::Edit(id) => {
                if let Some(job) = self.jobs.iter().find(|j| j.id == id) {
                    let choice = self.choice(&job.project_id);
                    let all: Vec<ProjectChoice> =
                        self.projects.iter().map(ProjectChoice::from).collect();
                    self.form = Some(JobForm::edit(job, choice, &all));
                }
                Action::none()
            }
            Message::Toggle(id, enabled) => {
                if !self.busy.insert(id.clone()) {
                    return Action::none();
                }
                let engine = ctx.engine.clone();
                let key = id.clone();
                Action::task(Task::perform(
                    async move { engine.set_job_enabled(&key, enabled).await },
                    move |r| Message::Toggled(id.clone(), r),
                ))
            }
            Message::Toggled(id, r) => {
                self.busy.remove(&id);
                match r {
                    Ok(job) => {
                        if let Some(j) = self.jobs.iter_mut().find(|j| j.id == job.id) {
                            *j = job;
                        }
                        Action::effect(Effect::DataChanged)
                    }
                    Err(e) => Action::error(&e),
                }
            }
            Message::AskRemove(id) => {
                self.confirm_remove = self.jobs.iter().find(|j| j.id == id).cloned();
                Action::none()
            }
            Message::CancelRemove => {
                self.confirm_remove = None;
                Action::none()
            }
            Message::ConfirmRemove => {
                let Some(job) = self.confirm_remove.take() else {
                    return Action::none();
                };
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move { engine.remove_job(&job.id).await },
                    Message::Removed,
                ))
            }
            Message::Removed(Ok(job)) => {
                self.jobs.retain(|j| j.id != job.id);
                Action::notice(widget::Notice::success(format!(
                    "Removed the schedule “{}”",
                    job.name
                )))
                .with(Effect::DataChanged)
            }
            Message::Removed(Err(e)) => Action::error(&e),
            Message::Project(p) => self.edit_form(|f| f.project = Some(p)),
            Message::Name(s) => self.edit_form(|f| f.name = s),
            Message::Cron(s) => self.edit_form(|f| {
                f.cron = s;
                f.touched_cron = true;
            }),
            Message::Preset(expr) => self.edit_form(|f| {
                f.cron = expr.to_owned();
                f.touched_cron = true;
            }),
            Message::Tz(t) => self.edit_form(|f| f.tz = t.0),
            Message::Kind(k) => self.edit_form(|f| {
                f.backup.kind = k.0;
                // The repository always seals and zstd-compresses chunks.
                if k.0 == crate::engine::backup::BackupKind::Incremental {
                    f.backup.codec = crate::engine::backup::Codec::Zstd;
                    f.backup.encrypt = true;
                }
            }),
            Message::Codec(c) => self.edit_form(|f| f.backup.codec = c.0),
            Message::Level(l) => self.edit_form(|f| f.backup.level = l.0),
            Message::Streams(s) => self.edit_form(|f| f.backup.streams = s.0),
            Message::Encrypt(b) => self.edit_form(|f| f.backup.encrypt = b),
            Message::Schemas(s) => self.edit_form(|f| f.schemas = s),
            Message::Exclude(s) => self.edit_form(|f| f.exclude = s),
            Message::Retention(which, s) => self.edit_form(|f| match which {
                Retain::KeepLast => f.keep_last = s,
                Retain::KeepDays => f.keep_days = s,
                Retain::Daily => f.daily = s,
                Retain::Weekly => f.weekly = s,
                Retain::Monthly => f.monthly = s,
            }),
            Message::Enabled(b) => self.edit_form(|f| f.enabled = b),
            Message::Options(m) => self.edit_form(|f| f.options.update(m)),
            Message::Destinations(r) => {
                self.destinations = r
                    .map(|l| l.into_iter().map(|d| d.name).collect())
                    .unwrap_or_default();
                Action::none()
            }
            Message::CopyTo(name, on) => self.edit_form(|f| {
                f.config.store.destinations.retain(|n| n != &name);
                if on {
                    f.config.store.destinations.push(name);
                }
            }),
            Message::Failover(FailoverChoice(c)) => self.edit_form(|f| f.config.store.failover = c),
            Message::KeepLocal(b) => self.edit_form(|f| f.config.store.drop_local = !b),
            Message::Drill(FailoverChoice(c)) => self.edit_form(|f| f.config.drill_from = c),
            Message::DestKeep(name, v) => self.edit_form(|f| {
                f.dest_keep.insert(name, v);
            }),
            Message::RestoreEvery(v) => self.edit_form(|f| f.restore_every = v),
            Message::RestoreCron(v) => self.edit_form(|f| f.restore_cron = v),
            Message::Save => {
                let Some(form) = &mut self.form else {
                    return Action::none();
                };
                if form.saving {
                    return Action::none();
                }
                form.touched_cron = true;
                let input = match form.input() {
                    Ok(i) => i,
                    Err(e) => {
                        form.error = Some(e);
                        return Action::none();
                    }
                };
                form.saving = true;
                let engine = ctx.engine.clone();
                let editing = form.editing.as_ref().map(|j| j.id.clone());
                Action::task(Task::perform(
                    async move {
                        match editing {
                            Some(id) => engine.update_job(&id, input).await,
                            None => engine.add_job(input).await,
                        }
                    },
                    Message::Saved,
                ))
            }
            Message::Saved(Ok(job)) => {
                let verb = if self.form.as_ref().is_some_and(|f| f.editing.is_some()) {
                    "Saved"
                } else {
                    "Created"
                };
                self.form = None;
                let name = job.name.clone();
                match self.jobs.iter_mut().find(|j| j.id == job.id) {
                    Some(j) => *j = job,
                    None => self.jobs.push(job),
                }
                Action::task(self.load(ctx))
                    .with(Effect::Notice(widget::Notice::success(format!(
                        "{verb} the schedule “{name}”"
                    ))))
                    .with(Effect::DataChanged)
            }
            Message::Saved(Err(e)) => {
                if let Some(f) = &mut self.form {
                    f.saving = false;
                    f.error = Some(match e.hint {
                        Some(h) => format!("{} ({h})", e.message),
                        None => e.message,
                    });
                }
                Action::none()
            }
            Message::CancelForm => {
                self.form = None;
                Action::none()
            }
            Message::Escape => {
                if self.confirm_remove.is_some() {
                    self.confirm_remove = None;
                } else {
                    self.form = None;
                }
                Action::none()
            }
        }
    }

    // ----- view -------------------------------------------------------------

    /// `leader`: whether this app runs the schedule (`None` before the first tick).
    pub fn view(&self, leader: Option<bool>) -> Element<'_, Message> {
        let filters = ProjectFilter::options(&self.projects);
        let current = ProjectFilter::selected(&self.projects, self.project.as_ref());
        let header = widget::page_header(
            "Schedules",
            Some(format!(
                "{} job(s), {} enabled · {}",
                self.jobs.len(),
                self.jobs.iter().filter(|j| j.enabled).count(),
                match leader {
                    Some(true) => "this app runs them while it is open",
                    Some(false) => "another supabackup (e.g. `supabackup daemon`) runs them",
                    None => "they run while this app (or `supabackup daemon`) is running",
                }
            )),
            row![
                pick_list(filters, Some(current), Message::Filter).padding(theme::S),
                widget::primary_button(
                    "New schedule",
                    (!self.projects.is_empty()).then_some(Message::New)
                ),
            ]
            .spacing(theme::S),
        );
        let mut page = column![header].spacing(theme::L);
        if let Some(e) = &self.error {
            page = page.push(widget::banner(&widget::Notice::error(e), Message::Load));
        }
        let list: Element<'_, Message> = if !self.loaded {
            text("Loading schedules…").style(theme::muted).into()
        } else if self.projects.is_empty() {
            widget::empty(
                "No projects yet",
                "Add a project first; then schedule its backups here.",
                None,
            )
        } else if self.visible().is_empty() {
            widget::empty(
                "No schedules",
                "Schedule regular backups with a cron expression — nightly at 03:00 is a good start — and a retention rule that keeps the disk in check.",
                Some(("New schedule", Message::New)),
            )
        } else {
            scrollable(
                column(self.visible().into_iter().map(|j| self.job_row(j))).spacing(theme::S),
            )
            .height(Length::Fill)
            .into()
        };
        let body: Element<'_, Message> = match &self.form {
            Some(f) => row![
                container(list).width(Length::FillPortion(2)),
                container(
                    scrollable(
                        container(self.form_view(f))
                            .padding(theme::L)
                            .style(theme::card)
                    )
                    .height(Length::Fill)
                )
                .width(Length::FillPortion(3)),
            ]
            .spacing(theme::L)
            .into(),
            None => list,
        };
        page = page.push(body);
        let base: Element<'_, Message> = page.into();
        if let Some(j) = &self.confirm_remove {
            let dialog = column![
                text(format!("Remove the schedule “{}”?", j.name))
                    .size(theme::H2)
                    .font(theme::BOLD),
                text("No more backups run on it. Existing backups stay."),
                row![
                    widget::danger_button("Remove schedule", Some(Message::ConfirmRemove)),
                    widget::secondary_button("Keep it", Some(Message::CancelRemove)),
                ]
                .spacing(theme::S),
            ]
            .spacing(theme::M)
            .max_width(480);
            return widget::modal(base, dialog, Message::CancelRemove);
        }
        base
    }

    fn job_row<'a>(&'a self, j: &'a Job) -> Element<'a, Message> {
        let project = self
            .projects
            .iter()
            .find(|p| p.id == j.project_id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "removed project".into());
        let next = match (&j.next_run_at, j.enabled) {
            (_, false) => "disabled".to_owned(),
            (Some(t), true) => format!(
                "next {} ({})",
                format::age_of(Some(t), self.now),
                format::parse_time(t)
                    .map(|t| run_time(t, j.timezone))
                    .unwrap_or_default()
            ),
            (None, true) => "no next run".into(),
        };
        let last: Element<'a, Message> = match (&j.last_status, &j.last_run_at) {
            (Some(s), at) => row![
                widget::status_badge(s),
                text(format::age_of(at.as_deref(), self.now))
                    .size(theme::SMALL)
                    .style(theme::muted)
            ]
            .spacing(theme::XS)
            .align_y(Alignment::Center)
            .into(),
            (None, _) => text("never ran")
                .size(theme::SMALL)
                .style(theme::muted)
                .into(),
        };
        let id = j.id.clone();
        let selected = self
            .form
            .as_ref()
            .and_then(|f| f.editing.as_ref())
            .is_some_and(|e| e.id == j.id);
        let toggle = toggler(j.enabled).on_toggle_maybe((!self.busy.contains(&j.id)).then(|| {
            let id = id.clone();
            move |b| Message::Toggle(id.clone(), b)
        }));
        container(
            column![
                row![
                    toggle,
                    text(j.name.clone()).font(theme::BOLD),
                    widget::badge(project, Tone::Neutral),
                    widget::fill(),
                    widget::secondary_button("Edit", Some(Message::Edit(id.clone()))),
                    widget::danger_button("Remove…", Some(Message::AskRemove(id))),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
                row![
                    text(j.cron.clone()).font(theme::MONO).size(theme::SMALL),
                    text(format!("{} · {}", TzChoice(j.timezone), next))
                        .size(theme::SMALL)
                        .style(theme::muted),
                ]
                .spacing(theme::S)
                .wrap(),
                row![
                    text(format!(
                        "{} backup · {}{}{} · last run",
                        j.config.backup.kind.as_str(),
                        retention_summary(&j.retention),
                        {
                            let c = j.config.conditions();
                            if c.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    " · only when {}",
                                    c.iter()
                                        .map(|c| c.describe())
                                        .collect::<Vec<_>>()
                                        .join(" or ")
                                )
                            }
                        },
                        if j.config.restore_test.is_off() {
                            String::new()
                        } else {
                            format!(" · restore test {}", j.config.restore_test.describe())
                        }
                    ))
                    .size(theme::SMALL)
                    .style(theme::muted),
                    last,
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center)
                .wrap(),
            ]
            .spacing(theme::XS),
        )
        .padding(theme::M)
        .style(move |t: &iced::Theme| {
            let mut s = theme::card(t);
            if selected {
                s.border.color = t.extended_palette().primary.base.color;
            }
            s
        })
        .into()
    }

    fn form_view<'a>(&'a self, f: &'a JobForm) -> Element<'a, Message> {
        let choices: Vec<ProjectChoice> = self.projects.iter().map(ProjectChoice::from).collect();
        let cron_error = match (&f.preview, f.touched_cron) {
            (Err(e), true) => Some(e.as_str()),
            _ => None,
        };
        let mut runs = column![text("Next runs").size(theme::SMALL).font(theme::BOLD)].spacing(2);
        match &f.preview {
            Ok(list) if !list.is_empty() => {
                for t in list {
                    runs = runs.push(
                        row![
                            text(run_time(*t, f.tz))
                                .size(theme::SMALL)
                                .font(theme::MONO),
                            text(format::age(*t, Utc::now()))
                                .size(theme::SMALL)
                                .style(theme::muted),
                        ]
                        .spacing(theme::M),
                    );
                }
            }
            _ => runs = runs.push(text("—").size(theme::SMALL).style(theme::muted)),
        }
        let presets = row(PRESETS.iter().map(|(label, expr)| {
            iced::widget::button(text(*label).size(theme::SMALL))
                .style(theme::secondary)
                .padding([3.0, theme::S])
                .on_press(Message::Preset(expr))
                .into()
        }))
        .spacing(theme::XS)
        .wrap();
        let roles = f.backup.kind == crate::engine::backup::BackupKind::Roles;
        let num = |label: &'static str, which: Retain, value: &'a str| {
            widget::field(
                label,
                text_input("—", value)
                    .on_input(move |s| Message::Retention(which, s))
                    .padding(theme::S)
                    .width(Length::Fill),
                None,
                None,
            )
        };
        let error_line: Element<'a, Message> = match &f.error {
            Some(e) => text(e.clone()).style(theme::toned(Tone::Danger)).into(),
            None => iced::widget::space().into(),
        };
        let mut col = column![
            row![
                text(if f.editing.is_some() {
                    "Edit schedule"
                } else {
                    "New schedule"
                })
                .size(theme::H2)
                .font(theme::BOLD),
                widget::fill(),
                widget::primary_button(
                    match (f.saving, f.editing.is_some()) {
                        (true, _) => "Saving…",
                        (false, true) => "Save schedule",
                        (false, false) => "Create schedule",
                    },
                    (!f.saving).then_some(Message::Save)
                ),
                widget::secondary_button("Cancel", Some(Message::CancelForm)),
            ]
            .spacing(theme::S)
            .align_y(Alignment::Center),
            error_line,
            row![
                widget::field(
                    "Project",
                    pick_list(choices, f.project.clone(), Message::Project)
                        .placeholder("Choose a project")
                        .padding(theme::S)
                        .width(Length::Fill),
                    None,
                    None,
                ),
                widget::field(
                    "Name",
                    text_input("e.g. nightly", &f.name)
                        .id(NAME_ID)
                        .on_input(Message::Name)
                        .padding(theme::S),
                    None,
                    None,
                ),
            ]
            .spacing(theme::M),
            row![
                widget::field(
                    "Cron expression",
                    text_input("minute hour day month weekday", &f.cron)
                        .id(CRON_ID)
                        .on_input(Message::Cron)
                        .on_submit(Message::Save)
                        .font(theme::MONO)
                        .padding(theme::S)
                        .style(theme::input(cron_error.is_some())),
                    cron_error,
                    Some("5 fields (minute first), 6 with seconds, or @daily / @weekly…"),
                ),
                widget::field(
                    "Time zone",
                    combo_box(
                        &self.zones,
                        "local, UTC or Europe/Berlin…",
                        Some(&TzChoice(f.tz)),
                        Message::Tz
                    )
                    .padding(theme::S),
                    None,
                    Some("type to search the IANA zones; DST follows the zone"),
                ),
            ]
            .spacing(theme::M),
            presets,
            container(runs)
                .padding(theme::S)
                .width(Length::Fill)
                .style(theme::table_header),
            text("Backup").font(theme::BOLD),
            row![
                pick_list(
                    KindChoice::ALL,
                    Some(KindChoice(f.backup.kind)),
                    Message::Kind
                )
                .padding(theme::S)
                .width(Length::Fill),
                pick_list(
                    CodecChoice::ALL,
                    Some(CodecChoice(f.backup.codec)),
                    Message::Codec
                )
                .padding(theme::S)
                .width(Length::Fill),
                pick_list(
                    LevelChoice::all(),
                    Some(LevelChoice(f.backup.level)),
                    Message::Level
                )
                .padding(theme::S),
                pick_list(
                    StreamsChoice::all(),
                    Some(StreamsChoice(f.backup.streams)),
                    Message::Streams
                )
                .placeholder("streams")
                .padding(theme::S),
                toggler(f.backup.encrypt)
                    .label("encrypt")
                    .on_toggle(Message::Encrypt),
            ]
            .spacing(theme::S)
            .align_y(Alignment::Center),
        ]
        .spacing(theme::M);
        if !roles {
            col = col.push(
                row![
                    text_input("only these schemas (all)", &f.schemas)
                        .on_input(Message::Schemas)
                        .padding(theme::S),
                    text_input("leave out table data (schema.table, …)", &f.exclude)
                        .on_input(Message::Exclude)
                        .padding(theme::S),
                ]
                .spacing(theme::S),
            );
        }
        col = col
            .push(text("Retention").font(theme::BOLD))
            .push(
                row![
                    num("Keep last", Retain::KeepLast, &f.keep_last),
                    num("Keep days", Retain::KeepDays, &f.keep_days),
                    num("Daily", Retain::Daily, &f.daily),
                    num("Weekly", Retain::Weekly, &f.weekly),
                    num("Monthly", Retain::Monthly, &f.monthly),
                ]
                .spacing(theme::S),
            )
            .push(
                text(match f.retention() {
                    Ok(r) => format!(
                        "{}; the newest backup is always kept, and nothing is deleted without a rule",
                        retention_summary(&r)
                    ),
                    Err(e) => e,
                })
                .size(theme::SMALL)
                .style(theme::muted),
            )
            ;
        if !self.destinations.is_empty() {
            col = col.push(text("Copies").font(theme::BOLD));
            let store = &f.config.store;
            for name in &self.destinations {
                let on = store.destinations.contains(name);
                let n = name.clone();
                let mut line = row![
                    iced::widget::checkbox(on)
                        .label(name.clone())
                        .on_toggle(move |b| Message::CopyTo(n.clone(), b))
                        .width(Length::Fixed(200.0))
                ]
                .spacing(theme::M)
                .align_y(Alignment::Center);
                if on || store.failover.as_deref() == Some(name.as_str()) {
                    let n = name.clone();
                    line = line.push(
                        text_input(
                            "keep last (blank: keep all)",
                            f.dest_keep.get(name).map(String::as_str).unwrap_or(""),
                        )
                        .on_input(move |v| Message::DestKeep(n.clone(), v))
                        .padding(theme::S)
                        .width(Length::Fixed(220.0)),
                    );
                }
                col = col.push(line);
            }
            if !store.destinations.is_empty() {
                let mut choices = vec![FailoverChoice(None)];
                choices.extend(
                    self.destinations
                        .iter()
                        .filter(|n| !store.destinations.contains(n))
                        .map(|n| FailoverChoice(Some(n.clone()))),
                );
                col = col.push(
                    row![
                        text("When one cannot be reached, use").width(Length::Fixed(260.0)),
                        pick_list(
                            choices,
                            Some(FailoverChoice(store.failover.clone())),
                            Message::Failover
                        )
                        .padding(theme::S),
                        toggler(!store.drop_local)
                            .label("Keep a copy on this machine")
                            .on_toggle(Message::KeepLocal),
                    ]
                    .spacing(theme::M)
                    .align_y(Alignment::Center),
                );
                let mut drills = vec![FailoverChoice(None)];
                drills.extend(
                    crate::engine::destination::copies::plan_names(store)
                        .map(|n| FailoverChoice(Some(n.clone()))),
                );
                col = col.push(
                    row![
                        text("DR drill: restore-test each backup from").width(Length::Fixed(260.0)),
                        pick_list(
                            drills,
                            Some(FailoverChoice(f.config.drill_from.clone())),
                            Message::Drill
                        )
                        .padding(theme::S),
                    ]
                    .spacing(theme::M)
                    .align_y(Alignment::Center),
                );
            }
        }
        col = col
            .push(text("Restore tests").font(theme::BOLD))
            .push(
                row![
                    widget::field(
                        "After every Nth backup",
                        text_input("off", &f.restore_every)
                            .id(RESTORE_EVERY_ID)
                            .on_input(Message::RestoreEvery)
                            .padding(theme::S),
                        None,
                        Some("1: test every backup just made")
                    ),
                    widget::field(
                        "On a schedule of their own (cron)",
                        text_input("off, e.g. 0 4 * * 0", &f.restore_cron)
                            .id(RESTORE_CRON_ID)
                            .on_input(Message::RestoreCron)
                            .padding(theme::S),
                        None,
                        Some("tests the newest backup, in the job's time zone")
                    ),
                ]
                .spacing(theme::M),
            )
            .push(
                text(
                    "Restored into a throw-away database on the scratch server (Settings), \
                     compared table by table, then dropped; a failure raises verification.failed.",
                )
                .size(theme::SMALL)
                .style(theme::muted),
            )
            .push(text("Options").font(theme::BOLD))
            .push(
                toggler(f.enabled)
                    .label("Enabled")
                    .on_toggle(Message::Enabled),
            )
            .push(
                f.options
                    .view(
                        self.projects
                            .iter()
                            .filter(|c| f.project.as_ref().is_none_or(|p| p.id != c.id))
                            .map(ProjectChoice::from)
                            .collect(),
                    )
                    .map(Message::Options),
            );
        col.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_runs_and_errors() {
        let now = format::parse_time("2024-05-10T12:00:00Z").expect("now");
        let runs = next_runs("0 3 * * *", JobTz::Utc, now, 5).expect("valid");
        assert_eq!(runs.len(), 5);
        assert_eq!(run_time(runs[0], JobTz::Utc), "Sat 2024-05-11 03:00 UTC");
        let e = next_runs("*/5 * *", JobTz::Utc, now, 5).expect_err("3 fields");
        assert!(e.contains("3 fields"), "{e}");
        assert!(next_runs("61 * * * *", JobTz::Utc, now, 5).is_err());
        assert!(next_runs("@daily", JobTz::Local, now, 5).is_ok());
    }

    #[test]
    fn retention_parsing_and_summary() {
        let mut f = JobForm::new(None, &BackupOptions::default());
        assert_eq!(f.retention().expect("ok").keep_last, Some(14));
        f.daily = "7".into();
        f.monthly = "12".into();
        let r = f.retention().expect("ok");
        assert_eq!(
            r.gfs,
            Some(Gfs {
                daily: 7,
                weekly: 0,
                monthly: 12
            })
        );
        assert_eq!(retention_summary(&r), "keep last 14 · GFS 7/0/12");
        f.keep_days = "-3".into();
        assert!(f.retention().is_err());
        assert_eq!(retention_summary(&Retention::default()), "keep everything");
        assert_eq!(f.input().expect_err("no project"), "choose a project");
    }

    #[tokio::test]
    async fn form_previews_runs_as_the_user_types() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut s = Schedules::default();
        let p = Project {
            id: "id-a".into(),
            name: "Alpha".into(),
            slug: "alpha".into(),
            project_ref: "abc".into(),
            db_url: "postgresql://u@h/db".into(),
            environment: Default::default(),
            organization_id: None,
            description: None,
            has_db_password: false,
            ca_cert: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let _ = s.update(Message::Loaded(Ok((Vec::new(), vec![p]))), &ctx);
        let _ = s.update(Message::New, &ctx);
        let f = s.form.as_ref().expect("form");
        assert_eq!(
            f.project.as_ref().map(|p| p.name.as_str()),
            Some("Alpha"),
            "the only project"
        );
        assert_eq!(f.preview.as_ref().map(Vec::len), Ok(5));
        let _ = s.update(Message::Cron("*/5 * *".into()), &ctx);
        assert!(s.form.as_ref().is_some_and(|f| f.preview.is_err()));
        assert!(
            !s.update(Message::Save, &ctx).has_task(),
            "invalid cron is not saved"
        );
        assert!(s.form.as_ref().and_then(|f| f.error.clone()).is_some());
        let _ = s.update(Message::Preset("0 3 * * SUN"), &ctx);
        assert!(
            s.form
                .as_ref()
                .is_some_and(|f| f.preview.is_ok() && f.error.is_none())
        );
        // The zone picker: the next runs follow the zone's clock.
        let berlin = JobTz::parse("Europe/Berlin").expect("zone");
        let _ = s.update(Message::Preset("0 3 * * 1-5"), &ctx);
        let _ = s.update(Message::Tz(TzChoice(berlin)), &ctx);
        let f = s.form.as_ref().expect("form");
        assert_eq!(f.tz, berlin);
        for t in f.preview.as_ref().expect("runs") {
            let local = run_time(*t, berlin);
            assert!(local.contains(" 03:00 CE"), "{local}");
            assert!(
                !local.starts_with("Sat") && !local.starts_with("Sun"),
                "Monday to Friday: {local}"
            );
        }
        assert_eq!(f.input().expect("input").timezone.as_str(), "Europe/Berlin");
        assert!(
            s.zones.options().iter().any(|z| z.0 == berlin),
            "the picker offers every IANA zone"
        );
        let a = s.update(Message::Save, &ctx);
        assert!(a.has_task());
        let _ = s.update(Message::Escape, &ctx);
        assert!(s.form.is_none());
    }

    #[tokio::test]
    async fn the_form_sets_copies_failover_and_per_destination_retention() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut s = Schedules::default();
        let _ = s.update(Message::Destinations(Ok(Vec::new())), &ctx);
        s.destinations = vec!["bucket".into(), "spare".into()];
        let mut f = JobForm::new(
            Some(ProjectChoice {
                id: "id-a".into(),
                name: "Alpha".into(),
            }),
            &BackupOptions::default(),
        );
        f.refresh();
        s.form = Some(f);
        let _ = s.update(Message::CopyTo("bucket".into(), true), &ctx);
        let _ = s.update(
            Message::Failover(FailoverChoice(Some("spare".into()))),
            &ctx,
        );
        let _ = s.update(Message::KeepLocal(false), &ctx);
        let _ = s.update(Message::DestKeep("bucket".into(), "12".into()), &ctx);
        let _ = s.update(Message::Drill(FailoverChoice(Some("bucket".into()))), &ctx);
        let input = s.form.as_ref().expect("form").input().expect("valid");
        assert_eq!(input.config.drill_from.as_deref(), Some("bucket"));
        assert_eq!(input.config.store.destinations, ["bucket"]);
        assert_eq!(input.config.store.failover.as_deref(), Some("spare"));
        assert!(input.config.store.drop_local);
        assert_eq!(
            input
                .config
                .destination_retention
                .get("bucket")
                .and_then(|r| r.keep_last),
            Some(12)
        );
        let _ = s.update(Message::DestKeep("bucket".into(), "zero".into()), &ctx);
        assert!(
            s.form.as_ref().expect("form").input().is_err(),
            "a bad number is refused"
        );
        // Unticking the last destination drops failover and keeps local.
        let _ = s.update(Message::CopyTo("bucket".into(), false), &ctx);
        let input = s.form.as_ref().expect("form").input().expect("valid");
        assert!(input.config.store.destinations.is_empty());
        assert!(input.config.store.failover.is_none());
        assert!(!input.config.store.drop_local);
        assert!(input.config.destination_retention.is_empty());
        assert!(
            input.config.drill_from.is_none(),
            "no drill without the copy"
        );
    }
}
