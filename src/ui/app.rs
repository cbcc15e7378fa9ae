//! The application: state, top-level messages, boot/update/view/
//! subscription/theme/title. Screens live in `screen/`; this file routes
//! their messages, carries out their effects, and owns what outlives a
//! screen (the engine, running jobs, banners, preferences).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iced::keyboard::{self, Key, key::Named};
use iced::widget::{button, column, container, row, text};
use iced::{Alignment, Element, Length, Subscription, Task, Theme};
use tokio_util::sync::CancellationToken;

use crate::engine::backup::BackupRequest;
use crate::engine::crypto::Secret;
use crate::engine::paths::DataDir;
use crate::engine::schedule::{JobOutcome, Scheduler, SchedulerConfig};
use crate::engine::vault::VaultStatus;
use crate::engine::{Engine, EngineOptions, Error};
use crate::ui::jobs::{self, Job, JobEvent};
use crate::ui::platform::Platform;
use crate::ui::prefs::{self, Prefs, ThemeChoice};
use crate::ui::screen::{
    Action, Ctx, Effect, Nav, Tab, analytics, backups, dashboard, projects, restore, schedules,
    settings, unlock,
};
use crate::ui::theme;
use crate::ui::widget::{self, Notice};

/// How the app starts.
pub struct BootOptions {
    pub data_dir: DataDir,
    pub platform: Arc<dyn Platform>,
    /// `SUPABACKUP_PASSPHRASE`, for headless runs (the screenshot test).
    pub env_passphrase: Option<Secret>,
    /// Save a screenshot of the dashboard here, then exit.
    pub screenshot: Option<PathBuf>,
    /// An engine already opened (tests); otherwise one is opened on `data_dir`.
    pub engine: Option<Engine>,
}

/// What the boot task found.
#[derive(Debug, Clone)]
pub struct Boot {
    pub engine: Engine,
    pub prefs: Prefs,
    pub prefs_error: Option<Error>,
    pub vault: VaultStatus,
    pub unlock_error: Option<Error>,
}

#[derive(Debug, Clone)]
pub enum Message {
    Booted(Result<Boot, Error>),
    Unlock(unlock::Message),
    Navigate(Tab),
    Dashboard(dashboard::Message),
    Projects(projects::Message),
    Backups(backups::Message),
    Restore(restore::Message),
    Schedules(schedules::Message),
    Analytics(analytics::Message),
    Settings(settings::Message),
    Job(u64, JobEvent),
    CancelJob(u64),
    DismissNotice(usize),
    Key(keyboard::Event),
    Tick,
    /// Fades notices that have been shown long enough.
    ExpireNotices,
    /// Time to run due scheduled jobs.
    SchedulerTick,
    SchedulerTicked(Result<TickSummary, Error>),
    ScheduledJobDone(JobOutcome),
    SystemTheme(iced::theme::Mode),
    PrefsSaved(Result<(), Error>),
    /// The first-run desktop-notification rule was added (or was there).
    DefaultRule(Result<Option<crate::engine::notify::AlertRule>, Error>),
    Lock,
    Screenshot(ScreenshotStep),
    /// The window's close button.
    CloseRequested(iced::window::Id),
    /// Quit although jobs run: cancel them, close when they have stopped.
    QuitAnyway,
    KeepRunning,
    /// Jobs did not stop in time: close anyway.
    ForceClose,
}

/// What a scheduler tick did (the engine's report without its task handles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickSummary {
    pub leader: bool,
    pub started: Vec<String>,
    pub queued: Vec<String>,
    pub missed: Vec<String>,
}

/// The `--screenshot` sequence.
#[derive(Debug, Clone)]
pub enum ScreenshotStep {
    Take,
    Taken(iced::window::Screenshot),
    Saved(Result<(), String>),
}

#[derive(Debug)]
enum Phase {
    Booting,
    Failed(Error),
    Locked(unlock::Unlock),
    Ready,
}

