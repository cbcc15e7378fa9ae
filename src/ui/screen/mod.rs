//! The screens. Each is a struct with its own `Message`, an `update` that
//! does no I/O and returns an [`Action`] (a task to run plus effects for the
//! app), and a `view`.

pub mod alerts;
pub mod analytics;
pub mod backup_dialog;
pub mod backups;
pub mod choices;
pub mod dashboard;
pub mod destinations;
pub mod fleet;
pub mod health;
pub mod history;
pub mod job_options;
pub mod migrate;
pub mod moving;
pub mod passphrases;
pub mod project_form;
pub mod project_hooks;
pub mod projects;
pub mod report;
pub mod restore;
pub mod schedules;
pub mod settings;
pub mod transfer;
pub mod unlock;

use std::sync::Arc;

use iced::Task;

use crate::engine::Engine;
use crate::engine::backup::BackupRequest;
use crate::ui::platform::Platform;
use crate::ui::prefs::Prefs;
use crate::ui::widget::Notice;

/// What every screen's `update` may use: handles to build tasks with.
#[derive(Clone)]
pub struct Ctx {
    pub engine: Engine,
    pub platform: Arc<dyn Platform>,
    pub prefs: Prefs,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("engine", &self.engine).finish()
    }
}

/// The main screens, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tab {
    Dashboard,
    Projects,
    Backups,
    Restore,
    Schedules,
    Analytics,
    Settings,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Dashboard,
        Tab::Projects,
        Tab::Backups,
        Tab::Restore,
        Tab::Schedules,
        Tab::Analytics,
        Tab::Settings,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Dashboard => "Dashboard",
            Tab::Projects => "Projects",
            Tab::Backups => "Backups",
            Tab::Restore => "Restore",
            Tab::Schedules => "Schedules",
            Tab::Analytics => "Analytics",
            Tab::Settings => "Settings",
        }
    }

    /// Ctrl + this digit opens the screen.
    pub fn shortcut(self) -> char {
        match self {
            Tab::Dashboard => '1',
            Tab::Projects => '2',
            Tab::Backups => '3',
            Tab::Restore => '4',
            Tab::Schedules => '5',
            Tab::Analytics => '6',
            Tab::Settings => '7',
        }
    }
}

/// Where a screen asks the app to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nav {
    Tab(Tab),
    /// The backups list filtered to one project (by id).
    ProjectBackups(String),
    /// The "Back up now" dialog for a project (by id).
    BackUp(String),
    /// The restore wizard, starting from a backup (by id).
    RestoreFrom(String),
    /// The restore wizard cloning a backup into a project (ids), at its
    /// scope step.
    Clone {
        backup: String,
        target: String,
        schema_only: bool,
    },
    /// The projects screen with the add form open.
    NewProject,
    /// The projects screen with a project selected (by id).
    Project(String),
    /// The schedules of a project (by id).
    Schedules(String),
}

/// Something only the app can do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Start a backup job (the app tracks its progress); the label names
    /// the project in the jobs list.
    StartBackup(BackupRequest, String),
    /// Cancel a running job.
    CancelJob(u64),
    Notice(Notice),
    Navigate(Nav),
    /// Projects, backups or schedules changed: lists elsewhere reload.
    DataChanged,
    /// The preferences changed (the app saves them).
    PrefsChanged(Prefs),
    /// The vault was unlocked (unlock screen).
    Unlocked,
    /// Lock the vault and show the unlock screen.
    Lock,
}

/// What a screen's `update` returns.
pub struct Action<M> {
    pub task: Task<M>,
    pub effects: Vec<Effect>,
}

impl<M> std::fmt::Debug for Action<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("task_units", &self.task.units())
            .field("effects", &self.effects)
            .finish()
    }
}

impl<M> Action<M> {
    pub fn none() -> Self {
        Action {
            task: Task::none(),
            effects: Vec::new(),
        }
    }

    pub fn task(task: Task<M>) -> Self {
        Action {
            task,
            effects: Vec::new(),
        }
    }

    pub fn effect(effect: Effect) -> Self {
        Action {
            task: Task::none(),
            effects: vec![effect],
        }
    }

    pub fn with(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }

    pub fn notice(n: Notice) -> Self {
        Self::effect(Effect::Notice(n))
    }

    pub fn error(e: &crate::engine::Error) -> Self {
        Self::notice(Notice::error(e))
    }

    /// Whether a task is pending (tests).
    pub fn has_task(&self) -> bool {
        self.task.units() > 0
    }

    pub fn map<N>(self, f: impl Fn(M) -> N + Send + 'static) -> Action<N>
    where
        M: Send + 'static,
        N: Send + 'static,
    {
        Action {
            task: self.task.map(f),
            effects: self.effects,
        }
    }
}
