//! Import and export of project configurations (JSON or CSV) and of the
//! whole configuration (Settings' "move to a new machine": projects,
//! destinations, schedules, alert rules, settings), with a file picker (and
//! a typed path when no picker is available) and a report of every problem.

use std::path::PathBuf;
use std::sync::Arc;

use iced::widget::{checkbox, column, container, row, scrollable, text, text_input};
use iced::{Element, Length, Task};

use crate::engine::config::{
    ConfigExportOptions, ConfigExportSummary, ConfigImportOptions, ConfigImportReport,
};
use crate::engine::crypto::Secret;
use crate::engine::transfer::{ExportOptions, ExportSummary, ImportOptions, ImportReport};
use crate::engine::{Engine, Error};
use crate::ui::platform::{Filter, Platform};
use crate::ui::theme::{self, Tone};
use crate::ui::widget;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Import,
    Export,
}

/// What is moved: the projects, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Projects,
    Everything,
}

#[derive(Debug, Clone)]
pub enum Message {
    PathChanged(String),
    Browse,
    Picked(Option<PathBuf>),
    PassphraseChanged(String),
    AcceptPartial(bool),
    IncludeSecrets(bool),
    SkipExisting(bool),
    WithoutSecrets(bool),
    /// Import: check only (dry run) or apply.
    Run {
        dry_run: bool,
    },
    Imported(Result<ImportReport, Error>),
    Exported(Result<ExportSummary, Error>),
    ConfigImported(Result<ConfigImportReport, Error>),
    ConfigExported(Result<ConfigExportSummary, Error>),
    Close,
}

pub enum Event {
    None,
    Run(Task<Message>),
    /// Something was written to the catalog.
    Changed(String),
    Closed,
}

#[derive(Debug)]
pub struct Transfer {
    pub mode: Mode,
    pub scope: Scope,
    pub path: String,
    pub passphrase: String,
    pub accept_partial: bool,
    pub include_secrets: bool,
    pub skip_existing: bool,
    pub without_secrets: bool,
    pub busy: bool,
    pub report: Option<ImportReport>,
    pub summary: Option<ExportSummary>,
    pub config_report: Option<ConfigImportReport>,
    pub config_summary: Option<ConfigExportSummary>,
    pub error: Option<Error>,
}

impl Transfer {
    pub fn new(mode: Mode, default_dir: PathBuf) -> Self {
        Self::of(Scope::Projects, mode, default_dir)
    }

    /// The dialog for the whole configuration.
    pub fn everything(mode: Mode, default_dir: PathBuf) -> Self {
        Self::of(Scope::Everything, mode, default_dir)
    }

    fn of(scope: Scope, mode: Mode, default_dir: PathBuf) -> Self {
        let path = match mode {
            Mode::Import => String::new(),
            Mode::Export => default_dir.join(scope.file_name()).display().to_string(),
        };
        Transfer {
            mode,
            scope,
            path,
            passphrase: String::new(),
            accept_partial: false,
            include_secrets: false,
            skip_existing: false,
            without_secrets: false,
            busy: false,
            report: None,
            summary: None,
            config_report: None,
            config_summary: None,
            error: None,
        }
    }

