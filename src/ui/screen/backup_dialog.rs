//! "Back up now": project, type, schemas, excluded tables, compression and
//! level, encryption (asking for the backup passphrase the first time).

use iced::widget::{checkbox, column, pick_list, row, text, text_input, toggler};
use iced::{Alignment, Element, Length, Task};

use crate::engine::backup::source::SourceNames;
use crate::engine::backup::{BackupKind, BackupOptions, BackupRequest, Codec};
use crate::engine::crypto::Secret;
use crate::engine::destination::Destination;
use crate::engine::destination::copies::StorePlan;
use crate::engine::project::Project;
use crate::engine::vault::MIN_PASSPHRASE_LEN;
use crate::engine::{Engine, Error};
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

use super::choices::{CodecChoice, KindChoice, LevelChoice, ProjectChoice, StreamsChoice};

pub const START_ID: &str = "backup-start";

#[derive(Debug, Clone)]
pub enum Message {
    Loaded(Result<(Vec<Project>, bool), Error>),
    Project(ProjectChoice),
    Kind(KindChoice),
    Schemas(String),
    Exclude(String),
    Codec(CodecChoice),
    Level(LevelChoice),
    Streams(StreamsChoice),
    Encrypt(bool),
    Passphrase(String),
    PassphraseConfirm(String),
    Start,
    PassphraseSaved(Result<(), Error>),
    Cancel,
    /// The chosen project's schemas and tables, for the pickers.
    Names(Result<SourceNames, Error>),
    PickSchema(String),
    PickTable(String),
    Destinations(Result<Vec<Destination>, Error>),
    /// Copy (or not) to this destination.
    CopyTo(String, bool),
    KeepLocal(bool),
    /// The chosen project's manual-backup hooks.
    Hooks(Result<crate::engine::schedule::hooks::ProjectHooks, Error>),
    /// Run them around this backup (on unless turned off).
    RunHooks(bool),
}

pub enum Event {
    None,
    Run(Task<Message>),
    /// Start this backup; the label names the project for the jobs list.
    Start(BackupRequest, String),
    Cancelled,
}

#[derive(Debug)]
pub struct BackupDialog {
    pub projects: Vec<ProjectChoice>,
    pub project: Option<ProjectChoice>,
    /// The project asked for before the list arrived.
    wanted: Option<String>,
    pub kind: BackupKind,
    pub schemas: String,
    pub exclude: String,
    pub codec: Codec,
    pub level: Option<u8>,
    pub streams: Option<u8>,
    pub encrypt: bool,
    /// Whether a backup passphrase is stored (`None` until known).
    pub has_passphrase: Option<bool>,
    pub passphrase: String,
    pub passphrase_confirm: String,
    pub error: Option<String>,
    pub starting: bool,
    pub loading: bool,
    /// The project's schemas and tables (`None` until read).
    pub names: Option<SourceNames>,
    /// Every destination, and the ones this backup is copied to.
    pub destinations: Vec<String>,
    pub copy_to: Vec<String>,
    /// Keep the folder on this machine once the copies are stored.
    pub keep_local: bool,
    /// The project's hooks (`None` until read) and whether to run them.
    pub hooks: Option<crate::engine::schedule::hooks::ProjectHooks>,
    pub run_hooks: bool,
}

impl BackupDialog {
    /// Reads the chosen project's schemas and tables.
    fn names_task(&mut self, engine: &Engine) -> Event {
        self.names = None;
        let Some(p) = &self.project else {
            return Event::None;
        };
        self.hooks = None;
        let (engine, id) = (engine.clone(), p.id.clone());
        let (e2, id2) = (engine.clone(), id.clone());
        Event::Run(Task::batch([
            Task::perform(
                async move { engine.source_names(&id).await },
                Message::Names,
            ),
            Task::perform(async move { e2.project_hooks(&id2).await }, Message::Hooks),
        ]))
    }

