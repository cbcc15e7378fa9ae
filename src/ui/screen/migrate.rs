//! The migration assistant (a dialog over the backups list): copy or move a
//! backup between this machine and destinations, or clone an environment —
//! a project's backup restored into another project, handed to the restore
//! wizard at its scope step so the preview comes first.

use iced::widget::{column, pick_list, row, text, toggler};
use iced::{Alignment, Element, Length, Task};
use tokio_util::sync::CancellationToken;

use super::choices::ProjectChoice;
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::destination::copies::BackupCopy;
use crate::engine::migrate::CloneWhat;
use crate::engine::project::Project;
use crate::engine::{Engine, Error};
use crate::ui::theme::{self, Tone};
use crate::ui::widget;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Transfer,
    Clone,
}

/// A place a backup is (or goes): `None` is this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place(pub Option<String>);

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("this machine"),
            Some(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhatChoice(pub CloneWhat);

impl WhatChoice {
    pub const ALL: [WhatChoice; 2] = [
        WhatChoice(CloneWhat::SchemaOnly),
        WhatChoice(CloneWhat::SchemaAndData),
    ];
}

impl std::fmt::Display for WhatChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            CloneWhat::SchemaOnly => "Schema only (e.g. dev → prod promotion)",
            CloneWhat::SchemaAndData => "Schema and data (e.g. prod → staging)",
        })
    }
}

#[derive(Debug, Clone)]
pub enum Message {
    Mode(Mode),
    Destinations(Result<Vec<String>, Error>),
    From(Place),
    To(Place),
    Move(bool),
    Start,
    Done(Result<BackupCopy, Error>),
    Source(ProjectChoice),
    Target(ProjectChoice),
    What(WhatChoice),
    /// The source's newest full backup, for the clone.
    Latest(Result<BackupRecord, Error>),
    ContinueClone,
    Cancel,
}

/// What the dialog asks of the backups screen.
pub enum Event {
    None,
    Run(Task<Message>),
    /// Done; reload the list (a notice says what happened).
    Finished(Result<BackupCopy, Error>),
    /// Open the restore wizard on this clone.
    Clone {
        backup: String,
        target: String,
        schema_only: bool,
    },
    Closed,
}

#[derive(Debug)]
pub struct MigrateDialog {
    pub mode: Mode,
    /// The backup to copy or move (the selected one).
    pub backup: Option<BackupRecord>,
    pub copies: Vec<BackupCopy>,
    pub destinations: Vec<String>,
    pub from: Place,
    pub to: Option<Place>,
    pub remove_source: bool,
    pub busy: bool,
    pub projects: Vec<ProjectChoice>,
    pub source: Option<ProjectChoice>,
    pub target: Option<ProjectChoice>,
    pub what: CloneWhat,
    pub error: Option<String>,
}

impl MigrateDialog {
    pub fn open(
        backup: Option<BackupRecord>,
        copies: Vec<BackupCopy>,
        projects: &[Project],
        engine: &Engine,
    ) -> (Self, Task<Message>) {
        let from = match &backup {
            Some(b) if b.local_state != "present" => Place(
                copies
                    .iter()
                    .find(|c| c.status == "stored")
                    .map(|c| c.destination.clone()),
            ),
            _ => Place(None),
        };
        let source = backup
            .as_ref()
            .and_then(|b| b.project_id.as_ref())
            .and_then(|id| projects.iter().find(|p| &p.id == id))
            .map(ProjectChoice::from);
        let d = MigrateDialog {
            mode: if backup.is_some() {
                Mode::Transfer
            } else {
                Mode::Clone
            },
            backup,
            copies,
            destinations: Vec::new(),
            from,
            to: None,
            remove_source: false,
            busy: false,
            projects: projects.iter().map(ProjectChoice::from).collect(),
            source,
            target: None,
            what: CloneWhat::SchemaAndData,
            error: None,
        };
        let engine = engine.clone();
        let task = Task::perform(
            async move {
                engine
                    .list_destinations()
                    .await
                    .map(|l| l.into_iter().map(|d| d.name).collect())
            },
            Message::Destinations,
        );
        (d, task)
    }