    pub fn update(
        &mut self,
        message: Message,
        engine: &Engine,
        platform: &Arc<dyn Platform>,
    ) -> Event {
        match message {
            Message::PathChanged(p) => {
                self.path = p;
                self.error = None;
                Event::None
            }
            Message::Browse => {
                let fut = match (self.mode, self.scope) {
                    (Mode::Import, Scope::Projects) => platform.pick_file(
                        "Import projects".into(),
                        vec![Filter::new("Projects", &["json", "csv"])],
                    ),
                    (Mode::Import, Scope::Everything) => platform.pick_file(
                        "Import a configuration".into(),
                        vec![Filter::new("Configuration", &["json"])],
                    ),
                    (Mode::Export, scope) => {
                        platform.save_file(self.title().into(), scope.file_name().into())
                    }
                };
                Event::Run(Task::perform(fut, Message::Picked))
            }
            Message::Picked(Some(p)) => {
                self.path = p.display().to_string();
                Event::None
            }
            Message::Picked(None) => Event::None,
            Message::PassphraseChanged(p) => {
                self.passphrase = p;
                Event::None
            }
            Message::AcceptPartial(b) => {
                self.accept_partial = b;
                Event::None
            }
            Message::IncludeSecrets(b) => {
                self.include_secrets = b;
                Event::None
            }
            Message::SkipExisting(b) => {
                self.skip_existing = b;
                Event::None
            }
            Message::WithoutSecrets(b) => {
                self.without_secrets = b;
                Event::None
            }
            Message::Run { dry_run } => {
                if self.busy {
                    return Event::None;
                }
                let path = PathBuf::from(self.path.trim());
                if self.path.trim().is_empty() {
                    self.error = Some(Error::invalid(
                        "choose a file first (Browse… or type its path)",
                    ));
                    return Event::None;
                }
                self.busy = true;
                self.error = None;
                let engine = engine.clone();
                let passphrase =
                    (!self.passphrase.is_empty()).then(|| Secret::new(self.passphrase.clone()));
                if self.mode == Mode::Export && self.include_secrets && passphrase.is_none() {
                    self.busy = false;
                    self.error = Some(Error::invalid(
                        "secrets are exported encrypted: choose an export passphrase",
                    ));
                    return Event::None;
                }
                let export_passphrase = passphrase.clone().filter(|_| self.include_secrets);
                match (self.mode, self.scope) {
                    (Mode::Import, Scope::Everything) => {
                        self.config_report = None;
                        let opts = ConfigImportOptions {
                            secrets_passphrase: passphrase,
                            without_secrets: self.without_secrets,
                            skip_existing: self.skip_existing,
                            dry_run,
                        };
                        Event::Run(Task::perform(
                            async move { engine.import_config(&path, opts).await },
                            Message::ConfigImported,
                        ))
                    }
                    (Mode::Export, Scope::Everything) => {
                        self.config_summary = None;
                        let opts = ConfigExportOptions {
                            secrets_passphrase: export_passphrase,
                        };
                        Event::Run(Task::perform(
                            async move { engine.export_config(&path, opts).await },
                            Message::ConfigExported,
                        ))
                    }
                    (Mode::Import, Scope::Projects) => {
                        self.report = None;
                        let opts = ImportOptions {
                            accept_partial: self.accept_partial,
                            secrets_passphrase: passphrase,
                            dry_run,
                        };
                        Event::Run(Task::perform(
                            async move { engine.import_projects(&path, opts).await },
                            Message::Imported,
                        ))
                    }
                    (Mode::Export, Scope::Projects) => {
                        self.summary = None;
                        let opts = ExportOptions {
                            secrets_passphrase: export_passphrase,
                        };
                        Event::Run(Task::perform(
                            async move { engine.export_projects(&path, opts).await },
                            Message::Exported,
                        ))
                    }
                }
            }
            Message::Imported(r) => {
                self.busy = false;
                match r {
                    Ok(report) => {
                        let applied = report.applied;
                        let n = report.valid.len();
                        self.report = Some(report);
                        if applied {
                            Event::Changed(format!("Imported {n} project(s)"))
                        } else {
                            Event::None
                        }
                    }
                    Err(e) => {
                        self.error = Some(e);
                        Event::None
                    }
                }
            }
            Message::Exported(r) => {
                self.busy = false;
                match r {
                    Ok(s) => self.summary = Some(s),
                    Err(e) => self.error = Some(e),
                }
                Event::None
            }
            Message::ConfigImported(r) => {
                self.busy = false;
                match r {
                    Ok(report) => {
                        let applied = report.applied;
                        let what = format!(
                            "Imported {} project(s), {} destination(s), {} schedule(s) and {} alert rule(s)",
                            report.projects.added.len(),
                            report.destinations.added.len(),
                            report.jobs.added.len(),
                            report.alert_rules.added.len()
                        );
                        self.config_report = Some(report);
                        if applied {
                            Event::Changed(what)
                        } else {
                            Event::None
                        }
                    }
                    Err(e) => {
                        self.error = Some(e);
                        Event::None
                    }
                }
            }
            Message::ConfigExported(r) => {
                self.busy = false;
                match r {
                    Ok(s) => self.config_summary = Some(s),
                    Err(e) => self.error = Some(e),
                }
                Event::None
            }
            Message::Close => Event::Closed,
        }
    }