    /// A dialog for `project` (id), starting from `defaults`; loads the
    /// project list and whether a backup passphrase exists.
    pub fn open(
        project: Option<String>,
        defaults: &BackupOptions,
        engine: &Engine,
    ) -> (Self, Task<Message>) {
        let d = BackupDialog {
            projects: Vec::new(),
            project: None,
            wanted: project,
            kind: defaults.kind,
            schemas: defaults.schemas.join(", "),
            exclude: defaults.exclude_tables.join(", "),
            codec: defaults.codec,
            level: defaults.level,
            streams: defaults.streams,
            encrypt: defaults.encrypt,
            has_passphrase: None,
            passphrase: String::new(),
            passphrase_confirm: String::new(),
            error: None,
            starting: false,
            loading: true,
            names: None,
            destinations: Vec::new(),
            copy_to: Vec::new(),
            keep_local: true,
            hooks: None,
            run_hooks: true,
        };
        let engine = engine.clone();
        let e2 = engine.clone();
        let task = Task::batch([
            Task::perform(
                async move {
                    let projects = engine.list_projects().await?;
                    let has = engine.backup_passphrase().await?.is_some();
                    Ok((projects, has))
                },
                Message::Loaded,
            ),
            Task::perform(
                async move { e2.list_destinations().await },
                Message::Destinations,
            ),
        ]);
        (d, task)
    }

    /// The options as typed, validated by the engine's rules.
    pub fn options(&self) -> Result<BackupOptions, Error> {
        let roles = self.kind == BackupKind::Roles;
        let o = BackupOptions {
            kind: self.kind,
            schemas: if roles {
                Vec::new()
            } else {
                format::split_list(&self.schemas)
            },
            exclude_tables: if roles {
                Vec::new()
            } else {
                format::split_list(&self.exclude)
            },
            codec: self.codec,
            level: if self.codec == Codec::None {
                None
            } else {
                self.level
            },
            encrypt: self.encrypt,
            streams: if self.kind == BackupKind::Incremental {
                None
            } else {
                self.streams
            },
        };
        o.validate()?;
        Ok(o)
    }

    fn needs_passphrase(&self) -> bool {
        self.encrypt && self.has_passphrase == Some(false)
    }