    /// Where the backup is now.
    pub fn sources(&self) -> Vec<Place> {
        let mut out = Vec::new();
        if self
            .backup
            .as_ref()
            .is_some_and(|b| b.local_state == "present")
        {
            out.push(Place(None));
        }
        for c in self.copies.iter().filter(|c| c.status == "stored") {
            out.push(Place(Some(c.destination.clone())));
        }
        out
    }

    /// Destinations it is not at yet.
    pub fn targets(&self) -> Vec<Place> {
        self.destinations
            .iter()
            .filter(|n| {
                !self
                    .copies
                    .iter()
                    .any(|c| &c.destination == *n && c.status == "stored")
            })
            .map(|n| Place(Some(n.clone())))
            .collect()
    }

    pub fn update(&mut self, message: Message, engine: &Engine) -> Event {
        self.error = None;
        match message {
            Message::Mode(m) => {
                self.mode = m;
                Event::None
            }
            Message::Destinations(Ok(l)) => {
                self.destinations = l;
                Event::None
            }
            Message::Destinations(Err(e)) => {
                self.error = Some(e.message);
                Event::None
            }
            Message::From(p) => {
                self.from = p;
                Event::None
            }
            Message::To(p) => {
                self.to = Some(p);
                Event::None
            }
            Message::Move(b) => {
                self.remove_source = b;
                Event::None
            }
            Message::Start => {
                let Some(b) = &self.backup else {
                    self.error = Some("choose a backup in the list first".into());
                    return Event::None;
                };
                let Some(Place(Some(to))) = self.to.clone() else {
                    self.error = Some("choose where it goes".into());
                    return Event::None;
                };
                self.busy = true;
                let (engine, id, from, remove) = (
                    engine.clone(),
                    b.id.clone(),
                    self.from.0.clone(),
                    self.remove_source,
                );
                Event::Run(Task::perform(
                    async move {
                        let cancel = CancellationToken::new();
                        if remove {
                            engine
                                .move_backup(&id, from.as_deref(), &to, &|_| {}, &cancel)
                                .await
                        } else {
                            engine.store_copy(&id, &to, None, &|_| {}, &cancel).await
                        }
                    },
                    Message::Done,
                ))
            }
            Message::Done(r) => {
                self.busy = false;
                match r {
                    Ok(c) => Event::Finished(Ok(c)),
                    Err(e) => {
                        self.error = Some(e.message.clone());
                        Event::Finished(Err(e))
                    }
                }
            }
            Message::Source(p) => {
                self.source = Some(p);
                Event::None
            }
            Message::Target(p) => {
                self.target = Some(p);
                Event::None
            }
            Message::What(w) => {
                self.what = w.0;
                Event::None
            }
            Message::Latest(Ok(b)) => {
                self.busy = false;
                match &self.target {
                    Some(t) => Event::Clone {
                        backup: b.id,
                        target: t.id.clone(),
                        schema_only: self.what == CloneWhat::SchemaOnly,
                    },
                    None => Event::None,
                }
            }
            Message::Latest(Err(e)) => {
                self.busy = false;
                self.error = Some(e.message);
                Event::None
            }
            Message::ContinueClone => self.continue_clone(engine),
            Message::Cancel => Event::Closed,
        }
    }

    /// "Continue to the preview" for the clone: finds the backup first.
    fn continue_clone(&mut self, engine: &Engine) -> Event {
        let (Some(s), Some(t)) = (&self.source, &self.target) else {
            self.error = Some("choose both projects".into());
            return Event::None;
        };
        if s.id == t.id {
            self.error = Some("the source and the target are the same project".into());
            return Event::None;
        }
        // The selected backup when it is the source's, else its newest full one.
        if let Some(b) = self
            .backup
            .as_ref()
            .filter(|b| b.project_id.as_deref() == Some(s.id.as_str()) && b.status == "completed")
        {
            return Event::Clone {
                backup: b.id.clone(),
                target: t.id.clone(),
                schema_only: self.what == CloneWhat::SchemaOnly,
            };
        }
        self.busy = true;
        let (engine, id) = (engine.clone(), s.id.clone());
        Event::Run(Task::perform(
            async move { engine.latest_full_backup(&id).await },
            Message::Latest,
        ))
    }