    fn title(&self) -> &'static str {
        match (self.mode, self.scope) {
            (Mode::Import, Scope::Projects) => "Import projects",
            (Mode::Export, Scope::Projects) => "Export projects",
            (Mode::Import, Scope::Everything) => "Import a configuration",
            (Mode::Export, Scope::Everything) => "Export the configuration",
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let mut col = column![
            text(self.title()).size(theme::H2).font(theme::BOLD),
            text(match (self.mode, self.scope) {
                (Mode::Import, Scope::Projects) => "A .json or .csv file as written by Export (or by hand). Every bad row is reported with its line; nothing is written unless all rows are good or you accept a partial import.",
                (Mode::Export, Scope::Projects) => "Writes every project to a .json or .csv file. Credentials are left out unless you include them, encrypted with a passphrase.",
                (Mode::Import, Scope::Everything) => "A file written by Export on another machine. All of it is imported, or — when anything in it is wrong or already exists here — nothing; every problem is listed.",
                (Mode::Export, Scope::Everything) => "Writes projects, their hooks and probe intervals, destinations, schedules, alert rules and settings to one .json file, to import on a new machine. Secrets are left out unless you include them, encrypted with a passphrase.",
            })
            .size(theme::SMALL)
            .style(theme::muted),
            widget::field(
                "File",
                row![
                    text_input(self.scope.placeholder(), &self.path)
                        .id("transfer-path")
                        .on_input(Message::PathChanged)
                        .padding(theme::S),
                    widget::secondary_button("Browse…", Some(Message::Browse)),
                ]
                .spacing(theme::S),
                None,
                Some("if no file dialog opens, type the path"),
            ),
        ]
        .spacing(theme::M);
        match self.mode {
            Mode::Import => {
                col = col.push(widget::field(
                    "Passphrase for encrypted secrets",
                    text_input("only if the file holds enc:v1: values", &self.passphrase)
                        .secure(true)
                        .on_input(Message::PassphraseChanged)
                        .padding(theme::S),
                    None,
                    None,
                ));
                col = col.push(match self.scope {
                    Scope::Projects => column![
                        checkbox(self.accept_partial)
                            .label("Import the good rows even if some are bad")
                            .on_toggle(Message::AcceptPartial)
                    ],
                    Scope::Everything => column![
                        checkbox(self.skip_existing)
                            .label("Keep what already exists here and import the rest")
                            .on_toggle(Message::SkipExisting),
                        checkbox(self.without_secrets)
                            .label("Leave the file's secrets out (enter them again later)")
                            .on_toggle(Message::WithoutSecrets),
                    ]
                    .spacing(theme::S),
                });
            }
            Mode::Export => {
                col = col.push(
                    checkbox(self.include_secrets)
                        .label(match self.scope {
                            Scope::Projects => "Include credentials (encrypted)",
                            Scope::Everything => "Include secrets (encrypted): passwords, keys, channel secrets, the backup passphrase",
                        })
                        .on_toggle(Message::IncludeSecrets),
                );
                if self.include_secrets {
                    col = col.push(widget::field(
                        "Export passphrase",
                        text_input("at least 8 characters", &self.passphrase)
                            .secure(true)
                            .on_input(Message::PassphraseChanged)
                            .padding(theme::S),
                        None,
                        Some("needed again when importing the file"),
                    ));
                }
            }
        }
        if let Some(e) = &self.error {
            col = col.push(widget::banner(
                &widget::Notice::error(e),
                Message::PathChanged(self.path.clone()),
            ));
        }
        let buttons = match self.mode {
            Mode::Import => row![
                widget::secondary_button(
                    "Check file",
                    (!self.busy).then_some(Message::Run { dry_run: true })
                ),
                widget::primary_button(
                    if self.busy { "Working…" } else { "Import" },
                    (!self.busy).then_some(Message::Run { dry_run: false })
                ),
                widget::fill(),
                widget::secondary_button("Close", Some(Message::Close)),
            ],
            Mode::Export => row![
                widget::primary_button(
                    if self.busy { "Working…" } else { "Export" },
                    (!self.busy).then_some(Message::Run { dry_run: false })
                ),
                widget::fill(),
                widget::secondary_button("Close", Some(Message::Close)),
            ],
        };
        col = col.push(buttons.spacing(theme::S));
        if let Some(r) = &self.report {
            col = col.push(report_view(r));
        }
        if let Some(r) = &self.config_report {
            col = col.push(config_report_view(r));
        }
        if let Some(s) = &self.config_summary {
            col = col.push(widget::banner(
                &widget::Notice::success(format!(
                    "Exported {} project(s), {} destination(s), {} schedule(s) and {} alert rule(s) to {}",
                    s.projects,
                    s.destinations,
                    s.jobs,
                    s.alert_rules,
                    s.path.display()
                ))
                .with_detail(if s.secrets_included {
                    "secrets included, encrypted: keep the passphrase for the import"
                } else {
                    "secrets left out: enter them again after the import"
                }),
                Message::Close,
            ));
        }
        if let Some(s) = &self.summary {
            col = col.push(widget::banner(
                &widget::Notice::success(format!(
                    "Exported {} project(s) to {}",
                    s.projects,
                    s.path.display()
                ))
                .with_detail(if s.secrets_included {
                    "credentials included, encrypted"
                } else {
                    "credentials left out"
                }),
                Message::Close,
            ));
        }
        scrollable(col.width(Length::Fixed(640.0))).into()
    }
}