pub struct App {
    data_dir: DataDir,
    platform: Arc<dyn Platform>,
    screenshot: Option<PathBuf>,
    screenshot_taken: bool,
    phase: Phase,
    ctx: Option<Ctx>,
    system_dark: bool,
    pub tab: Tab,
    pub dashboard: dashboard::Dashboard,
    pub projects: projects::Projects,
    pub backups: backups::Backups,
    pub restore: restore::Restore,
    pub schedules: schedules::Schedules,
    pub analytics: analytics::Analytics,
    pub settings: settings::Settings,
    pub jobs: Vec<Job>,
    next_job: u64,
    pub notices: Vec<Notice>,
    /// When each notice appeared (successes and infos fade after a while).
    notice_times: Vec<Instant>,
    /// Tabs whose data changed since they were shown.
    stale: Vec<Tab>,
    /// Runs due backup jobs; ticked by a subscription.
    scheduler: Option<Arc<tokio::sync::Mutex<Scheduler>>>,
    ticking: bool,
    /// Whether this process holds the schedule (a daemon may instead).
    pub schedule_leader: Option<bool>,
    /// The window asked to close while jobs ran; `quitting` once confirmed.
    pub close_requested: Option<iced::window::Id>,
    pub quitting: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("phase", &self.phase)
            .field("tab", &self.tab)
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

async fn boot_task(
    data_dir: DataDir,
    engine: Option<Engine>,
    env_passphrase: Option<Secret>,
) -> Result<Boot, Error> {
    let engine = match engine {
        Some(e) => e,
        None => Engine::open(EngineOptions::new(data_dir.clone(), "gui")).await?,
    };
    let (prefs, prefs_error) = match prefs::load_async(prefs::path(engine.data_dir())).await {
        Ok(p) => (p, None),
        Err(e) => (Prefs::default(), Some(e)),
    };
    let vault = engine.vault_status().await?;
    let mut unlock_error = None;
    if vault.initialized && !engine.is_unlocked() {
        // The keychain first (when it holds the key), then the environment.
        let first = if vault.keychain {
            engine.unlock(None).await
        } else {
            Err(Error::auth("no keychain"))
        };
        if first.is_err()
            && let Some(p) = env_passphrase
            && let Err(e) = engine.unlock(Some(p)).await
        {
            unlock_error = Some(e);
        }
    }
    Ok(Boot {
        engine,
        prefs,
        prefs_error,
        vault,
        unlock_error,
    })
}

impl App {
    pub fn boot(options: BootOptions) -> (Self, Task<Message>) {
        let task = Task::perform(
            boot_task(
                options.data_dir.clone(),
                options.engine,
                options.env_passphrase.clone(),
            ),
            Message::Booted,
        );
        let app = App {
            data_dir: options.data_dir,
            platform: options.platform,
            screenshot: options.screenshot,
            screenshot_taken: false,
            phase: Phase::Booting,
            ctx: None,
            system_dark: true,
            tab: Tab::Dashboard,
            dashboard: dashboard::Dashboard::default(),
            projects: projects::Projects::default(),
            backups: backups::Backups::default(),
            restore: restore::Restore::default(),
            schedules: schedules::Schedules::default(),
            analytics: analytics::Analytics::default(),
            settings: settings::Settings::default(),
            jobs: Vec::new(),
            next_job: 1,
            notices: Vec::new(),
            notice_times: Vec::new(),
            stale: Vec::new(),
            scheduler: None,
            ticking: false,
            schedule_leader: None,
            close_requested: None,
            quitting: false,
        };
        let mut tasks = vec![task];
        if app.screenshot.is_some() {
            // Whatever happens, take the picture eventually.
            tasks.push(Task::perform(
                tokio::time::sleep(Duration::from_secs(30)),
                |_| Message::Screenshot(ScreenshotStep::Take),
            ));
        }
        tasks.push(iced::system::theme().map(Message::SystemTheme));
        (app, Task::batch(tasks))
    }