    pub fn view(&self) -> Element<'_, Message> {
        let mut col = column![
            text("Migration assistant").size(theme::H2).font(theme::BOLD),
            row![
                widget::choice(
                    "Copy or move a backup",
                    "Between this machine and destinations; the new copy is read back before anything is removed",
                    self.mode == Mode::Transfer,
                    Message::Mode(Mode::Transfer)
                ),
                widget::choice(
                    "Clone an environment",
                    "A project's backup restored into another project, preview first",
                    self.mode == Mode::Clone,
                    Message::Mode(Mode::Clone)
                ),
            ]
            .spacing(theme::M),
        ]
        .spacing(theme::M);
        match self.mode {
            Mode::Transfer => {
                match &self.backup {
                    None => {
                        col = col.push(
                            text("Select a backup in the list first.")
                                .style(theme::toned(Tone::Warning)),
                        )
                    }
                    Some(b) => {
                        col = col.push(
                            text(format!(
                                "Backup {} · {} · {}",
                                crate::ui::format::short_id(&b.id),
                                b.project_name,
                                crate::ui::format::local_time(&b.created_at)
                            ))
                            .font(theme::BOLD),
                        );
                    }
                }
                let targets = self.targets();
                if self.destinations.is_empty() {
                    col = col.push(
                        text("No destinations yet: add one in Settings → Destinations.")
                            .style(theme::toned(Tone::Warning)),
                    );
                }
                col = col.push(
                    row![
                        text("From").width(Length::Fixed(60.0)),
                        pick_list(self.sources(), Some(self.from.clone()), Message::From)
                            .padding(theme::S),
                        text("to").width(Length::Fixed(30.0)),
                        pick_list(targets, self.to.clone(), Message::To)
                            .placeholder("a destination")
                            .padding(theme::S),
                    ]
                    .spacing(theme::M)
                    .align_y(Alignment::Center),
                );
                col = col.push(
                    toggler(self.remove_source)
                        .label("Move: remove it from the source once the new copy is verified")
                        .on_toggle(Message::Move),
                );
                col = col.push(
                    row![
                        widget::primary_button(
                            if self.busy {
                                "Working…"
                            } else if self.remove_source {
                                "Move"
                            } else {
                                "Copy"
                            },
                            (!self.busy && self.backup.is_some() && self.to.is_some())
                                .then_some(Message::Start)
                        ),
                        widget::fill(),
                        widget::secondary_button("Close", Some(Message::Cancel)),
                    ]
                    .spacing(theme::S),
                );
            }
            Mode::Clone => {
                col = col.push(
                    row![
                        pick_list(self.projects.clone(), self.source.clone(), Message::Source)
                            .placeholder("from project")
                            .padding(theme::S)
                            .width(Length::Fill),
                        text("→"),
                        pick_list(self.projects.clone(), self.target.clone(), Message::Target)
                            .placeholder("into project")
                            .padding(theme::S)
                            .width(Length::Fill),
                    ]
                    .spacing(theme::M)
                    .align_y(Alignment::Center),
                );
                col = col.push(
                    pick_list(WhatChoice::ALL, Some(WhatChoice(self.what)), Message::What)
                        .padding(theme::S),
                );
                col = col.push(
                    text("Uses the selected backup when it is the source's, else the source's newest full backup. The restore wizard opens with the preview next; nothing changes before you confirm there.")
                        .size(theme::SMALL)
                        .style(theme::muted),
                );
                col = col.push(
                    row![
                        widget::primary_button(
                            if self.busy {
                                "Finding the backup…"
                            } else {
                                "Continue to the preview"
                            },
                            (!self.busy && self.source.is_some() && self.target.is_some())
                                .then_some(Message::ContinueClone)
                        ),
                        widget::fill(),
                        widget::secondary_button("Close", Some(Message::Cancel)),
                    ]
                    .spacing(theme::S),
                );
            }
        }
        if let Some(e) = &self.error {
            col = col.push(text(e.clone()).style(theme::toned(Tone::Danger)));
        }
        col.width(Length::Fixed(680.0)).into()
    }
}