impl Scope {
    fn file_name(self) -> &'static str {
        match self {
            Scope::Projects => "projects.json",
            Scope::Everything => "supabackup-config.json",
        }
    }

    fn placeholder(self) -> &'static str {
        match self {
            Scope::Projects => "/path/to/projects.json",
            Scope::Everything => "/path/to/supabackup-config.json",
        }
    }
}

fn config_report_view(r: &ConfigImportReport) -> Element<'_, Message> {
    let verdict = match (r.applied, r.problems.is_empty()) {
        (true, _) => widget::badge("imported", Tone::Success),
        (false, true) => widget::badge("ready to import (not yet imported)", Tone::Info),
        (false, false) => widget::badge("nothing imported", Tone::Danger),
    };
    let mut col = column![verdict].spacing(theme::XS);
    for (what, t) in [
        ("Projects", &r.projects),
        ("Destinations", &r.destinations),
        ("Schedules", &r.jobs),
        ("Alert rules", &r.alert_rules),
    ] {
        let mut line = format!("{what}: {} new", t.added.len());
        if !t.skipped.is_empty() {
            line.push_str(&format!(", {} already here (kept)", t.skipped.len()));
        }
        col = col.push(text(line).size(theme::SMALL));
    }
    if !r.settings.is_empty() {
        col = col.push(text(format!("Settings: {}", r.settings.join(", "))).size(theme::SMALL));
    }
    for p in &r.problems {
        col = col.push(
            text(format!("{} '{}': {}", p.section, p.item, p.reason))
                .size(theme::SMALL)
                .style(theme::toned(Tone::Danger)),
        );
    }
    for w in &r.warnings {
        col = col.push(
            text(w.clone())
                .size(theme::SMALL)
                .style(theme::toned(Tone::Warning)),
        );
    }
    container(col).padding(theme::M).style(theme::card).into()
}

fn report_view(r: &ImportReport) -> Element<'_, Message> {
    let verdict = match (r.applied, r.rejected.is_empty()) {
        (true, _) => widget::badge(format!("imported {}", r.valid.len()), Tone::Success),
        (false, true) => widget::badge("all rows valid (not yet imported)", Tone::Info),
        (false, false) => widget::badge("nothing imported", Tone::Danger),
    };
    let mut col = column![
        row![
            text(format!(
                "{} row(s): {} valid, {} rejected",
                r.total,
                r.valid.len(),
                r.rejected.len()
            ))
            .font(theme::BOLD),
            verdict,
        ]
        .spacing(theme::S),
    ]
    .spacing(theme::XS);
    for e in &r.rejected {
        col = col.push(
            row![
                text(format!("line {}", e.line))
                    .size(theme::SMALL)
                    .width(Length::Fixed(70.0)),
                text(e.name.clone().unwrap_or_else(|| "—".into()))
                    .size(theme::SMALL)
                    .width(Length::Fixed(140.0)),
                text(e.reason.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            ]
            .spacing(theme::S),
        );
    }
    container(col).padding(theme::M).style(theme::card).into()
}