    pub fn update(&mut self, message: Message, engine: &Engine) -> Event {
        self.error = None;
        match message {
            Message::Loaded(Ok((projects, has))) => {
                self.loading = false;
                self.projects = projects.iter().map(ProjectChoice::from).collect();
                self.has_passphrase = Some(has);
                self.project = match &self.wanted {
                    Some(w) => self
                        .projects
                        .iter()
                        .find(|p| &p.id == w || &p.name == w)
                        .cloned(),
                    None if self.projects.len() == 1 => self.projects.first().cloned(),
                    None => None,
                };
                self.names_task(engine)
            }
            Message::Loaded(Err(e)) => {
                self.loading = false;
                self.error = Some(e.message);
                Event::None
            }
            Message::Project(p) => {
                self.project = Some(p);
                self.names_task(engine)
            }
            Message::Names(r) => {
                // A failure to read them leaves the fields to type in.
                self.names = r.ok();
                Event::None
            }
            Message::Destinations(r) => {
                // Without the list the backup stays local, as before.
                self.destinations = r
                    .map(|l| l.into_iter().map(|d| d.name).collect())
                    .unwrap_or_default();
                Event::None
            }
            Message::CopyTo(name, on) => {
                self.copy_to.retain(|n| n != &name);
                if on {
                    self.copy_to.push(name);
                }
                Event::None
            }
            Message::KeepLocal(b) => {
                self.keep_local = b;
                Event::None
            }
            Message::Hooks(r) => {
                self.hooks = r.ok();
                Event::None
            }
            Message::RunHooks(b) => {
                self.run_hooks = b;
                Event::None
            }
            Message::PickSchema(name) => {
                self.schemas = widget::toggle_name(&self.schemas, &name);
                Event::None
            }
            Message::PickTable(name) => {
                self.exclude = widget::toggle_name(&self.exclude, &name);
                Event::None
            }
            Message::Kind(k) => {
                self.kind = k.0;
                // The repository always seals and zstd-compresses chunks.
                if self.kind == BackupKind::Incremental {
                    self.codec = Codec::Zstd;
                    self.encrypt = true;
                }
                Event::None
            }
            Message::Schemas(s) => {
                self.schemas = s;
                Event::None
            }
            Message::Exclude(s) => {
                self.exclude = s;
                Event::None
            }
            Message::Codec(c) => {
                self.codec = c.0;
                Event::None
            }
            Message::Level(l) => {
                self.level = l.0;
                Event::None
            }
            Message::Streams(s) => {
                self.streams = s.0;
                Event::None
            }
            Message::Encrypt(b) => {
                self.encrypt = b;
                Event::None
            }
            Message::Passphrase(p) => {
                self.passphrase = p;
                Event::None
            }
            Message::PassphraseConfirm(p) => {
                self.passphrase_confirm = p;
                Event::None
            }
            Message::Start => {
                if self.starting || self.loading {
                    return Event::None;
                }
                let Some(project) = self.project.clone() else {
                    self.error = Some("choose a project".into());
                    return Event::None;
                };
                let options = match self.options() {
                    Ok(o) => o,
                    Err(e) => {
                        self.error = Some(e.message);
                        return Event::None;
                    }
                };
                if self.needs_passphrase() {
                    if self.passphrase.chars().count() < MIN_PASSPHRASE_LEN {
                        self.error = Some(format!(
                            "choose a backup passphrase of at least {MIN_PASSPHRASE_LEN} characters, or turn encryption off"
                        ));
                        return Event::None;
                    }
                    if self.passphrase != self.passphrase_confirm {
                        self.error = Some("the two backup passphrases differ".into());
                        return Event::None;
                    }
                    self.starting = true;
                    let engine = engine.clone();
                    let p = Secret::new(self.passphrase.clone());
                    return Event::Run(Task::perform(
                        async move { engine.set_backup_passphrase(p).await },
                        Message::PassphraseSaved,
                    ));
                }
                self.starting = true;
                Event::Start(
                    BackupRequest {
                        no_hooks: !self.run_hooks,
                        project: project.id,
                        options,
                        job_id: None,
                        store: StorePlan {
                            destinations: self.copy_to.clone(),
                            drop_local: !self.copy_to.is_empty() && !self.keep_local,
                            failover: None,
                        },
                    },
                    project.name,
                )
            }
            Message::PassphraseSaved(Ok(())) => {
                self.starting = false;
                self.has_passphrase = Some(true);
                self.passphrase.clear();
                self.passphrase_confirm.clear();
                self.update(Message::Start, engine)
            }
            Message::PassphraseSaved(Err(e)) => {
                self.starting = false;
                self.error = Some(e.message);
                Event::None
            }
            Message::Cancel => Event::Cancelled,
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let roles = self.kind == BackupKind::Roles;
        let mut col = column![
            text("Back up now").size(theme::H2).font(theme::BOLD),
            row![
                widget::field(
                    "Project",
                    pick_list(
                        self.projects.clone(),
                        self.project.clone(),
                        Message::Project
                    )
                    .placeholder(if self.loading {
                        "Loading…"
                    } else {
                        "Choose a project"
                    })
                    .width(Length::Fill)
                    .padding(theme::S),
                    None,
                    None,
                ),
                widget::field(
                    "Type",
                    pick_list(KindChoice::ALL, Some(KindChoice(self.kind)), Message::Kind)
                        .width(Length::Fill)
                        .padding(theme::S),
                    None,
                    None,
                ),
            ]
            .spacing(theme::M),
        ]
        .spacing(theme::M);
        if !roles {
            col = col.push(
                row![
                    widget::field(
                        "Only these schemas",
                        text_input("all user schemas", &self.schemas)
                            .on_input(Message::Schemas)
                            .padding(theme::S),
                        None,
                        Some("exact names, comma-separated; quote one holding a dot: \"a.b\""),
                    ),
                    widget::field(
                        "Leave out table data",
                        text_input("none", &self.exclude)
                            .on_input(Message::Exclude)
                            .padding(theme::S),
                        None,
                        Some("schema.table, exact names, comma-separated"),
                    ),
                ]
                .spacing(theme::M),
            );
            if let Some(names) = &self.names {
                let chosen = crate::engine::ident::split_list(&self.schemas);
                let excluded = crate::engine::ident::split_list(&self.exclude);
                let schemas: Vec<String> = names
                    .schemas
                    .iter()
                    .map(|s| crate::engine::ident::render(s))
                    .collect();
                let tables: Vec<String> = names
                    .tables
                    .iter()
                    .map(|(s, t)| crate::engine::ident::render_table(s, t))
                    .collect();
                col = col.push(
                    column![
                        text("Schemas of the project (click to choose)")
                            .size(theme::SMALL)
                            .style(theme::muted),
                        widget::name_picker(
                            &schemas,
                            &|n| chosen.iter().any(|c| c == n),
                            &|n| Message::PickSchema(n),
                            40
                        ),
                        text("Tables (click to leave their rows out)")
                            .size(theme::SMALL)
                            .style(theme::muted),
                        widget::name_picker(
                            &tables,
                            &|n| excluded.iter().any(|c| c == n),
                            &|n| Message::PickTable(n),
                            60
                        ),
                    ]
                    .spacing(theme::XS),
                );
            }
        }
        col = col.push(
            row![
                widget::field(
                    "Compression",
                    pick_list(
                        CodecChoice::ALL,
                        Some(CodecChoice(self.codec)),
                        Message::Codec
                    )
                    .width(Length::Fill)
                    .padding(theme::S),
                    None,
                    None,
                ),
                widget::field(
                    "Level",
                    pick_list(
                        LevelChoice::all(),
                        Some(LevelChoice(self.level)),
                        Message::Level
                    )
                    .width(Length::Fill)
                    .padding(theme::S),
                    None,
                    Some(match self.codec {
                        Codec::Zstd => "default 3",
                        Codec::Xz => "default 6",
                        Codec::None => "not used",
                    }),
                ),
                widget::field(
                    "Data streams",
                    pick_list(
                        StreamsChoice::all(),
                        Some(StreamsChoice(self.streams)),
                        Message::Streams
                    )
                    .width(Length::Fill)
                    .padding(theme::S),
                    None,
                    Some(if self.kind == BackupKind::Incremental {
                        "incremental: always 1"
                    } else {
                        "pg_dumps for the largest tables"
                    }),
                ),
                widget::field(
                    "Encryption",
                    toggler(self.encrypt)
                        .label(if self.encrypt { "AES-256-GCM" } else { "off" })
                        .on_toggle(Message::Encrypt),
                    None,
                    None,
                ),
            ]
            .spacing(theme::M),
        );
        if let Some(h) = self
            .hooks
            .as_ref()
            .filter(|h| h.pre.is_some() || h.post.is_some())
        {
            let says = [("before", &h.pre), ("after", &h.post)]
                .iter()
                .filter_map(|(when, hook)| hook.as_ref().map(|x| format!("{when}: {}", x.command)))
                .collect::<Vec<_>>()
                .join(" · ");
            col = col.push(
                row![
                    toggler(self.run_hooks).on_toggle(Message::RunHooks),
                    text(format!("Run the project's hooks ({says})")).size(theme::SMALL),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
        }
        if !self.destinations.is_empty() {
            let mut places = row![text("Copy to").width(Length::Fixed(90.0))]
                .spacing(theme::M)
                .align_y(iced::Alignment::Center);
            for name in &self.destinations {
                let on = self.copy_to.contains(name);
                let n = name.clone();
                places = places.push(
                    checkbox(on)
                        .label(name.clone())
                        .on_toggle(move |b| Message::CopyTo(n.clone(), b)),
                );
            }
            if !self.copy_to.is_empty() {
                places = places.push(widget::fill());
                places = places.push(
                    toggler(self.keep_local)
                        .label("Keep a copy on this machine")
                        .on_toggle(Message::KeepLocal),
                );
            }
            col = col.push(places);
        }
        if self.needs_passphrase() {
            col = col.push(
                column![
                    text("No backup passphrase yet. Choose one: it encrypts every backup file. Keep a copy somewhere safe — restoring on another machine needs it.")
                        .size(theme::SMALL)
                        .style(theme::toned(Tone::Warning)),
                    row![
                        text_input("backup passphrase", &self.passphrase)
                            .secure(true)
                            .on_input(Message::Passphrase)
                            .padding(theme::S),
                        text_input("repeat it", &self.passphrase_confirm)
                            .secure(true)
                            .on_input(Message::PassphraseConfirm)
                            .padding(theme::S),
                    ]
                    .spacing(theme::M),
                ]
                .spacing(theme::S),
            );
        }
        if let Some(e) = &self.error {
            col = col.push(text(e.clone()).style(theme::toned(Tone::Danger)));
        }
        col = col.push(
            row![
                widget::primary_button(
                    if self.starting {
                        "Starting…"
                    } else {
                        "Start backup"
                    },
                    (!self.starting && !self.loading).then_some(Message::Start)
                ),
                widget::fill(),
                widget::secondary_button("Cancel", Some(Message::Cancel)),
            ]
            .spacing(theme::S),
        );
        col.width(Length::Fixed(680.0)).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn validates_and_asks_for_a_passphrase_once() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let (mut d, _task) =
            BackupDialog::open(Some("id-a".into()), &BackupOptions::default(), &ctx.engine);
        assert!(
            matches!(d.update(Message::Start, &ctx.engine), Event::None),
            "still loading"
        );
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
        let _ = d.update(Message::Loaded(Ok((vec![p], false))), &ctx.engine);
        assert_eq!(d.project.as_ref().map(|p| p.name.as_str()), Some("Alpha"));
        let _ = d.update(Message::Exclude("nodot".into()), &ctx.engine);
        assert!(matches!(d.update(Message::Start, &ctx.engine), Event::None));
        assert!(
            d.error
                .as_deref()
                .is_some_and(|e| e.contains("schema.table"))
        );
        let _ = d.update(Message::Exclude("public.logs".into()), &ctx.engine);
        let _ = d.update(Message::Streams(StreamsChoice(Some(3))), &ctx.engine);
        assert!(matches!(d.update(Message::Start, &ctx.engine), Event::None));
        assert!(d.error.as_deref().is_some_and(|e| e.contains("passphrase")));
        let _ = d.update(Message::Passphrase("backup secret".into()), &ctx.engine);
        let _ = d.update(
            Message::PassphraseConfirm("backup secret".into()),
            &ctx.engine,
        );
        assert!(matches!(
            d.update(Message::Start, &ctx.engine),
            Event::Run(_)
        ));
        match d.update(Message::PassphraseSaved(Ok(())), &ctx.engine) {
            Event::Start(req, label) => {
                assert_eq!(req.project, "id-a");
                assert_eq!(label, "Alpha");
                assert_eq!(req.options.exclude_tables, ["public.logs"]);
                assert_eq!(req.options.streams, Some(3));
                assert!(req.options.encrypt);
            }
            _ => panic!("the backup starts once the passphrase is saved"),
        }
        // Incremental backups dump in one stream: the choice is dropped.
        d.starting = false;
        let _ = d.update(
            Message::Kind(KindChoice(BackupKind::Incremental)),
            &ctx.engine,
        );
        assert_eq!(d.options().map(|o| o.streams).ok(), Some(None));
        // Roles backups drop the filters instead of failing.
        let _ = d.update(Message::Kind(KindChoice(BackupKind::Roles)), &ctx.engine);
        assert!(d.options().is_ok());
    }

    #[tokio::test]
    async fn chosen_destinations_go_into_the_request_and_keep_local_decides_drop_local() {
        let (ctx, dir, _fake) = crate::ui::testing::ctx().await;
        let folder = dir.path().join("nas");
        ctx.engine
            .add_destination(crate::engine::destination::DestinationInput {
                name: "nas".into(),
                url: format!("file://{}", folder.display()),
                ..Default::default()
            })
            .await
            .expect("destination");
        let opts = BackupOptions {
            encrypt: false,
            ..Default::default()
        };
        let (mut d, task) = BackupDialog::open(Some("id-a".into()), &opts, &ctx.engine);
        // The real load: the destination list comes from the engine.
        for m in crate::ui::testing::run(task).await {
            if matches!(m, Message::Destinations(_)) {
                let _ = d.update(m, &ctx.engine);
            }
        }
        assert_eq!(d.destinations, ["nas"]);
        d.loading = false;
        d.project = Some(ProjectChoice {
            id: "id-a".into(),
            name: "Alpha".into(),
        });
        let _ = d.update(Message::CopyTo("nas".into(), true), &ctx.engine);
        let _ = d.update(Message::KeepLocal(false), &ctx.engine);
        match d.update(Message::Start, &ctx.engine) {
            Event::Start(req, _) => {
                assert_eq!(req.store.destinations, ["nas"]);
                assert!(req.store.drop_local);
            }
            _ => panic!("the backup starts"),
        }
        d.starting = false;
        let _ = d.update(Message::CopyTo("nas".into(), false), &ctx.engine);
        match d.update(Message::Start, &ctx.engine) {
            Event::Start(req, _) => {
                assert!(req.store.destinations.is_empty());
                assert!(
                    !req.store.drop_local,
                    "a backup with no copies keeps its folder"
                );
            }
            _ => panic!("the backup starts"),
        }
    }
}