    pub fn ctx(&self) -> Option<&Ctx> {
        self.ctx.as_ref()
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    pub fn is_locked(&self) -> bool {
        matches!(self.phase, Phase::Locked(_))
    }

    pub fn unlock_screen(&self) -> Option<&unlock::Unlock> {
        match &self.phase {
            Phase::Locked(u) => Some(u),
            _ => None,
        }
    }

    pub fn boot_error(&self) -> Option<&Error> {
        match &self.phase {
            Phase::Failed(e) => Some(e),
            _ => None,
        }
    }

    pub fn prefs(&self) -> Prefs {
        self.ctx
            .as_ref()
            .map(|c| c.prefs.clone())
            .unwrap_or_default()
    }

    pub fn title(&self) -> String {
        let restore = self.restore.activity();
        let activity = match (self.jobs.as_slice(), restore) {
            ([], r) => r,
            ([j], None) => Some(match j.fraction() {
                Some(f) => format!("backing up {} {:.0}%", j.project, f * 100.0),
                None => format!("backing up {}", j.project),
            }),
            (js, r) => Some(format!(
                "{} jobs running",
                js.len() + usize::from(r.is_some())
            )),
        };
        match (&self.phase, activity) {
            (_, Some(a)) => format!("supabackup — {a}"),
            (Phase::Locked(_), None) => "supabackup — locked".into(),
            (Phase::Ready, None) => format!("supabackup — {}", self.tab.title()),
            _ => "supabackup".into(),
        }
    }

    pub fn theme(&self) -> Theme {
        let choice = self
            .ctx
            .as_ref()
            .map(|c| c.prefs.theme)
            .unwrap_or(ThemeChoice::System);
        match choice {
            ThemeChoice::Light => theme::light(),
            ThemeChoice::Dark => theme::dark(),
            ThemeChoice::System if self.system_dark => theme::dark(),
            ThemeChoice::System => theme::light(),
        }
    }

    pub fn subscription(&self) -> Subscription<Message> {
        let mut subs = vec![
            keyboard::listen().map(Message::Key),
            iced::window::close_requests().map(Message::CloseRequested),
        ];
        if self.is_ready() {
            subs.push(iced::time::every(Duration::from_secs(30)).map(|_| Message::Tick));
            subs.push(iced::time::every(Duration::from_secs(20)).map(|_| Message::SchedulerTick));
        }
        if self
            .notices
            .iter()
            .any(|n| Self::notice_lifetime(n).is_some())
        {
            subs.push(iced::time::every(Duration::from_secs(1)).map(|_| Message::ExpireNotices));
        }
        if self.prefs().theme == ThemeChoice::System {
            subs.push(iced::system::theme_changes().map(Message::SystemTheme));
        }
        Subscription::batch(subs)
    }

    // ----- update -------------------------------------------------------

    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Booted(Ok(boot)) => self.booted(boot),
            Message::Booted(Err(e)) => {
                self.phase = Phase::Failed(e);
                self.maybe_screenshot_soon()
            }
            Message::Unlock(m) => {
                let Some(ctx) = self.ctx.clone() else {
                    return Task::none();
                };
                let Phase::Locked(u) = &mut self.phase else {
                    return Task::none();
                };
                let action = u.update(m, &ctx.engine);
                self.perform(action, Message::Unlock)
            }
            Message::Navigate(tab) => self.navigate(Nav::Tab(tab)),
            Message::Dashboard(m) => self.route(
                m,
                |a| &mut a.dashboard,
                dashboard::Dashboard::update,
                Message::Dashboard,
            ),
            Message::Projects(m) => self.route(
                m,
                |a| &mut a.projects,
                projects::Projects::update,
                Message::Projects,
            ),
            Message::Backups(m) => self.route(
                m,
                |a| &mut a.backups,
                backups::Backups::update,
                Message::Backups,
            ),
            Message::Restore(m) => {
                let finished = matches!(m, restore::Message::Finished(_));
                let task = self.route(
                    m,
                    |a| &mut a.restore,
                    restore::Restore::update,
                    Message::Restore,
                );
                if finished {
                    Task::batch([task, self.close_if_done()])
                } else {
                    task
                }
            }
            Message::Schedules(m) => self.route(
                m,
                |a| &mut a.schedules,
                schedules::Schedules::update,
                Message::Schedules,
            ),
            Message::Analytics(m) => self.route(
                m,
                |a| &mut a.analytics,
                analytics::Analytics::update,
                Message::Analytics,
            ),
            Message::Settings(m) => self.route(
                m,
                |a| &mut a.settings,
                settings::Settings::update,
                Message::Settings,
            ),
            Message::Job(id, event) => self.job_event(id, event),
            Message::CancelJob(id) => {
                if let Some(j) = self.jobs.iter_mut().find(|j| j.id == id) {
                    j.cancelling = true;
                    j.cancel.cancel();
                }
                Task::none()
            }
            Message::DismissNotice(i) => {
                if i < self.notices.len() {
                    self.notices.remove(i);
                    self.notice_times.remove(i);
                }
                Task::none()
            }
            Message::Key(event) => self.key(event),
            Message::Tick => {
                self.dashboard.now = chrono::Utc::now();
                match &self.ctx {
                    Some(ctx) if self.tab == Tab::Dashboard && self.jobs.is_empty() => {
                        self.dashboard.load(ctx).map(Message::Dashboard)
                    }
                    _ => Task::none(),
                }
            }
            Message::ExpireNotices => {
                self.expire_notices(Instant::now());
                Task::none()
            }
            Message::SchedulerTick => self.scheduler_tick(),
            Message::SchedulerTicked(r) => {
                self.ticking = false;
                match r {
                    Ok(summary) => {
                        self.schedule_leader = Some(summary.leader);
                        if summary.started.is_empty() && summary.missed.is_empty() {
                            return Task::none();
                        }
                        if !summary.started.is_empty() {
                            self.push_notice(Notice::info(format!(
                                "{} scheduled backup(s) started",
                                summary.started.len()
                            )));
                        }
                        if !summary.missed.is_empty() {
                            self.push_notice(Notice::warning(format!(
                                "{} scheduled run(s) were missed while the app was closed",
                                summary.missed.len()
                            )));
                        }
                        self.effect(Effect::DataChanged)
                    }
                    Err(e) => {
                        tracing::warn!("scheduler tick failed: {e}");
                        Task::none()
                    }
                }
            }
            Message::ScheduledJobDone(outcome) => {
                let failed = outcome
                    .steps
                    .iter()
                    .filter(|s| s.status == "failed")
                    .count();
                if failed > 0 {
                    let detail = outcome
                        .steps
                        .iter()
                        .filter(|s| s.status == "failed")
                        .map(|s| format!("{}: {}", s.project, s.detail.clone().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let what = if outcome.kind == "restore-test" {
                        "restore test"
                    } else {
                        "backup"
                    };
                    self.push_notice(
                        Notice::error(&Error::new(
                            crate::engine::ErrorKind::Internal,
                            format!("A scheduled {what} failed ({failed} project(s))"),
                        ))
                        .with_detail(detail),
                    );
                } else if outcome.status == "completed" {
                    self.push_notice(Notice::success(if outcome.kind == "restore-test" {
                        "A scheduled restore test passed"
                    } else {
                        "A scheduled backup completed"
                    }));
                }
                self.effect(Effect::DataChanged)
            }
            Message::SystemTheme(mode) => {
                self.system_dark = !matches!(mode, iced::theme::Mode::Light);
                self.analytics.invalidate();
                Task::none()
            }
            Message::PrefsSaved(Ok(())) => Task::none(),
            Message::PrefsSaved(Err(e)) => {
                self.push_notice(Notice::error(&e));
                Task::none()
            }
            Message::DefaultRule(r) => {
                match r {
                    Ok(Some(rule)) => {
                        tracing::info!("added the alert rule {} ({})", rule.id, rule.label())
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("the desktop notification rule was not added: {e}"),
                }
                Task::none()
            }
            Message::Lock => self.lock(),
            Message::Screenshot(step) => self.screenshot_step(step),
            Message::CloseRequested(id) => {
                if !self.busy() {
                    return iced::window::close(id);
                }
                self.close_requested = Some(id);
                Task::none()
            }
            Message::KeepRunning => {
                if !self.quitting {
                    self.close_requested = None;
                }
                Task::none()
            }
            Message::QuitAnyway => {
                self.quitting = true;
                for j in &mut self.jobs {
                    j.cancelling = true;
                    j.cancel.cancel();
                }
                if let Some(r) = &mut self.restore.running {
                    r.cancelling = true;
                    r.cancel.cancel();
                }
                if let Some(s) = &self.scheduler {
                    let s = s.clone();
                    tokio::spawn(async move { s.lock().await.shutdown() });
                }
                // Jobs clean up (temporary files, catalog rows) and report;
                // the window closes when the last one has, or after 15 s.
                Task::batch([
                    self.close_if_done(),
                    Task::perform(tokio::time::sleep(Duration::from_secs(15)), |_| {
                        Message::ForceClose
                    }),
                ])
            }
            Message::ForceClose => match self.close_requested {
                Some(id) => iced::window::close(id),
                None => Task::none(),
            },
        }
    }

    fn booted(&mut self, boot: Boot) -> Task<Message> {
        self.ctx = Some(Ctx {
            engine: boot.engine.clone(),
            platform: self.platform.clone(),
            prefs: boot.prefs.clone(),
        });
        self.settings.reset(&boot.prefs);
        if let Some(e) = &boot.prefs_error {
            self.push_notice(Notice::error(e));
        }
        if !boot.vault.initialized {
            self.phase = Phase::Locked(unlock::Unlock::new(unlock::Mode::Create, None));
            return Task::batch([unlock::Unlock::focus(), self.maybe_screenshot_soon()]);
        }
        if !boot.engine.is_unlocked() {
            self.phase = Phase::Locked(unlock::Unlock::new(
                unlock::Mode::Unlock,
                boot.unlock_error.as_ref(),
            ));
            return Task::batch([unlock::Unlock::focus(), self.maybe_screenshot_soon()]);
        }
        self.enter_ready()
    }

    fn enter_ready(&mut self) -> Task<Message> {
        self.phase = Phase::Ready;
        if self.scheduler.is_none()
            && let Some(ctx) = &self.ctx
        {
            self.scheduler = Some(Arc::new(tokio::sync::Mutex::new(Scheduler::new(
                ctx.engine.clone(),
                SchedulerConfig::default(),
            ))));
        }
        let tab = self.tab;
        let load = self.load_tab(tab);
        // The app's notifications are an alert rule, added the first time.
        let default_rule = match &self.ctx {
            Some(ctx) => {
                let engine = ctx.engine.clone();
                Task::perform(
                    async move { engine.ensure_default_alert_rule().await },
                    Message::DefaultRule,
                )
            }
            None => Task::none(),
        };
        Task::batch([load, default_rule, self.maybe_screenshot_soon()])
    }

    fn lock(&mut self) -> Task<Message> {
        let Some(ctx) = &self.ctx else {
            return Task::none();
        };
        if !self.jobs.is_empty() {
            self.push_notice(Notice::warning(
                "Jobs are running: the vault stays unlocked until they finish",
            ));
            return Task::none();
        }
        ctx.engine.lock();
        self.phase = Phase::Locked(unlock::Unlock::new(unlock::Mode::Unlock, None));
        unlock::Unlock::focus()
    }

    /// Loads what a screen shows.
    fn load_tab(&mut self, tab: Tab) -> Task<Message> {
        let Some(ctx) = self.ctx.clone() else {
            return Task::none();
        };
        self.stale.retain(|t| *t != tab);
        match tab {
            Tab::Dashboard => self.dashboard.load(&ctx).map(Message::Dashboard),
            Tab::Projects => self.projects.load(&ctx).map(Message::Projects),
            Tab::Backups => self.backups.load(&ctx).map(Message::Backups),
            Tab::Restore => self.restore.load(&ctx).map(Message::Restore),
            Tab::Schedules => self.schedules.load(&ctx).map(Message::Schedules),
            Tab::Analytics => self.analytics.load(&ctx).map(Message::Analytics),
            Tab::Settings => self.settings.load(&ctx).map(Message::Settings),
        }
    }

    fn navigate(&mut self, nav: Nav) -> Task<Message> {
        if !self.is_ready() {
            return Task::none();
        }
        let Some(ctx) = self.ctx.clone() else {
            return Task::none();
        };
        let (tab, extra) = match nav {
            Nav::Tab(t) => (t, Task::none()),
            Nav::ProjectBackups(id) => (
                Tab::Backups,
                self.backups
                    .filter_project(Some(id), &ctx)
                    .map(Message::Backups),
            ),
            Nav::BackUp(id) => (
                Tab::Backups,
                self.backups
                    .open_dialog(Some(id), &ctx)
                    .map(Message::Backups),
            ),
            Nav::RestoreFrom(id) => (
                Tab::Restore,
                self.restore.start_from(id, &ctx).map(Message::Restore),
            ),
            Nav::Clone {
                backup,
                target,
                schema_only,
            } => (
                Tab::Restore,
                self.restore
                    .start_clone(backup, target, schema_only, &ctx)
                    .map(Message::Restore),
            ),
            Nav::NewProject => (
                Tab::Projects,
                self.projects.open_new().map(Message::Projects),
            ),
            Nav::Project(id) => {
                self.projects.select(id);
                (Tab::Projects, Task::none())
            }
            Nav::Schedules(id) => {
                self.schedules.filter_project(Some(id));
                (Tab::Schedules, Task::none())
            }
        };
        let changed = tab != self.tab;
        self.tab = tab;
        let load = if changed || self.stale.contains(&tab) {
            self.load_tab(tab)
        } else {
            Task::none()
        };
        Task::batch([load, extra])
    }

    fn route<M, S>(
        &mut self,
        message: M,
        screen: impl FnOnce(&mut Self) -> &mut S,
        update: impl FnOnce(&mut S, M, &Ctx) -> Action<M>,
        wrap: fn(M) -> Message,
    ) -> Task<Message>
    where
        M: Send + 'static,
    {
        let Some(ctx) = self.ctx.clone() else {
            return Task::none();
        };
        let action = update(screen(self), message, &ctx);
        self.perform(action, wrap)
    }

    /// Runs a screen's task and carries out its effects.
    fn perform<M: Send + 'static>(
        &mut self,
        action: Action<M>,
        wrap: fn(M) -> Message,
    ) -> Task<Message> {
        let mut tasks = vec![action.task.map(wrap)];
        for effect in action.effects {
            tasks.push(self.effect(effect));
        }
        Task::batch(tasks)
    }

    fn effect(&mut self, effect: Effect) -> Task<Message> {
        match effect {
            Effect::StartBackup(req, label) => self.start_backup(req, label),
            Effect::CancelJob(id) => self.update(Message::CancelJob(id)),
            Effect::Notice(n) => {
                self.push_notice(n);
                Task::none()
            }
            Effect::Navigate(nav) => self.navigate(nav),
            Effect::DataChanged => {
                for t in Tab::ALL {
                    if t != self.tab && !self.stale.contains(&t) {
                        self.stale.push(t);
                    }
                }
                // The dashboard is cheap and always current.
                if self.tab != Tab::Dashboard {
                    return Task::none();
                }
                self.load_tab(Tab::Dashboard)
            }
            Effect::PrefsChanged(p) => {
                let Some(ctx) = &mut self.ctx else {
                    return Task::none();
                };
                ctx.prefs = p.clone();
                self.analytics.invalidate();
                let file = prefs::path(ctx.engine.data_dir());
                Task::perform(prefs::save_async(file, p), Message::PrefsSaved)
            }
            Effect::Unlocked => self.enter_ready(),
            Effect::Lock => self.lock(),
        }
    }

    /// Whether a backup or restore runs in this window.
    pub fn busy(&self) -> bool {
        !self.jobs.is_empty() || self.restore.running.is_some()
    }

    /// After a confirmed quit, closes the window once nothing runs.
    fn close_if_done(&self) -> Task<Message> {
        match (self.quitting, self.close_requested, self.busy()) {
            (true, Some(id), false) => iced::window::close(id),
            _ => Task::none(),
        }
    }

    /// Runs the scheduler once (due jobs start in the background; their
    /// outcomes come back as messages). One tick at a time.
    fn scheduler_tick(&mut self) -> Task<Message> {
        let Some(s) = self.scheduler.clone() else {
            return Task::none();
        };
        if self.ticking || !self.is_ready() {
            return Task::none();
        }
        self.ticking = true;
        Task::future(async move {
            let report = {
                let mut guard = s.lock().await;
                guard.tick(chrono::Utc::now()).await
            };
            let report = match report {
                Ok(r) => r,
                Err(e) => return Task::done(Message::SchedulerTicked(Err(e))),
            };
            let summary = TickSummary {
                leader: report.leader,
                started: report.started,
                queued: report.queued,
                missed: report.missed,
            };
            let outcomes = report.handles.into_iter().map(|h| {
                Task::perform(h, |r| match r {
                    Ok(o) => Some(Message::ScheduledJobDone(o)),
                    Err(_) => None,
                })
                .and_then(Task::done)
            });
            Task::batch(
                std::iter::once(Task::done(Message::SchedulerTicked(Ok(summary)))).chain(outcomes),
            )
        })
        .then(|t| t)
    }

    /// How long a notice stays: successes and infos fade, warnings linger,
    /// errors stay until dismissed.
    pub fn notice_lifetime(n: &Notice) -> Option<Duration> {
        match n.tone {
            theme::Tone::Success | theme::Tone::Info | theme::Tone::Neutral => {
                Some(Duration::from_secs(8))
            }
            theme::Tone::Warning => Some(Duration::from_secs(20)),
            theme::Tone::Danger => None,
        }
    }

    pub fn expire_notices(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.notices.len() {
            let expired = Self::notice_lifetime(&self.notices[i])
                .is_some_and(|life| now.duration_since(self.notice_times[i]) >= life);
            if expired {
                self.notices.remove(i);
                self.notice_times.remove(i);
            } else {
                i += 1;
            }
        }
    }

    pub fn push_notice(&mut self, n: Notice) {
        // What the user was told is in the log file too.
        match n.tone {
            crate::ui::theme::Tone::Danger => tracing::warn!(
                "shown: {}{}",
                n.title,
                n.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            _ => tracing::info!("shown: {}", n.title),
        }
        // The same message twice in a row is shown once.
        if self.notices.last() == Some(&n) {
            if let Some(t) = self.notice_times.last_mut() {
                *t = Instant::now();
            }
            return;
        }
        self.notices.push(n);
        self.notice_times.push(Instant::now());
        if self.notices.len() > 3 {
            self.notices.remove(0);
            self.notice_times.remove(0);
        }
    }

    // ----- jobs -----------------------------------------------------------

    fn start_backup(&mut self, req: BackupRequest, project: String) -> Task<Message> {
        let Some(ctx) = &self.ctx else {
            return Task::none();
        };
        let id = self.next_job;
        self.next_job += 1;
        let cancel = CancellationToken::new();
        let kind = format!("{} backup", req.options.kind.as_str());
        let (task, handle) = Task::sip(
            jobs::backup(ctx.engine.clone(), req, cancel.clone()),
            move |p| Message::Job(id, JobEvent::Progress(p)),
            move |r| Message::Job(id, JobEvent::Finished(r)),
        )
        .abortable();
        self.jobs.push(Job {
            id,
            project,
            kind,
            started: Instant::now(),
            progress: None,
            cancel,
            cancelling: false,
            handle: Some(handle.abort_on_drop()),
        });
        task
    }

    fn job_event(&mut self, id: u64, event: JobEvent) -> Task<Message> {
        match event {
            JobEvent::Progress(p) => {
                if let Some(j) = self.jobs.iter_mut().find(|j| j.id == id) {
                    j.progress = Some(p);
                }
                Task::none()
            }
            JobEvent::Finished(result) => {
                let Some(pos) = self.jobs.iter().position(|j| j.id == id) else {
                    return Task::none();
                };
                let mut job = self.jobs.remove(pos);
                // The task is over: nothing to abort.
                job.handle.take();
                // Desktop notifications come from the alert rules (the
                // engine raised backup.failed / backup.succeeded already).
                let notice = match &result {
                    Ok(rec) => Notice::success(format!(
                        "Backup of {} completed ({})",
                        rec.project_name,
                        crate::ui::format::bytes(rec.file_size.unwrap_or(0))
                    )),
                    Err(e) if e.kind == crate::engine::ErrorKind::Cancelled => {
                        Notice::warning(format!("Backup of {} cancelled", job.project))
                    }
                    Err(e) => Notice::error(e)
                        .with_title_prefix(&format!("Backup of {} failed: ", job.project)),
                };
                let mut tasks = vec![self.effect(Effect::DataChanged)];
                if let Some(ctx) = self.ctx.clone() {
                    tasks.push(
                        self.backups
                            .job_finished(&result, &ctx)
                            .map(Message::Backups),
                    );
                }
                self.push_notice(notice);
                tasks.push(self.close_if_done());
                Task::batch(tasks)
            }
        }
    }

    // ----- keyboard -------------------------------------------------------

    fn key(&mut self, event: keyboard::Event) -> Task<Message> {
        let keyboard::Event::KeyPressed { key, modifiers, .. } = event else {
            return Task::none();
        };
        match (&key, modifiers.command(), modifiers.shift()) {
            (Key::Named(Named::Tab), _, false) => return iced::widget::operation::focus_next(),
            (Key::Named(Named::Tab), _, true) => {
                return iced::widget::operation::focus_previous();
            }
            _ => {}
        }
        if !self.is_ready() {
            return Task::none();
        }
        if modifiers.command()
            && let Key::Character(c) = &key
        {
            if let Some(tab) = Tab::ALL
                .iter()
                .find(|t| c.as_str() == t.shortcut().to_string())
            {
                return self.navigate(Nav::Tab(*tab));
            }
            match c.as_str() {
                "n" => return self.navigate(Nav::NewProject),
                "b" => {
                    let Some(ctx) = self.ctx.clone() else {
                        return Task::none();
                    };
                    let task = self.backups.open_dialog(None, &ctx).map(Message::Backups);
                    return Task::batch([self.navigate(Nav::Tab(Tab::Backups)), task]);
                }
                "r" => return self.load_tab(self.tab),
                "l" => return self.lock(),
                "f" => return self.focus_search(),
                _ => {}
            }
        }
        match key {
            Key::Named(Named::F5) => self.load_tab(self.tab),
            Key::Named(Named::Escape) => self.escape(),
            _ => Task::none(),
        }
    }

    fn focus_search(&self) -> Task<Message> {
        match self.tab {
            Tab::Projects => iced::widget::operation::focus(projects::SEARCH_ID),
            Tab::Backups => iced::widget::operation::focus(backups::SEARCH_ID),
            _ => Task::none(),
        }
    }

    fn escape(&mut self) -> Task<Message> {
        if !self.notices.is_empty() {
            self.notices.pop();
            self.notice_times.pop();
            return Task::none();
        }
        match self.tab {
            Tab::Projects => self.route(
                projects::Message::Escape,
                |a| &mut a.projects,
                projects::Projects::update,
                Message::Projects,
            ),
            Tab::Backups => self.route(
                backups::Message::Escape,
                |a| &mut a.backups,
                backups::Backups::update,
                Message::Backups,
            ),
            Tab::Restore => self.route(
                restore::Message::Escape,
                |a| &mut a.restore,
                restore::Restore::update,
                Message::Restore,
            ),
            Tab::Schedules => self.route(
                schedules::Message::Escape,
                |a| &mut a.schedules,
                schedules::Schedules::update,
                Message::Schedules,
            ),
            _ => Task::none(),
        }
    }

    // ----- screenshot -------------------------------------------------------

    /// In screenshot mode, once the first screen has its data, wait for a
    /// few frames and take the picture.
    fn maybe_screenshot_soon(&mut self) -> Task<Message> {
        if self.screenshot.is_none() || self.screenshot_taken {
            return Task::none();
        }
        Task::perform(tokio::time::sleep(Duration::from_millis(1500)), |_| {
            Message::Screenshot(ScreenshotStep::Take)
        })
    }

    fn screenshot_step(&mut self, step: ScreenshotStep) -> Task<Message> {
        match step {
            ScreenshotStep::Take => {
                if self.screenshot_taken || self.screenshot.is_none() {
                    return Task::none();
                }
                // Data still loading: look again shortly.
                if self.is_ready() && self.dashboard.loading {
                    return self.maybe_screenshot_soon();
                }
                self.screenshot_taken = true;
                iced::window::latest()
                    .and_then(iced::window::screenshot)
                    .map(|s| Message::Screenshot(ScreenshotStep::Taken(s)))
            }
            ScreenshotStep::Taken(shot) => {
                let Some(path) = self.screenshot.clone() else {
                    return Task::none();
                };
                Task::perform(
                    async move {
                        tokio::task::spawn_blocking(move || {
                            crate::ui::write_png(
                                &path,
                                shot.size.width,
                                shot.size.height,
                                &shot.rgba,
                            )
                        })
                        .await
                        .map_err(|e| e.to_string())?
                    },
                    |r| Message::Screenshot(ScreenshotStep::Saved(r)),
                )
            }
            ScreenshotStep::Saved(r) => {
                let what = match &self.phase {
                    Phase::Ready => self.tab.title(),
                    Phase::Locked(_) => "unlock screen",
                    Phase::Booting => "start screen",
                    Phase::Failed(_) => "error screen",
                };
                match (r, &self.screenshot) {
                    (Ok(()), Some(p)) => {
                        eprintln!(
                            "supabackup: saved a screenshot of the {what} to {}",
                            p.display()
                        )
                    }
                    (Err(e), _) => eprintln!("error: could not save the screenshot: {e}"),
                    _ => {}
                }
                iced::exit()
            }
        }
    }

    // ----- view -------------------------------------------------------------

    pub fn view(&self) -> Element<'_, Message> {
        match &self.phase {
            Phase::Booting => container(text("Opening the catalog…").style(theme::muted))
                .center(Length::Fill)
                .into(),
            Phase::Failed(e) => container(
                column![
                    text("supabackup could not start")
                        .size(theme::H1)
                        .font(theme::BOLD),
                    text(e.message.clone()),
                    text(e.hint.clone().unwrap_or_default()).style(theme::muted),
                    text(format!("Data folder: {}", self.data_dir.root().display()))
                        .size(theme::SMALL)
                        .style(theme::muted),
                ]
                .spacing(theme::M)
                .max_width(600),
            )
            .center(Length::Fill)
            .into(),
            Phase::Locked(u) => u.view().map(Message::Unlock),
            Phase::Ready => self.view_main(),
        }
    }

    fn view_main(&self) -> Element<'_, Message> {
        let content: Element<'_, Message> = match self.tab {
            Tab::Dashboard => self.dashboard.view(&self.jobs).map(Message::Dashboard),
            Tab::Projects => self.projects.view().map(Message::Projects),
            Tab::Backups => self.backups.view(&self.jobs).map(Message::Backups),
            Tab::Restore => self.restore.view().map(Message::Restore),
            Tab::Schedules => self
                .schedules
                .view(self.schedule_leader)
                .map(Message::Schedules),
            Tab::Analytics => self.analytics.view().map(Message::Analytics),
            Tab::Settings => self
                .settings
                .view(self.data_dir.root())
                .map(Message::Settings),
        };
        let mut main = column![].spacing(theme::M);
        for (i, n) in self.notices.iter().enumerate() {
            main = main.push(widget::banner(n, Message::DismissNotice(i)));
        }
        main = main.push(content);
        let page: Element<'_, Message> = row![
            self.sidebar(),
            container(main)
                .padding(theme::XL)
                .width(Length::Fill)
                .height(Length::Fill),
        ]
        .into();
        if self.close_requested.is_none() {
            return page;
        }
        let running = self.jobs.len() + usize::from(self.restore.running.is_some());
        let dialog = if self.quitting {
            column![
                text("Stopping…").size(theme::H2).font(theme::BOLD),
                text(format!(
                    "Cancelling {running} job(s); the window closes when they have cleaned up."
                )),
            ]
        } else {
            column![
                text("Quit supabackup?").size(theme::H2).font(theme::BOLD),
                text(format!(
                    "{running} job(s) still running. Quitting cancels them: a cancelled backup leaves nothing behind, a cancelled restore changes nothing."
                )),
                row![
                    widget::danger_button("Cancel jobs and quit", Some(Message::QuitAnyway)),
                    widget::secondary_button("Keep running", Some(Message::KeepRunning)),
                ]
                .spacing(theme::S),
            ]
        }
        .spacing(theme::M)
        .max_width(480);
        widget::modal(page, dialog, Message::KeepRunning)
    }

    fn sidebar(&self) -> Element<'_, Message> {
        let mut nav = column![
            text("supabackup").size(theme::H2).font(theme::BOLD),
            text("Supabase backups")
                .size(theme::SMALL)
                .style(theme::muted),
            iced::widget::space().height(theme::L),
        ]
        .spacing(2);
        for tab in Tab::ALL {
            let label = row![
                text(tab.title()).width(Length::Fill),
                text(format!("^{}", tab.shortcut()))
                    .size(theme::SMALL)
                    .style(theme::muted),
            ]
            .align_y(Alignment::Center);
            nav = nav.push(
                button(label)
                    .width(Length::Fill)
                    .padding([6.0, theme::M])
                    .style(theme::nav_button(tab == self.tab))
                    .on_press(Message::Navigate(tab)),
            );
        }
        let running: Element<'_, Message> = if self.jobs.is_empty() {
            text("No jobs running")
                .size(theme::SMALL)
                .style(theme::muted)
                .into()
        } else {
            column(self.jobs.iter().map(|j| {
                column![
                    text(j.project.clone()).size(theme::SMALL),
                    iced::widget::progress_bar(0.0..=1.0, j.fraction().unwrap_or(0.0)).girth(4),
                ]
                .spacing(2)
                .into()
            }))
            .spacing(theme::S)
            .into()
        };
        nav = nav
            .push(iced::widget::space::vertical())
            .push(running)
            .push(iced::widget::space().height(theme::M))
            .push(
                button(text("Lock vault").size(theme::SMALL))
                    .style(theme::link)
                    .on_press(Message::Lock),
            );
        container(nav)
            .padding(theme::L)
            .width(Length::Fixed(210.0))
            .height(Length::Fill)
            .style(theme::sidebar)
            .into()
    }
}

impl Notice {
    fn with_title_prefix(mut self, prefix: &str) -> Self {
        self.title = format!("{prefix}{}", self.title);
        self
    }
}
