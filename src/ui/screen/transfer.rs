//! Import and export of project configurations (JSON or CSV), with a file
//! picker (and a typed path when no picker is available) and a per-row
//! error report.

use std::path::PathBuf;
use std::sync::Arc;

use iced::widget::{checkbox, column, container, row, scrollable, text, text_input};
use iced::{Element, Length, Task};

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

#[derive(Debug, Clone)]
pub enum Message {
    PathChanged(String),
    Browse,
    Picked(Option<PathBuf>),
    PassphraseChanged(String),
    AcceptPartial(bool),
    IncludeSecrets(bool),
    /// Import: check only (dry run) or apply.
    Run {
        dry_run: bool,
    },
    Imported(Result<ImportReport, Error>),
    Exported(Result<ExportSummary, Error>),
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
    pub path: String,
    pub passphrase: String,
    pub accept_partial: bool,
    pub include_secrets: bool,
    pub busy: bool,
    pub report: Option<ImportReport>,
    pub summary: Option<ExportSummary>,
    pub error: Option<Error>,
}

impl Transfer {
    pub fn new(mode: Mode, default_dir: PathBuf) -> Self {
        let path = match mode {
            Mode::Import => String::new(),
            Mode::Export => default_dir.join("projects.json").display().to_string(),
        };
        Transfer {
            mode,
            path,
            passphrase: String::new(),
            accept_partial: false,
            include_secrets: false,
            busy: false,
            report: None,
            summary: None,
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
                let fut = match self.mode {
                    Mode::Import => platform.pick_file(
                        "Import projects".into(),
                        vec![Filter::new("Projects", &["json", "csv"])],
                    ),
                    Mode::Export => {
                        platform.save_file("Export projects".into(), "projects.json".into())
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
                match self.mode {
                    Mode::Import => {
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
                    Mode::Export => {
                        self.summary = None;
                        let opts = ExportOptions {
                            secrets_passphrase: if self.include_secrets {
                                passphrase
                            } else {
                                None
                            },
                        };
                        if self.include_secrets && opts.secrets_passphrase.is_none() {
                            self.busy = false;
                            self.error = Some(Error::invalid(
                                "credentials are exported encrypted: choose an export passphrase",
                            ));
                            return Event::None;
                        }
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
            Message::Close => Event::Closed,
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let title = match self.mode {
            Mode::Import => "Import projects",
            Mode::Export => "Export projects",
        };
        let mut col = column![
            text(title).size(theme::H2).font(theme::BOLD),
            text(match self.mode {
                Mode::Import => "A .json or .csv file as written by Export (or by hand). Every bad row is reported with its line; nothing is written unless all rows are good or you accept a partial import.",
                Mode::Export => "Writes every project to a .json or .csv file. Credentials are left out unless you include them, encrypted with a passphrase.",
            })
            .size(theme::SMALL)
            .style(theme::muted),
            widget::field(
                "File",
                row![
                    text_input("/path/to/projects.json", &self.path)
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
                    "Passphrase for encrypted credentials",
                    text_input("only if the file holds enc:v1: values", &self.passphrase)
                        .secure(true)
                        .on_input(Message::PassphraseChanged)
                        .padding(theme::S),
                    None,
                    None,
                ));
                col = col.push(
                    checkbox(self.accept_partial)
                        .label("Import the good rows even if some are bad")
                        .on_toggle(Message::AcceptPartial),
                );
            }
            Mode::Export => {
                col = col.push(
                    checkbox(self.include_secrets)
                        .label("Include credentials (encrypted)")
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
